//! Who this process is: a node id that survives restarts (`--node-id`, or
//! one generated into the data directory on the first start) and a boot id
//! new at every start. Idempotency holds carry both, so a restarted node
//! knows which holds died with its previous incarnation (issue 10 item 6).

use anyhow::Context;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub node: String,
    pub boot: String,
}

const NODE_ID_FILE: &str = "node-id";

impl NodeIdentity {
    /// `configured` wins; otherwise the id kept in `data_dir`, made on first use.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        let node = match configured.map(str::trim).filter(|s| !s.is_empty()) {
            Some(id) => parse_node_id(id).context("--node-id")?,
            None => load_or_create(data_dir)?,
        };
        Ok(Self {
            node,
            boot: format!("boot_{}", gengate_core::ids::random_token(16)),
        })
    }
}

/// Printable ASCII without spaces, at most 64 bytes: it is stored and logged.
fn parse_node_id(s: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_graphic()),
        "a node id is 1 to 64 printable ASCII characters without spaces, got {s:?}"
    );
    Ok(s.to_owned())
}

fn load_or_create(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => {
            parse_node_id(s.trim()).with_context(|| format!("reading {}", path.display()))
        }
        _ => {
            std::fs::create_dir_all(data_dir)?;
            let id = format!("node_{}", gengate_core::ids::random_token(16));
            // Written whole then renamed: a crash mid-write must not leave half an id.
            let tmp = data_dir.join(format!("{NODE_ID_FILE}.tmp"));
            std::fs::write(&tmp, &id).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
            Ok(id)
        }
    }
}

/// What this node runs, for `/readyz`, `/metrics` and the start log. The
/// runner and the dispatcher register their slots when they start; a slot
/// in use is a job lease (or a delivery lease) this node holds.
#[derive(Default)]
pub struct NodeStatus {
    pub role: &'static str,
    pub serves_api: bool,
    runner: OnceLock<Vec<(String, usize, Arc<Semaphore>)>>,
    dispatcher: OnceLock<(usize, Arc<Semaphore>)>,
}

/// One provider's runner slots on this node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SlotUse {
    pub slots: usize,
    pub leases_held: usize,
}

impl NodeStatus {
    pub fn new(role: &'static str, serves_api: bool) -> Self {
        Self {
            role,
            serves_api,
            ..Default::default()
        }
    }

    pub fn runner_started(&self, slots: Vec<(String, usize, Arc<Semaphore>)>) {
        let _ = self.runner.set(slots);
    }

    pub fn dispatcher_started(&self, concurrency: usize, slots: Arc<Semaphore>) {
        let _ = self.dispatcher.set((concurrency, slots));
    }

    /// Per provider: slots and leases held now. Empty when no runner runs here.
    pub fn runner(&self) -> Vec<(String, SlotUse)> {
        self.runner
            .get()
            .map(|v| {
                v.iter()
                    .map(|(name, total, sem)| {
                        (
                            name.clone(),
                            SlotUse {
                                slots: *total,
                                leases_held: total.saturating_sub(sem.available_permits()),
                            },
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Deliveries this node may send at once and is sending; `None` when no
    /// dispatcher runs here.
    pub fn dispatcher(&self) -> Option<SlotUse> {
        self.dispatcher.get().map(|(total, sem)| SlotUse {
            slots: *total,
            leases_held: total.saturating_sub(sem.available_permits()),
        })
    }

    /// The node's part of `/readyz`.
    pub fn to_json(&self, identity: &NodeIdentity) -> serde_json::Value {
        let runner: serde_json::Map<String, serde_json::Value> = self
            .runner()
            .into_iter()
            .map(|(name, u)| (name, serde_json::json!(u)))
            .collect();
        serde_json::json!({
            "id": identity.node,
            "boot": identity.boot,
            "role": self.role,
            "api": self.serves_api,
            "runner": if self.runner.get().is_some() { serde_json::Value::Object(runner) } else { serde_json::Value::Null },
            "webhook_dispatcher": self.dispatcher(),
        })
    }

    /// Sets the per-node gauges; called when `/metrics` is scraped, so they
    /// are read at that moment rather than kept up to date on every step.
    pub fn export_metrics(&self, identity: &NodeIdentity) {
        metrics::gauge!("gengate_node_info", "node" => identity.node.clone(), "role" => self.role)
            .set(1.0);
        for (provider, u) in self.runner() {
            metrics::gauge!("gengate_node_runner_slots", "provider" => provider.clone())
                .set(u.slots as f64);
            metrics::gauge!("gengate_node_leases_held", "provider" => provider)
                .set(u.leases_held as f64);
        }
        let d = self.dispatcher();
        metrics::gauge!("gengate_node_webhook_dispatcher").set(if d.is_some() { 1.0 } else { 0.0 });
        if let Some(d) = d {
            metrics::gauge!("gengate_node_webhook_deliveries_in_flight").set(d.leases_held as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_id_survives_restarts_and_the_boot_id_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = NodeIdentity::load(None, dir.path()).expect("first start");
        let second = NodeIdentity::load(None, dir.path()).expect("second start");
        assert_eq!(first.node, second.node);
        assert_ne!(first.boot, second.boot);
        let configured = NodeIdentity::load(Some("eu-1"), dir.path()).expect("configured");
        assert_eq!(configured.node, "eu-1");
        assert!(NodeIdentity::load(Some("two words"), dir.path()).is_err());
    }

    #[test]
    fn slots_in_use_are_leases_held() {
        let status = NodeStatus::new("worker", false);
        assert!(status.runner().is_empty());
        assert!(status.dispatcher().is_none());
        let sem = Arc::new(Semaphore::new(2));
        status.runner_started(vec![("sandbox".into(), 2, sem.clone())]);
        let _held = sem.clone().try_acquire_owned().expect("a slot");
        assert_eq!(
            status.runner(),
            vec![(
                "sandbox".to_owned(),
                SlotUse {
                    slots: 2,
                    leases_held: 1
                }
            )]
        );
        status.dispatcher_started(4, Arc::new(Semaphore::new(4)));
        assert_eq!(status.dispatcher().map(|d| d.leases_held), Some(0));
    }
}
