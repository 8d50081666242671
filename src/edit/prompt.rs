//! The chat request for an edit: the selection, the code around it, the file path, the
//! diagnostics in range, and a system message per intent that asks for the replacement code in
//! one fenced block (or, for Explain, a prose answer).

use std::fmt::Write as _;
use std::ops::Range;

use ropey::Rope;

use crate::provider::{ChatRequest, Message, Role};

/// Lines of code shown before and after the selection (Cody: 50 either side).
pub const CONTEXT_LINES: usize = 50;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Intent {
    /// Rewrite the selection as the instruction says.
    Edit,
    /// The selection with doc comments added.
    Document,
    /// Tests for the selection.
    Tests,
    /// Fix the diagnostics in range.
    Fix,
    /// A prose explanation, answered in chat.
    Explain,
}

impl Intent {
    /// Whether the answer replaces code (and so goes through [`super::output::clean`]).
    pub fn rewrites(self) -> bool {
        self != Intent::Explain
    }
}

/// An LSP diagnostic severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    Error,
    Warning,
    Information,
    Hint,
}

impl Severity {
    fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "info",
            Severity::Hint => "hint",
        }
    }
}

/// A diagnostic inside the selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditDiagnostic {
    pub message: String,
    pub severity: Severity,
    /// 0-based line in the document.
    pub line: usize,
}

/// Everything the prompt is built from.
#[derive(Debug, Clone)]
pub struct EditInput<'a> {
    /// The document's path for the model (workspace-relative when known).
    pub path: &'a str,
    /// The LSP language id (`rust`, `python`, ...).
    pub language_id: &'a str,
    pub text: &'a Rope,
    /// Byte range of the selection; clamped to the document and to char boundaries.
    pub selection: Range<usize>,
    /// The user's words; may be empty for Document, Tests, Fix and Explain.
    pub instruction: &'a str,
    pub intent: Intent,
    pub diagnostics: &'a [EditDiagnostic],
}

/// Default answer budget; the caller may override it from configuration.
pub const MAX_TOKENS: u32 = 4096;

/// Builds the chat request. Reads only the selection and [`CONTEXT_LINES`] lines either side.
pub fn edit_prompt(input: &EditInput<'_>) -> ChatRequest {
    let text = input.text;
    let sel = clamp(text, &input.selection);
    let first_line = text.byte_to_line(sel.start);
    // A selection ending right after a line break ends on the line before.
    let last_line =
        if sel.end > sel.start && text.byte_to_char(sel.end) == text.line_to_char(text.byte_to_line(sel.end)) {
            text.byte_to_line(sel.end).saturating_sub(1)
        } else {
            text.byte_to_line(sel.end)
        };
    let before_start = text.line_to_byte(first_line.saturating_sub(CONTEXT_LINES));
    let after_end = text.line_to_byte((last_line + 1 + CONTEXT_LINES).min(text.len_lines()));
    let before = text.byte_slice(before_start..sel.start).to_string();
    let selected = text.byte_slice(sel.clone()).to_string();
    let after = text.byte_slice(sel.end..after_end.max(sel.end)).to_string();

    let lang = input.language_id;
    let mut user = String::new();
    let _ = writeln!(user, "File: {} ({lang})", input.path);
    if input.intent != Intent::Tests {
        section(&mut user, "Code before the selection (context only: do not repeat it)", lang, &before);
    }
    let title = format!("The selected code, lines {}-{}", first_line + 1, last_line + 1);
    section(&mut user, &title, lang, &selected);
    if input.intent != Intent::Tests {
        section(&mut user, "Code after the selection (context only: do not repeat it)", lang, &after);
    }
    if !input.diagnostics.is_empty() {
        user.push_str("\nDiagnostics in the selection:\n");
        for d in input.diagnostics {
            let _ = writeln!(user, "- line {}: {}: {}", d.line + 1, d.severity.name(), d.message.trim());
        }
    }
    let instruction = input.instruction.trim();
    let task = match (input.intent, instruction.is_empty()) {
        (_, false) => instruction.to_owned(),
        (Intent::Edit, true) => "Improve the selected code.".to_owned(),
        (Intent::Document, true) => "Add documentation comments to the selected code.".to_owned(),
        (Intent::Tests, true) => "Write tests for the selected code.".to_owned(),
        (Intent::Fix, true) => "Fix the diagnostics listed above.".to_owned(),
        (Intent::Explain, true) => "Explain what the selected code does.".to_owned(),
    };
    let _ = write!(user, "\nInstruction: {task}\n");

    ChatRequest {
        messages: vec![Message::new(Role::System, system(input.intent, lang)), Message::new(Role::User, user)],
        prefill: None,
        stop: Vec::new(),
        max_tokens: MAX_TOKENS,
        temperature: if input.intent == Intent::Explain { 0.3 } else { 0.1 },
    }
}

/// Snaps a byte range into the document and onto char boundaries (start ≤ end).
fn clamp(text: &Rope, r: &Range<usize>) -> Range<usize> {
    let len = text.len_bytes();
    let snap = |b: usize| text.char_to_byte(text.byte_to_char(b.min(len)));
    let start = snap(r.start);
    start..snap(r.end).max(start)
}

/// Appends a titled code block; the fence is longer than any backtick run inside, so code that
/// holds fences (Markdown, docs) cannot end it early.
fn section(out: &mut String, title: &str, lang: &str, code: &str) {
    let longest = code.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let _ = write!(out, "\n{title}:\n{fence}{lang}\n{code}");
    if !code.is_empty() && !code.ends_with(['\n', '\r']) {
        out.push('\n');
    }
    let _ = writeln!(out, "{fence}");
}

fn system(intent: Intent, lang: &str) -> String {
    const ROLE: &str = "You are a coding assistant working inside the user's editor.";
    const REPLY: &str = "Answer with only the replacement for the selected code, in one fenced code block, with no \
                         explanation before or after it. Rewrite only the selected code, never the context around it, and \
                         keep its indentation.";
    match intent {
        Intent::Edit => format!("{ROLE} Rewrite the selected {lang} code as the instruction asks. {REPLY}"),
        Intent::Fix => format!(
            "{ROLE} Fix the listed diagnostics in the selected {lang} code, changing as little as possible. {REPLY}"
        ),
        Intent::Document => format!(
            "{ROLE} Add documentation comments to the selected {lang} code, in {}. Do not change the code itself. {REPLY}",
            doc_style(lang)
        ),
        Intent::Tests => format!(
            "{ROLE} Write tests for the selected {lang} code: {}. Cover normal cases, edge cases and errors. Answer \
             with only the test code, in one fenced code block, with no explanation before or after it.",
            test_style(lang)
        ),
        Intent::Explain => format!(
            "{ROLE} Explain the selected {lang} code to the user: what it does, how, and anything surprising. Answer \
             in concise prose (Markdown allowed); do not rewrite the code."
        ),
    }
}

/// The doc-comment convention the model should follow, per language.
fn doc_style(lang: &str) -> &'static str {
    match lang {
        "rust" => "`///` doc comments before each item (Markdown inside)",
        "python" => "docstrings as the first statement of each function and class (PEP 257)",
        "javascript" | "javascriptreact" | "typescript" | "typescriptreact" | "tsx" => "JSDoc `/** ... */` comments",
        "java" => "Javadoc `/** ... */` comments with @param and @return",
        "kotlin" => "KDoc `/** ... */` comments",
        "scala" => "Scaladoc `/** ... */` comments",
        "php" => "PHPDoc `/** ... */` comments",
        "go" => "`//` comments that start with the name they describe",
        "c" | "cpp" => "Doxygen `/** ... */` comments",
        "csharp" => "`///` XML doc comments (<summary>, <param>, <returns>)",
        "swift" => "`///` doc comments (Markdown, `- Parameter`, `- Returns`)",
        "ruby" => "YARD `#` comments",
        "lua" => "`---` LuaLS annotation comments",
        "bash" | "shellscript" | "sh" => "`#` comments above each function",
        _ => "the language's usual documentation comments",
    }
}

/// Where tests go and what framework they use, per language.
fn test_style(lang: &str) -> &'static str {
    match lang {
        "rust" => "a `#[cfg(test)] mod tests { use super::*; ... }` module of `#[test]` functions",
        "python" => "a pytest module of `test_` functions that imports the code under test",
        "javascript" | "javascriptreact" | "typescript" | "typescriptreact" | "tsx" => {
            "a test file in the framework the project uses (describe/it/expect)"
        }
        "go" => "a `_test.go` file in the same package using the `testing` package",
        "java" | "kotlin" => "a JUnit 5 test class",
        "csharp" => "an xUnit test class",
        _ => "a test file in the language's usual test framework",
    }
}
