//! `gengate serve`'s configuration: the engine's settings (`EngineArgs`,
//! flattened, so every flag keeps its name) and the HTTP server's own —
//! where it listens, body limits, connection timeouts, the log format.
//! Read once from flags and `GENGATE_*` environment variables, printed
//! redacted at start.

use clap::Args;
use clap::builder::BoolishValueParser;
pub use gengate_engine::config::{
    DatabaseArgs, EngineArgs, ReliabilityArgs, Role, WebhookArgs, redact_url,
};
use std::net::SocketAddr;

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "GENGATE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Switch the public API off (answers 503 public_api_disabled).
    #[arg(long, env = "GENGATE_PUBLIC_API_DISABLED", default_value_t = false, value_parser = BoolishValueParser::new())]
    pub public_api_disabled: bool,
    /// Hard cap on JSON request bodies.
    #[arg(long, env = "GENGATE_MAX_JSON_BYTES", default_value_t = 1024 * 1024)]
    pub max_json_bytes: usize,
    /// Log format: `auto` (text when stderr is a terminal, JSON otherwise),
    /// `text` or `json`.
    #[arg(long, env = "GENGATE_LOG_FORMAT", default_value = "auto",
          value_parser = ["auto", "text", "json"])]
    pub log_format: String,
    /// Connection limits and timeouts of the HTTP server (docs/HTTP.md).
    #[command(flatten)]
    pub http: crate::server::HttpArgs,
}

impl ServeConfig {
    pub fn public_base_url(&self) -> String {
        self.engine
            .public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }

    /// The configuration as printed at start: secrets and credentials in
    /// URLs are masked.
    pub fn redacted(&self) -> String {
        let e = &self.engine;
        let url = redact_url(&e.db.url());
        format!(
            "listen={} public_base_url={} role={:?} database={} data_dir={} catalog={} public_api_disabled={} \
             rate_per_min(create/read/upload)={}/{}/{} rate_limits={} max_json_bytes={} idempotency_hours={}",
            self.listen,
            self.public_base_url(),
            e.role,
            url,
            e.db.data_dir.display(),
            e.catalog
                .as_ref()
                .map_or("built-in".to_owned(), |p| p.display().to_string()),
            self.public_api_disabled,
            e.rate_create_per_min,
            e.rate_read_per_min,
            e.rate_upload_per_min,
            e.redis_url.as_deref().map_or_else(
                || "per-node".to_owned(),
                |u| format!(
                    "redis {} (expected nodes {})",
                    redact_url(u),
                    e.expected_nodes
                )
            ),
            self.max_json_bytes,
            e.idempotency_hours,
        )
    }
}

#[cfg(test)]
mod tests {
    /// Every on/off flag of `serve` (found by walking the command, so a new
    /// flag is covered without editing this test) reads the usual spellings.
    #[test]
    fn every_boolean_flag_reads_the_usual_spellings() {
        use clap::{ArgAction, Args, Command};
        let cmd = super::ServeConfig::augment_args(Command::new("serve"));
        let flags: Vec<_> = cmd
            .get_arguments()
            .filter(|a| matches!(a.get_action(), ArgAction::SetTrue))
            .collect();
        assert!(flags.len() >= 5, "found only {} on/off flags", flags.len());
        for a in flags {
            let id = a.get_id().as_str().to_owned();
            assert!(a.get_env().is_some(), "--{id} has no environment variable");
            // The flag's own value parser, given the value the way its
            // environment variable would give it.
            let long = a.get_long().unwrap_or_default().to_owned();
            let probe = Command::new("probe").arg(a.clone().action(ArgAction::Set).num_args(1));
            let parse = |v: &str| {
                probe
                    .clone()
                    .try_get_matches_from(["probe", &format!("--{long}"), v])
                    .ok()
                    .and_then(|m| m.get_one::<bool>(&id).copied())
            };
            for v in ["1", "true", "TRUE", "yes", "Yes", "on", "ON"] {
                assert_eq!(parse(v), Some(true), "--{id} with {v:?}");
            }
            for v in ["0", "false", "False", "no", "NO", "off", "Off"] {
                assert_eq!(parse(v), Some(false), "--{id} with {v:?}");
            }
            assert_eq!(parse("maybe"), None, "--{id} with \"maybe\"");
        }
    }
}
