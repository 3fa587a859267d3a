//! Text of the PDF renderer: turning styled runs into glyphs, breaking them into lines that fit a
//! width, and putting right-to-left runs (Hebrew, Arabic) into visual order for display.

use std::ops::Range;

use super::fonts::{FontBook, Style};

/// One placed character: face, subset glyph id, advance in 1/1000 em, colour.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Glyph {
    pub(crate) font: u8,
    pub(crate) gid: u16,
    pub(crate) advance: f32,
    pub(crate) ch: char,
    pub(crate) rgb: [u8; 3],
}

pub(crate) const BLACK: [u8; 3] = [0, 0, 0];

/// Appends the glyphs of `text` in `style` and colour `rgb` to `out`.
pub(crate) fn shape(
    book: &mut FontBook<'_>,
    text: &str,
    style: Style,
    rgb: [u8; 3],
    out: &mut Vec<Glyph>,
) {
    out.reserve(text.len());
    for ch in text.chars() {
        let ch = match ch {
            '\t' => ' ',
            '\r' => continue,
            other => other,
        };
        if ch == '\n' {
            out.push(Glyph {
                font: style as u8,
                gid: 0,
                advance: 0.0,
                ch,
                rgb,
            });
            continue;
        }
        let info = book.glyph(ch, style);
        out.push(Glyph {
            font: info.font,
            gid: info.gid,
            advance: info.advance,
            ch,
            rgb,
        });
    }
}

/// Width in points of `glyphs` at `size`.
pub(crate) fn width(glyphs: &[Glyph], size: f32) -> f32 {
    glyphs.iter().map(|g| g.advance).sum::<f32>() * size / 1000.0
}

fn is_space(ch: char) -> bool {
    ch == ' ' || ch == '\u{3000}'
}

/// Ideographs and kana: a line may break before or after any of them.
fn is_cjk(ch: char) -> bool {
    matches!(ch as u32,
        0x2E80..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF | 0xFF00..=0xFFEF | 0x20000..=0x3FFFF)
}

/// Breaks `glyphs` into lines no wider than `max_width` points at `size`: at spaces where it can,
/// between ideographs, and inside a word only when the word alone is too wide. Spaces at line ends
/// are dropped; `\n` forces a break. Appends the line ranges to `lines` (at least one line).
pub(crate) fn break_lines(
    glyphs: &[Glyph],
    size: f32,
    max_width: f32,
    lines: &mut Vec<Range<usize>>,
) {
    let limit = max_width * 1000.0 / size;
    let mut start = 0;
    let mut used = 0.0f32;
    // A break opportunity: the line would end at `.0` and the next start at `.1`.
    let mut opportunity: Option<(usize, usize)> = None;
    let mut i = 0;
    let before = lines.len();
    while i < glyphs.len() {
        let glyph = glyphs[i];
        if glyph.ch == '\n' {
            lines.push(start..trim_end(glyphs, start, i));
            start = i + 1;
            used = 0.0;
            opportunity = None;
            i += 1;
            continue;
        }
        if is_space(glyph.ch) {
            if i == start {
                // no spaces at the start of a wrapped line
                start = i + 1;
                i += 1;
                continue;
            }
            opportunity = Some((i, i + 1));
            used += glyph.advance;
            i += 1;
            continue;
        }
        if is_cjk(glyph.ch) && i > start {
            opportunity = Some((i, i));
        }
        if used + glyph.advance > limit && i > start {
            let (end, next) = match opportunity {
                Some(found) if found.0 > start => found,
                _ => (i, i),
            };
            lines.push(start..trim_end(glyphs, start, end));
            start = next;
            while start < glyphs.len() && is_space(glyphs[start].ch) {
                start += 1;
            }
            opportunity = None;
            used = glyphs[start..i].iter().map(|g| g.advance).sum();
            if start > i {
                i = start;
                continue;
            }
        }
        used += glyph.advance;
        i += 1;
    }
    if start < glyphs.len() || lines.len() == before {
        lines
            .push(start.min(glyphs.len())..trim_end(glyphs, start.min(glyphs.len()), glyphs.len()));
    }
}

fn trim_end(glyphs: &[Glyph], start: usize, mut end: usize) -> usize {
    while end > start && is_space(glyphs[end - 1].ch) {
        end -= 1;
    }
    end
}

/// Letters written right to left: Hebrew, Arabic, Syriac, Thaana and their presentation forms.
fn is_rtl(ch: char) -> bool {
    matches!(ch as u32, 0x0590..=0x08FF | 0xFB1D..=0xFDFF | 0xFE70..=0xFEFF)
}

/// Characters that take the direction of the letters around them.
fn is_neutral(ch: char) -> bool {
    !(ch.is_alphanumeric() || is_rtl(ch))
}

/// The glyphs of one line in visual order (left-to-right paragraph): each run of right-to-left
/// letters, with the spaces and punctuation between them, is reversed.
pub(crate) fn visual_order(line: &[Glyph], out: &mut Vec<Glyph>) {
    out.clear();
    if !line.iter().any(|g| is_rtl(g.ch)) {
        out.extend_from_slice(line);
        return;
    }
    let mut i = 0;
    while i < line.len() {
        if !is_rtl(line[i].ch) {
            out.push(line[i]);
            i += 1;
            continue;
        }
        // The run goes on over neutrals as long as another right-to-left letter follows them.
        let mut end = i + 1;
        let mut probe = end;
        while probe < line.len() {
            let ch = line[probe].ch;
            if is_rtl(ch) {
                probe += 1;
                end = probe;
            } else if is_neutral(ch) {
                probe += 1;
            } else {
                break;
            }
        }
        out.extend(line[i..end].iter().rev());
        i = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glyphs(text: &str) -> Vec<Glyph> {
        text.chars()
            .map(|ch| Glyph {
                font: 0,
                gid: 1,
                advance: if is_cjk(ch) { 1000.0 } else { 500.0 },
                ch,
                rgb: BLACK,
            })
            .collect()
    }

    fn check_break(text: &str, width_em: f32, expect: &[&str]) {
        let g = glyphs(text);
        let mut lines = Vec::new();
        break_lines(&g, 1000.0, width_em * 1000.0, &mut lines);
        let got: Vec<String> = lines
            .iter()
            .map(|r| g[r.clone()].iter().map(|g| g.ch).collect())
            .collect();
        assert_eq!(got, expect, "{text:?}");
    }

    #[test]
    fn breaks_at_spaces_and_inside_long_words() {
        check_break("aa bb cc", 2.0, &["aa", "bb", "cc"]);
        check_break("aa bb cc", 3.0, &["aa bb", "cc"]);
        check_break("abcdefgh", 2.0, &["abcd", "efgh"]);
        check_break("", 2.0, &[""]);
        check_break("one\ntwo", 20.0, &["one", "two"]);
        check_break("美玲美玲", 2.0, &["美玲", "美玲"]);
    }

    #[test]
    fn reverses_right_to_left_runs_only() {
        let mut out = Vec::new();
        visual_order(&glyphs("Noa נועה כהן!"), &mut out);
        let got: String = out.iter().map(|g| g.ch).collect();
        assert_eq!(got, "Noa ןהכ העונ!");
    }
}
