//! Configuration: its shape, its sources, how they layer, and how errors are reported.
//!
//! Sources, lowest precedence first: `quill.toml` at the workspace root, the user's
//! `$XDG_CONFIG_HOME/quill/config.toml`, the client's `initializationOptions`, then each
//! `workspace/didChangeConfiguration`. The user's own settings thus override a repository's file.
//! Every source has the same shape (TOML files, JSON from the client); tables merge key by key.
//!
//! Each layer is validated on its own, then the merge is validated as a whole (routing must name a
//! defined provider). An error names its source and key; an invalid layer is skipped, and the caller
//! keeps its last good config rather than stopping.
//!
//! Secrets never live in config: a provider names the environment variable that holds its key.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::document::{DEFAULT_MAX_PARSE_BYTES, DEFAULT_TREE_CACHE_BYTES};

/// The whole configuration. Every field has a default, so any layer may be partial.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(title = "Quill configuration")]
pub struct Config {
    /// Named providers, referenced by `[completion]`, `[chat]` and `[edit]`.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Routing and settings for autocomplete.
    pub completion: CompletionConfig,
    /// Routing and settings for chat.
    pub chat: ChatConfig,
    /// Routing and settings for edits (code actions and `quill.edit`).
    pub edit: EditConfig,
    /// How documents are held.
    pub documents: DocumentsConfig,
}

/// One LLM endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The wire protocol spoken.
    pub kind: ProviderKind,
    /// Model name or deployment, as the provider spells it.
    #[serde(default)]
    pub model: Option<String>,
    /// Base URL; each kind has a default where the vendor has one.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Name of the environment variable that holds the API key (never the key itself). Each kind
    /// has a default (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`, ...); see docs/protocol.md.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// How autocomplete asks this endpoint for a fill-in-the-middle answer.
    #[serde(default)]
    pub completion_mode: CompletionMode,
    /// FIM template: a model family name (`starcoder`, `starcoder2`, `santacoder`, `codeqwen`,
    /// `deepseek`, `deepseek-v2`, `codellama`, `qwen`, `codestral`, `codegemma`) or a custom
    /// template. Picked from the model name when absent.
    #[serde(default)]
    pub fim_template: Option<FimTemplateConfig>,
    /// Azure OpenAI `api-version` query parameter. Absent: the v1 surface (`/openai/v1/...`).
    #[serde(default)]
    pub api_version: Option<String>,
    /// AWS region (Bedrock) or Google Cloud location (Vertex). Bedrock defaults to `$AWS_REGION`,
    /// then `$AWS_DEFAULT_REGION`, then `us-east-1`; Vertex to `us-east5`.
    #[serde(default)]
    pub region: Option<String>,
    /// Google Cloud project (Vertex). Defaults to the service account's `project_id`.
    #[serde(default)]
    pub project: Option<String>,
    /// Path of a Google service-account JSON key (Vertex). Defaults to
    /// `$GOOGLE_APPLICATION_CREDENTIALS`.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Milliseconds to open a connection.
    #[serde(default = "defaults::connect_timeout_ms")]
    #[schemars(range(min = 1))]
    pub connect_timeout_ms: u64,
    /// Milliseconds from sending a request to the first byte of its answer.
    #[serde(default = "defaults::first_byte_timeout_ms")]
    #[schemars(range(min = 1))]
    pub first_byte_timeout_ms: u64,
    /// Milliseconds a started stream may stay silent before it is abandoned as stalled.
    #[serde(default = "defaults::idle_timeout_ms")]
    #[schemars(range(min = 1))]
    pub idle_timeout_ms: u64,
    /// Milliseconds a whole request may take, stream included.
    #[serde(default = "defaults::total_timeout_ms")]
    #[schemars(range(min = 1))]
    pub total_timeout_ms: u64,
    /// Retries for chat and edit after 429 (short `retry-after`), 529 or 5xx, before any byte
    /// has streamed. Autocomplete never retries.
    #[serde(default = "defaults::max_retries")]
    #[schemars(range(max = 10))]
    pub max_retries: u32,
}

mod defaults {
    pub fn connect_timeout_ms() -> u64 {
        5_000
    }
    pub fn first_byte_timeout_ms() -> u64 {
        60_000
    }
    pub fn idle_timeout_ms() -> u64 {
        30_000
    }
    pub fn total_timeout_ms() -> u64 {
        600_000
    }
    pub fn max_retries() -> u32 {
        2
    }
}

impl ProviderConfig {
    /// A provider of `kind` with every optional setting at its default.
    pub fn new(kind: ProviderKind) -> Self {
        ProviderConfig {
            kind,
            model: None,
            base_url: None,
            api_key_env: None,
            completion_mode: CompletionMode::Auto,
            fim_template: None,
            api_version: None,
            region: None,
            project: None,
            credentials_file: None,
            connect_timeout_ms: defaults::connect_timeout_ms(),
            first_byte_timeout_ms: defaults::first_byte_timeout_ms(),
            idle_timeout_ms: defaults::idle_timeout_ms(),
            total_timeout_ms: defaults::total_timeout_ms(),
            max_retries: defaults::max_retries(),
        }
    }
}

/// How an endpoint does fill-in-the-middle. It depends on the server, not the vendor: vLLM rejects
/// `suffix`, Ollama applies its model's template to it, llama.cpp has `/infill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CompletionMode {
    /// Pick from the kind and model name (see docs/protocol.md).
    #[default]
    Auto,
    /// Send prefix and suffix as separate fields; the server applies the model's template.
    Suffix,
    /// Render the model family's FIM template into a raw prompt.
    Template,
    /// llama.cpp's `/infill`.
    Infill,
    /// Send only the text before the cursor as a plain prompt (base models without FIM tokens).
    Prompt,
    /// Ask a chat model with a cursor-marker prompt.
    Chat,
}

/// A FIM template: a known family, or a custom one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum FimTemplateConfig {
    /// `starcoder`, `starcoder2`, `santacoder`, `codeqwen`, `deepseek`, `deepseek-v2`, `codellama`,
    /// `qwen`, `codestral`, `codegemma`.
    Family(String),
    Custom(CustomFimTemplate),
}

/// A custom FIM template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomFimTemplate {
    /// The prompt: `{prefix}` (required) and `{suffix}` mark where the text before and after the
    /// cursor go, `{path}` the file's path; any other `{...}` stays literal.
    pub template: String,
    /// Tokens that end the answer; they are sent as stop sequences and stripped from the output.
    #[serde(default)]
    pub stop: Vec<String>,
}

/// Provider wire protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Openai,
    Anthropic,
    Gemini,
    Fireworks,
    AzureOpenai,
    Bedrock,
    Vertex,
    OpenaiCompatible,
    Ollama,
    Llamacpp,
    QuillGateway,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Fireworks => "fireworks",
            ProviderKind::AzureOpenai => "azure-openai",
            ProviderKind::Bedrock => "bedrock",
            ProviderKind::Vertex => "vertex",
            ProviderKind::OpenaiCompatible => "openai-compatible",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Llamacpp => "llamacpp",
            ProviderKind::QuillGateway => "quill-gateway",
        }
    }
}

/// A feature's routing: the provider and model override (see [`Config::feature`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FeatureConfig {
    /// Which entry of `[providers]` serves this feature.
    pub provider: Option<String>,
    /// Overrides the provider's `model` for this feature.
    pub model: Option<String>,
}

/// Autocomplete: routing plus the pipeline's knobs. Defaults follow Cody's published numbers
/// (see docs/protocol.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CompletionConfig {
    /// Which entry of `[providers]` serves autocomplete.
    pub provider: Option<String>,
    /// Overrides the provider's `model` for autocomplete.
    pub model: Option<String>,
    /// Turn autocomplete off without removing its provider.
    pub enabled: bool,
    /// Milliseconds of quiet after a keystroke before a request is sent. A cursor at the start of
    /// a line (only whitespace before it) fires at once.
    #[schemars(range(min = 0, max = 5000))]
    pub debounce_ms: u64,
    /// The model's context window for autocomplete prompts, in tokens (3.5 characters each).
    #[schemars(range(min = 64))]
    pub context_tokens: usize,
    /// Share of `context_tokens` spent on the text before the cursor.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub prefix_share: f32,
    /// Share of `context_tokens` spent on the text after the cursor.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub suffix_share: f32,
    /// Most snippets from other open documents of the same language (0 turns them off).
    pub snippets: usize,
    /// Milliseconds the snippet search may take per request.
    pub snippet_budget_ms: u64,
    /// Offer multi-line suggestions at empty block bodies.
    pub multiline: bool,
    /// Most tokens generated per suggestion.
    #[schemars(range(min = 1))]
    pub max_tokens: u32,
    pub temperature: f32,
    /// Suggestions remembered by prefix and suffix (0 turns the cache off).
    pub cache_entries: usize,
    /// Milliseconds after which a suggestion request gives up (the provider's own timeouts
    /// still apply).
    #[schemars(range(min = 100))]
    pub timeout_ms: u64,
}

impl Default for CompletionConfig {
    fn default() -> Self {
        CompletionConfig {
            provider: None,
            model: None,
            enabled: true,
            debounce_ms: 75,
            context_tokens: 2048,
            prefix_share: 0.6,
            suffix_share: 0.1,
            snippets: 3,
            snippet_budget_ms: 20,
            multiline: true,
            max_tokens: 256,
            temperature: 0.2,
            cache_entries: 128,
            timeout_ms: 7000,
        }
    }
}

/// Chat: routing plus the turn budget. Defaults follow Cody's chat budgets (about 7,000 input and
/// 4,000 output tokens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Which entry of `[providers]` serves chat.
    pub provider: Option<String>,
    /// Overrides the provider's `model` for chat.
    pub model: Option<String>,
    /// The whole prompt budget of one turn (system prompt, context, history and message), in
    /// tokens (3.5 characters each).
    #[schemars(range(min = 256))]
    pub context_tokens: usize,
    /// Share of `context_tokens` that mentioned context (files, ranges, symbols) may take.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub context_share: f32,
    /// Most tokens generated per reply.
    #[schemars(range(min = 1))]
    pub max_tokens: u32,
    pub temperature: f32,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            provider: None,
            model: None,
            context_tokens: 8192,
            context_share: 0.5,
            max_tokens: 4000,
            temperature: 0.3,
        }
    }
}

/// Edits: routing plus the answer budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EditConfig {
    /// Which entry of `[providers]` serves edits.
    pub provider: Option<String>,
    /// Overrides the provider's `model` for edits.
    pub model: Option<String>,
    /// Most tokens generated per edit (the replacement code).
    #[schemars(range(min = 1))]
    pub max_tokens: u32,
    pub temperature: f32,
}

impl Default for EditConfig {
    fn default() -> Self {
        EditConfig { provider: None, model: None, max_tokens: 4096, temperature: 0.1 }
    }
}

/// Document handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DocumentsConfig {
    /// Documents larger than this many bytes are kept as text but not parsed.
    #[schemars(range(min = 0))]
    pub max_parse_bytes: usize,
    /// Syntax trees are kept in memory for the most recently used documents whose sources add up
    /// to this many bytes (a tree takes roughly 30 times its source); the rest are rebuilt on demand.
    /// The most recently used document always keeps its tree.
    #[schemars(range(min = 0))]
    pub tree_cache_bytes: usize,
}

impl Default for DocumentsConfig {
    fn default() -> Self {
        DocumentsConfig { max_parse_bytes: DEFAULT_MAX_PARSE_BYTES, tree_cache_bytes: DEFAULT_TREE_CACHE_BYTES }
    }
}

/// A secret value. It cannot be printed: `Debug` and `Display` are redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    /// The value, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Config {
    /// The provider name and settings that serve a feature, if routed.
    pub fn route(&self, feature: Feature) -> Option<(&str, &ProviderConfig)> {
        let name = self.feature(feature).provider?;
        self.providers.get_key_value(&name).map(|(k, v)| (k.as_str(), v))
    }

    pub fn feature(&self, feature: Feature) -> FeatureConfig {
        match feature {
            Feature::Completion => {
                FeatureConfig { provider: self.completion.provider.clone(), model: self.completion.model.clone() }
            }
            Feature::Chat => FeatureConfig { provider: self.chat.provider.clone(), model: self.chat.model.clone() },
            Feature::Edit => FeatureConfig { provider: self.edit.provider.clone(), model: self.edit.model.clone() },
        }
    }

    /// The provider and model settings of a feature, to change them.
    pub fn route_mut(&mut self, feature: Feature) -> (&mut Option<String>, &mut Option<String>) {
        match feature {
            Feature::Completion => (&mut self.completion.provider, &mut self.completion.model),
            Feature::Chat => (&mut self.chat.provider, &mut self.chat.model),
            Feature::Edit => (&mut self.edit.provider, &mut self.edit.model),
        }
    }

    /// Checks that span keys: routing names a defined provider, key variables are names.
    fn validate(&self) -> Result<(), (String, String)> {
        for (name, p) in &self.providers {
            if let Some(var) = &p.api_key_env
                && !is_env_var_name(var)
            {
                // Never echo the value: people paste the key itself here.
                return Err((
                    format!("providers.{name}.api_key_env"),
                    "must name an environment variable (letters, digits, `_`), not hold the key itself".into(),
                ));
            }
            if let Some(url) = &p.base_url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err((format!("providers.{name}.base_url"), "must start with http:// or https://".into()));
            }
        }
        let c = &self.completion;
        let share_ok = |x: f32| (0.0..=1.0).contains(&x);
        if !share_ok(c.prefix_share) || !share_ok(c.suffix_share) || c.prefix_share + c.suffix_share > 0.95 {
            return Err((
                "completion.prefix_share".into(),
                "prefix_share and suffix_share must be between 0 and 1 and add up to at most 0.95".into(),
            ));
        }
        if c.context_tokens < 64 {
            return Err(("completion.context_tokens".into(), "must be at least 64".into()));
        }
        if c.max_tokens == 0 {
            return Err(("completion.max_tokens".into(), "must be at least 1".into()));
        }
        if c.timeout_ms < 100 {
            return Err(("completion.timeout_ms".into(), "must be at least 100".into()));
        }
        if !(0.0..=2.0).contains(&c.temperature) {
            return Err(("completion.temperature".into(), "must be between 0 and 2".into()));
        }
        let chat = &self.chat;
        if chat.context_tokens < 256 {
            return Err(("chat.context_tokens".into(), "must be at least 256".into()));
        }
        if !share_ok(chat.context_share) {
            return Err(("chat.context_share".into(), "must be between 0 and 1".into()));
        }
        for (key, max_tokens, temperature) in
            [("chat", chat.max_tokens, chat.temperature), ("edit", self.edit.max_tokens, self.edit.temperature)]
        {
            if max_tokens == 0 {
                return Err((format!("{key}.max_tokens"), "must be at least 1".into()));
            }
            if !(0.0..=2.0).contains(&temperature) {
                return Err((format!("{key}.temperature"), "must be between 0 and 2".into()));
            }
        }
        for feature in Feature::ALL {
            if let Some(name) = &self.feature(feature).provider
                && !self.providers.contains_key(name)
            {
                let known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
                return Err((
                    format!("{}.provider", feature.as_str()),
                    format!("no provider named `{name}` (defined: {})", list_or_none(&known)),
                ));
            }
        }
        Ok(())
    }
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

fn is_env_var_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !s.as_bytes()[0].is_ascii_digit()
}

/// The features that route to a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    Completion,
    Chat,
    Edit,
}

impl Feature {
    pub const ALL: [Feature; 3] = [Feature::Completion, Feature::Chat, Feature::Edit];
    pub fn as_str(self) -> &'static str {
        match self {
            Feature::Completion => "completion",
            Feature::Chat => "chat",
            Feature::Edit => "edit",
        }
    }
}

/// A config problem: which source, which key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub source: String,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.source, self.message)
        } else {
            write!(f, "{}: `{}`: {}", self.source, self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// One source of settings, already in JSON shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub source: String,
    pub value: Value,
}

impl Layer {
    /// Read a TOML file. `Ok(None)` when it does not exist.
    pub fn from_toml_file(path: &Path) -> Result<Option<Layer>, ConfigError> {
        let source = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ConfigError { source, key: String::new(), message: format!("cannot read: {e}") }),
        };
        Layer::from_toml_str(&source, &text).map(Some)
    }

    pub fn from_toml_str(source: &str, text: &str) -> Result<Layer, ConfigError> {
        let value: toml::Table = toml::from_str(text).map_err(|e| ConfigError {
            source: source.to_owned(),
            key: String::new(),
            message: redact_literals(e.message()) + &toml_location(text, e.span()),
        })?;
        let value = serde_json::to_value(value).map_err(|e| ConfigError {
            source: source.to_owned(),
            key: String::new(),
            message: e.to_string(),
        })?;
        Ok(Layer { source: source.to_owned(), value })
    }

    /// Settings from the client. A `{"quill": {...}}` wrapper (VS Code's section style) is removed.
    pub fn from_client(source: &str, value: Value) -> Layer {
        let value = match value {
            Value::Object(mut map) if map.len() == 1 && map.contains_key("quill") => {
                map.remove("quill").unwrap_or(Value::Null)
            }
            Value::Null => Value::Object(Default::default()),
            v => v,
        };
        Layer { source: source.to_owned(), value }
    }

    /// Check this layer alone (shape, types, unknown keys).
    pub fn check(&self) -> Result<(), ConfigError> {
        parse(&self.source, &self.value).map(|_| ())
    }
}

fn toml_location(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else { return String::new() };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    format!(" (line {line})")
}

fn parse(source: &str, value: &Value) -> Result<Config, ConfigError> {
    serde_path_to_error::deserialize::<_, Config>(value).map_err(|e| {
        let path = e.path().to_string();
        ConfigError {
            source: source.to_owned(),
            key: if path == "." { String::new() } else { path },
            message: redact_literals(&e.into_inner().to_string()),
        }
    })
}

/// serde quotes offending values in its messages; a long one may be a pasted secret.
fn redact_literals(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(open) = rest.find(['"', '`']) {
        let quote = rest.as_bytes()[open] as char;
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        let Some(close) = rest.find(quote) else { break };
        let inner = &rest[..close];
        if inner.len() > 32 {
            out.push_str("<redacted>")
        } else {
            out.push_str(inner)
        }
        out.push(quote);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Merge `over` into `base`: tables merge by key, anything else replaces.
pub fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// The result of resolving layers: the config, or `None` if even the valid layers do not form one.
#[derive(Debug)]
pub struct Resolved {
    pub config: Option<Config>,
    pub errors: Vec<ConfigError>,
}

/// Validate each layer, merge the valid ones in order, and validate the result.
pub fn resolve(layers: &[Layer]) -> Resolved {
    let mut errors = Vec::new();
    let mut merged = Value::Object(Default::default());
    let mut sources = Vec::new();
    for layer in layers {
        match layer.check() {
            Ok(()) => {
                merge(&mut merged, &layer.value);
                sources.push(layer.source.as_str());
            }
            Err(e) => errors.push(e),
        }
    }
    let merged_source = if sources.is_empty() { "defaults".to_owned() } else { sources.join(" + ") };
    let config = match parse(&merged_source, &merged) {
        Ok(c) => match c.validate() {
            Ok(()) => Some(c),
            Err((key, message)) => {
                errors.push(ConfigError { source: merged_source, key, message });
                None
            }
        },
        Err(e) => {
            errors.push(e);
            None
        }
    };
    Resolved { config, errors }
}

/// The config files on disk for a workspace, lowest precedence first.
pub fn file_layers(workspace_root: Option<&Path>) -> (Vec<Layer>, Vec<ConfigError>) {
    let mut paths: Vec<PathBuf> = Vec::new();
    if let Some(root) = workspace_root {
        paths.push(root.join("quill.toml"));
    }
    if let Some(path) = user_config_path() {
        paths.push(path);
    }
    let mut layers = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match Layer::from_toml_file(&path) {
            Ok(Some(l)) => layers.push(l),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    (layers, errors)
}

/// `$XDG_CONFIG_HOME/quill/config.toml`, falling back to `~/.config` (and `%APPDATA%` on Windows).
pub fn user_config_path() -> Option<PathBuf> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let base = non_empty("XDG_CONFIG_HOME")
        .or_else(|| non_empty("HOME").map(|h| h.join(".config")))
        .or_else(|| non_empty("APPDATA"))?;
    Some(base.join("quill").join("config.toml"))
}

/// The JSON Schema of the config, as shipped in `docs/config.schema.json`.
pub fn json_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Config)).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layer(source: &str, v: Value) -> Layer {
        Layer::from_client(source, v)
    }

    #[test]
    fn later_layers_win_and_tables_merge() {
        let file = Layer::from_toml_str(
            "quill.toml",
            "[providers.local]\nkind = \"ollama\"\nmodel = \"qwen2.5-coder\"\n[completion]\nprovider = \"local\"\n",
        )
        .expect("toml");
        let client = layer(
            "initializationOptions",
            json!({"quill": {"providers": {"local": {"kind": "ollama", "model": "codellama"}}}}),
        );
        let r = resolve(&[file, client]);
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let c = r.config.expect("config");
        assert_eq!(c.providers["local"].model.as_deref(), Some("codellama"));
        assert_eq!(c.route(Feature::Completion).map(|(n, _)| n), Some("local"));
        assert_eq!(c.documents.max_parse_bytes, DEFAULT_MAX_PARSE_BYTES);
    }

    #[test]
    fn errors_name_the_source_and_key() {
        let bad = layer("settings", json!({"providers": {"x": {"kind": "openai", "modle": "gpt"}}}));
        let r = resolve(&[bad]);
        assert_eq!(r.errors.len(), 1);
        let e = r.errors[0].to_string();
        assert!(e.starts_with("settings: `providers.x.modle`: unknown field `modle`"), "{e}");
        // The invalid layer is skipped; defaults remain.
        assert_eq!(r.config, Some(Config::default()));

        let r = resolve(&[layer("s", json!({"documents": {"max_parse_bytes": "big"}}))]);
        assert_eq!(r.errors[0].key, "documents.max_parse_bytes");

        let r = resolve(&[layer("s", json!({"providers": {"x": {"kind": "opneai"}}}))]);
        assert_eq!(r.errors[0].key, "providers.x.kind");

        let r = resolve(&[layer("s", json!({"chat": {"provider": "nope"}}))]);
        assert!(r.config.is_none());
        assert_eq!(r.errors[0].key, "chat.provider");
        assert!(r.errors[0].message.contains("no provider named `nope`"));

        for (bad, key) in [
            (json!({"chat": {"context_tokens": 100}}), "chat.context_tokens"),
            (json!({"chat": {"context_share": 1.5}}), "chat.context_share"),
            (json!({"chat": {"max_tokens": 0}}), "chat.max_tokens"),
            (json!({"edit": {"temperature": 3.0}}), "edit.temperature"),
            (json!({"edit": {"max_tokens": 0}}), "edit.max_tokens"),
        ] {
            let r = resolve(&[layer("s", bad)]);
            assert!(r.config.is_none(), "{key}");
            assert_eq!(r.errors[0].key, key);
        }
    }

    #[test]
    fn pasted_keys_are_refused_without_being_echoed() {
        let secret = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789";
        let r = resolve(&[layer("s", json!({"providers": {"x": {"kind": "openai", "api_key_env": secret}}}))]);
        let shown = format!("{:?} {}", r.errors, r.errors[0]);
        assert!(!shown.contains(secret), "{shown}");
        assert_eq!(r.errors[0].key, "providers.x.api_key_env");
        let r = resolve(&[layer("s", json!({"providers": {"x": {"kind": secret}}}))]);
        let shown = format!("{:?}", r.errors);
        assert!(!shown.contains(secret), "{shown}");
    }

    #[test]
    fn toml_syntax_errors_report_a_line() {
        let e = Layer::from_toml_str("quill.toml", "[completion]\nprovider = \n").expect_err("bad toml");
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn secrets_are_redacted() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s} {s:?}"), "<redacted> Secret(<redacted>)");
    }

    #[test]
    fn the_shipped_schema_is_current() {
        let schema = serde_json::to_string_pretty(&json_schema()).expect("schema") + "\n";
        expect_test::expect_file!["../docs/config.schema.json"].assert_eq(&schema);
    }
}
