//! Durations of MP3, AAC (ADTS), WAV and Ogg audio, through symphonia's demuxers.

use std::io::Cursor;

use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;

use crate::{MediaError, guard::shielded};

/// symphonia's names for the demuxers that may read each type.
fn expected_formats(mime: &str) -> &'static [&'static str] {
    match mime {
        "audio/mpeg" | "audio/mp3" => &["mp3", "mp2", "mp1"],
        "audio/aac" => &["aac"],
        "audio/ogg" => &["ogg"],
        _ => &["wave"],
    }
}

pub(crate) fn duration(bytes: &[u8], mime: &str) -> Result<f64, MediaError> {
    shielded(mime, || measure(bytes, mime))
}

/// The name [`sniff`](crate::sniff) gives each accepted alias.
fn canonical(mime: &str) -> &str {
    match mime {
        "audio/mp3" => "audio/mpeg",
        "audio/x-wav" | "audio/wave" => "audio/wav",
        other => other,
    }
}

fn measure(bytes: &[u8], mime: &str) -> Result<f64, MediaError> {
    // symphonia's probe reads whatever container it finds, wherever it finds it; holding the
    // bytes to the sniffed type first keeps each demuxer to the input it was chosen for.
    let head = &bytes[..bytes.len().min(crate::SNIFF_LEN)];
    match crate::sniff(head) {
        Some(found) if found.mime == canonical(mime) => {}
        Some(found) => {
            return Err(MediaError::decode(
                mime,
                format!("its bytes are those of {}", found.mime),
            ));
        }
        None => {
            return Err(MediaError::decode(
                mime,
                "its first bytes match no audio type",
            ));
        }
    }
    if canonical(mime) == "audio/wav" {
        check_wav_format(bytes).map_err(|e| MediaError::decode(mime, e))?;
    }
    let source = MediaSourceStream::new(
        Box::new(Cursor::new(bytes)),
        MediaSourceStreamOptions::default(),
    );
    let mut hint = Hint::new();
    hint.mime_type(mime);
    let mut reader = symphonia::default::get_probe()
        .probe(
            &hint,
            source,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(|e| MediaError::decode(mime, e))?;

    // The probe picks whichever demuxer scores best; it must be the one the sniffed type names.
    let found = reader.format_info().short_name;
    if !expected_formats(mime).contains(&found) {
        return Err(MediaError::decode(
            mime,
            format!("its content reads as {found} audio"),
        ));
    }

    let track = reader
        .first_track(TrackType::Audio)
        .ok_or_else(|| MediaError::decode(mime, "it has no audio track"))?;
    let track_id = track.id;
    let delay = u64::from(track.delay.unwrap_or(0));
    // A LAME tag declares encoder delay and padding; then the Xing frame count is exact too.
    let gapless_length = track.padding.and(track.num_frames);
    let time_base = track
        .time_base
        .ok_or_else(|| MediaError::no_duration(mime, "the audio track has no time base"))?;

    // Header durations are estimates for MP3 without a Xing/VBRI tag and for every ADTS file
    // (symphonia extrapolates from the first frames' bitrate), and a WAV data chunk's size may
    // exceed what was uploaded. Walking every packet is exact and costs one pass over at most a
    // few MiB.
    let walk = walk_packets(reader.as_mut(), track_id);
    if walk.packets == 0 {
        return Err(MediaError::decode(mime, "no audio packet could be read"));
    }
    let ticks = if found.starts_with("mp") {
        mpeg_ticks(&walk, gapless_length)
    } else {
        // Encoder delay (Opus pre-skip, notably) is sometimes declared on the track without
        // being trimmed from any packet; it is not part of the content, so take off what was
        // left in.
        walk.ticks
            .saturating_sub(delay.saturating_sub(walk.trimmed_at_start))
    };
    let seconds =
        ticks as f64 * f64::from(time_base.numer.get()) / f64::from(time_base.denom.get());
    Ok(seconds)
}

/// MPEG audio length from packet timestamps.
///
/// The MP3 demuxer reports trims without taking them off packet durations (symphonia 0.6.1),
/// and trims against a bitrate *estimate* when there is no Xing tag, so its durations cannot be
/// summed as the other demuxers' can. Its timestamps are reliable: they start at minus the
/// encoder delay and advance by each frame's full sample count. The end of the last frame is
/// then the length of the stream, delay excluded; where a LAME tag gives the exact length, the
/// shorter of the two wins (padding dropped, or the file cut short).
fn mpeg_ticks(walk: &PacketWalk, gapless_length: Option<u64>) -> u64 {
    let last_frame = match walk.previous_pts {
        Some(previous) => u64::try_from(walk.last_pts.saturating_sub(previous)).unwrap_or(0),
        None => walk.last_raw_dur,
    };
    let end = u64::try_from(walk.last_pts.saturating_add_unsigned(last_frame)).unwrap_or(0);
    gapless_length.map_or(end, |length| end.min(length))
}

/// Refuses a WAV `fmt ` chunk with values no real file has.
///
/// symphonia multiplies channel count by sample width in 16-bit arithmetic, which overflows
/// (a panic in debug builds) on crafted values; real files have at most a few dozen channels of
/// at most 64-bit samples.
fn check_wav_format(bytes: &[u8]) -> Result<(), String> {
    let mut pos = 12; // after "RIFF", size, "WAVE"
    while let Some(header) = bytes.get(pos..pos + 8) {
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if &header[..4] == b"fmt " {
            let fmt = bytes
                .get(pos + 8..pos + 24)
                .ok_or("the fmt chunk is cut short")?;
            let channels = u16::from_le_bytes([fmt[2], fmt[3]]);
            let sample_rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
            let block_align = u16::from_le_bytes([fmt[12], fmt[13]]);
            let bits = u16::from_le_bytes([fmt[14], fmt[15]]);
            if !(1..=64).contains(&channels) {
                return Err(format!("the fmt chunk declares {channels} channels"));
            }
            if !(1..=64).contains(&bits) {
                return Err(format!("the fmt chunk declares {bits}-bit samples"));
            }
            if sample_rate == 0 || block_align == 0 {
                return Err("the fmt chunk declares a zero sample rate or block size".into());
            }
            return Ok(());
        }
        if &header[..4] == b"data" {
            break;
        }
        // Chunks are padded to an even length.
        pos = pos
            .checked_add(8)
            .and_then(|p| p.checked_add(len))
            .and_then(|p| p.checked_add(len % 2))
            .ok_or("a chunk size overflows")?;
    }
    Err("no fmt chunk before the audio data".into())
}

/// Reads every packet of the track. A read error after the first packets ends the walk rather
/// than failing it: a final frame cut short, or junk after the last frame, still leaves
/// everything before it playable, as every player treats it.
fn walk_packets(reader: &mut dyn FormatReader, track_id: u32) -> PacketWalk {
    let mut walk = PacketWalk::default();
    while let Ok(Some(packet)) = reader.next_packet() {
        if packet.track_id != track_id {
            continue;
        }
        walk.ticks = walk.ticks.saturating_add(packet.dur.get());
        walk.trimmed_at_start = walk
            .trimmed_at_start
            .saturating_add(packet.trim_start.get());
        if walk.packets > 0 {
            walk.previous_pts = Some(walk.last_pts);
        }
        walk.last_pts = packet.pts.get();
        walk.last_raw_dur = packet
            .dur
            .get()
            .saturating_add(packet.trim_start.get())
            .saturating_add(packet.trim_end.get());
        walk.packets += 1;
    }
    walk
}

#[derive(Default)]
struct PacketWalk {
    /// Summed durations, as the demuxer reported them.
    ticks: u64,
    /// Encoder delay the demuxer trimmed from packets.
    trimmed_at_start: u64,
    packets: u64,
    last_pts: i64,
    previous_pts: Option<i64>,
    /// The last packet's duration with its trims put back.
    last_raw_dur: u64,
}
