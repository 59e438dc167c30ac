//! `inspect_image`, `decode_rgb8` and `to_png` on honest and hostile images.

use std::time::{Duration, Instant};

use gengate_media::corpus;
use gengate_media::{
    ImageInfo, ImageLimits, MediaError, decode_rgb8, inspect_image, sniff, to_png,
};

fn limits() -> ImageLimits {
    ImageLimits::default()
}

#[test]
fn default_limits() {
    let l = ImageLimits::default();
    assert_eq!((l.max_width, l.max_height), (16_384, 16_384));
    assert_eq!(l.max_alloc_bytes, 512 * 1024 * 1024);
}

#[test]
fn every_format_reports_its_size() {
    for (w, h) in [(1, 1), (300, 200), (17, 911), (1024, 768)] {
        for (mime, bytes) in [
            ("image/png", corpus::png(w, h)),
            ("image/jpeg", corpus::jpeg(w, h)),
            ("image/webp", corpus::webp(w, h)),
            ("image/gif", corpus::gif(w, h)),
        ] {
            assert_eq!(sniff(&bytes).map(|s| s.mime), Some(mime));
            let info = inspect_image(&bytes, mime, &limits())
                .unwrap_or_else(|e| panic!("{mime} {w}x{h}: {e}"));
            assert_eq!(
                info,
                ImageInfo {
                    width: w,
                    height: h
                },
                "{mime}"
            );
        }
    }
}

#[test]
fn png_declared_as_jpeg_does_not_decode_as_jpeg() {
    let png = corpus::png(40, 30);
    let err = inspect_image(&png, "image/jpeg", &limits()).expect_err("not a JPEG");
    assert!(matches!(err, MediaError::DoesNotDecode { .. }), "{err:?}");
    assert!(
        err.to_string().contains("does not decode as image/jpeg"),
        "{err}"
    );
    // Decided by its bytes, it is fine.
    let sniffed = sniff(&png).expect("sniffs");
    assert_eq!(
        inspect_image(&png, sniffed.mime, &limits())
            .ok()
            .map(|i| i.width),
        Some(40)
    );
}

#[test]
fn truncated_png_is_refused() {
    let err =
        inspect_image(&corpus::truncated_png(), "image/png", &limits()).expect_err("truncated");
    assert!(
        err.to_string()
            .starts_with("file is truncated or does not decode as image/png"),
        "{err}"
    );
    // Every format, cut short, is refused the same way.
    for (mime, bytes) in [
        ("image/jpeg", corpus::jpeg(64, 64)),
        ("image/webp", corpus::webp(64, 64)),
        ("image/gif", corpus::gif(64, 64)),
    ] {
        let cut = &bytes[..bytes.len() * 2 / 3];
        let err = inspect_image(cut, mime, &limits()).expect_err(mime);
        assert!(
            matches!(err, MediaError::DoesNotDecode { .. }),
            "{mime}: {err:?}"
        );
    }
}

#[test]
fn text_named_png_is_refused() {
    let text = corpus::text_named_png();
    assert!(sniff(&text).is_none());
    let err = inspect_image(&text, "image/png", &limits()).expect_err("text");
    assert!(matches!(err, MediaError::DoesNotDecode { .. }), "{err:?}");
    assert!(matches!(
        decode_rgb8(&text, &limits()),
        Err(MediaError::UnknownType)
    ));
    assert!(matches!(
        to_png(&text, &limits()),
        Err(MediaError::UnknownType)
    ));
}

#[test]
fn bomb_is_refused_from_its_header_quickly() {
    let bomb = corpus::decompression_bomb_png();
    assert!(bomb.len() < 4096, "the bomb is {} bytes", bomb.len());
    let started = Instant::now();
    let err = inspect_image(&bomb, "image/png", &limits()).expect_err("bomb");
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            MediaError::ImageTooLarge {
                width: 60_000,
                height: 60_000,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "image is 60000x60000, larger than 16384x16384"
    );
    // Decoding 10.8 GB of pixels would take minutes (or fail to allocate); the header check
    // takes microseconds. The bound is loose only to survive a loaded CI machine.
    assert!(took < Duration::from_millis(500), "took {took:?}");
    assert!(matches!(
        decode_rgb8(&bomb, &limits()),
        Err(MediaError::ImageTooLarge { .. })
    ));
    assert!(matches!(
        to_png(&bomb, &limits()),
        Err(MediaError::ImageTooLarge { .. })
    ));
}

#[test]
fn memory_limit_applies_within_dimension_limits() {
    let png = corpus::png(400, 300);
    let tight = ImageLimits {
        max_alloc_bytes: 100_000,
        ..ImageLimits::default()
    };
    let err = inspect_image(&png, "image/png", &tight).expect_err("over memory");
    assert!(
        matches!(err, MediaError::ImageTooMuchMemory { .. }),
        "{err:?}"
    );
    let narrow = ImageLimits {
        max_width: 399,
        ..ImageLimits::default()
    };
    let err = inspect_image(&png, "image/png", &narrow).expect_err("too wide");
    assert_eq!(err.to_string(), "image is 400x300, larger than 399x16384");
    let exact = ImageLimits {
        max_width: 400,
        max_height: 300,
        max_alloc_bytes: 400 * 300 * 4 * 4,
    };
    assert!(inspect_image(&png, "image/png", &exact).is_ok());
}

#[test]
fn zero_sized_header_is_refused() {
    let mut png = corpus::png(8, 8);
    // IHDR width sits at bytes 16..20.
    png[16..20].copy_from_slice(&0u32.to_be_bytes());
    let err = inspect_image(&png, "image/png", &limits()).expect_err("no pixels");
    assert!(matches!(err, MediaError::EmptyImage { .. }), "{err:?}");
}

#[test]
fn polyglot_is_a_png_and_to_png_drops_the_zip() {
    let poly = corpus::png_zip_polyglot();
    assert!(poly.windows(4).any(|w| w == b"PK\x03\x04"));
    assert_eq!(sniff(&poly).map(|s| s.mime), Some("image/png"));
    let info = inspect_image(&poly, "image/png", &limits()).expect("decodes as PNG");
    assert_eq!((info.width, info.height), (64, 64));
    let clean = to_png(&poly, &limits()).expect("re-encodes");
    assert!(!clean.windows(4).any(|w| w == b"PK\x03\x04"));
    assert_eq!(
        decode_rgb8(&clean, &limits()).expect("decodes"),
        decode_rgb8(&corpus::png(64, 64), &limits()).expect("decodes")
    );
}

#[test]
fn unsupported_types() {
    let png = corpus::png(8, 8);
    assert!(matches!(
        inspect_image(&png, "image/bmp", &limits()),
        Err(MediaError::UnsupportedMime { .. })
    ));
    assert!(matches!(
        inspect_image(&png, "video/mp4", &limits()),
        Err(MediaError::UnsupportedMime { .. })
    ));
    let wav = corpus::wav(0.1, 8_000);
    assert!(matches!(
        decode_rgb8(&wav, &limits()),
        Err(MediaError::UnsupportedMime { .. })
    ));
}

#[test]
fn decode_rgb8_every_format() {
    let (w, h) = (48, 20);
    let reference = decode_rgb8(&corpus::png(w, h), &limits()).expect("png");
    assert_eq!(reference.0, w);
    assert_eq!(reference.1, h);
    assert_eq!(reference.2.len(), (w * h * 3) as usize);
    // Lossless formats give back the very pixels.
    assert_eq!(
        decode_rgb8(&corpus::webp(w, h), &limits()).expect("webp"),
        reference
    );
    for (name, bytes) in [("jpeg", corpus::jpeg(w, h)), ("gif", corpus::gif(w, h))] {
        let (dw, dh, pixels) = decode_rgb8(&bytes, &limits()).expect(name);
        assert_eq!((dw, dh, pixels.len()), (w, h, reference.2.len()), "{name}");
        // Lossy or palettised, but recognisably the same picture.
        let mean_error = pixels
            .iter()
            .zip(&reference.2)
            .map(|(a, b)| f64::from(a.abs_diff(*b)))
            .sum::<f64>()
            / pixels.len() as f64;
        assert!(mean_error < 24.0, "{name}: mean error {mean_error}");
    }
}

#[test]
fn webp_becomes_png() {
    let webp = corpus::webp(300, 200);
    let png = to_png(&webp, &limits()).expect("converts");
    assert_eq!(sniff(&png).map(|s| s.mime), Some("image/png"));
    assert_eq!(
        inspect_image(&png, "image/png", &limits()).expect("valid PNG"),
        ImageInfo {
            width: 300,
            height: 200
        }
    );
    assert_eq!(
        decode_rgb8(&png, &limits()).expect("decodes"),
        decode_rgb8(&webp, &limits()).expect("decodes")
    );
    // JPEG and GIF convert too, and a PNG stays a PNG.
    for bytes in [
        corpus::jpeg(30, 10),
        corpus::gif(30, 10),
        corpus::png(30, 10),
    ] {
        let out = to_png(&bytes, &limits()).expect("converts");
        assert_eq!(sniff(&out).map(|s| s.mime), Some("image/png"));
    }
}

#[test]
fn exif_orientation_is_applied() {
    // Stored 120x40, tagged "rotate 90° clockwise": displayed 40x120.
    let rotated = corpus::jpeg_with_orientation(120, 40, 6);
    assert_eq!(sniff(&rotated).map(|s| s.mime), Some("image/jpeg"));
    assert_eq!(
        inspect_image(&rotated, "image/jpeg", &limits()).expect("decodes"),
        ImageInfo {
            width: 40,
            height: 120
        }
    );
    let (w, h, pixels) = decode_rgb8(&rotated, &limits()).expect("decodes");
    assert_eq!((w, h, pixels.len()), (40, 120, 40 * 120 * 3));
    let png = to_png(&rotated, &limits()).expect("converts");
    assert_eq!(
        inspect_image(&png, "image/png", &limits()).expect("decodes"),
        ImageInfo {
            width: 40,
            height: 120
        }
    );
    // Orientation 1 (upright) and 3 (half turn) keep the stored size.
    for orientation in [1, 3] {
        let jpeg = corpus::jpeg_with_orientation(120, 40, orientation);
        assert_eq!(
            inspect_image(&jpeg, "image/jpeg", &limits()).expect("decodes"),
            ImageInfo {
                width: 120,
                height: 40
            }
        );
    }
}
