//! A 4:2:0 frame and the few drawing primitives the scene needs.
//!
//! Drawing happens straight in YUV (BT.709, limited range, the colour space
//! the encoder signals in the SPS) so no per-frame RGB→YUV conversion is
//! needed: at 1080p that conversion alone would cost as much as drawing.

use crate::RgbImage;

/// A colour already converted to BT.709 limited-range Y′CbCr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Yuv {
    pub y: u8,
    pub u: u8,
    pub v: u8,
}

impl Yuv {
    pub const WHITE: Yuv = Yuv::from_rgb(255, 255, 255);
    pub const BLACK: Yuv = Yuv::from_rgb(0, 0, 0);

    /// BT.709 limited-range coefficients scaled by 256; the chroma rows sum
    /// to zero so greys land exactly on 128.
    pub const fn from_rgb(r: u8, g: u8, b: u8) -> Yuv {
        let (r, g, b) = (r as i32, g as i32, b as i32);
        let y = ((47 * r + 157 * g + 16 * b + 128) >> 8) + 16;
        let u = ((-26 * r - 87 * g + 113 * b + 128) >> 8) + 128;
        let v = ((112 * r - 102 * g - 10 * b + 128) >> 8) + 128;
        Yuv {
            y: clamp_u8(y),
            u: clamp_u8(u),
            v: clamp_u8(v),
        }
    }

    /// Linear mix, `t` in 0..=256 (0 = self, 256 = other).
    pub const fn mix(self, other: Yuv, t: u32) -> Yuv {
        let t = if t > 256 { 256 } else { t };
        Yuv {
            y: mix_u8(self.y, other.y, t),
            u: mix_u8(self.u, other.u, t),
            v: mix_u8(self.v, other.v, t),
        }
    }
}

const fn clamp_u8(x: i32) -> u8 {
    if x < 0 {
        0
    } else if x > 255 {
        255
    } else {
        x as u8
    }
}

#[inline]
pub const fn mix_u8(a: u8, b: u8, t: u32) -> u8 {
    ((a as u32 * (256 - t) + b as u32 * t + 128) >> 8) as u8
}

/// Inverse of [`Yuv::from_rgb`], only used for previews and tests.
fn to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = (i32::from(y) - 16) * 298;
    let d = i32::from(u) - 128;
    let e = i32::from(v) - 128;
    let r = (c + 459 * e + 128) >> 8;
    let g = (c - 55 * d - 136 * e + 128) >> 8;
    let b = (c + 541 * d + 128) >> 8;
    [clamp_u8(r), clamp_u8(g), clamp_u8(b)]
}

/// Planar I420: full-size luma, half-size chroma in both directions.
#[derive(Clone)]
pub struct Picture {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl Picture {
    pub fn new(width: u32, height: u32) -> Picture {
        let (w, h) = (width as usize, height as usize);
        let chroma = (w / 2) * (h / 2);
        Picture {
            width: w,
            height: h,
            y: vec![16; w * h],
            u: vec![128; chroma],
            v: vec![128; chroma],
        }
    }

    pub fn cw(&self) -> usize {
        self.width / 2
    }

    pub fn ch(&self) -> usize {
        self.height / 2
    }

    pub fn copy_from(&mut self, other: &Picture) {
        self.y.copy_from_slice(&other.y);
        self.u.copy_from_slice(&other.u);
        self.v.copy_from_slice(&other.v);
    }

    /// Fills rows `y0..y1` with a colour that blends from `top` at `y0` to
    /// `bottom` at `y1`: each row is one memset, which keeps gradients cheap.
    pub fn vertical_gradient(&mut self, top: Yuv, bottom: Yuv) {
        let (w, h, cw) = (self.width, self.height, self.cw());
        let span = (h.max(2) - 1) as u32;
        for (row, line) in self.y.chunks_exact_mut(w).enumerate() {
            let t = (row as u32 * 256) / span;
            line.fill(top.mix(bottom, t).y);
        }
        for (row, (lu, lv)) in self
            .u
            .chunks_exact_mut(cw)
            .zip(self.v.chunks_exact_mut(cw))
            .enumerate()
        {
            let t = ((row * 2) as u32 * 256) / span;
            let c = top.mix(bottom, t);
            lu.fill(c.u);
            lv.fill(c.v);
        }
    }

    /// Left-to-right gradient: one row is computed, then copied down.
    pub fn horizontal_gradient(&mut self, left: Yuv, right: Yuv) {
        let (w, cw) = (self.width, self.cw());
        let span = (w.max(2) - 1) as u32;
        let row: Vec<u8> = (0..w)
            .map(|x| left.mix(right, x as u32 * 256 / span).y)
            .collect();
        for line in self.y.chunks_exact_mut(w) {
            line.copy_from_slice(&row);
        }
        let cols: Vec<Yuv> = (0..cw)
            .map(|x| left.mix(right, (x * 2) as u32 * 256 / span))
            .collect();
        let row_u: Vec<u8> = cols.iter().map(|c| c.u).collect();
        let row_v: Vec<u8> = cols.iter().map(|c| c.v).collect();
        for line in self.u.chunks_exact_mut(cw) {
            line.copy_from_slice(&row_u);
        }
        for line in self.v.chunks_exact_mut(cw) {
            line.copy_from_slice(&row_v);
        }
    }

    /// Solid rectangle, clipped to the frame; coordinates may be negative.
    pub fn fill_rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Yuv) {
        let Some((x0, y0, x1, y1)) = self.clip(x, y, w, h) else {
            return;
        };
        let stride = self.width;
        for row in y0..y1 {
            self.y[row * stride + x0..row * stride + x1].fill(c.y);
        }
        let cs = self.cw();
        // A chroma sample covers a 2×2 luma block; take those whose block
        // centre lies inside the rectangle so edges do not bleed colour.
        let (cx0, cy0) = (x0.div_ceil(2), y0.div_ceil(2));
        let (cx1, cy1) = (x1 / 2, y1 / 2);
        for row in cy0..cy1 {
            if cx0 < cx1 {
                self.u[row * cs + cx0..row * cs + cx1].fill(c.u);
                self.v[row * cs + cx0..row * cs + cx1].fill(c.v);
            }
        }
    }

    /// Darkens and desaturates a rectangle: the backdrop for text so it
    /// stays legible over any background.
    pub fn shade_rect(&mut self, x: i64, y: i64, w: i64, h: i64) {
        let Some((x0, y0, x1, y1)) = self.clip(x, y, w, h) else {
            return;
        };
        let stride = self.width;
        for row in y0..y1 {
            for p in &mut self.y[row * stride + x0..row * stride + x1] {
                *p = 16 + (*p).saturating_sub(16) / 3;
            }
        }
        let cs = self.cw();
        for row in y0 / 2..y1.div_ceil(2).min(self.ch()) {
            let range = row * cs + x0 / 2..row * cs + x1.div_ceil(2).min(cs);
            for p in &mut self.u[range.clone()] {
                *p = (128 + (i16::from(*p) - 128) / 3) as u8;
            }
            for p in &mut self.v[range] {
                *p = (128 + (i16::from(*p) - 128) / 3) as u8;
            }
        }
    }

    /// Shifts every chroma sample: a cheap colour grade.
    pub fn tint(&mut self, du: i16, dv: i16) {
        let shift = |p: &mut u8, d: i16| *p = (i16::from(*p) + d).clamp(16, 240) as u8;
        self.u.iter_mut().for_each(|p| shift(p, du));
        self.v.iter_mut().for_each(|p| shift(p, dv));
    }

    /// Solid disc centred on (cx, cy), clipped.
    pub fn fill_circle(&mut self, cx: i64, cy: i64, r: i64, c: Yuv) {
        if r <= 0 {
            return;
        }
        let r2 = r * r;
        for dy in -r..r {
            let row = cy + dy;
            // Sample at the pixel centre so the disc is symmetric.
            let fy = 2 * dy + 1;
            let half = isqrt(((4 * r2) - fy * fy).max(0)) / 2;
            self.fill_span_luma(row, cx - half, cx + half, c.y);
        }
        let (ccx, ccy, cr) = (cx / 2, cy / 2, r / 2);
        let cr2 = cr * cr;
        for dy in -cr..cr {
            let fy = 2 * dy + 1;
            let half = isqrt(((4 * cr2) - fy * fy).max(0)) / 2;
            self.fill_span_chroma(ccy + dy, ccx - half, ccx + half, c);
        }
    }

    fn fill_span_luma(&mut self, row: i64, x0: i64, x1: i64, value: u8) {
        if row < 0 || row >= self.height as i64 {
            return;
        }
        let (x0, x1) = (x0.max(0), x1.min(self.width as i64));
        if x0 >= x1 {
            return;
        }
        let base = row as usize * self.width;
        self.y[base + x0 as usize..base + x1 as usize].fill(value);
    }

    fn fill_span_chroma(&mut self, row: i64, x0: i64, x1: i64, c: Yuv) {
        if row < 0 || row >= self.ch() as i64 {
            return;
        }
        let (x0, x1) = (x0.max(0), x1.min(self.cw() as i64));
        if x0 >= x1 {
            return;
        }
        let base = row as usize * self.cw();
        self.u[base + x0 as usize..base + x1 as usize].fill(c.u);
        self.v[base + x0 as usize..base + x1 as usize].fill(c.v);
    }

    /// Clips a rectangle to the frame, or `None` if nothing is left.
    fn clip(&self, x: i64, y: i64, w: i64, h: i64) -> Option<(usize, usize, usize, usize)> {
        let x0 = x.max(0);
        let y0 = y.max(0);
        let x1 = x.saturating_add(w).min(self.width as i64);
        let y1 = y.saturating_add(h).min(self.height as i64);
        if x0 >= x1 || y0 >= y1 {
            return None;
        }
        Some((x0 as usize, y0 as usize, x1 as usize, y1 as usize))
    }

    pub fn to_rgb(&self) -> RgbImage {
        let (w, h, cw) = (self.width, self.height, self.cw());
        let mut pixels = Vec::with_capacity(w * h * 3);
        for row in 0..h {
            for col in 0..w {
                let ci = (row / 2) * cw + col / 2;
                pixels.extend_from_slice(&to_rgb(self.y[row * w + col], self.u[ci], self.v[ci]));
            }
        }
        RgbImage {
            width: w as u32,
            height: h as u32,
            pixels,
        }
    }
}

fn isqrt(n: i64) -> i64 {
    if n <= 0 {
        return 0;
    }
    let mut x = (n as f64).sqrt() as i64;
    // Float rounding can be off by one either way for large n.
    while x * x > n {
        x -= 1;
    }
    while (x + 1) * (x + 1) <= n {
        x += 1;
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greys_are_neutral_and_limited_range() {
        assert_eq!(
            Yuv::BLACK,
            Yuv {
                y: 16,
                u: 128,
                v: 128
            }
        );
        assert_eq!(Yuv::WHITE.u, 128);
        assert_eq!(Yuv::WHITE.v, 128);
        assert!((234..=236).contains(&Yuv::WHITE.y));
    }

    #[test]
    fn colour_round_trips_closely() {
        for rgb in [[255u8, 0, 0], [0, 255, 0], [0, 0, 255], [200, 120, 40]] {
            let c = Yuv::from_rgb(rgb[0], rgb[1], rgb[2]);
            let back = to_rgb(c.y, c.u, c.v);
            for (a, b) in rgb.iter().zip(back) {
                assert!(
                    (i32::from(*a) - i32::from(b)).abs() <= 6,
                    "{rgb:?} -> {back:?}"
                );
            }
        }
    }

    #[test]
    fn shapes_clip_at_every_edge() {
        let mut p = Picture::new(32, 16);
        let c = Yuv::WHITE;
        p.fill_rect(-100, -100, 1000, 1000, c);
        p.fill_rect(31, 15, 5, 5, c);
        p.fill_rect(i64::MAX - 1, 0, i64::MAX, 4, c);
        p.fill_circle(0, 0, 50, c);
        p.fill_circle(-40, 8, 10, c);
        p.shade_rect(-5, -5, 100, 100);
        p.shade_rect(31, 15, 1, 1);
        assert_eq!(p.y.len(), 32 * 16);
    }
}
