//! The accept loop. Written by hand rather than with `axum::serve` so a handler can close
//! its own connection without answering, which is how the fake simulates a dropped
//! connection and a create whose answer is lost.

use std::sync::Arc;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

/// Lets a handler close the connection it is serving.
#[derive(Clone)]
pub(crate) struct ConnKill(Arc<Notify>);

impl ConnKill {
    pub(crate) fn kill(&self) {
        // notify_one keeps a permit, so the kill holds even if the connection task is not
        // waiting at this instant.
        self.0.notify_one();
    }
}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "fake kling: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let router = router.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let notify = Arc::new(Notify::new());
            let kill = ConnKill(notify.clone());
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(kill.clone());
                let router = router.clone();
                async move { router.oneshot(req.map(axum::body::Body::new)).await }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                res = conn => {
                    if let Err(e) = res {
                        tracing::debug!(error = %e, "fake kling: connection ended with an error");
                    }
                }
                // Dropping `conn` here closes the socket with no answer written.
                _ = notify.notified() => tracing::debug!("fake kling: dropped a connection on purpose"),
                _ = shutdown.changed() => {}
            }
        });
    }
}
