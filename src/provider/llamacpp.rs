//! llama.cpp's `llama-server` native API: autocomplete through `/infill` (the server applies the
//! GGUF's FIM tokens), falling back to plain `/completion` for models without them; chat through
//! its OpenAI-compatible `/v1/chat/completions`.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use serde_json::{Map, Value, json};

use super::{
    ChatRequest, CompletionRequest, Ctx, ErrorKind, Event, EventStream, Finish, ProviderError, StopReason, Usage, fim,
    http::{self, Fault, Frame, Framing, Outgoing, Parser, Retry},
    openai::{self, Dialect, Fim},
};
use crate::config::CompletionMode;

const DEFAULT_BASE: &str = "http://127.0.0.1:8080";

/// How autocomplete is asked, decided when the provider is built.
enum Plan {
    /// `/infill`, and plain prompts from the first time the model turns out to have no FIM tokens.
    Auto,
    /// `/infill` only: its refusal is reported, not worked around.
    Infill,
    /// `/completion` with a rendered template, the prefix alone, or a chat.
    Other(Fim),
}

pub(crate) struct LlamaCpp {
    base: String,
    /// Sent in chat bodies when set; the server answers with whatever model it loaded.
    model: Option<String>,
    plan: Plan,
    /// `/infill` answered 501 once: the loaded model has no FIM tokens, and it will not grow any.
    no_infill: AtomicBool,
}

impl LlamaCpp {
    pub fn new(ctx: &Ctx) -> Result<Self, ProviderError> {
        let plan = match ctx.config.completion_mode {
            CompletionMode::Auto => Plan::Auto,
            CompletionMode::Infill => Plan::Infill,
            _ => Plan::Other(Fim::plan(
                ctx,
                &[CompletionMode::Infill, CompletionMode::Template, CompletionMode::Prompt, CompletionMode::Chat],
                || Ok(Fim::Prompt),
            )?),
        };
        Ok(LlamaCpp {
            base: ctx.base_url(DEFAULT_BASE),
            model: ctx.model.clone(),
            plan,
            no_infill: AtomicBool::new(false),
        })
    }

    pub async fn complete(&self, ctx: &Arc<Ctx>, req: &CompletionRequest) -> Result<EventStream, ProviderError> {
        match &self.plan {
            Plan::Infill => self.infill(ctx, req).await,
            Plan::Auto if !self.no_infill.load(Ordering::Relaxed) => match self.infill(ctx, req).await {
                Err(e) if e.kind == ErrorKind::Unsupported => {
                    if !self.no_infill.swap(true, Ordering::Relaxed) {
                        tracing::info!(
                            provider = %ctx.name,
                            detail = %e.detail,
                            "llama.cpp cannot infill with this model; completing from the prefix alone from now on"
                        );
                    }
                    self.prompt(ctx, req, &req.prefix, &req.stop).await
                }
                other => other,
            },
            Plan::Auto | Plan::Other(Fim::Prompt | Fim::Suffix) => self.prompt(ctx, req, &req.prefix, &req.stop).await,
            Plan::Other(Fim::Template(t)) => {
                let stream = self.prompt(ctx, req, &t.render(req), &fim::stops(req, Some(t))).await?;
                Ok(stream.with_filter(fim::strip_filter(t.stop_tokens().to_vec())))
            }
            Plan::Other(Fim::Chat) => {
                // The OpenAI wire has no prefill.
                let chat = fim::chat_prompt(req, false);
                Ok(self.chat(ctx, &chat, Retry::Never).await?.with_filter(fim::chat_filter(false)))
            }
        }
    }

    pub async fn chat(&self, ctx: &Arc<Ctx>, req: &ChatRequest, retry: Retry) -> Result<EventStream, ProviderError> {
        let body = openai::chat_body(self.model.as_deref(), req, Dialect::COMPATIBLE);
        let resp = self.send(ctx, "/v1/chat/completions", &body, retry).await?;
        Ok(EventStream::new(ctx, resp, Framing::Sse, Box::new(openai::ChatParser::default())))
    }

    async fn infill(&self, ctx: &Arc<Ctx>, req: &CompletionRequest) -> Result<EventStream, ProviderError> {
        let extra: Vec<Value> = req.snippets.iter().map(|s| json!({ "filename": s.path, "text": s.text })).collect();
        let mut body = Map::new();
        body.insert("input_prefix".into(), json!(req.prefix));
        body.insert("input_suffix".into(), json!(req.suffix));
        body.insert("input_extra".into(), Value::Array(extra));
        // The server appends `prompt` after its FIM middle token; nothing goes there.
        body.insert("prompt".into(), json!(""));
        options(&mut body, req, &req.stop);
        let resp = self.send(ctx, "/infill", &Value::Object(body), Retry::Never).await?;
        Ok(EventStream::new(ctx, resp, Framing::Sse, Box::new(NativeParser::default())))
    }

    async fn prompt(
        &self,
        ctx: &Arc<Ctx>,
        req: &CompletionRequest,
        prompt: &str,
        stop: &[String],
    ) -> Result<EventStream, ProviderError> {
        let mut body = Map::new();
        body.insert("prompt".into(), json!(prompt));
        options(&mut body, req, stop);
        let resp = self.send(ctx, "/completion", &Value::Object(body), Retry::Never).await?;
        Ok(EventStream::new(ctx, resp, Framing::Sse, Box::new(NativeParser::default())))
    }

    async fn send(
        &self,
        ctx: &Ctx,
        path: &str,
        body: &Value,
        retry: Retry,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut out = Outgoing::post_json(format!("{}{path}", self.base), body);
        // Only a server started with `--api-key` wants one.
        if let Some(key) = &ctx.key {
            out.secret_header("authorization", &format!("Bearer {}", key.expose())).map_err(|e| ctx.config_error(e))?;
        }
        http::send(ctx, &out, retry).await
    }
}

/// The sampling and streaming fields `/completion` and `/infill` share.
fn options(body: &mut Map<String, Value>, req: &CompletionRequest, stop: &[String]) {
    if req.max_tokens > 0 {
        body.insert("n_predict".into(), json!(req.max_tokens));
    }
    body.insert("temperature".into(), http::json_f32(req.temperature));
    body.insert("stop".into(), json!(stop));
    body.insert("stream".into(), json!(true));
    // Consecutive completions share most of their prompt; the server reuses its KV cache for it.
    body.insert("cache_prompt".into(), json!(true));
}

/// The native stream: `data:` objects with `content`, the last with `stop:true`. No `[DONE]`.
#[derive(Default)]
pub(crate) struct NativeParser {}

impl Parser for NativeParser {
    fn frame(&mut self, frame: Frame, out: &mut Vec<Event>) -> Result<(), Fault> {
        let Frame::Sse(ev) = frame else {
            return Err(Fault::malformed("expected server-sent events from llama.cpp"));
        };
        if ev.event == "error" {
            // Builds before Sept 2025 report a failure in an `error:` line.
            return Err(match serde_json::from_str::<Value>(&ev.data) {
                Ok(v) => openai::stream_fault(v.get("error").unwrap_or(&v)),
                Err(_) => Fault::in_stream(ev.data),
            });
        }
        let data = ev.data.trim();
        if data == "[DONE]" {
            // The `/v1` endpoints' marker; a native stream ends with `stop:true` instead.
            return Ok(());
        }
        let v: Value = serde_json::from_str(data).map_err(|e| {
            Fault::malformed(format!("expected a llama.cpp completion JSON object after `data:` ({e}): {data}"))
        })?;
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            return Err(openai::stream_fault(err));
        }
        if !v.is_object() {
            return Err(Fault::malformed(format!("expected a llama.cpp completion JSON object, got: {data}")));
        }
        if let Some(t) = v.get("content").and_then(Value::as_str)
            && !t.is_empty()
        {
            out.push(Event::Delta(t.to_owned()));
        }
        if v.get("stop").and_then(Value::as_bool) == Some(true) {
            let stop_reason = match v.get("stop_type").and_then(Value::as_str) {
                None | Some("eos") => StopReason::EndTurn,
                Some("limit") => StopReason::MaxTokens,
                Some("word") => StopReason::StopSequence,
                Some(other) => StopReason::Other(other.to_owned()),
            };
            let usage = Usage {
                input_tokens: v.get("tokens_evaluated").and_then(Value::as_u64),
                output_tokens: v.get("tokens_predicted").and_then(Value::as_u64),
            };
            out.push(Event::Done(Finish { stop_reason, usage }));
        }
        Ok(())
    }
}
