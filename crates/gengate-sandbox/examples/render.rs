//! Renders one sandbox video and reports how long it took.
//!
//! `cargo run --release --example render -- WIDTHxHEIGHT SECONDS [sound] [multi] [ref=IMAGE.png]... [out.mp4]`

use std::time::Instant;

use gengate_sandbox::{RenderSpec, RgbImage, render};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size = args.first().map_or("1280x720", String::as_str);
    let (w, h) = size.split_once('x').ok_or("size must look like 1280x720")?;
    let duration_seconds = args.get(1).map_or(Ok(5), |s| s.parse())?;
    let spec = RenderSpec {
        width: w.parse()?,
        height: h.parse()?,
        fps: 24,
        duration_seconds,
        sound: args.iter().any(|a| a == "sound"),
        multi_shots: args.iter().any(|a| a == "multi"),
        prompt: "A lighthouse keeper feeds a cat on a stormy night, cinematic, 35mm".to_owned(),
        references: args
            .iter()
            .filter_map(|a| a.strip_prefix("ref="))
            .map(load)
            .collect::<Result<_, _>>()?,
    };
    let start = Instant::now();
    let rendered = render(&spec)?;
    let elapsed = start.elapsed();
    println!(
        "{}x{} {}s sound={} multi={} refs={}: {:.2?} ({:.1} ms/frame), {} bytes",
        spec.width,
        spec.height,
        spec.duration_seconds,
        spec.sound,
        spec.multi_shots,
        spec.references.len(),
        elapsed,
        elapsed.as_secs_f64() * 1000.0 / rendered.frames as f64,
        rendered.mp4.len()
    );
    if let Some(path) = args.iter().find(|a| a.ends_with(".mp4")) {
        std::fs::write(path, &rendered.mp4)?;
    }
    Ok(())
}

fn load(path: &str) -> Result<RgbImage, image::ImageError> {
    let img = image::open(path)?.to_rgb8();
    Ok(RgbImage {
        width: img.width(),
        height: img.height(),
        pixels: img.into_raw(),
    })
}
