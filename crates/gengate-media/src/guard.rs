//! A last line of defence around third-party parsers.
//!
//! The decoders this crate leans on (image, symphonia, matroska-demuxer) are written to return
//! errors, and this crate's tests feed them truncated and garbage input of every format. But a
//! parser bug that panics on one crafted upload must not take a request handler down with it, so
//! each call into them runs under `catch_unwind` and a panic becomes an ordinary
//! [`MediaError::DoesNotDecode`].

use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::MediaError;

/// The detail of the error a caught panic becomes. Public (hidden) so the crate's hostile-input
/// tests can tell a parser panic, which they must never see, from an ordinary refusal.
#[doc(hidden)]
pub const PANIC_DETAIL: &str = "the parser rejected the file abruptly";

pub(crate) fn shielded<T>(
    mime: &str,
    f: impl FnOnce() -> Result<T, MediaError>,
) -> Result<T, MediaError> {
    // The closure only reads the caller's bytes and builds owned values, so no broken invariant
    // can leak out of an unwound call.
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(_) => Err(MediaError::decode(mime, PANIC_DETAIL)),
    }
}
