//! OpenAI's Chat Completions and legacy Completions wire, and what every OpenAI-shaped endpoint
//! shares (Azure, Fireworks, vLLM, LM Studio, llama.cpp `/v1`, the Quill gateway): request bodies,
//! the two stream parsers, the completion-mode plan and the request path ([`Wire`]).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::config::CompletionMode;

use super::{
    ChatRequest, CompletionRequest, Ctx, ErrorKind, Event, EventStream, Finish, ProviderError, Role, StopReason, Usage,
    fim,
    http::{self, Fault, Frame, Framing, Outgoing, Parser, Retry},
};

const DEFAULT_BASE: &str = "https://api.openai.com/v1";

/// The `openai` kind: api.openai.com (or a proxy of it), Bearer key.
pub(crate) struct OpenAi(Wire);

impl OpenAi {
    pub fn new(ctx: &Ctx) -> Result<Self, ProviderError> {
        ctx.require_key()?;
        let model = ctx.require_model()?.to_owned();
        let base = ctx.base_url(DEFAULT_BASE);
        // Only the instruct and base completion models take `suffix`; chat models are asked to
        // fill the gap in a chat.
        let legacy = model.contains("instruct") || model == "davinci-002" || model == "babbage-002";
        let fim = Fim::plan(
            ctx,
            &[CompletionMode::Suffix, CompletionMode::Template, CompletionMode::Prompt, CompletionMode::Chat],
            || Ok(if legacy { Fim::Suffix } else { Fim::Chat }),
        )?;
        Ok(OpenAi(Wire {
            chat_url: format!("{base}/chat/completions"),
            completions_url: format!("{base}/completions"),
            model: Some(model),
            auth: Auth::Bearer,
            dialect: Dialect::OPENAI,
            fim,
        }))
    }

    pub async fn complete(&self, ctx: &Arc<Ctx>, req: &CompletionRequest) -> Result<EventStream, ProviderError> {
        self.0.complete(ctx, req).await
    }

    pub async fn chat(&self, ctx: &Arc<Ctx>, req: &ChatRequest, retry: Retry) -> Result<EventStream, ProviderError> {
        self.0.chat(ctx, req, retry).await
    }
}

/// How one server's dialect of the OpenAI wire differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dialect {
    /// Chat's token-limit field. OpenAI renamed it `max_completion_tokens` (its reasoning models
    /// refuse `max_tokens`); other servers still read `max_tokens`.
    pub chat_max_field: &'static str,
    /// OpenAI and Azure refuse more than four stop sequences with a 400.
    pub max_stops: Option<usize>,
    /// Ask for the usage chunk. Fireworks sends it unasked.
    pub include_usage: bool,
}

impl Dialect {
    pub const OPENAI: Dialect =
        Dialect { chat_max_field: "max_completion_tokens", max_stops: Some(4), include_usage: true };
    /// Servers that speak the wire as it was before OpenAI renamed the token limit.
    pub const COMPATIBLE: Dialect = Dialect { chat_max_field: "max_tokens", max_stops: None, include_usage: true };
}

/// How a request carries the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    /// `Authorization: Bearer <key>`, when there is a key (checked when the provider is built
    /// for the kinds that require one).
    Bearer,
    /// Azure's `api-key: <key>`.
    ApiKey,
}

/// How autocomplete is asked of an endpoint, decided once when the provider is built.
#[derive(Debug, Clone)]
pub(crate) enum Fim {
    /// `prompt` and `suffix` to `/completions`; the server applies the model's template.
    Suffix,
    /// The model family's template rendered into `prompt`, without `suffix`.
    Template(fim::Template),
    /// Only the text before the cursor, as `prompt`.
    Prompt,
    /// A chat model asked to fill the gap at a marker.
    Chat,
}

impl Fim {
    /// The plan for `completion_mode`: `auto` decides `Auto`; a mode outside `available` is a
    /// config error that lists the ones that work.
    pub fn plan(
        ctx: &Ctx,
        available: &[CompletionMode],
        auto: impl FnOnce() -> Result<Fim, ProviderError>,
    ) -> Result<Fim, ProviderError> {
        let mode = ctx.config.completion_mode;
        if mode == CompletionMode::Auto {
            return auto();
        }
        if !available.contains(&mode) {
            let names: Vec<String> = available.iter().map(|m| format!("`{}`", mode_name(*m))).collect();
            return Err(ctx.config_error(format!(
                "completion_mode `{}` is not available for kind `{}`; use {} (or `auto`)",
                mode_name(mode),
                ctx.kind.as_str(),
                names.join(", ")
            )));
        }
        Ok(match mode {
            CompletionMode::Suffix => Fim::Suffix,
            CompletionMode::Prompt => Fim::Prompt,
            CompletionMode::Template => match template(ctx)? {
                Some(t) => Fim::Template(t),
                None => {
                    let model = ctx.model.as_deref().map(|m| format!(" for model `{m}`")).unwrap_or_default();
                    return Err(ctx.config_error(format!(
                        "completion_mode `template` needs a FIM template, and none is known{model}: set \
                         `providers.{}.fim_template` to a family (starcoder, deepseek, codellama, qwen, codestral, \
                         codegemma) or to a custom template",
                        ctx.name
                    )));
                }
            },
            _ => Fim::Chat,
        })
    }

    /// `Auto` for servers that do not apply templates themselves: the model's template when one
    /// is known, else a chat.
    pub fn template_or_chat(ctx: &Ctx) -> Result<Fim, ProviderError> {
        Ok(template(ctx)?.map_or(Fim::Chat, Fim::Template))
    }
}

/// The FIM template from `fim_template` or the model name, if any.
fn template(ctx: &Ctx) -> Result<Option<fim::Template>, ProviderError> {
    fim::Template::resolve(ctx.config.fim_template.as_ref(), ctx.model.as_deref())
        .map_err(|e| ctx.config_error(format!("`providers.{}.fim_template`: {e}", ctx.name)))
}

fn mode_name(m: CompletionMode) -> &'static str {
    match m {
        CompletionMode::Auto => "auto",
        CompletionMode::Suffix => "suffix",
        CompletionMode::Template => "template",
        CompletionMode::Infill => "infill",
        CompletionMode::Prompt => "prompt",
        CompletionMode::Chat => "chat",
    }
}

/// One OpenAI-shaped endpoint: where its two operations go and how it is spoken to.
pub(crate) struct Wire {
    pub chat_url: String,
    pub completions_url: String,
    /// The body's `model`; omitted when `None` (a single-model server, Azure's classic surface).
    pub model: Option<String>,
    pub auth: Auth,
    pub dialect: Dialect,
    pub fim: Fim,
}

impl Wire {
    /// Autocomplete, never retried.
    pub async fn complete(&self, ctx: &Arc<Ctx>, req: &CompletionRequest) -> Result<EventStream, ProviderError> {
        match &self.fim {
            Fim::Chat => {
                let chat = fim::chat_prompt(req, false);
                Ok(self.chat(ctx, &chat, Retry::Never).await?.with_filter(fim::chat_filter(false)))
            }
            Fim::Suffix => {
                let body = completions_body(
                    self.model.as_deref(),
                    &req.prefix,
                    Some(&req.suffix),
                    req,
                    &req.stop,
                    self.dialect,
                );
                self.completions(ctx, &body).await.map_err(|e| suffix_hint(ctx, e))
            }
            Fim::Prompt => {
                let body = completions_body(self.model.as_deref(), &req.prefix, None, req, &req.stop, self.dialect);
                self.completions(ctx, &body).await
            }
            Fim::Template(t) => {
                // Never `suffix` here: the template already holds it, and vLLM refuses the field.
                let stops = fim::stops(req, Some(t));
                let body = completions_body(self.model.as_deref(), &t.render(req), None, req, &stops, self.dialect);
                Ok(self.completions(ctx, &body).await?.with_filter(fim::strip_filter(t.stop_tokens().to_vec())))
            }
        }
    }

    pub async fn chat(&self, ctx: &Arc<Ctx>, req: &ChatRequest, retry: Retry) -> Result<EventStream, ProviderError> {
        if req.prefill.is_some() {
            // The wire has no way to continue an assistant turn; callers check supports_prefill.
            tracing::debug!(provider = %ctx.name, "prefill dropped: not supported on the OpenAI wire");
        }
        let body = chat_body(self.model.as_deref(), req, self.dialect);
        let resp = self.send(ctx, &self.chat_url, &body, retry).await?;
        Ok(EventStream::new(ctx, resp, Framing::Sse, Box::new(ChatParser::default())))
    }

    async fn completions(&self, ctx: &Arc<Ctx>, body: &Value) -> Result<EventStream, ProviderError> {
        let resp = self.send(ctx, &self.completions_url, body, Retry::Never).await?;
        Ok(EventStream::new(ctx, resp, Framing::Sse, Box::new(CompletionsParser::default())))
    }

    async fn send(&self, ctx: &Ctx, url: &str, body: &Value, retry: Retry) -> Result<reqwest::Response, ProviderError> {
        let mut out = Outgoing::post_json(url.to_owned(), body);
        if let Some(key) = &ctx.key {
            let set = match self.auth {
                Auth::Bearer => out.secret_header("authorization", &format!("Bearer {}", key.expose())),
                Auth::ApiKey => out.secret_header("api-key", key.expose()),
            };
            set.map_err(|e| ctx.error(ErrorKind::Config, e))?;
        }
        http::send(ctx, &out, retry).await.map_err(tidy)
    }
}

/// Vendor messages end in a full stop, and the error's display adds its own after the detail.
fn tidy(mut e: ProviderError) -> ProviderError {
    let kept = e.detail.trim_end().trim_end_matches('.').len();
    e.detail.truncate(kept);
    e
}

/// vLLM (and OpenAI for chat models) refuse `suffix` with a 400; say which setting avoids it.
fn suffix_hint(ctx: &Ctx, mut e: ProviderError) -> ProviderError {
    if matches!(e.kind, ErrorKind::BadRequest { .. }) && e.detail.to_ascii_lowercase().contains("suffix") {
        e.detail.push_str(&format!(
            " (this server does not take `suffix`: set `providers.{}.completion_mode` to `template` or `chat`)",
            ctx.name
        ));
    }
    e
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

/// The body of a streamed `/chat/completions` request. `prefill` is not sent: the wire cannot
/// continue an assistant turn.
pub(crate) fn chat_body(model: Option<&str>, req: &ChatRequest, d: Dialect) -> Value {
    let mut body = Map::new();
    if let Some(m) = model {
        body.insert("model".into(), m.into());
    }
    stream_fields(&mut body, d);
    let messages: Vec<Value> =
        req.messages.iter().map(|m| json!({"role": role_name(m.role), "content": m.content})).collect();
    body.insert("messages".into(), messages.into());
    limits(&mut body, d.chat_max_field, req.max_tokens, req.temperature, &req.stop, d);
    Value::Object(body)
}

/// The body of a streamed legacy `/completions` request: `prompt`, and `suffix` when the server
/// applies the FIM template itself.
pub(crate) fn completions_body(
    model: Option<&str>,
    prompt: &str,
    suffix: Option<&str>,
    req: &CompletionRequest,
    stops: &[String],
    d: Dialect,
) -> Value {
    let mut body = Map::new();
    if let Some(m) = model {
        body.insert("model".into(), m.into());
    }
    body.insert("prompt".into(), prompt.into());
    if let Some(s) = suffix {
        body.insert("suffix".into(), s.into());
    }
    stream_fields(&mut body, d);
    limits(&mut body, "max_tokens", req.max_tokens, req.temperature, stops, d);
    Value::Object(body)
}

fn stream_fields(body: &mut Map<String, Value>, d: Dialect) {
    body.insert("stream".into(), true.into());
    if d.include_usage {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
}

fn limits(
    body: &mut Map<String, Value>,
    max_field: &str,
    max_tokens: u32,
    temperature: f32,
    stop: &[String],
    d: Dialect,
) {
    // Zero means "unset" in the request types; a server would refuse a limit of 0.
    if max_tokens > 0 {
        body.insert(max_field.into(), max_tokens.into());
    }
    let t = http::json_f32(temperature);
    if !t.is_null() {
        body.insert("temperature".into(), t);
    }
    let stop = &stop[..stop.len().min(d.max_stops.unwrap_or(usize::MAX))];
    if !stop.is_empty() {
        body.insert("stop".into(), stop.into());
    }
}

/// One `data:` object of a Chat Completions or Completions stream. Unknown fields (Azure's
/// content-filter results, `obfuscation`, `timings`) are ignored.
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
    /// Older vLLM sends a flat `{"object":"error","message":…}`.
    #[serde(default)]
    object: Option<String>,
    #[serde(default)]
    message: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    finish_reason: Option<String>,
    /// vLLM: the stop string that matched, when one did.
    #[serde(default)]
    stop_reason: Option<Value>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

/// The state both parsers share: how the answer ended and what it cost, which arrive in
/// different chunks (the usage chunk comes after the `finish_reason` one).
#[derive(Default)]
struct Chunks {
    stop: Option<StopReason>,
    usage: Usage,
}

impl Chunks {
    fn frame(
        &mut self,
        frame: Frame,
        out: &mut Vec<Event>,
        what: &str,
        text: fn(Choice) -> Option<String>,
    ) -> Result<(), Fault> {
        let Frame::Sse(ev) = frame else {
            return Err(Fault::malformed(format!("expected server-sent events carrying {what} objects")));
        };
        match ev.event.as_str() {
            // Older llama.cpp's `error:` line: the error object itself, or words.
            "error" => {
                return Err(match serde_json::from_str::<Value>(&ev.data) {
                    Ok(v) => stream_fault(v.get("error").unwrap_or(&v)),
                    Err(_) => Fault::in_stream(ev.data),
                });
            }
            // A JSON line without `data:` is how some servers report a failure.
            "json" => {
                return Err(match serde_json::from_str::<Value>(&ev.data) {
                    Ok(v) if v.get("error").is_some_and(|e| !e.is_null()) => stream_fault(&v["error"]),
                    _ => Fault::malformed(format!("expected `data:` lines, got `{}`", snippet(&ev.data))),
                });
            }
            _ => {}
        }
        let data = ev.data.trim();
        if data == "[DONE]" {
            out.push(Event::Done(self.finish(self.stop.clone().unwrap_or_default())));
            return Ok(());
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| {
            Fault::malformed(format!("expected a {what} JSON object after `data:` ({e}), got `{}`", snippet(data)))
        })?;
        if let Some(err) = chunk.error.as_ref().filter(|e| !e.is_null()) {
            return Err(stream_fault(err));
        }
        if chunk.object.as_deref() == Some("error") {
            let msg = chunk.message.as_ref().and_then(Value::as_str).unwrap_or("an error without a message");
            return Err(Fault::in_stream(msg));
        }
        for choice in chunk.choices.into_iter().flatten() {
            // `n` is always 1 here; other indexes would be a second answer interleaved.
            if choice.index.unwrap_or(0) != 0 {
                continue;
            }
            if let Some(reason) = &choice.finish_reason {
                self.stop = Some(stop_reason(reason, choice.stop_reason.as_ref()));
            }
            if let Some(t) = text(choice) {
                out.push(Event::Delta(t));
            }
        }
        if let Some(u) = chunk.usage {
            self.usage = Usage { input_tokens: u.prompt_tokens, output_tokens: u.completion_tokens };
        }
        Ok(())
    }

    fn finish(&self, stop_reason: StopReason) -> Finish {
        Finish { stop_reason, usage: self.usage }
    }

    /// Some servers close after the `finish_reason` chunk without `[DONE]`: the answer is whole.
    fn eof(&mut self) -> Option<Finish> {
        let stop = self.stop.clone()?;
        Some(self.finish(stop))
    }
}

fn stop_reason(reason: &str, matched: Option<&Value>) -> StopReason {
    match reason {
        "stop" if matched.is_some_and(Value::is_string) => StopReason::StopSequence,
        "stop" => StopReason::EndTurn,
        "length" => StopReason::MaxTokens,
        "content_filter" => StopReason::ContentFilter,
        other => StopReason::Other(other.to_owned()),
    }
}

/// An error object that arrived inside a 200 stream, classified by its code and type.
pub(crate) fn stream_fault(err: &Value) -> Fault {
    let mut codes: Vec<String> = Vec::new();
    for key in ["code", "type", "status"] {
        match err.get(key) {
            Some(Value::String(s)) if !s.is_empty() && s != "error" => codes.push(s.clone()),
            Some(Value::Number(n)) => codes.push(n.to_string()),
            _ => {}
        }
    }
    let message = match err {
        Value::String(s) => s.clone(),
        _ => err.get("message").and_then(Value::as_str).unwrap_or_default().to_owned(),
    };
    let has = |pred: &dyn Fn(&str) -> bool| codes.iter().any(|c| pred(&c.to_ascii_lowercase()));
    let kind = if has(&|c| c == "insufficient_quota") {
        ErrorKind::QuotaExceeded
    } else if has(&|c| c == "429" || c.contains("rate_limit") || c.contains("too_many_requests")) {
        ErrorKind::RateLimited
    } else if has(&|c| c == "503" || c == "529" || c.contains("overloaded") || c.contains("unavailable")) {
        let status = if has(&|c| c == "529") { 529 } else { 503 };
        ErrorKind::Overloaded { status }
    } else {
        ErrorKind::InStream
    };
    let detail = match codes.first() {
        Some(code) if !message.contains(code.as_str()) => {
            if message.is_empty() {
                code.clone()
            } else {
                format!("{code}: {message}")
            }
        }
        _ if message.is_empty() => "an error without a message".to_owned(),
        _ => message,
    };
    Fault { kind, detail: detail.trim_end().trim_end_matches('.').to_owned() }
}

fn snippet(s: &str) -> String {
    const MAX: usize = 120;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Chat Completions stream: `chat.completion.chunk` objects, text in `choices[0].delta.content`.
#[derive(Default)]
pub(crate) struct ChatParser(Chunks);

impl Parser for ChatParser {
    fn frame(&mut self, frame: Frame, out: &mut Vec<Event>) -> Result<(), Fault> {
        self.0.frame(frame, out, "chat.completion.chunk", |c| c.delta.and_then(|d| d.content))
    }

    fn eof(&mut self) -> Option<Finish> {
        self.0.eof()
    }
}

/// Legacy Completions stream: `text_completion` objects, text in `choices[0].text`.
#[derive(Default)]
pub(crate) struct CompletionsParser(Chunks);

impl Parser for CompletionsParser {
    fn frame(&mut self, frame: Frame, out: &mut Vec<Event>) -> Result<(), Fault> {
        self.0.frame(frame, out, "text_completion", |c| c.text)
    }

    fn eof(&mut self) -> Option<Finish> {
        self.0.eof()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::sse::SseEvent;

    fn run(p: &mut dyn Parser, datas: &[&str]) -> Result<Vec<Event>, Fault> {
        let mut out = Vec::new();
        for d in datas {
            p.frame(Frame::Sse(SseEvent { event: String::new(), data: (*d).to_owned() }), &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn chat_body_fields() {
        let req = ChatRequest {
            messages: vec![
                crate::provider::Message::new(Role::System, "sys"),
                crate::provider::Message::new(Role::User, "hi"),
                crate::provider::Message::new(Role::Assistant, "yo"),
            ],
            prefill: Some("ignored".into()),
            stop: (0..6).map(|i| format!("s{i}")).collect(),
            max_tokens: 256,
            temperature: 0.2,
        };
        let b = chat_body(Some("gpt-4.1-mini"), &req, Dialect::OPENAI);
        assert_eq!(
            b,
            json!({"model":"gpt-4.1-mini","stream":true,"stream_options":{"include_usage":true},
                "messages":[{"role":"system","content":"sys"},{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}],
                "max_completion_tokens":256,"temperature":0.2,"stop":["s0","s1","s2","s3"]})
        );
        let b = chat_body(None, &ChatRequest { stop: vec![], ..req }, Dialect::COMPATIBLE);
        assert!(b.get("model").is_none() && b.get("stop").is_none());
        assert_eq!(b["max_tokens"], 256);
        assert!(!b.to_string().contains("ignored"), "prefill is never sent");
    }

    #[test]
    fn null_fields_and_filter_chunks_are_tolerated() {
        let mut p = ChatParser::default();
        let out = run(
            &mut p,
            &[
                r#"{"choices":[],"prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"content":null},"finish_reason":null}],"usage":null}"#,
                r#"{"choices":[{"index":0,"finish_reason":null,"content_filter_results":{"hate":{"filtered":false}}}]}"#,
                r#"{"choices":[{"index":0,"delta":{"content":"a\nb"},"finish_reason":"content_filter"}]}"#,
            ],
        )
        .expect("parses");
        assert_eq!(out, vec![Event::Delta("a\nb".into())]);
        assert_eq!(p.eof().map(|f| f.stop_reason), Some(StopReason::ContentFilter));
    }

    #[test]
    fn in_stream_errors_are_classified() {
        let cases = [
            (r#"{"error":{"message":"slow down","type":"rate_limit_exceeded"}}"#, ErrorKind::RateLimited),
            (r#"{"error":{"message":"busy","code":503}}"#, ErrorKind::Overloaded { status: 503 }),
            (r#"{"error":{"message":"oops","type":"server_error"}}"#, ErrorKind::InStream),
            (r#"{"object":"error","message":"flat"}"#, ErrorKind::InStream),
        ];
        for (data, kind) in cases {
            let err = run(&mut ChatParser::default(), &[data]).expect_err(data);
            assert_eq!(err.kind, kind, "{data}");
        }
        let err = run(&mut ChatParser::default(), &["{not json"]).expect_err("malformed");
        assert_eq!(err.kind, ErrorKind::Malformed);
        assert!(err.detail.contains("chat.completion.chunk"), "{}", err.detail);
    }

    #[test]
    fn eof_without_finish_is_a_cut() {
        let mut p = CompletionsParser::default();
        run(&mut p, &[r#"{"choices":[{"text":"x","index":0,"finish_reason":null}]}"#]).expect("parses");
        assert_eq!(p.eof(), None);
    }

    #[test]
    fn temperature_is_the_written_decimal() {
        assert_eq!(http::json_f32(0.2), json!(0.2));
        assert_eq!(http::json_f32(f32::NAN), Value::Null);
    }
}
