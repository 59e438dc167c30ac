//! Test files of every supported type, made in memory (feature `corpus`).
//!
//! Used by this crate's tests and by the server's integration tests, so that no binary fixture
//! has to live in the repository. Each generator states the truth it builds in (dimensions,
//! duration) so a test can check a measurement against it.
//!
//! The audio and video here are containers around silence or placeholder frames: they are valid
//! for every parser and demuxer in this crate, not necessarily playable by a full decoder (the
//! MP4 stub's `avc1` entry has no `avcC`, the WebM frames are not real VP8). The images, WAV,
//! MP3 and ADTS frames are genuinely decodable.
//!
//! These are test helpers: they panic on arguments no test needs (zero-sized images).

use std::f64::consts::PI;
use std::io::{Cursor, Write};

use image::{DynamicImage, ImageFormat, RgbImage};

// ---------------------------------------------------------------------------------------------
// Images

/// A deterministic RGB test pattern: gradients plus a diagonal stripe, so every format's
/// encoder has real content to compress.
fn pattern(width: u32, height: u32) -> DynamicImage {
    let img = RgbImage::from_fn(width, height, |x, y| {
        let r = (x * 255 / width.max(1)) as u8;
        let g = (y * 255 / height.max(1)) as u8;
        let b = if (x + y) % 32 < 16 { 200 } else { 40 };
        image::Rgb([r, g, b])
    });
    DynamicImage::ImageRgb8(img)
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, format)
        .expect("encoding a test pattern in memory cannot fail for non-zero dimensions");
    out.into_inner()
}

/// A `width`×`height` PNG (RGB8).
pub fn png(width: u32, height: u32) -> Vec<u8> {
    encode(&pattern(width, height), ImageFormat::Png)
}

/// A `width`×`height` baseline JPEG.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    encode(&pattern(width, height), ImageFormat::Jpeg)
}

/// A JPEG stored as `width`×`height` pixels with an EXIF Orientation tag (1–8) in an APP1
/// segment, as phone cameras write portrait shots: with 6 or 8 it displays `height`×`width`.
pub fn jpeg_with_orientation(width: u32, height: u32, orientation: u16) -> Vec<u8> {
    let plain = jpeg(width, height);
    // Big-endian TIFF header, one IFD with a single SHORT entry: Orientation (0x0112).
    let mut tiff = b"MM\x00\x2a".to_vec();
    tiff.extend_from_slice(&8u32.to_be_bytes()); // IFD offset
    tiff.extend_from_slice(&1u16.to_be_bytes()); // entries
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend_from_slice(&tiff);
    let len = u16::try_from(app1.len() + 2).expect("short segment");
    let mut out = plain[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    out
}

/// A `width`×`height` lossless WebP.
pub fn webp(width: u32, height: u32) -> Vec<u8> {
    encode(&pattern(width, height), ImageFormat::WebP)
}

/// A `width`×`height` GIF (one frame).
pub fn gif(width: u32, height: u32) -> Vec<u8> {
    encode(&pattern(width, height), ImageFormat::Gif)
}

/// Plain text, as uploaded under the name `photo.png`: it sniffs as nothing.
pub fn text_named_png() -> Vec<u8> {
    b"This is not an image. It is text in a file that someone named photo.png.\n".to_vec()
}

/// A 64×64 PNG cut off halfway through its image data: the header is intact (so the header
/// check passes) but the full decode fails.
pub fn truncated_png() -> Vec<u8> {
    let mut bytes = png(64, 64);
    bytes.truncate(bytes.len() / 2);
    bytes
}

/// Width and height that [`decompression_bomb_png`] claims.
pub const BOMB_SIDE: u32 = 60_000;

/// A PNG of about 1 KiB whose header claims 60000×60000 RGB, i.e. 10.8 GB of pixels.
///
/// Its IDAT is a valid zlib stream holding only the first rows (all zero, which compress about
/// a thousandfold); a decoder that trusted the header would reserve the 10.8 GB before
/// discovering the rest is missing. Kept short on purpose: it is uploaded by integration tests,
/// and the point is that it must be refused from its header alone.
pub fn decompression_bomb_png() -> Vec<u8> {
    let row_bytes = 1 + BOMB_SIDE as usize * 3; // filter byte + RGB
    let rows = vec![0u8; row_bytes * 4];
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&rows).expect("writing to a Vec cannot fail");
    let idat = z.finish().expect("writing to a Vec cannot fail");

    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&BOMB_SIDE.to_be_bytes());
    ihdr.extend_from_slice(&BOMB_SIDE.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit, RGB, deflate, adaptive filter, no interlace

    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"IDAT", &idat);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A complete, valid black RGB8 PNG of `width`×`height`: its rows are all zero, so it
/// compresses about a thousandfold (11000×11000 is ~350 KB on the wire and ~363 MB once
/// decoded). Unlike [`decompression_bomb_png`] it decodes in full, so it is what a decode
/// memory budget must account for.
pub fn black_png(width: u32, height: u32) -> Vec<u8> {
    let row_bytes = 1 + width as usize * 3; // filter byte + RGB
    let row = vec![0u8; row_bytes];
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..height {
        z.write_all(&row).expect("writing to a Vec cannot fail");
    }
    let idat = z.finish().expect("writing to a Vec cannot fail");

    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);

    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(&mut out, b"IDAT", &idat);
    png_chunk(&mut out, b"IEND", &[]);
    out
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let len = u32::try_from(data.len()).expect("test chunks are small");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
}

/// A valid 64×64 PNG with a ZIP archive (one stored file, `payload.txt`) appended after `IEND`.
///
/// Both `unzip` (which reads from the end) and every PNG decoder (which reads from the start and
/// stops at `IEND`) accept it. [`sniff`](crate::sniff) calls it `image/png`, by its first bytes,
/// and it decodes as one; see `sniff` for why that is safe. [`to_png`](crate::to_png) drops the
/// archive.
pub fn png_zip_polyglot() -> Vec<u8> {
    let mut out = png(64, 64);
    let payload = b"a zip payload riding on a png\n";
    let name = b"payload.txt";
    let crc = crc32fast::hash(payload);
    let local_at = u32::try_from(out.len()).expect("test files are small");
    let size = u32::try_from(payload.len()).expect("test files are small");
    let name_len = u16::try_from(name.len()).expect("short name");

    // Local file header, stored (method 0), then the data.
    out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]); // version, flags, method, time, date 1980-01-01
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&name_len.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(payload);

    // Central directory, with offsets from the start of the whole file.
    let central_at = u32::try_from(out.len()).expect("test files are small");
    out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    out.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]); // made by, needed, flags, method, time, date
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&name_len.to_le_bytes());
    out.extend_from_slice(&[0; 12]); // extra and comment lengths, disk, internal and external attributes
    out.extend_from_slice(&local_at.to_le_bytes());
    out.extend_from_slice(name);
    let central_len = u32::try_from(out.len()).expect("test files are small") - central_at;

    // End of central directory.
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]);
    out.extend_from_slice(&central_len.to_le_bytes());
    out.extend_from_slice(&central_at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

// ---------------------------------------------------------------------------------------------
// Audio

/// Number of whole units of `unit_seconds` closest to `seconds`.
fn units(seconds: f64, unit_seconds: f64) -> u64 {
    (seconds / unit_seconds).round().max(0.0) as u64
}

/// A mono 16-bit PCM WAV of `round(seconds × sample_rate)` samples: a quiet 440 Hz tone.
pub fn wav(seconds: f64, sample_rate: u32) -> Vec<u8> {
    let samples = units(seconds, 1.0 / f64::from(sample_rate));
    let data_len = u32::try_from(samples * 2).expect("test WAVs stay under 4 GiB");
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for n in 0..samples {
        let t = n as f64 / f64::from(sample_rate);
        let v = (2000.0 * (2.0 * PI * 440.0 * t).sin()) as i16;
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Samples per MPEG-1 Layer III frame, and the rate [`mp3`] uses.
const MP3_FRAME_SAMPLES: u32 = 1152;
const MP3_RATE: u32 = 48_000;

/// Silent MPEG-1 Layer III frames (128 kbit/s, 48 kHz, mono, 384 bytes each, so 24 ms) behind
/// an ID3v2.3 tag. The frame count is the one closest to `seconds`, so the true duration is
/// within 12 ms of it: `mp3_duration(seconds)` gives it exactly.
pub fn mp3(seconds: f64) -> Vec<u8> {
    let mut out = id3v2_tag("gengate test tone");
    out.extend_from_slice(&mp3_without_id3(seconds));
    out
}

/// The same frames as [`mp3`] with no tag, so the file opens with a bare frame sync.
pub fn mp3_without_id3(seconds: f64) -> Vec<u8> {
    let frames = units(seconds, f64::from(MP3_FRAME_SAMPLES) / f64::from(MP3_RATE));
    // Header: sync, MPEG-1, layer III, no CRC; 128 kbit/s, 48 kHz, no padding; mono.
    // An all-zero side info (main_data_begin 0, part2_3_length 0) is a frame of silence.
    let mut frame = vec![0u8; 384];
    frame[..4].copy_from_slice(&[0xFF, 0xFB, 0x94, 0xC0]);
    let mut out = Vec::with_capacity(frame.len() * frames as usize);
    for _ in 0..frames {
        out.extend_from_slice(&frame);
    }
    out
}

/// The exact duration of [`mp3`]`(seconds)`.
pub fn mp3_duration(seconds: f64) -> f64 {
    let frames = units(seconds, f64::from(MP3_FRAME_SAMPLES) / f64::from(MP3_RATE));
    frames as f64 * f64::from(MP3_FRAME_SAMPLES) / f64::from(MP3_RATE)
}

fn id3v2_tag(title: &str) -> Vec<u8> {
    // One TIT2 frame (ID3v2.3 frame sizes are plain big-endian), ISO-8859-1 text.
    let mut frame = b"TIT2".to_vec();
    let text_len = u32::try_from(title.len() + 1).expect("short title");
    frame.extend_from_slice(&text_len.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0]); // flags, encoding
    frame.extend_from_slice(title.as_bytes());
    let padding = 32;
    let size = frame.len() + padding;
    let mut out = b"ID3\x03\x00\x00".to_vec();
    // The tag size is syncsafe: 7 bits per byte.
    for shift in [21, 14, 7, 0] {
        out.push(((size >> shift) & 0x7F) as u8);
    }
    out.extend_from_slice(&frame);
    out.resize(out.len() + padding, 0);
    out
}

const AAC_FRAME_SAMPLES: u32 = 1024;
const AAC_RATE: u32 = 48_000;

/// AAC-LC in ADTS (48 kHz, mono), every frame a silent single-channel element: 1024 samples
/// (21.3 ms) a frame, the count closest to `seconds`. `adts_duration(seconds)` is exact.
pub fn adts(seconds: f64) -> Vec<u8> {
    let frames = units(seconds, f64::from(AAC_FRAME_SAMPLES) / f64::from(AAC_RATE));
    // raw_data_block: SCE (tag 0, global_gain 0, long window, max_sfb 0, no pulse/TNS/gain
    // control), then END: exactly 32 bits.
    let payload = [0x00, 0x00, 0x00, 0x07];
    let frame_len = 7 + payload.len();
    let header = [
        0xFF,
        0xF1,                                 // MPEG-4, layer 0, no CRC
        (1 << 6) | (3 << 2),                  // AAC LC, 48 kHz, channel config high bit 0
        (1 << 6) | ((frame_len >> 11) as u8), // channel config 1
        ((frame_len >> 3) & 0xFF) as u8,
        (((frame_len & 0x07) << 5) as u8) | 0x1F, // buffer fullness 0x7FF (VBR)
        0xFC,                                     // one raw data block
    ];
    let mut out = Vec::with_capacity(frame_len * frames as usize);
    for _ in 0..frames {
        out.extend_from_slice(&header);
        out.extend_from_slice(&payload);
    }
    out
}

/// The exact duration of [`adts`]`(seconds)`.
pub fn adts_duration(seconds: f64) -> f64 {
    let frames = units(seconds, f64::from(AAC_FRAME_SAMPLES) / f64::from(AAC_RATE));
    frames as f64 * f64::from(AAC_FRAME_SAMPLES) / f64::from(AAC_RATE)
}

/// Opus in Ogg, 48 kHz mono: 20 ms packets of CELT silence (`F8 FF FE`), with the usual 312
/// samples of pre-skip, and a final granule position that trims the stream to exactly
/// `round(seconds × 48000)` samples, so the duration is `seconds` to the sample.
pub fn ogg_opus_or_vorbis(seconds: f64) -> Vec<u8> {
    ogg_opus(seconds)
}

/// See [`ogg_opus_or_vorbis`].
pub fn ogg_opus(seconds: f64) -> Vec<u8> {
    const PRE_SKIP: u64 = 312;
    const PACKET_SAMPLES: u64 = 960;
    const PACKETS_PER_PAGE: u64 = 50;
    let serial = 0x6765_6e67; // "geng"
    let samples = units(seconds, 1.0 / 48_000.0);
    let total = samples + PRE_SKIP;
    let packets = total.div_ceil(PACKET_SAMPLES).max(1);

    let mut head = b"OpusHead".to_vec();
    head.push(1); // version
    head.push(1); // channels
    head.extend_from_slice(&(PRE_SKIP as u16).to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // channel mapping family
    let vendor = b"gengate-media corpus";
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor);
    tags.extend_from_slice(&0u32.to_le_bytes());

    let mut out = Vec::new();
    let mut sequence = 0u32;
    ogg_page(&mut out, 0x02, 0, serial, &mut sequence, &[&head]);
    ogg_page(&mut out, 0x00, 0, serial, &mut sequence, &[&tags]);
    let silence: &[u8] = &[0xF8, 0xFF, 0xFE];
    let mut written = 0u64;
    while written < packets {
        let in_page = PACKETS_PER_PAGE.min(packets - written);
        written += in_page;
        let last = written == packets;
        // Granule positions count decoded samples, pre-skip included; the last page's is cut
        // back to the true end so players drop the padding of the final packet.
        let granule = if last {
            total
        } else {
            written * PACKET_SAMPLES
        };
        let page: Vec<&[u8]> = (0..in_page).map(|_| silence).collect();
        let flags = if last { 0x04 } else { 0x00 };
        ogg_page(&mut out, flags, granule, serial, &mut sequence, &page);
    }
    out
}

fn ogg_page(
    out: &mut Vec<u8>,
    flags: u8,
    granule: u64,
    serial: u32,
    sequence: &mut u32,
    packets: &[&[u8]],
) {
    let mut lacing = Vec::new();
    for p in packets {
        // Each packet is cut into 255-byte lacing values; a final value < 255 ends it.
        lacing.extend(std::iter::repeat_n(255u8, p.len() / 255));
        lacing.push((p.len() % 255) as u8);
    }
    let start = out.len();
    out.extend_from_slice(b"OggS");
    out.push(0);
    out.push(flags);
    out.extend_from_slice(&granule.to_le_bytes());
    out.extend_from_slice(&serial.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]); // CRC, filled in below
    out.push(u8::try_from(lacing.len()).expect("test pages hold few packets"));
    out.extend_from_slice(&lacing);
    for p in packets {
        out.extend_from_slice(p);
    }
    let crc = ogg_crc(&out[start..]);
    out[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
    *sequence += 1;
}

/// Ogg's CRC-32: polynomial 0x04C11DB7, not reflected, zero initial value and no final XOR
/// (unlike the zlib CRC-32 that crc32fast computes).
fn ogg_crc(data: &[u8]) -> u32 {
    let mut crc = 0u32;
    for byte in data {
        crc ^= u32::from(*byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

// ---------------------------------------------------------------------------------------------
// WebM

/// Frames per second of [`webm`]'s single video track.
pub const WEBM_FPS: u32 = 25;

/// A WebM with one 320×240 VP8 video track, a Segment Info Duration of exactly `seconds`, and
/// placeholder frames at 25 fps in one cluster per second.
pub fn webm(seconds: f64) -> Vec<u8> {
    build_webm(seconds, true)
}

/// Like [`webm`], but with no Duration element, as a browser's MediaRecorder writes a live
/// stream; the track's DefaultDuration lets the last frame's end be known. Its duration is
/// `round(seconds × 25) / 25`.
pub fn webm_without_duration(seconds: f64) -> Vec<u8> {
    build_webm(seconds, false)
}

fn ebml_size(len: usize) -> Vec<u8> {
    // Always 8 bytes: simple, and valid for any size.
    let mut out = (len as u64).to_be_bytes();
    out[0] = 0x01;
    out.to_vec()
}

fn el(id: u32, body: &[u8]) -> Vec<u8> {
    let id_bytes = id.to_be_bytes();
    let skip = id_bytes.iter().take_while(|b| **b == 0).count();
    let mut out = id_bytes[skip..].to_vec();
    out.extend_from_slice(&ebml_size(body.len()));
    out.extend_from_slice(body);
    out
}

fn el_uint(id: u32, value: u64) -> Vec<u8> {
    el(id, &value.to_be_bytes())
}

fn build_webm(seconds: f64, with_duration: bool) -> Vec<u8> {
    let frame_ms = 1000 / u64::from(WEBM_FPS);
    let frames = units(seconds, 1.0 / f64::from(WEBM_FPS));

    let header = [
        el_uint(0x4286, 1),  // EBMLVersion
        el_uint(0x42F7, 1),  // EBMLReadVersion
        el_uint(0x42F2, 4),  // EBMLMaxIDLength
        el_uint(0x42F3, 8),  // EBMLMaxSizeLength
        el(0x4282, b"webm"), // DocType
        el_uint(0x4287, 4),  // DocTypeVersion
        el_uint(0x4285, 2),  // DocTypeReadVersion
    ]
    .concat();

    let mut info = [
        el_uint(0x2AD7B1, 1_000_000), // TimestampScale: 1 ms ticks
        el(0x4D80, b"gengate-media corpus"),
        el(0x5741, b"gengate-media corpus"),
    ]
    .concat();
    if with_duration {
        info.extend(el(0x4489, &(seconds * 1000.0).to_be_bytes())); // Duration, in ticks
    }

    let video = [el_uint(0xB0, 320), el_uint(0xBA, 240)].concat();
    let track = [
        el_uint(0xD7, 1),                        // TrackNumber
        el_uint(0x73C5, 1),                      // TrackUID
        el_uint(0x83, 1),                        // TrackType: video
        el(0x86, b"V_VP8"),                      // CodecID
        el_uint(0x23E383, frame_ms * 1_000_000), // DefaultDuration, ns
        el(0xE0, &video),                        // Video
    ]
    .concat();
    let tracks = el(0xAE, &track);

    let mut clusters = Vec::new();
    let per_cluster = u64::from(WEBM_FPS);
    let mut index = 0u64;
    while index < frames {
        let cluster_ms = index * frame_ms;
        let mut body = el_uint(0xE7, cluster_ms); // Timestamp
        for n in index..(index + per_cluster).min(frames) {
            let relative = i16::try_from(n * frame_ms - cluster_ms).expect("clusters span 1 s");
            let mut block = vec![0x81]; // track 1
            block.extend_from_slice(&relative.to_be_bytes());
            block.push(if n == index { 0x80 } else { 0x00 }); // keyframe flag
            // Placeholder payload shaped like a VP8 frame header.
            block.extend_from_slice(&[0x10, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x40, 0x01, 0xF0, 0x00]);
            body.extend(el(0xA3, &block)); // SimpleBlock
        }
        clusters.extend(el(0x1F43_B675, &body));
        index += per_cluster;
    }

    let segment = [el(0x1549_A966, &info), el(0x1654_AE6B, &tracks), clusters].concat();
    [el(0x1A45_DFA3, &header), el(0x1853_8067, &segment)].concat()
}

// ---------------------------------------------------------------------------------------------
// ISO base media (MP4, MOV, M4A)

/// A container-only ISO-BMFF file with known geometry and durations. [`mp4_stub`] and
/// [`mov_stub`] cover the usual cases; set the fields for the rest.
#[derive(Clone, Debug)]
pub struct Mp4Stub {
    pub seconds: f64,
    /// Major brand: `*b"isom"` for MP4, `*b"qt  "` for MOV, `*b"M4A "` for M4A (audio only).
    pub brand: [u8; 4],
    pub width: u16,
    pub height: u16,
    /// Video frames per second (more than 0); the frame count is `round(seconds × fps)`.
    pub fps: u32,
    /// Adds an AAC (`mp4a`) track at 48 kHz. Always on for an `M4A ` brand.
    pub audio: bool,
    /// `moov` before `mdat`; otherwise after it.
    pub faststart: bool,
    /// Samples in `moof` fragments instead of the sample tables, with `mvhd`/`mdhd` durations
    /// of 0 and an `mehd` giving the total, as fragmented (streaming) writers do.
    pub fragmented: bool,
}

const MOVIE_TIMESCALE: u32 = 1000;
const AUDIO_RATE: u32 = 48_000;

impl Mp4Stub {
    pub fn new(seconds: f64, brand: &str) -> Self {
        let mut code = *b"    ";
        for (slot, byte) in code.iter_mut().zip(brand.bytes()) {
            *slot = byte;
        }
        Mp4Stub {
            seconds,
            brand: code,
            width: 640,
            height: 360,
            fps: 25,
            audio: true,
            faststart: true,
            fragmented: false,
        }
    }

    /// 90 kHz, the usual video clock, when it holds a whole number of ticks per frame.
    fn video_timescale(&self) -> u32 {
        if 90_000 % self.fps == 0 {
            90_000
        } else {
            self.fps * 1000
        }
    }

    fn audio_only(&self) -> bool {
        &self.brand == b"M4A "
    }

    /// Video frames the stub holds.
    pub fn video_frames(&self) -> u64 {
        units(self.seconds, 1.0 / f64::from(self.fps))
    }

    /// The video track's exact duration: whole frames.
    pub fn video_seconds(&self) -> f64 {
        self.video_frames() as f64 / f64::from(self.fps)
    }

    /// The audio track's exact duration: `round(seconds × 48000)` samples. (A fragmented stub
    /// declares no `mdhd` duration, so its audio lasts whole 1024-sample frames: up to 21 ms
    /// more.)
    pub fn audio_seconds(&self) -> f64 {
        units(self.seconds, 1.0 / f64::from(AUDIO_RATE)) as f64 / f64::from(AUDIO_RATE)
    }

    /// The movie's duration as `mvhd` (or `mehd`) states it, in milliseconds.
    pub fn movie_seconds(&self) -> f64 {
        units(self.seconds, 1.0 / f64::from(MOVIE_TIMESCALE)) as f64 / f64::from(MOVIE_TIMESCALE)
    }

    pub fn build(&self) -> Vec<u8> {
        let has_video = !self.audio_only();
        let has_audio = self.audio || self.audio_only();
        let video_frames = if has_video { self.video_frames() } else { 0 };
        let video_delta = self.video_timescale() / self.fps;
        let audio_samples = units(self.seconds, 1.0 / f64::from(AUDIO_RATE));
        let audio_frames = if has_audio {
            audio_samples.div_ceil(1024)
        } else {
            0
        };
        const VIDEO_SAMPLE: u32 = 8;
        const AUDIO_SAMPLE: u32 = 4;

        let mut compatible = vec![self.brand];
        if !self.audio_only() && &self.brand != b"qt  " {
            compatible.extend([*b"isom", *b"mp41"]);
        } else if self.audio_only() {
            compatible.extend([*b"mp42", *b"isom"]);
        }
        let mut ftyp_body = self.brand.to_vec();
        ftyp_body.extend_from_slice(&0x200u32.to_be_bytes());
        for b in &compatible {
            ftyp_body.extend_from_slice(b);
        }
        let ftyp = bx(b"ftyp", &ftyp_body);

        // Sample data: video samples, then audio samples, in one mdat.
        let video_bytes = video_frames * u64::from(VIDEO_SAMPLE);
        let audio_bytes = audio_frames * u64::from(AUDIO_SAMPLE);
        let mdat_body = vec![0u8; (video_bytes + audio_bytes) as usize];

        // The stco offsets depend on where mdat lands, which depends on moov's size; moov's
        // size does not depend on the offsets' values, so build it once to measure.
        let build_moov = |mdat_data_at: u64| -> Vec<u8> {
            let mut tracks = Vec::new();
            let mut next_id = 1;
            if has_video {
                tracks.push(self.video_trak(
                    next_id,
                    video_frames,
                    video_delta,
                    VIDEO_SAMPLE,
                    mdat_data_at,
                ));
                next_id += 1;
            }
            if has_audio {
                tracks.push(self.audio_trak(
                    next_id,
                    audio_samples,
                    audio_frames,
                    AUDIO_SAMPLE,
                    mdat_data_at + video_bytes,
                ));
                next_id += 1;
            }
            let movie_ticks = units(self.seconds, 1.0 / f64::from(MOVIE_TIMESCALE));
            let mut body = mvhd(if self.fragmented { 0 } else { movie_ticks }, next_id);
            for t in tracks {
                body.extend(t);
            }
            if self.fragmented {
                let mut mvex = full(b"mehd", 0, &(movie_ticks as u32).to_be_bytes());
                let mut id = 1u32;
                if has_video {
                    mvex.extend(trex(id, video_delta));
                    id += 1;
                }
                if has_audio {
                    mvex.extend(trex(id, 1024));
                }
                body.extend(bx(b"mvex", &mvex));
            }
            bx(b"moov", &body)
        };

        if self.fragmented {
            let moov = build_moov(0);
            let mut out = [ftyp, moov].concat();
            out.extend(self.fragments(
                video_frames,
                video_delta,
                audio_frames,
                has_video,
                has_audio,
            ));
            return out;
        }
        let moov_len = build_moov(0).len() as u64;
        let mdat_header = 8u64;
        if self.faststart {
            let data_at = ftyp.len() as u64 + moov_len + mdat_header;
            let moov = build_moov(data_at);
            [ftyp, moov, bx(b"mdat", &mdat_body)].concat()
        } else {
            let data_at = ftyp.len() as u64 + mdat_header;
            let moov = build_moov(data_at);
            [ftyp, bx(b"mdat", &mdat_body), moov].concat()
        }
    }

    fn video_trak(&self, id: u32, frames: u64, delta: u32, sample: u32, data_at: u64) -> Vec<u8> {
        let fragmented = self.fragmented;
        let duration = if fragmented {
            0
        } else {
            frames * u64::from(delta)
        };
        let movie_duration = if fragmented {
            0
        } else {
            units(self.video_seconds(), 1.0 / f64::from(MOVIE_TIMESCALE))
        };
        let mut entry = vec![0u8; 6];
        entry.extend_from_slice(&1u16.to_be_bytes()); // data reference index
        entry.extend_from_slice(&[0u8; 16]); // pre_defined, reserved
        entry.extend_from_slice(&self.width.to_be_bytes());
        entry.extend_from_slice(&self.height.to_be_bytes());
        entry.extend_from_slice(&0x0048_0000u32.to_be_bytes()); // 72 dpi
        entry.extend_from_slice(&0x0048_0000u32.to_be_bytes());
        entry.extend_from_slice(&0u32.to_be_bytes());
        entry.extend_from_slice(&1u16.to_be_bytes()); // frame count
        entry.extend_from_slice(&[0u8; 32]); // compressor name
        entry.extend_from_slice(&0x0018u16.to_be_bytes()); // depth
        entry.extend_from_slice(&(-1i16).to_be_bytes());
        let stbl = stbl(b"avc1", &entry, frames, delta, sample, data_at, fragmented);
        let minf = [full(b"vmhd", 1, &[0u8; 8]), dinf(), bx(b"stbl", &stbl)].concat();
        let mdia = [
            mdhd(self.video_timescale(), duration),
            hdlr(b"vide", b"VideoHandler"),
            bx(b"minf", &minf),
        ]
        .concat();
        let trak = [
            tkhd(id, movie_duration, self.width, self.height, false),
            bx(b"mdia", &mdia),
        ]
        .concat();
        bx(b"trak", &trak)
    }

    fn audio_trak(&self, id: u32, samples: u64, frames: u64, sample: u32, data_at: u64) -> Vec<u8> {
        let fragmented = self.fragmented;
        let duration = if fragmented { 0 } else { samples };
        let movie_duration = if fragmented {
            0
        } else {
            units(self.audio_seconds(), 1.0 / f64::from(MOVIE_TIMESCALE))
        };
        let mut entry = vec![0u8; 6];
        entry.extend_from_slice(&1u16.to_be_bytes()); // data reference index
        entry.extend_from_slice(&[0u8; 8]); // reserved
        entry.extend_from_slice(&1u16.to_be_bytes()); // channels
        entry.extend_from_slice(&16u16.to_be_bytes()); // sample size
        entry.extend_from_slice(&[0u8; 4]); // pre_defined, reserved
        entry.extend_from_slice(&(AUDIO_RATE << 16).to_be_bytes()); // 16.16 sample rate
        // A real file would carry the decoder configuration in an esds box; with frames that
        // are only placeholders there is nothing to configure.
        let stbl = stbl(b"mp4a", &entry, frames, 1024, sample, data_at, fragmented);
        let minf = [full(b"smhd", 0, &[0u8; 4]), dinf(), bx(b"stbl", &stbl)].concat();
        let mdia = [
            mdhd(AUDIO_RATE, duration),
            hdlr(b"soun", b"SoundHandler"),
            bx(b"minf", &minf),
        ]
        .concat();
        let trak = [tkhd(id, movie_duration, 0, 0, true), bx(b"mdia", &mdia)].concat();
        bx(b"trak", &trak)
    }

    /// One moof+mdat pair per second of video (and the audio of that second).
    fn fragments(
        &self,
        video_frames: u64,
        video_delta: u32,
        audio_frames: u64,
        has_video: bool,
        has_audio: bool,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        let video_per = u64::from(self.fps);
        let audio_per = u64::from(AUDIO_RATE).div_ceil(1024);
        let (mut v, mut a, mut seq) = (0u64, 0u64, 1u32);
        while v < video_frames || a < audio_frames {
            let vn = (video_frames - v).min(video_per);
            let an = (audio_frames - a).min(audio_per);
            // Every traf has the same size, so the moof's size is known before the offsets.
            let trafs = u32::from(has_video) + u32::from(has_audio);
            let moof_len = 8 + 16 + trafs * 52;
            let video_at = (moof_len + 8) as i32;
            let audio_at = video_at + (vn * 8) as i32;
            let mut moof = full(b"mfhd", 0, &seq.to_be_bytes());
            let mut id = 1u32;
            if has_video {
                moof.extend(traf(id, vn as u32, video_delta, 8, video_at));
                id += 1;
            }
            if has_audio {
                moof.extend(traf(id, an as u32, 1024, 4, audio_at));
            }
            debug_assert_eq!(moof.len() + 8, moof_len as usize);
            out.extend(bx(b"moof", &moof));
            out.extend(bx(b"mdat", &vec![0u8; (vn * 8 + an * 4) as usize]));
            v += vn;
            a += an;
            seq += 1;
        }
        out
    }
}

fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = u32::try_from(body.len() + 8)
        .expect("stub boxes are small")
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

fn full(kind: &[u8; 4], flags: u32, body: &[u8]) -> Vec<u8> {
    let mut inner = (flags & 0x00FF_FFFF).to_be_bytes().to_vec(); // version 0
    inner.extend_from_slice(body);
    bx(kind, &inner)
}

const IDENTITY_MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

fn mvhd(duration: u64, next_track_id: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&[0u8; 8]); // creation, modification
    b.extend_from_slice(&MOVIE_TIMESCALE.to_be_bytes());
    b.extend_from_slice(&(duration as u32).to_be_bytes());
    b.extend_from_slice(&0x0001_0000u32.to_be_bytes()); // rate 1.0
    b.extend_from_slice(&0x0100u16.to_be_bytes()); // volume 1.0
    b.extend_from_slice(&[0u8; 10]);
    for m in IDENTITY_MATRIX {
        b.extend_from_slice(&m.to_be_bytes());
    }
    b.extend_from_slice(&[0u8; 24]); // pre_defined
    b.extend_from_slice(&next_track_id.to_be_bytes());
    full(b"mvhd", 0, &b)
}

fn tkhd(id: u32, duration: u64, width: u16, height: u16, audio: bool) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&[0u8; 8]); // creation, modification
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&[0u8; 4]);
    b.extend_from_slice(&(duration as u32).to_be_bytes());
    b.extend_from_slice(&[0u8; 8]);
    b.extend_from_slice(&0u16.to_be_bytes()); // layer
    b.extend_from_slice(&0u16.to_be_bytes()); // alternate group
    b.extend_from_slice(&(if audio { 0x0100u16 } else { 0 }).to_be_bytes()); // volume
    b.extend_from_slice(&[0u8; 2]);
    for m in IDENTITY_MATRIX {
        b.extend_from_slice(&m.to_be_bytes());
    }
    b.extend_from_slice(&(u32::from(width) << 16).to_be_bytes());
    b.extend_from_slice(&(u32::from(height) << 16).to_be_bytes());
    full(b"tkhd", 0x03, &b) // enabled, in movie
}

fn mdhd(timescale: u32, duration: u64) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&[0u8; 8]);
    b.extend_from_slice(&timescale.to_be_bytes());
    b.extend_from_slice(&(duration as u32).to_be_bytes());
    b.extend_from_slice(&0x55C4u16.to_be_bytes()); // language "und"
    b.extend_from_slice(&[0u8; 2]);
    full(b"mdhd", 0, &b)
}

fn hdlr(handler: &[u8; 4], name: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 4];
    b.extend_from_slice(handler);
    b.extend_from_slice(&[0u8; 12]);
    b.extend_from_slice(name);
    b.push(0);
    full(b"hdlr", 0, &b)
}

fn dinf() -> Vec<u8> {
    let url = full(b"url ", 0x01, &[]); // media is in this file
    let mut dref = 1u32.to_be_bytes().to_vec();
    dref.extend(url);
    bx(b"dinf", &full(b"dref", 0, &dref))
}

fn stbl(
    codec: &[u8; 4],
    entry: &[u8],
    samples: u64,
    delta: u32,
    sample_size: u32,
    data_at: u64,
    fragmented: bool,
) -> Vec<u8> {
    let mut stsd = 1u32.to_be_bytes().to_vec();
    stsd.extend(bx(codec, entry));
    let count = if fragmented { 0 } else { samples as u32 };
    let stts = if count > 0 {
        [1u32, count, delta]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<u8>>()
    } else {
        0u32.to_be_bytes().to_vec()
    };
    let stsc = if count > 0 {
        [1u32, 1, count, 1]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<u8>>()
    } else {
        0u32.to_be_bytes().to_vec()
    };
    let stsz = [sample_size, count]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect::<Vec<u8>>();
    let stco = if count > 0 {
        [1u32, data_at as u32]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<u8>>()
    } else {
        0u32.to_be_bytes().to_vec()
    };
    [
        full(b"stsd", 0, &stsd),
        full(b"stts", 0, &stts),
        full(b"stsc", 0, &stsc),
        full(b"stsz", 0, &stsz),
        full(b"stco", 0, &stco),
    ]
    .concat()
}

fn trex(track_id: u32, default_duration: u32) -> Vec<u8> {
    let body: Vec<u8> = [track_id, 1, default_duration, 0, 0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    full(b"trex", 0, &body)
}

fn traf(track_id: u32, samples: u32, duration: u32, size: u32, data_offset: i32) -> Vec<u8> {
    // tfhd: default-sample-duration (0x08), default-sample-size (0x10), and
    // default-base-is-moof (0x020000), so trun's data offset counts from the moof's start.
    let mut tfhd = track_id.to_be_bytes().to_vec();
    tfhd.extend_from_slice(&duration.to_be_bytes());
    tfhd.extend_from_slice(&size.to_be_bytes());
    let tfhd = full(b"tfhd", 0x02_0018, &tfhd);
    let mut trun = samples.to_be_bytes().to_vec();
    trun.extend_from_slice(&data_offset.to_be_bytes());
    let trun = full(b"trun", 0x01, &trun); // data-offset-present
    bx(b"traf", &[tfhd, trun].concat())
}

/// A minimal MP4/MOV/M4A of `seconds` with major brand `brand` (`"isom"`, `"qt  "`,
/// `"M4A "`, …): a 640×360 `avc1` video track at 25 fps plus an `mp4a` track, or for `M4A ` the
/// audio track alone. `moov` precedes `mdat`. See [`Mp4Stub`] for the exact durations.
pub fn mp4_stub(seconds: f64, brand: &str) -> Vec<u8> {
    Mp4Stub::new(seconds, brand).build()
}

/// [`mp4_stub`] with the QuickTime brand `qt  `.
pub fn mov_stub(seconds: f64) -> Vec<u8> {
    mp4_stub(seconds, "qt  ")
}

/// Every corpus file that has a type, with the MIME type [`sniff`](crate::sniff) must give it.
/// Handy for tables of tests.
pub fn all_typed() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        ("png", "image/png", png(32, 24)),
        ("jpeg", "image/jpeg", jpeg(32, 24)),
        ("webp", "image/webp", webp(32, 24)),
        ("gif", "image/gif", gif(32, 24)),
        ("mp4", "video/mp4", mp4_stub(2.0, "isom")),
        ("mov", "video/quicktime", mov_stub(2.0)),
        ("m4a", "audio/mp4", mp4_stub(2.0, "M4A ")),
        ("webm", "video/webm", webm(2.0)),
        ("mp3", "audio/mpeg", mp3(2.0)),
        ("mp3-bare", "audio/mpeg", mp3_without_id3(2.0)),
        ("wav", "audio/wav", wav(2.0, 16_000)),
        ("aac", "audio/aac", adts(2.0)),
        ("ogg", "audio/ogg", ogg_opus(2.0)),
    ]
}
