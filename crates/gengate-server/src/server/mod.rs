//! The HTTP front door: accepts connections up to a cap, serves each with
//! hyper (HTTP/1.1 and HTTP/2), and cuts the ones that overstay (slow
//! headers, idle keep-alive, stalled bodies, readers that read nothing).
//! See docs/HTTP.md.

mod body;
mod settings;
mod watchdog;

pub use body::{BodyStalled, ProgressBody, Unread};
pub use settings::{HttpArgs, HttpLimits};

use axum::Router;
use axum::body::Body;
use gengate_core::ids::RequestId;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::Service;
use watchdog::{ConnState, WatchedIo};

/// Over-cap connections being answered `503` at once; past this they are
/// closed without an answer (answering must not become the new flood).
const MAX_REFUSALS: usize = 256;
/// How long a refused connection gets to take its `503`.
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// Serves `router` on `listener` until `stop` turns true, then lets open
/// connections finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's own header timeout also runs while a keep-alive connection
    // waits for its next request, which would make the idle timeout
    // meaningless; the watchdog times headers instead.
    builder.http1().header_read_timeout(None);
    let builder = Arc::new(builder);
    loop {
        let (tcp, _peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: pause, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("gengate_http_connections_refused_total").increment(1);
            if let Ok(permit) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(tcp).await;
                    drop(permit);
                });
            }
            continue;
        };
        let (router, builder, stop) = (router.clone(), builder.clone(), stop.clone());
        tokio::spawn(async move {
            metrics::gauge!("gengate_http_connections_open").increment(1.0);
            connection(tcp, router, &builder, limits, stop).await;
            metrics::gauge!("gengate_http_connections_open").decrement(1.0);
            drop(slot);
        });
    }
    // Wait for the open connections: every slot back.
    let _ = slots.acquire_many(limits.max_connections as u32).await;
}

async fn connection(
    tcp: TcpStream,
    router: Router,
    builder: &auto::Builder<TokioExecutor>,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
) {
    let state = ConnState::new();
    let io = TokioIo::new(WatchedIo::new(tcp, state.clone()));
    let svc_state = state.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let guard = svc_state.begin_request();
        let conn_state = svc_state.clone();
        let http1 = req.version() <= hyper::Version::HTTP_11;
        let (parts, body) = req.into_parts();
        let (body, unread) = ProgressBody::tracked(body, limits.body_timeout);
        let fut = router
            .clone()
            .call(hyper::Request::from_parts(parts, Body::new(body)));
        async move {
            let mut resp = match fut.await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            if http1 && unread.is_some_and(|u| u.is_set()) {
                resp.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
                conn_state.linger_on_close();
            }
            // The request counts as in flight until its body is sent.
            Ok::<_, Infallible>(resp.map(|b| {
                Body::new(Guarded {
                    inner: b,
                    _guard: guard,
                })
            }))
        }
    });
    let conn = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => return,
            cut = state.watch(&limits) => {
                metrics::counter!("gengate_http_connections_cut_total", "reason" => cut.as_str())
                    .increment(1);
                tracing::debug!(reason = cut.as_str(), "connection closed");
                if cut == watchdog::Cut::Idle && !draining {
                    // Nothing in flight: an idle HTTP/1 connection closes at
                    // once, HTTP/2 says GOAWAY first.
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(limits.header_timeout, conn.as_mut()).await;
                }
                // Otherwise mid-request or stuck: nothing to be graceful about.
                return;
            }
            _ = stopped(&mut stop), if !draining => {
                // Finish what is in flight, take nothing more; the watchdog
                // still cuts a client that stalls the drain.
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

/// Resolves once the server is told to stop (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// A response body that holds its request's place on the connection.
struct Guarded {
    inner: Body,
    _guard: watchdog::RequestGuard,
}

impl http_body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The answer to a connection over the cap: `503` in the envelope, then
/// close. The request is drained briefly first so the client reads the
/// answer rather than a reset.
async fn refuse(mut tcp: TcpStream) {
    let id = RequestId::generate();
    let body = serde_json::json!({"error": {
        "code": "service_unavailable",
        "message": "this server is at its connection limit; retry shortly",
        "requestId": id.as_str(),
    }})
    .to_string();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nx-request-id: {}\r\nconnection: close\r\n\r\n",
        body.len(),
        id.as_str()
    );
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        let mut buf = [0u8; 4096];
        // Whatever of the request is already here, so closing does not reset.
        let _ = tokio::time::timeout(Duration::from_millis(50), tcp.read(&mut buf)).await;
        tcp.write_all(head.as_bytes()).await?;
        tcp.write_all(body.as_bytes()).await?;
        tcp.shutdown().await?;
        while tcp.read(&mut buf).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}
