//! From the model's raw text to what is shown: early cut while streaming, truncation at the end
//! of the block, overlap with the text after the cursor, and the drop rules. Pure.
//!
//! Two views of "where the block ends" exist, and they agree on well-indented answers:
//! - [`StreamCut`] decides while streaming, by indentation only: it cannot parse a half-written
//!   answer, and it must be cheap per delta.
//! - [`finish`] reparses the document with the answer inserted (incrementally, from the snapshot's
//!   tree) and cuts where the enclosing block's construct ends; without a usable tree it falls
//!   back to the same indentation rule.
//!
//! Cut points never include the line break after the last kept line: [`finish`] trims trailing
//! whitespace anyway, so a cut before or after it shows the same text.

use std::{
    ops::{ControlFlow, Range},
    time::{Duration, Instant},
};

use ropey::Rope;
use tree_sitter::{
    InputEdit, Node, ParseOptions, ParseState, Parser, Point, Query, QueryCursor, StreamingIterator, Tree,
};

use super::{Mode, Snapshot};
use crate::syntax::{self, Language, QueryKind};

/// The longest one reparse with the suggestion inserted may run. A reparse over budget is
/// treated as "no tree" (indentation fallback, no parse check) rather than stalling the reply.
pub const REPARSE_BUDGET: Duration = Duration::from_millis(50);

/// Columns per tab when comparing indentation.
const TAB_WIDTH: usize = 4;
/// How many lines above the cursor the indentation fallback searches for the opener line.
const MAX_LINES_UP: usize = 1000;
/// How many lines after the cursor are searched for the first non-blank suffix line.
const MAX_LINES_DOWN: usize = 1000;
/// The longest stretch of a suffix line compared with the answer: models write short lines, and a
/// minified line must not be copied whole.
const MAX_SUFFIX_BYTES: usize = 4096;
/// Lines on each side of the cursor sampled for the document's indent style.
const STYLE_LINES: usize = 100;

/// What is shown: `text` replaces the document's bytes `cursor..replace_end` (`replace_end >
/// cursor` when the suggestion overwrites matching characters after the cursor on the same
/// line, e.g. a closing bracket that is already there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub text: String,
    pub replace_end: usize,
}

/// Why a suggestion was dropped (for logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Nothing left (an empty answer, or a single-line answer that started with a line break
    /// after text on the cursor's line).
    Empty,
    /// Only whitespace.
    Whitespace,
    /// Everything the answer had is already after the cursor.
    SameAsSuffix,
    /// The document parsed without errors before and does not with the suggestion inserted.
    BreaksParse,
}

/// Decides, while the answer streams, where it is complete: returns `Some(len)` once `so_far`
/// (the raw text streamed so far) holds a complete answer, whose first `len` bytes are kept; the
/// caller then aborts the stream. Built once per request; `feed` is called after each delta with
/// the whole text so far and must be cheap (incremental: only look at new complete lines).
#[derive(Debug, Clone)]
pub struct StreamCut {
    mode: Mode,
    frame: Frame,
    /// Indentation width of the block's opener line, once known.
    reference: Option<usize>,
    /// Where the first line not read yet starts in the answer.
    next: usize,
    /// Complete lines read so far.
    lines: usize,
    /// End of the last non-blank line read (before its line break).
    content_end: usize,
    cut: Option<usize>,
}

impl StreamCut {
    pub fn new(snap: &Snapshot, cursor: usize, mode: Mode) -> StreamCut {
        let cursor = clamp_cursor(&snap.text, cursor);
        StreamCut::with_frame(Frame::new(snap, cursor), mode)
    }

    fn with_frame(frame: Frame, mode: Mode) -> StreamCut {
        StreamCut { mode, frame, reference: frame.reference, next: 0, lines: 0, content_end: 0, cut: None }
    }

    pub fn feed(&mut self, so_far: &str) -> Option<usize> {
        if self.cut.is_some() {
            return self.cut;
        }
        while let Some((end, after)) = next_break(so_far, self.next) {
            let start = self.next;
            self.next = after;
            if let Some(cut) = self.line(so_far.get(start..end).unwrap_or(""), end) {
                self.cut = Some(cut);
                return self.cut;
            }
        }
        None
    }

    /// Like [`StreamCut::feed`] on a finished answer: its last line counts as complete.
    fn feed_final(&mut self, text: &str) -> Option<usize> {
        self.feed(text).or_else(|| {
            let start = self.next.min(text.len());
            self.next = text.len();
            self.line(text.get(start..).unwrap_or(""), text.len())
        })
    }

    /// Reads one complete line of the answer that ends at `end` (its line break excluded).
    fn line(&mut self, line: &str, end: usize) -> Option<usize> {
        let index = self.lines;
        self.lines += 1;
        let blank = line.trim().is_empty();
        if self.mode == Mode::SingleLine {
            return if !blank {
                Some(end)
            } else if !self.frame.prefix_blank {
                // After text on the cursor's line, a leading line break means "nothing to add here".
                Some(0)
            } else {
                // On a blank line the model sometimes starts with a spare line break: skip it.
                None
            };
        }
        if blank {
            return None;
        }
        let width = if index == 0 && self.frame.prefix_blank && self.frame.prefix_width > 0 {
            // `finish` strips this line's own indentation: the cursor already has it.
            self.frame.prefix_width
        } else {
            indent_width(line)
        };
        let Some(reference) = self.reference else {
            // No opener above the cursor: the answer's first line opens the block.
            self.reference = Some(width);
            self.content_end = end;
            return None;
        };
        if index == 0 || width > reference {
            self.content_end = end;
            return None;
        }
        let trimmed = line.trim();
        if is_continuation(trimmed) {
            if width == reference {
                self.content_end = end;
                return None;
            }
            return Some(self.content_end);
        }
        if is_closing(trimmed) { Some(end) } else { Some(self.content_end) }
    }
}

/// The final text for a finished (or cut) raw answer, or why it was dropped.
pub fn finish(snap: &Snapshot, cursor: usize, mode: Mode, raw: &str) -> Result<Suggestion, Dropped> {
    let text = &snap.text;
    let cursor = clamp_cursor(text, cursor);
    let frame = Frame::new(snap, cursor);
    let mut parser = Parser::new();
    let grammar = snap.language.and_then(|l| l.grammar());
    let has_parser = grammar.is_some_and(|g| parser.set_language(&g).is_ok());
    let tree = snap.tree.as_ref().filter(|_| has_parser);

    // 1. Where the answer ends.
    let mut first_parse: Option<Tree> = None;
    let kept = match mode {
        Mode::SingleLine => {
            let mut cut = StreamCut::with_frame(frame, mode);
            let end = cut.feed_final(raw).unwrap_or(raw.len());
            let start = if frame.prefix_blank { skip_blank_lines(raw, end) } else { 0 };
            raw.get(start..end).unwrap_or("")
        }
        Mode::MultiLine => {
            let by_tree = tree.and_then(|tree| {
                let (cut, parsed) = tree_cut(snap, &mut parser, tree, cursor, raw);
                first_parse = parsed;
                cut
            });
            let end = by_tree.unwrap_or_else(|| {
                let mut cut = StreamCut::with_frame(frame, mode);
                cut.feed_final(raw).unwrap_or(raw.len())
            });
            raw.get(..end).unwrap_or("")
        }
    };
    if kept.is_empty() {
        return Err(Dropped::Empty);
    }
    if kept.trim().is_empty() {
        return Err(Dropped::Whitespace);
    }
    let kept = kept.trim_end();

    // 2. Indentation in the document's style, not doubled at the cursor.
    let mut out = reindent(kept, &frame, doc_style(text, text.byte_to_line(cursor)));

    // 3. Overlap with what follows the cursor.
    let line_end = line_content_end(text, text.byte_to_line(cursor));
    let line_suffix = slice_string(text, cursor..line_end, MAX_SUFFIX_BYTES);
    let mut overwrite = overlap_len(&out, &line_suffix);
    let trimmed = trim_until_suffix(&out, &frame, snap, cursor + overwrite, line_end);
    if trimmed.len() != out.len() {
        out.truncate(trimmed.len());
        overwrite = overlap_len(&out, &line_suffix);
    }
    let out_len = out.trim_end().len();
    out.truncate(out_len);
    if out.is_empty() || starts_with_at(text, cursor, &out) {
        return Err(Dropped::SameAsSuffix);
    }
    let replace_end = cursor + overwrite;

    // 4. A suggestion must not break a document that parsed cleanly.
    if let Some(tree) = tree
        && !tree.root_node().has_error()
    {
        let same_as_first = mode == Mode::MultiLine && replace_end == cursor && out == raw.trim_end();
        // A single line may open a block that the next lines will fill (`if x {`, `def f():`):
        // checked as the editor will have it, closed.
        let closed = if mode == Mode::SingleLine { close_open_block(&out, &frame, snap.language) } else { None };
        let ins = closed.as_deref().unwrap_or(&out);
        let after = match first_parse {
            Some(parsed) if same_as_first => Some(parsed),
            _ => reparse(&mut parser, tree, View { text, start: cursor, end: replace_end, ins }),
        };
        if after.is_some_and(|t| t.root_node().has_error()) {
            return Err(Dropped::BreaksParse);
        }
    }
    Ok(Suggestion { text: out, replace_end })
}

/// `line` with the blocks it leaves open closed, for the parse check: brackets get their
/// closers, and a Python-like line ending in `:` gets an indented `pass`. `None` when nothing is
/// left open. Brackets inside string literals are skipped roughly (quotes toggle).
fn close_open_block(line: &str, frame: &Frame, language: Option<Language>) -> Option<String> {
    let mut stack = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in line.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' => stack.push(')'),
            '[' => stack.push(']'),
            '{' => stack.push('}'),
            ')' | ']' | '}' if stack.last() == Some(&c) => {
                stack.pop();
            }
            _ => {}
        }
    }
    if !stack.is_empty() {
        let mut out = line.to_owned();
        out.extend(stack.iter().rev());
        return Some(out);
    }
    if language == Some(Language::Python) && line.trim_end().ends_with(':') {
        let indent = " ".repeat(frame.line_indent + 4);
        return Some(format!("{line}\n{indent}pass"));
    }
    None
}

/// Facts about the cursor's place that both the streaming cut and `finish` need.
#[derive(Debug, Clone, Copy)]
struct Frame {
    /// Only whitespace precedes the cursor on its line.
    prefix_blank: bool,
    /// The width of that whitespace, when `prefix_blank`.
    prefix_width: usize,
    /// The indentation width of the cursor line.
    line_indent: usize,
    /// The indentation width of the line holding the enclosing block's opener; `None` when no
    /// line above is indented less than the cursor (the answer's first line then opens a block).
    reference: Option<usize>,
}

impl Frame {
    fn new(snap: &Snapshot, cursor: usize) -> Frame {
        let text = &snap.text;
        let line = text.byte_to_line(cursor);
        let line_start = text.line_to_byte(line);
        // Only the indentation is read: a minified line may be megabytes long.
        let prefix_blank = text.byte_slice(line_start..cursor).chars().all(char::is_whitespace);
        let line_indent = line_indent_width(text, line);
        let prefix_width = if prefix_blank { indent_width_of(text, line_start..cursor) } else { 0 };
        let reference = if !prefix_blank {
            // The opener is on the cursor's line (or the answer continues it).
            Some(line_indent)
        } else {
            opener_indent_by_tree(snap, cursor).or_else(|| opener_indent_by_lines(text, line, prefix_width))
        };
        Frame { prefix_blank, prefix_width, line_indent, reference }
    }
}

/// The indentation of the opener line of the block the cursor starts or sits in, from the
/// snapshot's tree: the last opener followed only by whitespace (a body the cursor starts, which
/// Python-like grammars do not yet extend to the cursor), else the innermost body around it.
fn opener_indent_by_tree(snap: &Snapshot, cursor: usize) -> Option<usize> {
    let tree = snap.tree.as_ref()?;
    let query = syntax::query(snap.language?, QueryKind::Blocks)?;
    let text = &snap.text;
    let (lo, last_end) = last_content_before(text, cursor);
    let view = View { text, start: 0, end: 0, ins: "" };
    let pairs = blocks_near(tree, query, &view, lo..cursor.saturating_add(1).min(text.len_bytes()).max(lo));
    let after_opener = pairs
        .iter()
        .filter_map(|(_, opener)| *opener)
        .filter(|o| o.end_byte() == last_end && last_end <= cursor)
        .max_by_key(|o| o.end_byte())
        .map(|o| o.start_byte());
    let anchor = after_opener.or_else(|| {
        let (body, opener) = innermost(&pairs, |b, _| b.start_byte() < cursor && cursor < b.end_byte())?;
        Some(opener.filter(|o| o.end_byte() <= cursor).map_or(body.start_byte(), |o| o.start_byte()))
    })?;
    let anchor_line = text.byte_to_line(anchor);
    (anchor_line < text.byte_to_line(cursor)).then(|| line_indent_width(text, anchor_line))
}

/// The indentation of the nearest non-blank line above `line` indented less than `width`.
fn opener_indent_by_lines(text: &Rope, line: usize, width: usize) -> Option<usize> {
    if width == 0 {
        return None;
    }
    (line.saturating_sub(MAX_LINES_UP)..line).rev().find_map(|l| {
        let slice = text.line(l);
        let blank = slice.chars().all(char::is_whitespace);
        let w = line_indent_width(text, l);
        (!blank && w < width).then_some(w)
    })
}

/// The cut `finish` makes with the tree: the document is reparsed with `raw` inserted at the
/// cursor, and the answer ends where the innermost block around the cursor ends, widened to the
/// whole construct that starts on the opener's line (so `} else {...}`, `except:` and a trailing
/// `});` stay). `None` when the tree cannot tell (then indentation decides); `Some(raw.len())`
/// when the block runs past the answer into the document. Also returns the reparsed tree.
fn tree_cut(
    snap: &Snapshot,
    parser: &mut Parser,
    tree: &Tree,
    cursor: usize,
    raw: &str,
) -> (Option<usize>, Option<Tree>) {
    let Some(query) = snap.language.and_then(|l| syntax::query(l, QueryKind::Blocks)) else { return (None, None) };
    // Without its trailing whitespace the answer parses the same, and the parse check can reuse
    // this tree when nothing else is cut.
    let ins = raw.trim_end();
    if ins.is_empty() {
        return (None, None);
    }
    let text = &snap.text;
    let view = View { text, start: cursor, end: cursor, ins };
    let Some(parsed) = reparse(parser, tree, view) else { return (None, None) };
    let (lo, _) = last_content_before(text, cursor);
    let limit = cursor + ins.len();
    let pairs = blocks_near(&parsed, query, &view, lo..cursor + 1);
    let cut = innermost(&pairs, |body, opener| {
        body.end_byte() > cursor && (body.start_byte() < cursor || opener.is_some_and(|o| o.end_byte() <= cursor))
    })
    .filter(|(body, _)| !body.has_error())
    .map(|(body, opener)| {
        if body.end_byte() > limit {
            return raw.len();
        }
        let anchor = opener.filter(|o| o.end_byte() <= cursor).map_or(body.start_byte(), |o| o.start_byte());
        let opener_line_start = text.line_to_byte(text.byte_to_line(anchor.min(cursor)));
        let mut construct = body;
        while let Some(parent) = construct.parent() {
            let is_body = pairs.iter().any(|(b, _)| *b == parent);
            if parent.parent().is_none()
                || is_body
                || parent.start_byte() < opener_line_start
                || parent.end_byte() > limit
                || parent.has_error()
            {
                break;
            }
            construct = parent;
        }
        construct.end_byte().saturating_sub(cursor).min(ins.len())
    })
    .filter(|&end| raw.is_char_boundary(end));
    (cut, Some(parsed))
}

/// The innermost (smallest, then deepest) body among `pairs` that `keep` accepts.
fn innermost<'t>(
    pairs: &[(Node<'t>, Option<Node<'t>>)],
    keep: impl Fn(Node<'t>, Option<Node<'t>>) -> bool,
) -> Option<(Node<'t>, Option<Node<'t>>)> {
    // Nested bodies can share a range (a Lua body holding only an `if`); ties go to the deeper.
    let depth = |n: Node<'_>| std::iter::successors(n.parent(), Node::parent).count();
    let best = pairs
        .iter()
        .filter(|(b, o)| keep(*b, *o))
        .min_by_key(|(b, _)| (b.end_byte() - b.start_byte(), std::cmp::Reverse(depth(*b))))?;
    // A body may match several patterns; prefer the match that names an opener.
    let opener = pairs.iter().filter(|(b, _)| *b == best.0).find_map(|(_, o)| *o);
    Some((best.0, opener))
}

/// Each `@block.body` (with its `@block.opener`) of the matches that intersect `range`.
fn blocks_near<'t>(
    tree: &'t Tree,
    query: &Query,
    view: &View<'_>,
    range: Range<usize>,
) -> Vec<(Node<'t>, Option<Node<'t>>)> {
    let Some(body_index) = query.capture_index_for_name("block.body") else { return Vec::new() };
    let opener_index = query.capture_index_for_name("block.opener");
    let mut cursor = QueryCursor::new();
    cursor.set_byte_range(range);
    let source = |node: Node<'_>| std::iter::once(view.bytes(node.byte_range()));
    let mut matches = cursor.matches(query, tree.root_node(), source);
    let mut out = Vec::new();
    while let Some(m) = matches.next() {
        let find = |index: u32| m.captures().iter().find(|c| c.index == index).map(|c| c.node);
        if let Some(body) = find(body_index) {
            out.push((body, opener_index.and_then(find)));
        }
    }
    out
}

/// The document with `ins` in place of its bytes `start..end`, read in place (never copied).
#[derive(Clone, Copy)]
struct View<'a> {
    text: &'a Rope,
    start: usize,
    end: usize,
    ins: &'a str,
}

impl<'a> View<'a> {
    /// The bytes from `at` to the end of the piece that holds it.
    fn chunk(&self, at: usize) -> &'a [u8] {
        let in_rope = |at: usize, until: usize| -> &'a [u8] {
            if at >= self.text.len_bytes() {
                return &[];
            }
            let (chunk, chunk_start, _, _) = self.text.chunk_at_byte(at);
            let bytes = chunk.as_bytes();
            let until = until.saturating_sub(chunk_start).min(bytes.len());
            bytes.get(at - chunk_start..until).unwrap_or(&[])
        };
        let ins_end = self.start + self.ins.len();
        if at < self.start {
            in_rope(at, self.start)
        } else if at < ins_end {
            self.ins.as_bytes().get(at - self.start..).unwrap_or(&[])
        } else {
            in_rope(at - ins_end + self.end, usize::MAX)
        }
    }

    fn bytes(&self, range: Range<usize>) -> Vec<u8> {
        let mut out = Vec::with_capacity(range.len());
        let mut at = range.start;
        while at < range.end {
            let chunk = self.chunk(at);
            if chunk.is_empty() {
                break;
            }
            let take = chunk.len().min(range.end - at);
            out.extend_from_slice(chunk.get(..take).unwrap_or(&[]));
            at += take;
        }
        out
    }
}

/// Reparses `view` incrementally from `old` (the tree of `view.text`), within [`REPARSE_BUDGET`].
fn reparse(parser: &mut Parser, old: &Tree, view: View<'_>) -> Option<Tree> {
    let start_position = point_at(view.text, view.start);
    let mut old = old.clone();
    old.edit(&InputEdit {
        start_byte: view.start,
        old_end_byte: view.end,
        new_end_byte: view.start + view.ins.len(),
        start_position,
        old_end_position: point_at(view.text, view.end),
        new_end_position: advance(start_position, view.ins),
    });
    let started = Instant::now();
    let mut read = |at: usize, _: Point| view.chunk(at);
    let mut budget = |_: &ParseState| {
        if started.elapsed() > REPARSE_BUDGET { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    };
    let options = ParseOptions::new().progress_callback(&mut budget);
    let tree = parser.parse_with_options(&mut read, Some(&old), Some(options));
    if tree.is_none() {
        // A cancelled parse would otherwise resume on this parser's next call.
        parser.reset();
    }
    tree
}

/// Rows are rope lines, as in `document.rs`; tree-sitter nodes are only read by byte offset.
fn point_at(text: &Rope, byte: usize) -> Point {
    let line = text.byte_to_line(byte);
    Point { row: line, column: byte - text.line_to_byte(line) }
}

fn advance(start: Point, ins: &str) -> Point {
    let mut rows = 0;
    let mut line_start = None;
    let bytes = ins.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
            rows += 1;
            line_start = Some(i + 1);
        }
    }
    match line_start {
        Some(s) => Point { row: start.row + rows, column: ins.len() - s },
        None => Point { row: start.row, column: start.column + ins.len() },
    }
}

/// A byte offset clamped into the text and moved back to a character boundary.
fn clamp_cursor(text: &Rope, cursor: usize) -> usize {
    let cursor = cursor.min(text.len_bytes());
    text.char_to_byte(text.byte_to_char(cursor))
}

/// The start of the line holding the last non-whitespace byte before `cursor`, and the end of
/// that byte. Scans back at most a few KiB: beyond that the answer is "the cursor's line".
fn last_content_before(text: &Rope, cursor: usize) -> (usize, usize) {
    let mut bytes = text.bytes_at(cursor);
    let mut at = cursor;
    while at > 0 && cursor - at < 16 * 1024 {
        match bytes.prev() {
            Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0c) => at -= 1,
            Some(_) => return (text.line_to_byte(text.byte_to_line(at - 1)), at),
            None => break,
        }
    }
    (text.line_to_byte(text.byte_to_line(at)), at)
}

/// Finds the first line break at or after `from`: (where it starts, where the next line starts).
/// A `\r` at the very end counts as a break: if a `\n` follows later, it reads as an empty line.
fn next_break(s: &str, from: usize) -> Option<(usize, usize)> {
    let rest = s.as_bytes().get(from..)?;
    let i = memchr::memchr2(b'\n', b'\r', rest)?;
    let at = from + i;
    let len = if rest.get(i) == Some(&b'\r') && rest.get(i + 1) == Some(&b'\n') { 2 } else { 1 };
    Some((at, at + len))
}

/// Lines of `s` as (content range, start of the next line).
fn lines(s: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some((end, next)) = next_break(s, from) {
        out.push((from, end));
        from = next;
    }
    out.push((from, s.len()));
    out
}

/// Where the first non-blank line at or after `0` starts, not past `end`.
fn skip_blank_lines(s: &str, end: usize) -> usize {
    let mut from = 0;
    while let Some((line_end, next)) = next_break(s, from) {
        if next > end || !s.get(from..line_end).unwrap_or("").trim().is_empty() {
            break;
        }
        from = next;
    }
    from.min(end)
}

fn indent_width(line: &str) -> usize {
    let mut width = 0;
    for c in line.chars() {
        match c {
            ' ' => width += 1,
            '\t' => width += TAB_WIDTH - width % TAB_WIDTH,
            _ => break,
        }
    }
    width
}

fn line_indent_width(text: &Rope, line: usize) -> usize {
    let start = text.line_to_byte(line);
    indent_width_of(text, start..line_content_end(text, line))
}

fn indent_width_of(text: &Rope, range: Range<usize>) -> usize {
    let mut width = 0;
    for c in text.byte_slice(range).chars() {
        match c {
            ' ' => width += 1,
            '\t' => width += TAB_WIDTH - width % TAB_WIDTH,
            _ => break,
        }
    }
    width
}

/// The end of `line`'s content, before its line break.
fn line_content_end(text: &Rope, line: usize) -> usize {
    let start = text.line_to_byte(line);
    let slice = text.line(line);
    let mut len = slice.len_bytes();
    let mut bytes = slice.bytes_at(len);
    while let Some(b'\n' | b'\r') = bytes.prev() {
        len -= 1;
    }
    start + len
}

/// The text of `range`, cut to at most about `max` bytes (at a character boundary).
fn slice_string(text: &Rope, range: Range<usize>, max: usize) -> String {
    let end = if range.end - range.start > max {
        text.char_to_byte(text.byte_to_char(range.start + max)).max(range.start)
    } else {
        range.end
    };
    text.byte_slice(range.start..end).to_string()
}

/// Whether the document's bytes from `at` start with `s`.
fn starts_with_at(text: &Rope, at: usize, s: &str) -> bool {
    // Byte by byte: `at + s.len()` may fall inside a character of the document.
    at + s.len() <= text.len_bytes() && text.bytes_at(at).take(s.len()).eq(s.bytes())
}

fn starts_with_word(s: &str, word: &str) -> bool {
    s.strip_prefix(word).is_some_and(|rest| !rest.starts_with(|c: char| c.is_alphanumeric() || c == '_'))
}

/// A line that closes a block: a closing bracket first, or a closing keyword.
fn is_closing(trimmed: &str) -> bool {
    trimmed.starts_with(['}', ']', ')']) || ["end", "fi", "done", "esac"].iter().any(|w| starts_with_word(trimmed, w))
}

/// A line that goes on with the same construct at the opener's indentation: `} else {`,
/// `elif x:`, `except E:`, `} while (x);`, `case 2:`...
fn is_continuation(trimmed: &str) -> bool {
    let rest = trimmed.trim_start_matches(['}', ')', ']']).trim_start();
    let after_closer = rest.len() < trimmed.len();
    if after_closer && starts_with_word(rest, "while") {
        return true;
    }
    const WORDS: &[&str] = &[
        "else", "elif", "elsif", "elseif", "except", "finally", "catch", "rescue", "ensure", "case", "default", "when",
    ];
    WORDS.iter().any(|w| starts_with_word(rest, w))
}

/// Indentation of the document near the cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Tabs,
    Spaces(usize),
}

fn doc_style(text: &Rope, line: usize) -> Option<Style> {
    let (mut tabs, mut spaces, mut unit) = (0usize, 0usize, 0usize);
    let last = (line + STYLE_LINES).min(text.len_lines().saturating_sub(1));
    for l in line.saturating_sub(STYLE_LINES)..=last {
        let mut chars = text.line(l).chars();
        match chars.next() {
            Some('\t') => tabs += 1,
            Some(' ') => {
                let n = 1 + chars.by_ref().take_while(|&c| c == ' ').count();
                spaces += 1;
                unit = gcd(unit, n);
            }
            _ => {}
        }
    }
    if tabs > spaces {
        Some(Style::Tabs)
    } else if spaces > tabs {
        Some(Style::Spaces(space_unit(unit)))
    } else {
        None
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn space_unit(g: usize) -> usize {
    match g {
        g if g > 0 && g % 4 == 0 => 4,
        g if g > 0 && g % 2 == 0 => 2,
        3 => 3,
        _ => 4,
    }
}

/// Applies the document's indent style to the answer's full lines, and drops the first line's
/// indentation when the cursor already stands after the line's indentation.
fn reindent(kept: &str, frame: &Frame, style: Option<Style>) -> String {
    let spans = lines(kept);
    // The model's own space unit, for turning its spaces into tabs.
    let model_unit = space_unit(spans.iter().skip(1).fold(0, |g, &(s, e)| {
        let line = kept.get(s..e).unwrap_or("");
        let n = line.len() - line.trim_start_matches(' ').len();
        if n > 0 && !line.trim().is_empty() { gcd(g, n) } else { g }
    }));
    let mut out = String::with_capacity(kept.len() + 16);
    let mut prev_end = 0;
    for (i, &(start, end)) in spans.iter().enumerate() {
        out.push_str(kept.get(prev_end..start).unwrap_or(""));
        prev_end = end;
        let line = kept.get(start..end).unwrap_or("");
        let body = line.trim_start_matches([' ', '\t']);
        let lead = &line[..line.len() - body.len()];
        if i == 0 && !(frame.prefix_blank && frame.prefix_width == 0) {
            // After the cursor's own indentation (or text), the first line's leading whitespace is
            // either a doubled indentation or spacing inside the line.
            out.push_str(if frame.prefix_blank { body } else { line });
            continue;
        }
        match style {
            Some(Style::Tabs) if lead.contains(' ') => {
                let width = indent_width(lead.replace('\t', &" ".repeat(model_unit)).as_str());
                out.push_str(&"\t".repeat(width / model_unit));
                out.push_str(&" ".repeat(width % model_unit));
            }
            Some(Style::Spaces(unit)) if lead.contains('\t') => out.push_str(&lead.replace('\t', &" ".repeat(unit))),
            _ => out.push_str(lead),
        }
        out.push_str(body);
    }
    out
}

/// How many bytes of `line_suffix` (the rest of the cursor's line) the answer already contains,
/// in order, and so may overwrite (Cody's rule, `sort(█)` + `array) {` overwrites the `)`). A
/// closing bracket only matches one that closes something opened before the cursor, and a quote
/// only one that ends a string opened before it, so `foo(█)` + `a, (b)` keeps the `)`. Trailing
/// whitespace of the match is not overwritten.
fn overlap_len(text: &str, line_suffix: &str) -> usize {
    let target = line_suffix.trim_end();
    if target.is_empty() {
        return 0;
    }
    // For each byte of `text`: does it close a bracket opened before the cursor, or end a string?
    let mut depth = [0usize; 3];
    let mut quotes = [0usize; 3];
    let closes_outer: Vec<bool> = text
        .bytes()
        .map(|b| {
            let bracket = |d: &mut usize| {
                if *d == 0 {
                    true
                } else {
                    *d -= 1;
                    false
                }
            };
            match b {
                b'(' | b'[' | b'{' => {
                    depth[usize::from(b == b'[') + 2 * usize::from(b == b'{')] += 1;
                    false
                }
                b')' => bracket(&mut depth[0]),
                b']' => bracket(&mut depth[1]),
                b'}' => bracket(&mut depth[2]),
                b'"' | b'\'' | b'`' => {
                    let q = &mut quotes[usize::from(b == b'\'') + 2 * usize::from(b == b'`')];
                    *q += 1;
                    *q % 2 == 1
                }
                _ => true,
            }
        })
        .collect();
    let (mut pos, mut solid) = (0, 0);
    for (i, c) in target.char_indices() {
        let mut buf = [0u8; 4];
        let needle = c.encode_utf8(&mut buf).as_bytes();
        let found = (pos..text.len()).find(|&p| {
            text.as_bytes().get(p..p + needle.len()) == Some(needle) && closes_outer.get(p).copied().unwrap_or(false)
        });
        let Some(p) = found else { break };
        pos = p + needle.len();
        if !c.is_whitespace() {
            solid = i + needle.len();
        }
    }
    // A partial match may overwrite closers and punctuation, never part of the user's words:
    // `foo(█, bar);` + `a, b, c)` must not eat `, b` and leave `c)ar);`.
    let word = |c: char| c.is_alphanumeric() || c == '_';
    if solid < target.len() && target[..solid].chars().any(word) {
        return 0;
    }
    solid
}

/// Cody's `trimUntilSuffix`: when the answer repeats the first non-blank line after it (the
/// editor's auto-closed `}`, the next statement), drop the repeat and everything after it. The
/// answer's lines are scanned from the end; a line matches when it equals that suffix line
/// (ignoring surrounding whitespace) and is indented no deeper.
fn trim_until_suffix<'s>(text: &'s str, frame: &Frame, snap: &Snapshot, from: usize, line_end: usize) -> &'s str {
    let doc = &snap.text;
    let rest = slice_string(doc, from.min(line_end)..line_end, MAX_SUFFIX_BYTES);
    let (suffix_line, suffix_width) = if !rest.trim().is_empty() {
        (rest.trim().to_owned(), frame.line_indent)
    } else {
        let first = doc.byte_to_line(line_end) + 1;
        let found = (first..doc.len_lines().min(first + MAX_LINES_DOWN)).find_map(|l| {
            let start = doc.line_to_byte(l);
            let line = slice_string(doc, start..line_content_end(doc, l), MAX_SUFFIX_BYTES);
            let trimmed = line.trim();
            (!trimmed.is_empty()).then(|| (trimmed.to_owned(), line_indent_width(doc, l)))
        });
        match found {
            Some(found) => found,
            None => return text,
        }
    };
    let spans = lines(text);
    for (i, &(start, end)) in spans.iter().enumerate().rev() {
        let line = text.get(start..end).unwrap_or("");
        // On a blank line the first line of the answer is a whole line too; if it already
        // repeats what follows, the whole answer does, wherever the cursor stands.
        let deep_enough = match i {
            0 if !frame.prefix_blank => continue,
            0 => true,
            _ => indent_width(line) <= suffix_width,
        };
        if deep_enough && line.trim() == suffix_line {
            return text.get(..start).unwrap_or(text);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_only_matches_outer_closers() {
        assert_eq!(overlap_len("array) {", ")"), 1);
        assert_eq!(overlap_len("a, (b)", ");"), 0);
        assert_eq!(overlap_len("a, b);", ");"), 2);
        assert_eq!(overlap_len("x) + y", ") {"), 1);
        assert_eq!(overlap_len("hello\")", "\")"), 2);
        assert_eq!(overlap_len("x", ")"), 0);
        assert_eq!(overlap_len("\n    x\n}", "}"), 1);
    }

    #[test]
    fn continuations_and_closers() {
        for line in ["} else {", "}else{", "} catch (e) {", "else:", "elif x:", "except ValueError:", "} while (x);"] {
            assert!(is_continuation(line), "{line}");
        }
        for line in ["}", "});", "end", "fi", "while x {", "elsewhere()"] {
            assert!(!is_continuation(line), "{line}");
        }
        for line in ["}", "];", ")", "end", "end)", "done"] {
            assert!(is_closing(line), "{line}");
        }
        for line in ["ending()", "x", "def f():"] {
            assert!(!is_closing(line), "{line}");
        }
    }

    #[test]
    fn points_after_insertion() {
        let p = Point { row: 2, column: 4 };
        assert_eq!(advance(p, "ab"), Point { row: 2, column: 6 });
        assert_eq!(advance(p, "ab\ncd"), Point { row: 3, column: 2 });
        assert_eq!(advance(p, "a\r\nb\rcd"), Point { row: 4, column: 2 });
    }

    #[test]
    fn view_reads_across_the_insertion() {
        let text = Rope::from_str("hello world");
        let view = View { text: &text, start: 6, end: 11, ins: "there" };
        assert_eq!(view.bytes(0..11), b"hello there");
        assert_eq!(view.bytes(4..8), b"o th");
        let view = View { text: &text, start: 5, end: 5, ins: "," };
        assert_eq!(view.bytes(0..12), b"hello, world");
    }
}
