//! A small ISO base media file (MP4, MOV, M4A) reader.
//!
//! Only the boxes that carry dimensions, sample counts and durations are read. Written by hand
//! rather than borrowed because it must accept what a container-only test stub holds (no codec
//! configuration, next to no media data), read fragmented files, and treat every length field
//! as a lie until checked against the bytes that are really there.

use std::collections::HashMap;

use crate::{MediaError, MediaKind};

/// What [`inspect_mp4`] learned from an MP4 or MOV file.
#[derive(Clone, Debug, PartialEq)]
pub struct Mp4Info {
    /// From the video sample entry, or the track header when the entry has none.
    pub width: u32,
    pub height: u32,
    /// The video sample entry's four-character code (`avc1`, `hvc1`, `mp4v`, …).
    pub video_codec: String,
    /// Number of video samples (frames), fragments included.
    pub video_frames: u64,
    /// The video track's media duration (`mdhd`, or its samples' durations).
    pub video_duration_seconds: f64,
    /// `video_frames / video_duration_seconds`, or 0 when the duration is 0.
    pub fps: f64,
    pub has_audio: bool,
    /// The first audio track's sample entry code (`mp4a`, `Opus`, …).
    pub audio_codec: Option<String>,
    pub audio_duration_seconds: Option<f64>,
    /// Whether `moov` comes before the first `mdat` (or there is no `mdat`), so that playback
    /// can start before the whole file has arrived.
    pub faststart: bool,
}

/// Reads an MP4/MOV container: dimensions and codec of the first video track, its frame count
/// (from `stsz`, or `stts`, plus every fragment's `trun`), durations from the `mdhd` timescales,
/// whether an audio track exists, and whether `moov` precedes `mdat`.
///
/// A file without a video track is an error, as is one whose boxes run past the end of the
/// bytes (a truncated upload).
pub fn inspect_mp4(bytes: &[u8]) -> Result<Mp4Info, MediaError> {
    const MIME: &str = "video/mp4";
    let movie = parse(bytes).map_err(|e| MediaError::decode(MIME, e))?;
    let video =
        movie
            .tracks
            .iter()
            .find(|t| t.handler == *b"vide")
            .ok_or(MediaError::MissingTrack {
                mime: MIME.to_owned(),
                wanted: "video",
            })?;
    let (width, height) = match video.entry_size {
        Some((w, h)) if w > 0 && h > 0 => (u32::from(w), u32::from(h)),
        _ => video.tkhd_size,
    };
    if width == 0 || height == 0 {
        return Err(MediaError::decode(
            MIME,
            "the video track declares no dimensions",
        ));
    }
    let video_frames = video.frames();
    let video_duration_seconds = video.seconds().unwrap_or(0.0);
    let fps = if video_duration_seconds > 0.0 {
        video_frames as f64 / video_duration_seconds
    } else {
        0.0
    };
    let audio = movie.tracks.iter().find(|t| t.handler == *b"soun");
    Ok(Mp4Info {
        width,
        height,
        video_codec: video.codec.clone().unwrap_or_default(),
        video_frames,
        video_duration_seconds,
        fps,
        has_audio: audio.is_some(),
        audio_codec: audio.and_then(|a| a.codec.clone()),
        audio_duration_seconds: audio.and_then(Track::seconds),
        faststart: movie.faststart(),
    })
}

/// The presentation duration of an MP4/MOV/M4A file, which must hold a track of `kind`.
pub(crate) fn duration(bytes: &[u8], mime: &str, kind: MediaKind) -> Result<f64, MediaError> {
    let movie = parse(bytes).map_err(|e| MediaError::decode(mime, e))?;
    let (handler, wanted) = match kind {
        MediaKind::Audio => (*b"soun", "audio"),
        _ => (*b"vide", "video"),
    };
    if !movie.tracks.iter().any(|t| t.handler == handler) {
        return Err(MediaError::MissingTrack {
            mime: mime.to_owned(),
            wanted,
        });
    }
    movie
        .seconds()
        .ok_or_else(|| MediaError::no_duration(mime, "the movie and its tracks declare none"))
}

/// Files hold a handful of tracks; the bound keeps a crafted file of millions of empty `trak`
/// boxes (8 bytes each) from becoming millions of parsed tracks in memory.
const MAX_TRACKS: usize = 64;

/// Durations of all ones mean "unknown" in `mvhd`, `tkhd` and `mdhd`.
fn known(duration: u64, version: u8) -> Option<u64> {
    let unknown = if version == 1 {
        u64::MAX
    } else {
        u64::from(u32::MAX)
    };
    (duration != 0 && duration != unknown).then_some(duration)
}

fn ticks_to_seconds(ticks: u64, timescale: u32) -> Option<f64> {
    (timescale > 0 && ticks > 0).then(|| ticks as f64 / f64::from(timescale))
}

#[derive(Default)]
struct Track {
    id: u32,
    handler: [u8; 4],
    tkhd_size: (u32, u32),
    timescale: u32,
    mdhd_duration: Option<u64>,
    codec: Option<String>,
    entry_size: Option<(u16, u16)>,
    stts_samples: u64,
    stts_ticks: u64,
    stsz_samples: Option<u64>,
    frag_samples: u64,
    frag_ticks: u64,
}

impl Track {
    fn frames(&self) -> u64 {
        self.stsz_samples
            .unwrap_or(self.stts_samples)
            .saturating_add(self.frag_samples)
    }

    fn ticks(&self) -> u64 {
        let tables = self.stts_ticks.saturating_add(self.frag_ticks);
        match self.mdhd_duration {
            // A plain file's mdhd is the authority. A fragmented one's mdhd, when set at all,
            // may or may not include the fragments, so the longer reading wins.
            Some(declared) if self.frag_ticks == 0 => declared,
            Some(declared) => declared.max(tables),
            None => tables,
        }
    }

    fn seconds(&self) -> Option<f64> {
        ticks_to_seconds(self.ticks(), self.timescale)
    }
}

#[derive(Default)]
struct Movie {
    timescale: u32,
    duration: Option<u64>,
    fragment_duration: Option<u64>,
    tracks: Vec<Track>,
    trex_durations: HashMap<u32, u32>,
    fragmented: bool,
    moov_at: Option<usize>,
    mdat_at: Option<usize>,
}

impl Movie {
    fn faststart(&self) -> bool {
        match (self.moov_at, self.mdat_at) {
            (Some(moov), Some(mdat)) => moov < mdat,
            _ => true,
        }
    }

    fn seconds(&self) -> Option<f64> {
        let movie = self
            .duration
            .and_then(|d| ticks_to_seconds(d, self.timescale));
        let fragment = self
            .fragment_duration
            .and_then(|d| ticks_to_seconds(d, self.timescale));
        let longest_track = self
            .tracks
            .iter()
            .filter_map(Track::seconds)
            .fold(None, |acc: Option<f64>, s| {
                Some(acc.map_or(s, |a| a.max(s)))
            });
        if self.fragmented {
            // mvhd of a fragmented file covers only what precedes the fragments (often nothing).
            [movie, fragment, longest_track]
                .into_iter()
                .flatten()
                .fold(None, |acc: Option<f64>, s| {
                    Some(acc.map_or(s, |a| a.max(s)))
                })
        } else {
            movie.or(longest_track)
        }
    }
}

/// A box: its type, its body, and where its header started in the file.
struct Mp4Box<'a> {
    kind: [u8; 4],
    body: &'a [u8],
    at: usize,
}

/// Iterates the boxes laid end to end in `data`, which starts at file offset `base`.
struct Boxes<'a> {
    data: &'a [u8],
    pos: usize,
    base: usize,
    failed: bool,
}

fn boxes(data: &[u8], base: usize) -> Boxes<'_> {
    Boxes {
        data,
        pos: 0,
        base,
        failed: false,
    }
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<Mp4Box<'a>, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.data.len() {
            return None;
        }
        let result = self.read_one();
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}

impl<'a> Boxes<'a> {
    fn read_one(&mut self) -> Result<Mp4Box<'a>, String> {
        let rest = &self.data[self.pos..];
        let at = self.base + self.pos;
        if rest.len() < 8 {
            return Err(format!("{} stray bytes at offset {at}", rest.len()));
        }
        let size32 = be_u32(rest, 0).unwrap_or(0);
        let mut kind = [0u8; 4];
        kind.copy_from_slice(&rest[4..8]);
        let (header, size) = match size32 {
            // A size of 0 means "to the end of the enclosing space".
            0 => (8usize, rest.len() as u64),
            1 => {
                let large = be_u64(rest, 8)
                    .ok_or_else(|| format!("box {} at offset {at} is cut short", fourcc(&kind)))?;
                (16, large)
            }
            n => (8, u64::from(n)),
        };
        if size < header as u64 {
            return Err(format!(
                "box {} at offset {at} declares an impossible size {size}",
                fourcc(&kind)
            ));
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|s| *s <= rest.len())
            .ok_or_else(|| {
                format!(
                    "box {} at offset {at} declares {size} bytes but only {} remain",
                    fourcc(&kind),
                    rest.len()
                )
            })?;
        self.pos += size;
        Ok(Mp4Box {
            kind,
            body: &rest[header..size],
            at,
        })
    }
}

fn be_u16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

fn fourcc(code: &[u8]) -> String {
    code.iter()
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                char::from(*b)
            } else {
                '?'
            }
        })
        .collect()
}

fn short(name: &str) -> String {
    format!("the {name} box is cut short")
}

fn parse(bytes: &[u8]) -> Result<Movie, String> {
    let mut movie = Movie::default();
    let mut saw_ftyp_or_moov = false;
    for item in boxes(bytes, 0) {
        let b = item?;
        match &b.kind {
            b"ftyp" => saw_ftyp_or_moov = true,
            b"moov" => {
                if movie.moov_at.is_some() {
                    return Err("the file has two moov boxes".into());
                }
                saw_ftyp_or_moov = true;
                movie.moov_at = Some(b.at);
                parse_moov(&b, &mut movie)?;
            }
            b"moof" => {
                movie.fragmented = true;
                parse_moof(&b, &mut movie)?;
            }
            b"mdat" => {
                movie.mdat_at.get_or_insert(b.at);
            }
            _ => {}
        }
    }
    if !saw_ftyp_or_moov {
        return Err("no ftyp or moov box: not an ISO base media file".into());
    }
    if movie.moov_at.is_none() {
        return Err("no moov box".into());
    }
    Ok(movie)
}

fn parse_moov(moov: &Mp4Box<'_>, movie: &mut Movie) -> Result<(), String> {
    let mut saw_mvhd = false;
    for item in boxes(moov.body, moov.at + 8) {
        let b = item?;
        match &b.kind {
            b"mvhd" => {
                saw_mvhd = true;
                let version = *b.body.first().ok_or_else(|| short("mvhd"))?;
                let (timescale, duration) = if version == 1 {
                    (be_u32(b.body, 20), be_u64(b.body, 24))
                } else {
                    (be_u32(b.body, 12), be_u32(b.body, 16).map(u64::from))
                };
                movie.timescale = timescale.ok_or_else(|| short("mvhd"))?;
                movie.duration = known(duration.ok_or_else(|| short("mvhd"))?, version);
            }
            b"trak" => {
                if movie.tracks.len() == MAX_TRACKS {
                    return Err(format!("more than {MAX_TRACKS} tracks"));
                }
                let track = parse_trak(&b)?;
                movie.tracks.push(track);
            }
            b"mvex" => {
                movie.fragmented = true;
                parse_mvex(&b, movie)?;
            }
            _ => {}
        }
    }
    if !saw_mvhd {
        return Err("the moov box has no mvhd".into());
    }
    Ok(())
}

fn parse_mvex(mvex: &Mp4Box<'_>, movie: &mut Movie) -> Result<(), String> {
    for item in boxes(mvex.body, mvex.at + 8) {
        let b = item?;
        match &b.kind {
            b"mehd" => {
                let version = *b.body.first().ok_or_else(|| short("mehd"))?;
                let duration = if version == 1 {
                    be_u64(b.body, 4)
                } else {
                    be_u32(b.body, 4).map(u64::from)
                };
                movie.fragment_duration = known(duration.ok_or_else(|| short("mehd"))?, version);
            }
            b"trex" => {
                let track_id = be_u32(b.body, 4).ok_or_else(|| short("trex"))?;
                let default_duration = be_u32(b.body, 12).ok_or_else(|| short("trex"))?;
                if movie.trex_durations.len() == MAX_TRACKS {
                    return Err(format!("more than {MAX_TRACKS} track defaults"));
                }
                movie.trex_durations.insert(track_id, default_duration);
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_trak(trak: &Mp4Box<'_>) -> Result<Track, String> {
    let mut track = Track::default();
    for item in boxes(trak.body, trak.at + 8) {
        let b = item?;
        match &b.kind {
            b"tkhd" => {
                let version = *b.body.first().ok_or_else(|| short("tkhd"))?;
                let (id_at, size_at) = if version == 1 { (20, 88) } else { (12, 76) };
                track.id = be_u32(b.body, id_at).ok_or_else(|| short("tkhd"))?;
                // Width and height are 16.16 fixed point.
                let width = be_u32(b.body, size_at).ok_or_else(|| short("tkhd"))?;
                let height = be_u32(b.body, size_at + 4).ok_or_else(|| short("tkhd"))?;
                track.tkhd_size = (width >> 16, height >> 16);
            }
            b"mdia" => parse_mdia(&b, &mut track)?,
            _ => {}
        }
    }
    Ok(track)
}

fn parse_mdia(mdia: &Mp4Box<'_>, track: &mut Track) -> Result<(), String> {
    for item in boxes(mdia.body, mdia.at + 8) {
        let b = item?;
        match &b.kind {
            b"mdhd" => {
                let version = *b.body.first().ok_or_else(|| short("mdhd"))?;
                let (timescale, duration) = if version == 1 {
                    (be_u32(b.body, 20), be_u64(b.body, 24))
                } else {
                    (be_u32(b.body, 12), be_u32(b.body, 16).map(u64::from))
                };
                track.timescale = timescale.ok_or_else(|| short("mdhd"))?;
                track.mdhd_duration = known(duration.ok_or_else(|| short("mdhd"))?, version);
            }
            b"hdlr" => {
                let handler = b.body.get(8..12).ok_or_else(|| short("hdlr"))?;
                track.handler.copy_from_slice(handler);
            }
            b"minf" => {
                for item in boxes(b.body, b.at + 8) {
                    let stbl = item?;
                    if &stbl.kind == b"stbl" {
                        parse_stbl(&stbl, track)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_stbl(stbl: &Mp4Box<'_>, track: &mut Track) -> Result<(), String> {
    for item in boxes(stbl.body, stbl.at + 8) {
        let b = item?;
        match &b.kind {
            b"stsd" => {
                // Version/flags and entry count precede the sample entries, which are boxes.
                let entries = b.body.get(8..).ok_or_else(|| short("stsd"))?;
                if let Some(entry) = boxes(entries, b.at + 16).next() {
                    let entry = entry?;
                    track.codec = Some(fourcc(&entry.kind));
                    // A visual sample entry holds width and height at bytes 24..28 of its body;
                    // for other tracks those bytes mean something else and are never used.
                    if let (Some(w), Some(h)) = (be_u16(entry.body, 24), be_u16(entry.body, 26)) {
                        track.entry_size = Some((w, h));
                    }
                }
            }
            b"stts" => {
                let count = be_u32(b.body, 4).ok_or_else(|| short("stts"))? as usize;
                let table = b.body.get(8..).ok_or_else(|| short("stts"))?;
                if table.len() / 8 < count {
                    return Err(format!(
                        "the stts box lists {count} entries but has room for {}",
                        table.len() / 8
                    ));
                }
                for entry in table.chunks_exact(8).take(count) {
                    let samples = u64::from(be_u32(entry, 0).unwrap_or(0));
                    let delta = u64::from(be_u32(entry, 4).unwrap_or(0));
                    track.stts_samples = track.stts_samples.saturating_add(samples);
                    track.stts_ticks = track
                        .stts_ticks
                        .saturating_add(samples.saturating_mul(delta));
                }
            }
            b"stsz" | b"stz2" => {
                let count = be_u32(b.body, 8).ok_or_else(|| short("stsz"))?;
                track.stsz_samples = Some(u64::from(count));
            }
            _ => {}
        }
    }
    Ok(())
}

fn parse_moof(moof: &Mp4Box<'_>, movie: &mut Movie) -> Result<(), String> {
    for item in boxes(moof.body, moof.at + 8) {
        let traf = item?;
        if &traf.kind != b"traf" {
            continue;
        }
        let mut track_id = None;
        let mut default_duration = None;
        for item in boxes(traf.body, traf.at + 8) {
            let b = item?;
            match &b.kind {
                b"tfhd" => {
                    let flags = be_u32(b.body, 0).ok_or_else(|| short("tfhd"))? & 0x00FF_FFFF;
                    let id = be_u32(b.body, 4).ok_or_else(|| short("tfhd"))?;
                    track_id = Some(id);
                    // Optional fields come in flag order; default-sample-duration is the third.
                    let mut at = 8;
                    if flags & 0x01 != 0 {
                        at += 8;
                    }
                    if flags & 0x02 != 0 {
                        at += 4;
                    }
                    default_duration = if flags & 0x08 != 0 {
                        Some(be_u32(b.body, at).ok_or_else(|| short("tfhd"))?)
                    } else {
                        movie.trex_durations.get(&id).copied()
                    };
                }
                b"trun" => {
                    let id = track_id.ok_or("a trun box comes before its tfhd")?;
                    let (samples, ticks) = read_trun(b.body, default_duration.unwrap_or(0))?;
                    let track = movie
                        .tracks
                        .iter_mut()
                        .find(|t| t.id == id)
                        .ok_or_else(|| format!("a fragment refers to unknown track {id}"))?;
                    track.frag_samples = track.frag_samples.saturating_add(samples);
                    track.frag_ticks = track.frag_ticks.saturating_add(ticks);
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Sample count and summed duration of one track run.
fn read_trun(body: &[u8], default_duration: u32) -> Result<(u64, u64), String> {
    let flags = be_u32(body, 0).ok_or_else(|| short("trun"))? & 0x00FF_FFFF;
    let count = be_u32(body, 4).ok_or_else(|| short("trun"))?;
    let mut at = 8usize;
    if flags & 0x001 != 0 {
        at += 4; // data offset
    }
    if flags & 0x004 != 0 {
        at += 4; // first sample flags
    }
    let per_sample = [0x100u32, 0x200, 0x400, 0x800]
        .iter()
        .filter(|f| flags & **f != 0)
        .count()
        * 4;
    let has_duration = flags & 0x100 != 0;
    let table = body.get(at..).ok_or_else(|| short("trun"))?;
    if per_sample > 0 && table.len() / per_sample < count as usize {
        return Err(format!(
            "the trun box lists {count} samples but has room for {}",
            table.len() / per_sample
        ));
    }
    let ticks = if has_duration {
        table
            .chunks_exact(per_sample)
            .take(count as usize)
            .map(|s| u64::from(be_u32(s, 0).unwrap_or(0)))
            .fold(0u64, u64::saturating_add)
    } else {
        u64::from(count).saturating_mul(u64::from(default_duration))
    };
    Ok((u64::from(count), ticks))
}
