//! LLM providers: one file per vendor wire protocol, behind one [`Provider`] type with two
//! operations, [`Provider::complete`] (fill-in-the-middle for autocomplete) and [`Provider::chat`].
//! Both answer with an [`EventStream`] of text deltas ending in [`Event::Done`].
//!
//! Architecture Invariant: this is the only module that makes HTTP calls (`http.rs`), and secrets
//! leave it only inside request headers marked sensitive; every error text is scrubbed of them.

pub mod discover;
mod error;
pub mod eventstream;
pub mod fim;
mod http;
pub mod sigv4;
pub mod sse;
mod types;

mod anthropic;
mod azure;
mod bedrock;
mod compatible;
mod fireworks;
mod gemini;
mod llamacpp;
mod ollama;
mod openai;
mod vertex;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

pub use error::{ErrorKind, ProviderError, TimeoutPhase, scrub};
pub use http::{EventStream, parse_recorded};
pub use types::*;

use crate::config::{Config, Feature, ProviderConfig, ProviderKind, Secret};
use anthropic::ClaudeHost;
use http::{Framing, Parser, Retry};

/// Which operation a stream answers; parsers differ between them for some vendors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Complete,
    Chat,
}

/// What every request of one provider shares: its settings, credentials and HTTP client.
pub(crate) struct Ctx {
    /// The provider's name in config.
    pub name: String,
    pub kind: ProviderKind,
    pub config: ProviderConfig,
    /// The model after feature overrides.
    pub model: Option<String>,
    pub key: Option<Secret>,
    /// The variable the key came from (or should have), for error messages.
    pub key_env: Option<String>,
    pub client: reqwest::Client,
    /// Until when a 429's `retry-after` asks us to stay away.
    cooldown: Mutex<Option<Instant>>,
    /// Other credentials to scrub from messages (AWS secret, OAuth tokens).
    extra_secrets: Mutex<Vec<Secret>>,
    /// Where environment variables are read (the process environment, or a test's map).
    env: Env,
}

/// A source of environment variables. Tests pass a map, so no test touches the process
/// environment.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process environment.
pub fn process_env() -> Env {
    Arc::new(|k| std::env::var(k).ok())
}

/// An environment made of these pairs only.
pub fn env_from(pairs: &[(&str, &str)]) -> Env {
    let map: std::collections::HashMap<String, String> =
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    Arc::new(move |k| map.get(k).cloned())
}

impl Ctx {
    fn new(name: &str, config: &ProviderConfig, model: Option<String>, env: Env) -> Result<Ctx, ProviderError> {
        let kind = config.kind;
        let key_env = config.api_key_env.clone().or_else(|| default_key_env(kind).map(str::to_owned));
        let key = key_env.as_deref().and_then(|var| env(var)).filter(|v| !v.trim().is_empty());
        let client = http::client(Duration::from_millis(config.connect_timeout_ms))
            .map_err(|e| ProviderError::new(name, kind.as_str(), ErrorKind::Config, e))?;
        Ok(Ctx {
            name: name.to_owned(),
            kind,
            config: config.clone(),
            model,
            key: key.map(|k| Secret::new(k.trim().to_owned())),
            key_env,
            client,
            cooldown: Mutex::new(None),
            extra_secrets: Mutex::new(Vec::new()),
            env,
        })
    }

    /// An environment variable, non-empty.
    pub fn var(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.trim().is_empty())
    }

    #[doc(hidden)]
    pub(crate) fn for_tests(kind: ProviderKind) -> Ctx {
        let config = ProviderConfig::new(kind);
        Ctx {
            name: kind.as_str().to_owned(),
            kind,
            config,
            model: None,
            key: None,
            key_env: None,
            client: http::client(Duration::from_millis(5_000)).unwrap_or_default(),
            cooldown: Mutex::new(None),
            extra_secrets: Mutex::new(Vec::new()),
            env: env_from(&[]),
        }
    }

    pub fn error(&self, kind: ErrorKind, detail: impl Into<String>) -> ProviderError {
        let detail = scrub(&detail.into(), &self.secrets());
        ProviderError::new(&self.name, self.kind.as_str(), kind, detail)
    }

    pub fn config_error(&self, detail: impl Into<String>) -> ProviderError {
        self.error(ErrorKind::Config, format!("provider `{}` ({}): {}", self.name, self.kind.as_str(), detail.into()))
    }

    pub fn timeout(&self, phase: TimeoutPhase) -> ProviderError {
        let after = match phase {
            TimeoutPhase::Connect => Duration::from_millis(self.config.connect_timeout_ms),
            TimeoutPhase::FirstByte => self.first_byte_timeout(),
            TimeoutPhase::Idle => self.idle_timeout(),
            TimeoutPhase::Total => self.total_timeout(),
        };
        self.error(ErrorKind::Timeout { phase, after }, String::new())
    }

    /// A failure to send or to get an answer's head.
    pub fn transport_error(&self, e: &reqwest::Error) -> ProviderError {
        if e.is_timeout() {
            return self.timeout(TimeoutPhase::Connect);
        }
        self.error(ErrorKind::Connect, http::error_chain(e))
    }

    /// The key, or the error saying which variable to set.
    pub fn require_key(&self) -> Result<&Secret, ProviderError> {
        self.key.as_ref().ok_or_else(|| {
            let env = self.key_env.clone().unwrap_or_else(|| "the key variable".into());
            self.error(ErrorKind::MissingKey { env }, String::new())
        })
    }

    /// The model, or the error saying which key to set.
    pub fn require_model(&self) -> Result<&str, ProviderError> {
        self.model.as_deref().ok_or_else(|| self.config_error(format!("set `providers.{}.model`", self.name)))
    }

    /// `base_url` without a trailing slash, or the vendor's default.
    pub fn base_url(&self, default: &str) -> String {
        self.config.base_url.as_deref().unwrap_or(default).trim_end_matches('/').to_owned()
    }

    pub fn add_secret(&self, s: &Secret) {
        let mut list = self.extra_secrets.lock().unwrap_or_else(|e| e.into_inner());
        if !list.contains(s) {
            list.push(s.clone());
        }
    }

    pub fn secrets(&self) -> Vec<String> {
        let mut v: Vec<String> = self.key.iter().map(|k| k.expose().to_owned()).collect();
        let extra = self.extra_secrets.lock().unwrap_or_else(|e| e.into_inner());
        v.extend(extra.iter().map(|s| s.expose().to_owned()));
        v
    }

    pub fn first_byte_timeout(&self) -> Duration {
        Duration::from_millis(self.config.first_byte_timeout_ms)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.config.idle_timeout_ms)
    }
    pub fn total_timeout(&self) -> Duration {
        Duration::from_millis(self.config.total_timeout_ms)
    }

    pub fn set_cooldown(&self, after: Duration) {
        let until = Instant::now() + after;
        let mut c = self.cooldown.lock().unwrap_or_else(|e| e.into_inner());
        if c.is_none_or(|t| t < until) {
            *c = Some(until);
        }
    }

    /// Honour a 429's `retry-after`: autocomplete fails at once rather than send a request that
    /// will be refused; chat waits when the wait is short.
    pub async fn wait_for_cooldown(&self, retry: Retry) -> Result<(), ProviderError> {
        let until = *self.cooldown.lock().unwrap_or_else(|e| e.into_inner());
        let Some(until) = until else { return Ok(()) };
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        if retry == Retry::Transient && left <= Duration::from_secs(10) {
            tokio::time::sleep(left).await;
            return Ok(());
        }
        let mut e = self.error(ErrorKind::RateLimited, "waiting out an earlier retry-after");
        e.retry_after = Some(left);
        Err(e)
    }
}

/// The environment variable each kind reads its key from unless `api_key_env` says otherwise.
pub fn default_key_env(kind: ProviderKind) -> Option<&'static str> {
    match kind {
        ProviderKind::Openai => Some("OPENAI_API_KEY"),
        ProviderKind::Anthropic => Some("ANTHROPIC_API_KEY"),
        ProviderKind::Gemini => Some("GEMINI_API_KEY"),
        ProviderKind::Fireworks => Some("FIREWORKS_API_KEY"),
        ProviderKind::AzureOpenai => Some("AZURE_OPENAI_API_KEY"),
        ProviderKind::Bedrock => Some("AWS_BEARER_TOKEN_BEDROCK"),
        ProviderKind::QuillGateway => Some("QUILL_GATEWAY_TOKEN"),
        ProviderKind::Vertex | ProviderKind::OpenaiCompatible | ProviderKind::Ollama | ProviderKind::Llamacpp => None,
    }
}

/// The vendor implementations, a closed set.
enum Backend {
    OpenAi(openai::OpenAi),
    Anthropic(anthropic::Anthropic),
    Gemini(gemini::Gemini),
    Fireworks(fireworks::Fireworks),
    Azure(azure::Azure),
    Bedrock(bedrock::Bedrock),
    Vertex(vertex::Vertex),
    Compatible(compatible::Compatible),
    Ollama(ollama::Ollama),
    LlamaCpp(llamacpp::LlamaCpp),
}

/// A configured LLM endpoint. Cheap to share (`Arc` inside); requests on it run concurrently.
#[derive(Clone)]
pub struct Provider {
    ctx: Arc<Ctx>,
    backend: Arc<Backend>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider").field("name", &self.ctx.name).field("kind", &self.ctx.kind).finish()
    }
}

impl Provider {
    /// Build a provider from its config, reading keys from the process environment. Fails when
    /// a required setting or key is missing.
    pub fn new(name: &str, config: &ProviderConfig) -> Result<Provider, ProviderError> {
        Self::build(name, config, config.model.clone(), process_env())
    }

    /// The provider that serves `feature`, with the feature's model override applied.
    pub fn for_feature(config: &Config, feature: Feature) -> Result<Provider, ProviderError> {
        let Some((name, pc)) = config.route(feature) else {
            return Err(ProviderError::new(
                feature.as_str(),
                "none",
                ErrorKind::NotConfigured,
                discover::setup_advice(feature),
            ));
        };
        let model = config.feature(feature).model.clone().or_else(|| pc.model.clone());
        Self::build(name, pc, model, process_env())
    }

    /// Build with an explicit model and environment.
    pub fn build(
        name: &str,
        config: &ProviderConfig,
        model: Option<String>,
        env: Env,
    ) -> Result<Provider, ProviderError> {
        let ctx = Ctx::new(name, config, model, env)?;
        let backend = match config.kind {
            ProviderKind::Openai => Backend::OpenAi(openai::OpenAi::new(&ctx)?),
            ProviderKind::Anthropic => Backend::Anthropic(anthropic::Anthropic::new(&ctx)?),
            ProviderKind::Gemini => Backend::Gemini(gemini::Gemini::new(&ctx)?),
            ProviderKind::Fireworks => Backend::Fireworks(fireworks::Fireworks::new(&ctx)?),
            ProviderKind::AzureOpenai => Backend::Azure(azure::Azure::new(&ctx)?),
            ProviderKind::Bedrock => Backend::Bedrock(bedrock::Bedrock::new(&ctx)?),
            ProviderKind::Vertex => Backend::Vertex(vertex::Vertex::new(&ctx)?),
            ProviderKind::OpenaiCompatible | ProviderKind::QuillGateway => {
                Backend::Compatible(compatible::Compatible::new(&ctx)?)
            }
            ProviderKind::Ollama => Backend::Ollama(ollama::Ollama::new(&ctx)?),
            ProviderKind::Llamacpp => Backend::LlamaCpp(llamacpp::LlamaCpp::new(&ctx)?),
        };
        Ok(Provider { ctx: Arc::new(ctx), backend: Arc::new(backend) })
    }

    pub fn name(&self) -> &str {
        &self.ctx.name
    }

    pub fn kind(&self) -> ProviderKind {
        self.ctx.kind
    }

    pub fn model(&self) -> Option<&str> {
        self.ctx.model.as_deref()
    }

    /// Whether [`ChatRequest::prefill`] is honoured (the answer continues the given text).
    pub fn supports_prefill(&self) -> bool {
        matches!(
            self.ctx.kind,
            ProviderKind::Anthropic
                | ProviderKind::Bedrock
                | ProviderKind::Vertex
                | ProviderKind::Gemini
                | ProviderKind::Ollama
        )
    }

    /// Fill in the middle, for autocomplete. Never retried: a late completion is useless.
    pub async fn complete(&self, req: &CompletionRequest) -> Result<EventStream, ProviderError> {
        let ctx = &self.ctx;
        match &*self.backend {
            Backend::OpenAi(b) => b.complete(ctx, req).await,
            Backend::Anthropic(b) => b.complete(ctx, req).await,
            Backend::Gemini(b) => b.complete(ctx, req).await,
            Backend::Fireworks(b) => b.complete(ctx, req).await,
            Backend::Azure(b) => b.complete(ctx, req).await,
            Backend::Bedrock(b) => b.complete(ctx, req).await,
            Backend::Vertex(b) => b.complete(ctx, req).await,
            Backend::Compatible(b) => b.complete(ctx, req).await,
            Backend::Ollama(b) => b.complete(ctx, req).await,
            Backend::LlamaCpp(b) => b.complete(ctx, req).await,
        }
    }

    /// A chat answer. For chat and edit, transient failures before the first byte are retried.
    pub async fn chat(&self, req: &ChatRequest, feature: Feature) -> Result<EventStream, ProviderError> {
        let retry = if feature == Feature::Completion { Retry::Never } else { Retry::Transient };
        self.chat_with(req, retry).await
    }

    async fn chat_with(&self, req: &ChatRequest, retry: Retry) -> Result<EventStream, ProviderError> {
        let ctx = &self.ctx;
        match &*self.backend {
            Backend::OpenAi(b) => b.chat(ctx, req, retry).await,
            Backend::Anthropic(b) => b.chat(ctx, req, retry).await,
            Backend::Gemini(b) => b.chat(ctx, req, retry).await,
            Backend::Fireworks(b) => b.chat(ctx, req, retry).await,
            Backend::Azure(b) => b.chat(ctx, req, retry).await,
            Backend::Bedrock(b) => b.chat(ctx, req, retry).await,
            Backend::Vertex(b) => b.chat(ctx, req, retry).await,
            Backend::Compatible(b) => b.chat(ctx, req, retry).await,
            Backend::Ollama(b) => b.chat(ctx, req, retry).await,
            Backend::LlamaCpp(b) => b.chat(ctx, req, retry).await,
        }
    }

    /// Send a one-token request and wait for its end: the latency of a whole round trip.
    pub async fn ping(&self) -> Result<Duration, ProviderError> {
        let started = Instant::now();
        let req = ChatRequest {
            messages: vec![Message::new(Role::User, "Reply with the single word: ok")],
            max_tokens: 1,
            temperature: 0.0,
            ..Default::default()
        };
        let stream = self.chat_with(&req, Retry::Never).await?;
        stream.text().await?;
        Ok(started.elapsed())
    }
}

/// The framing and parser for a kind's answers, for [`parse_recorded`].
pub(crate) fn parser_for(kind: ProviderKind, op: Op) -> (Framing, Box<dyn Parser>) {
    match (kind, op) {
        (
            ProviderKind::Openai
            | ProviderKind::AzureOpenai
            | ProviderKind::Fireworks
            | ProviderKind::OpenaiCompatible
            | ProviderKind::QuillGateway,
            Op::Complete,
        ) => (Framing::Sse, Box::new(openai::CompletionsParser::default())),
        (
            ProviderKind::Openai
            | ProviderKind::AzureOpenai
            | ProviderKind::Fireworks
            | ProviderKind::OpenaiCompatible
            | ProviderKind::QuillGateway
            | ProviderKind::Llamacpp,
            Op::Chat,
        ) => (Framing::Sse, Box::new(openai::ChatParser::default())),
        (ProviderKind::Anthropic | ProviderKind::Vertex, _) => {
            (Framing::Sse, Box::new(anthropic::MessagesParser::default()))
        }
        (ProviderKind::Bedrock, _) => (Framing::EventStream, Box::new(bedrock::InvokeParser::default())),
        (ProviderKind::Gemini, _) => (Framing::Sse, Box::new(gemini::GenerateParser::default())),
        (ProviderKind::Ollama, Op::Complete) => (Framing::Ndjson, Box::new(ollama::GenerateParser::default())),
        (ProviderKind::Ollama, Op::Chat) => (Framing::Ndjson, Box::new(ollama::ChatParser::default())),
        (ProviderKind::Llamacpp, Op::Complete) => (Framing::Sse, Box::new(llamacpp::NativeParser::default())),
    }
}
