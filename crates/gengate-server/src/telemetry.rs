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
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = EnvFilter::try_from_env("GENGATE_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,hyper=warn"));
    // stderr, so stdout carries only what a person or script reads: the
    // start banner and the commands in it.
    let json = resolve_log_format(format) == "json";
    // A second init (tests) keeps the first subscriber.
    let _ = subscriber(json, filter, std::io::stderr).try_init();
}

type BoxedSubscriber = Box<dyn tracing::Subscriber + Send + Sync>;

fn subscriber<W>(json: bool, filter: tracing_subscriber::EnvFilter, writer: W) -> BoxedSubscriber
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    use tracing_subscriber::fmt;
    if json {
        // No spans are made (see `RequestFields`), so none are printed.
        let inner = fmt::format()
            .json()
            .with_current_span(false)
            .with_span_list(false)
            .flatten_event(true);
        Box::new(
            fmt()
                .with_writer(writer)
                .json()
                .with_env_filter(filter)
                .event_format(RequestFields { inner, json: true })
                .finish(),
        )
    } else {
        Box::new(
            fmt()
                .with_writer(writer)
                .with_env_filter(filter)
                .event_format(RequestFields {
                    inner: fmt::format().with_target(false),
                    json: false,
                })
                .finish(),
        )
    }
}

/// Adds the request a line was written for (`request_id`, `method`,
/// `route`, from `http::context`) to every log line written while it runs.
/// A tracing span per request did the same, but its fields were formatted
/// when the span was made — on every request, logged or not; this costs
/// nothing until a line is written.
struct RequestFields<F> {
    inner: F,
    json: bool,
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for RequestFields<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let extra = crate::http::context::with_current_request(|r| {
            let (id, method, route) = (r.id.as_str(), r.method.as_str(), &*r.route);
            if self.json {
                let q = |v: &str| serde_json::to_string(v).unwrap_or_default();
                format!(
                    r#","request_id":{},"method":{},"route":{}"#,
                    q(id),
                    q(method),
                    q(route)
                )
            } else {
                format!(" request_id={id} method={method} route={route}")
            }
        });
        let Some(extra) = extra else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner.format_event(
            ctx,
            tracing_subscriber::fmt::format::Writer::new(&mut line),
            event,
        )?;
        // The line ends "}\n" (JSON) or "\n" (text): the request goes just before.
        let end = line.trim_end_matches('\n').len();
        let at = if self.json && line[..end].ends_with('}') {
            end - 1
        } else {
            end
        };
        line.insert_str(at, &extra);
        std::fmt::Write::write_str(&mut writer, &line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::context::{RequestInfo, in_request};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(json: bool) -> Vec<String> {
        let lines = Lines::default();
        let out = lines.clone();
        let sub = subscriber(
            json,
            tracing_subscriber::EnvFilter::new("info"),
            move || out.clone(),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        tracing::subscriber::with_default(sub, || {
            tracing::info!(n = 1, "outside");
            let info = RequestInfo {
                id: gengate_core::ids::RequestId::generate(),
                method: axum::http::Method::POST,
                route: Arc::from("/api/v1/generations/{id}"),
            };
            rt.block_on(in_request(info, async {
                tracing::warn!(n = 2, "inside \"quoted\"");
            }));
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn json_lines_carry_the_request_they_were_written_for() {
        let lines = logged(true);
        assert_eq!(lines.len(), 2, "{lines:?}");
        let outside: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(outside["n"], 1);
        assert!(outside.get("request_id").is_none(), "{outside}");
        let inside: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(inside["n"], 2);
        assert_eq!(inside["message"], "inside \"quoted\"");
        assert!(
            inside["request_id"].as_str().unwrap().starts_with("req_"),
            "{inside}"
        );
        assert_eq!(inside["method"], "POST");
        assert_eq!(inside["route"], "/api/v1/generations/{id}");
    }

    #[test]
    fn text_lines_carry_the_request_they_were_written_for() {
        let lines = logged(false);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(!lines[0].contains("request_id"), "{}", lines[0]);
        assert!(lines[1].contains("n=2"), "{}", lines[1]);
        assert!(
            lines[1].ends_with(" method=POST route=/api/v1/generations/{id}"),
            "{}",
            lines[1]
        );
        assert!(lines[1].contains(" request_id=req_"), "{}", lines[1]);
    }
}
