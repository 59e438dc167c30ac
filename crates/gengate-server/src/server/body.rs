//! Request bodies that must keep arriving: a read that waits longer than
//! the body timeout for its next frame fails with [`BodyStalled`], which the
//! HTTP layer answers `408 request_timeout`. The clock runs only while the
//! handler is waiting for data, so a handler that is busy (or a body nobody
//! reads) is never timed out here.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::time::Sleep;

/// The client stopped sending its request body.
#[derive(Debug, thiserror::Error)]
#[error("the request body made no progress for {0:?}")]
pub struct BodyStalled(pub Duration);

pub struct ProgressBody<B> {
    inner: B,
    timeout: Duration,
    /// Armed while a read waits; disarmed by every frame.
    sleep: Option<Pin<Box<Sleep>>>,
    /// Set while the body has not been read to its end (see [`Unread`]).
    unread: Option<Unread>,
}

/// Whether a request's body is still partly unread when its answer goes
/// out. hyper then closes the connection after the answer (it will not read
/// an unknown amount to reuse it), so the answer must say `Connection:
/// close`, or a client may send its next request into a closing socket.
#[derive(Clone, Debug, Default)]
pub struct Unread(Arc<AtomicBool>);

impl Unread {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl<B: Body> ProgressBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            sleep: None,
            unread: None,
        }
    }

    /// Like `new`, and reports whether the body was read to its end.
    pub fn tracked(inner: B, timeout: Duration) -> (Self, Option<Unread>) {
        let unread = (!inner.is_end_stream()).then(|| Unread(Arc::new(AtomicBool::new(true))));
        let body = Self {
            unread: unread.clone(),
            ..Self::new(inner, timeout)
        };
        (body, unread)
    }
}

impl<B> Body for ProgressBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.sleep = None;
            if let Some(u) = &this.unread
                && (frame.is_none() || this.inner.is_end_stream())
            {
                u.0.store(false, Ordering::Release);
            }
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        let timeout = this.timeout;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(sleep.as_mut().poll(cx));
        this.sleep = None;
        Poll::Ready(Some(Err(Box::new(BodyStalled(timeout)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that yields one frame and then never another.
    struct OneThenNothing(bool);

    impl Body for OneThenNothing {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            if std::mem::replace(&mut self.0, true) {
                Poll::Pending
            } else {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"123456789")))))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_fails_after_the_timeout_and_not_before() {
        let (mut b, unread) = ProgressBody::tracked(OneThenNothing(false), Duration::from_secs(30));
        let unread = unread.expect("a body is coming");
        let first = b.frame().await.expect("a frame").expect("data");
        assert_eq!(first.into_data().expect("data").len(), 9);
        let started = tokio::time::Instant::now();
        let err = b.frame().await.expect("an answer").expect_err("stalled");
        assert!(err.is::<BodyStalled>(), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
        assert!(unread.is_set(), "never read to its end");
    }

    #[tokio::test(start_paused = true)]
    async fn a_complete_body_reads_through() {
        let full = http_body_util::Full::new(Bytes::from_static(b"hello"));
        let (b, unread) = ProgressBody::tracked(full, Duration::from_millis(1));
        let unread = unread.expect("a body is coming");
        assert!(unread.is_set());
        let got = b.collect().await.expect("collect").to_bytes();
        assert_eq!(got.as_ref(), b"hello");
        assert!(!unread.is_set(), "read to its end");
    }
}
