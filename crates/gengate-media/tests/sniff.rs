//! `sniff` decides every supported type from the bytes alone, and nothing else.

use gengate_media::corpus::{self, Mp4Stub};
use gengate_media::{MediaKind, SNIFF_LEN, SUPPORTED_MIME_TYPES, sniff};

fn head(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(SNIFF_LEN)]
}

fn mime(bytes: &[u8]) -> Option<&'static str> {
    sniff(head(bytes)).map(|s| s.mime)
}

#[test]
fn every_corpus_type() {
    for (name, expected, bytes) in corpus::all_typed() {
        let sniffed = sniff(head(&bytes)).unwrap_or_else(|| panic!("{name} sniffed as nothing"));
        assert_eq!(sniffed.mime, expected, "{name}");
        let kind = SUPPORTED_MIME_TYPES
            .iter()
            .find(|(m, _)| *m == expected)
            .map(|(_, k)| *k);
        assert_eq!(Some(sniffed.kind), kind, "{name}");
        // Handing over the whole file instead of the head changes nothing.
        assert_eq!(sniff(&bytes), Some(sniffed), "{name}, whole file");
    }
}

#[test]
fn kinds() {
    assert_eq!(
        sniff(&corpus::png(4, 4)).map(|s| s.kind),
        Some(MediaKind::Image)
    );
    assert_eq!(
        sniff(&corpus::webm(1.0)).map(|s| s.kind),
        Some(MediaKind::Video)
    );
    assert_eq!(
        sniff(&corpus::mov_stub(1.0)).map(|s| s.kind),
        Some(MediaKind::Video)
    );
    assert_eq!(
        sniff(&corpus::mp4_stub(1.0, "M4A ")).map(|s| s.kind),
        Some(MediaKind::Audio)
    );
    assert_eq!(
        sniff(&corpus::adts(1.0)).map(|s| s.kind),
        Some(MediaKind::Audio)
    );
}

#[test]
fn text_named_png_is_nothing() {
    assert_eq!(mime(&corpus::text_named_png()), None);
    assert_eq!(mime(b""), None);
    assert_eq!(mime(b"<!DOCTYPE html><html><body>hi</body></html>"), None);
    assert_eq!(mime(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), None);
    assert_eq!(mime(b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00"), None);
    assert_eq!(mime(b"BM\x36\x00\x00\x00\x00\x00\x00\x00\x36\x00"), None); // BMP
    assert_eq!(mime(b"PK\x03\x04\x14\x00\x00\x00\x00\x00"), None); // ZIP
}

#[test]
fn png_declared_as_jpeg_is_still_png() {
    // There is no declared type to pass: the bytes alone decide.
    assert_eq!(mime(&corpus::png(32, 32)), Some("image/png"));
}

#[test]
fn hostile_images_sniff_by_magic() {
    // Sniffing only names the type; proving the file whole is inspect_image's job.
    assert_eq!(mime(&corpus::truncated_png()), Some("image/png"));
    assert_eq!(mime(&corpus::decompression_bomb_png()), Some("image/png"));
    // The polyglot is a PNG by its first bytes (and it decodes as one); the ZIP is inert.
    assert_eq!(mime(&corpus::png_zip_polyglot()), Some("image/png"));
}

#[test]
fn magic_alone_is_not_enough_where_it_is_short() {
    // PNG needs its full 8-byte signature.
    assert_eq!(mime(b"\x89PNG\r\n\x00\x00rest"), None);
    // GIF needs its version.
    assert_eq!(mime(b"GIF80a......"), None);
    // RIFF must say WEBP or WAVE; AVI is not supported.
    assert_eq!(mime(b"RIFF\x10\x00\x00\x00AVI LIST\x00\x00\x00\x00"), None);
    assert_eq!(mime(b"RIFF\x10\x00\x00\x00WEBPJUNK\x00\x00\x00\x00"), None);
}

fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
    let size = 16 + 4 * compatible.len() as u32;
    let mut out = size.to_be_bytes().to_vec();
    out.extend_from_slice(b"ftyp");
    out.extend_from_slice(major);
    out.extend_from_slice(&0u32.to_be_bytes());
    for c in compatible {
        out.extend_from_slice(*c);
    }
    out.extend_from_slice(&8u32.to_be_bytes());
    out.extend_from_slice(b"free");
    out
}

#[test]
fn iso_brands() {
    assert_eq!(mime(&ftyp(b"isom", &[b"isom", b"avc1"])), Some("video/mp4"));
    assert_eq!(mime(&ftyp(b"mp42", &[b"mp42", b"isom"])), Some("video/mp4"));
    assert_eq!(mime(&ftyp(b"qt  ", &[b"qt  "])), Some("video/quicktime"));
    assert_eq!(mime(&ftyp(b"M4A ", &[b"M4A ", b"mp42"])), Some("audio/mp4"));
    // An unknown major brand is decided by the compatible brands, in order.
    assert_eq!(mime(&ftyp(b"abcd", &[b"isom"])), Some("video/mp4"));
    assert_eq!(
        mime(&ftyp(b"abcd", &[b"qt  ", b"isom"])),
        Some("video/quicktime")
    );
    assert_eq!(mime(&ftyp(b"abcd", &[b"wxyz"])), None);
    // HEIF and AVIF stills and sequences are ISO files but not video.
    assert_eq!(mime(&ftyp(b"heic", &[b"mif1", b"heic"])), None);
    assert_eq!(mime(&ftyp(b"avif", &[b"avif", b"mif1", b"miaf"])), None);
    assert_eq!(mime(&ftyp(b"msf1", &[b"iso8", b"msf1"])), None);
    // An ftyp whose size is impossible.
    let mut broken = ftyp(b"isom", &[]);
    broken[..4].copy_from_slice(&7u32.to_be_bytes());
    assert_eq!(mime(&broken), None);
    // QuickTime from before ftyp.
    let mut classic = 24u32.to_be_bytes().to_vec();
    classic.extend_from_slice(b"moov");
    classic.extend_from_slice(&[0u8; 16]);
    assert_eq!(mime(&classic), Some("video/quicktime"));
    // Every stub brand.
    let mut stub = Mp4Stub::new(1.0, "mp42");
    stub.faststart = false;
    assert_eq!(mime(&stub.build()), Some("video/mp4"));
}

#[test]
fn ebml_doc_types() {
    assert_eq!(mime(&corpus::webm(1.0)), Some("video/webm"));
    // Matroska is not WebM and is not accepted.
    let mut head = vec![0x1A, 0x45, 0xDF, 0xA3, 0x8B, 0x42, 0x82, 0x88];
    head.extend_from_slice(b"matroska");
    assert_eq!(mime(&head), None);
    let mut webm_head = vec![0x1A, 0x45, 0xDF, 0xA3, 0x87, 0x42, 0x82, 0x84];
    webm_head.extend_from_slice(b"webm");
    assert_eq!(mime(&webm_head), Some("video/webm"));
    // A bare EBML magic.
    assert_eq!(mime(&[0x1A, 0x45, 0xDF, 0xA3]), None);
}

#[test]
fn ogg_codecs() {
    assert_eq!(mime(&corpus::ogg_opus(1.0)), Some("audio/ogg"));
    // Ogg Theora (video) is not audio/ogg.
    let mut theora = corpus::ogg_opus(1.0);
    let at = theora
        .windows(8)
        .position(|w| w == b"OpusHead")
        .expect("head present");
    theora[at..at + 7].copy_from_slice(b"\x80theora");
    assert_eq!(mime(&theora), None);
    // A page that is not the beginning of a stream.
    let mut middle = corpus::ogg_opus(1.0);
    middle[5] = 0;
    assert_eq!(mime(&middle), None);
}

#[test]
fn id3_then_frames() {
    assert_eq!(mime(&corpus::mp3(1.0)), Some("audio/mpeg"));
    // ID3 in front of ADTS is AAC.
    let mut tagged_aac = corpus::mp3(1.0);
    let tag_len = tagged_aac.len() - corpus::mp3_without_id3(1.0).len();
    tagged_aac.truncate(tag_len);
    tagged_aac.extend_from_slice(&corpus::adts(1.0));
    assert_eq!(mime(&tagged_aac), Some("audio/aac"));
    // A tag bigger than the head (cover art): nothing else is visible, MP3 is assumed.
    let mut big = b"ID3\x03\x00\x00\x00\x01\x00\x00".to_vec(); // 16384-byte tag
    big.resize(SNIFF_LEN, 0x41);
    assert_eq!(mime(&big), Some("audio/mpeg"));
    // A tag with a broken (non-syncsafe) size is nothing.
    assert_eq!(mime(b"ID3\x03\x00\x00\x80\x00\x00\x00"), None);
    // A tag followed by text is nothing.
    let mut text = b"ID3\x03\x00\x00\x00\x00\x00\x02\x00\x00".to_vec();
    text.extend_from_slice(b"hello, world");
    assert_eq!(mime(&text), None);
}

#[test]
fn bare_frame_sync_needs_a_second_frame() {
    let mp3 = corpus::mp3_without_id3(1.0);
    assert_eq!(mime(&mp3), Some("audio/mpeg"));
    // One valid header followed by garbage where the next frame should start.
    let mut fake = mp3[..384].to_vec();
    fake.extend_from_slice(&[0x12; 600]);
    assert_eq!(mime(&fake), None);
    let mut fake_aac = corpus::adts(1.0)[..11].to_vec();
    fake_aac.extend_from_slice(&[0x34; 64]);
    assert_eq!(mime(&fake_aac), None);
    // A single frame (the whole file) is accepted: nothing contradicts it.
    assert_eq!(mime(&mp3[..384]), Some("audio/mpeg"));
    // Random data that merely starts with a sync pattern.
    assert_eq!(mime(&[0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00]), None);
    assert_eq!(mime(&[0xFF, 0xE0, 0x00, 0x00]), None);
}

#[test]
fn garbage_is_nothing() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut accepted = 0;
    for len in [1usize, 2, 3, 4, 7, 8, 12, 16, 100, 1000, 4096] {
        for _ in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            if sniff(&bytes).is_some() {
                accepted += 1;
            }
        }
    }
    // Random bytes hit a 2-byte JPEG/frame-sync magic now and then (1 in 65536 per try); none
    // should get through in 2200 tries with this seed.
    assert_eq!(accepted, 0);
}
