//! Reference images: converted once to Y′CbCr, then resampled per frame
//! through a moving window (pan/zoom, the "Ken Burns" move).

use crate::RgbImage;
use crate::picture::{Picture, Yuv};

/// A reference image as three full-resolution planes (4:4:4), so chroma can
/// be sampled at exactly the position each output chroma sample needs.
pub struct Prepared {
    w: usize,
    h: usize,
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

/// Which part of the image fills the frame.
#[derive(Debug, Clone, Copy)]
pub struct View {
    /// 1.0 = the whole image just covers the frame; larger zooms in.
    pub zoom: f64,
    /// Where the window sits in the slack left over, 0.0 (left/top) to 1.0 (right/bottom).
    pub fx: f64,
    pub fy: f64,
}

impl Prepared {
    /// Converts `image` for output frames of `out_w × out_h`. An image at
    /// least twice the size the frame needs is box-filtered down first (to
    /// between 1× and 2× of it), which avoids aliasing and keeps the
    /// per-frame resampling proportional to the output, not the upload.
    pub fn new(image: &RgbImage, out_w: usize, out_h: usize) -> Prepared {
        let (sw, sh) = (image.width as usize, image.height as usize);
        let cover = (out_w as f64 / sw as f64).max(out_h as f64 / sh as f64);
        let k = ((1.0 / cover).floor() as usize).clamp(1, sw.min(sh));
        let (w, h) = (sw / k, sh / k);
        let mut p = Prepared {
            w,
            h,
            y: Vec::with_capacity(w * h),
            u: Vec::with_capacity(w * h),
            v: Vec::with_capacity(w * h),
        };
        let area = (k * k) as u32;
        for by in 0..h {
            for bx in 0..w {
                let mut sum = [0u32; 3];
                for yy in by * k..(by + 1) * k {
                    let start = (yy * sw + bx * k) * 3;
                    for px in image.pixels[start..start + k * 3].chunks_exact(3) {
                        sum[0] += u32::from(px[0]);
                        sum[1] += u32::from(px[1]);
                        sum[2] += u32::from(px[2]);
                    }
                }
                let avg = |s: u32| ((s + area / 2) / area) as u8;
                let c = Yuv::from_rgb(avg(sum[0]), avg(sum[1]), avg(sum[2]));
                p.y.push(c.y);
                p.u.push(c.u);
                p.v.push(c.v);
            }
        }
        p
    }

    /// Fills the whole picture with the part of the image `view` selects,
    /// bilinearly resampled.
    pub fn draw(&self, pic: &mut Picture, view: View, scratch: &mut Vec<u8>) {
        let (ow, oh) = (pic.width as f64, pic.height as f64);
        let cover = (ow / self.w as f64).max(oh / self.h as f64);
        let scale = cover * view.zoom.max(1.0);
        let (win_w, win_h) = (ow / scale, oh / scale);
        let x0 = view.fx.clamp(0.0, 1.0) * (self.w as f64 - win_w).max(0.0);
        let y0 = view.fy.clamp(0.0, 1.0) * (self.h as f64 - win_h).max(0.0);
        let step = 1.0 / scale;

        let lx = Taps::new(pic.width, 1.0, x0, step, self.w);
        let ly = Taps::new(pic.height, 1.0, y0, step, self.h);
        let cx = Taps::new(pic.cw(), 2.0, x0, step, self.w);
        let cy = Taps::new(pic.ch(), 2.0, y0, step, self.h);

        let (width, cw) = (pic.width, pic.cw());
        let src = Plane {
            data: &self.y,
            stride: self.w,
        };
        resample(src, &mut pic.y, width, &lx, &ly, scratch);
        let src = Plane {
            data: &self.u,
            stride: self.w,
        };
        resample(src, &mut pic.u, cw, &cx, &cy, scratch);
        let src = Plane {
            data: &self.v,
            stride: self.w,
        };
        resample(src, &mut pic.v, cw, &cx, &cy, scratch);
    }
}

#[derive(Clone, Copy)]
struct Plane<'a> {
    data: &'a [u8],
    stride: usize,
}

/// Bilinear taps along one axis: for output sample `k`, source indices
/// `first + index[k]` and the one after it, the latter weighted `weight[k]/256`.
struct Taps {
    first: usize,
    /// One past the last source index any tap reads (the `+1` neighbour included).
    end: usize,
    index: Vec<usize>,
    weight: Vec<u32>,
}

impl Taps {
    /// Taps for `n` output samples, each `subsample` output pixels wide,
    /// mapping output sample centres to source sample centres.
    fn new(n: usize, subsample: f64, origin: f64, step: f64, len: usize) -> Taps {
        let last = len.saturating_sub(1);
        let mut raw = Vec::with_capacity(n);
        for k in 0..n {
            let centre = (k as f64 + 0.5) * subsample;
            let pos = (origin + centre * step - 0.5).clamp(0.0, last as f64);
            let i = (pos.floor() as usize).min(last);
            let w = (((pos - i as f64) * 256.0).round() as u32).min(256);
            raw.push((i, w));
        }
        let first = raw.iter().map(|t| t.0).min().unwrap_or(0);
        let end = raw
            .iter()
            .map(|t| (t.0 + 2).min(len))
            .max()
            .unwrap_or(first + 1);
        Taps {
            first,
            end,
            index: raw.iter().map(|t| t.0 - first).collect(),
            weight: raw.iter().map(|t| t.1).collect(),
        }
    }
}

/// Separable bilinear resampling: each output row first blends the two
/// source rows it sits between (only over the columns the row needs), then
/// interpolates along that blended row. The vertical pass vectorises; the
/// horizontal one is a gather, about 3 ns a sample.
fn resample(
    src: Plane<'_>,
    dst: &mut [u8],
    dst_stride: usize,
    xs: &Taps,
    ys: &Taps,
    line: &mut Vec<u8>,
) {
    let cols = xs.end - xs.first;
    // One spare sample so the right-hand neighbour of the last column exists.
    line.clear();
    line.resize(cols + 1, 0);
    for ((out, &iy), &fy) in dst
        .chunks_exact_mut(dst_stride)
        .zip(&ys.index)
        .zip(&ys.weight)
    {
        let y0 = ys.first + iy;
        let y1 = (y0 + 1).min(ys.end - 1);
        let r0 = &src.data[y0 * src.stride + xs.first..y0 * src.stride + xs.end];
        let r1 = &src.data[y1 * src.stride + xs.first..y1 * src.stride + xs.end];
        if fy == 0 {
            line[..cols].copy_from_slice(r0);
        } else {
            for ((l, &a), &b) in line.iter_mut().zip(r0).zip(r1) {
                *l = ((u32::from(a) * (256 - fy) + u32::from(b) * fy + 128) >> 8) as u8;
            }
        }
        line[cols] = line[cols - 1];
        for ((o, &ix), &fx) in out.iter_mut().zip(&xs.index).zip(&xs.weight) {
            let a = u32::from(line[ix]);
            let b = u32::from(line[ix + 1]);
            *o = ((a * (256 - fx) + b * fx + 128) >> 8) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> RgbImage {
        let mut pixels = Vec::new();
        for y in 0..h {
            for x in 0..w {
                pixels.extend_from_slice(&f(x, y));
            }
        }
        RgbImage {
            width: w,
            height: h,
            pixels,
        }
    }

    #[test]
    fn tiny_and_huge_images_fill_the_frame() {
        for img in [
            image(1, 1, |_, _| [255, 0, 0]),
            image(3, 1000, |x, _| [x as u8 * 80, 0, 0]),
            image(4000, 10, |_, y| [0, y as u8 * 20, 0]),
        ] {
            let prepared = Prepared::new(&img, 64, 36);
            let mut pic = Picture::new(64, 36);
            for zoom in [1.0, 1.5, 40.0] {
                prepared.draw(
                    &mut pic,
                    View {
                        zoom,
                        fx: 0.3,
                        fy: 1.0,
                    },
                    &mut Vec::new(),
                );
            }
        }
    }

    #[test]
    fn big_images_are_reduced_before_use() {
        let img = image(1000, 1000, |_, _| [10, 20, 30]);
        let prepared = Prepared::new(&img, 100, 50);
        assert_eq!((prepared.w, prepared.h), (100, 100));
    }

    #[test]
    fn window_follows_the_view() {
        // Left half black, right half white.
        let img = image(200, 100, |x, _| if x < 100 { [0; 3] } else { [255; 3] });
        let prepared = Prepared::new(&img, 100, 100);
        let mut pic = Picture::new(100, 100);
        prepared.draw(
            &mut pic,
            View {
                zoom: 1.0,
                fx: 0.0,
                fy: 0.5,
            },
            &mut Vec::new(),
        );
        assert!(pic.y.iter().all(|&v| v < 40), "left window should be dark");
        prepared.draw(
            &mut pic,
            View {
                zoom: 1.0,
                fx: 1.0,
                fy: 0.5,
            },
            &mut Vec::new(),
        );
        assert!(
            pic.y.iter().all(|&v| v > 200),
            "right window should be light"
        );
    }
}
