//! The cluster as the operator sees it (`GET /api/admin/v1/providers`): every node
//! writes a report of itself and its providers every [`REPORT_EVERY`]; any node merges
//! the reports the same way, so every node answers the same.
//!
//! The merge rule: a node is live when its report is younger than [`LIVE_FOR`]; a
//! provider or a Kling account is unhealthy when any live node finds it so (nodes that
//! make no calls to it never do), with that node's reason and time; counters (in
//! flight, submits, failures by class) are summed over live nodes; a stale node is
//! listed but counts for nothing.

use crate::Engine;
use gengate_core::Timestamp;
use gengate_store::operators::NodeReport;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

pub const REPORT_EVERY: Duration = Duration::from_secs(1);
pub const LIVE_FOR: Duration = Duration::from_secs(5);

/// A node silent this long is gone (scaled down, renamed): its report is deleted.
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Writes this node's report every [`REPORT_EVERY`], on every node, and now and then
/// forgets nodes gone for [`FORGET_AFTER`].
pub async fn reporter(st: Engine, mut stop: watch::Receiver<bool>) {
    let mut beats: u64 = 0;
    loop {
        if beats.is_multiple_of(600)
            && let Err(e) = st
                .store
                .prune_node_reports(st.clock.now().minus(FORGET_AFTER))
                .await
        {
            tracing::warn!(error = %e, "forgetting old node reports failed");
        }
        beats += 1;
        let report = NodeReport {
            node: st.node.node.clone(),
            role: st.status.to_json(&st.node)["role"]
                .as_str()
                .unwrap_or("all")
                .to_owned(),
            boot: st.node.boot.clone(),
            reported_at: st.clock.now(),
            report: json!({"node": st.status.to_json(&st.node), "providers": st.providers_snapshot()}),
        };
        if let Err(e) = st.store.report_node(&report).await {
            tracing::warn!(error = %e, "writing this node's report failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(REPORT_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

fn add(into: &mut Map<String, Value>, key: &str, v: Option<&Value>) {
    let n = v.and_then(Value::as_i64).unwrap_or(0);
    let sum = into.get(key).and_then(Value::as_i64).unwrap_or(0) + n;
    into.insert(key.to_owned(), json!(sum));
}

/// Marks `into` unhealthy from a node's view `v` (the first unhealthy view wins).
fn health(into: &mut Map<String, Value>, node: &str, v: &Value) {
    if v.get("healthy") == Some(&Value::Bool(false))
        && into.get("healthy") != Some(&Value::Bool(false))
    {
        into.insert("healthy".into(), json!(false));
        for k in ["reason", "since", "state"] {
            if let Some(x) = v.get(k) {
                into.insert(k.into(), x.clone());
            }
        }
        into.insert("seen_by".into(), json!(node));
    }
}

pub fn merge(reports: &[NodeReport], now: Timestamp) -> Value {
    // In node order whatever order they came in: the first unhealthy view wins.
    let mut reports: Vec<&NodeReport> = reports.iter().collect();
    reports.sort_by(|a, b| a.node.cmp(&b.node));
    let live =
        |r: &NodeReport| now.as_millis() - r.reported_at.as_millis() < LIVE_FOR.as_millis() as i64;
    let nodes: Vec<Value> = reports
        .iter()
        .map(|r| {
            let mut n = r.report.get("node").cloned().unwrap_or_else(|| json!({}));
            if let Some(o) = n.as_object_mut() {
                o.insert("id".into(), json!(r.node));
                o.insert("role".into(), json!(r.role));
                o.insert("last_heartbeat".into(), json!(r.reported_at.rfc3339()));
                o.insert("live".into(), json!(live(r)));
            }
            n
        })
        .collect();
    let mut providers: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut accounts: BTreeMap<(String, String), Map<String, Value>> = BTreeMap::new();
    for r in reports.iter().copied().filter(|r| live(r)) {
        let Some(ps) = r.report.get("providers").and_then(Value::as_object) else {
            continue;
        };
        for (name, v) in ps {
            let p = providers.entry(name.clone()).or_insert_with(|| {
                let mut m = Map::new();
                m.insert("name".into(), json!(name));
                m.insert("healthy".into(), json!(true));
                m
            });
            health(p, &r.node, v);
            for a in v
                .get("accounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let Some(acct) = a.get("name").and_then(Value::as_str) else {
                    continue;
                };
                let m = accounts
                    .entry((name.clone(), acct.to_owned()))
                    .or_insert_with(|| {
                        let mut m = Map::new();
                        m.insert("name".into(), json!(acct));
                        m.insert("healthy".into(), json!(true));
                        m.insert("state".into(), json!("in_rotation"));
                        m
                    });
                health(m, &r.node, a);
                add(m, "in_flight", a.get("in_flight"));
                add(m, "submits", a.get("submits"));
                for k in ["slots", "weight"] {
                    if let Some(x) = a.get(k) {
                        m.entry(k).or_insert_with(|| x.clone());
                    }
                }
                let failures = m
                    .entry("failures")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .map(std::mem::take)
                    .unwrap_or_default();
                let mut failures = failures;
                for (class, n) in a
                    .get("failures")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    add(&mut failures, class, Some(n));
                }
                m.insert("failures".into(), Value::Object(failures));
                m.entry("nodes")
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .map(|o| o.insert(r.node.clone(), a.clone()));
            }
        }
    }
    let providers: Vec<Value> = providers
        .into_iter()
        .map(|(name, mut p)| {
            let accts: Vec<Value> = accounts
                .iter()
                .filter(|((prov, _), _)| *prov == name)
                .map(|(_, a)| Value::Object(a.clone()))
                .collect();
            if !accts.is_empty() {
                p.insert("accounts".into(), Value::Array(accts));
            }
            Value::Object(p)
        })
        .collect();
    json!({"object": "cluster", "providers": providers, "nodes": nodes})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str, at_ms: i64, account_healthy: bool, submits: i64) -> NodeReport {
        NodeReport {
            node: node.into(),
            role: "all".into(),
            boot: "b".into(),
            reported_at: Timestamp::from_millis(at_ms),
            report: json!({
                "node": {"id": node, "role": "all"},
                "providers": {
                    "sandbox": {"healthy": true},
                    "kling": {
                        "healthy": account_healthy,
                        "accounts": [{
                            "name": "main", "healthy": account_healthy,
                            "state": if account_healthy { "in_rotation" } else { "auth" },
                            "reason": if account_healthy { Value::Null } else { json!("bad key") },
                            "in_flight": 1, "slots": 4, "submits": submits,
                            "failures": {"network": 1}
                        }]
                    }
                }
            }),
        }
    }

    #[test]
    fn one_live_node_that_finds_an_account_unhealthy_makes_it_unhealthy_for_all() {
        let now = Timestamp::from_millis(100_000);
        let merged = merge(
            &[report("a", 99_000, true, 3), report("b", 99_500, false, 2)],
            now,
        );
        let kling = &merged["providers"][0];
        assert_eq!(kling["name"], "kling");
        assert_eq!(kling["healthy"], false);
        let acct = &kling["accounts"][0];
        assert_eq!(acct["healthy"], false);
        assert_eq!(acct["reason"], "bad key");
        assert_eq!(acct["seen_by"], "b");
        assert_eq!(acct["submits"], 5);
        assert_eq!(acct["in_flight"], 2);
        assert_eq!(acct["failures"]["network"], 2);
        assert_eq!(merged["providers"][1]["name"], "sandbox");
        assert_eq!(merged["providers"][1]["healthy"], true);
        // The same reports in any order merge the same.
        assert_eq!(
            merged,
            merge(
                &[report("b", 99_500, false, 2), report("a", 99_000, true, 3)],
                now
            )
        );
    }

    #[test]
    fn a_stale_node_is_listed_and_counts_for_nothing() {
        let now = Timestamp::from_millis(100_000);
        let merged = merge(
            &[
                report("a", 99_000, true, 3),
                report("old", 10_000, false, 50),
            ],
            now,
        );
        assert_eq!(merged["providers"][0]["accounts"][0]["healthy"], true);
        assert_eq!(merged["providers"][0]["accounts"][0]["submits"], 3);
        let nodes = merged["nodes"].as_array().expect("nodes");
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[1]["live"], false);
        assert_eq!(
            nodes[0]["last_heartbeat"],
            Timestamp::from_millis(99_000).rfc3339()
        );
    }
}
