//! What the model sees: the prefix and suffix within a token budget, and snippets from other open
//! documents of the same language. Pure.
//!
//! Sizes follow Cody (`get-current-doc-context.ts`, `providers/shared/provider.ts`): a 2048-token
//! context at 3.5 chars per token, 60 % for the prefix, 10 % for the suffix, 90 % in all; the rest
//! of the 90 % goes to snippets. Budgets count chars (Unicode scalar values), as Cody's do, and
//! the prefix and suffix are whole lines, so no character or line break is ever split.
//!
//! Snippets are Cody's Jaccard retriever (`context/retrievers/jaccard-similarity`): the word set
//! of the last lines before the cursor against sliding windows of each other document. The
//! window's word counts are updated as lines enter and leave, so a document costs O(lines), not
//! O(lines × window).

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    time::{Duration, Instant},
};

use ropey::{Rope, RopeSlice};

use super::Snapshot;
use crate::provider::Snippet;

/// The share of the context the prompt's code may fill (prefix, suffix and snippets); the rest is
/// left for the template and instructions (Cody: 0.9).
pub const TOTAL_SHARE: f32 = 0.9;

#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// Model context in tokens (default 2048, Cody's).
    pub context_tokens: usize,
    /// Chars per token (default 3.5, Cody's).
    pub chars_per_token: f32,
    /// Share of the context for the prefix (default 0.6).
    pub prefix_share: f32,
    /// Share of the context for the suffix (default 0.1).
    pub suffix_share: f32,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { context_tokens: 2048, chars_per_token: 3.5, prefix_share: 0.6, suffix_share: 0.1 }
    }
}

impl Budget {
    fn chars(&self, share: f32) -> usize {
        // `as` saturates: a negative or NaN share gives 0, a huge one usize::MAX.
        (self.context_tokens as f64 * f64::from(self.chars_per_token) * f64::from(share)) as usize
    }

    /// The prefix's budget in chars (≈ 4,300 by default).
    pub fn prefix_chars(&self) -> usize {
        self.chars(self.prefix_share)
    }

    /// The suffix's budget in chars (≈ 716 by default).
    pub fn suffix_chars(&self) -> usize {
        self.chars(self.suffix_share)
    }

    /// Prefix, suffix and snippets together, in chars (≈ 6,451 by default).
    pub fn total_chars(&self) -> usize {
        self.chars(TOTAL_SHARE)
    }
}

/// The document around the cursor. `prefix` ends and `suffix` starts at the cursor, so
/// `prefix + suffix` is the document's text from `prefix_start` on, in one piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocContext {
    /// Whole lines walking back from the cursor within the prefix budget, and always the current
    /// line's text before the cursor (cut to the budget only when that alone is longer).
    pub prefix: String,
    /// The rest of the cursor's line and whole lines forward within the suffix budget (the line's
    /// rest is cut to the budget only when that alone is longer).
    pub suffix: String,
    /// Byte offset where `prefix` starts in the document.
    pub prefix_start: usize,
    /// Text before the cursor on its line (the tail of `prefix`).
    pub line_prefix: String,
    /// Text after the cursor on its line, without the line break (the head of `suffix`).
    pub line_suffix: String,
    /// Byte offset of the cursor (moved back to a char boundary if it was inside a char).
    pub cursor: usize,
}

pub fn doc_context(snap: &Snapshot, byte: usize, budget: &Budget) -> DocContext {
    let text = &snap.text;
    let cursor_char = text.byte_to_char(byte.min(text.len_bytes()));
    let line = text.char_to_line(cursor_char);
    let line_start = text.line_to_char(line);
    let line_end = line_text_end(text, line);

    // The first line that starts within budget; past the cursor's own line means that line
    // alone is over budget, and it is cut there instead.
    let min_start = cursor_char.saturating_sub(budget.prefix_chars());
    let mut first = text.char_to_line(min_start);
    if text.line_to_char(first) < min_start {
        first += 1;
    }
    let start = if first > line { min_start } else { text.line_to_char(first) };

    let max_end = cursor_char.saturating_add(budget.suffix_chars()).min(text.len_chars());
    let end = if max_end == text.len_chars() {
        max_end
    } else {
        let last = text.char_to_line(max_end);
        if last > line { text.line_to_char(last) } else { line_end.min(max_end) }
    };

    DocContext {
        prefix: text.slice(start..cursor_char).to_string(),
        suffix: text.slice(cursor_char..end).to_string(),
        prefix_start: text.char_to_byte(start),
        line_prefix: text.slice(start.max(line_start)..cursor_char).to_string(),
        line_suffix: text.slice(cursor_char..end.min(line_end)).to_string(),
        cursor: text.char_to_byte(cursor_char),
    }
}

/// Char offset of the end of a line's text, before its line break.
fn line_text_end(text: &Rope, line: usize) -> usize {
    let start = text.line_to_char(line);
    let mut end = text.line_to_char((line + 1).min(text.len_lines()));
    if end > start && text.char(end - 1) == '\n' {
        end -= 1;
    }
    if end > start && text.char(end - 1) == '\r' {
        end -= 1;
    }
    end
}

#[derive(Debug, Clone, PartialEq)]
pub struct SnippetOptions {
    /// At most this many snippets in all (default 3).
    pub max_snippets: usize,
    /// Lines per sliding window (default 20: the default snippet budget of ≈ 1,400 chars holds
    /// one or two such windows of typical code; Cody's 50 would rarely fit).
    pub window_lines: usize,
    /// The last N lines of the prefix are compared (default 20, the window's size, so that both
    /// word sets cover as much code).
    pub target_lines: usize,
    /// Total snippet chars: what is left of the total budget after prefix and suffix (default:
    /// 0.9 − 0.6 − 0.1 of the default budget, ≈ 1,433; see [`SnippetOptions::for_context`]).
    pub max_chars: usize,
    /// Lines read per document (default 10,000, Cody's).
    pub max_lines_per_doc: usize,
    /// Stop scoring when this is spent and return the best so far (default 20 ms).
    pub time_budget: Duration,
}

impl Default for SnippetOptions {
    fn default() -> Self {
        let b = Budget::default();
        SnippetOptions {
            max_snippets: 3,
            window_lines: 20,
            target_lines: 20,
            max_chars: b.total_chars().saturating_sub(b.prefix_chars() + b.suffix_chars()),
            max_lines_per_doc: 10_000,
            time_budget: Duration::from_millis(20),
        }
    }
}

impl SnippetOptions {
    /// The defaults, with `max_chars` set to what `ctx` leaves of the budget's total.
    pub fn for_context(budget: &Budget, ctx: &DocContext) -> SnippetOptions {
        let used = ctx.prefix.chars().count() + ctx.suffix.chars().count();
        SnippetOptions { max_chars: budget.total_chars().saturating_sub(used), ..SnippetOptions::default() }
    }
}

/// An open document of the same language as the one being completed (not that one itself).
#[derive(Debug, Clone)]
pub struct OtherDoc {
    pub path: String,
    pub text: Rope,
}

/// Best windows by Jaccard similarity of word sets, highest first, excluding windows with
/// score 0. Windows of one document never overlap; they are packed greedily within
/// `opts.max_chars` (a window too long for what is left is cut to its first lines that fit).
pub fn snippets(target: &DocContext, others: &[OtherDoc], opts: &SnippetOptions) -> Vec<Snippet> {
    let started = Instant::now();
    let deadline = started.checked_add(opts.time_budget);
    let out_of_time = || deadline.is_none_or(|d| Instant::now() >= d);
    if opts.max_snippets == 0 || opts.max_chars == 0 || opts.window_lines == 0 || out_of_time() {
        return Vec::new();
    }

    let mut words = Words::default();
    let mut target_set = WordCounts::default();
    for line in last_lines(&target.prefix, opts.target_lines) {
        words.clear();
        words.push_line(line.chars());
        for &w in &words.hashes {
            target_set.insert(w, 1);
        }
    }
    if target_set.is_empty() {
        return Vec::new();
    }

    // (score, document, first line, line count)
    let mut candidates: Vec<(f32, usize, usize, usize)> = Vec::new();
    for (index, doc) in others.iter().enumerate() {
        if out_of_time() {
            break;
        }
        let scored = score_windows(doc, &target_set, opts, &out_of_time);
        for (score, first) in best_windows(&scored.scores, scored.window, opts.max_snippets) {
            candidates.push((score, index, first, scored.window));
        }
    }
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));

    let mut left = opts.max_chars;
    let mut out = Vec::new();
    for (_, index, first, lines) in candidates {
        if out.len() >= opts.max_snippets {
            break;
        }
        let Some(doc) = others.get(index) else { continue };
        if let Some(text) = window_text(&doc.text, first, lines, left) {
            left -= text.chars().count();
            out.push(Snippet { path: doc.path.clone(), text });
        }
    }
    out
}

/// A window cut to fewer lines than this is not worth its place.
const MIN_SNIPPET_LINES: usize = 3;

/// The window's text without its final line break, cut to the whole lines that fit in `room`
/// chars; `None` when fewer than [`MIN_SNIPPET_LINES`] (or all of a shorter window) fit.
fn window_text(text: &Rope, first: usize, lines: usize, room: usize) -> Option<String> {
    let end_line = (first + lines).min(text.len_lines());
    let start = text.line_to_char(first);
    let mut take = end_line;
    while take > first {
        let end = trim_line_break(text, text.line_to_char(take.min(text.len_lines())));
        if end - start <= room {
            let s = text.slice(start..end).to_string();
            let enough = take - first >= MIN_SNIPPET_LINES.min(end_line - first);
            return (enough && !s.trim().is_empty()).then_some(s);
        }
        take -= 1;
    }
    None
}

/// `end` moved back over the line break just before it.
fn trim_line_break(text: &Rope, mut end: usize) -> usize {
    if end > 0 && text.char(end - 1) == '\n' {
        end -= 1;
    }
    if end > 0 && text.char(end - 1) == '\r' {
        end -= 1;
    }
    end
}

struct Scored {
    /// Jaccard score of the window starting at each line.
    scores: Vec<f32>,
    window: usize,
}

/// Scores every window of `doc`. Out of time, it scores the lines read so far.
fn score_windows(doc: &OtherDoc, target: &WordCounts, opts: &SnippetOptions, out_of_time: &dyn Fn() -> bool) -> Scored {
    // Each line's words, flattened: line i's hashes are hashes[offsets[i]..offsets[i + 1]].
    let mut words = Words::default();
    let mut offsets = vec![0u32];
    for (i, line) in doc.text.lines().take(opts.max_lines_per_doc).enumerate() {
        if i % 256 == 255 && out_of_time() {
            break;
        }
        words.push_line(line_chars(line));
        offsets.push(u32::try_from(words.hashes.len()).unwrap_or(u32::MAX));
    }
    let n = offsets.len() - 1;
    let window = opts.window_lines.min(n).max(1);
    if n == 0 {
        return Scored { scores: Vec::new(), window };
    }
    let line_words = |i: usize| {
        let (a, b) = (offsets[i] as usize, offsets[i + 1] as usize);
        words.hashes.get(a..b).unwrap_or(&[])
    };

    let mut counts = WordCounts::default();
    let (mut distinct, mut shared) = (0usize, 0usize);
    let add = |hashes: &[u64], counts: &mut WordCounts, distinct: &mut usize, shared: &mut usize| {
        for &h in hashes {
            let c = counts.entry(h).or_insert(0);
            *c += 1;
            if *c == 1 {
                *distinct += 1;
                *shared += usize::from(target.contains_key(&h));
            }
        }
    };
    let remove = |hashes: &[u64], counts: &mut WordCounts, distinct: &mut usize, shared: &mut usize| {
        for &h in hashes {
            if let Some(c) = counts.get_mut(&h) {
                *c -= 1;
                if *c == 0 {
                    counts.remove(&h);
                    *distinct -= 1;
                    *shared -= usize::from(target.contains_key(&h));
                }
            }
        }
    };
    let jaccard = |distinct: usize, shared: usize| {
        let union = target.len() + distinct - shared;
        if union == 0 { 0.0 } else { shared as f32 / union as f32 }
    };

    for i in 0..window {
        add(line_words(i), &mut counts, &mut distinct, &mut shared);
    }
    let mut scores = Vec::with_capacity(n - window + 1);
    scores.push(jaccard(distinct, shared));
    for first in 1..=n - window {
        if first % 1024 == 0 && out_of_time() {
            break;
        }
        remove(line_words(first - 1), &mut counts, &mut distinct, &mut shared);
        add(line_words(first + window - 1), &mut counts, &mut distinct, &mut shared);
        scores.push(jaccard(distinct, shared));
    }
    Scored { scores, window }
}

/// Up to `k` non-overlapping windows with a score above 0, best first (ties to the earlier).
fn best_windows(scores: &[f32], window: usize, k: usize) -> Vec<(f32, usize)> {
    let mut picked: Vec<(f32, usize)> = Vec::new();
    while picked.len() < k {
        let best = scores
            .iter()
            .enumerate()
            .filter(|&(i, &s)| s > 0.0 && picked.iter().all(|&(_, p)| i.abs_diff(p) >= window))
            .fold(None, |best: Option<(f32, usize)>, (i, &s)| match best {
                Some((b, _)) if b >= s => best,
                _ => Some((s, i)),
            });
        match best {
            Some(b) => picked.push(b),
            None => break,
        }
    }
    picked
}

/// The last `n` lines of `s` (line breaks `\n`, `\r\n`, `\r`).
fn last_lines(s: &str, n: usize) -> Vec<&str> {
    let mut lines = Vec::new();
    let bytes = s.as_bytes();
    let mut end = s.len();
    let mut i = s.len();
    while i > 0 && lines.len() < n {
        i -= 1;
        match bytes[i] {
            b'\n' | b'\r' => {
                lines.push(&s[i + 1..end]);
                // `\r\n` is one break.
                if bytes[i] == b'\n' && i > 0 && bytes[i - 1] == b'\r' {
                    i -= 1;
                }
                end = i;
            }
            _ => {}
        }
    }
    if lines.len() < n {
        lines.push(&s[..end]);
    }
    lines
}

fn line_chars(line: RopeSlice<'_>) -> impl Iterator<Item = char> + '_ {
    line.chunks().flat_map(str::chars)
}

/// Word counts keyed by the word's hash (collisions among a few thousand 64-bit hashes are
/// negligible, and hashing avoids a `String` per word).
type WordCounts = HashMap<u64, u32, BuildHasherDefault<Identity>>;

/// The keys are already FNV hashes: hashing them again would only cost time.
#[derive(Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Tokeniser state: identifier-like words (letters, digits, `_`), lowercased, without very short
/// words, numbers and common keywords, as hashes.
#[derive(Default)]
struct Words {
    hashes: Vec<u64>,
    word: String,
}

/// Words shorter than this (`i`, `x`, `if`, `of`) say nothing about a topic.
const MIN_WORD_CHARS: usize = 3;

impl Words {
    fn clear(&mut self) {
        self.hashes.clear();
        self.word.clear();
    }

    fn push_line(&mut self, chars: impl Iterator<Item = char>) {
        for c in chars {
            if c.is_ascii() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    self.word.push(c.to_ascii_lowercase());
                } else if !self.word.is_empty() {
                    self.finish_word();
                }
            } else if c.is_alphanumeric() {
                self.word.extend(c.to_lowercase());
            } else if !self.word.is_empty() {
                self.finish_word();
            }
        }
        if !self.word.is_empty() {
            self.finish_word();
        }
    }

    fn finish_word(&mut self) {
        let w = self.word.as_str();
        let keep = w.chars().nth(MIN_WORD_CHARS - 1).is_some()
            && !w.bytes().all(|b| b.is_ascii_digit() || b == b'_')
            && !is_stop_word(w);
        if keep {
            self.hashes.push(fnv1a(w.as_bytes()));
        }
        self.word.clear();
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Keywords and filler common to the supported languages: they match everywhere, so they would
/// make every window look alike.
fn is_stop_word(w: &str) -> bool {
    matches!(
        w,
        "and"
            | "async"
            | "await"
            | "bool"
            | "break"
            | "case"
            | "catch"
            | "class"
            | "const"
            | "continue"
            | "def"
            | "default"
            | "elif"
            | "else"
            | "end"
            | "enum"
            | "export"
            | "false"
            | "final"
            | "for"
            | "from"
            | "func"
            | "function"
            | "impl"
            | "import"
            | "int"
            | "interface"
            | "let"
            | "local"
            | "mut"
            | "new"
            | "nil"
            | "none"
            | "not"
            | "null"
            | "package"
            | "private"
            | "protected"
            | "pub"
            | "public"
            | "return"
            | "self"
            | "static"
            | "str"
            | "string"
            | "struct"
            | "switch"
            | "the"
            | "then"
            | "this"
            | "throw"
            | "true"
            | "try"
            | "type"
            | "use"
            | "val"
            | "var"
            | "void"
            | "while"
            | "with"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_handles_every_line_break() {
        assert_eq!(last_lines("a\nb\r\nc\rd", 10), ["d", "c", "b", "a"]);
        assert_eq!(last_lines("a\nb\r\nc\rd", 2), ["d", "c"]);
        assert_eq!(last_lines("a\n", 10), ["", "a"]);
        assert_eq!(last_lines("", 3), [""]);
        assert!(last_lines("a", 0).is_empty());
    }

    #[test]
    fn words_are_lowercased_and_filtered() {
        let mut w = Words::default();
        w.push_line("let userName = fetch_user(42, id) + Ünïcode;".chars());
        let expected: Vec<u64> = ["username", "fetch_user", "ünïcode"].iter().map(|s| fnv1a(s.as_bytes())).collect();
        assert_eq!(w.hashes, expected);
    }

    #[test]
    fn best_windows_do_not_overlap() {
        let scores = [0.1, 0.5, 0.4, 0.0, 0.3, 0.2];
        assert_eq!(best_windows(&scores, 2, 3), [(0.5, 1), (0.3, 4)]);
        assert_eq!(best_windows(&scores, 1, 10).len(), 5, "score 0 never wins");
    }
}
