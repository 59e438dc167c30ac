//! What each Kling model version takes, from Kling's documentation (the sources are in
//! docs/KLING.md and docs/KLING-FAMILY-RESEARCH.md). The client sends only what a
//! version takes; the fake refuses what a version does not take, with Kling's 1201.

/// One Kling model version as its create body sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// The `model_name` of every create: Kling's default would be `kling-v1`.
    pub model_name: &'static str,
    /// The `duration` values it takes, in seconds.
    pub durations: &'static [u32],
    /// `std` (720p) as well as `pro` (1080p).
    pub std_mode: bool,
    /// `sound: on|off` (v2.6 and later).
    pub sound: bool,
    /// Audio only in `pro` (v2.6: std is "no audio only").
    pub sound_needs_pro: bool,
    /// `multi_shot` (v3 only).
    pub multi_shot: bool,
    /// `image_tail` (a last frame).
    pub image_tail: bool,
    /// A last frame only in `pro` (2.x; v3 takes one in both modes).
    pub image_tail_pro_only: bool,
    /// A last frame only without sound (v2.6).
    pub image_tail_needs_silence: bool,
}

const THREE_TO_FIFTEEN: [u32; 13] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

pub const V3: Version = Version {
    model_name: "kling-v3",
    durations: &THREE_TO_FIFTEEN,
    std_mode: true,
    sound: true,
    sound_needs_pro: false,
    multi_shot: true,
    image_tail: true,
    image_tail_pro_only: false,
    image_tail_needs_silence: false,
};

pub const V2_6: Version = Version {
    model_name: "kling-v2-6",
    durations: &[5, 10],
    std_mode: true,
    sound: true,
    sound_needs_pro: true,
    multi_shot: false,
    image_tail: true,
    image_tail_pro_only: true,
    image_tail_needs_silence: true,
};

/// Kling 2.5 Turbo; our `kling-v2-5-turbo-pro` is this in `pro` mode.
pub const V2_5_TURBO: Version = Version {
    model_name: "kling-v2-5-turbo",
    durations: &[5, 10],
    std_mode: true,
    sound: false,
    sound_needs_pro: false,
    multi_shot: false,
    image_tail: true,
    image_tail_pro_only: true,
    image_tail_needs_silence: false,
};

/// Kling 2.1 Master: one mode (sent as `pro`), no last frame.
pub const V2_1_MASTER: Version = Version {
    model_name: "kling-v2-1-master",
    durations: &[5, 10],
    std_mode: false,
    sound: false,
    sound_needs_pro: false,
    multi_shot: false,
    image_tail: false,
    image_tail_pro_only: false,
    image_tail_needs_silence: false,
};

pub const ALL: [Version; 4] = [V3, V2_6, V2_5_TURBO, V2_1_MASTER];

pub fn by_model_name(name: &str) -> Option<&'static Version> {
    ALL.iter().find(|v| v.model_name == name)
}
