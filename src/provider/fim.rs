//! FIM (fill-in-the-middle) prompts per model family, the filter that ends an answer at a leaked
//! stop token, and the chat prompt + filter that let chat-only models autocomplete.
//!
//! # Families
//!
//! `{P}` is the text before the cursor, `{S}` the text after it, `{path}` the document's path,
//! `{repo}` the repository name (only when the caller knows it, see [`Template::render_in_repo`]).
//! Templates are literal strings: each special token must reach the server as written, where the
//! tokenizer (special-token parsing on) turns it into one vocabulary id.
//!
//! | Family (`fim_template`) | Prompt | Stop tokens |
//! |---|---|---|
//! | `starcoder` (StarCoder, StarCoderBase, StarChat, OctoCoder) | `<fim_prefix>{P}<fim_suffix>{S}<fim_middle>`; with a known path led by `<filename>{path}\n` | `<\|endoftext\|>` `<fim_prefix>` `<fim_suffix>` `<fim_middle>` `<file_sep>` |
//! | `santacoder` | `<fim-prefix>{P}<fim-suffix>{S}<fim-middle>` (hyphens, unlike StarCoder) | `<\|endoftext\|>` `<fim-prefix>` `<fim-suffix>` `<fim-middle>` `<fim-pad>` |
//! | `codeqwen` (CodeQwen1.5) | `<fim_prefix>{P}<fim_suffix>{S}<fim_middle>` | `<\|endoftext\|>` |
//! | `starcoder2` | `<fim_prefix>{P}<fim_suffix>{S}<fim_middle>`; with snippets and a path, repo-level (StarCoder2 paper §5.1): `[<repo_name>{repo}]<file_sep>{path0}\n{code0}…<file_sep><fim_prefix>{path}\n{P}<fim_suffix>{S}<fim_middle>` | `<\|endoftext\|>` `<file_sep>` `<fim_prefix>` `<fim_suffix>` `<fim_middle>` |
//! | `deepseek` (DeepSeek-Coder v1) | `<｜fim▁begin｜>{P}<｜fim▁hole｜>{S}<｜fim▁end｜>` | `<｜end▁of▁sentence｜>` `<｜fim▁begin｜>` `<｜fim▁hole｜>` `<｜fim▁end｜>` `<\|EOT\|>` |
//! | `deepseek-v2` (DeepSeek-Coder-V2, DeepSeek-V2/V3) | same as `deepseek` | `<｜end▁of▁sentence｜>` `<｜fim▁begin｜>` `<｜fim▁hole｜>` `<｜fim▁end｜>` |
//! | `codellama` | `<PRE> {P} <SUF>{S} <MID>` (the spaces are part of the format) | `<EOT>` `<PRE>` `<SUF>` `<MID>` |
//! | `qwen` (Qwen2.5-Coder, Qwen3-Coder) | `<\|fim_prefix\|>{P}<\|fim_suffix\|>{S}<\|fim_middle\|>`; with snippets and a path, repo-level: `[<\|repo_name\|>{repo}\n]<\|file_sep\|>{path0}\n{code0}\n…<\|file_sep\|>{path}\n<\|fim_prefix\|>{P}<\|fim_suffix\|>{S}<\|fim_middle\|>` | `<\|endoftext\|>` `<\|fim_prefix\|>` `<\|fim_suffix\|>` `<\|fim_middle\|>` `<\|fim_pad\|>` `<\|repo_name\|>` `<\|file_sep\|>` `<\|im_start\|>` `<\|im_end\|>` |
//! | `codestral` | `[SUFFIX]{S}[PREFIX]{P}` (suffix first; no literal `<s>`) | `</s>` `[PREFIX]` `[SUFFIX]` |
//! | `codegemma` | `<\|fim_prefix\|>{P}<\|fim_suffix\|>{S}<\|fim_middle\|>`; with snippets and a path: `<\|file_separator\|>{path0}\n{code0}` (newline-terminated) `…<\|file_separator\|>{path}\n` then the FIM prompt | `<\|file_separator\|>` `<eos>` `<end_of_turn>` `<\|fim_prefix\|>` `<\|fim_suffix\|>` `<\|fim_middle\|>` |
//! | custom `{ template, stop }` | the template with `{prefix}` (required), `{suffix}` and `{path}` substituted in one pass; any other `{…}` stays literal | `stop` |
//!
//! DeepSeek's `｜` is U+FF5C and `▁` is U+2581; ASCII look-alikes would tokenize as plain text.
//! Each family's stop list starts with its end-of-text token, so a server that caps the number of
//! stop sequences keeps the most important ones when it truncates.
//!
//! Snippets (context from other files) are rendered only by families with a multi-file format
//! (`starcoder2`, `qwen`, `codegemma`), and only when the current file's path is known, because
//! those formats name the current file. Nothing is truncated here: budgeting context is the caller's job.
//!
//! # Detection
//!
//! Without a `fim_template` override the family comes from the model name: the last `/`-separated
//! segment (so `accounts/fireworks/models/…`, `bigcode/…` and `TheBloke/…` all work), lower-cased,
//! with `_` and spaces read as `-`, is matched against these substrings, first match wins:
//!
//! 1. `starcoder2` / `starcoder-2` → `starcoder2`
//! 2. `santacoder` → `santacoder`
//! 3. `codeqwen` → `codeqwen`
//! 4. `starcoder`, `star-coder`, `starchat`, `octocoder` → `starcoder`
//! 5. `deepseek-coder-v2`, `deepseek-v2`, `deepseek-v3` → `deepseek-v2`
//! 6. `deepseek-coder`, `deepseekcoder` → `deepseek`
//! 7. `codellama`, `code-llama` → `codellama`
//! 8. `qwen` together with `coder` → `qwen`
//! 9. `codestral` → `codestral`
//! 10. `codegemma` → `codegemma`
//!
//! Anything else has no template. Instruct and chat variants map to their family too: whether a
//! model is used through a FIM template or through the chat prompt is the completion mode's call.
//!
//! # Chat models
//!
//! [`chat_prompt`] asks a chat model to answer with the code at a `<cursor/>` marker inside
//! `<fill>…</fill>`; [`chat_filter`] pulls that code out of the streamed answer.

use crate::config::FimTemplateConfig;

use super::{
    http::DeltaFilter,
    types::{ChatRequest, CompletionRequest, Message, Role},
};

/// A model family with a known FIM format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    StarCoder,
    SantaCoder,
    CodeQwen,
    StarCoder2,
    DeepSeek,
    DeepSeekV2,
    CodeLlama,
    Qwen,
    Codestral,
    CodeGemma,
}

const ALL_FAMILIES: [Family; 10] = [
    Family::StarCoder,
    Family::StarCoder2,
    Family::SantaCoder,
    Family::CodeQwen,
    Family::DeepSeek,
    Family::DeepSeekV2,
    Family::CodeLlama,
    Family::Qwen,
    Family::Codestral,
    Family::CodeGemma,
];

const DS_BEGIN: &str = "<｜fim▁begin｜>";
const DS_HOLE: &str = "<｜fim▁hole｜>";
const DS_END: &str = "<｜fim▁end｜>";
const DS_EOS: &str = "<｜end▁of▁sentence｜>";

impl Family {
    /// The family of a model, from its name (see the module docs for the rules).
    pub fn detect(model: &str) -> Option<Family> {
        let last = model.trim().rsplit('/').next().unwrap_or_default();
        let m: String =
            last.chars().flat_map(char::to_lowercase).map(|c| if c == '_' || c == ' ' { '-' } else { c }).collect();
        let has = |s: &str| m.contains(s);
        // Order matters: every earlier name contains or resembles a later one.
        if has("starcoder2") || has("starcoder-2") {
            Some(Family::StarCoder2)
        } else if has("santacoder") {
            Some(Family::SantaCoder)
        } else if has("codeqwen") {
            Some(Family::CodeQwen)
        } else if has("starcoder") || has("star-coder") || has("starchat") || has("octocoder") {
            Some(Family::StarCoder)
        } else if has("deepseek-coder-v2") || has("deepseek-v2") || has("deepseek-v3") {
            Some(Family::DeepSeekV2)
        } else if has("deepseek-coder") || has("deepseekcoder") {
            Some(Family::DeepSeek)
        } else if has("codellama") || has("code-llama") {
            Some(Family::CodeLlama)
        } else if has("qwen") && has("coder") {
            Some(Family::Qwen)
        } else if has("codestral") {
            Some(Family::Codestral)
        } else if has("codegemma") {
            Some(Family::CodeGemma)
        } else {
            None
        }
    }

    /// A family from its `fim_template` name or an obvious alias.
    pub fn from_name(name: &str) -> Option<Family> {
        let n = name.trim().to_lowercase().replace('_', "-");
        Some(match n.as_str() {
            "starcoder" | "starcoder1" | "starcoderbase" | "star-coder" => Family::StarCoder,
            "starcoder2" | "starcoder-2" => Family::StarCoder2,
            "santacoder" => Family::SantaCoder,
            "codeqwen" | "codeqwen1.5" | "code-qwen" => Family::CodeQwen,
            "deepseek" | "deepseek-coder" | "deepseek-v1" | "deepseek-coder-v1" => Family::DeepSeek,
            "deepseek-v2" | "deepseek-coder-v2" | "deepseek-v3" => Family::DeepSeekV2,
            "codellama" | "code-llama" => Family::CodeLlama,
            "qwen" | "qwen-coder" | "qwen2.5-coder" | "qwen2.5" | "qwen3-coder" => Family::Qwen,
            "codestral" | "mistral" => Family::Codestral,
            "codegemma" | "gemma" => Family::CodeGemma,
            _ => return None,
        })
    }

    /// The canonical `fim_template` name.
    pub fn name(self) -> &'static str {
        match self {
            Family::StarCoder => "starcoder",
            Family::SantaCoder => "santacoder",
            Family::CodeQwen => "codeqwen",
            Family::StarCoder2 => "starcoder2",
            Family::DeepSeek => "deepseek",
            Family::DeepSeekV2 => "deepseek-v2",
            Family::CodeLlama => "codellama",
            Family::Qwen => "qwen",
            Family::Codestral => "codestral",
            Family::CodeGemma => "codegemma",
        }
    }

    /// End tokens, most important (end of text) first.
    fn stop_tokens(self) -> &'static [&'static str] {
        match self {
            Family::StarCoder => &["<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>"],
            Family::SantaCoder => &["<|endoftext|>", "<fim-prefix>", "<fim-suffix>", "<fim-middle>", "<fim-pad>"],
            Family::CodeQwen => &["<|endoftext|>"],
            Family::StarCoder2 => &["<|endoftext|>", "<file_sep>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"],
            // Instruct variants share the family and end their turns with `<|EOT|>`.
            Family::DeepSeek => &[DS_EOS, DS_BEGIN, DS_HOLE, DS_END, "<|EOT|>"],
            Family::DeepSeekV2 => &[DS_EOS, DS_BEGIN, DS_HOLE, DS_END],
            Family::CodeLlama => &["<EOT>", "<PRE>", "<SUF>", "<MID>"],
            Family::Qwen => &[
                "<|endoftext|>",
                "<|fim_prefix|>",
                "<|fim_suffix|>",
                "<|fim_middle|>",
                "<|fim_pad|>",
                "<|repo_name|>",
                "<|file_sep|>",
                "<|im_start|>",
                "<|im_end|>",
            ],
            Family::Codestral => &["</s>", "[PREFIX]", "[SUFFIX]"],
            Family::CodeGemma => {
                &["<|file_separator|>", "<eos>", "<end_of_turn>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"]
            }
        }
    }

    fn render(self, req: &CompletionRequest, repo: Option<&str>) -> String {
        let (p, s) = (req.prefix.as_str(), req.suffix.as_str());
        // The multi-file formats name the current file, so they need its path.
        let multi = req.path.as_deref().filter(|_| !req.snippets.is_empty());
        match self {
            Family::StarCoder => match req.path.as_deref() {
                Some(path) => format!("<filename>{path}\n<fim_prefix>{p}<fim_suffix>{s}<fim_middle>"),
                None => format!("<fim_prefix>{p}<fim_suffix>{s}<fim_middle>"),
            },
            Family::SantaCoder => format!("<fim-prefix>{p}<fim-suffix>{s}<fim-middle>"),
            Family::CodeQwen => format!("<fim_prefix>{p}<fim_suffix>{s}<fim_middle>"),
            Family::StarCoder2 => match multi {
                Some(path) => {
                    let mut out = String::new();
                    if let Some(repo) = repo {
                        out.push_str("<repo_name>");
                        out.push_str(repo);
                    }
                    for sn in &req.snippets {
                        out.push_str("<file_sep>");
                        out.push_str(&sn.path);
                        out.push('\n');
                        out.push_str(&sn.text);
                    }
                    out.push_str(&format!("<file_sep><fim_prefix>{path}\n{p}<fim_suffix>{s}<fim_middle>"));
                    out
                }
                None => format!("<fim_prefix>{p}<fim_suffix>{s}<fim_middle>"),
            },
            Family::DeepSeek | Family::DeepSeekV2 => format!("{DS_BEGIN}{p}{DS_HOLE}{s}{DS_END}"),
            // Meta's reference encodes the prefix with SentencePiece's leading space and the suffix
            // without it; in text form that is the space after `<PRE>` and none after `<SUF>`.
            Family::CodeLlama => format!("<PRE> {p} <SUF>{s} <MID>"),
            Family::Qwen => {
                let fim = format!("<|fim_prefix|>{p}<|fim_suffix|>{s}<|fim_middle|>");
                match multi {
                    Some(path) => {
                        let mut out = String::new();
                        if let Some(repo) = repo {
                            out.push_str(&format!("<|repo_name|>{repo}\n"));
                        }
                        for sn in &req.snippets {
                            out.push_str(&format!("<|file_sep|>{}\n{}\n", sn.path, sn.text));
                        }
                        out.push_str(&format!("<|file_sep|>{path}\n{fim}"));
                        out
                    }
                    None => fim,
                }
            }
            // No literal `<s>`: servers tokenizing a raw prompt add BOS themselves (llama.cpp,
            // vLLM, Fireworks), and a second, textual `<s>` would either be parsed as a second BOS
            // or read as the plain text "<s>"; both put the model off its training format.
            Family::Codestral => format!("[SUFFIX]{s}[PREFIX]{p}"),
            Family::CodeGemma => {
                let fim = format!("<|fim_prefix|>{p}<|fim_suffix|>{s}<|fim_middle|>");
                match multi {
                    Some(path) => {
                        let mut out = String::new();
                        for sn in &req.snippets {
                            out.push_str("<|file_separator|>");
                            out.push_str(&sn.path);
                            out.push('\n');
                            out.push_str(&sn.text);
                            if !sn.text.ends_with('\n') {
                                out.push('\n');
                            }
                        }
                        out.push_str(&format!("<|file_separator|>{path}\n{fim}"));
                        out
                    }
                    None => fim,
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Family(Family),
    Custom(String),
}

/// A FIM prompt template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    kind: Kind,
    stop: Vec<String>,
}

impl Template {
    /// The template for a model, from the config override or else the model's name.
    /// `Ok(None)`: no override and the name matches no known family.
    pub fn resolve(config: Option<&FimTemplateConfig>, model: Option<&str>) -> Result<Option<Template>, String> {
        match config {
            Some(FimTemplateConfig::Family(name)) => match Family::from_name(name) {
                Some(f) => Ok(Some(Template::family(f))),
                None => {
                    let known: Vec<&str> = ALL_FAMILIES.iter().map(|f| f.name()).collect();
                    Err(format!("unknown fim_template `{name}` (known: {})", known.join(", ")))
                }
            },
            Some(FimTemplateConfig::Custom(c)) => {
                if !c.template.contains("{prefix}") {
                    return Err("custom fim_template must contain `{prefix}`".to_owned());
                }
                let mut stop: Vec<String> = Vec::new();
                for s in &c.stop {
                    // An empty stop sequence would end every answer before it starts.
                    if !s.is_empty() && !stop.contains(s) {
                        stop.push(s.clone());
                    }
                }
                Ok(Some(Template { name: "custom".to_owned(), kind: Kind::Custom(c.template.clone()), stop }))
            }
            None => Ok(model.and_then(Family::detect).map(Template::family)),
        }
    }

    /// The built-in template of a family.
    pub fn family(f: Family) -> Template {
        Template {
            name: f.name().to_owned(),
            kind: Kind::Family(f),
            stop: f.stop_tokens().iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// The family, unless the template is a custom one.
    pub fn as_family(&self) -> Option<Family> {
        match self.kind {
            Kind::Family(f) => Some(f),
            Kind::Custom(_) => None,
        }
    }

    /// The raw prompt for `req` (context snippets included where the family has a format).
    pub fn render(&self, req: &CompletionRequest) -> String {
        self.render_in_repo(req, None)
    }

    /// [`Template::render`], naming the repository in the formats that have a slot for it
    /// (`<repo_name>` in StarCoder2, `<|repo_name|>` in Qwen2.5-Coder). Without a name that slot is
    /// left out rather than filled with a made-up one.
    pub fn render_in_repo(&self, req: &CompletionRequest, repo: Option<&str>) -> String {
        match &self.kind {
            Kind::Family(f) => f.render(req, repo),
            Kind::Custom(t) => render_custom(t, req),
        }
    }

    /// Tokens that end an answer in this family.
    pub fn stop_tokens(&self) -> &[String] {
        &self.stop
    }
}

/// Substitutes the placeholders in one left-to-right pass, so user text that happens to contain
/// `{suffix}` is never substituted again.
fn render_custom(template: &str, req: &CompletionRequest) -> String {
    let mut out = String::with_capacity(template.len() + req.prefix.len() + req.suffix.len());
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("{prefix}") {
            out.push_str(&req.prefix);
            rest = t;
        } else if let Some(t) = tail.strip_prefix("{suffix}") {
            out.push_str(&req.suffix);
            rest = t;
        } else if let Some(t) = tail.strip_prefix("{path}") {
            out.push_str(req.path.as_deref().unwrap_or_default());
            rest = t;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The stop sequences to send: the request's own, then the template's, without duplicates.
pub fn stops(req: &CompletionRequest, template: Option<&Template>) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    let theirs = template.map(Template::stop_tokens).unwrap_or_default();
    for s in req.stop.iter().chain(theirs) {
        if !s.is_empty() && !v.contains(s) {
            v.push(s.clone());
        }
    }
    v
}

/// Ends the text at the first of its tokens. Holds back only the longest tail of the pending text
/// that could still grow into a token; everything else goes out at once, since autocomplete
/// latency is measured to the first visible character.
struct StopFilter {
    tokens: Vec<String>,
    longest: usize,
    pending: String,
    over: bool,
}

impl StopFilter {
    fn new(tokens: Vec<String>) -> Self {
        let mut uniq: Vec<String> = Vec::new();
        for t in tokens {
            if !t.is_empty() && !uniq.contains(&t) {
                uniq.push(t);
            }
        }
        let longest = uniq.iter().map(String::len).max().unwrap_or(0);
        StopFilter { tokens: uniq, longest, pending: String::new(), over: false }
    }

    /// Where the held-back tail starts: the earliest char boundary whose tail is a prefix of a token.
    fn hold_from(&self) -> usize {
        let p = &self.pending;
        let lo = p.len().saturating_sub(self.longest.saturating_sub(1));
        (lo..p.len())
            .filter(|&i| p.is_char_boundary(i))
            .find(|&i| self.tokens.iter().any(|t| t.starts_with(&p[i..])))
            .unwrap_or(p.len())
    }
}

impl DeltaFilter for StopFilter {
    fn push(&mut self, delta: &str) -> (String, bool) {
        if self.over {
            return (String::new(), true);
        }
        self.pending.push_str(delta);
        // A token can only start inside the held-back tail or the new delta, both of which are
        // in `pending`, so searching `pending` finds the first occurrence in the whole answer.
        if let Some(i) = self.tokens.iter().filter_map(|t| self.pending.find(t.as_str())).min() {
            let mut out = std::mem::take(&mut self.pending);
            out.truncate(i);
            self.over = true;
            return (out, true);
        }
        let rest = self.pending.split_off(self.hold_from());
        (std::mem::replace(&mut self.pending, rest), false)
    }

    fn flush(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }
}

/// A filter that ends the answer at the first of `tokens` (in case the server did not stop).
pub(crate) fn strip_filter(tokens: Vec<String>) -> Box<dyn DeltaFilter> {
    Box::new(StopFilter::new(tokens))
}

const FILL_OPEN: &str = "<fill>";
const FILL_CLOSE: &str = "</fill>";
const CURSOR: &str = "<cursor/>";
/// How much answer may arrive before `<fill>` until the model is taken to be answering with bare code.
const SEEK_LIMIT: usize = 64;
/// The longest line still taken for an opening markdown fence (```` ```language ````).
const FENCE_LINE_LIMIT: usize = 64;

const CHAT_SYSTEM: &str = "You are a code completion engine. The user shows you a file with a <cursor/> \
marker where the cursor is. Reply with the code to insert at the cursor, wrapped in <fill></fill>. \
Output only that code: no explanations, no markdown fences, and do not repeat the code that comes \
before or after the cursor. Give the code the indentation it needs at the cursor. If nothing should \
be inserted, reply <fill></fill>.";

fn attr(v: &str) -> String {
    v.replace('&', "&amp;").replace('"', "&quot;")
}

/// The chat request that asks a chat model to fill the gap at the cursor.
///
/// With `prefill` the answer is started with `<fill>`, so the model streams the code straight
/// away; without it the model is told to start with `<fill>`. `</fill>` is requested as a stop in
/// both cases (first, so vendors that cap the number of stops keep it). The request's own stops
/// (`"\n"` for a single line) are kept: the answer starts right at the fill, and the prompt asks
/// for no line break or fence before the code, so they cut the code and not the wrapper.
pub fn chat_prompt(req: &CompletionRequest, prefill: bool) -> ChatRequest {
    let mut user = String::new();
    if !req.snippets.is_empty() {
        user.push_str("Code from other files in the project, for reference:\n");
        for sn in &req.snippets {
            user.push_str(&format!("<snippet path=\"{}\">\n{}", attr(&sn.path), sn.text));
            if !sn.text.ends_with('\n') {
                user.push('\n');
            }
            user.push_str("</snippet>\n");
        }
        user.push('\n');
    }
    let what = match (req.path.as_deref(), req.language.as_deref()) {
        (Some(p), Some(l)) => format!("the {l} file `{p}`"),
        (Some(p), None) => format!("the file `{p}`"),
        (None, Some(l)) => format!("a {l} file"),
        (None, None) => "a file".to_owned(),
    };
    user.push_str(&format!("This is {what}; {CURSOR} marks the cursor:\n"));
    match req.path.as_deref() {
        Some(p) => user.push_str(&format!("<file path=\"{}\">\n", attr(p))),
        None => user.push_str("<file>\n"),
    }
    user.push_str(&format!("{}{CURSOR}{}\n</file>\n\n", req.prefix, req.suffix));
    user.push_str(&format!("Write the code that belongs at {CURSOR}, inside {FILL_OPEN}{FILL_CLOSE}"));
    user.push_str(", with no line break or fence before the code.");
    if req.stop.iter().any(|s| s == "\n") {
        user.push_str(" Complete only the rest of the current line.");
    }
    if !prefill {
        user.push_str(&format!(" Start your reply with {FILL_OPEN}."));
    }
    let mut stop = vec![FILL_CLOSE.to_owned()];
    for s in &req.stop {
        if !s.is_empty() && !stop.contains(s) {
            stop.push(s.clone());
        }
    }
    ChatRequest {
        messages: vec![Message::new(Role::System, CHAT_SYSTEM), Message::new(Role::User, user)],
        prefill: prefill.then(|| FILL_OPEN.to_owned()),
        stop,
        max_tokens: req.max_tokens,
        temperature: req.temperature,
    }
}

enum Phase {
    /// Before `<fill>` (no prefill): a preamble to skip, or bare code.
    Seek,
    /// At the start of the fill: is there a markdown fence to drop?
    Start,
    /// Inside the code.
    Body,
}

struct ChatFilter {
    phase: Phase,
    buf: String,
    body: StopFilter,
    /// The body was fed a made-up `\n` (so a closing fence on its first line is a `\n```` too);
    /// it must not reach the output.
    strip_nl: bool,
    over: bool,
}

/// The length of the longest tail of `s` that is a proper prefix of `token`.
fn partial_tail(s: &str, token: &str) -> usize {
    (1..token.len().min(s.len() + 1)).rev().find(|&n| s.ends_with(&token[..n])).unwrap_or(0)
}

impl ChatFilter {
    fn step(&mut self, eof: bool) -> (String, bool) {
        if let Phase::Seek = self.phase {
            if let Some(i) = self.buf.find(FILL_OPEN) {
                self.buf.drain(..i + FILL_OPEN.len());
            } else {
                let undecided = self.buf.chars().count() < SEEK_LIMIT || partial_tail(&self.buf, FILL_OPEN) > 0;
                if undecided && !eof {
                    return (String::new(), false);
                }
                // The model went straight to the code: pass it through.
            }
            self.phase = Phase::Start;
        }
        if let Phase::Start = self.phase {
            let t = self.buf.trim_start();
            let mut fenced = false;
            let mut skip = 0;
            if t.starts_with("```") {
                match t.find('\n') {
                    Some(nl) if !t[..nl].contains(FILL_CLOSE) => {
                        fenced = true;
                        skip = self.buf.len() - t.len() + nl + 1;
                    }
                    // An "answer" that is a fence and nothing else.
                    Some(_) => return self.finish(),
                    None if t.contains(FILL_CLOSE) => return self.finish(),
                    None if t.len() <= FENCE_LINE_LIMIT => {
                        if eof {
                            return self.finish();
                        }
                        return (String::new(), false);
                    }
                    None => {}
                }
            } else if (t.is_empty() || "```".starts_with(t)) && !eof {
                return (String::new(), false);
            }
            let mut text = std::mem::take(&mut self.buf);
            text.drain(..skip);
            self.phase = Phase::Body;
            if fenced {
                self.body = StopFilter::new(vec![FILL_CLOSE.to_owned(), "\n```".to_owned()]);
                self.strip_nl = true;
                text.insert(0, '\n');
            }
            return self.body_push(&text, eof);
        }
        (String::new(), false)
    }

    fn body_push(&mut self, text: &str, eof: bool) -> (String, bool) {
        let (mut out, over) = self.body.push(text);
        if eof && !over {
            out.push_str(&self.body.flush());
        }
        if self.strip_nl && !out.is_empty() {
            out.remove(0);
            self.strip_nl = false;
        }
        self.over = over;
        (out, over)
    }

    fn finish(&mut self) -> (String, bool) {
        self.over = true;
        self.buf.clear();
        (String::new(), true)
    }
}

impl DeltaFilter for ChatFilter {
    fn push(&mut self, delta: &str) -> (String, bool) {
        if self.over {
            return (String::new(), true);
        }
        match self.phase {
            Phase::Body => self.body_push(delta, false),
            Phase::Seek | Phase::Start => {
                self.buf.push_str(delta);
                self.step(false)
            }
        }
    }

    fn flush(&mut self) -> String {
        if self.over {
            return String::new();
        }
        match self.phase {
            Phase::Body => self.body_push("", true).0,
            Phase::Seek | Phase::Start => self.step(true).0,
        }
    }
}

/// The filter that extracts the fill from a chat model's answer to [`chat_prompt`].
///
/// With `prefill` the stream starts inside the fill. Without it, everything up to and including
/// `<fill>` is skipped, unless no `<fill>` shows up in the first 64 characters: then the model is
/// taken to answer with bare code, which passes through. The fill ends at `</fill>`; a leading
/// markdown fence line is dropped, and after one, so is the closing fence and all that follows.
pub(crate) fn chat_filter(prefill: bool) -> Box<dyn DeltaFilter> {
    Box::new(ChatFilter {
        phase: if prefill { Phase::Start } else { Phase::Seek },
        buf: String::new(),
        body: StopFilter::new(vec![FILL_CLOSE.to_owned()]),
        strip_nl: false,
        over: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CustomFimTemplate;
    use crate::provider::types::Snippet;
    use expect_test::{Expect, expect};
    use proptest::prelude::*;

    fn fixture() -> CompletionRequest {
        CompletionRequest {
            prefix: "fn main() {\n    let x = ".into(),
            suffix: ";\n    println!(\"{x}\");\n}\n".into(),
            path: Some("src/main.rs".into()),
            language: Some("rust".into()),
            snippets: vec![
                Snippet { path: "src/lib.rs".into(), text: "pub fn answer() -> u32 {\n    42\n}\n".into() },
                Snippet { path: "src/util.rs".into(), text: "pub fn twice(n: u32) -> u32 { n * 2 }".into() },
            ],
            stop: vec!["\n".into()],
            max_tokens: 64,
            temperature: 0.2,
        }
    }

    fn bare() -> CompletionRequest {
        CompletionRequest { path: None, snippets: Vec::new(), ..fixture() }
    }

    fn check_render(f: Family, expect: Expect) {
        expect.assert_eq(&Template::family(f).render(&fixture()));
    }

    #[test]
    fn render_starcoder() {
        check_render(
            Family::StarCoder,
            expect![[r#"
                <filename>src/main.rs
                <fim_prefix>fn main() {
                    let x = <fim_suffix>;
                    println!("{x}");
                }
                <fim_middle>"#]],
        );
    }

    #[test]
    fn render_santacoder() {
        check_render(
            Family::SantaCoder,
            expect![[r#"
                <fim-prefix>fn main() {
                    let x = <fim-suffix>;
                    println!("{x}");
                }
                <fim-middle>"#]],
        );
    }

    #[test]
    fn render_codeqwen() {
        check_render(
            Family::CodeQwen,
            expect![[r#"
                <fim_prefix>fn main() {
                    let x = <fim_suffix>;
                    println!("{x}");
                }
                <fim_middle>"#]],
        );
    }

    #[test]
    fn render_starcoder2() {
        check_render(
            Family::StarCoder2,
            expect![[r#"
                <file_sep>src/lib.rs
                pub fn answer() -> u32 {
                    42
                }
                <file_sep>src/util.rs
                pub fn twice(n: u32) -> u32 { n * 2 }<file_sep><fim_prefix>src/main.rs
                fn main() {
                    let x = <fim_suffix>;
                    println!("{x}");
                }
                <fim_middle>"#]],
        );
    }

    #[test]
    fn render_deepseek() {
        check_render(
            Family::DeepSeek,
            expect![[r#"
                <｜fim▁begin｜>fn main() {
                    let x = <｜fim▁hole｜>;
                    println!("{x}");
                }
                <｜fim▁end｜>"#]],
        );
        assert_eq!(
            Template::family(Family::DeepSeekV2).render(&fixture()),
            Template::family(Family::DeepSeek).render(&fixture())
        );
    }

    #[test]
    fn render_codellama() {
        check_render(
            Family::CodeLlama,
            expect![[r#"
                <PRE> fn main() {
                    let x =  <SUF>;
                    println!("{x}");
                }
                 <MID>"#]],
        );
    }

    #[test]
    fn render_qwen() {
        check_render(
            Family::Qwen,
            expect![[r#"
                <|file_sep|>src/lib.rs
                pub fn answer() -> u32 {
                    42
                }

                <|file_sep|>src/util.rs
                pub fn twice(n: u32) -> u32 { n * 2 }
                <|file_sep|>src/main.rs
                <|fim_prefix|>fn main() {
                    let x = <|fim_suffix|>;
                    println!("{x}");
                }
                <|fim_middle|>"#]],
        );
    }

    #[test]
    fn render_codestral() {
        check_render(
            Family::Codestral,
            expect![[r#"
                [SUFFIX];
                    println!("{x}");
                }
                [PREFIX]fn main() {
                    let x = "#]],
        );
    }

    #[test]
    fn render_codegemma() {
        check_render(
            Family::CodeGemma,
            expect![[r#"
                <|file_separator|>src/lib.rs
                pub fn answer() -> u32 {
                    42
                }
                <|file_separator|>src/util.rs
                pub fn twice(n: u32) -> u32 { n * 2 }
                <|file_separator|>src/main.rs
                <|fim_prefix|>fn main() {
                    let x = <|fim_suffix|>;
                    println!("{x}");
                }
                <|fim_middle|>"#]],
        );
    }

    #[test]
    fn repo_name_goes_into_its_slot() {
        let req = fixture();
        let sc2 = Template::family(Family::StarCoder2);
        assert_eq!(sc2.render_in_repo(&req, Some("quill")), format!("<repo_name>quill{}", sc2.render(&req)));
        let qwen = Template::family(Family::Qwen);
        assert_eq!(qwen.render_in_repo(&req, Some("quill")), format!("<|repo_name|>quill\n{}", qwen.render(&req)));
        // Families without a slot ignore it.
        let ds = Template::family(Family::DeepSeek);
        assert_eq!(ds.render_in_repo(&req, Some("quill")), ds.render(&req));
    }

    #[test]
    fn file_level_formats_are_exact() {
        let r = bare();
        let (p, s) = (r.prefix.as_str(), r.suffix.as_str());
        let cases = [
            (Family::StarCoder, format!("<fim_prefix>{p}<fim_suffix>{s}<fim_middle>")),
            (Family::StarCoder2, format!("<fim_prefix>{p}<fim_suffix>{s}<fim_middle>")),
            (Family::CodeLlama, format!("<PRE> {p} <SUF>{s} <MID>")),
            (Family::Qwen, format!("<|fim_prefix|>{p}<|fim_suffix|>{s}<|fim_middle|>")),
            (Family::CodeGemma, format!("<|fim_prefix|>{p}<|fim_suffix|>{s}<|fim_middle|>")),
            (Family::Codestral, format!("[SUFFIX]{s}[PREFIX]{p}")),
        ];
        for (f, want) in cases {
            assert_eq!(Template::family(f).render(&r), want, "{f:?}");
        }
        // No literal BOS: servers add it when they tokenize.
        assert!(!Template::family(Family::Codestral).render(&fixture()).contains("<s>"));
    }

    #[test]
    fn snippets_without_a_path_fall_back_to_file_level() {
        let with_snippets = CompletionRequest { path: None, ..fixture() };
        for f in ALL_FAMILIES {
            let t = Template::family(f);
            assert_eq!(t.render(&with_snippets), t.render(&bare()), "{f:?}");
        }
    }

    #[test]
    fn deepseek_tokens_are_the_exact_bytes() {
        let begin: [u8; 19] = [
            0x3c, 0xef, 0xbd, 0x9c, 0x66, 0x69, 0x6d, 0xe2, 0x96, 0x81, 0x62, 0x65, 0x67, 0x69, 0x6e, 0xef, 0xbd, 0x9c,
            0x3e,
        ];
        let out = Template::family(Family::DeepSeekV2).render(&bare());
        assert!(out.as_bytes().starts_with(&begin), "{:x?}", &out.as_bytes()[..19]);
        assert_eq!(DS_HOLE.as_bytes(), "<\u{FF5C}fim\u{2581}hole\u{FF5C}>".as_bytes());
        assert_eq!(DS_END.as_bytes(), "<\u{FF5C}fim\u{2581}end\u{FF5C}>".as_bytes());
        assert_eq!(DS_EOS.as_bytes(), "<\u{FF5C}end\u{2581}of\u{2581}sentence\u{FF5C}>".as_bytes());
        assert!(!out.contains("<|fim"), "ASCII look-alikes");
    }

    #[test]
    fn detects_families_from_real_model_ids() {
        use Family::*;
        let table: &[(&str, Option<Family>)] = &[
            ("bigcode/starcoder2-15b", Some(StarCoder2)),
            ("starcoder2:3b", Some(StarCoder2)),
            ("TechxGenus/starcoder2-7b-instruct", Some(StarCoder2)),
            ("bigcode/starcoder", Some(StarCoder)),
            ("bigcode/starcoderbase-1b", Some(StarCoder)),
            ("starcoder-16b", Some(StarCoder)),
            ("bigcode/tiny_starcoder_py", Some(StarCoder)),
            ("HuggingFaceH4/starchat-beta", Some(StarCoder)),
            ("bigcode/octocoder", Some(StarCoder)),
            ("bigcode/santacoder", Some(SantaCoder)),
            ("Qwen/CodeQwen1.5-7B", Some(CodeQwen)),
            ("codeqwen:7b-code-v1.5-q4_0", Some(CodeQwen)),
            ("deepseek-coder:6.7b-base", Some(DeepSeek)),
            ("deepseek-ai/deepseek-coder-1.3b-base", Some(DeepSeek)),
            ("TheBloke/deepseek-coder-6.7B-instruct-GGUF", Some(DeepSeek)),
            ("deepseek-coder-v2-lite-base", Some(DeepSeekV2)),
            ("accounts/fireworks/models/deepseek-coder-v2-lite-base", Some(DeepSeekV2)),
            ("deepseek-coder-v2:16b-lite-base-q4_0", Some(DeepSeekV2)),
            ("deepseek-ai/DeepSeek-Coder-V2-Lite-Instruct", Some(DeepSeekV2)),
            ("accounts/fireworks/models/deepseek-v3", Some(DeepSeekV2)),
            ("codellama/CodeLlama-7b-hf", Some(CodeLlama)),
            ("codellama:7b-code", Some(CodeLlama)),
            ("TheBloke/CodeLlama-13B-GGUF", Some(CodeLlama)),
            ("Phind/Phind-CodeLlama-34B-v2", Some(CodeLlama)),
            ("accounts/fireworks/models/qwen2p5-coder-7b", Some(Qwen)),
            ("qwen2.5-coder:1.5b-base", Some(Qwen)),
            ("Qwen/Qwen2.5-Coder-32B-Instruct", Some(Qwen)),
            ("Qwen/Qwen3-Coder-30B-A3B-Instruct", Some(Qwen)),
            ("hf.co/bartowski/Qwen2.5-Coder-7B-Instruct-GGUF:Q4_K_M", Some(Qwen)),
            ("qwen2_5_coder_7b", Some(Qwen)),
            ("codestral-latest", Some(Codestral)),
            ("mistralai/Codestral-22B-v0.1", Some(Codestral)),
            ("codestral:22b", Some(Codestral)),
            ("google/codegemma-2b", Some(CodeGemma)),
            ("codegemma:7b-code", Some(CodeGemma)),
            ("codegemma-7b-it", Some(CodeGemma)),
            ("gpt-4o-mini", None),
            ("claude-3-5-haiku-latest", None),
            ("llama3.1:8b", None),
            ("Qwen/Qwen2.5-7B-Instruct", None),
            ("google/gemma-2-9b", None),
            ("deepseek-ai/deepseek-llm-7b-base", None),
            ("deepseek-r1:7b", None),
            ("mistral-large-latest", None),
            ("gemini-2.0-flash", None),
            // Only the model's own name counts, not the account that hosts it.
            ("codellama-fans/llama-3-8b", None),
            ("", None),
        ];
        let wrong: Vec<String> = table
            .iter()
            .filter(|(id, want)| Family::detect(id) != *want)
            .map(|(id, want)| format!("{id}: got {:?}, want {want:?}", Family::detect(id)))
            .collect();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn resolve_uses_the_override_before_the_model() {
        let fam = |n: &str| FimTemplateConfig::Family(n.to_owned());
        let t = Template::resolve(Some(&fam("codellama")), Some("qwen2.5-coder:7b")).expect("known family");
        assert_eq!(t.map(|t| t.name), Some("codellama".to_owned()));
        for (alias, name) in [
            ("DeepSeek_V2", "deepseek-v2"),
            ("deepseek-coder", "deepseek"),
            ("qwen2.5-coder", "qwen"),
            (" StarCoder2 ", "starcoder2"),
            ("gemma", "codegemma"),
            ("mistral", "codestral"),
        ] {
            let t = Template::resolve(Some(&fam(alias)), None).expect("alias").expect("template");
            assert_eq!(t.name, name, "{alias}");
        }
        let t = Template::resolve(None, Some("deepseek-coder:6.7b-base")).expect("detect").expect("template");
        assert_eq!((t.name.as_str(), t.as_family()), ("deepseek", Some(Family::DeepSeek)));
        assert_eq!(t.stop_tokens()[0], DS_EOS);
        assert_eq!(Template::resolve(None, Some("gpt-4o")), Ok(None));
        assert_eq!(Template::resolve(None, None), Ok(None));
    }

    #[test]
    fn resolve_rejects_unknown_family_names() {
        let err = Template::resolve(Some(&FimTemplateConfig::Family("gpt".into())), Some("starcoder2:3b"));
        assert_eq!(
            err,
            Err("unknown fim_template `gpt` (known: starcoder, starcoder2, santacoder, codeqwen, deepseek, \
                 deepseek-v2, codellama, qwen, codestral, codegemma)"
                .to_owned())
        );
        // Every name the error lists is accepted.
        for f in ALL_FAMILIES {
            assert_eq!(Family::from_name(f.name()), Some(f));
        }
    }

    fn custom(template: &str, stop: &[&str]) -> FimTemplateConfig {
        FimTemplateConfig::Custom(CustomFimTemplate {
            template: template.to_owned(),
            stop: stop.iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    #[test]
    fn custom_templates_substitute_once() {
        let cfg = custom("<pre>{prefix}<suf>{suffix}<mid>{path}|{other}{", &["<end>", "", "<end>", "<eot>"]);
        let t = Template::resolve(Some(&cfg), Some("starcoder2:3b")).expect("valid").expect("template");
        assert_eq!(t.name, "custom");
        assert_eq!(t.as_family(), None);
        assert_eq!(t.stop_tokens(), ["<end>", "<eot>"]);
        let req = CompletionRequest {
            prefix: "a{suffix}b{path}".into(),
            suffix: "c{prefix}d".into(),
            path: Some("x.rs".into()),
            ..Default::default()
        };
        assert_eq!(t.render(&req), "<pre>a{suffix}b{path}<suf>c{prefix}d<mid>x.rs|{other}{");
        let no_path = CompletionRequest { path: None, ..req };
        assert_eq!(t.render(&no_path), "<pre>a{suffix}b{path}<suf>c{prefix}d<mid>|{other}{");
        // `{suffix}` is optional.
        let t = Template::resolve(Some(&custom("{prefix}", &[])), None).expect("valid").expect("template");
        assert_eq!(t.render(&no_path), "a{suffix}b{path}");
    }

    #[test]
    fn custom_templates_need_a_prefix() {
        let err = Template::resolve(Some(&custom("<pre>{suffix}", &[])), None);
        assert_eq!(err, Err("custom fim_template must contain `{prefix}`".to_owned()));
    }

    #[test]
    fn stops_keep_order_without_duplicates() {
        let req = CompletionRequest { stop: vec!["\n".into(), "<|endoftext|>".into(), "\n".into()], ..bare() };
        let t = Template::family(Family::StarCoder2);
        assert_eq!(
            stops(&req, Some(&t)),
            ["\n", "<|endoftext|>", "<file_sep>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"]
        );
        assert_eq!(stops(&req, None), ["\n", "<|endoftext|>"]);
    }

    /// Runs `chunks` through `f` the way the event stream does: push until over, then flush.
    fn drive(f: &mut dyn DeltaFilter, chunks: &[&str]) -> (String, bool) {
        let mut out = String::new();
        for c in chunks {
            let (t, over) = f.push(c);
            out.push_str(&t);
            if over {
                assert_eq!(f.push("more"), (String::new(), true), "input after the end is ignored");
                assert_eq!(f.flush(), "");
                return (out, true);
            }
        }
        out.push_str(&f.flush());
        (out, false)
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn strip_filter_stops_at_a_token_split_across_deltas() {
        let mut f = strip_filter(strs(&["<|endoftext|>", "<|file_sep|>"]));
        assert_eq!(f.push("x = 1<|end"), ("x = 1".to_owned(), false));
        assert_eq!(f.push("ofte"), (String::new(), false));
        assert_eq!(f.push("xt|> junk"), (String::new(), true));
        assert_eq!(f.push("more"), (String::new(), true));

        let mut f = strip_filter(strs(&[DS_EOS]));
        let (out, over) = drive(&mut *f, &["let y", " = 2;<\u{FF5C}end\u{2581}", "of\u{2581}sentence\u{FF5C}>"]);
        assert_eq!((out.as_str(), over), ("let y = 2;", true));
    }

    #[test]
    fn strip_filter_releases_a_false_start_at_once() {
        let mut f = strip_filter(strs(&["<|endoftext|>"]));
        assert_eq!(f.push("a <"), ("a ".to_owned(), false));
        assert_eq!(f.push("|x"), ("<|x".to_owned(), false));
        // `<` may start a token again: only it is held.
        assert_eq!(f.push("<|en<"), ("<|en".to_owned(), false));
        assert_eq!(f.flush(), "<");
    }

    const PROP_TOKENS: [&str; 4] = ["<|endoftext|>", "<|file_sep|>", "<｜fim▁end｜>", "<EOT>"];

    fn first_token(text: &str) -> Option<usize> {
        PROP_TOKENS.iter().filter_map(|t| text.find(t)).min()
    }

    /// Splits `text` at the char boundaries nearest to `cuts` (fractions of its length).
    fn split_at(text: &str, cuts: &[f64]) -> Vec<String> {
        let mut pos: Vec<usize> = cuts
            .iter()
            .map(|c| {
                let mut i = ((text.len() as f64) * c) as usize;
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                i
            })
            .collect();
        pos.push(0);
        pos.push(text.len());
        pos.sort_unstable();
        pos.windows(2).map(|w| text[w[0]..w[1]].to_owned()).collect()
    }

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => "[a<|>｜▁EOTfilendxt_ \n]{0,6}",
            1 => (0..PROP_TOKENS.len()).prop_map(|i| PROP_TOKENS[i].to_owned()),
            1 => (0..PROP_TOKENS.len(), 1usize..6).prop_map(|(i, n)| PROP_TOKENS[i].chars().take(n).collect()),
        ]
    }

    proptest! {
        #[test]
        fn strip_filter_ends_at_the_first_token(
            pieces in prop::collection::vec(piece(), 0..12),
            cuts in prop::collection::vec(0.0f64..1.0, 0..10),
        ) {
            let text: String = pieces.concat();
            let chunks = split_at(&text, &cuts);
            let mut f = StopFilter::new(strs(&PROP_TOKENS));
            let mut out = String::new();
            let mut fed = 0;
            let mut over = false;
            for c in &chunks {
                fed += c.len();
                let (t, o) = f.push(c);
                out.push_str(&t);
                if o {
                    over = true;
                    break;
                }
                // Latency: all but a possible token start has gone out.
                prop_assert!(fed - out.len() < f.longest, "held {} bytes", fed - out.len());
            }
            if !over {
                out.push_str(&f.flush());
            }
            match first_token(&text) {
                Some(i) => {
                    prop_assert!(over);
                    prop_assert_eq!(out.as_str(), &text[..i]);
                }
                None => {
                    prop_assert!(!over);
                    prop_assert_eq!(out, text);
                }
            }
        }

        #[test]
        fn strip_filter_passes_token_free_text_unchanged(
            text in "[a<|>｜▁EOTfilendxt_ \n{}é]{0,80}",
            cuts in prop::collection::vec(0.0f64..1.0, 0..10),
        ) {
            prop_assume!(first_token(&text).is_none());
            let chunks = split_at(&text, &cuts);
            let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
            let mut f = strip_filter(strs(&PROP_TOKENS));
            let (out, over) = drive(&mut *f, &refs);
            prop_assert!(!over);
            prop_assert_eq!(out, text);
        }
    }

    /// The chat filter's output for `answer`, checked to be the same however the answer is split:
    /// whole, at every single point, and one char at a time.
    fn chat_out(prefill: bool, answer: &str) -> String {
        let (whole, _) = drive(&mut *chat_filter(prefill), &[answer]);
        for (i, _) in answer.char_indices().skip(1) {
            let (split, _) = drive(&mut *chat_filter(prefill), &[&answer[..i], &answer[i..]]);
            assert_eq!(split, whole, "split at {i} of {answer:?}");
        }
        let chars: Vec<String> = answer.chars().map(String::from).collect();
        let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
        let (by_char, _) = drive(&mut *chat_filter(prefill), &refs);
        assert_eq!(by_char, whole, "char by char: {answer:?}");
        whole
    }

    #[test]
    fn chat_filter_with_prefill_starts_inside_the_fill() {
        assert_eq!(chat_out(true, "foo(bar)</fill>\nThat calls foo."), "foo(bar)");
        assert_eq!(chat_out(true, "    return x;\n}</fill>"), "    return x;\n}");
        assert_eq!(chat_out(true, "```rust\nlet x = 1;\n```\n</fill>"), "let x = 1;");
        assert_eq!(chat_out(true, "\n```\nlet x = 1;\n```"), "let x = 1;");
        assert_eq!(chat_out(true, "```\ncode</fill>"), "code");
        assert_eq!(chat_out(true, "```js\n```</fill>"), "");
        assert_eq!(chat_out(true, "</fill>"), "");
        // No `</fill>` (the server stopped at it): everything is the fill.
        assert_eq!(chat_out(true, "a < b && c"), "a < b && c");
        // A backtick that is code, not a fence.
        assert_eq!(chat_out(true, "`x`"), "`x`");
        // A fill that mentions `<fill>` keeps it: the stream is already inside the fill.
        assert_eq!(chat_out(true, "\"<fill>\""), "\"<fill>\"");
    }

    #[test]
    fn chat_filter_without_prefill_skips_to_the_fill() {
        assert_eq!(chat_out(false, "<fill>x + 1</fill>"), "x + 1");
        assert_eq!(chat_out(false, "Sure! Here it is:\n<fill>x + 1</fill>\nDone."), "x + 1");
        assert_eq!(chat_out(false, "<fill>\n```python\nreturn a + b\n```\n</fill>"), "return a + b");
        assert_eq!(chat_out(false, "```\n<fill>a()</fill>\n```"), "a()");
        assert_eq!(chat_out(false, "<fill></fill>"), "");
        // The model answered with bare code: passed through.
        assert_eq!(chat_out(false, "x + 1"), "x + 1");
        let long = "let total: u32 = items.iter().map(|item| item.price * item.count).sum();\nreturn total;";
        assert_eq!(chat_out(false, long), long);
        assert_eq!(chat_out(false, &format!("```rust\n{long}\n```\nThis sums the prices.")), long);
    }

    #[test]
    fn chat_filter_emits_bare_code_after_the_seek_window() {
        let mut f = chat_filter(false);
        let code = "abcdefghij".repeat(7);
        let (first, over) = f.push(&code[..40]);
        assert_eq!((first.as_str(), over), ("", false), "held while `<fill>` may still come");
        let (rest, over) = f.push(&code[40..]);
        assert_eq!((rest, over), (code.clone(), false));
        assert_eq!(f.push("k"), ("k".to_owned(), false), "then streamed at once");
    }

    #[test]
    fn chat_prompt_with_prefill() {
        let c = chat_prompt(&fixture(), true);
        assert_eq!(c.prefill.as_deref(), Some("<fill>"));
        assert_eq!(c.stop, ["</fill>", "\n"]);
        assert_eq!((c.max_tokens, c.temperature), (64, 0.2));
        assert_eq!(c.messages.len(), 2);
        assert_eq!(c.messages[0].role, Role::System);
        expect![[r#"
            You are a code completion engine. The user shows you a file with a <cursor/> marker where the cursor is. Reply with the code to insert at the cursor, wrapped in <fill></fill>. Output only that code: no explanations, no markdown fences, and do not repeat the code that comes before or after the cursor. Give the code the indentation it needs at the cursor. If nothing should be inserted, reply <fill></fill>."#]]
        .assert_eq(&c.messages[0].content);
        assert_eq!(c.messages[1].role, Role::User);
        expect![[r#"
            Code from other files in the project, for reference:
            <snippet path="src/lib.rs">
            pub fn answer() -> u32 {
                42
            }
            </snippet>
            <snippet path="src/util.rs">
            pub fn twice(n: u32) -> u32 { n * 2 }
            </snippet>

            This is the rust file `src/main.rs`; <cursor/> marks the cursor:
            <file path="src/main.rs">
            fn main() {
                let x = <cursor/>;
                println!("{x}");
            }

            </file>

            Write the code that belongs at <cursor/>, inside <fill></fill>, with no line break or fence before the code. Complete only the rest of the current line."#]]
        .assert_eq(&c.messages[1].content);
    }

    #[test]
    fn chat_prompt_without_prefill() {
        let req =
            CompletionRequest { stop: vec!["\n\n".into(), "</fill>".into()], path: Some("a\"b.py".into()), ..bare() };
        let c = chat_prompt(&req, false);
        assert_eq!(c.prefill, None);
        assert_eq!(c.stop, ["</fill>", "\n\n"]);
        let user = &c.messages[1].content;
        assert!(user.ends_with("Start your reply with <fill>."), "{user}");
        assert!(!user.contains("current line"), "multi-line request: {user}");
        assert!(user.contains("<file path=\"a&quot;b.py\">\n"), "{user}");
        assert!(!user.contains("<snippet"), "{user}");
        let unnamed = chat_prompt(&CompletionRequest { language: None, ..bare() }, false);
        assert!(unnamed.messages[1].content.contains("This is a file; <cursor/> marks the cursor:\n<file>\n"));
    }
}
