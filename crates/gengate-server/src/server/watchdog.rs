//! One connection's clock. The socket is wrapped so reads and writes are
//! seen; requests are counted from the moment the service takes one until
//! its response body is dropped. From that the watchdog decides when a
//! connection has overstayed:
//!
//! - **headers**: no request in flight, bytes of a new one have started to
//!   arrive (or the connection has just opened) and the header timeout has
//!   passed without the request reaching the service — a slow-headers
//!   client. (Not applied on HTTP/2, whose connections talk between
//!   requests.)
//! - **idle**: no request in flight and nothing read for the idle timeout.
//! - **write stalled**: the socket has refused our writes for the idle
//!   timeout (a reader that reads nothing); slow readers keep going.
//!
//! A request in flight is never cut by time here: a long poll or a download
//! lasts as long as it makes progress.
//!
//! Closing lingers after an answer given before its request's body was read
//! (a 413 from `Content-Length`, a 401): the socket's write side is shut and
//! what the client still sends is read and dropped until it closes (or
//! [`LINGER`] passes). A close with unread bytes makes the kernel answer
//! with a reset, and a client still writing that body would see "broken
//! pipe" instead of the answer. Other closes do not linger, so a client
//! that keeps an idle connection without reading cannot hold a closing
//! connection (or a graceful stop) open. nginx does the same
//! (`lingering_close`).

use super::settings::HttpLimits;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// How long a closing connection keeps draining what the client sends.
pub const LINGER: std::time::Duration = std::time::Duration::from_secs(5);

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Milliseconds since a process-wide origin, never 0 (0 means "unset").
fn now_ms() -> u64 {
    origin().elapsed().as_millis() as u64 + 1
}

fn at(ms: u64) -> Instant {
    origin() + std::time::Duration::from_millis(ms.saturating_sub(1))
}

/// Why the watchdog ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    Headers,
    Idle,
    WriteStalled,
}

impl Cut {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Headers => "header_timeout",
            Self::Idle => "idle_timeout",
            Self::WriteStalled => "write_stalled",
        }
    }
}

#[derive(Debug)]
pub struct ConnState {
    active: AtomicUsize,
    /// When bytes of a request not yet handed to the service started to arrive.
    head_started: AtomicU64,
    /// When the last request ended (or the connection opened).
    last_done: AtomicU64,
    /// Since when a write has been refused (0: writes are going through).
    write_blocked: AtomicU64,
    h2: AtomicBool,
    first_read: AtomicBool,
    /// An answer went out before its request's body was read to the end.
    linger: AtomicBool,
    changed: Notify,
}

impl ConnState {
    pub fn new() -> Arc<Self> {
        let now = now_ms();
        Arc::new(Self {
            active: AtomicUsize::new(0),
            // The first request's headers are due from the connection's start.
            head_started: AtomicU64::new(now),
            last_done: AtomicU64::new(now),
            write_blocked: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            first_read: AtomicBool::new(true),
            linger: AtomicBool::new(false),
            changed: Notify::new(),
        })
    }

    /// A request reached the service; the guard ends it when dropped (with
    /// its response body, or its future if the client went away first).
    pub fn begin_request(self: &Arc<Self>) -> RequestGuard {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Release);
        self.changed.notify_one();
        RequestGuard(self.clone())
    }

    /// The client may still be sending a body nobody will read: drain it
    /// when the connection closes.
    pub fn linger_on_close(&self) {
        self.linger.store(true, Ordering::Release);
    }

    fn on_read(&self, bytes: &[u8]) {
        if self.first_read.swap(false, Ordering::AcqRel) && bytes.starts_with(b"PRI * HTTP/2.0") {
            self.h2.store(true, Ordering::Release);
        }
        if self.active.load(Ordering::Acquire) == 0
            && self
                .head_started
                .compare_exchange(0, now_ms(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.changed.notify_one();
        }
    }

    fn on_write(&self, blocked: bool) {
        if blocked {
            if self
                .write_blocked
                .compare_exchange(0, now_ms(), Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                self.changed.notify_one();
            }
        } else if self.write_blocked.load(Ordering::Relaxed) != 0 {
            self.write_blocked.store(0, Ordering::Release);
        }
    }

    /// Resolves when the connection should be cut, and why.
    pub async fn watch(&self, limits: &HttpLimits) -> Cut {
        let header = limits.header_timeout.as_millis() as u64;
        let idle = limits.idle_timeout.as_millis() as u64;
        loop {
            let now = now_ms();
            let mut deadline = u64::MAX;
            let blocked = self.write_blocked.load(Ordering::Acquire);
            if blocked != 0 {
                if now >= blocked + idle {
                    return Cut::WriteStalled;
                }
                deadline = deadline.min(blocked + idle);
            }
            if self.active.load(Ordering::Acquire) == 0 {
                let head = self.head_started.load(Ordering::Acquire);
                if head != 0 && !self.h2.load(Ordering::Acquire) {
                    if now >= head + header {
                        return Cut::Headers;
                    }
                    deadline = deadline.min(head + header);
                } else {
                    let since = self.last_done.load(Ordering::Acquire).max(head);
                    if now >= since + idle {
                        return Cut::Idle;
                    }
                    deadline = deadline.min(since + idle);
                }
            }
            if deadline == u64::MAX {
                self.changed.notified().await;
            } else {
                tokio::select! {
                    _ = tokio::time::sleep_until(at(deadline)) => {}
                    _ = self.changed.notified() => {}
                }
            }
        }
    }
}

/// One request in flight on its connection.
pub struct RequestGuard(Arc<ConnState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let s = &self.0;
        s.last_done.store(now_ms(), Ordering::Release);
        // Bytes read from here on belong to the next request.
        s.head_started.store(0, Ordering::Release);
        s.active.fetch_sub(1, Ordering::AcqRel);
        s.changed.notify_one();
    }
}

/// The socket, watched.
pub struct WatchedIo<T> {
    inner: T,
    state: Arc<ConnState>,
    /// Set once the write side is shut: the end of the lingering close.
    linger: Option<Pin<Box<Sleep>>>,
}

impl<T> WatchedIo<T> {
    pub fn new(inner: T, state: Arc<ConnState>) -> Self {
        Self {
            inner,
            state,
            linger: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.on_read(&buf.filled()[before..]);
        }
        r
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.state.on_write(r.is_pending());
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.state.on_write(r.is_pending());
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let linger = match &mut this.linger {
            Some(l) => l,
            None => {
                std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
                if !this.state.linger.load(Ordering::Acquire) {
                    return Poll::Ready(Ok(()));
                }
                this.linger.insert(Box::pin(tokio::time::sleep(LINGER)))
            }
        };
        // Straight from the socket: these bytes are not a next request.
        let mut scratch = [0u8; 8 * 1024];
        loop {
            if linger.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => continue,
                // The client closed (or reset): nothing left to protect.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
