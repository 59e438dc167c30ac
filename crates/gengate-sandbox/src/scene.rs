//! What each frame shows. Everything is a pure function of the frame index,
//! so [`crate::render_frame`] can draw any single frame on its own.

use crate::RenderSpec;
use crate::font::{self, GLYPH};
use crate::picture::{Picture, Yuv};
use crate::reference::{Prepared, View};

/// Number of shots when `multi_shots` is set.
pub const SHOTS: u64 = 3;

struct Palette {
    a: Yuv,
    b: Yuv,
    accent: Yuv,
    second: Yuv,
}

// Each shot gets its own palette so a cut is obvious at a glance.
const PALETTES: [Palette; 3] = [
    // Dusk: navy sky into orange, a yellow sun.
    Palette {
        a: Yuv::from_rgb(22, 28, 72),
        b: Yuv::from_rgb(236, 122, 70),
        accent: Yuv::from_rgb(255, 214, 92),
        second: Yuv::from_rgb(34, 30, 46),
    },
    // Meadow: teal into lime, pale and pink blocks.
    Palette {
        a: Yuv::from_rgb(14, 92, 84),
        b: Yuv::from_rgb(168, 222, 118),
        accent: Yuv::from_rgb(246, 244, 232),
        second: Yuv::from_rgb(236, 76, 122),
    },
    // Night: violet into near-black, cyan stripes, an orange ball.
    Palette {
        a: Yuv::from_rgb(78, 28, 112),
        b: Yuv::from_rgb(14, 12, 24),
        accent: Yuv::from_rgb(255, 150, 40),
        second: Yuv::from_rgb(60, 200, 236),
    },
];

/// How the frames divide into shots. Small and `Copy` so the audio track
/// can follow the same cuts on another thread.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    frames: u64,
    shots: u64,
}

impl Timeline {
    pub fn new(spec: &RenderSpec) -> Timeline {
        Timeline {
            frames: spec.frame_count().max(1),
            shots: if spec.multi_shots { SHOTS } else { 1 },
        }
    }

    /// The shot a frame belongs to and how far into that shot it is (0.0..1.0).
    pub fn shot_of(&self, frame: u64) -> (u64, f64) {
        let shot = (frame * self.shots / self.frames).min(self.shots - 1);
        let start = self.shot_start(shot);
        let len = self.shot_start(shot + 1) - start;
        (shot, frame.saturating_sub(start) as f64 / len.max(1) as f64)
    }

    /// First frame of `shot`; `shot == shots` gives the frame count.
    pub fn shot_start(&self, shot: u64) -> u64 {
        // Ceiling division keeps shot_of and shot_start in agreement.
        (shot * self.frames).div_ceil(self.shots)
    }

    /// Whether `frame` is the first frame of a shot (the encoder starts a
    /// new IDR there so the cut is clean).
    #[cfg_attr(
        not(feature = "h264"),
        allow(dead_code, reason = "only the encoder and tests need cuts")
    )]
    pub fn is_cut(&self, frame: u64) -> bool {
        frame > 0 && (1..self.shots).any(|s| self.shot_start(s) == frame)
    }
}

pub struct Scene {
    width: usize,
    height: usize,
    fps: u64,
    frames: u64,
    shots: u64,
    timeline: Timeline,
    refs: Vec<Prepared>,
    prompt: Vec<String>,
    scale: usize,
    /// Gradient backgrounds do not move within a shot, so each is drawn once.
    backgrounds: Vec<Option<Picture>>,
    /// Second layer for crossfades between two reference images.
    scratch: Option<Picture>,
    /// Row buffer for resampling reference images.
    line: Vec<u8>,
}

impl Scene {
    pub fn new(spec: &RenderSpec) -> Scene {
        let (width, height) = (spec.width as usize, spec.height as usize);
        // 3× at 720p, 4× at 1080p: about 40 characters across a 720-wide frame.
        let scale = (width.min(height) / 240).max(1);
        let margin = 2 * GLYPH * scale;
        let columns = width.saturating_sub(2 * margin) / (GLYPH * scale);
        let line_h = line_height(scale);
        // The prompt band may take about a third of the frame.
        let max_lines = (height / 3 / line_h).clamp(1, 8);
        let shots = if spec.multi_shots { SHOTS } else { 1 };
        Scene {
            width,
            height,
            fps: u64::from(spec.fps),
            frames: spec.frame_count(),
            shots,
            refs: spec
                .references
                .iter()
                .map(|r| Prepared::new(r, width, height))
                .collect(),
            prompt: font::wrap(&spec.prompt, columns.max(1), max_lines),
            scale,
            backgrounds: (0..shots).map(|_| None).collect(),
            scratch: None,
            line: Vec::new(),
            timeline: Timeline::new(spec),
        }
    }

    #[cfg_attr(
        not(feature = "h264"),
        expect(dead_code, reason = "only the encoder shares it")
    )]
    pub fn timeline(&self) -> Timeline {
        self.timeline
    }

    pub fn draw(&mut self, frame: u64, pic: &mut Picture) {
        let (shot, local) = self.timeline.shot_of(frame);
        let global = frame as f64 / (self.frames - 1).max(1) as f64;
        match self.refs.len() {
            0 => self.draw_synthetic(shot, local, pic),
            1 => {
                let view = single_reference_view(self.shots, shot, local);
                self.refs[0].draw(pic, view, &mut self.line);
            }
            _ => self.draw_two_references(shot, local, global, pic),
        }
        if !self.refs.is_empty() {
            // Each shot over a reference gets its own grade (neutral, warm,
            // cool) on top of its own framing, so cuts read as cuts.
            let (du, dv) = [(0, 0), (-8, 10), (10, -6)][shot as usize % 3];
            if (du, dv) != (0, 0) {
                pic.tint(du, dv);
            }
        }
        self.draw_overlays(frame, shot, pic);
    }

    fn draw_synthetic(&mut self, shot: u64, t: f64, pic: &mut Picture) {
        let idx = shot as usize % PALETTES.len();
        let pal = &PALETTES[idx];
        let (w, h) = (self.width as i64, self.height as i64);
        let background = self.backgrounds[idx].get_or_insert_with(|| {
            let mut bg = Picture::new(w as u32, h as u32);
            match idx {
                0 => {
                    bg.vertical_gradient(pal.a, pal.b);
                    // Dark ground below the horizon.
                    bg.fill_rect(0, h * 2 / 3, w, h, pal.second);
                }
                1 => bg.horizontal_gradient(pal.a, pal.b),
                _ => {
                    bg.vertical_gradient(pal.a, pal.b);
                    let stripe = (w / 24).max(2);
                    for k in 0..6 {
                        bg.fill_rect(
                            w * (2 * k + 1) / 12 - stripe / 2,
                            0,
                            stripe,
                            h,
                            pal.second.mix(pal.b, 96),
                        );
                    }
                }
            }
            bg
        });
        pic.copy_from(background);
        let unit = w.min(h);
        match idx {
            0 => {
                // A sun crossing the sky on a low arc.
                let r = unit / 8;
                let x = lerp(-(r as f64), (w + r) as f64, t);
                let arc = (t * std::f64::consts::PI).sin();
                let y = (h * 2 / 3) as f64 - arc * (h as f64 * 0.45);
                pic.fill_circle(x as i64, y as i64, r, pal.accent);
            }
            1 => {
                // Two blocks sliding past each other.
                let size = unit / 4;
                let y1 = lerp(-(size as f64), h as f64, t) as i64;
                let y2 = lerp(h as f64, -(size as f64), t) as i64;
                pic.fill_rect(w / 4 - size / 2, y1, size, size, pal.accent);
                pic.fill_rect(w * 3 / 4 - size / 2, y2, size, size, pal.second);
            }
            _ => {
                // A ball bouncing across the stripes.
                let r = unit / 10;
                let bounce = (t * std::f64::consts::PI * 3.0).sin().abs();
                let x = lerp(r as f64, (w - r) as f64, t) as i64;
                let y = (h - r) as f64 - bounce * (h as f64 * 0.6);
                pic.fill_circle(x, y as i64, r, pal.accent);
            }
        }
    }

    fn draw_two_references(&mut self, shot: u64, local: f64, global: f64, pic: &mut Picture) {
        // With one shot the first image holds for a while, a move carries
        // it over to the second, and the second settles; with three shots
        // each of those stages is its own shot.
        let (stage, t) = if self.shots == 1 {
            match global {
                g if g < 0.3 => (0, g / 0.3),
                g if g < 0.7 => (1, (g - 0.3) / 0.4),
                g => (2, (g - 0.7) / 0.3),
            }
        } else {
            (shot, local)
        };
        let (first, second) = (&self.refs[0], &self.refs[1]);
        let line = &mut self.line;
        match stage {
            0 => first.draw(
                pic,
                View {
                    zoom: lerp(1.0, 1.12, t),
                    fx: 0.5,
                    fy: 0.5,
                },
                line,
            ),
            1 => {
                // Both images drift the same way while the second fades in.
                first.draw(
                    pic,
                    View {
                        zoom: 1.12,
                        fx: lerp(0.5, 1.0, t),
                        fy: 0.5,
                    },
                    line,
                );
                let scratch = self
                    .scratch
                    .get_or_insert_with(|| Picture::new(self.width as u32, self.height as u32));
                second.draw(
                    scratch,
                    View {
                        zoom: 1.12,
                        fx: lerp(0.0, 0.5, t),
                        fy: 0.5,
                    },
                    line,
                );
                blend(pic, scratch, (smoothstep(t) * 256.0) as u32);
            }
            _ => second.draw(
                pic,
                View {
                    zoom: lerp(1.12, 1.0, t),
                    fx: 0.5,
                    fy: 0.5,
                },
                line,
            ),
        }
    }

    fn draw_overlays(&self, frame: u64, shot: u64, pic: &mut Picture) {
        let s = self.scale;
        let g = (GLYPH * s) as i64;
        let margin = 2 * g;
        let pad = (s * 2) as i64;
        let accent = PALETTES[shot as usize % PALETTES.len()].accent;

        // Timecode and frame counter, top left.
        let fps = self.fps.max(1);
        let secs = frame / fps;
        let timecode = format!(
            "{:02}:{:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            frame % fps
        );
        let digits = self.frames.to_string().len();
        let counter = format!("F {:0digits$}/{}", frame + 1, self.frames);
        let top_w = g * timecode.len().max(counter.len()) as i64;
        pic.shade_rect(margin - pad, margin - pad, top_w + 2 * pad, 2 * g + 3 * pad);
        font::draw_text(pic, margin, margin, s, &timecode);
        font::draw_text(pic, margin, margin + g + pad, s, &counter);

        // Provider tag and shot number, top right.
        let tag = if self.shots > 1 {
            format!("SANDBOX {}/{}", shot + 1, self.shots)
        } else {
            "SANDBOX".to_owned()
        };
        let tag_w = g * tag.len() as i64;
        let tag_x = self.width as i64 - margin - tag_w;
        pic.fill_rect(
            tag_x - pad,
            margin - pad,
            tag_w + 2 * pad,
            g + 2 * pad,
            accent.mix(Yuv::BLACK, 128),
        );
        font::draw_text(pic, tag_x, margin, s, &tag);

        // Progress bar along the bottom edge.
        let bar_h = (s as i64 * 2).max(2);
        let bottom = self.height as i64 - bar_h;
        let done = (self.width as u64 * (frame + 1) / self.frames) as i64;
        pic.fill_rect(0, bottom, done, bar_h, accent);

        // The prompt, bottom, on a shaded band.
        if !self.prompt.is_empty() {
            let line_h = line_height(s) as i64;
            let band_h = line_h * self.prompt.len() as i64 + 2 * pad;
            let band_y = bottom - margin / 2 - band_h;
            let widest = self
                .prompt
                .iter()
                .map(|l| l.chars().count())
                .max()
                .unwrap_or(0) as i64;
            pic.shade_rect(margin - pad, band_y, g * widest + 2 * pad, band_h);
            for (i, line) in self.prompt.iter().enumerate() {
                font::draw_text(pic, margin, band_y + pad + i as i64 * line_h, s, line);
            }
        }
    }
}

fn line_height(scale: usize) -> usize {
    (GLYPH + 3) * scale
}

fn single_reference_view(shots: u64, shot: u64, t: f64) -> View {
    if shots == 1 {
        // Slow push in while drifting left to right.
        return View {
            zoom: lerp(1.0, 1.2, t),
            fx: lerp(0.2, 0.8, t),
            fy: 0.5,
        };
    }
    match shot {
        // Wide, pushing in.
        0 => View {
            zoom: lerp(1.0, 1.15, t),
            fx: 0.5,
            fy: 0.5,
        },
        // Close-up travelling left to right across the top.
        1 => View {
            zoom: 1.8,
            fx: lerp(0.0, 1.0, t),
            fy: 0.25,
        },
        // Medium, pulling out from the bottom right.
        _ => View {
            zoom: lerp(1.45, 1.1, t),
            fx: 0.85,
            fy: lerp(0.9, 0.6, t),
        },
    }
}

fn blend(dst: &mut Picture, src: &Picture, t: u32) {
    let t = t.min(256);
    for (planes_d, planes_s) in [
        (&mut dst.y, &src.y),
        (&mut dst.u, &src.u),
        (&mut dst.v, &src.v),
    ] {
        for (d, s) in planes_d.iter_mut().zip(planes_s.iter()) {
            *d = crate::picture::mix_u8(*d, *s, t);
        }
    }
}

fn lerp(a: f64, b: f64, t: f64) -> f64 {
    a + (b - a) * t.clamp(0.0, 1.0)
}

fn smoothstep(t: f64) -> f64 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RgbImage;

    fn spec(multi: bool, refs: usize, fps: u32, secs: u32) -> RenderSpec {
        let img = |c: u8| RgbImage {
            width: 40,
            height: 30,
            pixels: vec![c; 40 * 30 * 3],
        };
        RenderSpec {
            width: 64,
            height: 48,
            fps,
            duration_seconds: secs,
            sound: false,
            multi_shots: multi,
            prompt: "test".into(),
            references: (0..refs).map(|i| img(50 + 100 * i as u8)).collect(),
        }
    }

    #[test]
    fn shots_partition_the_frames() {
        for (fps, secs) in [(24, 3), (24, 15), (1, 2), (7, 1), (60, 60)] {
            let scene = Timeline::new(&spec(true, 0, fps, secs));
            let n = u64::from(fps * secs);
            let mut cuts = 0;
            let mut last = 0;
            for f in 0..n {
                let (shot, t) = scene.shot_of(f);
                assert!((0.0..1.0).contains(&t), "frame {f}: t {t}");
                assert!(shot == last || shot == last + 1);
                if scene.is_cut(f) {
                    cuts += 1;
                    assert_eq!(shot, last + 1, "cut at {f}");
                }
                last = shot;
            }
            assert_eq!(cuts, SHOTS.min(n) - 1, "fps {fps} secs {secs}");
        }
    }

    #[test]
    fn every_variant_draws_every_frame() {
        for multi in [false, true] {
            for refs in 0..=2 {
                let mut scene = Scene::new(&spec(multi, refs, 4, 3));
                let mut pic = Picture::new(64, 48);
                for f in 0..12 {
                    scene.draw(f, &mut pic);
                }
            }
        }
    }
}
