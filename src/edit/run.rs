//! The edit engine shared by the LSP (`quill.edit`, `quill/edit`, `codeAction/resolve`) and the
//! CLI (`quill edit`): which lines an edit rewrites, the request, the streamed answer, and its
//! reduction to line edits. No LSP types, no disk: callers check versions and apply.

use std::ops::Range;

use ropey::Rope;
use tree_sitter::{QueryCursor, StreamingIterator, Tree};

use super::{EditDiagnostic, EditInput, Intent, LineEdit, Refusal, clean, edit_prompt, line_edits};
use crate::{
    config::{EditConfig, Feature},
    provider::{ChatRequest, Event, Provider, ProviderError, StopReason},
    syntax::{Language, QueryKind, query},
};

impl Intent {
    /// The name used on the wire and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Intent::Edit => "edit",
            Intent::Document => "document",
            Intent::Tests => "tests",
            Intent::Fix => "fix",
            Intent::Explain => "explain",
        }
    }

    /// Parses an intent an edit can run (`explain` answers in chat, not through an edit).
    pub fn parse_edit(s: &str) -> Result<Intent, String> {
        match s {
            "edit" => Ok(Intent::Edit),
            "document" => Ok(Intent::Document),
            "tests" => Ok(Intent::Tests),
            "fix" => Ok(Intent::Fix),
            "explain" => Err("intent `explain` answers in chat: run the `quill.explain` command instead".into()),
            other => Err(format!("unknown intent `{other}` (expected edit, document, tests or fix)")),
        }
    }

    /// The progress title while the edit streams.
    pub fn progress_title(self) -> &'static str {
        match self {
            Intent::Edit => "Quill: Editing…",
            Intent::Document => "Quill: Document…",
            Intent::Tests => "Quill: Generating tests…",
            Intent::Fix => "Quill: Fixing…",
            Intent::Explain => "Quill: Explaining…",
        }
    }
}

/// Why an edit produced nothing to apply. `Display` is the message for the user.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    /// The provider failed (before or during the stream): its user-facing text.
    #[error("{0}")]
    Provider(ProviderError),
    /// The answer cannot replace the selection.
    #[error("{0}")]
    Refused(Refusal),
    /// The answer hit the token limit: applying a cut-off rewrite would delete the rest of the
    /// selection.
    #[error(
        "the answer was cut off at the token limit ([edit] max_tokens = {0}); nothing was applied. Select less code \
         or raise max_tokens"
    )]
    Truncated(u32),
    /// The vendor's filter stopped the answer.
    #[error("the provider's content filter stopped the answer; nothing was applied")]
    Filtered,
}

/// Byte range of the whole lines that `range` touches: from the start of its first line to the
/// end (line break included) of its last. A range that ends right at a line start does not take
/// that line. An empty range takes the line it is on.
pub fn whole_lines(text: &Rope, range: Range<usize>) -> Range<usize> {
    let len = text.len_bytes();
    let (start, end) = (range.start.min(len), range.end.min(len).max(range.start.min(len)));
    let first = text.byte_to_line(start);
    let mut last = text.byte_to_line(end);
    if end > start && text.line_to_byte(last) == end {
        last -= 1;
    }
    let stop = if last + 1 >= text.len_lines() { len } else { text.line_to_byte(last + 1) };
    text.line_to_byte(first)..stop
}

/// What an edit rewrites for a request `range` (bytes): a non-empty range grows to whole
/// lines; an empty one (a cursor) takes the innermost function or class around it (from the
/// language's `definitions.scm`), else its line.
pub fn selection(text: &Rope, tree: Option<&Tree>, lang: Option<Language>, range: Range<usize>) -> Range<usize> {
    if range.start < range.end {
        return whole_lines(text, range);
    }
    match (tree, lang) {
        (Some(tree), Some(lang)) => match enclosing_definition(text, tree, lang, range.start) {
            Some(def) => whole_lines(text, def),
            None => whole_lines(text, range),
        },
        _ => whole_lines(text, range),
    }
}

/// The smallest `@definition.function` / `@definition.class` node containing `at`.
fn enclosing_definition(text: &Rope, tree: &Tree, lang: Language, at: usize) -> Option<Range<usize>> {
    let query = query(lang, QueryKind::Definitions)?;
    let names = query.capture_names();
    let mut cursor = QueryCursor::new();
    cursor.set_byte_range(at..at.saturating_add(1).min(text.len_bytes()).max(at));
    let chunks = |node: tree_sitter::Node<'_>| {
        text.byte_slice(node.byte_range()).chunks().map(str::as_bytes).collect::<Vec<_>>().into_iter()
    };
    let mut matches = cursor.matches(query, tree.root_node(), chunks);
    let mut best: Option<Range<usize>> = None;
    while let Some(m) = matches.next() {
        for c in m.captures() {
            let name = names.get(c.index as usize).copied();
            if !matches!(name, Some("definition.function" | "definition.class")) {
                continue;
            }
            let r = c.node.byte_range();
            // At the very end of a definition (after its closing brace) still counts as inside.
            if r.start <= at && at <= r.end && best.as_ref().is_none_or(|b| r.len() < b.len()) {
                best = Some(r);
            }
        }
    }
    best
}

/// Everything a prompt is built from, owned so it can move into a spawned task.
#[derive(Debug, Clone)]
pub struct Job {
    /// The path shown to the model (workspace-relative when known).
    pub path: String,
    pub language_id: String,
    pub text: Rope,
    /// Bytes of whole lines, from [`selection`].
    pub selection: Range<usize>,
    pub instruction: String,
    pub intent: Intent,
    pub diagnostics: Vec<EditDiagnostic>,
}

impl Job {
    /// The chat request, with `[edit]`'s budget and temperature.
    pub fn request(&self, config: &EditConfig) -> ChatRequest {
        let input = EditInput {
            path: &self.path,
            language_id: &self.language_id,
            text: &self.text,
            selection: self.selection.clone(),
            instruction: &self.instruction,
            intent: self.intent,
            diagnostics: &self.diagnostics,
        };
        let mut req = edit_prompt(&input);
        req.max_tokens = config.max_tokens;
        req.temperature = config.temperature;
        req
    }

    /// The selected text.
    pub fn selected(&self) -> String {
        self.text.byte_slice(self.selection.clone()).to_string()
    }

    /// Cleans `answer` into line edits of the document (byte ranges of [`Job::text`]). Empty
    /// when the model returned the selection unchanged.
    pub fn rewrite(&self, answer: &str) -> Result<Vec<LineEdit>, RunError> {
        let selected = self.selected();
        let cleaned = clean(answer, &selected, Some(&self.language_id)).map_err(RunError::Refused)?;
        let at = self.selection.start;
        Ok(line_edits(&selected, &cleaned.text)
            .into_iter()
            .map(|e| LineEdit { old: e.old.start + at..e.old.end + at, new_text: e.new_text })
            .collect())
    }
}

/// The test code in `answer`, as text to write into a test file whose line ending is `eol`:
/// no leading blank lines, ending with one line ending.
pub fn tests_text(answer: &str, eol: &str, language_id: &str) -> Result<String, RunError> {
    // An empty "selection" of one line break: no indentation to restore, the file's line ending.
    let cleaned = clean(answer, eol, Some(language_id)).map_err(RunError::Refused)?;
    let body = cleaned.text.trim_start_matches(['\r', '\n']).trim_end_matches(['\r', '\n']);
    Ok(format!("{body}{eol}"))
}

/// The first line ending of `text`, or `\n`.
pub fn line_ending(text: &str) -> &'static str {
    match text.find(['\n', '\r']) {
        Some(i) if text[i..].starts_with("\r\n") => "\r\n",
        Some(i) if text[i..].starts_with('\r') => "\r",
        _ => "\n",
    }
}

/// What to insert at the end of `existing` so `tests` follow it after one blank line.
pub fn appended(existing: &str, tests: &str, eol: &str) -> String {
    if existing.trim().is_empty() {
        return tests.to_owned();
    }
    let mut out = String::new();
    if !existing.ends_with(['\n', '\r']) {
        out.push_str(eol);
    }
    if !existing.trim_end_matches([' ', '\t']).ends_with(&format!("{eol}{eol}")) {
        out.push_str(eol);
    }
    out.push_str(tests);
    out
}

/// Streams the answer to `req` from `provider`, calling `progress` with the number of lines
/// received so far each time it grows. Dropping the future closes the provider's stream.
pub async fn stream(
    provider: &Provider,
    req: &ChatRequest,
    mut progress: impl FnMut(usize),
) -> Result<String, RunError> {
    let mut stream = provider.chat(req, Feature::Edit).await.map_err(RunError::Provider)?;
    let mut answer = String::new();
    let mut lines = 0;
    while let Some(event) = stream.next().await {
        match event.map_err(RunError::Provider)? {
            Event::Delta(d) => {
                answer.push_str(&d);
                let now = answer.matches('\n').count();
                if now != lines {
                    lines = now;
                    progress(lines);
                }
            }
            Event::Done(finish) => match finish.stop_reason {
                StopReason::MaxTokens => return Err(RunError::Truncated(req.max_tokens)),
                StopReason::ContentFilter => return Err(RunError::Filtered),
                _ => break,
            },
        }
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(text: &str, r: Range<usize>) -> String {
        let rope = Rope::from_str(text);
        let w = whole_lines(&rope, r);
        text[w].to_owned()
    }

    #[test]
    fn partial_selections_grow_to_whole_lines() {
        let t = "ab\ncd\nef\n";
        assert_eq!(lines_of(t, 1..4), "ab\ncd\n");
        assert_eq!(lines_of(t, 3..6), "cd\n", "ending at a line start leaves that line out");
        assert_eq!(lines_of(t, 4..4), "cd\n", "a cursor takes its line");
        assert_eq!(lines_of(t, 9..9), "", "the empty last line");
        assert_eq!(lines_of("ab\ncd", 4..5), "cd", "no final line break");
        assert_eq!(lines_of("a\r\nb\r\n", 0..1), "a\r\n");
        assert_eq!(lines_of(t, 7..100), "ef\n", "clamped to the text");
    }

    #[test]
    fn appended_tests_follow_one_blank_line() {
        assert_eq!(appended("x\n", "t\n", "\n"), "\nt\n");
        assert_eq!(appended("x", "t\n", "\n"), "\n\nt\n");
        assert_eq!(appended("x\n\n", "t\n", "\n"), "t\n");
        assert_eq!(appended("", "t\n", "\n"), "t\n");
        assert_eq!(appended("x\r\n", "t\r\n", "\r\n"), "\r\nt\r\n");
    }

    #[test]
    fn intents_parse() {
        assert_eq!(Intent::parse_edit("document"), Ok(Intent::Document));
        assert!(Intent::parse_edit("explain").expect_err("refused").contains("quill.explain"));
        assert!(Intent::parse_edit("rename").expect_err("refused").contains("unknown intent `rename`"));
    }
}
