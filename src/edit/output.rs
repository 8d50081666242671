//! Turns a model's answer to an edit request into the replacement text, or refuses it: strips
//! the code fence and the prose around it, and puts back the selection's indentation, line
//! endings and trailing newlines when the model dropped them.

use std::borrow::Cow;

/// A replacement ready to diff against the selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleaned {
    /// The replacement text.
    pub text: String,
    /// Where the text came from in the answer.
    pub source: Source,
    /// The indentation added to every non-blank line, when the model dropped the selection's
    /// common indentation.
    pub reindented: Option<String>,
}

/// Which part of the answer became the replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The whole answer: it had no fence.
    Bare,
    /// The only fenced block (prose around it dropped). `lang` is its info word, if any.
    Fence { lang: Option<String> },
    /// One of `count` fenced blocks: `index` (0-based), picked because its info word names the
    /// selection's language (`by_language`) or else because it is the longest.
    Chosen { index: usize, count: usize, lang: Option<String>, by_language: bool },
}

/// Why an answer cannot replace the selection. `Display` is the message for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the model returned no code; the selection was left unchanged")]
    Empty,
    /// The answer, so the client can still show it (in chat, say).
    #[error("the model answered in prose instead of code; the selection was left unchanged")]
    Prose { answer: String },
}

/// Cleans `answer` for replacing `selection`. `language` is the document's language id (for
/// picking among several fences). Expects a selection of whole lines: its indentation base is
/// the common leading whitespace of its non-blank lines.
pub fn clean(answer: &str, selection: &str, language: Option<&str>) -> Result<Cleaned, Refusal> {
    let fences = fences(answer);
    let (body, source): (Cow<'_, str>, Source) = match fences.len() {
        0 => {
            let bare = strip_stray_fence(answer);
            if looks_like_prose(bare) && !looks_like_prose(selection) {
                return Err(Refusal::Prose { answer: answer.trim().to_owned() });
            }
            (Cow::Borrowed(bare), Source::Bare)
        }
        1 => {
            let f = &fences[0];
            (f.body.clone(), Source::Fence { lang: f.lang.clone() })
        }
        count => {
            let matching = |f: &&Fence<'_>| f.lang.as_deref().is_some_and(|l| language.is_some_and(|id| names(id, l)));
            let by_language = fences.iter().any(|f| matching(&f));
            let pool = fences.iter().enumerate().filter(|(_, f)| !by_language || matching(f));
            // The first of equally long blocks wins: models put the answer before alternatives.
            let best = pool.fold(None::<(usize, &Fence<'_>)>, |best, (i, f)| match best {
                Some((_, b)) if b.body.len() >= f.body.len() => best,
                _ => Some((i, f)),
            });
            let Some((index, f)) = best else { return Err(Refusal::Empty) };
            (f.body.clone(), Source::Chosen { index, count, lang: f.lang.clone(), by_language })
        }
    };
    if body.trim().is_empty() {
        return Err(Refusal::Empty);
    }
    let eol = line_ending(selection);
    let mut text = normalize_eol(body.trim_end_matches([' ', '\t', '\r', '\n']), eol);
    let text_start = text.len() - text.trim_start_matches(['\r', '\n']).len();
    text.drain(..text_start);
    let reindented = reindent(&mut text, selection, eol);
    // The selection's blank lines before and after its code are framing, not code: keep them.
    let lead = &selection[..selection.len() - selection.trim_start_matches(['\r', '\n']).len()];
    let trail = &selection[selection.trim_end_matches(['\r', '\n']).len()..];
    let mut out = String::with_capacity(lead.len() + text.len() + trail.len());
    out.push_str(lead);
    out.push_str(&text);
    out.push_str(trail);
    Ok(Cleaned { text: out, source, reindented })
}

struct Fence<'a> {
    lang: Option<String>,
    body: Cow<'a, str>,
}

/// The fenced code blocks of `answer` (CommonMark rules: 3+ backticks or tildes indented at
/// most 3 spaces, closed by a line of at least as many of the same character). A fence left
/// open runs to the end: an answer cut by the token limit still yields its code.
fn fences(answer: &str) -> Vec<Fence<'_>> {
    let mut out = Vec::new();
    let mut lines = line_spans(answer).peekable();
    while let Some((start, line)) = lines.next() {
        let Some((indent, ch, len, info)) = opening(line) else { continue };
        let body_start = start + line.len();
        let mut body_end = answer.len();
        let mut closed = false;
        for (s, l) in lines.by_ref() {
            if closes(l, ch, len) {
                (body_end, closed) = (s, true);
                break;
            }
        }
        let raw = &answer[body_start..body_end];
        let body = if indent == 0 { Cow::Borrowed(raw) } else { Cow::Owned(dedent_by(raw, indent)) };
        let lang = info.split_whitespace().next().map(|w| w.trim_start_matches('{').trim_start_matches('.').to_owned());
        // An empty fence left open is a stray closing fence after bare code, not a block.
        if closed || !body.trim().is_empty() {
            out.push(Fence { lang: lang.filter(|l| !l.is_empty()), body });
        }
    }
    out
}

/// `(indent, fence char, fence length, info string)` when `line` opens a fence.
fn opening(line: &str) -> Option<(usize, char, usize, &str)> {
    let content = line.trim_end_matches(['\r', '\n']);
    let indent = content.len() - content.trim_start_matches(' ').len();
    if indent > 3 {
        return None;
    }
    let rest = &content[indent..];
    let ch = rest.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let len = rest.len() - rest.trim_start_matches(ch).len();
    let info = rest[len..].trim();
    (len >= 3 && !(ch == '`' && info.contains('`'))).then_some((indent, ch, len, info))
}

fn closes(line: &str, ch: char, len: usize) -> bool {
    let t = line.trim_end_matches(['\r', '\n']);
    let t = t.strip_prefix("   ").or_else(|| t.strip_prefix("  ")).or_else(|| t.strip_prefix(' ')).unwrap_or(t);
    let run = t.len() - t.trim_start_matches(ch).len();
    run >= len && t[run..].trim().is_empty()
}

/// An answer without an opening fence may still end with a closing one (a prefilled or
/// half-followed format); that line is not code.
fn strip_stray_fence(answer: &str) -> &str {
    let t = answer.trim_end();
    match t.rfind('\n') {
        Some(i) if closes(&t[i + 1..], '`', 3) || closes(&t[i + 1..], '~', 3) => &t[..=i],
        None if closes(t, '`', 3) || closes(t, '~', 3) => "",
        _ => answer,
    }
}

/// `(byte offset, line with its ending)` for each line; `\n`, `\r\n` and lone `\r` end lines.
fn line_spans(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= text.len() {
            return None;
        }
        let rest = &text[at..];
        let end = match rest.find(['\n', '\r']) {
            Some(i) if rest[i..].starts_with("\r\n") => i + 2,
            Some(i) => i + 1,
            None => rest.len(),
        };
        let start = at;
        at += end;
        Some((start, &rest[..end]))
    })
}

fn dedent_by(text: &str, n: usize) -> String {
    line_spans(text)
        .map(|(_, l)| {
            let spaces = l.len() - l.trim_start_matches(' ').len();
            &l[spaces.min(n)..]
        })
        .collect()
}

/// Whether a fence's info word names the document's language (`rs` for `rust`, ...).
fn names(language_id: &str, info: &str) -> bool {
    let info = info.to_ascii_lowercase();
    let id = language_id.to_ascii_lowercase();
    if info == id {
        return true;
    }
    let aliases: &[&str] = match id.as_str() {
        "rust" => &["rs"],
        "python" => &["py", "python3"],
        "javascript" | "javascriptreact" => &["js", "jsx", "javascript", "mjs", "cjs"],
        "typescript" | "typescriptreact" | "tsx" => &["ts", "tsx", "typescript"],
        "go" => &["golang"],
        "c" => &["h"],
        "cpp" => &["c++", "cc", "cxx", "hpp"],
        "csharp" => &["cs", "c#"],
        "ruby" => &["rb"],
        "bash" | "shellscript" | "sh" => &["sh", "bash", "shell", "zsh"],
        "kotlin" => &["kt", "kts"],
        "scala" => &["sc"],
        _ => &[],
    };
    aliases.contains(&info.as_str())
}

/// The selection's line ending: its first one, or `\n` when it has none.
fn line_ending(selection: &str) -> &'static str {
    match selection.find(['\n', '\r']) {
        Some(i) if selection[i..].starts_with("\r\n") => "\r\n",
        Some(i) if selection[i..].starts_with('\r') => "\r",
        _ => "\n",
    }
}

fn normalize_eol(text: &str, eol: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (_, line) in line_spans(text) {
        let content = line.trim_end_matches(['\r', '\n']);
        out.push_str(content);
        if content.len() < line.len() {
            out.push_str(eol);
        }
    }
    out
}

/// Common leading whitespace of the non-blank lines.
fn indent_base(text: &str) -> &str {
    let mut base: Option<&str> = None;
    for (_, line) in line_spans(text) {
        let content = line.trim_end_matches(['\r', '\n']);
        if content.trim().is_empty() {
            continue;
        }
        let ws = &content[..content.len() - content.trim_start_matches([' ', '\t']).len()];
        base = Some(match base {
            None => ws,
            Some(b) => {
                let common = b.bytes().zip(ws.bytes()).take_while(|(x, y)| x == y).count();
                &b[..common]
            }
        });
    }
    base.unwrap_or("")
}

/// Puts back the selection's indentation base when the answer lacks it (models often dedent a
/// snippet): the missing part is added, or a base of other characters (spaces for tabs) is
/// replaced. An answer that already starts with the selection's base is left alone. Returns
/// the indentation written.
fn reindent(text: &mut String, selection: &str, eol: &str) -> Option<String> {
    let want = indent_base(selection);
    let have = indent_base(text);
    if have.starts_with(want) {
        return None;
    }
    // Tabs against spaces: replace the answer's base outright; otherwise add what is missing.
    let (strip, add) = match want.strip_prefix(have) {
        Some(missing) => (0, missing),
        None => (have.len(), want),
    };
    let mut out = String::with_capacity(text.len() + add.len() * 64);
    for (_, line) in line_spans(text) {
        let content = line.trim_end_matches(['\r', '\n']);
        if !content.trim().is_empty() {
            out.push_str(add);
            out.push_str(&content[strip..]);
        }
        if content.len() < line.len() {
            out.push_str(eol);
        }
    }
    *text = out;
    Some(add.to_owned())
}

/// Whether `text` reads as sentences rather than code: most non-blank lines are sentence-like
/// and none is clearly code. Inline `code` spans are ignored, since prose about code quotes it.
fn looks_like_prose(text: &str) -> bool {
    let (mut prose, mut total) = (0usize, 0usize);
    for (_, line) in line_spans(text) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        total += 1;
        if is_sentence(line) {
            prose += 1;
        }
    }
    prose > 0 && prose * 10 >= total * 7
}

fn is_sentence(line: &str) -> bool {
    const COMMENT: &[&str] = &["//", "#", "--", "/*", "*", ";", "<!--", "'''", "\"\"\""];
    if COMMENT.iter().any(|c| line.starts_with(c)) && !line.starts_with("**") {
        return false;
    }
    // Drop `inline code` spans, then look at what is left.
    let mut plain = String::with_capacity(line.len());
    for (i, part) in line.split('`').enumerate() {
        if i % 2 == 0 {
            plain.push_str(part);
            plain.push(' ');
        }
    }
    if plain.contains(['{', '}', ';', '=', '(', ')', '[', ']', '<', '>']) {
        return false;
    }
    let rest = plain.trim().trim_start_matches(['-', '*', ' ']).trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.trim_start_matches(['.', ')', ' ']);
    let words: Vec<&str> = rest.split_whitespace().collect();
    let wordy = words
        .iter()
        .filter(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).chars().all(char::is_alphabetic))
        .count();
    let capital = rest.chars().next().is_some_and(char::is_uppercase);
    words.len() >= 3 && wordy * 10 >= words.len() * 8 && (capital || rest.ends_with(['.', '!', '?']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indent_base_is_the_common_prefix() {
        assert_eq!(indent_base("    a\n\n      b\n"), "    ");
        assert_eq!(indent_base("\tx\n  y\n"), "");
        assert_eq!(indent_base(""), "");
    }

    #[test]
    fn sentences_and_code() {
        assert!(is_sentence("Here is the updated function:"));
        assert!(is_sentence("I renamed `foo()` to `bar` and added a check."));
        assert!(!is_sentence("let x = foo(1);"));
        assert!(!is_sentence("return value"));
        assert!(!is_sentence("// This is a comment about things."));
        assert!(!is_sentence("for item in items:"));
    }
}
