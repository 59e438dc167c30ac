//! Prices as data (issue 23). A model is either `FIXED` (its `base_credits`, whatever
//! the request) or priced by `RULES` over the request's params:
//!
//! ```json
//! "billing_type": "RULES",
//! "pricing": {
//!   "base": 20,
//!   "per_unit":    [{"param": "duration", "credits": 10, "unit": "s"}],
//!   "surcharges":  [{"param": "mode", "value": "pro", "credits": 30}],
//!   "multipliers": [{"param": "sound", "value": "true", "percent": 150}]
//! }
//! ```
//!
//! The list price is `base`, plus `credits` × the param's value for each per-unit rule,
//! plus each surcharge whose param has its value; then each multiplier whose param has
//! its value scales that subtotal by `percent` / 100, in order. An account's price
//! adjustment (−99 … +1000 percent) scales the list price last. Every scaling rounds
//! **up** to a whole credit, so a price is always whole credits and a breakdown always
//! sums to it. All arithmetic is integer: the same request prices the same everywhere.

use crate::catalog::{Model, ParamSpec, ParamType};
use crate::params::NormalizedParams;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The account price adjustment's bounds, in percent.
pub const MIN_ADJUSTMENT: i32 = -99;
pub const MAX_ADJUSTMENT: i32 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PriceRules {
    /// Credits every task pays.
    pub base: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_unit: Vec<PerUnit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub surcharges: Vec<Surcharge>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub multipliers: Vec<Multiplier>,
}

/// `credits` for each unit of a numeric param's value (a select's options are numbers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PerUnit {
    pub param: String,
    pub credits: i64,
    /// How the breakdown names one unit (`s` for seconds); empty for none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
}

/// `credits` more when `param` is `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Surcharge {
    pub param: String,
    pub value: String,
    pub credits: i64,
}

/// The subtotal × `percent` / 100 when `param` is `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Multiplier {
    pub param: String,
    pub value: String,
    pub percent: u32,
}

/// One line of a quote; the lines sum to the price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuoteItem {
    pub item: String,
    pub credits: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    /// What the task costs this account, in whole credits.
    pub credits: i64,
    pub breakdown: Vec<QuoteItem>,
    /// The version of the model's price it was computed with (see [`price_version`]).
    pub price_version: String,
}

fn ceil_div(n: i128, d: i128) -> i128 {
    // n ≥ 0 and d > 0 everywhere here.
    (n + d - 1) / d
}

/// A param's value as a number (selects hold numbers as strings).
fn number(v: Option<&serde_json::Value>) -> Option<f64> {
    match v? {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Bool(_) | serde_json::Value::Null => None,
        _ => None,
    }
}

/// A param's value as the text a surcharge or multiplier compares with.
fn text(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A short, stable name for the model's price as it is now: a price change makes a new
/// version; tasks keep the version they were priced with. Worked out once per catalog
/// load (`Model::price_version`); a model built another way is hashed here.
pub fn price_version(model: &Model) -> String {
    if !model.price_version.is_empty() {
        return model.price_version.clone();
    }
    let doc = serde_json::json!({
        "billing_type": model.billing_type,
        "base_credits": model.base_credits,
        "pricing": model.pricing,
    });
    let digest = Sha256::digest(doc.to_string().as_bytes());
    format!("p{}", &hex::encode(digest)[..12])
}

/// The price of a request for `model` with its (normalised, valid) `params`, for an
/// account with `adjustment` percent.
pub fn quote(model: &Model, params: &NormalizedParams, adjustment: i32) -> Quote {
    let mut items = Vec::new();
    let list: i128 = match &model.pricing {
        None => {
            items.push(QuoteItem {
                item: format!("{} (fixed price)", model.id),
                credits: model.base_credits.get(),
            });
            i128::from(model.base_credits.get())
        }
        Some(rules) => {
            let mut total = i128::from(rules.base);
            items.push(QuoteItem {
                item: "base".into(),
                credits: rules.base,
            });
            for r in &rules.per_unit {
                // Checked at load: the values are whole numbers.
                let units = number(params.get(&r.param)).unwrap_or(0.0).max(0.0) as i128;
                let c = units * i128::from(r.credits);
                total += c;
                let unit = if r.unit.is_empty() {
                    String::new()
                } else {
                    format!(" {}", r.unit)
                };
                items.push(QuoteItem {
                    item: format!("{} {units}{unit} × {}", r.param, r.credits),
                    credits: c as i64,
                });
            }
            for s in &rules.surcharges {
                if text(params.get(&s.param)).as_deref() == Some(s.value.as_str()) {
                    total += i128::from(s.credits);
                    items.push(QuoteItem {
                        item: format!("{}={}", s.param, s.value),
                        credits: s.credits,
                    });
                }
            }
            for m in &rules.multipliers {
                if text(params.get(&m.param)).as_deref() == Some(m.value.as_str()) {
                    let scaled = ceil_div(total * i128::from(m.percent), 100);
                    items.push(QuoteItem {
                        item: format!("{}={} × {}%", m.param, m.value, m.percent),
                        credits: (scaled - total) as i64,
                    });
                    total = scaled;
                }
            }
            total
        }
    };
    let adjustment = adjustment.clamp(MIN_ADJUSTMENT, MAX_ADJUSTMENT);
    let mut credits = list;
    if adjustment != 0 {
        credits = ceil_div(list * i128::from(100 + adjustment), 100);
        items.push(QuoteItem {
            item: format!("account price adjustment {adjustment:+}%"),
            credits: (credits - list) as i64,
        });
    }
    Quote {
        credits: credits as i64,
        breakdown: items,
        price_version: price_version(model),
    }
}

/// Checks a model's pricing against its params when the catalog loads: names the rule
/// and the field that is wrong.
pub fn check(model: &Model) -> Result<(), String> {
    match (model.billing_type.as_str(), &model.pricing) {
        ("FIXED", None) => return Ok(()),
        ("FIXED", Some(_)) => {
            return Err("billing_type FIXED takes no pricing rules (use RULES)".into());
        }
        ("RULES", None) => return Err("billing_type RULES needs a pricing block".into()),
        ("RULES", Some(_)) => {}
        (other, _) => return Err(format!("billing_type {other:?} is FIXED or RULES")),
    }
    let Some(rules) = &model.pricing else {
        return Ok(());
    };
    if rules.base < 0 {
        return Err("pricing.base: must not be negative".into());
    }
    let param = |rule: &str, name: &str| -> Result<&ParamSpec, String> {
        model
            .param(name)
            .ok_or_else(|| format!("{rule}.param: the model has no param {name:?}"))
    };
    for (i, r) in rules.per_unit.iter().enumerate() {
        let rule = format!("pricing.per_unit[{i}]");
        let p = param(&rule, &r.param)?;
        if r.credits < 0 {
            return Err(format!("{rule}.credits: must not be negative"));
        }
        let whole = |x: f64| x.fract() == 0.0 && x >= 0.0;
        match p.kind {
            ParamType::Select => {
                for o in p.options.iter().flatten() {
                    if !o.parse::<f64>().is_ok_and(whole) {
                        return Err(format!(
                            "{rule}.param: option {o:?} of {} is not a whole number",
                            r.param
                        ));
                    }
                }
            }
            ParamType::Number => {
                let ok = p.min.is_none_or(whole) && p.step.is_some_and(whole);
                if !ok {
                    return Err(format!(
                        "{rule}.param: {} must take whole numbers only (a whole min and step)",
                        r.param
                    ));
                }
            }
            ParamType::Text => {
                return Err(format!("{rule}.param: {} is text, not a number", r.param));
            }
        }
    }
    let option = |rule: &str, name: &str, value: &str| -> Result<(), String> {
        let p = param(rule, name)?;
        match (&p.kind, &p.options) {
            (ParamType::Select, Some(opts)) if opts.iter().any(|o| o == value) => Ok(()),
            (ParamType::Select, _) => Err(format!(
                "{rule}.value: {value:?} is not an option of {name}"
            )),
            _ => Err(format!("{rule}.param: {name} is not a select")),
        }
    };
    for (i, s) in rules.surcharges.iter().enumerate() {
        let rule = format!("pricing.surcharges[{i}]");
        option(&rule, &s.param, &s.value)?;
        if s.credits < 0 {
            return Err(format!("{rule}.credits: must not be negative"));
        }
    }
    for (i, m) in rules.multipliers.iter().enumerate() {
        let rule = format!("pricing.multipliers[{i}]");
        option(&rule, &m.param, &m.value)?;
        if m.percent == 0 || m.percent > 10_000 {
            return Err(format!("{rule}.percent: must be 1 to 10000"));
        }
    }
    // `base_credits` is what the model costs with every param at its default, so a
    // client that reads only that field still sees a true figure.
    let defaults = NormalizedParams::from_stored(serde_json::Value::Object(
        model
            .params
            .iter()
            .filter_map(|p| p.default.clone().map(|d| (p.key.clone(), d)))
            .collect(),
    ));
    let at_defaults = quote(model, &defaults, 0).credits;
    if at_defaults != model.base_credits.get() {
        return Err(format!(
            "base_credits: {} but the rules price the defaults at {at_defaults}",
            model.base_credits
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use serde_json::json;

    fn model(billing: &str, base_credits: i64, pricing: serde_json::Value) -> Model {
        let mut doc: serde_json::Value =
            serde_json::from_str(crate::catalog::BUILTIN_CATALOG).expect("builtin");
        let m = &mut doc["models"][0];
        m["billing_type"] = json!(billing);
        m["base_credits"] = json!(base_credits);
        if !pricing.is_null() {
            m["pricing"] = pricing;
        }
        serde_json::from_value(m.clone()).expect("model")
    }

    fn rules() -> serde_json::Value {
        json!({
            "base": 20,
            "per_unit": [{"param": "duration", "credits": 10, "unit": "s"}],
            "surcharges": [{"param": "mode", "value": "pro", "credits": 30}, {"param": "sound", "value": "true", "credits": 25}],
            "multipliers": [{"param": "multi_shots", "value": "true", "percent": 150}]
        })
    }

    fn params(v: serde_json::Value) -> NormalizedParams {
        NormalizedParams::from_stored(v)
    }

    #[test]
    fn fixed_is_base_credits_whatever_the_params() {
        let m = model("FIXED", 90, serde_json::Value::Null);
        let q = quote(&m, &params(json!({"duration": "15", "mode": "pro"})), 0);
        assert_eq!(q.credits, 90);
        assert_eq!(q.breakdown.len(), 1);
        assert!(check(&m).is_ok());
    }

    #[test]
    fn rules_add_per_unit_surcharges_then_multipliers_and_the_breakdown_sums() {
        // Defaults: duration 5, mode pro, sound false, multi_shots false → 20 + 50 + 30.
        let m = model("RULES", 100, rules());
        check(&m).expect("valid");
        let q = quote(
            &m,
            &params(
                json!({"duration": "7", "mode": "pro", "sound": "true", "multi_shots": "true"}),
            ),
            0,
        );
        // (20 + 70 + 30 + 25) × 1.5 = 217.5 → 218, rounded up.
        assert_eq!(q.credits, 218);
        assert_eq!(q.breakdown.iter().map(|i| i.credits).sum::<i64>(), 218);
        assert_eq!(q.breakdown[1].item, "duration 7 s × 10");
    }

    #[test]
    fn an_account_adjustment_scales_the_list_price_rounding_up() {
        let m = model("FIXED", 93, serde_json::Value::Null);
        // 93 × 0.8 = 74.4 → 75; 93 × 1.15 = 106.95 → 107.
        assert_eq!(quote(&m, &params(json!({})), -20).credits, 75);
        assert_eq!(quote(&m, &params(json!({})), 15).credits, 107);
        let q = quote(&m, &params(json!({})), -20);
        assert_eq!(q.breakdown.last().map(|i| i.credits), Some(-18));
        assert_eq!(q.breakdown.iter().map(|i| i.credits).sum::<i64>(), 75);
    }

    #[test]
    fn a_price_change_is_a_new_version() {
        let a = model("RULES", 100, rules());
        let mut changed = rules();
        changed["base"] = json!(21);
        let b = model("RULES", 101, changed);
        assert_ne!(price_version(&a), price_version(&b));
        assert_eq!(price_version(&a), price_version(&a.clone()));
    }

    #[test]
    fn bad_rules_name_the_rule_and_the_field() {
        let bad = |p: serde_json::Value, base: i64| check(&model("RULES", base, p)).unwrap_err();
        let mut r = rules();
        r["surcharges"][1]["param"] = json!("colour");
        assert!(bad(r, 100).contains("pricing.surcharges[1].param"));
        let mut r = rules();
        r["surcharges"][0]["value"] = json!("ultra");
        assert!(bad(r, 100).contains("pricing.surcharges[0].value"));
        let mut r = rules();
        r["per_unit"][0]["param"] = json!("aspect_ratio");
        assert!(bad(r, 100).contains("pricing.per_unit[0].param"));
        let mut r = rules();
        r["multipliers"][0]["percent"] = json!(0);
        assert!(bad(r, 100).contains("pricing.multipliers[0].percent"));
        assert!(
            bad(rules(), 90).contains("base_credits: 90 but the rules price the defaults at 100")
        );
        assert!(check(&model("FIXED", 90, rules())).is_err());
        assert!(check(&model("RULES", 90, serde_json::Value::Null)).is_err());
    }

    #[test]
    fn the_builtin_catalog_prices_kling_3_0_fixed_at_90() {
        let c = Catalog::builtin().expect("builtin");
        let m = c.get("kling-3-0").expect("kling-3-0");
        assert_eq!(m.billing_type, "FIXED");
        assert_eq!(quote(m, &params(json!({"duration": "15"})), 0).credits, 90);
    }
}
