//! One open document: its rope, version, language and syntax tree, and the rules for changing it.
//!
//! Edits are applied to the rope and mirrored into the tree with `Tree::edit`. The reparse is
//! deferred until someone needs the tree ([`Document::ensure_parsed`], called by snapshots): it is
//! incremental and reads rope chunks, so no keystroke copies the whole text, and a burst of typing
//! costs one reparse, not one per keystroke. Documents that are too large or look binary are kept
//! as text, unparsed, and say why.

use std::{cell::RefCell, fmt};

use ropey::Rope;
use tree_sitter::{InputEdit, Parser, Point, Tree};

use crate::{
    position::{self, PositionEncoding, TextPos},
    syntax::Language,
};

/// The longest one parse may run before it is abandoned. Typical reparses take well under a
/// millisecond; error recovery on large inputs that are not the language can take seconds.
pub const PARSE_BUDGET: std::time::Duration = std::time::Duration::from_millis(500);

/// Keep syntax trees for at most this many bytes of source by default. A tree costs roughly 30
/// times its source's size, so this is about 16 MB of trees.
pub const DEFAULT_TREE_CACHE_BYTES: usize = 512 * 1024;

/// Parse no document larger than this by default (bytes).
pub const DEFAULT_MAX_PARSE_BYTES: usize = 10 * 1024 * 1024;

/// One content change, as the client sent it but free of LSP types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The replaced range, or `None` to replace the whole document.
    pub range: Option<(TextPos, TextPos)>,
    pub text: String,
}

/// Why a document has or lacks a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseStatus {
    Parsed,
    /// Quill has no grammar for this language (or it was compiled out).
    NoGrammar,
    TooLarge {
        bytes: usize,
        limit: usize,
    },
    /// NUL bytes or a high share of control characters: not source code.
    Binary,
    /// The parse ran over [`PARSE_BUDGET`] (pathological input, e.g. a large file of another
    /// language's text). Retried from scratch after the next change.
    Failed,
}

impl fmt::Display for ParseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseStatus::Parsed => f.write_str("parsed"),
            ParseStatus::NoGrammar => f.write_str("no grammar for this language"),
            ParseStatus::TooLarge { bytes, limit } => {
                write!(f, "not parsed: {bytes} bytes is over the {limit}-byte limit (documents.max_parse_bytes)")
            }
            ParseStatus::Binary => f.write_str("not parsed: content looks binary"),
            ParseStatus::Failed => {
                write!(f, "not parsed: tree-sitter ran over its {} ms budget", PARSE_BUDGET.as_millis())
            }
        }
    }
}

/// Why a change was not applied. The document is left exactly as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("version {got} is not newer than {current}; change ignored")]
    StaleVersion { current: i32, got: i32 },
    #[error("change {index} has a position inside a character ({pos:?} in {enc}); changes ignored")]
    InvalidPosition { index: usize, pos: TextPos, enc: &'static str },
}

/// An open document.
#[derive(Clone)]
pub struct Document {
    text: Rope,
    version: i32,
    language_id: String,
    language: Option<Language>,
    /// The last parsed tree, with every later edit applied by `Tree::edit`.
    tree: Option<Tree>,
    /// The text changed since `tree` was parsed; the next reader reparses.
    stale: bool,
    status: ParseStatus,
    /// Kept up to date per change, so a keystroke never rescans the whole text.
    binary: bool,
    max_parse_bytes: usize,
}

impl fmt::Debug for Document {
    // Never print the text: it may hold secrets, and it is large.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Document")
            .field("version", &self.version)
            .field("language_id", &self.language_id)
            .field("bytes", &self.text.len_bytes())
            .field("status", &self.status)
            .finish()
    }
}

thread_local! {
    // Parsers are cheap to retarget and not `Sync`; one per thread serves every document.
    static PARSER: RefCell<Parser> = RefCell::new(Parser::new());
}

impl Document {
    pub fn new(
        text: &str,
        version: i32,
        language_id: &str,
        language: Option<Language>,
        max_parse_bytes: usize,
    ) -> Self {
        let text = Rope::from_str(text);
        let mut doc = Document {
            binary: looks_binary(&text),
            text,
            version,
            language_id: language_id.to_owned(),
            language,
            tree: None,
            stale: false,
            status: ParseStatus::NoGrammar,
            max_parse_bytes,
        };
        doc.classify();
        doc
    }

    pub fn text(&self) -> &Rope {
        &self.text
    }
    pub fn version(&self) -> i32 {
        self.version
    }
    pub fn language_id(&self) -> &str {
        &self.language_id
    }
    pub fn language(&self) -> Option<Language> {
        self.language
    }
    /// The syntax tree for the current text, parsing first if edits are pending.
    pub fn tree(&mut self) -> Option<&Tree> {
        self.ensure_parsed();
        self.tree.as_ref()
    }
    pub fn status(&self) -> ParseStatus {
        self.status
    }

    /// Whether a tree is held in memory (up to date or awaiting a reparse).
    pub fn holds_tree(&self) -> bool {
        self.tree.is_some()
    }

    /// Free the tree to save memory; the next reader parses from scratch.
    pub fn drop_tree(&mut self) {
        if self.tree.take().is_some() {
            self.stale = self.status == ParseStatus::Parsed;
        }
    }

    /// Number of `ERROR` and `MISSING` nodes in the tree (0 when unparsed).
    pub fn syntax_errors(&mut self) -> usize {
        let Some(tree) = self.tree() else { return 0 };
        if !tree.root_node().has_error() {
            return 0;
        }
        let mut count = 0;
        let mut cursor = tree.walk();
        'walk: loop {
            let node = cursor.node();
            if node.is_error() || node.is_missing() {
                count += 1;
            }
            // Only descend into subtrees that contain an error.
            if node.has_error() && !node.is_error() && cursor.goto_first_child() {
                continue;
            }
            while !cursor.goto_next_sibling() {
                if !cursor.goto_parent() {
                    break 'walk;
                }
            }
        }
        count
    }

    /// Apply a batch of changes for `version`, in order. All or nothing: if any change has an
    /// invalid position, the document is left unchanged.
    pub fn apply_changes(
        &mut self,
        version: i32,
        changes: &[Change],
        enc: PositionEncoding,
    ) -> Result<(), ChangeError> {
        if version <= self.version {
            return Err(ChangeError::StaleVersion { current: self.version, got: version });
        }
        // Ropes clone in O(1); applying to a copy makes the batch atomic.
        let mut text = self.text.clone();
        let mut tree = self.tree.clone();
        let mut binary = self.binary;
        for (index, change) in changes.iter().enumerate() {
            match change.range {
                None => {
                    text = Rope::from_str(&change.text);
                    tree = None;
                    binary = looks_binary(&text);
                }
                Some((start, end)) => {
                    let invalid = |pos| ChangeError::InvalidPosition { index, pos, enc: enc.as_str() };
                    let s = position::to_char(&text, start, enc).ok_or_else(|| invalid(start))?;
                    let e = position::to_char(&text, end, enc).ok_or_else(|| invalid(end))?;
                    // A reversed range is treated as its mirror image rather than dropped.
                    let (s, e) = if s <= e { (s, e) } else { (e, s) };
                    let edit = splice(&mut text, s, e, &change.text);
                    if let Some(tree) = tree.as_mut() {
                        tree.edit(&edit);
                    }
                    binary = if binary { looks_binary(&text) } else { change.text.contains('\0') };
                }
            }
        }
        self.text = text;
        self.version = version;
        self.tree = tree;
        self.binary = binary;
        self.classify();
        Ok(())
    }

    /// Decide whether the current text may be parsed; if so, mark the tree for reparsing.
    fn classify(&mut self) {
        let bytes = self.text.len_bytes();
        let grammar = self.language.and_then(Language::grammar);
        let status = if grammar.is_none() {
            ParseStatus::NoGrammar
        } else if bytes > self.max_parse_bytes {
            ParseStatus::TooLarge { bytes, limit: self.max_parse_bytes }
        } else if self.binary {
            ParseStatus::Binary
        } else {
            ParseStatus::Parsed
        };
        if status != self.status && status != ParseStatus::Parsed {
            tracing::info!(language = self.language_id, "document {status}");
        }
        self.status = status;
        self.stale = status == ParseStatus::Parsed;
        if !self.stale {
            self.tree = None;
        }
    }

    /// Reparse if edits are pending: incrementally from the edited tree, reading rope chunks.
    pub fn ensure_parsed(&mut self) {
        if !self.stale {
            return;
        }
        self.stale = false;
        let Some(grammar) = self.language.and_then(Language::grammar) else { return };
        let old = self.tree.take();
        let text = &self.text;
        let tree = PARSER.with(|p| {
            let mut parser = p.borrow_mut();
            if parser.set_language(&grammar).is_err() {
                return None;
            }
            let mut read = |byte: usize, _: Point| -> &[u8] {
                if byte >= text.len_bytes() {
                    return &[];
                }
                let (chunk, chunk_start, _, _) = text.chunk_at_byte(byte);
                &chunk.as_bytes()[byte - chunk_start..]
            };
            let started = std::time::Instant::now();
            let mut budget = |_: &tree_sitter::ParseState| {
                if started.elapsed() > PARSE_BUDGET {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            };
            let options = tree_sitter::ParseOptions::new().progress_callback(&mut budget);
            let tree = parser.parse_with_options(&mut read, old.as_ref(), Some(options));
            if tree.is_none() {
                // A cancelled parse would otherwise resume on this thread's next call.
                parser.reset();
            }
            tree
        });
        if tree.is_none() {
            tracing::warn!(
                language = self.language_id,
                bytes = self.text.len_bytes(),
                "parse abandoned after {} ms",
                PARSE_BUDGET.as_millis()
            );
            self.status = ParseStatus::Failed;
        }
        self.tree = tree;
    }
}

/// Replace chars `s..e` of `text` with `new`, returning the matching tree-sitter edit.
///
/// Tree points use rope lines as rows. tree-sitter itself counts only `\n` as a row break, so
/// rows differ after a lone `\r`; Quill addresses nodes by byte offset only, never by point.
fn splice(text: &mut Rope, s: usize, e: usize, new: &str) -> InputEdit {
    let start_byte = text.char_to_byte(s);
    let old_end_byte = text.char_to_byte(e);
    let start_position = point_at(text, start_byte);
    let old_end_position = point_at(text, old_end_byte);
    if e > s {
        text.remove(s..e);
    }
    if !new.is_empty() {
        text.insert(s, new);
    }
    let new_end_byte = start_byte + new.len();
    InputEdit {
        start_byte,
        old_end_byte,
        new_end_byte,
        start_position,
        old_end_position,
        new_end_position: point_at(text, new_end_byte),
    }
}

fn point_at(text: &Rope, byte: usize) -> Point {
    let line = text.byte_to_line(byte);
    Point { row: line, column: byte - text.line_to_byte(line) }
}

/// A NUL byte anywhere, or more than 10% control characters in the first 8 KiB, means binary.
fn looks_binary(text: &Rope) -> bool {
    if text.chunks().any(|c| c.contains('\0')) {
        return true;
    }
    let (mut seen, mut control) = (0usize, 0usize);
    for b in text.bytes().take(8192) {
        seen += 1;
        if b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c) {
            control += 1;
        }
    }
    control * 10 > seen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(sl: u32, sc: u32, el: u32, ec: u32, text: &str) -> Change {
        Change { range: Some((TextPos::new(sl, sc), TextPos::new(el, ec))), text: text.to_owned() }
    }

    fn rust(text: &str) -> Document {
        Document::new(text, 1, "rust", Some(Language::Rust), DEFAULT_MAX_PARSE_BYTES)
    }

    #[test]
    fn incremental_edits_keep_the_tree_in_step() {
        let mut doc = rust("fn main() {\n    let x = 1;\n}\n");
        assert_eq!(doc.status(), ParseStatus::Parsed);
        assert_eq!(doc.syntax_errors(), 0);
        doc.apply_changes(2, &[change(1, 13, 1, 14, "")], PositionEncoding::Utf16).expect("apply");
        assert_eq!(doc.text().to_string(), "fn main() {\n    let x = 1\n}\n");
        assert!(doc.syntax_errors() > 0);
        doc.apply_changes(3, &[change(1, 13, 1, 13, ";")], PositionEncoding::Utf16).expect("apply");
        assert_eq!(doc.syntax_errors(), 0);
        // The incremental tree equals a fresh parse.
        let mut fresh = rust(&doc.text().to_string());
        let sexp = |d: &mut Document| d.tree().map(|t| t.root_node().to_sexp());
        assert_eq!(sexp(&mut doc), sexp(&mut fresh));
    }

    #[test]
    fn stale_versions_and_bad_positions_leave_the_document_alone() {
        let mut doc = rust("😀\n");
        assert_eq!(
            doc.apply_changes(1, &[change(0, 0, 0, 0, "x")], PositionEncoding::Utf16),
            Err(ChangeError::StaleVersion { current: 1, got: 1 })
        );
        let batch = [change(0, 0, 0, 0, "a"), change(0, 2, 0, 2, "b")];
        assert!(matches!(
            doc.apply_changes(2, &batch, PositionEncoding::Utf16),
            Err(ChangeError::InvalidPosition { index: 1, .. })
        ));
        assert_eq!(doc.text().to_string(), "😀\n");
        assert_eq!(doc.version(), 1);
    }

    #[test]
    fn large_and_binary_documents_are_not_parsed() {
        let mut doc = Document::new("fn a() {}", 1, "rust", Some(Language::Rust), 4);
        assert_eq!(doc.status(), ParseStatus::TooLarge { bytes: 9, limit: 4 });
        assert!(doc.tree().is_none());
        let mut doc = rust("fn a() {}\0\u{1}");
        assert_eq!(doc.status(), ParseStatus::Binary);
        // Removing the binary bytes makes it parseable again.
        doc.apply_changes(2, &[change(0, 9, 0, 11, "")], PositionEncoding::Utf8).expect("apply");
        assert_eq!(doc.status(), ParseStatus::Parsed);
        let doc = Document::new("hello", 1, "markdown", None, DEFAULT_MAX_PARSE_BYTES);
        assert_eq!(doc.status(), ParseStatus::NoGrammar);
    }
}
