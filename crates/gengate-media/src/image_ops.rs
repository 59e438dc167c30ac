//! Image checks and conversions.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{
    DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, error::LimitErrorKind,
};

use crate::{MediaError, MediaKind, guard::shielded, sniff};

/// Bounds an image must stay within before any pixel is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLimits {
    pub max_width: u32,
    pub max_height: u32,
    /// The most memory a single decode may allocate.
    pub max_alloc_bytes: u64,
}

impl Default for ImageLimits {
    /// 16384×16384 and 512 MiB: well past any camera or reference image, and small enough that a
    /// few concurrent decodes cannot exhaust a server.
    fn default() -> Self {
        ImageLimits {
            max_width: 16_384,
            max_height: 16_384,
            max_alloc_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Dimensions of an image that decoded in full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    pub width: u32,
    pub height: u32,
}

fn format_for(mime: &str) -> Result<ImageFormat, MediaError> {
    match mime {
        "image/jpeg" => Ok(ImageFormat::Jpeg),
        "image/png" => Ok(ImageFormat::Png),
        "image/webp" => Ok(ImageFormat::WebP),
        "image/gif" => Ok(ImageFormat::Gif),
        other => Err(MediaError::UnsupportedMime {
            mime: other.to_owned(),
        }),
    }
}

fn header_type_matches(kind: imagesize::ImageType, format: ImageFormat) -> bool {
    use imagesize::ImageType;
    matches!(
        (kind, format),
        (ImageType::Jpeg, ImageFormat::Jpeg)
            | (ImageType::Png, ImageFormat::Png)
            | (ImageType::Webp, ImageFormat::WebP)
            | (ImageType::Gif, ImageFormat::Gif)
    )
}

/// Reads only the header and refuses dimensions beyond `limits`, so that a decompression bomb
/// (a few KiB claiming gigapixels) costs nothing.
fn check_header(
    bytes: &[u8],
    mime: &str,
    format: ImageFormat,
    limits: &ImageLimits,
) -> Result<(), MediaError> {
    let kind = imagesize::image_type(bytes)
        .map_err(|e| MediaError::decode(mime, format!("unreadable header ({e})")))?;
    if !header_type_matches(kind, format) {
        return Err(MediaError::decode(
            mime,
            format!("the header is that of a {kind:?} image"),
        ));
    }
    let size = imagesize::blob_size(bytes)
        .map_err(|e| MediaError::decode(mime, format!("unreadable header ({e})")))?;
    let (width, height) = (size.width as u64, size.height as u64);
    if width == 0 || height == 0 {
        return Err(MediaError::EmptyImage {
            mime: mime.to_owned(),
            width,
            height,
        });
    }
    if width > u64::from(limits.max_width) || height > u64::from(limits.max_height) {
        return Err(MediaError::ImageTooLarge {
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
        });
    }
    // Decoders hold at least 4 bytes per pixel (RGBA8) for these formats; checking here gives a
    // clear message instead of a limit error from deep inside a decoder.
    let needed_bytes = width.saturating_mul(height).saturating_mul(4);
    if needed_bytes > limits.max_alloc_bytes {
        return Err(MediaError::ImageTooMuchMemory {
            width,
            height,
            needed_bytes,
            max_alloc_bytes: limits.max_alloc_bytes,
        });
    }
    Ok(())
}

/// Decodes the whole image as `format` under `image::Limits`, after the header check.
fn decode_checked(
    bytes: &[u8],
    mime: &str,
    format: ImageFormat,
    limits: &ImageLimits,
) -> Result<DynamicImage, MediaError> {
    check_header(bytes, mime, format, limits)?;
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(MediaError::decode(
            mime,
            "the image data ends without an end-of-image marker",
        ));
    }
    shielded(mime, || {
        let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
        let mut decode_limits = image::Limits::default();
        decode_limits.max_image_width = Some(limits.max_width);
        decode_limits.max_image_height = Some(limits.max_height);
        decode_limits.max_alloc = Some(limits.max_alloc_bytes);
        reader.limits(decode_limits);
        let mut decoder = reader
            .into_decoder()
            .map_err(|e| map_image_error(e, mime, limits))?;
        // `ImageReader::decode` would reserve the output buffer against the limit; going
        // through the decoder (to read the orientation) means doing it here.
        if decoder.total_bytes() > limits.max_alloc_bytes {
            return Err(MediaError::decode(
                mime,
                format!(
                    "decoding needs more than the {} bytes allowed",
                    limits.max_alloc_bytes
                ),
            ));
        }
        // A missing or unreadable EXIF block is no reason to refuse a picture that decodes.
        let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
        let mut image =
            DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(e, mime, limits))?;
        // Phones store portrait photos as landscape pixels plus an EXIF rotation; every viewer
        // shows them upright, so the pixels handed on (and the size reported) must be upright.
        image.apply_orientation(orientation);
        Ok(image)
    })
}

/// Whether an end-of-image marker follows the first scan.
///
/// The JPEG decoder conceals a file cut short (it fills the missing rows with grey, as browsers
/// do), so it cannot be what proves an upload complete. Entropy-coded data never contains
/// `FF D9` (a data `FF` is always followed by `00`, restart markers are `FF D0`..`FF D7`), so
/// its presence after the first SOS means the scans ran to their end. Searching only after SOS
/// skips the EOI of an EXIF thumbnail, which lives in a header segment.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let mut pos = 2; // after SOI
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        while bytes.get(pos) == Some(&0xFF) && bytes.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let (Some(0xFF), Some(&marker)) = (bytes.get(pos), bytes.get(pos + 1)) else {
            return false;
        };
        pos += 2;
        match marker {
            0xDA => break,
            0xD9 => return false, // EOI before any scan
            0x01 | 0xD0..=0xD7 => continue,
            _ => {
                let Some(len) = bytes.get(pos..pos + 2) else {
                    return false;
                };
                pos += usize::from(u16::from_be_bytes([len[0], len[1]]));
            }
        }
    }
    bytes
        .get(pos..)
        .is_some_and(|rest| rest.windows(2).any(|w| w == [0xFF, 0xD9]))
}

fn map_image_error(error: ImageError, mime: &str, limits: &ImageLimits) -> MediaError {
    match error {
        ImageError::Limits(limit) => match limit.kind() {
            // The header check already passed, so a decoder found larger dimensions later in the
            // file (GIF frames, for one) than its header declared.
            LimitErrorKind::DimensionError => MediaError::decode(
                mime,
                format!(
                    "its frames exceed {}x{} though the header does not",
                    limits.max_width, limits.max_height
                ),
            ),
            _ => MediaError::decode(
                mime,
                format!(
                    "decoding needs more than the {} bytes allowed",
                    limits.max_alloc_bytes
                ),
            ),
        },
        other => MediaError::decode(mime, other),
    }
}

/// Checks an image of type `mime` (as [`sniff`](crate::sniff) decided it) and returns its size.
///
/// The header dimensions are checked against `limits` first, so a header claiming e.g.
/// 100000x100000 is refused before anything is decoded. Then the whole file is decoded under
/// `image::Limits`, to prove it really is a complete, valid image of that type: a truncated file,
/// or a PNG handed in as `image/jpeg`, is an error.
///
/// The size reported is the size as displayed: a JPEG whose EXIF orientation turns it a
/// quarter turn reports its width and height swapped from the stored ones.
pub fn inspect_image(
    bytes: &[u8],
    mime: &str,
    limits: &ImageLimits,
) -> Result<ImageInfo, MediaError> {
    let format = format_for(mime)?;
    let image = decode_checked(bytes, mime, format, limits)?;
    Ok(ImageInfo {
        width: image.width(),
        height: image.height(),
    })
}

/// The memory, in bytes, that decoding this image will hold at its peak, read from its header
/// alone (nothing is decoded). Callers that decode concurrently reserve this much from a shared
/// budget first. Errors are those [`inspect_image`] would give for a bad header.
///
/// The figure is the decoder's output buffer (width × height × bytes per pixel of its colour
/// type, so a 16-bit RGBA PNG counts 8 bytes a pixel), twice when the EXIF orientation turns the
/// picture (turning copies it), plus the compressed input's size for the decoder's own state.
pub fn image_decode_cost(
    bytes: &[u8],
    mime: &str,
    limits: &ImageLimits,
) -> Result<u64, MediaError> {
    let format = format_for(mime)?;
    check_header(bytes, mime, format, limits)?;
    shielded(mime, || {
        let reader = ImageReader::with_format(Cursor::new(bytes), format);
        let mut decoder = reader
            .into_decoder()
            .map_err(|e| map_image_error(e, mime, limits))?;
        let pixels = decoder.total_bytes();
        let turns = !matches!(
            decoder.orientation().unwrap_or(Orientation::NoTransforms),
            Orientation::NoTransforms
        );
        Ok(pixels
            .saturating_mul(if turns { 2 } else { 1 })
            .saturating_add(bytes.len() as u64))
    })
}

fn decode_any(bytes: &[u8], limits: &ImageLimits) -> Result<DynamicImage, MediaError> {
    let head = &bytes[..bytes.len().min(crate::SNIFF_LEN)];
    let sniffed = match sniff(head) {
        Some(s) if s.kind == MediaKind::Image => s,
        Some(s) => {
            return Err(MediaError::UnsupportedMime {
                mime: s.mime.to_owned(),
            });
        }
        None => return Err(MediaError::UnknownType),
    };
    let format = format_for(sniffed.mime)?;
    decode_checked(bytes, sniffed.mime, format, limits)
}

/// Decodes any supported image (type sniffed from the bytes) into tightly packed RGB8 rows:
/// `(width, height, pixels)` with `pixels.len() == width * height * 3`, turned upright as its
/// EXIF orientation says. Alpha is dropped; an animated image yields its first frame.
pub fn decode_rgb8(bytes: &[u8], limits: &ImageLimits) -> Result<(u32, u32, Vec<u8>), MediaError> {
    let image = decode_any(bytes, limits)?;
    let rgb = image.into_rgb8();
    let (width, height) = rgb.dimensions();
    Ok((width, height, rgb.into_raw()))
}

/// Decodes any supported image (type sniffed from the bytes) and re-encodes it as PNG, keeping
/// its colour type (alpha included) and turned upright as its EXIF orientation says. Anything
/// else in the original (metadata, a polyglot's payload) does not survive.
pub fn to_png(bytes: &[u8], limits: &ImageLimits) -> Result<Vec<u8>, MediaError> {
    let image = decode_any(bytes, limits)?;
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, ImageFormat::Png)
        .map_err(|e| MediaError::Encode {
            format: "PNG",
            detail: e.to_string(),
        })?;
    Ok(out.into_inner())
}
