//! `inspect_mp4` on stubs of known geometry.

use gengate_media::corpus::{self, Mp4Stub};
use gengate_media::{MediaError, inspect_mp4, probe_duration};

#[test]
fn stub_reports_what_was_built() {
    for s in [0.5, 1.0, 5.0, 5.25, 14.96, 90.0] {
        let stub = Mp4Stub::new(s, "isom");
        let info = inspect_mp4(&stub.build()).unwrap_or_else(|e| panic!("{s} s: {e}"));
        assert_eq!((info.width, info.height), (640, 360));
        assert_eq!(info.video_codec, "avc1");
        assert_eq!(info.video_frames, stub.video_frames());
        assert_eq!(info.video_frames, (s * 25.0_f64).round() as u64);
        assert!((info.video_duration_seconds - stub.video_seconds()).abs() < 1e-9);
        assert!((info.video_duration_seconds - s).abs() <= 0.05);
        assert!((info.fps - 25.0).abs() < 1e-9, "fps {}", info.fps);
        assert!(info.has_audio);
        assert_eq!(info.audio_codec.as_deref(), Some("mp4a"));
        let audio = info.audio_duration_seconds.expect("audio duration");
        assert!((audio - stub.audio_seconds()).abs() < 1e-9);
        assert!(info.faststart);
    }
}

#[test]
fn geometry_rate_and_audio_are_read_not_assumed() {
    let mut stub = Mp4Stub::new(3.0, "mp42");
    stub.width = 1080;
    stub.height = 1920;
    stub.fps = 30;
    stub.audio = false;
    let info = inspect_mp4(&stub.build()).expect("inspects");
    assert_eq!((info.width, info.height), (1080, 1920));
    assert_eq!(info.video_frames, 90);
    assert!((info.fps - 30.0).abs() < 1e-9);
    assert!(!info.has_audio);
    assert_eq!(info.audio_codec, None);
    assert_eq!(info.audio_duration_seconds, None);
}

#[test]
fn moov_after_mdat_is_not_faststart() {
    let mut stub = Mp4Stub::new(2.0, "isom");
    stub.faststart = false;
    let bytes = stub.build();
    let info = inspect_mp4(&bytes).expect("inspects");
    assert!(!info.faststart);
    assert_eq!(info.video_frames, 50);
    let moov = bytes.windows(4).position(|w| w == b"moov");
    let mdat = bytes.windows(4).position(|w| w == b"mdat");
    assert!(moov > mdat);
}

#[test]
fn fragmented_file_counts_its_fragments() {
    let mut stub = Mp4Stub::new(4.2, "iso5");
    stub.fragmented = true;
    let bytes = stub.build();
    let info = inspect_mp4(&bytes).expect("inspects");
    assert_eq!(info.video_frames, 105);
    assert!((info.video_duration_seconds - 4.2).abs() < 1e-9);
    assert!((info.fps - 25.0).abs() < 1e-9);
    assert!(info.faststart);
    let d = probe_duration(&bytes, "video/mp4").expect("probes");
    assert!((d - 4.2).abs() <= 0.05, "{d}");
}

#[test]
fn mov_stub() {
    let info = inspect_mp4(&corpus::mov_stub(2.4)).expect("inspects");
    assert_eq!(info.video_frames, 60);
    assert!((info.video_duration_seconds - 2.4).abs() < 1e-9);
}

#[test]
fn audio_only_and_non_iso_files_are_refused() {
    let err = inspect_mp4(&corpus::mp4_stub(2.0, "M4A ")).expect_err("no video");
    assert!(
        matches!(
            err,
            MediaError::MissingTrack {
                wanted: "video",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "the video/mp4 file has no video track");
    for bytes in [
        corpus::webm(1.0),
        corpus::png(4, 4),
        corpus::wav(0.5, 8_000),
        Vec::new(),
    ] {
        let err = inspect_mp4(&bytes).expect_err("not ISO");
        assert!(matches!(err, MediaError::DoesNotDecode { .. }), "{err:?}");
    }
}

#[test]
fn truncated_file_is_refused() {
    let bytes = corpus::mp4_stub(3.0, "isom");
    let err = inspect_mp4(&bytes[..bytes.len() - 10]).expect_err("truncated");
    assert!(err.to_string().contains("declares"), "{err}");
    assert!(probe_duration(&bytes[..bytes.len() - 10], "video/mp4").is_err());
    // Cut inside moov.
    let err = inspect_mp4(&bytes[..200]).expect_err("truncated");
    assert!(matches!(err, MediaError::DoesNotDecode { .. }), "{err:?}");
}
