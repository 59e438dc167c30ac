//! Decides what an uploaded file really is, and measures it.
//!
//! Everything here works on bytes already in memory: no files, no network. Every function is
//! written for hostile input: a file that lies about itself gets a [`MediaError`], never a panic,
//! and never an allocation sized by what the file merely claims.
//!
//! * [`sniff`] decides the type from the first bytes, never from a name or a declared type.
//! * [`inspect_image`] checks an image's header dimensions against [`ImageLimits`] *before*
//!   decoding, then proves the whole file decodes.
//! * [`probe_duration`] measures video and audio.
//! * [`inspect_mp4`] reads an ISO-BMFF (MP4/MOV) container in detail.
//! * [`decode_rgb8`] and [`to_png`] turn any supported image into pixels or a PNG.
//! * [`corpus`] (feature `corpus`) builds test files of every supported type in memory. Other
//!   crates' tests get it with
//!   `gengate-media = { path = "../gengate-media", features = ["corpus"] }` under
//!   `[dev-dependencies]`.
//!
//! Third-party parsers run under `catch_unwind` as a last line of defence, so this crate must be
//! built with `panic = "unwind"` (the default) for that defence to hold.

mod audio;
#[cfg(feature = "corpus")]
pub mod corpus;
mod ebml;
mod error;
mod guard;
mod image_ops;
mod isobmff;
mod sniff;
mod webm;

pub use error::MediaError;
#[doc(hidden)]
pub use guard::PANIC_DETAIL;
pub use image_ops::{
    ImageInfo, ImageLimits, decode_rgb8, image_decode_cost, inspect_image, to_png,
};
pub use isobmff::{Mp4Info, inspect_mp4};
pub use sniff::{SNIFF_LEN, SUPPORTED_MIME_TYPES, Sniffed, sniff};

/// The broad kind of a media file, as the Files API's `kind` field names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Image,
    Video,
    Audio,
}

impl MediaKind {
    /// The lowercase name used by the Files API (`image`, `video`, `audio`).
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
            MediaKind::Audio => "audio",
        }
    }
}

impl std::fmt::Display for MediaKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Duration in seconds of a video (`video/mp4`, `video/quicktime`, `video/webm`) or audio
/// (`audio/mpeg`, `audio/mp4`, `audio/wav`, `audio/x-wav`, `audio/aac`, `audio/ogg`) file.
///
/// `mime` is the type [`sniff`] decided, not the one the client declared. The bytes are parsed
/// as that type only; a file that is not one gets an error. The result is finite and positive:
/// a file whose duration cannot be read, or is zero, is an error.
///
/// How each format is measured, and why that is the truth rather than an estimate:
/// * MP4/MOV/M4A: the movie header's duration (which already reflects edit lists); for a
///   fragmented file without one, the fragment header's duration, else the sum of the sample
///   durations of every fragment.
/// * WebM: the Segment Info `Duration`; without one (as live recorders write it), the end time of
///   the last block.
/// * MP3, AAC (ADTS), WAV, Ogg: every packet is demuxed and the packets' durations summed, so a
///   VBR file or a truncated data chunk is measured as it is, not as its header guesses.
pub fn probe_duration(bytes: &[u8], mime: &str) -> Result<f64, MediaError> {
    let seconds = match mime {
        "video/mp4" | "video/quicktime" => isobmff::duration(bytes, mime, MediaKind::Video)?,
        "audio/mp4" | "audio/x-m4a" | "audio/m4a" => {
            isobmff::duration(bytes, mime, MediaKind::Audio)?
        }
        "video/webm" => webm::duration(bytes)?,
        "audio/mpeg" | "audio/mp3" | "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/aac"
        | "audio/ogg" => audio::duration(bytes, mime)?,
        other => {
            return Err(MediaError::UnsupportedMime {
                mime: other.to_owned(),
            });
        }
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(MediaError::NoDuration {
            mime: mime.to_owned(),
            detail: format!("the measured duration is {seconds} seconds"),
        });
    }
    Ok(seconds)
}
