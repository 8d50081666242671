//! Autocomplete: from a cursor in a snapshot to one ghost-text suggestion.
//!
//! The pure stages (`trigger`, `context`, `postprocess`) take a [`Snapshot`] and a byte offset and
//! never await; the scheduler and the engine around them own timing, reuse and cancellation.

pub mod context;
pub mod postprocess;
pub mod scheduler;
pub mod trigger;

/// The kind of suggestion a cursor position calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The rest of the current line: the answer is cut at its first line break.
    SingleLine,
    /// A whole block body: the answer is cut where the block ends.
    MultiLine,
}

pub(crate) use crate::store::Snapshot;

use std::path::Path;

use ropey::Rope;

/// How many other open documents the snippet search may read (Cody: the last 10 edited files).
pub const MAX_SNIPPET_DOCS: usize = 10;

/// A document's path for prompts: relative to the workspace root when inside it, else the
/// file path, else the URI as is.
pub fn prompt_path(uri: &str, root: Option<&Path>) -> String {
    let path = crate::store::uri_path(uri);
    match (path, root) {
        (Some(p), Some(root)) => match Path::new(&p).strip_prefix(root) {
            Ok(rel) => rel.to_string_lossy().into_owned(),
            Err(_) => p,
        },
        (Some(p), None) => p,
        (None, _) => uri.to_owned(),
    }
}

/// Re-check an answer computed on `before` against the document `now`. `Some` when it still
/// fits: the document is the same, or the user typed the answer's beginning at the cursor. The
/// returned range is in `now`'s coordinates, starting at the original cursor, so the insert text
/// still begins with what was typed (editors filter inline items by that).
pub fn rebase(answer: &scheduler::Answer, before: &Rope, now: &Rope) -> Option<(usize, usize)> {
    const WINDOW: usize = 2048;
    let (b_len, n_len) = (before.len_bytes(), now.len_bytes());
    let typed_len = n_len.checked_sub(b_len)?;
    let cursor = answer.start;
    // Byte iterators, not slices: a window edge may fall inside a character.
    let same = |a: &Rope, a_at: usize, b: &Rope, b_at: usize, n: usize| {
        a_at + n <= a.len_bytes() && b_at + n <= b.len_bytes() && a.bytes_at(a_at).take(n).eq(b.bytes_at(b_at).take(n))
    };
    let lo = cursor.saturating_sub(WINDOW);
    if cursor > b_len || !same(before, lo, now, lo, cursor - lo) {
        return None;
    }
    let hi = (cursor + WINDOW).min(b_len);
    if !same(before, cursor, now, cursor + typed_len, hi - cursor) {
        return None;
    }
    let typed = String::from_utf8(now.bytes_at(cursor).take(typed_len).collect()).ok()?;
    if !answer.text.starts_with(&typed) || (typed_len > 0 && answer.text.len() == typed.len()) {
        return None;
    }
    Some((cursor, answer.end + typed_len))
}
