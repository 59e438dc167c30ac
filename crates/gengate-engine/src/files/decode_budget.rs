//! The node's budget for image decoding memory.
//!
//! Each decode is capped on its own (`ImageLimits`), but eight concurrent
//! uploads of a small PNG declaring 11000×11000 pixels each hold ~480 MB
//! while they decode, and the sum took a node from 89 MB to 2.5 GB. Every
//! decode first reserves its cost, estimated from the image header before a
//! pixel is decoded (`gengate_media::image_decode_cost`), from one
//! byte-weighted semaphore sized by `--max-decode-memory`; the reservation
//! is returned when the decode ends. A decode that cannot get its bytes
//! within a short wait is answered `503 server_busy` with `Retry-After`; one
//! whose cost alone is more than the whole budget could never run and is a
//! validation error, not a wait.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Permits are counted in units of this many bytes, so budgets of many GiB
/// fit the semaphore's `u32` requests.
const UNIT: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// The decode alone needs more than the whole budget.
    #[error("decoding needs {needed} bytes; this server decodes at most {budget} bytes at once")]
    TooLarge { needed: u64, budget: u64 },
    /// Others hold the budget; retry after a moment.
    #[error("the server is decoding other images; retry shortly")]
    Busy,
}

#[derive(Debug)]
pub struct DecodeBudget {
    permits: Arc<Semaphore>,
    total_units: u32,
    wait: Duration,
}

/// Held while a decode runs; dropping it returns the bytes.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

impl DecodeBudget {
    /// `bytes` is rounded down to whole units (at least one).
    pub fn new(bytes: u64, wait: Duration) -> Self {
        let total_units = u32::try_from((bytes / UNIT).max(1)).unwrap_or(u32::MAX >> 4);
        Self {
            permits: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            wait,
        }
    }

    pub fn total_bytes(&self) -> u64 {
        u64::from(self.total_units) * UNIT
    }

    /// Bytes not reserved right now (for metrics and tests).
    pub fn available_bytes(&self) -> u64 {
        self.permits.available_permits() as u64 * UNIT
    }

    /// Reserves `cost` bytes, waiting at most the configured time.
    pub async fn reserve(&self, cost: u64) -> Result<Reservation, BudgetError> {
        let units = cost.div_ceil(UNIT).max(1);
        if units > u64::from(self.total_units) {
            return Err(BudgetError::TooLarge {
                needed: cost,
                budget: self.total_bytes(),
            });
        }
        // `units` fits: it is at most `total_units`, a u32.
        let units = u32::try_from(units).unwrap_or(self.total_units);
        match tokio::time::timeout(self.wait, self.permits.clone().acquire_many_owned(units)).await
        {
            Ok(Ok(permit)) => Ok(Reservation { _permit: permit }),
            // The semaphore is never closed; treat it like a full budget.
            Ok(Err(_)) | Err(_) => {
                metrics::counter!("gengate_decode_budget_refusals_total").increment(1);
                Err(BudgetError::Busy)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[tokio::test]
    async fn reservations_add_up_to_the_budget_and_come_back_when_dropped() {
        let b = DecodeBudget::new(10 * MIB, Duration::from_millis(50));
        assert_eq!(b.total_bytes(), 10 * MIB);
        let first = b.reserve(6 * MIB).await.expect("fits");
        assert_eq!(b.available_bytes(), 4 * MIB);
        assert_eq!(b.reserve(6 * MIB).await.err(), Some(BudgetError::Busy));
        let small = b.reserve(MIB).await.expect("a small one still fits");
        drop(first);
        let again = b.reserve(10 * MIB).await;
        assert_eq!(again.err(), Some(BudgetError::Busy), "1 MiB is still held");
        assert!(b.reserve(9 * MIB).await.is_ok(), "the rest is free again");
        drop(small);
        assert!(b.reserve(10 * MIB).await.is_ok());
    }

    #[tokio::test]
    async fn a_decode_larger_than_the_whole_budget_is_refused_at_once() {
        let b = DecodeBudget::new(10 * MIB, Duration::from_secs(3600));
        let t = std::time::Instant::now();
        assert!(matches!(
            b.reserve(11 * MIB).await,
            Err(BudgetError::TooLarge { .. })
        ));
        assert!(t.elapsed() < Duration::from_secs(60), "no waiting");
    }

    #[tokio::test]
    async fn a_waiter_gets_the_bytes_when_they_are_returned_within_the_wait() {
        let b = Arc::new(DecodeBudget::new(4 * MIB, Duration::from_secs(60)));
        let held = b.reserve(4 * MIB).await.expect("all of it");
        let waiter = {
            let b = b.clone();
            tokio::spawn(async move { b.reserve(2 * MIB).await.is_ok() })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        assert!(waiter.await.expect("join"));
    }

    #[test]
    fn tiny_and_huge_budgets_are_usable() {
        assert_eq!(DecodeBudget::new(0, Duration::ZERO).total_bytes(), UNIT);
        let huge = DecodeBudget::new(u64::MAX, Duration::ZERO);
        assert!(huge.total_bytes() > 1 << 40);
    }
}
