//! What the model sees: the prefix and suffix within a token budget, and snippets from other open
//! documents of the same language. Pure.
// TEMP STUB
use super::Snapshot;
use crate::provider::Snippet;
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub context_tokens: usize,
    pub chars_per_token: f32,
    pub prefix_share: f32,
    pub suffix_share: f32,
}
impl Default for Budget {
    fn default() -> Self {
        Budget { context_tokens: 2048, chars_per_token: 3.5, prefix_share: 0.6, suffix_share: 0.1 }
    }
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocContext {
    pub prefix: String,
    pub suffix: String,
    pub prefix_start: usize,
    pub line_prefix: String,
    pub line_suffix: String,
    pub cursor: usize,
}
pub fn doc_context(snap: &Snapshot, byte: usize, _b: &Budget) -> DocContext {
    let t = &snap.text;
    let s = byte.saturating_sub(4000);
    let s = t.char_to_byte(t.byte_to_char(s));
    let e = t.char_to_byte(t.byte_to_char((byte + 700).min(t.len_bytes())));
    let line = t.byte_to_line(byte);
    let ls = t.line_to_byte(line);
    let le = t.line_to_byte((line + 1).min(t.len_lines()));
    let ln = t.byte_slice(ls..le).to_string();
    let (lp, lsuf) = ln.split_at(byte - ls);
    DocContext {
        prefix: t.byte_slice(s..byte).to_string(),
        suffix: t.byte_slice(byte..e).to_string(),
        prefix_start: s,
        line_prefix: lp.to_owned(),
        line_suffix: lsuf.trim_end_matches(['\n', '\r']).to_owned(),
        cursor: byte,
    }
}
#[derive(Debug, Clone, PartialEq)]
pub struct SnippetOptions {
    pub max_snippets: usize,
    pub window_lines: usize,
    pub target_lines: usize,
    pub max_chars: usize,
    pub max_lines_per_doc: usize,
    pub time_budget: std::time::Duration,
}
impl Default for SnippetOptions {
    fn default() -> Self {
        SnippetOptions {
            max_snippets: 3,
            window_lines: 20,
            target_lines: 50,
            max_chars: 1400,
            max_lines_per_doc: 10000,
            time_budget: std::time::Duration::from_millis(20),
        }
    }
}
#[derive(Debug, Clone)]
pub struct OtherDoc {
    pub path: String,
    pub text: ropey::Rope,
}
pub fn snippets(_t: &DocContext, _o: &[OtherDoc], _opts: &SnippetOptions) -> Vec<Snippet> {
    Vec::new()
}
