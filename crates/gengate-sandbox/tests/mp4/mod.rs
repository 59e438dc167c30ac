//! A small ISO-BMFF reader, written for these tests so the checks do not
//! trust the muxer that produced the file. It reads only what the tests
//! check and fails loudly (with `Err`) on anything malformed.

#![allow(dead_code)]

pub type Res<T> = Result<T, String>;

#[derive(Debug, Clone, Copy)]
pub struct Atom<'a> {
    pub kind: [u8; 4],
    /// Offset of the box header in the whole file.
    pub offset: usize,
    pub body: &'a [u8],
    /// Offset of `body` in the whole file.
    pub body_offset: usize,
}

impl Atom<'_> {
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.kind).into_owned()
    }
}

fn u16_at(b: &[u8], at: usize) -> Res<u16> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| format!("u16 at {at} past end ({})", b.len()))
}

pub fn u32_at(b: &[u8], at: usize) -> Res<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| format!("u32 at {at} past end ({})", b.len()))
}

fn u64_at(b: &[u8], at: usize) -> Res<u64> {
    b.get(at..at + 8)
        .map(|s| u64::from_be_bytes(s.try_into().unwrap_or([0; 8])))
        .ok_or_else(|| format!("u64 at {at} past end ({})", b.len()))
}

/// Splits `data` (which starts at `base` in the file) into boxes; every
/// byte must belong to a well-formed box.
pub fn atoms(data: &[u8], base: usize) -> Res<Vec<Atom<'_>>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        let size32 = u32_at(data, at)?;
        let kind: [u8; 4] = data
            .get(at + 4..at + 8)
            .ok_or("truncated box header")?
            .try_into()
            .map_err(|_| "bad box type")?;
        let (header, size) = match size32 {
            0 => (8, data.len() - at),
            1 => (16, u64_at(data, at + 8)? as usize),
            n => (8, n as usize),
        };
        if size < header || at + size > data.len() {
            return Err(format!(
                "box {:?} at {} has size {size}, {} bytes remain",
                String::from_utf8_lossy(&kind),
                base + at,
                data.len() - at
            ));
        }
        out.push(Atom {
            kind,
            offset: base + at,
            body: &data[at + header..at + size],
            body_offset: base + at + header,
        });
        at += size;
    }
    Ok(out)
}

pub fn child<'a>(parent: &Atom<'a>, kind: &[u8; 4]) -> Res<Atom<'a>> {
    children(parent, kind)?
        .into_iter()
        .next()
        .ok_or_else(|| format!("{} has no {}", parent.name(), String::from_utf8_lossy(kind)))
}

pub fn children<'a>(parent: &Atom<'a>, kind: &[u8; 4]) -> Res<Vec<Atom<'a>>> {
    Ok(atoms(parent.body, parent.body_offset)?
        .into_iter()
        .filter(|a| &a.kind == kind)
        .collect())
}

pub fn path<'a>(root: &Atom<'a>, kinds: &[&[u8; 4]]) -> Res<Atom<'a>> {
    let mut at = *root;
    for k in kinds {
        at = child(&at, k)?;
    }
    Ok(at)
}

#[derive(Debug)]
pub struct Track {
    pub handler: [u8; 4],
    pub timescale: u32,
    pub duration: u64,
    pub tkhd_width: f64,
    pub tkhd_height: f64,
    /// Sample entry fourcc: `avc1`, `Opus`, `mp4a`...
    pub codec: [u8; 4],
    /// Coded size from the visual sample entry (video only).
    pub entry_size: Option<(u16, u16)>,
    /// `avcC` for H.264.
    pub avcc: Option<Vec<u8>>,
    /// Per-sample duration from `stts`.
    pub sample_durations: Vec<u32>,
    /// File offset and size of every sample.
    pub samples: Vec<(u64, u32)>,
    /// 1-based sync sample numbers; `None` when `stss` is absent (all are sync).
    pub sync: Option<Vec<u32>>,
}

impl Track {
    pub fn duration_seconds(&self) -> f64 {
        self.duration as f64 / f64::from(self.timescale)
    }

    pub fn stts_seconds(&self) -> f64 {
        self.sample_durations
            .iter()
            .map(|&d| u64::from(d))
            .sum::<u64>() as f64
            / f64::from(self.timescale)
    }

    pub fn handler_name(&self) -> String {
        String::from_utf8_lossy(&self.handler).into_owned()
    }
}

#[derive(Debug)]
pub struct Movie {
    /// Top-level box names in file order.
    pub top: Vec<String>,
    pub movie_timescale: u32,
    pub movie_duration: u64,
    pub tracks: Vec<Track>,
    /// Byte range of the `mdat` payload.
    pub mdat: (u64, u64),
}

impl Movie {
    pub fn track(&self, handler: &[u8; 4]) -> Option<&Track> {
        self.tracks.iter().find(|t| &t.handler == handler)
    }
}

fn full_box_version(body: &[u8]) -> Res<u8> {
    body.first()
        .copied()
        .ok_or_else(|| "empty full box".to_owned())
}

pub fn parse(file: &[u8]) -> Res<Movie> {
    let top = atoms(file, 0)?;
    let moov = top.iter().find(|a| &a.kind == b"moov").ok_or("no moov")?;
    let mdat = top.iter().find(|a| &a.kind == b"mdat").ok_or("no mdat")?;
    let mvhd = child(moov, b"mvhd")?;
    let (movie_timescale, movie_duration) = if full_box_version(mvhd.body)? == 1 {
        (u32_at(mvhd.body, 20)?, u64_at(mvhd.body, 24)?)
    } else {
        (u32_at(mvhd.body, 12)?, u64::from(u32_at(mvhd.body, 16)?))
    };
    let mut tracks = Vec::new();
    for trak in children(moov, b"trak")? {
        tracks.push(parse_track(&trak)?);
    }
    Ok(Movie {
        top: top.iter().map(Atom::name).collect(),
        movie_timescale,
        movie_duration,
        tracks,
        mdat: (
            mdat.body_offset as u64,
            (mdat.body_offset + mdat.body.len()) as u64,
        ),
    })
}

fn parse_track(trak: &Atom<'_>) -> Res<Track> {
    let tkhd = child(trak, b"tkhd")?;
    // Width and height are the last 8 bytes of tkhd, 16.16 fixed point.
    let n = tkhd.body.len();
    let tkhd_width = f64::from(u32_at(tkhd.body, n - 8)?) / 65536.0;
    let tkhd_height = f64::from(u32_at(tkhd.body, n - 4)?) / 65536.0;

    let mdia = child(trak, b"mdia")?;
    let mdhd = child(&mdia, b"mdhd")?;
    let (timescale, duration) = if full_box_version(mdhd.body)? == 1 {
        (u32_at(mdhd.body, 20)?, u64_at(mdhd.body, 24)?)
    } else {
        (u32_at(mdhd.body, 12)?, u64::from(u32_at(mdhd.body, 16)?))
    };
    let hdlr = child(&mdia, b"hdlr")?;
    let handler: [u8; 4] = hdlr
        .body
        .get(8..12)
        .ok_or("short hdlr")?
        .try_into()
        .map_err(|_| "hdlr")?;

    let stbl = path(&mdia, &[b"minf", b"stbl"])?;
    let stsd = child(&stbl, b"stsd")?;
    if u32_at(stsd.body, 4)? != 1 {
        return Err("expected exactly one sample entry".into());
    }
    let entries = atoms(&stsd.body[8..], stsd.body_offset + 8)?;
    let entry = entries.first().ok_or("empty stsd")?;
    let codec = entry.kind;
    let (entry_size, avcc) = if &handler == b"vide" {
        // VisualSampleEntry: 6 reserved + 2 index + 16 predefined, then width, height.
        let size = (u16_at(entry.body, 24)?, u16_at(entry.body, 26)?);
        // 78 bytes of fixed fields precede the child boxes.
        let kids = atoms(&entry.body[78..], entry.body_offset + 78)?;
        let avcc = kids
            .iter()
            .find(|a| &a.kind == b"avcC")
            .map(|a| a.body.to_vec());
        (Some(size), avcc)
    } else {
        (None, None)
    };

    // stts: (count, delta) runs.
    let stts = child(&stbl, b"stts")?;
    let mut sample_durations = Vec::new();
    for i in 0..u32_at(stts.body, 4)? as usize {
        let count = u32_at(stts.body, 8 + i * 8)?;
        let delta = u32_at(stts.body, 12 + i * 8)?;
        sample_durations.extend(std::iter::repeat_n(delta, count as usize));
    }

    let stsz = child(&stbl, b"stsz")?;
    let fixed = u32_at(stsz.body, 4)?;
    let count = u32_at(stsz.body, 8)? as usize;
    let sizes: Vec<u32> = if fixed != 0 {
        vec![fixed; count]
    } else {
        (0..count)
            .map(|i| u32_at(stsz.body, 12 + i * 4))
            .collect::<Res<_>>()?
    };

    let chunk_offsets: Vec<u64> = if let Ok(stco) = child(&stbl, b"stco") {
        (0..u32_at(stco.body, 4)? as usize)
            .map(|i| u32_at(stco.body, 8 + i * 4).map(u64::from))
            .collect::<Res<_>>()?
    } else {
        let co64 = child(&stbl, b"co64")?;
        (0..u32_at(co64.body, 4)? as usize)
            .map(|i| u64_at(co64.body, 8 + i * 8))
            .collect::<Res<_>>()?
    };

    // stsc: runs of (first_chunk, samples_per_chunk, description index).
    let stsc = child(&stbl, b"stsc")?;
    let runs: Vec<(u32, u32)> = (0..u32_at(stsc.body, 4)? as usize)
        .map(|i| {
            Ok((
                u32_at(stsc.body, 8 + i * 12)?,
                u32_at(stsc.body, 12 + i * 12)?,
            ))
        })
        .collect::<Res<_>>()?;
    let mut samples = Vec::with_capacity(count);
    let mut next = 0usize;
    for (chunk_index, &offset) in chunk_offsets.iter().enumerate() {
        let chunk_no = chunk_index as u32 + 1;
        let per_chunk = runs
            .iter()
            .rev()
            .find(|(first, _)| *first <= chunk_no)
            .map(|r| r.1)
            .ok_or("chunk before first stsc run")?;
        let mut at = offset;
        for _ in 0..per_chunk {
            let size = *sizes
                .get(next)
                .ok_or("stsc maps more samples than stsz has")?;
            samples.push((at, size));
            at += u64::from(size);
            next += 1;
        }
    }
    if samples.len() != count {
        return Err(format!(
            "chunks hold {} samples, stsz lists {count}",
            samples.len()
        ));
    }

    let sync = match child(&stbl, b"stss") {
        Ok(stss) => Some(
            (0..u32_at(stss.body, 4)? as usize)
                .map(|i| u32_at(stss.body, 8 + i * 4))
                .collect::<Res<_>>()?,
        ),
        Err(_) => None,
    };

    Ok(Track {
        handler,
        timescale,
        duration,
        tkhd_width,
        tkhd_height,
        codec,
        entry_size,
        avcc,
        sample_durations,
        samples,
        sync,
    })
}

/// The NAL unit types in one AVCC-framed (4-byte length prefix) sample.
pub fn nal_types(sample: &[u8]) -> Res<Vec<u8>> {
    let mut at = 0usize;
    let mut types = Vec::new();
    while at < sample.len() {
        let len = u32_at(sample, at)? as usize;
        let nal = sample.get(at + 4..at + 4 + len).ok_or_else(|| {
            format!(
                "NAL of {len} bytes at {at} overruns a {}-byte sample",
                sample.len()
            )
        })?;
        types.push(nal.first().ok_or("empty NAL")? & 0x1f);
        at += 4 + len;
    }
    Ok(types)
}

/// Converts an AVCC sample back to Annex B for a decoder.
pub fn to_annex_b(sample: &[u8], out: &mut Vec<u8>) -> Res<()> {
    let mut at = 0usize;
    while at < sample.len() {
        let len = u32_at(sample, at)? as usize;
        let nal = sample
            .get(at + 4..at + 4 + len)
            .ok_or("NAL overruns sample")?;
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
        at += 4 + len;
    }
    Ok(())
}

/// SPS and PPS from an `avcC` body, in Annex B.
pub fn avcc_parameter_sets(avcc: &[u8]) -> Res<Vec<u8>> {
    let mut out = Vec::new();
    let sps_count = usize::from(avcc.get(5).ok_or("short avcC")? & 0x1f);
    let mut at = 6;
    for _ in 0..sps_count {
        let len = usize::from(u16_at(avcc, at)?);
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(avcc.get(at + 2..at + 2 + len).ok_or("short SPS")?);
        at += 2 + len;
    }
    let pps_count = usize::from(*avcc.get(at).ok_or("no PPS count")?);
    at += 1;
    for _ in 0..pps_count {
        let len = usize::from(u16_at(avcc, at)?);
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(avcc.get(at + 2..at + 2 + len).ok_or("short PPS")?);
        at += 2 + len;
    }
    if sps_count == 0 || pps_count == 0 {
        return Err("avcC without SPS or PPS".into());
    }
    Ok(out)
}
