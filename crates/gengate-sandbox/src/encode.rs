//! Frames → OpenH264 → muxide, plus the Opus track.

use std::sync::mpsc;

use muxide::api::{AudioCodec, Muxer, MuxerBuilder, VideoCodec};
use openh264::OpenH264API;
use openh264::Timestamp;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod,
    RateControlMode, UsageType, VuiConfig,
};
use openh264::formats::YUVSlices;

use crate::picture::Picture;
use crate::scene::{Scene, Timeline};
use crate::{RenderError, RenderSpec, Rendered, audio};

/// Seconds between IDR frames when nothing else forces one, so a player
/// can seek without decoding from the start.
const KEYFRAME_SECONDS: u32 = 2;

/// Pictures in flight between the drawing thread and the encoder: enough
/// that neither waits on the other for long, few enough to bound memory.
const PIPELINE_DEPTH: usize = 3;

pub fn render(spec: &RenderSpec) -> Result<Rendered, RenderError> {
    let frames = spec.frame_count();
    let fps = u64::from(spec.fps);
    let scene = Scene::new(spec);
    let timeline = scene.timeline();

    // Drawing, audio and video encoding are independent until the muxer, so
    // they run on their own threads: on two cores drawing and encoding
    // overlap almost completely.
    std::thread::scope(|scope| {
        let audio = spec.sound.then(|| {
            scope.spawn(move || {
                let rate = u64::from(audio::SAMPLE_RATE);
                audio::encode(spec.duration_seconds, |sample| {
                    timeline.shot_of((sample * fps / rate).min(frames - 1)).0 as usize
                })
            })
        });

        let (to_encoder, drawn) = mpsc::sync_channel::<(u64, Picture)>(PIPELINE_DEPTH);
        let (to_painter, free) = mpsc::sync_channel::<Picture>(PIPELINE_DEPTH);
        for _ in 0..PIPELINE_DEPTH {
            // Cannot fail: the channel has room for exactly these.
            let _ = to_painter.try_send(Picture::new(spec.width, spec.height));
        }
        let painter = scope.spawn(move || {
            let mut scene = scene;
            for frame in 0..frames {
                // Either channel closing means the encoder gave up; stop quietly.
                let Ok(mut pic) = free.recv() else { return };
                scene.draw(frame, &mut pic);
                if to_encoder.send((frame, pic)).is_err() {
                    return;
                }
            }
        });

        let video = encode_video(spec, frames, timeline, &drawn, &to_painter);
        // Unblock the painter if the encoder stopped early.
        drop(drawn);
        drop(to_painter);
        // Join every thread before acting on any result, so a failure in one
        // never leaves another running (or its panic unobserved).
        let painted = painter.join();
        let packets = audio.map(|handle| handle.join());
        painted.map_err(|_| RenderError::VideoEncoder("the drawing thread panicked".to_owned()))?;
        let mut muxer = video?;

        if let Some(joined) = packets {
            let packets = joined
                .map_err(|_| RenderError::AudioEncoder("the audio thread panicked".to_owned()))??;
            let packet_seconds = audio::FRAME_SAMPLES as f64 / f64::from(audio::SAMPLE_RATE);
            // muxide interleaves by timestamp when it finishes, so audio can
            // be handed over after the video.
            for (i, packet) in packets.iter().enumerate() {
                muxer
                    .write_audio(i as f64 * packet_seconds, packet)
                    .map_err(mux_err)?;
            }
        }
        finish(muxer, spec, frames)
    })
}

fn encode_video(
    spec: &RenderSpec,
    frames: u64,
    timeline: Timeline,
    drawn: &mpsc::Receiver<(u64, Picture)>,
    recycle: &mpsc::SyncSender<Picture>,
) -> Result<Muxer<Vec<u8>>, RenderError> {
    let fps = u64::from(spec.fps);
    let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), encoder_config(spec))
        .map_err(|e| RenderError::VideoEncoder(e.to_string()))?;
    let mut builder = MuxerBuilder::new(Vec::new())
        .video(
            VideoCodec::H264,
            spec.width,
            spec.height,
            f64::from(spec.fps),
        )
        .with_fast_start(true);
    if spec.sound {
        builder = builder.audio(AudioCodec::Opus, audio::SAMPLE_RATE, 1);
    }
    let mut muxer = builder.build().map_err(mux_err)?;

    let mut sample = Vec::new();
    for expected in 0..frames {
        let (frame, pic) = drawn.recv().map_err(|_| {
            RenderError::VideoEncoder("the drawing thread stopped early".to_owned())
        })?;
        if frame != expected {
            return Err(RenderError::VideoEncoder(format!(
                "frame {frame} arrived where {expected} was expected"
            )));
        }
        if timeline.is_cut(frame) {
            encoder.force_intra_frame();
        }
        let keyframe = encode_frame(&mut encoder, &pic, frame * 1000 / fps, &mut sample)?;
        // The painter may already have finished; then the picture is not needed.
        let _ = recycle.send(pic);
        muxer
            .write_video(frame as f64 / fps as f64, &sample, keyframe)
            .map_err(mux_err)?;
    }
    Ok(muxer)
}

fn encoder_config(spec: &RenderSpec) -> EncoderConfig {
    // Rate control off means a constant QP (OpenH264's default, 26): sharp
    // text and flat colour for well under 1 Mbit/s on synthetic frames and
    // about 3 Mbit/s for a moving photo at 1080p. It is also the fastest
    // mode, and unlike the bitrate modes it does not log a warning about
    // frame skipping being off on every encoder start.
    EncoderConfig::new()
        .rate_control_mode(RateControlMode::Off)
        // The level OpenH264 picks is derived from the declared bitrate, so
        // declare a rate that still covers a busy photo at this size.
        .bitrate(BitRate::from_bps(declared_bitrate(spec)))
        .max_frame_rate(FrameRate::from_hz(spec.fps as f32))
        // A skipped frame would leave a hole where the file promises a sample.
        .skip_frames(false)
        .usage_type(UsageType::CameraVideoRealTime)
        .complexity(Complexity::Low)
        // Cuts are known exactly and forced as IDR frames, so the analysis
        // passes that guess at them would only cost time.
        .scene_change_detect(false)
        .background_detection(false)
        .adaptive_quantization(false)
        .intra_frame_period(IntraFramePeriod::from_num_frames(
            spec.fps * KEYFRAME_SECONDS,
        ))
        // The picture is drawn in BT.709 limited range; saying so stops
        // players from guessing BT.601 and shifting the colours.
        .vui(VuiConfig::bt709())
        .num_threads(1)
}

/// About 0.1 bit per pixel: 5 Mbit/s at 1080p24, 2.2 Mbit/s at 720p24.
fn declared_bitrate(spec: &RenderSpec) -> u32 {
    let pixels_per_second = u64::from(spec.width) * u64::from(spec.height) * u64::from(spec.fps);
    (pixels_per_second / 10).clamp(200_000, 20_000_000) as u32
}

/// Encodes one picture into `out` (Annex B) and reports whether it is an IDR frame.
fn encode_frame(
    encoder: &mut Encoder,
    pic: &Picture,
    millis: u64,
    out: &mut Vec<u8>,
) -> Result<bool, RenderError> {
    let yuv = YUVSlices::new(
        (&pic.y, &pic.u, &pic.v),
        (pic.width, pic.height),
        (pic.width, pic.cw(), pic.cw()),
    );
    // Frame skipping is off, but should the encoder still drop a frame the
    // same picture is sent again as a forced IDR rather than leaving a gap.
    for attempt in 0..2 {
        if attempt > 0 {
            encoder.force_intra_frame();
        }
        let stream = encoder
            .encode_at(&yuv, Timestamp::from_millis(millis))
            .map_err(|e| RenderError::VideoEncoder(e.to_string()))?;
        out.clear();
        stream.write_vec(out);
        if !out.is_empty() && stream.frame_type() != FrameType::Skip {
            return Ok(stream.frame_type() == FrameType::IDR);
        }
    }
    Err(RenderError::VideoEncoder(
        "the encoder produced no data for a frame".to_owned(),
    ))
}

fn finish(
    mut muxer: Muxer<Vec<u8>>,
    spec: &RenderSpec,
    frames: u64,
) -> Result<Rendered, RenderError> {
    let stats = muxer.finish_in_place_with_stats().map_err(mux_err)?;
    if stats.video_frames != frames {
        return Err(RenderError::Mux(format!(
            "muxer wrote {} video frames, expected {frames}",
            stats.video_frames
        )));
    }
    Ok(Rendered {
        mp4: muxer.into_writer(),
        width: spec.width,
        height: spec.height,
        frames,
        duration_seconds: frames as f64 / f64::from(spec.fps),
        has_audio: spec.sound,
    })
}

fn mux_err(e: muxide::api::MuxerError) -> RenderError {
    RenderError::Mux(e.to_string())
}
