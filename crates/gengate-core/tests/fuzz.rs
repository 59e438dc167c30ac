//! Property-based fuzzing of request parsing against the catalog
//! (docs/HARDENING.md, "Fuzzing"): arbitrary JSON values as whole bodies, as
//! `params`, and in place of each field of a valid body. Properties:
//!
//! - parsing never panics and answers in bounded time (a watchdog aborts
//!   the run, naming the input, past `GENGATE_FUZZ_CASE_SECS`);
//! - a refusal names at least one field, and every field it names is a
//!   non-empty path;
//! - an accepted request holds only what the catalog allows (known params,
//!   select values among the options, numbers in range, no refused control
//!   characters) and its params build `KlingParams`, which the runner needs
//!   after the caller has been charged;
//! - parse(serialise(x)) round-trips: the accepted request, written back as
//!   a body, parses to the same request;
//! - `canonical_json` parses back to the same value, whatever the key order.
//!
//! Cases: 512 per property by default; `GENGATE_FUZZ_CASES` raises them.

use gengate_core::catalog::{Catalog, ParamType};
use gengate_core::generation::parse_create_request;
use gengate_core::idempotency::canonical_json;
use gengate_core::kling::KlingParams;
use gengate_core::text::{TextRule, first_refused};
use gengate_core::webhook::{parse_create_endpoint, parse_update_endpoint};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use serde_json::{Map, Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

fn catalog() -> &'static Catalog {
    static C: OnceLock<Catalog> = OnceLock::new();
    C.get_or_init(|| Catalog::builtin().expect("builtin catalog"))
}

fn config() -> Config {
    Config {
        cases: std::env::var("GENGATE_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(512),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..Config::default()
    }
}

// --- watchdog ---------------------------------------------------------------

static STARTED_MS: AtomicU64 = AtomicU64::new(0);
static CURRENT: Mutex<String> = Mutex::new(String::new());

fn epoch() -> Instant {
    static E: OnceLock<Instant> = OnceLock::new();
    *E.get_or_init(Instant::now)
}

fn watched<T>(what: &Value, f: impl FnOnce() -> T) -> T {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let secs = std::env::var("GENGATE_FUZZ_CASE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30u64);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(250));
                let s = STARTED_MS.load(Ordering::Relaxed);
                let now = epoch().elapsed().as_millis() as u64;
                if s != 0 && now.saturating_sub(s) > secs * 1000 {
                    let what = CURRENT.lock().map(|c| c.clone()).unwrap_or_default();
                    eprintln!("HANG: parsing ran over {secs} s on {what}");
                    std::process::abort();
                }
            }
        });
    });
    if let Ok(mut c) = CURRENT.lock() {
        *c = what.to_string().chars().take(2000).collect();
    }
    STARTED_MS.store(
        epoch().elapsed().as_millis().max(1) as u64,
        Ordering::Relaxed,
    );
    let out = f();
    STARTED_MS.store(0, Ordering::Relaxed);
    out
}

// --- strategies -------------------------------------------------------------

/// Strings that matter to the parsers: catalog words, numbers as text,
/// control characters, long and odd Unicode.
fn text() -> impl Strategy<Value = String> {
    let words: Vec<String> = {
        let mut w = vec![
            "kling-3-0",
            "std",
            "pro",
            "5",
            "10",
            "15",
            "true",
            "false",
            "16:9",
            "9:16",
            "1:1",
            "image",
            "video",
            "audio",
            "referenceMediaItems",
            "",
            " ",
            "\u{0}",
            "a\nb",
            "1e999",
            "NaN",
            "-0",
            "0x10",
            "１０",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        for m in catalog().models() {
            w.push(m.id.clone());
            for p in &m.params {
                w.push(p.key.clone());
                w.extend(p.options.clone().unwrap_or_default());
            }
        }
        w
    };
    prop_oneof![
        3 => prop::sample::select(words),
        2 => any::<String>(),
        1 => "[\\x00-\\x1f\\x7f\\u{80}-\\u{9f} a-z]{0,12}",
        1 => (1usize..3000).prop_map(|n| "x".repeat(n)),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        (-20i64..40).prop_map(Value::from),
        (-20.0f64..40.0).prop_map(|f| json!(f)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A params object built from the catalog's keys, each given an arbitrary
/// value or one of its own options, so most fuzzed bodies get deep.
fn params() -> impl Strategy<Value = Value> {
    let specs = catalog().models()[0].params.clone();
    let per_key: Vec<_> = specs
        .into_iter()
        .map(|p| {
            let options: Vec<Value> = p
                .options
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(Value::String)
                .collect();
            let own = if options.is_empty() {
                Just(Value::Null).boxed()
            } else {
                prop::sample::select(options).boxed()
            };
            let value = prop_oneof![3 => own, 1 => json_value()];
            (Just(p.key), prop::option::of(value))
        })
        .collect();
    (per_key, prop::option::of((text(), json_value()))).prop_map(|(pairs, extra)| {
        let mut m: Map<String, Value> = pairs
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        if let Some((k, v)) = extra {
            m.insert(k, v);
        }
        Value::Object(m)
    })
}

fn body() -> impl Strategy<Value = Value> {
    let model = prop_oneof![
        4 => Just(json!("kling-3-0")),
        1 => json_value(),
    ];
    let prompt = prop_oneof![
        4 => text().prop_map(Value::String),
        1 => json_value(),
    ];
    let params = prop_oneof![4 => params(), 1 => json_value()];
    let crid = prop::option::of(prop_oneof![
        3 => text().prop_map(Value::String),
        1 => json_value(),
    ]);
    (
        model,
        prompt,
        prop::option::of(params),
        crid,
        prop::option::of((text(), json_value())),
    )
        .prop_map(|(model, prompt, params, crid, extra)| {
            let mut m = Map::new();
            m.insert("model".into(), model);
            m.insert("prompt".into(), prompt);
            if let Some(p) = params {
                m.insert("params".into(), p);
            }
            if let Some(c) = crid {
                m.insert("client_request_id".into(), c);
            }
            if let Some((k, v)) = extra {
                m.insert(k, v);
            }
            Value::Object(m)
        })
}

// --- properties ----------------------------------------------------------------

fn check_create(body: &Value) -> Result<(), TestCaseError> {
    let parsed = watched(body, || parse_create_request(catalog(), body));
    let req = match parsed {
        Err(e) => {
            prop_assert!(!e.problems().is_empty(), "a refusal without problems");
            for p in e.problems() {
                prop_assert!(!p.field.is_empty(), "a problem without a field: {p:?}");
                prop_assert!(!p.message.is_empty(), "a problem without a message");
            }
            return Ok(());
        }
        Ok(r) => r,
    };
    // Only what the catalog allows.
    let model = catalog().get(&req.model.id).expect("a catalog model");
    prop_assert!(first_refused(req.prompt.as_str(), TextRule::Prose).is_none());
    prop_assert!(!req.prompt.as_str().trim().is_empty());
    prop_assert!(req.prompt.as_str().chars().count() <= model.max_prompt_length as usize);
    if let Some(c) = &req.client_request_id {
        prop_assert!(first_refused(c.as_str(), TextRule::Line).is_none());
        prop_assert!((1..=128).contains(&c.as_str().chars().count()));
    }
    for (k, v) in req.params.as_map() {
        let spec = model.param(k);
        prop_assert!(spec.is_some(), "unknown param {k} accepted");
        let spec = spec.expect("checked");
        match spec.kind {
            ParamType::Select => {
                let s = v.as_str().unwrap_or_default().to_owned();
                prop_assert!(
                    spec.options.as_ref().is_some_and(|o| o.contains(&s)),
                    "{k}={v} is not an option"
                );
            }
            ParamType::Number => {
                let n = v.as_f64();
                prop_assert!(n.is_some_and(f64::is_finite), "{k}={v}");
                let n = n.expect("checked");
                prop_assert!(
                    spec.min.is_none_or(|lo| n >= lo) && spec.max.is_none_or(|hi| n <= hi)
                );
            }
            ParamType::Text => {
                prop_assert!(
                    v.as_str()
                        .is_some_and(|s| first_refused(s, TextRule::Prose).is_none())
                );
            }
        }
    }
    for spec in model.params.iter().filter(|p| p.required) {
        prop_assert!(
            req.params.get(&spec.key).is_some(),
            "required {} missing",
            spec.key
        );
    }
    if model.runtime.contains("kling") || model.id.starts_with("kling") {
        let k = KlingParams::from_params(&req.params);
        prop_assert!(k.is_ok(), "accepted params do not build KlingParams: {k:?}");
    }
    // parse(serialise(x)) == x.
    let mut again = json!({
        "model": req.model.id,
        "prompt": req.prompt.as_str(),
        "params": req.params.clone().into_value(),
    });
    if let Some(c) = &req.client_request_id {
        again["client_request_id"] = json!(c.as_str());
    }
    if !req.references.is_empty() {
        let items: Vec<Value> = req
            .references
            .iter()
            .map(|r| {
                let mut it = json!({"url": r.url, "kind": r.kind});
                if let Some(n) = &r.name {
                    it["name"] = json!(n);
                }
                if let Some(m) = &r.mime_type {
                    it["mimeType"] = json!(m);
                }
                if let Some(d) = r.duration_seconds {
                    it["durationSeconds"] = json!(d);
                }
                if let Some(t) = &r.duration_token {
                    it["durationToken"] = json!(t);
                }
                it
            })
            .collect();
        again["params"]["referenceMediaItems"] = Value::Array(items);
    }
    let re = parse_create_request(catalog(), &again);
    prop_assert!(re.is_ok(), "its own output is refused: {:?}", re.err());
    let re = re.expect("checked");
    prop_assert_eq!(re.prompt, req.prompt);
    prop_assert_eq!(re.params, req.params);
    prop_assert_eq!(re.client_request_id, req.client_request_id);
    prop_assert_eq!(re.references.len(), req.references.len());
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn create_bodies_built_from_the_catalog(b in body()) {
        check_create(&b)?;
    }

    #[test]
    fn any_json_as_a_create_body(b in json_value()) {
        check_create(&b)?;
    }

    #[test]
    fn webhook_bodies_never_panic_and_refusals_name_fields(b in json_value(), name in text(), url in text()) {
        for body in [b.clone(), json!({"name": name, "url": url, "event_types": b})] {
            for r in [parse_create_endpoint(&body).err(), parse_update_endpoint(&body).err()].into_iter().flatten() {
                prop_assert!(!r.problems().is_empty());
            }
            if let Ok(c) = parse_create_endpoint(&body) {
                prop_assert!(first_refused(c.name.as_str(), TextRule::Line).is_none());
                prop_assert!(first_refused(&c.url, TextRule::Line).is_none());
            }
        }
    }

    #[test]
    fn canonical_json_round_trips_in_any_key_order(v in json_value()) {
        let text = canonical_json(&v);
        let back: Value = serde_json::from_str(&text).expect("canonical JSON parses");
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(canonical_json(&back), text);
    }
}
