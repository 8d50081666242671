//! Ollama's native API (`/api/generate`, `/api/chat`, NDJSON streams): autocomplete with the
//! server applying the model's FIM template to `suffix`, or a raw template, or a chat prompt.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{
    ChatRequest, CompletionRequest, Ctx, ErrorKind, Event, EventStream, Finish, ProviderError, Role, StopReason, Usage,
    fim,
    http::{self, Fault, Frame, Framing, Outgoing, Parser, Retry},
    openai::Fim,
};
use crate::config::CompletionMode;

const DEFAULT_BASE: &str = "http://127.0.0.1:11434";
/// How long the server keeps the model loaded after a request: long enough to span typing pauses.
const KEEP_ALIVE: &str = "5m";

pub(crate) struct Ollama {
    base: String,
    model: String,
    fim: Fim,
}

impl Ollama {
    pub fn new(ctx: &Ctx) -> Result<Self, ProviderError> {
        let model = ctx.require_model()?.to_owned();
        // `suffix` by default: the server knows the model's FIM template from its Modelfile.
        let fim = Fim::plan(
            ctx,
            &[CompletionMode::Suffix, CompletionMode::Template, CompletionMode::Prompt, CompletionMode::Chat],
            || Ok(Fim::Suffix),
        )?;
        Ok(Ollama { base: ctx.base_url(DEFAULT_BASE), model, fim })
    }

    pub async fn complete(&self, ctx: &Arc<Ctx>, req: &CompletionRequest) -> Result<EventStream, ProviderError> {
        let (body, filter) = match &self.fim {
            Fim::Chat => {
                let chat = fim::chat_prompt(req, true);
                return Ok(self.chat(ctx, &chat, Retry::Never).await?.with_filter(fim::chat_filter(true)));
            }
            Fim::Suffix => {
                let body = json!({
                    "model": self.model,
                    "prompt": req.prefix,
                    "suffix": req.suffix,
                    "stream": true,
                    "raw": false,
                    "options": options(req.max_tokens, req.temperature, &req.stop),
                    "keep_alive": KEEP_ALIVE,
                });
                (body, None)
            }
            Fim::Template(t) => {
                let body = json!({
                    "model": self.model,
                    "prompt": t.render(req),
                    "stream": true,
                    "raw": true,
                    "options": options(req.max_tokens, req.temperature, &fim::stops(req, Some(t))),
                    "keep_alive": KEEP_ALIVE,
                });
                (body, Some(fim::strip_filter(t.stop_tokens().to_vec())))
            }
            Fim::Prompt => {
                // Raw, so an instruct model's chat template does not turn the code into a question.
                let body = json!({
                    "model": self.model,
                    "prompt": req.prefix,
                    "stream": true,
                    "raw": true,
                    "options": options(req.max_tokens, req.temperature, &req.stop),
                    "keep_alive": KEEP_ALIVE,
                });
                (body, None)
            }
        };
        let out = self.outgoing(ctx, "/api/generate", &body)?;
        let resp = http::send(ctx, &out, Retry::Never).await.map_err(|e| self.explain(ctx, e))?;
        let stream = EventStream::new(ctx, resp, Framing::Ndjson, Box::new(GenerateParser::default()));
        Ok(match filter {
            Some(f) => stream.with_filter(f),
            None => stream,
        })
    }

    pub async fn chat(&self, ctx: &Arc<Ctx>, req: &ChatRequest, retry: Retry) -> Result<EventStream, ProviderError> {
        let mut messages: Vec<(&'static str, String)> = req
            .messages
            .iter()
            .map(|m| {
                let role = match m.role {
                    Role::System => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                (role, m.content.clone())
            })
            .collect();
        // Ollama continues a final assistant message rather than starting a new one.
        if let Some(prefill) = req.prefill.as_deref().filter(|p| !p.is_empty()) {
            match messages.last_mut() {
                Some(("assistant", content)) => content.push_str(prefill),
                _ => messages.push(("assistant", prefill.to_owned())),
            }
        }
        let messages: Vec<Value> =
            messages.into_iter().map(|(role, content)| json!({ "role": role, "content": content })).collect();
        let body = json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "options": options(req.max_tokens, req.temperature, &req.stop),
            "keep_alive": KEEP_ALIVE,
        });
        let out = self.outgoing(ctx, "/api/chat", &body)?;
        let resp = http::send(ctx, &out, retry).await.map_err(|e| self.explain(ctx, e))?;
        Ok(EventStream::new(ctx, resp, Framing::Ndjson, Box::new(ChatParser::default())))
    }

    fn outgoing(&self, ctx: &Ctx, path: &str, body: &Value) -> Result<Outgoing, ProviderError> {
        let mut out = Outgoing::post_json(format!("{}{path}", self.base), body);
        // Ollama has no auth of its own; a key is for a proxy in front of it.
        if let Some(key) = &ctx.key {
            out.secret_header("authorization", &format!("Bearer {}", key.expose())).map_err(|e| ctx.config_error(e))?;
        }
        Ok(out)
    }

    /// Ollama's 400 for `suffix` on a model whose template has no `.Suffix` names no remedy.
    fn explain(&self, ctx: &Ctx, e: ProviderError) -> ProviderError {
        if matches!(e.kind, ErrorKind::BadRequest { .. }) && e.detail.contains("does not support insert") {
            return ctx.error(
                ErrorKind::Unsupported,
                format!(
                    "{}; model `{}` has no fill-in-the-middle template in Ollama: set \
                     `providers.{}.completion_mode` to \"template\" or \"chat\"",
                    e.detail, self.model, ctx.name
                ),
            );
        }
        e
    }
}

/// `options`, leaving out what the caller did not set: an empty `stop` would replace the
/// Modelfile's own stop words.
fn options(max_tokens: u32, temperature: f32, stop: &[String]) -> Value {
    let mut o = Map::new();
    if max_tokens > 0 {
        o.insert("num_predict".into(), json!(max_tokens));
    }
    o.insert("temperature".into(), http::json_f32(temperature));
    if !stop.is_empty() {
        o.insert("stop".into(), json!(stop));
    }
    Value::Object(o)
}

/// The JSON object of one NDJSON line; an `{"error":…}` line is a fault, never text.
fn line_object(frame: Frame) -> Result<Value, Fault> {
    let Frame::Line(line) = frame else {
        return Err(Fault::malformed("expected newline-delimited JSON from Ollama"));
    };
    let v: Value = serde_json::from_str(&line)
        .map_err(|e| Fault::malformed(format!("expected one JSON object per line from Ollama ({e}): {line}")))?;
    if !v.is_object() {
        return Err(Fault::malformed(format!("expected a JSON object per line from Ollama, got: {line}")));
    }
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        let message = match err {
            Value::String(s) => s.clone(),
            Value::Object(o) => {
                o.get("message").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| err.to_string())
            }
            other => other.to_string(),
        };
        return Err(Fault::in_stream(message));
    }
    Ok(v)
}

/// The closing object's `done_reason` and counts.
fn finish(v: &Value) -> Finish {
    let stop_reason = match v.get("done_reason").and_then(Value::as_str) {
        None | Some("stop") => StopReason::EndTurn,
        Some("length") => StopReason::MaxTokens,
        Some(other) => StopReason::Other(other.to_owned()),
    };
    let usage = Usage {
        input_tokens: v.get("prompt_eval_count").and_then(Value::as_u64),
        output_tokens: v.get("eval_count").and_then(Value::as_u64),
    };
    Finish { stop_reason, usage }
}

fn push_text(text: Option<&Value>, out: &mut Vec<Event>) {
    if let Some(t) = text.and_then(Value::as_str)
        && !t.is_empty()
    {
        out.push(Event::Delta(t.to_owned()));
    }
}

/// `/api/generate` lines: `response` text, then `done:true`.
#[derive(Default)]
pub(crate) struct GenerateParser {}

impl Parser for GenerateParser {
    fn frame(&mut self, frame: Frame, out: &mut Vec<Event>) -> Result<(), Fault> {
        let v = line_object(frame)?;
        push_text(v.get("response"), out);
        if v.get("done").and_then(Value::as_bool) == Some(true) {
            out.push(Event::Done(finish(&v)));
        }
        Ok(())
    }
}

/// `/api/chat` lines: `message.content` text (a thinking model's `message.thinking` is not the
/// answer), then `done:true`.
#[derive(Default)]
pub(crate) struct ChatParser {}

impl Parser for ChatParser {
    fn frame(&mut self, frame: Frame, out: &mut Vec<Event>) -> Result<(), Fault> {
        let v = line_object(frame)?;
        push_text(v.get("message").and_then(|m| m.get("content")), out);
        if v.get("done").and_then(Value::as_bool) == Some(true) {
            out.push(Event::Done(finish(&v)));
        }
        Ok(())
    }
}
