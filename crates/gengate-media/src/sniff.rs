//! Type detection from a file's first bytes.

use crate::{MediaKind, ebml};

/// How many leading bytes [`sniff`] wants to see. Fewer is fine when the file is smaller.
pub const SNIFF_LEN: usize = 4096;

/// Every MIME type [`sniff`] can return, with its kind. Nothing outside this list is ever
/// returned: a file of any other type (BMP, HEIC, Matroska, FLAC, ZIP, …) sniffs as `None`.
pub const SUPPORTED_MIME_TYPES: &[(&str, MediaKind)] = &[
    ("image/jpeg", MediaKind::Image),
    ("image/png", MediaKind::Image),
    ("image/webp", MediaKind::Image),
    ("image/gif", MediaKind::Image),
    ("video/mp4", MediaKind::Video),
    ("video/quicktime", MediaKind::Video),
    ("video/webm", MediaKind::Video),
    ("audio/mpeg", MediaKind::Audio),
    ("audio/mp4", MediaKind::Audio),
    ("audio/wav", MediaKind::Audio),
    ("audio/aac", MediaKind::Audio),
    ("audio/ogg", MediaKind::Audio),
];

/// What the bytes say the file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sniffed {
    /// One of [`SUPPORTED_MIME_TYPES`].
    pub mime: &'static str,
    pub kind: MediaKind,
}

const fn found(mime: &'static str, kind: MediaKind) -> Option<Sniffed> {
    Some(Sniffed { mime, kind })
}

/// Decides the type from the first bytes (pass at least the first [`SNIFF_LEN`] bytes, or all of
/// the file if it is smaller). The name and the declared type of an upload play no part.
///
/// Only the start of the file counts, as a browser or an OS would see it: a PNG with a ZIP
/// archive appended (a polyglot) is `image/png`. That is safe for gengate, because the file is
/// then only ever decoded as a PNG and served back as `image/png`, whose decoders stop at `IEND`;
/// the appended bytes are inert. A caller that wants them gone can re-encode with
/// [`to_png`](crate::to_png).
///
/// Audio made of bare frames (MP3 without an ID3 tag, AAC in ADTS) has only a weak 12-bit sync
/// word, so when the head holds the second frame too its header must also be valid; a random
/// binary that happens to start with `FF F_` is then not taken for audio.
pub fn sniff(head: &[u8]) -> Option<Sniffed> {
    use MediaKind::{Audio, Image, Video};

    const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if infer::image::is_png(head) && head.starts_with(PNG_SIGNATURE) {
        return found("image/png", Image);
    }
    if infer::image::is_jpeg(head) {
        return found("image/jpeg", Image);
    }
    if infer::image::is_gif(head) && (head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a")) {
        return found("image/gif", Image);
    }
    if head.starts_with(b"RIFF") && head.len() >= 16 {
        if infer::image::is_webp(head) && matches!(&head[12..16], b"VP8 " | b"VP8L" | b"VP8X") {
            return found("image/webp", Image);
        }
        if infer::audio::is_wav(head) {
            return found("audio/wav", Audio);
        }
        return None;
    }
    if let Some(found) = sniff_isobmff(head) {
        return Some(found);
    }
    if head.starts_with(&ebml::EBML_HEADER_ID.to_be_bytes()) {
        return match ebml::doc_type(head).as_deref() {
            Some("webm") => found("video/webm", Video),
            _ => None,
        };
    }
    if infer::audio::is_ogg(head) {
        return sniff_ogg(head);
    }
    if head.starts_with(b"ID3") {
        return sniff_after_id3(head);
    }
    sniff_audio_frames(head, 0, true)
}

/// ISO base media files (MP4, MOV, M4A) are told apart by the brands in their `ftyp` box.
fn sniff_isobmff(head: &[u8]) -> Option<Sniffed> {
    use MediaKind::{Audio, Video};

    let box_type = head.get(4..8)?;
    let size = u32::from_be_bytes(head.get(0..4)?.try_into().ok()?) as usize;
    if box_type != b"ftyp" {
        // QuickTime files from before `ftyp` existed open straight with one of these atoms.
        let classic = matches!(
            box_type,
            b"moov" | b"mdat" | b"wide" | b"free" | b"skip" | b"pnot"
        );
        return (classic && size >= 8 && head.len() >= 16).then_some(Sniffed {
            mime: "video/quicktime",
            kind: Video,
        });
    }
    if !(16..=4096).contains(&size) || !size.is_multiple_of(4) {
        return None;
    }
    let major = head.get(8..12)?;
    // Compatible brands follow the minor version; read those the head holds.
    let end = size.min(head.len());
    let compatible: Vec<&[u8]> = head.get(16..end)?.chunks_exact(4).collect();
    let all = || std::iter::once(major).chain(compatible.iter().copied());

    // HEIF/AVIF images and their sequences reuse ISO-BMFF, but are not video for us.
    if all().any(is_image_brand) {
        return None;
    }
    let classify = |brand: &[u8]| -> Option<Sniffed> {
        if brand == b"qt  " {
            return found("video/quicktime", Video);
        }
        if is_audio_brand(brand) {
            return found("audio/mp4", Audio);
        }
        if is_video_brand(brand) {
            return found("video/mp4", Video);
        }
        None
    };
    // The major brand says what the file is; compatible brands only decide for a major brand
    // that is unknown to us, in the order the writer listed them.
    classify(major).or_else(|| compatible.iter().find_map(|b| classify(b)))
}

fn is_image_brand(brand: &[u8]) -> bool {
    matches!(
        brand,
        b"mif1"
            | b"msf1"
            | b"heic"
            | b"heix"
            | b"hevc"
            | b"hevx"
            | b"heim"
            | b"heis"
            | b"avif"
            | b"avis"
            | b"avio"
            | b"crx "
            | b"jpx "
            | b"jp2 "
    )
}

fn is_audio_brand(brand: &[u8]) -> bool {
    matches!(brand, b"M4A " | b"M4B " | b"M4P " | b"F4A " | b"F4B ")
}

fn is_video_brand(brand: &[u8]) -> bool {
    matches!(
        brand,
        b"isom"
            | b"iso2"
            | b"iso3"
            | b"iso4"
            | b"iso5"
            | b"iso6"
            | b"iso7"
            | b"iso8"
            | b"iso9"
            | b"mp41"
            | b"mp42"
            | b"mp71"
            | b"avc1"
            | b"hvc1"
            | b"av01"
            | b"M4V "
            | b"M4VH"
            | b"M4VP"
            | b"dash"
            | b"msnv"
            | b"mmp4"
            | b"f4v "
            | b"XAVC"
            | b"MSNV"
            | b"NDAS"
            | b"NDSC"
            | b"NDSH"
            | b"NDSM"
            | b"NDSP"
            | b"NDSS"
            | b"NDXC"
            | b"NDXH"
            | b"NDXM"
            | b"NDXP"
            | b"NDXS"
    )
}

/// An Ogg file counts as audio/ogg when its first logical stream is a codec we can demux.
fn sniff_ogg(head: &[u8]) -> Option<Sniffed> {
    // Page header: "OggS", version 0, header type with the beginning-of-stream flag.
    if head.get(4) != Some(&0) || head.get(5).is_none_or(|t| t & 0x02 == 0) {
        return None;
    }
    let segments = usize::from(*head.get(26)?);
    let payload = head.get(27 + segments..)?;
    let known = payload.starts_with(b"OpusHead")
        || payload.starts_with(b"\x01vorbis")
        || payload.starts_with(b"\x7fFLAC");
    known.then_some(Sniffed {
        mime: "audio/ogg",
        kind: MediaKind::Audio,
    })
}

/// ID3v2 tags prefix both MP3 and ADTS AAC, so look past them at the first frame.
fn sniff_after_id3(head: &[u8]) -> Option<Sniffed> {
    let mut pos = 0usize;
    // Files sometimes carry more than one tag back to back; a few are plenty.
    for _ in 0..4 {
        let Some(len) = id3v2_len(head, pos) else {
            break;
        };
        pos = pos.checked_add(len)?;
        if pos >= head.len() {
            // The tag (cover art, typically) outlasts the head: nothing of the audio is visible.
            // MPEG audio is by far the most common content behind an ID3 tag, and
            // `probe_duration` still has to parse the real frames, so a wrong guess fails there.
            return found("audio/mpeg", MediaKind::Audio);
        }
    }
    if pos == 0 {
        return None;
    }
    // Some writers pad after the tag without counting the padding in the tag size.
    while head.get(pos) == Some(&0) {
        pos += 1;
    }
    if pos >= head.len() {
        return found("audio/mpeg", MediaKind::Audio);
    }
    sniff_audio_frames(head, pos, false)
}

/// Length of the ID3v2 tag at `pos`, header and footer included.
fn id3v2_len(head: &[u8], pos: usize) -> Option<usize> {
    let h = head.get(pos..pos + 10)?;
    if &h[0..3] != b"ID3" || !(2..=4).contains(&h[3]) || h[4] == 0xFF {
        return None;
    }
    // Sizes are "syncsafe": 7 bits per byte, the top bit always clear.
    if h[6..10].iter().any(|b| b & 0x80 != 0) {
        return None;
    }
    let size = h[6..10]
        .iter()
        .fold(0usize, |acc, b| (acc << 7) | usize::from(*b));
    let footer = if h[3] == 4 && h[5] & 0x10 != 0 { 10 } else { 0 };
    Some(10 + size + footer)
}

/// A bare MPEG audio or ADTS frame at `pos`. With `confirm`, a second frame must follow when the
/// head is long enough to show it.
fn sniff_audio_frames(head: &[u8], pos: usize, confirm: bool) -> Option<Sniffed> {
    let (mime, len) = if let Some(len) = adts_frame_len(head, pos) {
        ("audio/aac", len)
    } else if let Some(len) = mpeg_frame_len(head, pos) {
        ("audio/mpeg", len)
    } else {
        return None;
    };
    if confirm {
        let next = pos + len;
        if next + 4 <= head.len() {
            let next_len = if mime == "audio/aac" {
                adts_frame_len(head, next)
            } else {
                mpeg_frame_len(head, next)
            };
            next_len?;
        }
    }
    found(mime, MediaKind::Audio)
}

/// The length of the ADTS frame whose header starts at `pos`, if that header is valid.
pub(crate) fn adts_frame_len(data: &[u8], pos: usize) -> Option<usize> {
    let h = data.get(pos..pos + 7)?;
    // 12-bit sync, then layer bits that must be 00 (where MPEG audio has its layer).
    if h[0] != 0xFF || h[1] & 0xF6 != 0xF0 {
        return None;
    }
    let sampling_index = (h[2] >> 2) & 0x0F;
    if sampling_index > 12 {
        return None;
    }
    let protection_absent = h[1] & 0x01 == 1;
    let header_len = if protection_absent { 7 } else { 9 };
    let frame_len =
        (usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | (usize::from(h[5]) >> 5);
    (frame_len > header_len).then_some(frame_len)
}

/// The length of the MPEG audio (layer I/II/III) frame whose header starts at `pos`.
pub(crate) fn mpeg_frame_len(data: &[u8], pos: usize) -> Option<usize> {
    let h = data.get(pos..pos + 4)?;
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 0x03; // 0 = 2.5, 1 = reserved, 2 = MPEG-2, 3 = MPEG-1
    let layer = (h[1] >> 1) & 0x03; // 1 = III, 2 = II, 3 = I, 0 = reserved
    let bitrate_index = usize::from(h[2] >> 4);
    let rate_index = usize::from((h[2] >> 2) & 0x03);
    let padding = usize::from((h[2] >> 1) & 0x01);
    if version == 1 || layer == 0 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        // Free-format streams (bitrate index 0) have no computable frame length; they are too
        // rare to be worth a weaker check.
        return None;
    }
    const V1_L1: [usize; 15] = [
        0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
    ];
    const V1_L2: [usize; 15] = [
        0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
    ];
    const V1_L3: [usize; 15] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ];
    const V2_L1: [usize; 15] = [
        0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
    ];
    const V2_L23: [usize; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let mpeg1 = version == 3;
    let kbps = match (mpeg1, layer) {
        (true, 3) => V1_L1[bitrate_index],
        (true, 2) => V1_L2[bitrate_index],
        (true, _) => V1_L3[bitrate_index],
        (false, 3) => V2_L1[bitrate_index],
        (false, _) => V2_L23[bitrate_index],
    };
    let base_rate = [44_100, 48_000, 32_000][rate_index];
    let sample_rate = match version {
        3 => base_rate,
        2 => base_rate / 2,
        _ => base_rate / 4,
    };
    let bitrate = kbps * 1000;
    let len = match layer {
        3 => (12 * bitrate / sample_rate + padding) * 4,
        2 => 144 * bitrate / sample_rate + padding,
        _ if mpeg1 => 144 * bitrate / sample_rate + padding,
        _ => 72 * bitrate / sample_rate + padding,
    };
    (len > 4).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpeg_frame_lengths() {
        // MPEG-1 layer III, 128 kbit/s, 44.1 kHz, no padding: 417 bytes.
        assert_eq!(mpeg_frame_len(&[0xFF, 0xFB, 0x90, 0x00], 0), Some(417));
        // Same at 48 kHz: 384 bytes.
        assert_eq!(mpeg_frame_len(&[0xFF, 0xFB, 0x94, 0x00], 0), Some(384));
        // Reserved version.
        assert_eq!(mpeg_frame_len(&[0xFF, 0xEB, 0x94, 0x00], 0), None);
        // Bad bitrate index.
        assert_eq!(mpeg_frame_len(&[0xFF, 0xFB, 0xF4, 0x00], 0), None);
    }

    #[test]
    fn adts_is_not_mpeg() {
        let adts = [0xFF, 0xF1, 0x4C, 0x40, 0x01, 0x7F, 0xFC];
        assert!(adts_frame_len(&adts, 0).is_some());
        assert!(mpeg_frame_len(&adts, 0).is_none());
    }

    #[test]
    fn supported_list_is_consistent() {
        for (mime, kind) in SUPPORTED_MIME_TYPES {
            assert!(mime.starts_with(kind.as_str()), "{mime} vs {kind}");
        }
    }
}
