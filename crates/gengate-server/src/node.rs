//! Who this process is: a node id that survives restarts (`--node-id`, or
//! one generated into the data directory on the first start) and a boot id
//! new at every start. Idempotency holds carry both, so a restarted node
//! knows which holds died with its previous incarnation (issue 10 item 6).

use anyhow::Context;
use std::path::Path;

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
}
