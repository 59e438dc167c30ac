//! Fuzz-style: every public function, fed every corpus file cut at many lengths and with bytes
//! overwritten, returns (an error, usually) and never panics or hangs.
//!
//! The crate runs third-party parsers under `catch_unwind`, turning a panic into an error whose
//! detail is `PANIC_DETAIL`. A panic hook installed here records where every panic came from:
//! one raised in this crate's own code fails the test outright; one raised inside a dependency
//! (symphonia has arithmetic-overflow checks that fire on crafted headers in debug builds) must
//! have come back as that error, and is listed in the test's output.

#[path = "support/panics.rs"]
mod panics;
use panics::{install_panic_recorder, is_dependency, take_panics};

use std::collections::BTreeMap;
use std::panic;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use gengate_media::corpus::{self, Mp4Stub};
use gengate_media::{
    ImageLimits, MediaError, PANIC_DETAIL, SNIFF_LEN, decode_rgb8, inspect_image, inspect_mp4,
    probe_duration, sniff, to_png,
};

const IMAGE_MIMES: &[&str] = &["image/png", "image/jpeg", "image/webp", "image/gif"];
const AV_MIMES: &[&str] = &[
    "video/mp4",
    "video/quicktime",
    "video/webm",
    "audio/mpeg",
    "audio/mp4",
    "audio/wav",
    "audio/aac",
    "audio/ogg",
];

fn corpus_files() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = corpus::all_typed()
        .into_iter()
        .map(|(name, _, bytes)| (name.to_owned(), bytes))
        .collect();
    let mut fragmented = Mp4Stub::new(2.0, "iso5");
    fragmented.fragmented = true;
    let mut moov_last = Mp4Stub::new(2.0, "isom");
    moov_last.faststart = false;
    files.extend([
        ("bomb".to_owned(), corpus::decompression_bomb_png()),
        ("polyglot".to_owned(), corpus::png_zip_polyglot()),
        ("truncated png".to_owned(), corpus::truncated_png()),
        ("text".to_owned(), corpus::text_named_png()),
        ("webm live".to_owned(), corpus::webm_without_duration(2.0)),
        ("fragmented mp4".to_owned(), fragmented.build()),
        ("moov-last mp4".to_owned(), moov_last.build()),
        ("ogg 3 pages".to_owned(), corpus::ogg_opus(2.5)),
        (
            "exif jpeg".to_owned(),
            corpus::jpeg_with_orientation(24, 16, 6),
        ),
    ]);
    // Real files (encoder output, camera images) can be added for a longer local hunt.
    if let Ok(dir) = std::env::var("GENGATE_MEDIA_FUZZ_DIR") {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}"));
        for entry in entries.flatten() {
            if let Ok(bytes) = std::fs::read(entry.path()) {
                files.push((entry.path().display().to_string(), bytes));
            }
        }
    }
    files
}

/// Tight limits keep a mutated header claiming a large-but-allowed size from spending seconds
/// in a decoder; what is tested is the absence of panics, not throughput.
fn limits() -> ImageLimits {
    ImageLimits {
        max_width: 2048,
        max_height: 2048,
        max_alloc_bytes: 32 * 1024 * 1024,
    }
}

/// Dependency panics seen, by location, for the report.
static DEPENDENCY_PANICS: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

fn report_dependency_panics() {
    let seen = DEPENDENCY_PANICS
        .lock()
        .map(|m| m.clone())
        .unwrap_or_default();
    for (location, count) in seen {
        eprintln!("caught dependency panic ×{count} at {location}");
    }
}

struct Slowest {
    took: Duration,
    what: String,
}

/// Fails on a panic in this crate's code; lets a caught dependency panic through, counted.
fn assert_not_a_panic<T>(result: &Result<T, MediaError>, what: &dyn Fn() -> String) {
    let panics = take_panics();
    let caught =
        matches!(result, Err(MediaError::DoesNotDecode { detail, .. }) if detail == PANIC_DETAIL);
    if let Some(own) = panics.iter().find(|l| !is_dependency(l)) {
        panic!("this crate panicked at {own} on {}", what());
    }
    if caught {
        assert!(
            !panics.is_empty(),
            "a panic was reported but none recorded, on {}",
            what()
        );
        if let Ok(mut seen) = DEPENDENCY_PANICS.lock() {
            for location in panics {
                *seen.entry(location).or_default() += 1;
            }
        }
    } else {
        assert!(
            panics.is_empty(),
            "a panic at {panics:?} escaped as a non-error on {}",
            what()
        );
    }
}

/// Runs every public function on `bytes`.
fn exercise(bytes: &[u8], label: &dyn Fn() -> String, slowest: &mut Slowest) {
    install_panic_recorder();
    let started = Instant::now();
    let _ = sniff(&bytes[..bytes.len().min(SNIFF_LEN)]);
    let _ = sniff(bytes);
    for mime in IMAGE_MIMES {
        assert_not_a_panic(&inspect_image(bytes, mime, &limits()), &|| {
            format!("inspect_image({mime}) of {}", label())
        });
    }
    assert_not_a_panic(&decode_rgb8(bytes, &limits()), &|| {
        format!("decode_rgb8 of {}", label())
    });
    assert_not_a_panic(&to_png(bytes, &limits()), &|| {
        format!("to_png of {}", label())
    });
    for mime in AV_MIMES {
        let result = probe_duration(bytes, mime);
        assert_not_a_panic(&result, &|| {
            format!("probe_duration({mime}) of {}", label())
        });
        if let Ok(seconds) = result {
            assert!(
                seconds.is_finite() && seconds > 0.0,
                "{seconds} from {}",
                label()
            );
        }
    }
    assert_not_a_panic(&inspect_mp4(bytes), &|| {
        format!("inspect_mp4 of {}", label())
    });
    let took = started.elapsed();
    if took > slowest.took {
        slowest.took = took;
        slowest.what = label();
    }
}

/// Cut points: every length up to 64 bytes (headers), then ~120 spread over the file, then the
/// last 16 (trailers).
fn cut_points(len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = (0..=len.min(64)).collect();
    let step = (len / 120).max(1);
    cuts.extend((64..len).step_by(step));
    cuts.extend(len.saturating_sub(16)..len);
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

#[test]
fn truncations_of_every_corpus_file() {
    let mut slowest = Slowest {
        took: Duration::ZERO,
        what: String::new(),
    };
    let mut runs = 0;
    for (name, bytes) in corpus_files() {
        for cut in cut_points(bytes.len()) {
            exercise(
                &bytes[..cut],
                &|| format!("{name} cut to {cut} of {} bytes", bytes.len()),
                &mut slowest,
            );
            runs += 1;
        }
    }
    eprintln!(
        "{runs} truncations; slowest {:?} ({})",
        slowest.took, slowest.what
    );
    report_dependency_panics();
    assert!(
        slowest.took < Duration::from_secs(5),
        "{} took {:?}",
        slowest.what,
        slowest.took
    );
}

/// A xorshift generator: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// 150 rounds a file by default; set `GENGATE_MEDIA_FUZZ_ROUNDS` for a longer hunt.
fn mutation_rounds() -> usize {
    std::env::var("GENGATE_MEDIA_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150)
}

#[test]
fn mutations_of_every_corpus_file() {
    // Values that break length and count fields in interesting ways.
    const NASTY: [u32; 8] = [
        0,
        1,
        7,
        8,
        0x7FFF_FFFF,
        0x8000_0000,
        0xFFFF_FFFE,
        0xFFFF_FFFF,
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut slowest = Slowest {
        took: Duration::ZERO,
        what: String::new(),
    };
    let mut runs = 0;
    for (name, original) in corpus_files() {
        if original.is_empty() {
            continue;
        }
        for round in 0..mutation_rounds() {
            let mut bytes = original.clone();
            // Mutations cluster in the first KiB, where the headers are.
            let span = bytes
                .len()
                .min(if round % 3 == 0 { usize::MAX } else { 1024 });
            let edits = 1 + rng.below(4);
            for _ in 0..edits {
                let at = rng.below(span);
                if rng.below(2) == 0 || at + 4 > bytes.len() {
                    bytes[at] = rng.next() as u8;
                } else {
                    let value = NASTY[rng.below(NASTY.len())];
                    let big_endian = rng.below(2) == 0;
                    let raw = if big_endian {
                        value.to_be_bytes()
                    } else {
                        value.to_le_bytes()
                    };
                    bytes[at..at + 4].copy_from_slice(&raw);
                }
            }
            exercise(
                &bytes,
                &|| format!("{name}, mutation round {round}"),
                &mut slowest,
            );
            runs += 1;
        }
    }
    eprintln!(
        "{runs} mutations; slowest {:?} ({})",
        slowest.took, slowest.what
    );
    report_dependency_panics();
    assert!(
        slowest.took < Duration::from_secs(5),
        "{} took {:?}",
        slowest.what,
        slowest.took
    );
}

#[test]
fn garbage_behind_every_magic() {
    let magics: &[&[u8]] = &[
        b"\x89PNG\r\n\x1a\n",
        b"\xFF\xD8\xFF\xE0",
        b"GIF89a",
        b"RIFF\x00\x00\x00\x00WEBPVP8 ",
        b"RIFF\xFF\xFF\xFF\xFFWAVEfmt ",
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41",
        b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ",
        b"\x00\x00\x00\x14ftypM4A \x00\x00\x00\x00M4A ",
        b"\x1A\x45\xDF\xA3\x87\x42\x82\x84webm",
        b"OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x13OpusHead",
        b"ID3\x03\x00\x00\x00\x00\x00\x00",
        b"\xFF\xFB\x94\xC0",
        b"\xFF\xF1\x4C\x40\x01\x7F\xFC",
    ];
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let mut slowest = Slowest {
        took: Duration::ZERO,
        what: String::new(),
    };
    for (index, magic) in magics.iter().enumerate() {
        for len in [0usize, 1, 4, 16, 100, 1000, 5000] {
            for round in 0..8 {
                let mut bytes = magic.to_vec();
                bytes.extend((0..len).map(|_| rng.next() as u8));
                exercise(
                    &bytes,
                    &|| format!("magic #{index} + {len} random bytes, round {round}"),
                    &mut slowest,
                );
            }
        }
    }
    eprintln!("slowest {:?} ({})", slowest.took, slowest.what);
    report_dependency_panics();
}

fn iso_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

#[test]
fn millions_of_empty_tracks_are_refused_not_parsed() {
    // 8-byte empty `trak` boxes: without a bound, each would become a parsed track.
    let mut mvhd = vec![0u8; 100];
    mvhd[12..16].copy_from_slice(&1000u32.to_be_bytes());
    mvhd[16..20].copy_from_slice(&5000u32.to_be_bytes());
    let mut moov = iso_box(b"mvhd", &mvhd);
    for _ in 0..200_000 {
        moov.extend_from_slice(&iso_box(b"trak", &[]));
    }
    let mut file = iso_box(b"ftyp", b"isom\x00\x00\x02\x00isom");
    file.extend(iso_box(b"moov", &moov));
    let err = inspect_mp4(&file).expect_err("too many tracks");
    assert!(err.to_string().contains("more than 64 tracks"), "{err}");
    assert!(probe_duration(&file, "video/mp4").is_err());
}

fn ebml(id: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = id.to_vec();
    let mut size = (body.len() as u64).to_be_bytes();
    size[0] = 0x01;
    out.extend_from_slice(&size);
    out.extend_from_slice(body);
    out
}

#[test]
fn webm_with_a_flood_of_tracks_is_refused_before_demuxing() {
    let entry = [
        ebml(&[0xD7], &[1]),
        ebml(&[0x73, 0xC5], &[1]),
        ebml(&[0x83], &[1]),
        ebml(&[0x86], b"V_VP8"),
    ]
    .concat();
    let mut tracks = Vec::new();
    for _ in 0..10_000 {
        tracks.extend(ebml(&[0xAE], &entry));
    }
    let segment = [
        ebml(
            &[0x15, 0x49, 0xA9, 0x66],
            &ebml(&[0x2A, 0xD7, 0xB1], &[0x0F, 0x42, 0x40]),
        ),
        ebml(&[0x16, 0x54, 0xAE, 0x6B], &tracks),
    ]
    .concat();
    let header = ebml(&[0x42, 0x82], b"webm");
    let file = [
        ebml(&[0x1A, 0x45, 0xDF, 0xA3], &header),
        ebml(&[0x18, 0x53, 0x80, 0x67], &segment),
    ]
    .concat();
    assert_eq!(sniff(&file).map(|s| s.mime), Some("video/webm"));
    let err = probe_duration(&file, "video/webm").expect_err("too many tracks");
    assert!(err.to_string().contains("more than 64 tracks"), "{err}");
}
