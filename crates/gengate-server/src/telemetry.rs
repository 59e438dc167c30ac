//! Logs (text on a terminal, JSON otherwise, each line carrying the request id of the request
//! it belongs to) and Prometheus metrics.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide metrics recorder; installed on first use so several
/// servers in one test process share it.
pub fn prometheus() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0,
                ])
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            // Fails only if another recorder was installed first (a test
            // harness); metrics then go there and /metrics shows ours, empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// `auto` means text for a person (stderr is a terminal) and JSON for a log
/// collector (anything else); `text` and `json` force one.
pub fn resolve_log_format(format: &str) -> &'static str {
    use std::io::IsTerminal;
    match format {
        "text" => "text",
        "json" => "json",
        _ if std::io::stderr().is_terminal() => "text",
        _ => "json",
    }
}

pub fn init_logging(format: &str) {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_env("GENGATE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn"));
    // stderr, so stdout carries only what a person or script reads: the
    // start banner and the commands in it.
    let result = if resolve_log_format(format) == "text" {
        fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(filter)
            .with_target(false)
            .try_init()
    } else {
        fmt()
            .with_writer(std::io::stderr)
            .json()
            .with_env_filter(filter)
            .with_current_span(true)
            .flatten_event(true)
            .try_init()
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}
