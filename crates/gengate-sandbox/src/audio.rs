//! The sound track: a soft chord per shot with a tick every second, encoded
//! as 20 ms Opus packets.

use opus_rs::{Application, OpusEncoder};

use crate::RenderError;

pub const SAMPLE_RATE: u32 = 48_000;
/// 20 ms: the packet length every Opus decoder handles, and it divides one
/// second exactly, so the track ends on the video's last instant.
pub const FRAME_SAMPLES: usize = 960;
pub const PACKETS_PER_SECOND: u32 = SAMPLE_RATE / FRAME_SAMPLES as u32;

/// One chord (in Hz) per shot, so cuts are audible too.
const CHORDS: [[f32; 3]; 3] = [
    [220.00, 277.18, 329.63], // A major
    [196.00, 246.94, 293.66], // G major
    [174.61, 220.00, 261.63], // F major
];

/// Encodes `seconds` of audio. `shot_at(sample)` says which shot a sample
/// belongs to.
pub fn encode(seconds: u32, shot_at: impl Fn(u64) -> usize) -> Result<Vec<Vec<u8>>, RenderError> {
    // CELT-only (restricted low delay) is by far the cheapest Opus mode and
    // suits a synthetic tone; 48 kbit/s mono is plenty for it.
    let mut encoder = OpusEncoder::new(SAMPLE_RATE as i32, 1, Application::RestrictedLowDelay)
        .map_err(|e| RenderError::AudioEncoder(e.to_owned()))?;
    encoder.bitrate_bps = 48_000;
    encoder.complexity = 2;

    let total = u64::from(seconds) * u64::from(SAMPLE_RATE);
    let packets = u64::from(seconds) * u64::from(PACKETS_PER_SECOND);
    let fade = u64::from(SAMPLE_RATE / 50);
    let mut pcm = vec![0f32; FRAME_SAMPLES];
    let mut out = vec![0u8; 1500];
    let mut result = Vec::with_capacity(packets as usize);
    let tau = std::f32::consts::TAU;
    for p in 0..packets {
        for (k, slot) in pcm.iter_mut().enumerate() {
            let n = p * FRAME_SAMPLES as u64 + k as u64;
            let t = n as f32 / SAMPLE_RATE as f32;
            let chord = &CHORDS[shot_at(n) % CHORDS.len()];
            let mut v: f32 = chord.iter().map(|f| (tau * f * t).sin()).sum::<f32>() * 0.08;
            // A short decaying 1 kHz tick at each whole second marks time.
            let into_second = (n % u64::from(SAMPLE_RATE)) as f32 / SAMPLE_RATE as f32;
            if into_second < 0.03 {
                v += (tau * 1000.0 * t).sin() * 0.25 * (1.0 - into_second / 0.03);
            }
            // Fade both ends so playback starts and stops without a click.
            let edge = n.min(total.saturating_sub(n + 1));
            if edge < fade {
                v *= edge as f32 / fade as f32;
            }
            *slot = v;
        }
        let len = encoder
            .encode(&pcm, FRAME_SAMPLES, &mut out)
            .map_err(|e| RenderError::AudioEncoder(e.to_owned()))?;
        let packet = out.get(..len).unwrap_or_default();
        if packet.is_empty() {
            return Err(RenderError::AudioEncoder(format!(
                "packet {p} came out empty"
            )));
        }
        result.push(packet.to_vec());
    }
    Ok(result)
}
