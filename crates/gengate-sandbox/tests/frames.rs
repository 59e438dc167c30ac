//! What the picture shows, checked on drawn frames (no codec needed), and
//! the spec validation every entry point shares.

use gengate_sandbox::{RenderError, RenderSpec, RgbImage, render, render_frame};

fn solid(width: u32, height: u32, rgb: [u8; 3]) -> RgbImage {
    RgbImage {
        width,
        height,
        pixels: rgb
            .iter()
            .copied()
            .cycle()
            .take((width * height * 3) as usize)
            .collect(),
    }
}

fn base() -> RenderSpec {
    RenderSpec {
        width: 320,
        height: 180,
        fps: 24,
        duration_seconds: 3,
        sound: false,
        multi_shots: false,
        prompt: "hello sandbox".into(),
        references: Vec::new(),
    }
}

/// Mean colour of the central area, away from the overlays.
fn centre_mean(img: &RgbImage) -> [f64; 3] {
    let (w, h) = (img.width as usize, img.height as usize);
    let mut sum = [0f64; 3];
    let mut n = 0f64;
    for y in h * 3 / 10..h * 6 / 10 {
        for x in w * 3 / 10..w * 7 / 10 {
            let i = (y * w + x) * 3;
            for (total, &value) in sum.iter_mut().zip(&img.pixels[i..i + 3]) {
                *total += f64::from(value);
            }
            n += 1.0;
        }
    }
    sum.map(|s| s / n)
}

fn distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum()
}

#[test]
fn frames_have_the_requested_size_and_move() {
    let spec = base();
    let a = render_frame(&spec, 0).expect("frame 0");
    let b = render_frame(&spec, 40).expect("frame 40");
    assert_eq!((a.width, a.height), (320, 180));
    assert_eq!(a.pixels.len(), 320 * 180 * 3);
    assert_ne!(a.pixels, b.pixels, "the picture must change over time");
}

#[test]
fn multi_shot_cuts_change_the_palette() {
    let spec = RenderSpec {
        multi_shots: true,
        ..base()
    };
    // Last frame of each shot against the first frame of the next.
    for (before, after) in [(23, 24), (47, 48)] {
        let a = centre_mean(&render_frame(&spec, before).expect("frame"));
        let b = centre_mean(&render_frame(&spec, after).expect("frame"));
        assert!(
            distance(a, b) > 60.0,
            "cut at {after} is not visible: {a:?} vs {b:?}"
        );
    }
    // Within a shot, consecutive frames stay close.
    let a = centre_mean(&render_frame(&spec, 30).expect("frame"));
    let b = centre_mean(&render_frame(&spec, 31).expect("frame"));
    assert!(distance(a, b) < 40.0, "{a:?} vs {b:?}");
}

#[test]
fn one_reference_fills_the_frame() {
    let spec = RenderSpec {
        references: vec![solid(50, 80, [200, 40, 40])],
        ..base()
    };
    for frame in [0, 35, 71] {
        let m = centre_mean(&render_frame(&spec, frame).expect("frame"));
        assert!(
            distance(m, [200.0, 40.0, 40.0]) < 20.0,
            "frame {frame}: {m:?}"
        );
    }
}

#[test]
fn two_references_move_from_the_first_to_the_second() {
    let red = [210, 30, 30];
    let blue = [30, 60, 220];
    for multi_shots in [false, true] {
        let spec = RenderSpec {
            multi_shots,
            references: vec![solid(400, 300, red), solid(300, 400, blue)],
            ..base()
        };
        let first = centre_mean(&render_frame(&spec, 0).expect("frame"));
        let middle = centre_mean(&render_frame(&spec, 36).expect("frame"));
        let last = centre_mean(&render_frame(&spec, 71).expect("frame"));
        let (r, b) = (red.map(f64::from), blue.map(f64::from));
        // Shots over references are colour graded, so compare by nearness.
        assert!(
            distance(first, r) < 50.0,
            "multi={multi_shots} first {first:?}"
        );
        assert!(
            distance(last, b) < 50.0,
            "multi={multi_shots} last {last:?}"
        );
        // Halfway through, the picture is a mix of the two.
        assert!(
            distance(middle, r) > 40.0 && distance(middle, b) > 40.0,
            "multi={multi_shots} middle {middle:?}"
        );
    }
}

#[test]
fn prompt_is_drawn_and_any_unicode_is_safe() {
    let blank = RenderSpec {
        prompt: String::new(),
        ..base()
    };
    let with_text = base();
    let a = render_frame(&blank, 10).expect("frame");
    let b = render_frame(&with_text, 10).expect("frame");
    assert_ne!(a.pixels, b.pixels, "the prompt must show up in the picture");

    for prompt in [
        "\u{0}\u{1}\t\r\n\u{7f}".to_owned(),
        "🎬🦊 中文 العربية עברית ÅÉÎÕÜ ßæøπλΩ ぁあい".to_owned(),
        "x".repeat(100_000),
        "word ".repeat(20_000),
        "\n".repeat(1000),
        "\u{202e}\u{200b}\u{fe0f}\u{301}".to_owned(),
    ] {
        for (w, h) in [(16, 16), (320, 180), (180, 320)] {
            let spec = RenderSpec {
                prompt: prompt.clone(),
                width: w,
                height: h,
                ..base()
            };
            render_frame(&spec, 0).expect("any prompt renders");
        }
    }
}

fn invalid(spec: &RenderSpec) -> String {
    match render_frame(spec, 0) {
        Err(RenderError::InvalidSpec(msg)) => {
            // `render` must refuse the same spec the same way.
            assert!(matches!(render(spec), Err(RenderError::InvalidSpec(_))));
            msg
        }
        other => panic!("expected InvalidSpec, got {other:?}"),
    }
}

#[test]
fn bad_specs_are_refused_with_a_reason() {
    let cases: Vec<(RenderSpec, &str)> = vec![
        (
            RenderSpec {
                width: 1279,
                ..base()
            },
            "odd",
        ),
        (
            RenderSpec {
                height: 0,
                ..base()
            },
            "outside",
        ),
        (
            RenderSpec {
                width: 7680,
                ..base()
            },
            "outside",
        ),
        (
            RenderSpec {
                width: 3000,
                height: 3000,
                ..base()
            },
            "larger",
        ),
        (RenderSpec { fps: 0, ..base() }, "fps"),
        (
            RenderSpec {
                fps: 1000,
                ..base()
            },
            "fps",
        ),
        (
            RenderSpec {
                duration_seconds: 0,
                ..base()
            },
            "duration",
        ),
        (
            RenderSpec {
                duration_seconds: u32::MAX,
                ..base()
            },
            "duration",
        ),
        (
            RenderSpec {
                fps: 1,
                duration_seconds: 1,
                ..base()
            },
            "2 frames",
        ),
        (
            RenderSpec {
                references: vec![solid(2, 2, [0; 3]); 3],
                ..base()
            },
            "at most 2",
        ),
        (
            RenderSpec {
                references: vec![RgbImage {
                    width: 4,
                    height: 4,
                    pixels: vec![0; 47],
                }],
                ..base()
            },
            "needs 48 bytes",
        ),
        (
            RenderSpec {
                references: vec![RgbImage {
                    width: 0,
                    height: 4,
                    pixels: Vec::new(),
                }],
                ..base()
            },
            "no pixels",
        ),
        (
            RenderSpec {
                references: vec![RgbImage {
                    width: u32::MAX,
                    height: u32::MAX,
                    pixels: Vec::new(),
                }],
                ..base()
            },
            "more than",
        ),
    ];
    for (spec, needle) in cases {
        let msg = invalid(&spec);
        assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
    }
    assert!(matches!(
        render_frame(&base(), 72),
        Err(RenderError::InvalidSpec(msg)) if msg.contains("past the last frame")
    ));
}

#[cfg(not(feature = "h264"))]
#[test]
fn without_the_encoder_render_says_so() {
    let err = render(&base()).expect_err("no encoder");
    assert!(matches!(err, RenderError::EncoderUnavailable));
    assert!(err.to_string().contains("not compiled in"), "{err}");
}
