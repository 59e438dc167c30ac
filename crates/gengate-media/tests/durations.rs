//! `probe_duration` measures every video and audio format within 50 ms of what was generated.

use gengate_media::corpus::{self, Mp4Stub};
use gengate_media::{MediaError, probe_duration, sniff};

const TOLERANCE: f64 = 0.050;
const DURATIONS: &[f64] = &[0.5, 1.0, 3.0, 5.25, 12.0, 61.7];

fn check(name: &str, mime: &str, bytes: &[u8], truth: f64) {
    let sniffed = sniff(&bytes[..bytes.len().min(4096)]).map(|s| s.mime);
    assert_eq!(sniffed, Some(mime), "{name} sniffs as {mime}");
    let measured = probe_duration(bytes, mime)
        .unwrap_or_else(|e| panic!("{name} ({truth} s) did not probe: {e}"));
    assert!(
        (measured - truth).abs() <= TOLERANCE,
        "{name}: measured {measured} s, generated {truth} s"
    );
}

#[test]
fn wav_at_several_rates() {
    for &s in DURATIONS {
        for rate in [8_000, 22_050, 44_100, 48_000] {
            check("wav", "audio/wav", &corpus::wav(s, rate), s);
        }
    }
}

#[test]
fn wav_under_its_alias() {
    let bytes = corpus::wav(2.5, 16_000);
    let d = probe_duration(&bytes, "audio/x-wav").expect("audio/x-wav probes");
    assert!((d - 2.5).abs() <= TOLERANCE);
}

#[test]
fn mp3_with_and_without_id3() {
    for &s in DURATIONS {
        check("mp3", "audio/mpeg", &corpus::mp3(s), s);
        check("mp3 bare", "audio/mpeg", &corpus::mp3_without_id3(s), s);
        // The generator's exact figure, a tighter check than the 50 ms budget.
        let d = probe_duration(&corpus::mp3(s), "audio/mpeg").expect("probes");
        assert!(
            (d - corpus::mp3_duration(s)).abs() < 1e-6,
            "{d} vs {}",
            corpus::mp3_duration(s)
        );
    }
}

#[test]
fn aac_adts() {
    for &s in DURATIONS {
        check("aac", "audio/aac", &corpus::adts(s), s);
        let d = probe_duration(&corpus::adts(s), "audio/aac").expect("probes");
        assert!(
            (d - corpus::adts_duration(s)).abs() < 1e-6,
            "{d} vs {}",
            corpus::adts_duration(s)
        );
    }
}

#[test]
fn ogg_opus() {
    for &s in DURATIONS {
        check("ogg", "audio/ogg", &corpus::ogg_opus_or_vorbis(s), s);
        // Pre-skip removed and the last packet trimmed by the final granule: exact to the
        // sample.
        let d = probe_duration(&corpus::ogg_opus(s), "audio/ogg").expect("probes");
        assert!((d - s).abs() < 1e-6, "{d} vs {s}");
    }
}

#[test]
fn webm_with_and_without_duration_element() {
    for &s in DURATIONS {
        check("webm", "video/webm", &corpus::webm(s), s);
        check(
            "webm live",
            "video/webm",
            &corpus::webm_without_duration(s),
            s,
        );
    }
}

#[test]
fn mp4_mov_m4a() {
    for &s in DURATIONS {
        check("mp4", "video/mp4", &corpus::mp4_stub(s, "isom"), s);
        check("mp4 mp42", "video/mp4", &corpus::mp4_stub(s, "mp42"), s);
        check("mov", "video/quicktime", &corpus::mov_stub(s), s);
        check("m4a", "audio/mp4", &corpus::mp4_stub(s, "M4A "), s);
    }
}

#[test]
fn mp4_fragmented_and_moov_last() {
    for &s in DURATIONS {
        let mut stub = Mp4Stub::new(s, "isom");
        stub.fragmented = true;
        check("fragmented mp4", "video/mp4", &stub.build(), s);
        let mut stub = Mp4Stub::new(s, "isom");
        stub.faststart = false;
        check("moov-last mp4", "video/mp4", &stub.build(), s);
    }
}

#[test]
fn wrong_or_unsupported_type_is_an_error() {
    let wav = corpus::wav(1.0, 8_000);
    assert!(matches!(
        probe_duration(&wav, "audio/mpeg"),
        Err(MediaError::DoesNotDecode { .. })
    ));
    assert!(probe_duration(&wav, "video/mp4").is_err());
    assert!(probe_duration(&wav, "video/webm").is_err());
    assert!(matches!(
        probe_duration(&wav, "audio/flac"),
        Err(MediaError::UnsupportedMime { .. })
    ));
    assert!(matches!(
        probe_duration(&corpus::png(8, 8), "image/png"),
        Err(MediaError::UnsupportedMime { .. })
    ));
    // An M4A has no video track, so it is not a video/mp4 however it is declared.
    assert!(matches!(
        probe_duration(&corpus::mp4_stub(2.0, "M4A "), "video/mp4"),
        Err(MediaError::MissingTrack { .. })
    ));
}
