//! What one chat turn sends: the system prompt, the mentioned context, as much history as fits,
//! and the new message, plus a record of which context went in and which was cut.
//!
//! Budget: everything is measured in characters and converted with [`Budget::chars_per_token`].
//! Context may use at most `context_share` of the budget; items are taken in mention order, one
//! that does not fit is cut to whole lines, and once nothing more fits the rest are dropped with
//! a reason. History gets what is left after the system prompt, the context actually used and the
//! new message, and loses whole turns, oldest first. The new message always goes in.
//!
//! The context rides in the final user message, ahead of the question, rather than in the
//! system prompt or a turn of its own: it belongs to the turn that mentioned it, and vendors that
//! require alternating user/assistant turns accept it. The stored history keeps only what the
//! user typed, so earlier turns' context is not sent again.
//!
//! Bad input (an unknown URI, binary content, a range outside the document, a symbol not found)
//! becomes a [`ContextStatus::Dropped`] item with a reason, never a panic and never a silent skip.

use std::{ops::ControlFlow, time::Instant};

use ropey::Rope;
use serde::{Deserialize, Serialize};
use tree_sitter::{ParseOptions, ParseState, Parser, Point, QueryCursor, StreamingIterator};

use super::history::{ChatMessage, Role};
use crate::{
    provider::{ChatRequest, Message, Role as WireRole},
    syntax::{self, Language, QueryKind},
};

/// The system prompt of every chat turn.
pub const SYSTEM_PROMPT: &str = "You are Quill, an AI pair-programmer inside the user's editor. \
Answer concisely and precisely. When you show code, use fenced code blocks with a language tag. \
Context from the user's files, when given, comes first in their message as fenced blocks headed \
by the file path and line numbers; refer to it by path and line.";

/// How long parsing one document for a symbol lookup may take before it is given up.
const PARSE_BUDGET: std::time::Duration = std::time::Duration::from_millis(100);

/// At most this many definitions go in for one symbol name (overloads, `impl` blocks, ...).
const MAX_DEFINITIONS_PER_SYMBOL: usize = 4;

/// A piece of context the user asked for. Lines are 0-based and both ends are inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mention {
    /// A whole document.
    File { uri: String },
    /// Some lines of a document. A range that runs past the end is cut to the last line; one
    /// that starts past the end is dropped.
    Range { uri: String, start_line: usize, end_line: usize },
    /// The editor's selection, whose text the client sends (it may be unsaved).
    Selection { uri: String, range: (usize, usize), text: String },
    /// Every definition with this name in the open documents (tree-sitter definition queries).
    Symbol { name: String },
}

/// Where the text of documents comes from: the LSP store for open documents, the file system
/// for the CLI.
pub trait Docs {
    /// A document's language id and text, or `None` if there is no such document.
    fn text(&self, uri: &str) -> Option<(String, Rope)>;
    /// Like [`Docs::text`], with the reason when there is no usable document ("no such file",
    /// "file too large", ...), shown in the dropped item. Sources that can say why override it.
    fn resolve(&self, uri: &str) -> Result<(String, Rope), String> {
        self.text(uri).ok_or_else(|| "no such document".to_owned())
    }
    /// The open documents, searched for symbols, in the order to search them (most relevant
    /// first).
    fn open_docs(&self) -> Vec<(String, Option<Language>, Rope)>;
}

/// The size of a turn. `context_tokens` is the whole prompt budget (system, context, history
/// and message); context may take `context_share` of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub context_tokens: usize,
    pub chars_per_token: f32,
    pub context_share: f32,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { context_tokens: 8192, chars_per_token: 3.5, context_share: 0.5 }
    }
}

impl Budget {
    fn total_chars(&self) -> usize {
        (self.context_tokens as f64 * f64::from(self.chars_per_token.max(0.0))) as usize
    }

    fn context_chars(&self) -> usize {
        (self.total_chars() as f64 * f64::from(self.context_share.clamp(0.0, 1.0))) as usize
    }
}

/// What became of one piece of context (the `contextUsed` of `quill/chat/send`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextItem {
    /// The document; empty for a symbol that was not found.
    pub uri: String,
    /// The lines that were asked for (0-based, inclusive), after clamping to the document; `None`
    /// for a whole file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<(usize, usize)>,
    /// The symbol name, for items that came from a [`Mention::Symbol`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    pub status: ContextStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ContextStatus {
    Included,
    /// Only the first `kept_lines` lines went in.
    #[serde(rename_all = "camelCase")]
    Truncated {
        kept_lines: usize,
    },
    Dropped {
        reason: String,
    },
}

/// One chat turn, ready for a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// `max_tokens` is left at 0 (the provider's default) and `temperature` at 0; the caller
    /// sets them from the configuration.
    pub request: ChatRequest,
    /// One item per resolved mention (a symbol may give several), in mention order.
    pub context_used: Vec<ContextItem>,
    /// History turns (a user message and its reply) left out to fit the budget.
    pub history_dropped: usize,
}

/// Build the request for one chat turn. See the module docs for how the budget is shared.
pub fn build_turn(
    history: &[ChatMessage],
    message: &str,
    mentions: &[Mention],
    docs: &dyn Docs,
    budget: &Budget,
) -> Turn {
    let candidates = resolve(mentions, docs);
    let (context_text, context_used) = fit_context(candidates, budget.context_chars(), budget.chars_per_token);

    // Each block ends with a blank line, which separates the last one from the message.
    let mut last = context_text;
    last.push_str(message);

    let fixed = SYSTEM_PROMPT.chars().count() + last.chars().count();
    let room = budget.total_chars().saturating_sub(fixed);
    let (kept, history_dropped) = fit_history(history, room);

    let mut messages = Vec::with_capacity(kept.len() + 2);
    messages.push(Message::new(WireRole::System, SYSTEM_PROMPT));
    messages.extend(kept);
    messages.push(Message::new(WireRole::User, last));
    Turn { request: ChatRequest { messages, ..ChatRequest::default() }, context_used, history_dropped }
}

/// A piece of context resolved to text, or the reason it cannot be used.
enum Candidate {
    Text { item: ContextItem, label: String, lang: String, lines: Vec<String> },
    Bad(ContextItem),
}

fn dropped(uri: &str, range: Option<(usize, usize)>, symbol: Option<&str>, reason: String) -> Candidate {
    Candidate::Bad(ContextItem {
        uri: uri.to_owned(),
        range,
        symbol: symbol.map(str::to_owned),
        status: ContextStatus::Dropped { reason },
    })
}

fn resolve(mentions: &[Mention], docs: &dyn Docs) -> Vec<Candidate> {
    let mut out = Vec::new();
    for mention in mentions {
        match mention {
            Mention::File { uri } => out.push(from_doc(uri, None, docs)),
            Mention::Range { uri, start_line, end_line } => {
                out.push(from_doc(uri, Some((*start_line, *end_line)), docs));
            }
            Mention::Selection { uri, range, text } => {
                let item = ContextItem {
                    uri: uri.clone(),
                    range: Some(*range),
                    symbol: None,
                    status: ContextStatus::Included,
                };
                if text.contains('\0') {
                    out.push(dropped(uri, Some(*range), None, "binary content (NUL bytes)".into()));
                } else if text.trim().is_empty() {
                    out.push(dropped(uri, Some(*range), None, "the selection is empty".into()));
                } else {
                    let lang = docs.text(uri).map(|(id, _)| id).unwrap_or_else(|| lang_tag(uri, ""));
                    let label = format!("{} (selection, {})", display_path(uri), line_label(range.0, range.1));
                    out.push(Candidate::Text { item, label, lang, lines: split_lines(text) });
                }
            }
            Mention::Symbol { name } => symbol(name, docs, &mut out),
        }
    }
    out
}

/// A file or a line range of one.
fn from_doc(uri: &str, range: Option<(usize, usize)>, docs: &dyn Docs) -> Candidate {
    let (language_id, rope) = match docs.resolve(uri) {
        Ok(found) => found,
        Err(reason) => return dropped(uri, range, None, reason),
    };
    if has_nul(&rope) {
        return dropped(uri, range, None, "binary content (NUL bytes)".into());
    }
    let count = line_count(&rope);
    let (start, end) = match range {
        None => (0, count.saturating_sub(1)),
        Some((s, e)) if s > e => {
            return dropped(uri, range, None, format!("invalid range: start line {} after end line {}", s + 1, e + 1));
        }
        Some((s, e)) if s >= count => {
            return dropped(uri, range, None, format!("{} outside the document ({count} lines)", line_label(s, e)));
        }
        Some((s, e)) => (s, e.min(count - 1)),
    };
    let lines = if count == 0 { Vec::new() } else { rope_lines(&rope, start, end) };
    let label = match range {
        None => display_path(uri),
        Some(_) => format!("{} ({})", display_path(uri), line_label(start, end)),
    };
    let item = ContextItem {
        uri: uri.to_owned(),
        range: range.map(|_| (start, end)),
        symbol: None,
        status: ContextStatus::Included,
    };
    Candidate::Text { item, label, lang: lang_tag(uri, &language_id), lines }
}

/// Every definition named `name` in the open documents, at most [`MAX_DEFINITIONS_PER_SYMBOL`].
fn symbol(name: &str, docs: &dyn Docs, out: &mut Vec<Candidate>) {
    let mut found = 0;
    let mut parser = Parser::new();
    for (uri, lang, rope) in docs.open_docs() {
        if found == MAX_DEFINITIONS_PER_SYMBOL {
            break;
        }
        // Cheap filters first: most open documents do not mention the name at all.
        let Some(lang) = lang else { continue };
        if name.is_empty() || !contains(&rope, name.as_bytes()) || has_nul(&rope) {
            continue;
        }
        let Some(query) = syntax::query(lang, QueryKind::Definitions) else { continue };
        let Some(tree) = parse(&mut parser, lang, &rope) else { continue };
        let names = query.capture_names();
        let mut cursor = QueryCursor::new();
        let text = |node: tree_sitter::Node<'_>| {
            rope.byte_slice(node.byte_range()).chunks().map(str::as_bytes).collect::<Vec<_>>().into_iter()
        };
        let mut matches = cursor.matches(query, tree.root_node(), text);
        let mut spans: Vec<(usize, usize)> = Vec::new();
        while let Some(m) = matches.next() {
            let (mut def, mut named) = (None, false);
            for c in m.captures() {
                match names.get(c.index as usize).copied() {
                    Some("definition.function" | "definition.class") => def = Some(c.node),
                    Some("name") => named = rope.byte_slice(c.node.byte_range()) == name,
                    _ => {}
                }
            }
            if let (Some(def), true) = (def, named) {
                let start = rope.byte_to_line(def.start_byte());
                let end = rope.byte_to_line(def.end_byte().max(def.start_byte() + 1) - 1);
                spans.push((start, end));
            }
        }
        // A definition inside another with the same name (rare) would repeat its text.
        spans.sort_unstable();
        spans.dedup();
        for (start, end) in spans {
            if found == MAX_DEFINITIONS_PER_SYMBOL {
                break;
            }
            found += 1;
            let item = ContextItem {
                uri: uri.clone(),
                range: Some((start, end)),
                symbol: Some(name.to_owned()),
                status: ContextStatus::Included,
            };
            let label = format!("{} ({}, `{name}`)", display_path(&uri), line_label(start, end));
            let lines = rope_lines(&rope, start, end);
            out.push(Candidate::Text { item, label, lang: lang.name().to_owned(), lines });
        }
    }
    if found == 0 {
        out.push(dropped("", None, Some(name), format!("symbol `{name}` not found in the open documents")));
    }
}

/// A fresh parse of `rope`, given up after [`PARSE_BUDGET`].
fn parse(parser: &mut Parser, lang: Language, rope: &Rope) -> Option<tree_sitter::Tree> {
    let grammar = lang.grammar()?;
    parser.set_language(&grammar).ok()?;
    let mut read = |byte: usize, _: Point| -> &[u8] {
        if byte >= rope.len_bytes() {
            return &[];
        }
        let (chunk, chunk_start, _, _) = rope.chunk_at_byte(byte);
        &chunk.as_bytes()[byte - chunk_start..]
    };
    let started = Instant::now();
    let mut budget = |_: &ParseState| {
        if started.elapsed() > PARSE_BUDGET { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    };
    let options = ParseOptions::new().progress_callback(&mut budget);
    let tree = parser.parse_with_options(&mut read, None, Some(options));
    if tree.is_none() {
        // A cancelled parse would otherwise resume on this parser's next call.
        parser.reset();
        tracing::debug!(lang = lang.name(), "symbol lookup: parse abandoned");
    }
    tree
}

/// Render candidates into fenced blocks within `cap` characters, in order.
fn fit_context(candidates: Vec<Candidate>, cap: usize, chars_per_token: f32) -> (String, Vec<ContextItem>) {
    let mut text = String::new();
    let mut used = 0;
    let mut items = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        let (mut item, label, lang, lines) = match candidate {
            Candidate::Bad(item) => {
                items.push(item);
                continue;
            }
            Candidate::Text { item, label, lang, lines } => (item, label, lang, lines),
        };
        let left = cap.saturating_sub(used);
        let fence = fence_for(&lines);
        let full = render(&label, &lang, &fence, &lines, None);
        let full_len = full.chars().count();
        if full_len <= left {
            used += full_len;
            text.push_str(&full);
            items.push(item);
            continue;
        }
        // Keep as many whole lines as fit alongside the header, fences and the cut note.
        let overhead = render(&label, &lang, &fence, &[], Some(lines.len())).chars().count();
        let mut kept = 0;
        let mut size = overhead;
        for line in &lines {
            let next = size + line.chars().count() + 1;
            if next > left {
                break;
            }
            size = next;
            kept += 1;
        }
        if kept == 0 {
            let tokens_left = (left as f64 / f64::from(chars_per_token.max(0.1))) as usize;
            item.status = ContextStatus::Dropped {
                reason: format!("does not fit the context budget (about {tokens_left} tokens left)"),
            };
        } else {
            let block = render(&label, &lang, &fence, &lines[..kept], Some(lines.len() - kept));
            used += block.chars().count();
            text.push_str(&block);
            item.status = ContextStatus::Truncated { kept_lines: kept };
        }
        items.push(item);
    }
    (text, items)
}

fn render(label: &str, lang: &str, fence: &str, lines: &[String], cut: Option<usize>) -> String {
    let mut s = format!("{label}:\n{fence}{lang}\n");
    for line in lines {
        s.push_str(line);
        s.push('\n');
    }
    s.push_str(fence);
    s.push('\n');
    if let Some(n) = cut {
        s.push_str(&format!("({n} more lines cut to fit the context budget)\n"));
    }
    s.push('\n');
    s
}

/// A backtick fence longer than any run of backticks in the text, so the text cannot close it.
fn fence_for(lines: &[String]) -> String {
    let longest = lines.iter().flat_map(|l| l.split(|c| c != '`')).map(str::len).max().unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// The newest whole turns that fit in `room` characters, as wire messages, and how many were
/// left out. A turn is a user message and the assistant reply after it; a question without a
/// usable reply (failed before any text) is left out, since sending it would put two user
/// messages in a row.
fn fit_history(history: &[ChatMessage], room: usize) -> (Vec<Message>, usize) {
    let mut turns: Vec<(&ChatMessage, &ChatMessage)> = Vec::new();
    let mut pending: Option<&ChatMessage> = None;
    for m in history {
        match m.role {
            Role::User => pending = Some(m),
            Role::Assistant => {
                if let Some(q) = pending.take()
                    && !m.content.trim().is_empty()
                {
                    turns.push((q, m));
                }
            }
        }
    }
    let mut used = 0;
    let mut keep_from = turns.len();
    for (i, (q, a)) in turns.iter().enumerate().rev() {
        let size = q.content.chars().count() + a.content.chars().count();
        if used + size > room {
            break;
        }
        used += size;
        keep_from = i;
    }
    let messages = turns[keep_from..]
        .iter()
        .flat_map(|(q, a)| {
            [Message::new(WireRole::User, q.content.clone()), Message::new(WireRole::Assistant, a.content.clone())]
        })
        .collect();
    (messages, keep_from)
}

/// Lines of a document, ignoring the empty "line" ropey counts after a final line break.
fn line_count(rope: &Rope) -> usize {
    let n = rope.len_lines();
    if rope.len_bytes() == 0 {
        0
    } else if rope.line(n - 1).len_bytes() == 0 {
        n - 1
    } else {
        n
    }
}

/// Lines `start..=end` without their line breaks (`\n`, `\r\n` or a lone `\r`).
fn rope_lines(rope: &Rope, start: usize, end: usize) -> Vec<String> {
    (start..=end.min(rope.len_lines().saturating_sub(1)))
        .map(|i| {
            let line = rope.line(i).to_string();
            line.trim_end_matches(['\n', '\r']).to_owned()
        })
        .collect()
}

fn split_lines(text: &str) -> Vec<String> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned()).collect()
}

fn has_nul(rope: &Rope) -> bool {
    rope.chunks().any(|c| memchr::memchr(0, c.as_bytes()).is_some())
}

/// Whether `needle` occurs in the rope, including across chunk boundaries.
fn contains(rope: &Rope, needle: &[u8]) -> bool {
    let finder = memchr::memmem::Finder::new(needle);
    let keep = needle.len().saturating_sub(1);
    // The last `keep` bytes seen, so a match across a chunk seam is found too.
    let mut seam: Vec<u8> = Vec::new();
    for chunk in rope.chunks() {
        let bytes = chunk.as_bytes();
        if finder.find(bytes).is_some() {
            return true;
        }
        seam.extend_from_slice(&bytes[..bytes.len().min(keep)]);
        if finder.find(&seam).is_some() {
            return true;
        }
        if bytes.len() >= keep {
            seam.clear();
            seam.extend_from_slice(&bytes[bytes.len() - keep..]);
        } else {
            let extra = seam.len().saturating_sub(keep);
            seam.drain(..extra);
        }
    }
    false
}

/// "line 3" or "lines 3-7", 1-based for people and models.
fn line_label(start: usize, end: usize) -> String {
    if start == end { format!("line {}", start + 1) } else { format!("lines {}-{}", start + 1, end + 1) }
}

/// The fence's language tag: the language id, else the language guessed from the URI.
fn lang_tag(uri: &str, language_id: &str) -> String {
    if !language_id.is_empty() {
        return language_id.to_owned();
    }
    Language::detect("", uri).map(|l| l.name().to_owned()).unwrap_or_default()
}

/// A `file://` URI as a path (percent-decoded); other URIs as they are.
pub fn display_path(uri: &str) -> String {
    crate::store::uri_path(uri).unwrap_or_else(|| uri.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_finds_needles_across_chunk_seams() {
        let filler = "abcdefghij".repeat(1000);
        for at in (0..filler.len()).step_by(97) {
            let mut text = filler.clone();
            text.insert_str(at, "needle_xyz");
            let rope = Rope::from_str(&text);
            assert!(contains(&rope, b"needle_xyz"), "at {at}");
        }
        let rope = Rope::from_str(&filler);
        assert!(!contains(&rope, b"needle_xyz"));
        assert!(contains(&rope, b"jabc"));
        assert!(!contains(&Rope::new(), b"x"));
    }

    #[test]
    fn line_counts_ignore_the_empty_line_after_a_final_break() {
        let count = |s: &str| line_count(&Rope::from_str(s));
        assert_eq!(
            [count(""), count("a"), count("a\n"), count("a\nb"), count("a\r\n\r\n"), count("a\rb\r")],
            [0, 1, 1, 2, 2, 2]
        );
    }

    #[test]
    fn fences_outgrow_the_backticks_inside() {
        let lines = |s: &[&str]| s.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>();
        assert_eq!(fence_for(&lines(&["plain"])), "```");
        assert_eq!(fence_for(&lines(&["a ``` b", "`````"])), "``````");
    }

    #[test]
    fn file_uris_display_as_paths() {
        assert_eq!(display_path("file:///w/My%20Doc.md"), "/w/My Doc.md");
        assert_eq!(display_path("file:///w/100%+"), "/w/100%+");
        assert_eq!(display_path("untitled:Untitled-1"), "untitled:Untitled-1");
    }
}
