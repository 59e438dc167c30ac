//! Property-based fuzzing of the hand-written parsers on stable Rust
//! (docs/HARDENING.md, "Fuzzing"): proptest feeds random bytes and mutations
//! of the real corpus (`corpus.rs`) to every public function, and checks
//!
//! - **no panic** of this crate's own code (a dependency's panic must come
//!   back as the `PANIC_DETAIL` error, see `tests/hostile.rs`);
//! - **no hang**: a watchdog aborts the run, naming the input, when one
//!   case takes longer than `GENGATE_FUZZ_CASE_SECS` (default 30 s);
//! - **bounded allocation**: the peak heap of each call, measured by a
//!   counting allocator on the calling thread, stays under a bound set by
//!   the limits and the input size, and an image decode never allocates
//!   more than `image_decode_cost` promised the decode budget;
//! - **round trips**: `to_png` output sniffs as PNG, inspects with the same
//!   size, and converts to itself.
//!
//! Cases per property: 512 random, 1024 mutated by default (seconds); raise with
//! `GENGATE_FUZZ_CASES=20000` for a long local hunt. Failures are shrunk and
//! saved under `proptest-regressions/`; fixed ones also get a named test.

#[path = "support/panics.rs"]
mod panics;
use panics::{install_panic_recorder, is_dependency, take_panics};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use gengate_media::corpus::{self, Mp4Stub};
use gengate_media::{
    ImageLimits, MediaError, PANIC_DETAIL, SNIFF_LEN, decode_rgb8, image_decode_cost,
    inspect_image, inspect_mp4, probe_duration, sniff, to_png,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

// ---------------------------------------------------------------------------
// Allocation accounting: bytes live and their peak, per thread (parsers are
// single-threaded; other tests' threads do not disturb the count).

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn on_alloc(size: usize) {
    let _ = LIVE.try_with(|l| {
        let now = l.get().saturating_add(size);
        l.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

fn on_dealloc(size: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(size)));
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are
// plain thread-local cells with const initialisers (no allocation).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_dealloc(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        on_alloc(new_size);
        on_dealloc(layout.size());
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the peak bytes it held above what
/// was live when it started.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(Cell::get).saturating_sub(base);
    (out, peak)
}

// ---------------------------------------------------------------------------
// Hang watchdog: one per process, aborts when a case overstays.

static CASE_STARTED_MS: AtomicU64 = AtomicU64::new(0);
static CURRENT: Mutex<String> = Mutex::new(String::new());

fn epoch() -> Instant {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn case_secs() -> u64 {
    std::env::var("GENGATE_FUZZ_CASE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

fn start_watchdog() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let limit = Duration::from_secs(case_secs());
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(250));
                let started = CASE_STARTED_MS.load(Ordering::Relaxed);
                if started == 0 {
                    continue;
                }
                let now = epoch().elapsed().as_millis() as u64;
                if now.saturating_sub(started) > limit.as_millis() as u64 {
                    let what = CURRENT.lock().map(|c| c.clone()).unwrap_or_default();
                    eprintln!("HANG: a fuzz case ran over {limit:?}: {what}");
                    std::process::abort();
                }
            }
        });
    });
}

/// Marks a case as running (for the watchdog) while `f` runs.
fn watched<T>(what: impl FnOnce() -> String, f: impl FnOnce() -> T) -> T {
    start_watchdog();
    if let Ok(mut c) = CURRENT.lock() {
        *c = what();
    }
    CASE_STARTED_MS.store(
        epoch().elapsed().as_millis().max(1) as u64,
        Ordering::Relaxed,
    );
    let out = f();
    CASE_STARTED_MS.store(0, Ordering::Relaxed);
    out
}

fn hex_head(bytes: &[u8]) -> String {
    let head: String = bytes.iter().take(64).map(|b| format!("{b:02x}")).collect();
    format!("{} bytes, starting {head}", bytes.len())
}

// ---------------------------------------------------------------------------
// Panic provenance (tests/support/panics.rs): this crate's own panics fail.

fn own_panic<T>(result: &Result<T, MediaError>) -> Option<String> {
    let panics = take_panics();
    if let Some(own) = panics.iter().find(|l| !is_dependency(l)) {
        return Some(own.clone());
    }
    let caught =
        matches!(result, Err(MediaError::DoesNotDecode { detail, .. }) if detail == PANIC_DETAIL);
    (!caught && !panics.is_empty()).then(|| format!("escaped: {panics:?}"))
}

// ---------------------------------------------------------------------------
// The properties.

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

const MIB: usize = 1024 * 1024;

fn limits() -> ImageLimits {
    ImageLimits {
        max_width: 2048,
        max_height: 2048,
        max_alloc_bytes: 16 * MIB as u64,
    }
}

/// What a parse of `len` input bytes may hold at its peak: a fixed
/// allowance for decoder state and tables plus a small multiple of the
/// input (demuxers may copy packets), never a size the input merely claims.
fn parse_bound(len: usize) -> usize {
    8 * MIB + 8 * len
}

/// Every public function on `bytes`; `Err(reason)` names the broken property.
fn check_all(bytes: &[u8]) -> Result<(), String> {
    install_panic_recorder();
    let limits = limits();
    let (_, peak) = peak_of(|| sniff(&bytes[..bytes.len().min(SNIFF_LEN)]));
    if peak > MIB {
        return Err(format!("sniff held {peak} bytes"));
    }
    let _ = sniff(bytes);
    for mime in IMAGE_MIMES {
        let cost = image_decode_cost(bytes, mime, &limits);
        if let Some(p) = own_panic(&cost) {
            return Err(format!("image_decode_cost({mime}) panicked at {p}"));
        }
        let (r, peak) = peak_of(|| inspect_image(bytes, mime, &limits));
        if let Some(p) = own_panic(&r) {
            return Err(format!("inspect_image({mime}) panicked at {p}"));
        }
        let ceiling = limits.max_alloc_bytes as usize * 2 + parse_bound(bytes.len());
        if peak > ceiling {
            return Err(format!(
                "inspect_image({mime}) held {peak} bytes (bound {ceiling})"
            ));
        }
        // The decode budget is only honest if the estimate covers the decode.
        if let (Ok(cost), Ok(_)) = (&cost, &r) {
            let allowed = *cost as usize + 2 * MIB + bytes.len();
            if peak > allowed {
                return Err(format!(
                    "inspect_image({mime}) held {peak} bytes but image_decode_cost said {cost}"
                ));
            }
        }
        if r.is_ok() && cost.is_err() {
            return Err(format!("{mime}: inspects but has no decode cost: {cost:?}"));
        }
    }
    for (name, f) in [
        (
            "decode_rgb8",
            (|b, l| decode_rgb8(b, l).map(|_| ()))
                as fn(&[u8], &ImageLimits) -> Result<(), MediaError>,
        ),
        ("to_png", |b, l| to_png(b, l).map(|_| ())),
    ] {
        let (r, peak) = peak_of(|| f(bytes, &limits));
        if let Some(p) = own_panic(&r) {
            return Err(format!("{name} panicked at {p}"));
        }
        let ceiling = limits.max_alloc_bytes as usize * 4 + parse_bound(bytes.len());
        if peak > ceiling {
            return Err(format!("{name} held {peak} bytes (bound {ceiling})"));
        }
    }
    for mime in AV_MIMES {
        let (r, peak) = peak_of(|| probe_duration(bytes, mime));
        if let Some(p) = own_panic(&r) {
            return Err(format!("probe_duration({mime}) panicked at {p}"));
        }
        if peak > parse_bound(bytes.len()) {
            return Err(format!("probe_duration({mime}) held {peak} bytes"));
        }
        if let Ok(s) = r
            && !(s.is_finite() && s > 0.0)
        {
            return Err(format!("probe_duration({mime}) = {s}"));
        }
    }
    let (r, peak) = peak_of(|| inspect_mp4(bytes));
    if let Some(p) = own_panic(&r) {
        return Err(format!("inspect_mp4 panicked at {p}"));
    }
    if peak > parse_bound(bytes.len()) {
        return Err(format!("inspect_mp4 held {peak} bytes"));
    }
    round_trip(bytes, &limits)
}

/// `to_png` output is a PNG of the same size that converts to itself.
fn round_trip(bytes: &[u8], limits: &ImageLimits) -> Result<(), String> {
    let Ok(png) = to_png(bytes, limits) else {
        return Ok(());
    };
    if sniff(&png).map(|s| s.mime) != Some("image/png") {
        return Err("to_png output does not sniff as PNG".into());
    }
    let (w, h, _) =
        decode_rgb8(bytes, limits).map_err(|e| format!("to_png ok, decode not: {e}"))?;
    let info =
        inspect_image(&png, "image/png", limits).map_err(|e| format!("to_png output: {e}"))?;
    if (info.width, info.height) != (w, h) {
        return Err(format!(
            "to_png changed {w}x{h} to {}x{}",
            info.width, info.height
        ));
    }
    let again = to_png(&png, limits).map_err(|e| format!("to_png of its own output: {e}"))?;
    let (a, b) = (
        decode_rgb8(&png, limits).map_err(|e| e.to_string())?,
        decode_rgb8(&again, limits).map_err(|e| e.to_string())?,
    );
    if a != b {
        return Err("to_png is not idempotent on pixels".into());
    }
    Ok(())
}

fn corpus_files() -> Vec<Vec<u8>> {
    let mut files: Vec<Vec<u8>> = corpus::all_typed().into_iter().map(|(_, _, b)| b).collect();
    let mut fragmented = Mp4Stub::new(2.0, "iso5");
    fragmented.fragmented = true;
    files.extend([
        corpus::decompression_bomb_png(),
        corpus::png_zip_polyglot(),
        corpus::truncated_png(),
        corpus::webm_without_duration(2.0),
        fragmented.build(),
        corpus::ogg_opus(2.5),
        corpus::jpeg_with_orientation(24, 16, 6),
        corpus::black_png(300, 200),
    ]);
    files
}

fn cases(default: u32) -> u32 {
    std::env::var("GENGATE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runner(default_cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases: cases(default_cases),
        // Shrinking re-runs the slow decoders; keep it bounded.
        max_shrink_iters: 256,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..Config::default()
    })
}

/// One edit of a mutation: where (a fraction of the length, so it scales
/// with the file and shrinks toward the start) and what.
#[derive(Debug, Clone)]
enum Edit {
    /// Overwrite one byte.
    Byte(u16, u8),
    /// Overwrite 4 bytes with a value that breaks length and count fields.
    Nasty(u16, u32, bool),
    /// Cut the file here.
    Truncate(u16),
    /// Insert random bytes here.
    Insert(u16, Vec<u8>),
    /// Repeat the range starting here (duplicated boxes, elements, chunks).
    Repeat(u16, u16, u8),
}

fn at(frac: u16, len: usize) -> usize {
    // Half the edits land in the first KiB, where the headers are.
    if frac < u16::MAX / 2 {
        (frac as usize * 2 * len.min(1024)) / u16::MAX as usize
    } else {
        ((frac - u16::MAX / 2) as usize * 2 * len) / u16::MAX as usize
    }
    .min(len.saturating_sub(1))
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        if bytes.is_empty() {
            break;
        }
        match e {
            Edit::Byte(f, v) => {
                let i = at(*f, bytes.len());
                bytes[i] = *v;
            }
            Edit::Nasty(f, v, be) => {
                let i = at(*f, bytes.len());
                let raw = if *be {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                for (k, b) in raw.iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(i + k) {
                        *slot = *b;
                    }
                }
            }
            Edit::Truncate(f) => {
                let i = at(*f, bytes.len());
                bytes.truncate(i);
            }
            Edit::Insert(f, more) => {
                let i = at(*f, bytes.len());
                bytes.splice(i..i, more.iter().copied());
            }
            Edit::Repeat(f, len, times) => {
                let i = at(*f, bytes.len());
                let end = (i + *len as usize).min(bytes.len());
                let piece = bytes[i..end].to_vec();
                for _ in 0..*times {
                    bytes.splice(end..end, piece.iter().copied());
                }
            }
        }
    }
    bytes
}

fn edit() -> impl Strategy<Value = Edit> {
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
    prop_oneof![
        4 => (any::<u16>(), any::<u8>()).prop_map(|(f, v)| Edit::Byte(f, v)),
        3 => (any::<u16>(), prop::sample::select(&NASTY[..]), any::<bool>())
            .prop_map(|(f, v, be)| Edit::Nasty(f, v, be)),
        1 => any::<u16>().prop_map(Edit::Truncate),
        1 => (any::<u16>(), prop::collection::vec(any::<u8>(), 1..64))
            .prop_map(|(f, v)| Edit::Insert(f, v)),
        1 => (any::<u16>(), 1u16..512, 1u8..16).prop_map(|(f, l, t)| Edit::Repeat(f, l, t)),
    ]
}

#[test]
fn random_bytes_never_panic_hang_or_overallocate() {
    let mut r = runner(512);
    let magic = prop::sample::select(vec![
        &b""[..],
        b"\x89PNG\r\n\x1a\n",
        b"\xFF\xD8\xFF\xE0",
        b"GIF89a",
        b"RIFF\x00\x00\x00\x00WEBPVP8 ",
        b"RIFF\xFF\xFF\xFF\xFFWAVEfmt ",
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41",
        b"\x1A\x45\xDF\xA3",
        b"OggS\x00\x02",
        b"ID3\x03\x00",
        b"\xFF\xFB\x94\xC0",
        b"\xFF\xF1\x4C\x40",
    ]);
    let input = (magic, prop::collection::vec(any::<u8>(), 0..4096))
        .prop_map(|(m, rest)| [m, &rest[..]].concat());
    r.run(&input, |bytes| {
        let res = watched(
            || format!("random: {}", hex_head(&bytes)),
            || check_all(&bytes),
        );
        prop_assert!(res.is_ok(), "{}: {}", res.unwrap_err(), hex_head(&bytes));
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn mutated_corpus_files_never_panic_hang_or_overallocate() {
    let files = corpus_files();
    let mut r = runner(1024);
    let input = (0..files.len(), prop::collection::vec(edit(), 1..6));
    r.run(&input, |(index, edits)| {
        let bytes = apply(files[index].clone(), &edits);
        let res = watched(
            || format!("corpus #{index} with {edits:?}"),
            || check_all(&bytes),
        );
        prop_assert!(
            res.is_ok(),
            "{} (corpus #{index}, edits {edits:?})",
            res.unwrap_err()
        );
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_unmutated_corpus_satisfies_every_property() {
    for (i, f) in corpus_files().iter().enumerate() {
        let res = watched(|| format!("corpus #{i}"), || check_all(f));
        assert!(res.is_ok(), "corpus #{i}: {}", res.unwrap_err());
    }
}

/// The harness itself: the counter sees a large allocation, and mutations
/// still reach the decoders (most mutated files keep a valid header).
#[test]
fn the_harness_measures_allocations_and_reaches_the_parsers() {
    let (v, peak) = peak_of(|| vec![1u8; 10 * MIB]);
    assert!(peak >= 10 * MIB, "peak {peak}");
    drop(v);
    let files = corpus_files();
    let mut runner = runner(200);
    let parsed = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(
            &(0..files.len(), prop::collection::vec(edit(), 1..3)),
            |(index, edits)| {
                let bytes = apply(files[index].clone(), &edits);
                let ok = IMAGE_MIMES
                    .iter()
                    .any(|m| inspect_image(&bytes, m, &limits()).is_ok())
                    || AV_MIMES.iter().any(|m| probe_duration(&bytes, m).is_ok());
                if ok {
                    parsed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let parsed = parsed.into_inner();
    eprintln!("{parsed} of the mutated files still parsed");
    assert!(
        parsed > 0,
        "no mutated file parsed: the mutations reach no parser"
    );
}
