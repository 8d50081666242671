//! Position math: the one place that turns (line, column) pairs in a negotiated encoding into
//! rope offsets and back.
//!
//! Columns count UTF-8 bytes, UTF-16 code units or Unicode scalar values (UTF-32), as the client
//! and server agreed in `initialize`. Lines end at `\n`, `\r\n` or a lone `\r`, as LSP says; ropey's
//! `cr_lines` feature gives the same rule, so a rope line is an LSP line.
//!
//! Clamping follows the spec: a column past the end of its line means the end of that line (before
//! its terminator), and a line past the last one means the end of the document. The one input we
//! refuse is a column that lands inside a character (between the two halves of a surrogate pair, or
//! inside a multi-byte UTF-8 sequence): that is a client bug, and guessing would corrupt text.

use ropey::{Rope, RopeSlice};

/// How the client counts columns. UTF-16 is LSP's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PositionEncoding {
    Utf8,
    #[default]
    Utf16,
    Utf32,
}

impl PositionEncoding {
    /// The name LSP uses in `positionEncoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            PositionEncoding::Utf8 => "utf-8",
            PositionEncoding::Utf16 => "utf-16",
            PositionEncoding::Utf32 => "utf-32",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "utf-8" => Some(PositionEncoding::Utf8),
            "utf-16" => Some(PositionEncoding::Utf16),
            "utf-32" => Some(PositionEncoding::Utf32),
            _ => None,
        }
    }

    /// Pick the encoding for a session from what the client offers, in its order of preference.
    ///
    /// UTF-8 wins whenever it is offered, since the rope and tree-sitter both speak bytes. Otherwise
    /// the client's first choice among the ones we support, and UTF-16 (which every client must
    /// support) when it offers nothing we know.
    pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Self {
        let offered: Vec<PositionEncoding> = offered.into_iter().filter_map(PositionEncoding::from_name).collect();
        if offered.contains(&PositionEncoding::Utf8) {
            return PositionEncoding::Utf8;
        }
        offered.first().copied().unwrap_or_default()
    }
}

/// A zero-based (line, column) pair, the column in some [`PositionEncoding`]'s units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TextPos {
    pub line: u32,
    pub col: u32,
}

impl TextPos {
    pub const fn new(line: u32, col: u32) -> Self {
        TextPos { line, col }
    }
}

/// Length of a line's terminator (0, 1 for `\n` or `\r`, 2 for `\r\n`).
fn terminator_len(line: RopeSlice<'_>) -> usize {
    let n = line.len_chars();
    if n == 0 {
        return 0;
    }
    match line.char(n - 1) {
        '\n' if n >= 2 && line.char(n - 2) == '\r' => 2,
        '\n' | '\r' => 1,
        _ => 0,
    }
}

/// Char index of the end of line `line`'s content (before its terminator).
fn line_content_end(rope: &Rope, line: usize) -> usize {
    let start = rope.line_to_char(line);
    let slice = rope.line(line);
    start + slice.len_chars() - terminator_len(slice)
}

/// Convert a position to a char index in `rope`, clamping per the LSP spec.
///
/// Returns `None` only when the column falls inside a character.
pub fn to_char(rope: &Rope, pos: TextPos, enc: PositionEncoding) -> Option<usize> {
    let line = pos.line as usize;
    if line >= rope.len_lines() {
        return Some(rope.len_chars());
    }
    let start = rope.line_to_char(line);
    let end = line_content_end(rope, line);
    let col = pos.col as usize;
    match enc {
        PositionEncoding::Utf32 => Some((start + col).min(end)),
        PositionEncoding::Utf8 => {
            let start_b = rope.char_to_byte(start);
            let end_b = rope.char_to_byte(end);
            let target = start_b.saturating_add(col);
            if target >= end_b {
                return Some(end);
            }
            let idx = rope.byte_to_char(target);
            (rope.char_to_byte(idx) == target).then_some(idx)
        }
        PositionEncoding::Utf16 => {
            let start_u = rope.char_to_utf16_cu(start);
            let end_u = rope.char_to_utf16_cu(end);
            let target = start_u.saturating_add(col);
            if target >= end_u {
                return Some(end);
            }
            let idx = rope.utf16_cu_to_char(target);
            (rope.char_to_utf16_cu(idx) == target).then_some(idx)
        }
    }
}

/// Convert a char index to a position. Indices past the end are clamped to the end.
pub fn from_char(rope: &Rope, idx: usize, enc: PositionEncoding) -> TextPos {
    let idx = idx.min(rope.len_chars());
    let line = rope.char_to_line(idx);
    let start = rope.line_to_char(line);
    let col = match enc {
        PositionEncoding::Utf32 => idx - start,
        PositionEncoding::Utf8 => rope.char_to_byte(idx) - rope.char_to_byte(start),
        PositionEncoding::Utf16 => rope.char_to_utf16_cu(idx) - rope.char_to_utf16_cu(start),
    };
    TextPos::new(saturate(line), saturate(col))
}

/// Convert a byte offset (as tree-sitter reports them) to a position.
pub fn from_byte(rope: &Rope, byte: usize, enc: PositionEncoding) -> TextPos {
    let byte = byte.min(rope.len_bytes());
    from_char(rope, rope.byte_to_char(byte), enc)
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use PositionEncoding::*;

    fn pos(line: u32, col: u32) -> TextPos {
        TextPos::new(line, col)
    }

    #[test]
    fn negotiation_prefers_utf8_then_client_order() {
        assert_eq!(PositionEncoding::negotiate(["utf-16", "utf-8"]), Utf8);
        assert_eq!(PositionEncoding::negotiate(["utf-32", "utf-16"]), Utf32);
        assert_eq!(PositionEncoding::negotiate(["utf-16", "utf-32"]), Utf16);
        assert_eq!(PositionEncoding::negotiate(["latin-1"]), Utf16);
        assert_eq!(PositionEncoding::negotiate([]), Utf16);
    }

    #[test]
    fn columns_count_units_of_the_encoding() {
        // "é" is 2 bytes / 1 unit, "😀" is 4 bytes / 2 UTF-16 units / 1 scalar.
        let rope = Rope::from_str("aé😀b\nx");
        let b = rope.len_chars() - 3; // the 'b'
        assert_eq!(to_char(&rope, pos(0, 7), Utf8), Some(b));
        assert_eq!(to_char(&rope, pos(0, 4), Utf16), Some(b));
        assert_eq!(to_char(&rope, pos(0, 3), Utf32), Some(b));
        for enc in [Utf8, Utf16, Utf32] {
            let p = from_char(&rope, b, enc);
            assert_eq!(to_char(&rope, p, enc), Some(b), "{enc:?}");
        }
    }

    #[test]
    fn positions_inside_a_character_are_refused() {
        let rope = Rope::from_str("😀");
        assert_eq!(to_char(&rope, pos(0, 1), Utf16), None);
        assert_eq!(to_char(&rope, pos(0, 2), Utf8), None);
        assert_eq!(to_char(&rope, pos(0, 1), Utf32), Some(1));
    }

    #[test]
    fn clamping_follows_the_spec() {
        let rope = Rope::from_str("ab\r\ncd\ref\n");
        for enc in [Utf8, Utf16, Utf32] {
            // Past the line end: before the terminator, never between \r and \n.
            assert_eq!(to_char(&rope, pos(0, 99), enc), Some(2));
            assert_eq!(to_char(&rope, pos(1, 99), enc), Some(6));
            // Lone CR ends a line too.
            assert_eq!(to_char(&rope, pos(2, 1), enc), Some(8));
            // The empty last line after a trailing newline exists.
            assert_eq!(to_char(&rope, pos(3, 0), enc), Some(10));
            // Past the last line: end of document.
            assert_eq!(to_char(&rope, pos(40, 3), enc), Some(10));
            assert_eq!(to_char(&rope, pos(u32::MAX, u32::MAX), enc), Some(10));
        }
    }

    #[test]
    fn from_char_clamps_and_round_trips_over_line_breaks() {
        let rope = Rope::from_str("a\r\nb");
        assert_eq!(from_char(&rope, 99, Utf16), pos(1, 1));
        assert_eq!(from_char(&rope, 3, Utf16), pos(1, 0));
        assert_eq!(from_byte(&rope, 4, Utf8), pos(1, 1));
    }
}
