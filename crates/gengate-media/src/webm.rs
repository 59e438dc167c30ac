//! WebM durations.
//!
//! matroska-demuxer reads the header, Segment Info and Tracks. The blocks are walked here
//! instead of through its `next_frame`, which overflows (panicking in debug builds) on a block
//! whose relative timestamp is -32768, and on cluster timestamps near `u64::MAX`; a block walk
//! is also all that is needed, since no frame data has to be copied out.

use std::io::Cursor;

use matroska_demuxer::{MatroskaFile, TrackType};

use crate::ebml::{Element, read_element};
use crate::{MediaError, guard::shielded};

const MIME: &str = "video/webm";

const SEGMENT: u32 = 0x1853_8067;
const CLUSTER: u32 = 0x1F43_B675;
const TIMESTAMP: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;
const BLOCK_DURATION: u32 = 0x9B;

/// Top-level (Segment child) IDs. A cluster of unknown size, as live recorders write them,
/// ends where one of these begins.
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const CUES: u32 = 0x1C53_BB6B;
const CHAPTERS: u32 = 0x1043_A770;
const TAGS: u32 = 0x1254_C367;

/// matroska-demuxer parses these elements whole into structs many times the size of their
/// bytes; a crafted file of millions of tiny entries would cost gigabytes. Real files stay far
/// below these bounds (a track or three; cues in the kilobytes).
const MAX_TRACK_ENTRIES: usize = 64;
const MAX_CUES_BYTES: usize = 8 << 20;
const MAX_TAGS_OR_CHAPTERS_BYTES: usize = 1 << 20;

const SEGMENT_CHILDREN: [u32; 8] = [
    CLUSTER,
    0x114D_9B74, // SeekHead
    0x1549_A966, // Info
    TRACKS,
    CUES,
    0x1941_A469, // Attachments
    CHAPTERS,
    TAGS,
];

pub(crate) fn duration(bytes: &[u8]) -> Result<f64, MediaError> {
    shielded(MIME, || measure(bytes))
}

fn measure(bytes: &[u8]) -> Result<f64, MediaError> {
    // The first walk checks the structure, and the sizes of what matroska-demuxer will load
    // into memory, before it is let near the file.
    walk_blocks(bytes, &mut |_| {}).map_err(|e| MediaError::decode(MIME, e))?;
    let file = MatroskaFile::open(Cursor::new(bytes)).map_err(|e| MediaError::decode(MIME, e))?;
    let doc_type = file.ebml_header().doc_type();
    if doc_type != "webm" {
        return Err(MediaError::decode(
            MIME,
            format!("its DocType is {doc_type:?}, not \"webm\""),
        ));
    }
    if !file
        .tracks()
        .iter()
        .any(|t| t.track_type() == TrackType::Video)
    {
        return Err(MediaError::MissingTrack {
            mime: MIME.to_owned(),
            wanted: "video",
        });
    }
    // Timestamps count units of `timestamp_scale` nanoseconds.
    let ns_per_tick = file.info().timestamp_scale().get() as f64;
    let declared = file.info().duration();
    let default_durations: Vec<(u64, u64)> = file
        .tracks()
        .iter()
        .filter_map(|t| Some((t.track_number().get(), t.default_duration()?.get())))
        .collect();

    // Walk every block even when a Duration is declared: a cluster cut short is a truncated
    // upload, which the declared Duration alone would hide.
    let mut blocks = 0u64;
    let mut end_ns = 0.0f64;
    walk_blocks(bytes, &mut |b: BlockTime| {
        blocks += 1;
        let start_ns = b.ticks as f64 * ns_per_tick;
        // A block lasts its BlockDuration if given, else its frames' DefaultDuration.
        let length_ns = match b.duration_ticks {
            Some(ticks) => ticks as f64 * ns_per_tick,
            None => default_durations
                .iter()
                .find(|(track, _)| *track == b.track)
                .map_or(0.0, |(_, ns)| *ns as f64 * f64::from(b.frames)),
        };
        end_ns = end_ns.max(start_ns + length_ns);
    })
    .map_err(|e| MediaError::decode(MIME, e))?;
    if blocks == 0 {
        return Err(MediaError::decode(MIME, "it holds no media blocks"));
    }

    match declared {
        Some(ticks) if ticks.is_finite() && ticks > 0.0 => Ok(ticks * ns_per_tick / 1e9),
        // Live recorders (browsers' MediaRecorder) write no Duration; the last block's end is
        // then the best truth there is.
        _ if end_ns > 0.0 => Ok(end_ns / 1e9),
        _ => Err(MediaError::no_duration(
            MIME,
            "no Duration element and no timed blocks",
        )),
    }
}

/// What a block says about time.
struct BlockTime {
    track: u64,
    /// Absolute timestamp: cluster timestamp plus the block's relative one (never negative).
    ticks: i128,
    duration_ticks: Option<u64>,
    /// Frames in the block (more than one when laced).
    frames: u32,
}

/// The end of an element's body: its declared end, or for an unknown size, `parent_end`.
fn body_end(e: &Element, parent_end: usize, what: &str) -> Result<usize, String> {
    match e.size {
        None => Ok(parent_end),
        Some(size) => usize::try_from(size)
            .ok()
            .and_then(|s| e.body_start.checked_add(s))
            .filter(|end| *end <= parent_end)
            .ok_or_else(|| {
                format!(
                    "{what} at offset {} declares {size} bytes, more than remain",
                    e.body_start
                )
            }),
    }
}

/// Calls `visit` for every block of the Segment, in file order.
fn walk_blocks(bytes: &[u8], visit: &mut dyn FnMut(BlockTime)) -> Result<(), String> {
    // The EBML header comes first; the Segment follows it.
    let header = read_element(bytes, 0).ok_or("no EBML header")?;
    let mut pos = body_end(&header, bytes.len(), "the EBML header")?;
    let segment = loop {
        let e = read_element(bytes, pos).ok_or("no Segment")?;
        if e.id == SEGMENT {
            break e;
        }
        // Void or other elements between header and Segment are skipped.
        pos = body_end(&e, bytes.len(), "an element before the Segment")?;
    };
    let segment_end = body_end(&segment, bytes.len(), "the Segment")?;

    let mut pos = segment.body_start;
    while pos < segment_end {
        let e = read_element(bytes, pos)
            .ok_or_else(|| format!("unreadable element at offset {pos}"))?;
        if e.id == CLUSTER {
            pos = walk_cluster(bytes, &e, segment_end, visit)?;
        } else {
            if e.size.is_none() {
                return Err(format!("element at offset {pos} has an unknown size"));
            }
            let end = body_end(&e, segment_end, "a Segment element")?;
            check_bounded(bytes, &e, end)?;
            pos = end;
        }
    }
    Ok(())
}

fn check_bounded(bytes: &[u8], e: &Element, end: usize) -> Result<(), String> {
    let len = end - e.body_start;
    match e.id {
        TRACKS => {
            let mut entries = 0;
            let mut pos = e.body_start;
            while pos < end {
                let child = read_element(bytes, pos)
                    .ok_or_else(|| format!("unreadable element at offset {pos}"))?;
                if child.id == TRACK_ENTRY {
                    entries += 1;
                }
                if entries > MAX_TRACK_ENTRIES {
                    return Err(format!("more than {MAX_TRACK_ENTRIES} tracks"));
                }
                pos = body_end(&child, end, "a Tracks element")?;
            }
            Ok(())
        }
        CUES if len > MAX_CUES_BYTES => Err(format!("a {len}-byte Cues element")),
        TAGS | CHAPTERS if len > MAX_TAGS_OR_CHAPTERS_BYTES => {
            Err(format!("a {len}-byte Tags or Chapters element"))
        }
        _ => Ok(()),
    }
}

/// Walks one cluster, returning where the next Segment child begins.
fn walk_cluster(
    bytes: &[u8],
    cluster: &Element,
    segment_end: usize,
    visit: &mut dyn FnMut(BlockTime),
) -> Result<usize, String> {
    let end = body_end(cluster, segment_end, "a Cluster")?;
    let unknown_size = cluster.size.is_none();
    let mut cluster_ticks: i128 = 0;
    let mut pos = cluster.body_start;
    while pos < end {
        let e = read_element(bytes, pos)
            .ok_or_else(|| format!("unreadable element at offset {pos}"))?;
        if unknown_size && SEGMENT_CHILDREN.contains(&e.id) {
            return Ok(pos);
        }
        let child_end = body_end(&e, end, "a Cluster element")?;
        let body = &bytes[e.body_start..child_end];
        match e.id {
            TIMESTAMP => cluster_ticks = i128::from(read_uint(body)?),
            SIMPLE_BLOCK => visit(read_block(body, cluster_ticks, None)?),
            BLOCK_GROUP => {
                let mut block = None;
                let mut duration = None;
                let mut inner = e.body_start;
                while inner < child_end {
                    let c = read_element(bytes, inner)
                        .ok_or_else(|| format!("unreadable element at offset {inner}"))?;
                    let c_end = body_end(&c, child_end, "a BlockGroup element")?;
                    let c_body = &bytes[c.body_start..c_end];
                    match c.id {
                        BLOCK => block = Some(c_body),
                        BLOCK_DURATION => duration = Some(read_uint(c_body)?),
                        _ => {}
                    }
                    inner = c_end;
                }
                let body = block.ok_or("a BlockGroup without a Block")?;
                visit(read_block(body, cluster_ticks, duration)?);
            }
            _ => {}
        }
        pos = child_end;
    }
    Ok(end)
}

fn read_uint(body: &[u8]) -> Result<u64, String> {
    if body.len() > 8 {
        return Err(format!("a {}-byte unsigned integer", body.len()));
    }
    Ok(body.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
}

fn read_block(
    body: &[u8],
    cluster_ticks: i128,
    duration_ticks: Option<u64>,
) -> Result<BlockTime, String> {
    // Track number (an EBML variable-size integer), relative timestamp, flags.
    let first = *body.first().ok_or("an empty block")?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return Err("a block with an invalid track number".into());
    }
    let track_bytes = body.get(..len).ok_or("a block cut short")?;
    let marker_mask = if len == 8 { 0 } else { 0xFFu8 >> len };
    let track = track_bytes[1..]
        .iter()
        .fold(u64::from(first & marker_mask), |acc, b| {
            (acc << 8) | u64::from(*b)
        });
    let rest = body.get(len..len + 3).ok_or("a block cut short")?;
    let relative = i16::from_be_bytes([rest[0], rest[1]]);
    let flags = rest[2];
    let frames = if flags & 0x06 != 0 {
        // Laced: the next byte is the frame count minus one.
        u32::from(*body.get(len + 3).ok_or("a laced block cut short")?) + 1
    } else {
        1
    };
    Ok(BlockTime {
        track,
        ticks: (cluster_ticks + i128::from(relative)).max(0),
        duration_ticks,
        frames,
    })
}
