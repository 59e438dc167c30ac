//! Cross-checks against files made by a real encoder (ffmpeg), when one is installed.
//!
//! The corpus is hand-built, so on its own it can only show that this crate agrees with
//! itself. Here ffmpeg makes each format the way encoders in the wild do (LAME and Xing tags,
//! AAC priming, edit lists, H.264 with avcC, Opus pre-skip, fragmented MP4, WebM cues) and the
//! measurements must match what was asked of it. Without `ffmpeg` on PATH the test says so and
//! passes: the machine image does not promise it.

use std::path::{Path, PathBuf};
use std::process::Command;

use gengate_media::{ImageLimits, MediaKind, inspect_image, inspect_mp4, probe_duration, sniff};

const TOLERANCE: f64 = 0.050;

fn ffmpeg_available() -> bool {
    Command::new("ffmpeg")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A directory of one test's own: the tests run in parallel and each removes its directory.
fn scratch_dir(test: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("gengate-media-real-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs ffmpeg with `args` writing `name` in `dir`, and returns the file's bytes.
fn make(dir: &Path, name: &str, args: &[&str]) -> Vec<u8> {
    let out = dir.join(name);
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(&out)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg failed making {name}");
    std::fs::read(&out).expect("ffmpeg output")
}

fn sine(seconds: f64, rate: u32) -> String {
    format!("sine=frequency=440:duration={seconds}:sample_rate={rate}")
}

fn video(seconds: f64, size: &str, fps: u32) -> String {
    format!("testsrc=duration={seconds}:size={size}:rate={fps}")
}

fn check_duration(name: &str, bytes: &[u8], mime: &str, truth: f64) {
    let sniffed = sniff(&bytes[..bytes.len().min(4096)]).map(|s| s.mime);
    assert_eq!(sniffed, Some(mime), "{name}");
    let measured = probe_duration(bytes, mime).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        (measured - truth).abs() <= TOLERANCE,
        "{name}: measured {measured} s, made {truth} s"
    );
}

#[test]
fn encoder_output_measures_true() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg is not installed: real-world cross-check skipped");
        return;
    }
    let dir = scratch_dir("audio");
    for seconds in [0.7, 4.3] {
        let a = sine(seconds, 44_100);
        let a16 = sine(seconds, 16_000);
        let cases: Vec<(&str, &str, Vec<&str>)> = vec![
            (
                "vbr.mp3",
                "audio/mpeg",
                vec!["-f", "lavfi", "-i", &a, "-c:a", "libmp3lame", "-q:a", "4"],
            ),
            // At 16 kHz MPEG-2 frames are 36 ms, so ignoring the LAME tag's delay and padding
            // would miss by more than the tolerance.
            (
                "low.mp3",
                "audio/mpeg",
                vec!["-f", "lavfi", "-i", &a16, "-c:a", "libmp3lame", "-q:a", "6"],
            ),
            (
                "adts.aac",
                "audio/aac",
                vec!["-f", "lavfi", "-i", &a, "-c:a", "aac"],
            ),
            (
                "audio.m4a",
                "audio/mp4",
                vec!["-f", "lavfi", "-i", &a, "-c:a", "aac"],
            ),
            (
                "opus.ogg",
                "audio/ogg",
                vec!["-f", "lavfi", "-i", &a, "-c:a", "libopus"],
            ),
            (
                "vorbis.ogg",
                "audio/ogg",
                vec!["-f", "lavfi", "-i", &a, "-c:a", "libvorbis"],
            ),
            (
                "s24.wav",
                "audio/wav",
                vec!["-f", "lavfi", "-i", &a, "-ac", "2", "-c:a", "pcm_s24le"],
            ),
        ];
        for (name, mime, args) in cases {
            if name.ends_with(".ogg") && !has_encoder(name) {
                continue;
            }
            let bytes = make(&dir, name, &args);
            check_duration(name, &bytes, mime, seconds);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn has_encoder(name: &str) -> bool {
    let encoder = if name.starts_with("opus") {
        "libopus"
    } else {
        "libvorbis"
    };
    Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(encoder))
}

#[test]
fn encoder_video_measures_true() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg is not installed: real-world cross-check skipped");
        return;
    }
    let dir = scratch_dir("video");
    let seconds = 4.2;
    let v = video(seconds, "320x240", 30);
    let a = sine(seconds, 48_000);
    let h264 = [
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-preset",
        "ultrafast",
    ];

    let mut args = vec!["-f", "lavfi", "-i", &v, "-f", "lavfi", "-i", &a];
    args.extend(h264);
    args.extend(["-c:a", "aac", "-shortest"]);
    let moov_last = make(&dir, "moov_last.mp4", &args);
    args.extend(["-movflags", "+faststart"]);
    let faststart = make(&dir, "faststart.mp4", &args);
    for (name, bytes, fast) in [
        ("moov_last", &moov_last, false),
        ("faststart", &faststart, true),
    ] {
        check_duration(name, bytes, "video/mp4", seconds);
        let info = inspect_mp4(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((info.width, info.height), (320, 240), "{name}");
        assert_eq!(info.video_codec, "avc1");
        assert_eq!(info.video_frames, 126, "{name}");
        assert!((info.fps - 30.0).abs() < 0.01, "{name}: {}", info.fps);
        assert!((info.video_duration_seconds - seconds).abs() <= TOLERANCE);
        assert!(info.has_audio);
        assert_eq!(info.audio_codec.as_deref(), Some("mp4a"));
        assert!((info.audio_duration_seconds.unwrap_or(0.0) - seconds).abs() <= TOLERANCE);
        assert_eq!(info.faststart, fast, "{name}");
    }

    let mut args = vec!["-f", "lavfi", "-i", &v];
    args.extend(h264);
    args.extend(["-g", "30", "-movflags", "frag_keyframe+empty_moov"]);
    let fragmented = make(&dir, "fragmented.mp4", &args);
    check_duration("fragmented", &fragmented, "video/mp4", seconds);
    let info = inspect_mp4(&fragmented).expect("fragmented inspects");
    assert_eq!(info.video_frames, 126);
    assert!(!info.has_audio);

    let v24 = video(seconds, "640x360", 24);
    let mut args = vec!["-f", "lavfi", "-i", &v24];
    args.extend(h264);
    let mov = make(&dir, "clip.mov", &args);
    check_duration("mov", &mov, "video/quicktime", seconds);
    let info = inspect_mp4(&mov).expect("mov inspects");
    assert_eq!((info.width, info.height), (640, 360));

    let vp8 = make(
        &dir,
        "vp8.webm",
        &["-f", "lavfi", "-i", &v, "-c:v", "libvpx", "-b:v", "300k"],
    );
    check_duration("vp8 webm", &vp8, "video/webm", seconds);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn encoder_images_inspect_true() {
    if !ffmpeg_available() {
        eprintln!("ffmpeg is not installed: real-world cross-check skipped");
        return;
    }
    let dir = scratch_dir("images");
    let source = video(1.0, "301x211", 1);
    for (name, mime) in [
        ("img.png", "image/png"),
        ("img.jpg", "image/jpeg"),
        ("img.webp", "image/webp"),
        ("img.gif", "image/gif"),
    ] {
        let bytes = make(
            &dir,
            name,
            &["-f", "lavfi", "-i", &source, "-frames:v", "1"],
        );
        let sniffed = sniff(&bytes).expect("sniffs");
        assert_eq!(
            (sniffed.mime, sniffed.kind),
            (mime, MediaKind::Image),
            "{name}"
        );
        let info = inspect_image(&bytes, mime, &ImageLimits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((info.width, info.height), (301, 211), "{name}");
        let cut = &bytes[..bytes.len() * 3 / 4];
        assert!(
            inspect_image(cut, mime, &ImageLimits::default()).is_err(),
            "{name} cut"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
