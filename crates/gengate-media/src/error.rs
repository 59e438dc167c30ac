/// Why a file was refused. Every message says what was found, so the server can pass it to the
/// client as the reason for `validation_failed`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The first bytes match none of the supported types.
    #[error("the file's bytes do not match any supported image, video or audio type")]
    UnknownType,

    /// The caller asked for an operation on a type this crate does not handle that way.
    #[error("media type {mime} is not supported here")]
    UnsupportedMime { mime: String },

    /// The header claims dimensions beyond the limits; nothing was decoded.
    #[error("image is {width}x{height}, larger than {max_width}x{max_height}")]
    ImageTooLarge {
        width: u64,
        height: u64,
        max_width: u32,
        max_height: u32,
    },

    /// The dimensions are within bounds, but decoding would need more memory than allowed.
    #[error(
        "image is {width}x{height} and needs about {needed_bytes} bytes to decode, more than the {max_alloc_bytes} allowed"
    )]
    ImageTooMuchMemory {
        width: u64,
        height: u64,
        needed_bytes: u64,
        max_alloc_bytes: u64,
    },

    /// A header claims zero pixels.
    #[error("image header of the {mime} file says it is {width}x{height}, which has no pixels")]
    EmptyImage {
        mime: String,
        width: u64,
        height: u64,
    },

    /// The bytes are not a complete, valid file of the given type.
    #[error("file is truncated or does not decode as {mime}: {detail}")]
    DoesNotDecode { mime: String, detail: String },

    /// The container parsed, but holds no duration that can be trusted.
    #[error("no readable duration in the {mime} file: {detail}")]
    NoDuration { mime: String, detail: String },

    /// The container holds no track of the kind its type promises.
    #[error("the {mime} file has no {wanted} track")]
    MissingTrack { mime: String, wanted: &'static str },

    /// Re-encoding a decoded image failed.
    #[error("could not encode the image as {format}: {detail}")]
    Encode {
        format: &'static str,
        detail: String,
    },
}

impl MediaError {
    pub(crate) fn decode(mime: &str, detail: impl std::fmt::Display) -> Self {
        MediaError::DoesNotDecode {
            mime: mime.to_owned(),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn no_duration(mime: &str, detail: impl std::fmt::Display) -> Self {
        MediaError::NoDuration {
            mime: mime.to_owned(),
            detail: detail.to_string(),
        }
    }
}
