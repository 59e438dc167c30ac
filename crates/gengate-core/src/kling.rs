//! Typed parameters of the kling-3-0 model. Built only from params the
//! catalog already normalised, and only if every value is in range: a
//! `KlingParams` cannot hold a duration of 16.

use crate::params::NormalizedParams;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KlingMode {
    Std,
    Pro,
}

impl KlingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            KlingMode::Std => "std",
            KlingMode::Pro => "pro",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AspectRatio {
    Landscape,
    Portrait,
    Square,
}

impl AspectRatio {
    pub fn as_str(self) -> &'static str {
        match self {
            AspectRatio::Landscape => "16:9",
            AspectRatio::Portrait => "9:16",
            AspectRatio::Square => "1:1",
        }
    }
}

/// Whole seconds, 3..=15.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KlingDuration(u8);

impl KlingDuration {
    pub const MIN: u8 = 3;
    pub const MAX: u8 = 15;
    pub fn new(s: u8) -> Option<Self> {
        (Self::MIN..=Self::MAX).contains(&s).then_some(Self(s))
    }
    pub fn seconds(self) -> u32 {
        u32::from(self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KlingParams {
    pub mode: KlingMode,
    pub multi_shots: bool,
    pub duration: KlingDuration,
    pub sound: bool,
    pub aspect_ratio: AspectRatio,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("params.{0} is missing or invalid for a Kling model")]
pub struct KlingParamsError(pub &'static str);

impl KlingParams {
    pub fn from_params(p: &NormalizedParams) -> Result<Self, KlingParamsError> {
        // A Kling model without a param (2.1 Master has no mode, only v3 has
        // multi-shot, 2.x before 2.6 have no sound) runs as it would without it: pro,
        // one shot, silent. A param that is there must be valid.
        let flag = |k: &'static str| match p.get(k) {
            None => Ok(false),
            Some(_) => match p.get_str(k) {
                Some("true") => Ok(true),
                Some("false") => Ok(false),
                _ => Err(KlingParamsError(k)),
            },
        };
        let mode = match p.get("mode").map(|_| p.get_str("mode")) {
            None => KlingMode::Pro,
            Some(Some("std")) => KlingMode::Std,
            Some(Some("pro")) => KlingMode::Pro,
            Some(_) => return Err(KlingParamsError("mode")),
        };
        let duration = p
            .get_str("duration")
            .and_then(|d| d.parse::<u8>().ok())
            .and_then(KlingDuration::new)
            .ok_or(KlingParamsError("duration"))?;
        let aspect_ratio = match p.get_str("aspect_ratio") {
            Some("16:9") => AspectRatio::Landscape,
            Some("9:16") => AspectRatio::Portrait,
            Some("1:1") => AspectRatio::Square,
            _ => return Err(KlingParamsError("aspect_ratio")),
        };
        Ok(Self {
            mode,
            multi_shots: flag("multi_shots")?,
            duration,
            sound: flag("sound")?,
            aspect_ratio,
        })
    }

    /// Output frame size: std is 720p-class, pro 1080p-class.
    pub fn resolution(&self) -> (u32, u32) {
        let short = match self.mode {
            KlingMode::Std => 720,
            KlingMode::Pro => 1080,
        };
        let long = short * 16 / 9;
        match self.aspect_ratio {
            AspectRatio::Landscape => (long, short),
            AspectRatio::Portrait => (short, long),
            AspectRatio::Square => (short, short),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(v: serde_json::Value) -> NormalizedParams {
        NormalizedParams::from_stored(v)
    }

    #[test]
    fn duration_sixteen_cannot_exist() {
        assert!(KlingDuration::new(16).is_none());
        assert!(KlingDuration::new(2).is_none());
        let p = params(
            json!({"mode":"pro","multi_shots":"false","duration":"16","sound":"false","aspect_ratio":"16:9"}),
        );
        assert_eq!(
            KlingParams::from_params(&p),
            Err(KlingParamsError("duration"))
        );
    }

    #[test]
    fn resolutions_follow_mode_and_aspect() {
        let mut p = KlingParams::from_params(&params(
            json!({"mode":"std","multi_shots":"false","duration":"5","sound":"false","aspect_ratio":"16:9"}),
        ))
        .unwrap();
        assert_eq!(p.resolution(), (1280, 720));
        p.aspect_ratio = AspectRatio::Portrait;
        assert_eq!(p.resolution(), (720, 1280));
        p.mode = KlingMode::Pro;
        assert_eq!(p.resolution(), (1080, 1920));
        p.aspect_ratio = AspectRatio::Square;
        assert_eq!(p.resolution(), (1080, 1080));
    }
}
