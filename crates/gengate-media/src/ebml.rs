//! Just enough EBML to read the header of a Matroska/WebM file from its first bytes.
//!
//! The full demuxing is matroska-demuxer's; this exists because sniffing must work on a prefix
//! of the file, where a complete reader would fail on the missing rest.

pub(crate) const EBML_HEADER_ID: u32 = 0x1A45_DFA3;
pub(crate) const DOC_TYPE_ID: u32 = 0x4282;

/// Reads an element ID (the length marker stays part of the value, as the spec writes IDs).
fn read_id(data: &[u8], pos: usize) -> Option<(u32, usize)> {
    let first = *data.get(pos)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 4 {
        return None;
    }
    let bytes = data.get(pos..pos + len)?;
    let id = bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
    Some((id, len))
}

/// Reads an element size. `None` inside means "unknown size" (all value bits set).
fn read_size(data: &[u8], pos: usize) -> Option<(Option<u64>, usize)> {
    let first = *data.get(pos)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return None;
    }
    let bytes = data.get(pos..pos + len)?;
    // Drop the length marker bit from the first byte.
    let marker_mask = if len == 8 { 0 } else { 0xFFu8 >> len };
    let mut value = u64::from(first & marker_mask);
    for b in &bytes[1..] {
        value = (value << 8) | u64::from(*b);
    }
    let all_ones = (1u64 << (7 * len)) - 1;
    Some((if value == all_ones { None } else { Some(value) }, len))
}

/// One element: its ID, where its body starts, and its declared size.
pub(crate) struct Element {
    pub id: u32,
    pub body_start: usize,
    pub size: Option<u64>,
}

pub(crate) fn read_element(data: &[u8], pos: usize) -> Option<Element> {
    let (id, id_len) = read_id(data, pos)?;
    let (size, size_len) = read_size(data, pos + id_len)?;
    Some(Element {
        id,
        body_start: pos + id_len + size_len,
        size,
    })
}

/// The DocType of the EBML header at the start of `head` ("webm", "matroska", …), read from as
/// much of the header as `head` holds.
pub(crate) fn doc_type(head: &[u8]) -> Option<String> {
    let header = read_element(head, 0)?;
    if header.id != EBML_HEADER_ID {
        return None;
    }
    let declared_end = header
        .size
        .and_then(|s| usize::try_from(s).ok())
        .and_then(|s| header.body_start.checked_add(s))
        .unwrap_or(usize::MAX);
    let end = declared_end.min(head.len());
    let mut pos = header.body_start;
    while pos < end {
        let child = read_element(head, pos)?;
        let size = usize::try_from(child.size?).ok()?;
        let body_end = child.body_start.checked_add(size)?;
        if child.id == DOC_TYPE_ID {
            let body = head.get(child.body_start..body_end)?;
            // DocType is an ASCII string that may be padded with NULs.
            let text: String = body
                .iter()
                .take_while(|b| **b != 0)
                .map(|b| char::from(*b))
                .collect();
            return Some(text);
        }
        pos = body_end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_unknown_size() {
        assert_eq!(read_size(&[0x81], 0), Some((Some(1), 1)));
        assert_eq!(read_size(&[0x40, 0x02], 0), Some((Some(2), 2)));
        assert_eq!(read_size(&[0xFF], 0), Some((None, 1)));
        assert_eq!(
            read_size(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], 0),
            Some((None, 8))
        );
        assert_eq!(read_size(&[0x00], 0), None);
        assert_eq!(read_size(&[0x40], 0), None);
    }

    #[test]
    fn doc_type_from_prefix() {
        let head = [
            0x1A, 0x45, 0xDF, 0xA3, 0x87, 0x42, 0x82, 0x84, b'w', b'e', b'b', b'm',
        ];
        assert_eq!(doc_type(&head).as_deref(), Some("webm"));
        assert_eq!(doc_type(&head[..8]), None);
    }
}
