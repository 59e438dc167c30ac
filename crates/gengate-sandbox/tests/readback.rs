//! Renders the variants the product asks for and reads every file back with
//! an independent MP4 parser (and OpenH264's decoder), rather than trusting
//! what the encoder and muxer say they wrote.

#![cfg(feature = "h264")]

mod mp4;

use gengate_sandbox::{RenderSpec, Rendered, RgbImage, render, render_frame};

/// Allowed gap between a track's duration and the requested one.
const TOLERANCE_SECONDS: f64 = 0.050;

fn reference(width: u32, height: u32, seed: u8) -> RgbImage {
    // A photo-like test card: two gradients, a bright disc and a grid, so
    // pan/zoom is visible and the two references are easy to tell apart.
    let mut pixels = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let fx = x * 255 / width.max(1);
            let fy = y * 255 / height.max(1);
            let (dx, dy) = (
                x as i64 - i64::from(width) / 3,
                y as i64 - i64::from(height) / 2,
            );
            let disc = dx * dx + dy * dy < i64::from(height * height / 16);
            let grid = x % 64 < 3 || y % 64 < 3;
            let px = if disc {
                [250, 240, 200]
            } else if grid {
                [30, 30, 30]
            } else if seed == 0 {
                [fx as u8, (fy / 2) as u8, 160]
            } else {
                [40, fy as u8, (255 - fx) as u8]
            };
            pixels.extend_from_slice(&px);
        }
    }
    RgbImage {
        width,
        height,
        pixels,
    }
}

fn spec(
    width: u32,
    height: u32,
    seconds: u32,
    sound: bool,
    multi: bool,
    refs: usize,
) -> RenderSpec {
    RenderSpec {
        width,
        height,
        fps: 24,
        duration_seconds: seconds,
        sound,
        multi_shots: multi,
        prompt:
            "A red fox trots across fresh snow at golden hour, slow dolly shot — «ÉTÉ» λ 中文 🎬"
                .to_owned(),
        references: [reference(800, 600, 0), reference(640, 960, 1)]
            .into_iter()
            .take(refs)
            .collect(),
    }
}

/// Everything the file must satisfy, checked from the bytes alone.
fn check_file(spec: &RenderSpec, out: &Rendered) -> mp4::Movie {
    let label = format!(
        "{}x{} {}s sound={} multi={} refs={}",
        spec.width,
        spec.height,
        spec.duration_seconds,
        spec.sound,
        spec.multi_shots,
        spec.references.len()
    );
    let frames = u64::from(spec.fps) * u64::from(spec.duration_seconds);
    let want = f64::from(spec.duration_seconds);

    assert_eq!(out.width, spec.width, "{label}");
    assert_eq!(out.height, spec.height, "{label}");
    assert_eq!(out.frames, frames, "{label}");
    assert!(
        (out.duration_seconds - want).abs() < TOLERANCE_SECONDS,
        "{label}"
    );
    assert_eq!(out.has_audio, spec.sound, "{label}");

    let movie = mp4::parse(&out.mp4).unwrap_or_else(|e| panic!("{label}: unreadable MP4: {e}"));

    // Fast start: ftyp, then moov, and the media data only after both.
    assert_eq!(
        movie.top.first().map(String::as_str),
        Some("ftyp"),
        "{label}: {:?}",
        movie.top
    );
    let moov = movie
        .top
        .iter()
        .position(|b| b == "moov")
        .unwrap_or(usize::MAX);
    let mdat = movie.top.iter().position(|b| b == "mdat").unwrap_or(0);
    assert!(
        moov < mdat,
        "{label}: moov must precede mdat: {:?}",
        movie.top
    );

    let movie_seconds = movie.movie_duration as f64 / f64::from(movie.movie_timescale);
    assert!(
        (movie_seconds - want).abs() < TOLERANCE_SECONDS,
        "{label}: mvhd {movie_seconds}"
    );

    // Video track.
    let video = movie
        .track(b"vide")
        .unwrap_or_else(|| panic!("{label}: no video track"));
    assert_eq!(&video.codec, b"avc1", "{label}");
    assert_eq!(
        video.tkhd_width,
        f64::from(spec.width),
        "{label}: tkhd width"
    );
    assert_eq!(
        video.tkhd_height,
        f64::from(spec.height),
        "{label}: tkhd height"
    );
    assert_eq!(
        video.entry_size,
        Some((spec.width as u16, spec.height as u16)),
        "{label}: avc1 size"
    );
    assert_eq!(
        video.samples.len() as u64,
        frames,
        "{label}: stsz sample count"
    );
    assert_eq!(
        video.sample_durations.len() as u64,
        frames,
        "{label}: stts sample count"
    );
    assert!(
        (video.duration_seconds() - want).abs() < TOLERANCE_SECONDS,
        "{label}: video mdhd {}",
        video.duration_seconds()
    );
    assert!(
        (video.stts_seconds() - want).abs() < TOLERANCE_SECONDS,
        "{label}: video stts"
    );
    let avcc = video
        .avcc
        .as_ref()
        .unwrap_or_else(|| panic!("{label}: no avcC"));
    assert_eq!(avcc.first(), Some(&1), "{label}: avcC version");
    mp4::avcc_parameter_sets(avcc).unwrap_or_else(|e| panic!("{label}: {e}"));

    // Every sample lies inside mdat and is a clean sequence of NAL units;
    // the first is an IDR and sync samples are exactly the IDR frames.
    let mut idr = Vec::new();
    for (i, &(offset, size)) in video.samples.iter().enumerate() {
        assert!(
            offset >= movie.mdat.0 && offset + u64::from(size) <= movie.mdat.1,
            "{label}: sample {i} outside mdat"
        );
        let bytes = &out.mp4[offset as usize..(offset + u64::from(size)) as usize];
        let types = mp4::nal_types(bytes).unwrap_or_else(|e| panic!("{label}: sample {i}: {e}"));
        assert!(
            types.iter().any(|&t| t == 1 || t == 5),
            "{label}: sample {i} has no slice: {types:?}"
        );
        if types.contains(&5) {
            idr.push(i as u32 + 1);
        }
    }
    assert_eq!(idr.first(), Some(&1), "{label}: first frame must be an IDR");
    let sync = video
        .sync
        .clone()
        .unwrap_or_else(|| panic!("{label}: no stss"));
    assert_eq!(sync, idr, "{label}: stss must list the IDR frames");

    // Audio exactly when asked for, as long as the video.
    let audio = movie.track(b"soun");
    assert_eq!(audio.is_some(), spec.sound, "{label}: audio track presence");
    assert_eq!(
        movie.tracks.len(),
        if spec.sound { 2 } else { 1 },
        "{label}"
    );
    if let Some(audio) = audio {
        assert_eq!(&audio.codec, b"Opus", "{label}");
        assert!(
            (audio.duration_seconds() - want).abs() < TOLERANCE_SECONDS,
            "{label}: audio mdhd {}",
            audio.duration_seconds()
        );
        assert!(
            (audio.stts_seconds() - want).abs() < TOLERANCE_SECONDS,
            "{label}: audio stts"
        );
        for (i, &(offset, size)) in audio.samples.iter().enumerate() {
            assert!(size > 0, "{label}: empty audio packet {i}");
            assert!(
                offset >= movie.mdat.0 && offset + u64::from(size) <= movie.mdat.1,
                "{label}: audio packet {i} outside mdat"
            );
        }
    }
    movie
}

/// Decodes the whole video track with OpenH264 and checks every frame
/// decodes at the right size; returns the decoded RGB of the frames asked for.
fn decode(out: &Rendered, movie: &mp4::Movie, keep: &[u64]) -> Vec<Vec<u8>> {
    use openh264::decoder::Decoder;
    use openh264::formats::YUVSource;

    let video = movie.track(b"vide").expect("video track");
    let mut decoder = Decoder::new().expect("decoder");
    let mut annex_b =
        mp4::avcc_parameter_sets(video.avcc.as_ref().expect("avcC")).expect("SPS/PPS");
    let mut kept = Vec::new();
    let mut decoded = 0u64;
    for (i, &(offset, size)) in video.samples.iter().enumerate() {
        let sample = &out.mp4[offset as usize..(offset + u64::from(size)) as usize];
        mp4::to_annex_b(sample, &mut annex_b).expect("AVCC sample");
        let frame = decoder
            .decode(&annex_b)
            .unwrap_or_else(|e| panic!("frame {i} does not decode: {e}"))
            .unwrap_or_else(|| panic!("frame {i} produced no picture"));
        assert_eq!(
            frame.dimensions(),
            (out.width as usize, out.height as usize),
            "frame {i}"
        );
        if keep.contains(&(i as u64)) {
            let mut rgb = vec![0u8; out.width as usize * out.height as usize * 3];
            frame.write_rgb8(&mut rgb);
            kept.push(rgb);
        }
        decoded += 1;
        annex_b.clear();
    }
    assert_eq!(decoded, out.frames);
    kept
}

fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x.abs_diff(y)))
        .sum::<f64>()
        / a.len() as f64
}

fn render_and_check(spec: &RenderSpec) -> (Rendered, mp4::Movie) {
    let out = render(spec).unwrap_or_else(|e| panic!("render failed: {e}"));
    let movie = check_file(spec, &out);
    (out, movie)
}

#[test]
fn landscape_720p_3s_with_sound() {
    let spec = spec(1280, 720, 3, true, false, 0);
    let (out, movie) = render_and_check(&spec);
    // The decoded pictures match what was drawn (first, middle and last).
    let frames = [0, 36, 71];
    let decoded = decode(&out, &movie, &frames);
    for (frame, rgb) in frames.iter().zip(&decoded) {
        let drawn = render_frame(&spec, *frame).expect("frame");
        let diff = mean_abs_diff(&drawn.pixels, rgb);
        assert!(
            diff < 4.0,
            "frame {frame} differs from the drawing by {diff:.2} on average"
        );
    }
}

#[test]
fn portrait_720p_3s_multi_shot_one_reference_silent() {
    let spec = spec(720, 1280, 3, false, true, 1);
    let (out, movie) = render_and_check(&spec);
    // A hard cut starts each shot with an IDR frame.
    let sync = movie
        .track(b"vide")
        .and_then(|v| v.sync.clone())
        .expect("stss");
    for cut in [1 + 24, 1 + 48] {
        assert!(
            sync.contains(&cut),
            "no IDR at the cut to sample {cut}: {sync:?}"
        );
    }
    decode(&out, &movie, &[]);
}

#[test]
fn square_720_3s_multi_shot_two_references_with_sound() {
    let spec = spec(720, 720, 3, true, true, 2);
    let (out, movie) = render_and_check(&spec);
    decode(&out, &movie, &[]);
}

#[test]
fn landscape_1080p_15s_multi_shot_with_sound() {
    let spec = spec(1920, 1080, 15, true, true, 0);
    let (out, movie) = render_and_check(&spec);
    assert!(
        out.mp4.len() < 8 * 1024 * 1024,
        "{} bytes is more than a sandbox clip needs",
        out.mp4.len()
    );
    decode(&out, &movie, &[]);
}

#[test]
fn portrait_1080p_3s_two_references_silent() {
    render_and_check(&spec(1080, 1920, 3, false, false, 2));
}

#[test]
fn square_1080p_5s_one_reference_with_sound() {
    render_and_check(&spec(1080, 1080, 5, true, false, 1));
}

#[test]
fn odd_frame_rates_and_tiny_frames_still_add_up() {
    // Not what the product asks for, but the timing must hold for any rate.
    for (w, h, fps, secs) in [(16, 16, 7, 1), (64, 36, 30, 2), (320, 180, 60, 1)] {
        let spec = RenderSpec {
            width: w,
            height: h,
            fps,
            duration_seconds: secs,
            sound: true,
            multi_shots: true,
            prompt: "tiny".into(),
            references: vec![reference(3, 2, 0)],
        };
        render_and_check(&spec);
    }
}
