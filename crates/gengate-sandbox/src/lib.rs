//! Offline renderer for gengate's built-in `sandbox` provider.
//!
//! [`render`] turns a [`RenderSpec`] into a real, playable H.264 MP4 so the whole
//! product can be exercised end to end without a vendor account: the file has
//! exactly `fps × duration_seconds` frames, the requested shape, the prompt
//! drawn into the picture, a frame counter and timecode, an Opus sound track
//! only when asked for, hard cuts between three shots when `multi_shots` is
//! set, and slow motion over one reference image or a move from the first to
//! the second when two are given. The MP4 is fast-start (`moov` before
//! `mdat`) so a browser can stream it while it downloads.
//!
//! ```no_run
//! use gengate_sandbox::{RenderSpec, render};
//!
//! let spec = RenderSpec {
//!     width: 1280,
//!     height: 720,
//!     fps: 24,
//!     duration_seconds: 5,
//!     sound: true,
//!     multi_shots: false,
//!     prompt: "a paper boat in the rain".to_owned(),
//!     references: Vec::new(),
//! };
//! let video = render(&spec)?;
//! std::fs::write("sandbox.mp4", &video.mp4)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`render`] is CPU-bound and takes from a fraction of a second (720p,
//! synthetic picture) to several seconds (1080p over reference photos): call
//! it from a blocking thread (`tokio::task::spawn_blocking`), not an async
//! task. It draws frames on one helper thread and encodes the sound track on
//! another while the calling thread encodes video, so on two cores drawing and
//! encoding overlap.
//!
//! The picture is deliberately simple (flat fields, gradients, moving shapes,
//! bitmap text) because the product renders 1080p 15-second clips on a
//! 2-core machine and its tests render many variants: flat content is what
//! lets the encoder run at a fraction of real time. Video is H.264
//! Constrained Baseline at a constant QP of 26 (rate control off: the fastest
//! mode, sharp text, about 0.4 Mbit/s for synthetic 1080p and 3-5 Mbit/s for a
//! moving photo), BT.709 signalled, an IDR frame every two seconds and at
//! every cut. Sound is 48 kHz mono Opus in 20 ms packets.
//!
//! # Cargo features
//!
//! * `h264` (on by default): the H.264 encoder ([OpenH264], compiled from the
//!   bundled C++ source by the `openh264` crate), the MP4 muxer (`muxide`)
//!   and the Opus encoder (`opus-rs`). **An H.264 encoder built from source
//!   carries no patent licence**: Cisco's royalty coverage applies only to
//!   the binaries Cisco itself distributes. Whoever ships a binary built with
//!   this feature is responsible for that decision. Without the feature,
//!   [`render`] returns [`RenderError::EncoderUnavailable`], while
//!   [`render_frame`] (poster images, previews) keeps working because it
//!   needs no codec.
//!
//! Building with `h264` needs a C++ compiler. Having `nasm` on the `PATH`
//! (Debian package `nasm`) lets OpenH264 use its assembly kernels, which
//! roughly doubles encoding speed; without `nasm` the build still succeeds.
//!
//! [OpenH264]: https://github.com/cisco/openh264

#[cfg(feature = "h264")]
mod audio;
#[cfg(feature = "h264")]
mod encode;
mod font;
mod picture;
mod reference;
mod scene;

use thiserror::Error;

/// The widest side a rendered video may have (OpenH264's own limit is 3840×2160).
pub const MAX_SIDE: u32 = 3840;
/// The shorter side's limit, matching OpenH264's 3840×2160 / 2160×3840 cap.
pub const MAX_SHORT_SIDE: u32 = 2160;
/// Smallest side accepted: one 16-pixel macroblock.
pub const MIN_SIDE: u32 = 16;
/// Accepted frame rates.
pub const FPS_RANGE: std::ops::RangeInclusive<u32> = 1..=60;
/// Accepted durations. The product itself asks for 3..=15 seconds; the wider
/// range only bounds how much work one call can demand.
pub const DURATION_RANGE: std::ops::RangeInclusive<u32> = 1..=60;
/// At most this many reference images.
pub const MAX_REFERENCES: usize = 2;
/// A reference larger than this is refused rather than converted, so one
/// request cannot make the renderer allocate without bound.
pub const MAX_REFERENCE_PIXELS: u64 = 64 * 1024 * 1024;

/// What to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderSpec {
    /// Frame width in pixels; even, between [`MIN_SIDE`] and [`MAX_SIDE`].
    pub width: u32,
    /// Frame height in pixels; even, between [`MIN_SIDE`] and [`MAX_SIDE`].
    pub height: u32,
    /// Frames per second (the product uses 24).
    pub fps: u32,
    /// Length in whole seconds; the video has exactly `fps * duration_seconds` frames.
    pub duration_seconds: u32,
    /// Add an Opus sound track of the same length as the video.
    pub sound: bool,
    /// Three shots with visibly different palettes and compositions, cut hard.
    pub multi_shots: bool,
    /// Drawn into the picture; characters the built-in font lacks become `?`.
    pub prompt: String,
    /// 0, 1 or 2 images: one gets a slow pan/zoom, two get a move from the first to the second.
    pub references: Vec<RgbImage>,
}

impl RenderSpec {
    /// Number of video frames the rendered file will hold.
    #[must_use]
    pub fn frame_count(&self) -> u64 {
        u64::from(self.fps) * u64::from(self.duration_seconds)
    }

    /// Checks everything [`render`] would refuse, without rendering.
    ///
    /// # Errors
    ///
    /// [`RenderError::InvalidSpec`] naming the first problem found.
    pub fn validate(&self) -> Result<(), RenderError> {
        let invalid = |msg: String| Err(RenderError::InvalidSpec(msg));
        for (name, side) in [("width", self.width), ("height", self.height)] {
            if !(MIN_SIDE..=MAX_SIDE).contains(&side) {
                return invalid(format!("{name} {side} is outside {MIN_SIDE}..={MAX_SIDE}"));
            }
            // 4:2:0 chroma needs whole 2×2 blocks.
            if side % 2 != 0 {
                return invalid(format!("{name} {side} is odd; it must be even"));
            }
        }
        if self.width.min(self.height) > MAX_SHORT_SIDE {
            return invalid(format!(
                "{}x{} is larger than {MAX_SIDE}x{MAX_SHORT_SIDE}",
                self.width, self.height
            ));
        }
        if !FPS_RANGE.contains(&self.fps) {
            return invalid(format!(
                "fps {} is outside {}..={}",
                self.fps,
                FPS_RANGE.start(),
                FPS_RANGE.end()
            ));
        }
        if !DURATION_RANGE.contains(&self.duration_seconds) {
            return invalid(format!(
                "duration {} s is outside {}..={}",
                self.duration_seconds,
                DURATION_RANGE.start(),
                DURATION_RANGE.end()
            ));
        }
        // The muxer derives a sample's duration from the next timestamp, so a
        // lone frame would have no duration of its own.
        if self.frame_count() < 2 {
            return invalid("fps * duration must be at least 2 frames".to_owned());
        }
        if self.references.len() > MAX_REFERENCES {
            return invalid(format!(
                "{} reference images given; at most {MAX_REFERENCES} are supported",
                self.references.len()
            ));
        }
        for (i, image) in self.references.iter().enumerate() {
            image
                .check()
                .map_err(|msg| RenderError::InvalidSpec(format!("reference image {i}: {msg}")))?;
        }
        Ok(())
    }
}

/// An 8-bit RGB image, row-major, 3 bytes per pixel, no padding.
#[derive(Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// `width * height * 3` bytes.
    pub pixels: Vec<u8>,
}

impl std::fmt::Debug for RgbImage {
    // Printing megabytes of pixels in a test failure helps nobody.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RgbImage")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("pixels", &format_args!("[{} bytes]", self.pixels.len()))
            .finish()
    }
}

impl RgbImage {
    fn check(&self) -> Result<(), String> {
        if self.width == 0 || self.height == 0 {
            return Err(format!("{}x{} has no pixels", self.width, self.height));
        }
        let count = u64::from(self.width) * u64::from(self.height);
        if count > MAX_REFERENCE_PIXELS {
            return Err(format!(
                "{}x{} is more than {MAX_REFERENCE_PIXELS} pixels",
                self.width, self.height
            ));
        }
        let expected = count * 3;
        if self.pixels.len() as u64 != expected {
            return Err(format!(
                "{}x{} RGB needs {expected} bytes, got {}",
                self.width,
                self.height,
                self.pixels.len()
            ));
        }
        Ok(())
    }
}

/// A finished video.
#[derive(Clone, PartialEq)]
pub struct Rendered {
    /// The MP4 file (H.264 video, optional Opus audio, `moov` before `mdat`).
    pub mp4: Vec<u8>,
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Number of video frames.
    pub frames: u64,
    /// Length of the video track in seconds.
    pub duration_seconds: f64,
    /// Whether the file has a sound track.
    pub has_audio: bool,
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rendered")
            .field("mp4", &format_args!("[{} bytes]", self.mp4.len()))
            .field("width", &self.width)
            .field("height", &self.height)
            .field("frames", &self.frames)
            .field("duration_seconds", &self.duration_seconds)
            .field("has_audio", &self.has_audio)
            .finish()
    }
}

/// Why a render failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The spec asks for something the renderer does not do.
    #[error("invalid render spec: {0}")]
    InvalidSpec(String),
    /// The crate was built without the `h264` feature.
    #[error("the H.264 encoder is not compiled in (build gengate-sandbox with the `h264` feature)")]
    EncoderUnavailable,
    /// OpenH264 refused a frame or its settings.
    #[error("H.264 encoder failed: {0}")]
    VideoEncoder(String),
    /// The Opus encoder refused a packet.
    #[error("Opus encoder failed: {0}")]
    AudioEncoder(String),
    /// The MP4 muxer refused a sample or could not finish the file.
    #[error("MP4 muxer failed: {0}")]
    Mux(String),
}

/// Renders the whole video described by `spec`.
///
/// # Errors
///
/// [`RenderError::InvalidSpec`] for a spec outside the documented limits,
/// [`RenderError::EncoderUnavailable`] without the `h264` feature, and the
/// encoder/muxer variants if a codec library refuses its input.
pub fn render(spec: &RenderSpec) -> Result<Rendered, RenderError> {
    spec.validate()?;
    #[cfg(feature = "h264")]
    {
        encode::render(spec)
    }
    #[cfg(not(feature = "h264"))]
    {
        Err(RenderError::EncoderUnavailable)
    }
}

/// Renders a single frame of the video as RGB, e.g. for a poster image.
///
/// The frame is the same picture [`render`] feeds the encoder (before
/// compression). Works with or without the `h264` feature.
///
/// # Errors
///
/// [`RenderError::InvalidSpec`] for an invalid spec or a `frame_index` at or
/// past [`RenderSpec::frame_count`].
pub fn render_frame(spec: &RenderSpec, frame_index: u64) -> Result<RgbImage, RenderError> {
    spec.validate()?;
    let frames = spec.frame_count();
    if frame_index >= frames {
        return Err(RenderError::InvalidSpec(format!(
            "frame {frame_index} is past the last frame ({})",
            frames - 1
        )));
    }
    let mut scene = scene::Scene::new(spec);
    let mut picture = picture::Picture::new(spec.width, spec.height);
    scene.draw(frame_index, &mut picture);
    Ok(picture.to_rgb())
}
