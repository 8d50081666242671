//! Whether and how to suggest at a cursor: none, single-line or multi-line. Pure.
//!
//! The rules follow Cody's (`detect-multiline.ts`, `shouldCancelBasedOnCurrentLine`), with the
//! syntax tree in place of its regexes where there is one:
//! - **none** when the cursor is mid-word (the next character is a word character) or when the
//!   line before the cursor ends in `;` with nothing after it: there is nothing to add there.
//! - **multi-line** when the cursor starts an empty block body: right after a `@block.opener` of
//!   `grammars/<lang>/blocks.scm` (only whitespace between), or on a blank line inside a body
//!   whose only content before the cursor is its header (Ruby's `def f`, a lambda's parameters),
//!   and the body holds nothing after the cursor but its closing token. Bodies that do not hold
//!   the cursor (Python, Lua, Scala 3: they span their statements only) are empty when the next
//!   non-blank line is indented no deeper than the opener's line (Cody's rule).
//! - **fallback** when there is no tree or the tree is broken around the cursor (an unclosed `{`
//!   at the end of the file degrades into an ERROR node): the same emptiness rule by
//!   indentation, with block starts read from the text (see `text_block_start`).
//! - **single-line** otherwise. Calls (`foo(`) never start a block: `(` is no opener.
//!
//! Only the nodes on the path to the cursor and a few lines of text around it are read, so the
//! cost does not grow with the document.

use ropey::Rope;
use tree_sitter::{Node, Query, QueryCursor, StreamingIterator, Tree};

use super::{Mode, Snapshot};
use crate::syntax::{self, Language, QueryKind};

/// Why no suggestion is made at a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The next character is a word character: a suggestion would have to split a word.
    MidWord,
    /// The line before the cursor ends in `;` and nothing follows: the statement is complete.
    AfterStatementEnd,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// None = do not suggest (and send no request).
    pub mode: Option<Mode>,
    pub skip: Option<Skip>,
    /// The text before the cursor on its line is whitespace only (the scheduler fires at once).
    pub line_start: bool,
}

/// How far back (in bytes) the search for the last token before the cursor goes: blank space
/// longer than this does not continue a block.
const MAX_BACK_SCAN: usize = 4096;
/// How many lines after the cursor's the search for the next non-blank line reads; past them the
/// body counts as empty, as at the end of the file.
const MAX_FORWARD_LINES: usize = 64;
/// How many ancestors of the cursor's node are tried as the innermost body. Bodies sit a level or
/// two above the token at the cursor; going further would only reach ever larger nodes.
const MAX_BODY_LEVELS: usize = 6;
/// The deepest `@block.opener` sits two levels below its pattern's root (Lua's
/// `(function_declaration parameters: (parameters ")" @block.opener))`); one more for safety.
const MAX_OPENER_LEVELS: usize = 3;

pub fn decide(snap: &Snapshot, byte: usize) -> Decision {
    let text = &snap.text;
    let cursor = floor_char_boundary(text, byte);
    let line = Line::at(text, cursor);
    let line_start = is_blank(text, line.start, cursor);
    let decision = |mode, skip| Decision { mode, skip, line_start };

    if mid_word(text, cursor) {
        return decision(None, Some(Skip::MidWord));
    }
    let suffix_blank = is_blank(text, cursor, line.end);
    if suffix_blank
        && let Some(end) = last_non_blank(text, cursor, cursor - line.start)
        && end > line.start
        && text.byte(end - 1) == b';'
    {
        return decision(None, Some(Skip::AfterStatementEnd));
    }

    let multi = match tree_verdict(snap, cursor, &line) {
        Some(verdict) => verdict,
        None => text_verdict(snap, cursor, &line),
    };
    decision(Some(if multi { Mode::MultiLine } else { Mode::SingleLine }), None)
}

/// True when the char after `byte` is a word character (alphanumeric or `_`).
pub fn mid_word(text: &Rope, byte: usize) -> bool {
    let at = floor_char_boundary(text, byte);
    if at >= text.len_bytes() {
        return false;
    }
    text.get_char(text.byte_to_char(at)).is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// The cursor's line: where it starts and where its text ends (before the line break).
struct Line {
    index: usize,
    start: usize,
    end: usize,
}

impl Line {
    fn at(text: &Rope, byte: usize) -> Line {
        let index = text.byte_to_line(byte);
        let (start, end) = line_range(text, index);
        Line { index, start, end }
    }
}

/// Byte range of a line's text, without its line break (`\n`, `\r\n` or `\r`).
fn line_range(text: &Rope, index: usize) -> (usize, usize) {
    let start = text.line_to_byte(index);
    let mut end = text.line_to_byte((index + 1).min(text.len_lines()));
    if end > start && text.byte(end - 1) == b'\n' {
        end -= 1;
    }
    if end > start && text.byte(end - 1) == b'\r' {
        end -= 1;
    }
    (start, end)
}

fn floor_char_boundary(text: &Rope, byte: usize) -> usize {
    let byte = byte.min(text.len_bytes());
    text.char_to_byte(text.byte_to_char(byte))
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Whether `start..end` holds whitespace only.
fn is_blank(text: &Rope, start: usize, end: usize) -> bool {
    start >= end || text.bytes_at(start).take(end - start).all(is_space)
}

/// The end of the last non-whitespace character before `byte`, looking back at most `limit`
/// bytes. The returned offset is a char boundary: scanning backwards meets a character's last
/// byte first.
fn last_non_blank(text: &Rope, byte: usize, limit: usize) -> Option<usize> {
    let mut bytes = text.bytes_at(byte);
    let mut at = byte;
    while at + limit > byte {
        let b = bytes.prev()?;
        if !is_space(b) {
            return Some(at);
        }
        at -= 1;
    }
    None
}

/// Indentation width of a line (a tab counts to the next multiple of 4).
fn indent_of_line(text: &Rope, line: usize) -> usize {
    let (start, end) = line_range(text, line);
    indent_width(text, start, end)
}

fn indent_width(text: &Rope, start: usize, end: usize) -> usize {
    let mut width = 0;
    for b in text.bytes_at(start).take(end - start) {
        match b {
            b' ' => width += 1,
            b'\t' => width = (width / 4 + 1) * 4,
            _ => break,
        }
    }
    width
}

/// Cody's emptiness rule: the next non-blank line after the cursor's is indented no deeper than
/// the opener's line (or there is none). A body with statements is indented deeper.
fn next_line_not_deeper(text: &Rope, cursor_line: usize, opener_indent: usize) -> bool {
    for index in (cursor_line + 1..text.len_lines()).take(MAX_FORWARD_LINES) {
        let (start, end) = line_range(text, index);
        if !is_blank(text, start, end) {
            return indent_width(text, start, end) <= opener_indent;
        }
    }
    true
}

/// When the cursor is on a later line than the opener: its line must be indented deeper than the
/// opener's, or not indented at all (the client has not indented yet). Cody's "the previous line
/// must be less indented than the cursor".
fn cursor_line_fits(text: &Rope, line: &Line, cursor: usize, opener_line: usize) -> bool {
    if opener_line == line.index {
        return true;
    }
    let width = indent_width(text, line.start, cursor);
    cursor == line.start || width > indent_of_line(text, opener_line)
}

// ---------------------------------------------------------------------------------------------
// With a syntax tree

/// `Some(multi)` when the tree answers, `None` when there is no tree or query, or the tree is
/// broken around the cursor and found no block.
fn tree_verdict(snap: &Snapshot, cursor: usize, line: &Line) -> Option<bool> {
    let lang = snap.language?;
    let tree = snap.tree.as_ref()?;
    let query = syntax::query(lang, QueryKind::Blocks)?;
    let text = &snap.text;
    if tree.root_node().end_byte() > text.len_bytes() {
        return None; // a tree that does not belong to this text; never index past the rope
    }
    let mut qc = QueryCursor::new();
    let end = last_token_end(text, tree, cursor);

    if let Some(end) = end
        && let Some(block) = opener_ending_at(&mut qc, query, text, tree, end)
    {
        return Some(block_is_empty(text, &block, cursor, line));
    }
    if let Some(block) = innermost_body(&mut qc, query, text, tree, cursor) {
        return Some(body_is_empty_after_header(text, &block, cursor, line));
    }
    let broken = match end {
        Some(end) => {
            let leaf = tree.root_node().descendant_for_byte_range(end - 1, end);
            leaf.is_none_or(|n| n.is_missing() || ancestors(n).any(|a| a.is_error()))
        }
        None => false,
    };
    if broken { None } else { Some(false) }
}

/// A `blocks.scm` match: the body and, when the pattern has one, its opener.
#[derive(Clone, Copy)]
struct Block<'t> {
    body: Node<'t>,
    opener: Option<Node<'t>>,
}

fn ancestors(node: Node<'_>) -> impl Iterator<Item = Node<'_>> {
    std::iter::successors(Some(node), Node::parent)
}

/// The end of the last token before the cursor, skipping whitespace and comments (an opener may
/// be followed by a comment on its line).
fn last_token_end(text: &Rope, tree: &Tree, cursor: usize) -> Option<usize> {
    let mut end = last_non_blank(text, cursor, MAX_BACK_SCAN)?;
    for _ in 0..4 {
        let leaf = tree.root_node().descendant_for_byte_range(end - 1, end)?;
        let comment = ancestors(leaf).take(3).find(|n| n.kind().contains("comment"));
        match comment {
            Some(c) if c.start_byte() < end && c.end_byte() >= end => {
                end = last_non_blank(text, c.start_byte(), MAX_BACK_SCAN)?;
            }
            _ => break,
        }
    }
    Some(end)
}

/// Every match of the blocks query rooted at `node` itself, restricted to `range`.
fn blocks_rooted_at<'t>(
    qc: &mut QueryCursor,
    query: &Query,
    text: &Rope,
    node: Node<'t>,
    range: std::ops::Range<usize>,
) -> Vec<Block<'t>> {
    qc.set_max_start_depth(Some(0));
    qc.set_byte_range(range);
    // The blocks queries have no text predicates, but the provider must still be right: it reads
    // the node's text from the rope, chunk by chunk.
    let provider = |n: Node<'_>| {
        let chunks = text.get_byte_slice(n.byte_range()).map(|s| s.chunks());
        chunks.into_iter().flatten().map(str::as_bytes)
    };
    let mut out = Vec::new();
    let mut it = qc.matches(query, node, provider);
    while let Some(m) = it.next() {
        let (body, opener) = syntax::block_captures(query, m);
        if let Some(body) = body {
            out.push(Block { body, opener });
        }
    }
    out
}

/// The block whose opener ends exactly at `end` (the last token before the cursor). If several
/// bodies share that opener, the innermost wins.
fn opener_ending_at<'t>(
    qc: &mut QueryCursor,
    query: &Query,
    text: &Rope,
    tree: &'t Tree,
    end: usize,
) -> Option<Block<'t>> {
    let leaf = tree.root_node().descendant_for_byte_range(end - 1, end)?;
    if leaf.end_byte() != end {
        return None;
    }
    // A pattern is rooted at most a few levels above its opener; each level runs the query on
    // that node alone (max start depth 0), so only its children are visited.
    ancestors(leaf)
        .skip(1)
        .take(MAX_OPENER_LEVELS)
        .flat_map(|node| blocks_rooted_at(qc, query, text, node, end - 1..end))
        .filter(|b| b.opener.is_some_and(|o| o.end_byte() == end))
        .min_by_key(|b| b.body.end_byte() - b.body.start_byte())
}

/// The innermost `@block.body` that strictly contains the cursor, with the last of its openers
/// before the cursor.
fn innermost_body<'t>(
    qc: &mut QueryCursor,
    query: &Query,
    text: &Rope,
    tree: &'t Tree,
    cursor: usize,
) -> Option<Block<'t>> {
    let node = tree.root_node().descendant_for_byte_range(cursor, cursor)?;
    for node in ancestors(node).take(MAX_BODY_LEVELS) {
        if !(node.start_byte() < cursor && cursor < node.end_byte()) {
            continue;
        }
        let blocks = blocks_rooted_at(qc, query, text, node, node.start_byte()..cursor);
        let mut found: Option<Block<'t>> = None;
        for b in blocks.into_iter().filter(|b| b.body == node) {
            let opener = b.opener.filter(|o| o.end_byte() <= cursor);
            let later = match (found.and_then(|f| f.opener), opener) {
                (Some(f), Some(o)) => o.end_byte() > f.end_byte(),
                (None, _) => true,
                (Some(_), None) => false,
            };
            if later {
                found = Some(Block { body: b.body, opener });
            }
        }
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The block's closing token (`}`, `end`, `done`, `fi`): its last child when that is a bare token
/// other than its opener.
fn closing_token<'t>(block: &Block<'t>) -> Option<Node<'t>> {
    let last = block.body.child(block.body.child_count().checked_sub(1)?)?;
    let is_opener = block.opener.is_some_and(|o| o.id() == last.id());
    (!last.is_named() && !is_opener).then_some(last)
}

/// Nothing but whitespace and the body's closing token from the cursor to the body's end.
fn rest_is_empty(text: &Rope, block: &Block<'_>, cursor: usize) -> bool {
    let end = match closing_token(block) {
        Some(close) if close.start_byte() >= cursor => close.start_byte(),
        _ => block.body.end_byte(),
    };
    is_blank(text, cursor, end)
}

/// After an opener (the last token before the cursor): is the body it opens empty?
fn block_is_empty(text: &Rope, block: &Block<'_>, cursor: usize, line: &Line) -> bool {
    let Some(opener) = block.opener else { return false };
    let opener_line = text.byte_to_line(opener.start_byte());
    if !cursor_line_fits(text, line, cursor, opener_line) {
        return false;
    }
    if opener_line == line.index && opener.end_byte() != cursor && matches!(opener.kind(), ":" | "=") {
        return false; // `def f(): $0`: a space typed after it asks for an inline body
    }
    let body = block.body;
    if body.start_byte() < cursor && cursor < body.end_byte() {
        rest_is_empty(text, block, cursor)
    } else {
        // Python, Lua and Scala 3 bodies span their statements only: one that starts after the
        // cursor or ended before it says nothing about emptiness, indentation does.
        is_blank(text, cursor, line.end) && next_line_not_deeper(text, line.index, indent_of_line(text, opener_line))
    }
}

/// Inside a body that holds the cursor: is everything before the cursor header (the opener and a
/// lambda's parameters, or for an opener-less Ruby `def`, its first line) and nothing but the
/// closing token after it?
fn body_is_empty_after_header(text: &Rope, block: &Block<'_>, cursor: usize, line: &Line) -> bool {
    let body = block.body;
    let (anchor_line, header_end) = match block.opener {
        Some(o) => (text.byte_to_line(o.start_byte()), o.end_byte()),
        None => {
            let first = text.byte_to_line(body.start_byte());
            (first, line_range(text, first).1)
        }
    };
    if line.index == anchor_line && block.opener.is_none() {
        return false; // still typing the header
    }
    if !cursor_line_fits(text, line, cursor, anchor_line) {
        return false;
    }
    let mut walker = body.walk();
    let header_only = body.named_children(&mut walker).all(|child| {
        child.start_byte() < header_end
            || child.start_byte() >= cursor
            || child.kind().contains("parameter")
            || child.kind().contains("comment")
    });
    header_only && rest_is_empty(text, block, cursor)
}

// ---------------------------------------------------------------------------------------------
// Without a tree

/// Fallback on the text alone: the last token before the cursor starts a block, and the block is
/// empty by indentation.
fn text_verdict(snap: &Snapshot, cursor: usize, line: &Line) -> bool {
    let text = &snap.text;
    let Some(end) = last_non_blank(text, cursor, MAX_BACK_SCAN) else { return false };
    let opener_line = text.byte_to_line(end - 1);
    let (start, _) = line_range(text, opener_line);
    // The header line up to its last token; long lines are cut to their end (the rules only
    // look at the last few characters and at the line's first word).
    let from = start.max(end.saturating_sub(512));
    let from = floor_char_boundary(text, from);
    let header = text.byte_slice(from..end).to_string();
    let starts = BlockStarts::of(snap);
    if !text_block_start(&header, starts) {
        return false;
    }
    let last = header.trim_end().chars().next_back();
    if matches!(last, Some(':' | '=')) && opener_line == line.index && end != cursor {
        return false; // `key: $0`, `val x = $0`: a space typed after it asks for an inline value
    }
    if opener_line == line.index {
        // `{$0}` or `foo(() => {$0})`: only closing brackets may follow, and the whole line must
        // not be a call (Cody's "never for a call").
        let rest = text.byte_slice(cursor..line.end).to_string();
        if !rest.trim().chars().all(|c| matches!(c, '}' | ']' | ')')) {
            return false;
        }
        let whole = format!("{}{}", header.trim(), rest.trim());
        if is_call(&whole) {
            return false;
        }
    } else if !is_blank(text, cursor, line.end) || !cursor_line_fits(text, line, cursor, opener_line) {
        return false;
    }
    next_line_not_deeper(text, line.index, indent_of_line(text, opener_line))
}

/// The language-dependent block starts of the text fallback.
#[derive(Debug, Clone, Copy, Default)]
struct BlockStarts {
    /// A trailing `:` opens a block: Python and its relatives, YAML, Scala 3.
    colon: bool,
    /// A trailing `=` opens a block: Scala 3's `def f =` and an indented body.
    equals: bool,
}

impl BlockStarts {
    fn of(snap: &Snapshot) -> BlockStarts {
        const COLON: &[&str] = &[
            "python", "py", "pyi", "cython", "pyx", "starlark", "bzl", "bazel", "mojo", "gdscript", "nim", "yaml",
            "yml",
        ];
        let ext = snap.uri.rsplit('/').next().and_then(|f| f.rsplit_once('.')).map(|(_, e)| e);
        let id = snap.language_id.to_ascii_lowercase();
        let named = |names: &[&str]| {
            names.contains(&id.as_str()) || ext.is_some_and(|e| names.iter().any(|n| e.eq_ignore_ascii_case(n)))
        };
        let scala = snap.language == Some(Language::Scala);
        BlockStarts { colon: scala || snap.language == Some(Language::Python) || named(COLON), equals: scala }
    }
}

/// Whether a line (up to its last token) ends in a block start, when no tree can tell:
/// - `{`: a block, or a literal laid out over lines: multi-line either way;
/// - `[` unless it indexes (`xs[`): a list literal;
/// - never `(`: almost always a call, whose arguments are one line;
/// - the words `do`, `then`, `begin` (Ruby, Lua, Bash, Elixir, Pascal, SQL...) and Ruby's
///   `do |x|`; not `=>` or `=`, which mostly introduce one expression;
/// - `:` for indentation languages only (elsewhere it ends a label, a `case` or a type), and `=`
///   for Scala 3 only;
/// - `)` only after a `function` header (Lua's `local function f(x)`; JavaScript's Allman style).
fn text_block_start(header: &str, starts: BlockStarts) -> bool {
    let line = header.trim_end();
    let Some(last) = line.chars().next_back() else { return false };
    match last {
        '{' => return true,
        '[' => {
            let before = line[..line.len() - 1].trim_end().chars().next_back();
            return !before.is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | ')' | ']'));
        }
        ':' => return starts.colon,
        '=' => return starts.equals && !line.ends_with("==") && !line.ends_with("!="),
        ')' => {
            let head = line.trim_start();
            let head = head.strip_prefix("local").map_or(head, str::trim_start);
            return head
                .strip_prefix("function")
                .is_some_and(|h| h.starts_with(|c: char| c.is_whitespace() || c == '('));
        }
        '|' => {
            // Ruby block parameters: `each do |x|`.
            let inner = &line[..line.len() - 1];
            if let Some(open) = inner.rfind('|') {
                return ends_with_word(inner[..open].trim_end(), &["do"]);
            }
            return false;
        }
        _ => {}
    }
    ends_with_word(line, &["do", "then", "begin"])
}

/// `line` ends with one of `words` (ASCII case-insensitive), as a whole word not reached through
/// a `.` (`promise.then` is a property).
fn ends_with_word(line: &str, words: &[&str]) -> bool {
    words.iter().any(|w| {
        let Some(split) = line.len().checked_sub(w.len()) else { return false };
        let (head, tail) = (line.get(..split), line.get(split..));
        let (Some(head), Some(tail)) = (head, tail) else { return false };
        tail.eq_ignore_ascii_case(w)
            && !head.chars().next_back().is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '$' | '-'))
    })
}

/// Cody's "never for a call": `/\b[^()]+\((.*)\)$/` on the whole line, unless it starts a
/// definition (`function`, `def`, `fn`).
fn is_call(line: &str) -> bool {
    let line = line.trim();
    if !line.ends_with(')') {
        return false;
    }
    let first = line.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("");
    if matches!(first, "function" | "def" | "fn") {
        return false;
    }
    // A `(` with a word somewhere in the paren-free run before it.
    let mut run_has_word = false;
    for c in line.chars() {
        match c {
            '(' if run_has_word => return true,
            '(' | ')' => run_has_word = false,
            c if c.is_alphanumeric() || c == '_' => run_has_word = true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_block_starts() {
        let none = BlockStarts::default();
        let python = BlockStarts { colon: true, equals: false };
        let scala = BlockStarts { colon: true, equals: true };
        let cases = [
            ("fn f() {", none, true),
            ("let xs = [", none, true),
            ("xs[", none, false),
            ("foo(", none, false),
            ("def f():", python, true),
            ("case 1:", none, false),
            ("for x in y; do", none, true),
            ("if x then", none, true),
            ("promise.then", none, false),
            ("BEGIN", none, true),
            ("items.each do |x, y|", none, true),
            ("a || b |", none, false),
            ("redo", none, false),
            ("x =>", none, false),
            ("let x =", none, false),
            ("def f: Int =", scala, true),
            ("if a ==", scala, false),
            ("local function clamp(x, lo, hi)", none, true),
            ("function(x)", none, true),
            ("functional(x)", none, false),
            ("print(x)", none, false),
        ];
        for (line, starts, want) in cases {
            assert_eq!(text_block_start(line, starts), want, "{line:?}");
        }
    }

    #[test]
    fn calls() {
        assert!(is_call("foo(() => {})"));
        assert!(is_call("x.map(y)"));
        assert!(!is_call("function f()"));
        assert!(!is_call("if (x) {}"));
        assert!(!is_call("(a)"));
    }

    #[test]
    fn mid_word_reads_the_next_char() {
        let rope = Rope::from_str("ab é_x\r\n");
        let at = |s: &str| rope.to_string().find(s).unwrap_or(0);
        assert!(mid_word(&rope, 0));
        assert!(!mid_word(&rope, 2));
        assert!(mid_word(&rope, at("é")));
        assert!(mid_word(&rope, at("é") + 1), "inside a char: the char itself");
        assert!(mid_word(&rope, at("_")));
        assert!(!mid_word(&rope, at("\r")));
        assert!(!mid_word(&rope, rope.len_bytes()));
        assert!(!mid_word(&rope, rope.len_bytes() + 10));
    }
}
