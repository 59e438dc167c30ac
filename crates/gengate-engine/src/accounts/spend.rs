//! A key's spend limit as the API shows it: the limit, its window and what
//! the key's tasks hold, in key objects and in `spend_limit_exceeded` errors.

use serde::Serialize;

/// A key's spend limit and what its tasks hold (in `spend_limit_exceeded`
/// errors and in key objects).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SpendLimitState {
    /// Credits the key may hold in the window.
    pub limit: i64,
    /// `24h`-style rolling window, or `total` for a fixed total over the key's life.
    #[cfg_attr(feature = "openapi", schema(example = "24h"))]
    pub window: String,
    /// The window in seconds; null for a fixed total.
    pub window_seconds: Option<u64>,
    /// What the key's tasks hold in the window (refunded tasks do not count).
    pub spent: i64,
    /// The refused task's price (errors only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<i64>,
    /// When enough room frees for the refused price (errors only; null when
    /// time alone never frees it: a fixed total, or a price above the limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frees_at: Option<Option<String>>,
}

impl SpendLimitState {
    pub fn new(limit: &gengate_core::spend::SpendLimit, spent: gengate_core::Credits) -> Self {
        Self {
            limit: limit.limit.get(),
            window: limit.window_text(),
            window_seconds: limit.window.map(|w| w.as_secs()),
            spent: spent.get(),
            price: None,
            frees_at: None,
        }
    }

    /// The state a refused create reports: the limit, what the key held,
    /// the refused price and when room for it frees.
    pub fn of_refusal(r: &SpendRefusal) -> Self {
        let mut state = Self::new(&r.limit, r.spent);
        state.price = Some(r.price.get());
        state.frees_at = Some(r.frees_at.map(|t| t.rfc3339()));
        state
    }
}

/// A create refused by the key's spend limit, with what the caller needs to
/// know to plan: the limit, what the key holds, and when room frees.
#[derive(Debug, Clone)]
pub struct SpendRefusal {
    pub limit: gengate_core::spend::SpendLimit,
    /// What the key's counted tasks held when the create was refused.
    pub spent: gengate_core::Credits,
    pub price: gengate_core::Credits,
    /// When enough of the key's tasks leave the window for this price to
    /// fit; `None` for a fixed total (only refunds free room there).
    pub frees_at: Option<gengate_core::Timestamp>,
}
