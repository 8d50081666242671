//! Google Gemini API (`streamGenerateContent?alt=sse`): chat, and autocomplete through a chat
//! prompt with prefill, since Gemini has no fill-in-the-middle endpoint.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{
    ChatRequest, CompletionRequest, Ctx, ErrorKind, Event, EventStream, Finish, ProviderError, Role, StopReason, Usage,
    fim,
    http::{self, Fault, Frame, Framing, Outgoing, Parser, Retry},
    openai::Fim,
};
use crate::config::CompletionMode;

const DEFAULT_BASE: &str = "https://generativelanguage.googleapis.com";
/// Gemini refuses more stop sequences than this.
const MAX_STOPS: usize = 5;

pub(crate) struct Gemini {
    url: String,
    model: String,
}

impl Gemini {
    pub fn new(ctx: &Ctx) -> Result<Self, ProviderError> {
        let model = ctx.require_model()?;
        // The API names models `models/x`; config may use either spelling.
        let model = model.strip_prefix("models/").unwrap_or(model).to_owned();
        // No fill-in-the-middle endpoint: autocomplete is always a chat with a prefill.
        Fim::plan(ctx, &[CompletionMode::Chat], || Ok(Fim::Chat))?;
        ctx.require_key()?;
        let url = format!("{}/v1beta/models/{model}:streamGenerateContent?alt=sse", ctx.base_url(DEFAULT_BASE));
        Ok(Gemini { url, model })
    }

    pub async fn complete(&self, ctx: &Arc<Ctx>, req: &CompletionRequest) -> Result<EventStream, ProviderError> {
        let chat = fim::chat_prompt(req, true);
        Ok(self.chat(ctx, &chat, Retry::Never).await?.with_filter(fim::chat_filter(true)))
    }

    pub async fn chat(&self, ctx: &Arc<Ctx>, req: &ChatRequest, retry: Retry) -> Result<EventStream, ProviderError> {
        let key = ctx.require_key()?;
        let mut out = Outgoing::post_json(self.url.clone(), &body(req, &self.model));
        // The key goes in a header, never in the URL, where proxies and logs would keep it.
        out.secret_header("x-goog-api-key", key.expose()).map_err(|e| ctx.config_error(e))?;
        let resp = http::send(ctx, &out, retry).await?;
        Ok(EventStream::new(ctx, resp, Framing::Sse, Box::new(GenerateParser::default())))
    }
}

/// The request body: camelCase fields, roles `user` and `model`, system text apart.
fn body(req: &ChatRequest, model: &str) -> Value {
    let mut system: Vec<Value> = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    let mut push = |role: &'static str, text: &str| {
        // Gemini refuses empty text parts.
        if text.is_empty() {
            return;
        }
        let part = json!({ "text": text });
        match contents.last_mut() {
            // Consecutive turns of one role must be one turn.
            Some((r, parts)) if *r == role => parts.push(part),
            _ => contents.push((role, vec![part])),
        }
    };
    for m in &req.messages {
        match m.role {
            Role::System if !m.content.is_empty() => system.push(json!({ "text": m.content })),
            Role::System => {}
            Role::User => push("user", &m.content),
            Role::Assistant => push("model", &m.content),
        }
    }
    // A final `model` turn is continued by the answer: that is how Gemini takes a prefill.
    if let Some(prefill) = &req.prefill {
        push("model", prefill);
    }
    let contents: Vec<Value> =
        contents.into_iter().map(|(role, parts)| json!({ "role": role, "parts": parts })).collect();

    let mut config = Map::new();
    if req.max_tokens > 0 {
        config.insert("maxOutputTokens".into(), json!(req.max_tokens));
    }
    config.insert("temperature".into(), http::json_f32(req.temperature));
    if !req.stop.is_empty() {
        if req.stop.len() > MAX_STOPS {
            tracing::debug!(count = req.stop.len(), "gemini takes at most 5 stop sequences; sending the first 5");
        }
        let stops: Vec<&String> = req.stop.iter().take(MAX_STOPS).collect();
        config.insert("stopSequences".into(), json!(stops));
    }
    config.insert("candidateCount".into(), json!(1));
    if no_thinking(model) {
        config.insert("thinkingConfig".into(), json!({ "thinkingBudget": 0 }));
    }

    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({ "parts": system }));
    }
    body.insert("generationConfig".into(), Value::Object(config));
    Value::Object(body)
}

/// 2.5 Flash and Flash-Lite think by default, which only adds latency to our short answers; they
/// accept a zero budget. Pro models refuse 0, so they keep their default.
fn no_thinking(model: &str) -> bool {
    model.contains("2.5-flash")
}

/// Parses `alt=sse` chunks. The stream has no end marker: it ends at EOF, complete once a
/// `finishReason` has arrived.
#[derive(Default)]
pub(crate) struct GenerateParser {
    finish: Option<StopReason>,
    usage: Usage,
}

impl Parser for GenerateParser {
    fn frame(&mut self, frame: Frame, out: &mut Vec<Event>) -> Result<(), Fault> {
        let Frame::Sse(ev) = frame else {
            return Err(Fault::malformed("expected server-sent events from Gemini"));
        };
        match ev.event.as_str() {
            // A line without `data:`: Gemini writes its error that way after a mid-stream failure.
            "json" => {
                let v: Value = serde_json::from_str(&ev.data).map_err(|_| {
                    Fault::in_stream(format!(
                        "the stream broke off with an error written outside the events: {}",
                        ev.data
                    ))
                })?;
                if let Some(f) = error_fault(&v) {
                    return Err(f);
                }
                self.chunk(&v, out)
            }
            "error" => Err(Fault::in_stream(ev.data)),
            _ => {
                let v: Value = serde_json::from_str(&ev.data).map_err(|e| {
                    Fault::malformed(format!(
                        "expected a JSON GenerateContentResponse in a `data:` line ({e}): {}",
                        ev.data
                    ))
                })?;
                if let Some(f) = error_fault(&v) {
                    return Err(f);
                }
                self.chunk(&v, out)
            }
        }
    }

    fn eof(&mut self) -> Option<Finish> {
        let stop_reason = self.finish.take()?;
        Some(Finish { stop_reason, usage: self.usage })
    }
}

impl GenerateParser {
    fn chunk(&mut self, v: &Value, out: &mut Vec<Event>) -> Result<(), Fault> {
        if !v.is_object() {
            return Err(Fault::malformed(format!("expected a JSON object from Gemini, got: {v}")));
        }
        if let Some(u) = v.get("usageMetadata") {
            // Counts are running totals; the last chunk's are complete.
            if let Some(n) = u.get("promptTokenCount").and_then(Value::as_u64) {
                self.usage.input_tokens = Some(n);
            }
            if let Some(n) = u.get("candidatesTokenCount").and_then(Value::as_u64) {
                self.usage.output_tokens = Some(n);
            }
        }
        let candidate = v.get("candidates").and_then(Value::as_array).and_then(|c| c.first());
        let Some(candidate) = candidate else {
            if let Some(reason) = v.get("promptFeedback").and_then(|p| p.get("blockReason")).and_then(Value::as_str) {
                return Err(Fault::in_stream(format!("blocked: {reason}")));
            }
            return Ok(());
        };
        let parts = candidate.get("content").and_then(|c| c.get("parts")).and_then(Value::as_array);
        for part in parts.into_iter().flatten() {
            if part.get("thought").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            if let Some(text) = part.get("text").and_then(Value::as_str)
                && !text.is_empty()
            {
                out.push(Event::Delta(text.to_owned()));
            }
        }
        if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str) {
            self.finish = Some(match reason {
                "STOP" => StopReason::EndTurn,
                "MAX_TOKENS" => StopReason::MaxTokens,
                "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" => StopReason::ContentFilter,
                other => StopReason::Other(other.to_owned()),
            });
        }
        Ok(())
    }
}

/// A Google error object (`{"error":{"code","message","status"}}`) as a fault of its class.
fn error_fault(v: &Value) -> Option<Fault> {
    let err = v.get("error").filter(|e| !e.is_null())?;
    let status = err.get("status").and_then(Value::as_str).unwrap_or("");
    let code = err.get("code").and_then(Value::as_u64);
    let message = err.get("message").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| err.to_string());
    let kind = match (status, code) {
        ("RESOURCE_EXHAUSTED", _) | (_, Some(429)) => ErrorKind::RateLimited,
        ("UNAVAILABLE", _) | (_, Some(503)) => ErrorKind::Overloaded { status: 503 },
        _ => ErrorKind::InStream,
    };
    let detail = if status.is_empty() { message } else { format!("{status}: {message}") };
    Some(Fault { kind, detail })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Message;

    #[test]
    fn body_gathers_system_merges_roles_and_ends_with_the_prefill() {
        let req = ChatRequest {
            messages: vec![
                Message::new(Role::System, "be brief"),
                Message::new(Role::User, "a"),
                Message::new(Role::User, "b"),
                Message::new(Role::Assistant, "c"),
            ],
            prefill: Some("```rust\n".into()),
            stop: (0..7).map(|i| format!("s{i}")).collect(),
            max_tokens: 64,
            temperature: 0.5,
        };
        let b = body(&req, "gemini-2.5-flash-lite");
        assert_eq!(b["systemInstruction"], json!({"parts":[{"text":"be brief"}]}));
        assert_eq!(
            b["contents"],
            json!([
                {"role":"user","parts":[{"text":"a"},{"text":"b"}]},
                {"role":"model","parts":[{"text":"c"},{"text":"```rust\n"}]}
            ])
        );
        let g = &b["generationConfig"];
        assert_eq!(g["maxOutputTokens"], 64);
        assert_eq!(g["stopSequences"].as_array().map(Vec::len), Some(5));
        assert_eq!(g["candidateCount"], 1);
        assert_eq!(g["thinkingConfig"]["thinkingBudget"], 0);
        let pro = body(&ChatRequest { stop: vec![], ..req }, "gemini-2.5-pro");
        assert!(pro["generationConfig"].get("thinkingConfig").is_none());
        assert!(pro["generationConfig"].get("stopSequences").is_none());
    }
}
