//! Bitmap text: the public-domain 8×8 font from `font8x8`, scaled up by
//! whole pixels so it stays crisp after compression.

use font8x8::UnicodeFonts;

use crate::picture::{Picture, Yuv};

pub const GLYPH: usize = 8;

/// The 8 rows of a character's bitmap (bit 0 is the leftmost pixel), or
/// `?` for anything the font does not cover.
pub fn glyph(c: char) -> [u8; 8] {
    let found = font8x8::BASIC_FONTS
        .get(c)
        .or_else(|| font8x8::LATIN_FONTS.get(c))
        .or_else(|| font8x8::GREEK_FONTS.get(c))
        .or_else(|| font8x8::BOX_FONTS.get(c))
        .or_else(|| font8x8::BLOCK_FONTS.get(c))
        .or_else(|| font8x8::HIRAGANA_FONTS.get(c));
    match found {
        Some(bits) => bits,
        None => font8x8::BASIC_FONTS.get('?').unwrap_or([0; 8]),
    }
}

/// Draws one line of text with its top-left corner at (x, y); anything off
/// the frame is clipped. Text is white on whatever is below, with chroma
/// forced to neutral so coloured backgrounds do not tint the letters.
pub fn draw_text(pic: &mut Picture, x: i64, y: i64, scale: usize, text: &str) {
    let scale = scale.max(1);
    let advance = (GLYPH * scale) as i64;
    let mut pen = x;
    for c in text.chars() {
        if pen >= pic.width as i64 {
            break;
        }
        if c != ' ' {
            draw_glyph(pic, pen, y, scale, &glyph(c));
        }
        pen += advance;
    }
}

fn draw_glyph(pic: &mut Picture, x: i64, y: i64, scale: usize, bits: &[u8; 8]) {
    let s = scale as i64;
    for (gy, row_bits) in bits.iter().enumerate() {
        if *row_bits == 0 {
            continue;
        }
        for gx in 0..GLYPH {
            if row_bits & (1 << gx) != 0 {
                pic.fill_rect(x + gx as i64 * s, y + gy as i64 * s, s, s, Yuv::WHITE);
            }
        }
    }
}

/// Breaks `text` into at most `max_lines` lines of at most `columns`
/// characters, preferring to break at spaces. Control characters count as
/// spaces, a newline ends its line, and when text is cut off the last line
/// ends in "...".
pub fn wrap(text: &str, columns: usize, max_lines: usize) -> Vec<String> {
    let columns = columns.max(1);
    let mut out: Vec<String> = Vec::new();
    let mut line: Vec<char> = Vec::new();
    let mut truncated = false;
    'paragraphs: for paragraph in text.split('\n') {
        for word in paragraph.split(|c: char| c.is_whitespace() || c.is_control()) {
            let mut word: Vec<char> = word.chars().collect();
            while !word.is_empty() {
                let needed = if line.is_empty() {
                    word.len()
                } else {
                    line.len() + 1 + word.len()
                };
                if needed <= columns {
                    if !line.is_empty() {
                        line.push(' ');
                    }
                    line.append(&mut word);
                    break;
                }
                let full = if line.is_empty() {
                    // A word longer than a whole line is split hard.
                    let rest = word.split_off(columns);
                    std::mem::replace(&mut word, rest)
                } else {
                    std::mem::take(&mut line)
                };
                if out.len() == max_lines {
                    truncated = true;
                    break 'paragraphs;
                }
                out.push(full.into_iter().collect());
            }
        }
        if !line.is_empty() {
            if out.len() == max_lines {
                truncated = true;
                break;
            }
            out.push(std::mem::take(&mut line).into_iter().collect());
        }
    }
    if truncated && let Some(last) = out.last_mut() {
        let mut chars: Vec<char> = last.chars().collect();
        chars.truncate(columns.saturating_sub(3));
        while chars.last() == Some(&' ') {
            chars.pop();
        }
        chars.extend(['.', '.', '.']);
        *last = chars.into_iter().collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_glyphs_become_question_marks() {
        assert_eq!(glyph('\u{4e2d}'), glyph('?'));
        assert_eq!(glyph('\u{1F600}'), glyph('?'));
        assert_ne!(glyph('A'), glyph('?'));
        assert_ne!(glyph('é'), glyph('?'));
        assert_ne!(glyph('λ'), glyph('?'));
    }

    #[test]
    fn wraps_at_spaces() {
        let lines = wrap("a cat riding a skateboard at dusk", 12, 5);
        assert_eq!(lines, ["a cat riding", "a skateboard", "at dusk"]);
    }

    #[test]
    fn splits_long_words_and_marks_truncation() {
        let lines = wrap(&"x".repeat(50), 10, 2);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], "x".repeat(10));
        assert!(lines[1].ends_with("..."), "{lines:?}");
        assert!(lines[1].chars().count() <= 10);
    }

    #[test]
    fn exact_fit_is_not_marked() {
        assert_eq!(wrap("abc def", 3, 2), ["abc", "def"]);
        assert_eq!(wrap("", 3, 2), Vec::<String>::new());
        assert_eq!(wrap("one\ntwo\n\tthree", 20, 5), ["one", "two", "three"]);
    }

    #[test]
    fn text_off_frame_is_clipped() {
        let mut p = Picture::new(64, 32);
        draw_text(&mut p, -20, -5, 3, "Hello, 世界 \u{0} \u{FFFF}");
        draw_text(&mut p, 60, 30, 4, "clipped");
        assert!(p.y.iter().any(|&v| v > 200));
    }
}
