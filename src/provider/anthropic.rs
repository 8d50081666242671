//! Anthropic's Messages API (`POST /v1/messages`, streamed as `event:`/`data:` SSE), and the parts
//! Vertex and Bedrock share with it: the request body and the stream parser.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{
    ChatRequest, CompletionRequest, Ctx, ErrorKind, Event, EventStream, Finish, ProviderError, Role, StopReason, Usage,
    fim,
    http::{self, DeltaFilter, Fault, Frame, Framing, Outgoing, Parser, Retry},
};
use crate::config::CompletionMode;

const DEFAULT_BASE: &str = "https://api.anthropic.com";
const API_VERSION: &str = "2023-06-01";
/// `max_tokens` is required by every Claude host; a request that leaves it at 0 gets this.
const DEFAULT_MAX_TOKENS: u32 = 4096;

pub(crate) struct Anthropic {
    url: String,
}

impl Anthropic {
    pub fn new(ctx: &Ctx) -> Result<Self, ProviderError> {
        ctx.require_model()?;
        ctx.require_key()?;
        check_completion_mode(ctx)?;
        let base = ctx.base_url(DEFAULT_BASE);
        // People paste the documented `https://api.anthropic.com/v1`; do not double the `/v1`.
        let url = match base.strip_suffix("/v1") {
            Some(root) => format!("{root}/v1/messages"),
            None => format!("{base}/v1/messages"),
        };
        Ok(Anthropic { url })
    }
}

/// What differs between Claude's three hosts (Anthropic, Bedrock, Vertex) is only how a Messages
/// request is sent; what is asked and how the answer is read is the same, so it lives here once.
pub(crate) trait ClaudeHost {
    /// Send a Messages request and stream its answer.
    async fn send(&self, ctx: &Arc<Ctx>, req: &ChatRequest, retry: Retry) -> Result<EventStream, ProviderError>;

    /// Claude has no fill-in-the-middle endpoint: autocomplete asks it as a chat with the answer
    /// prefilled, never retried.
    async fn complete(&self, ctx: &Arc<Ctx>, req: &CompletionRequest) -> Result<EventStream, ProviderError> {
        let chat = completion_as_chat(req);
        let stream = self.send(ctx, &chat, Retry::Never).await?;
        Ok(apply_filter(stream, answer_filter(&chat, Some(fim::chat_filter(true)))))
    }

    async fn chat(&self, ctx: &Arc<Ctx>, req: &ChatRequest, retry: Retry) -> Result<EventStream, ProviderError> {
        let stream = self.send(ctx, req, retry).await?;
        Ok(apply_filter(stream, answer_filter(req, None)))
    }
}

impl ClaudeHost for Anthropic {
    async fn send(&self, ctx: &Arc<Ctx>, req: &ChatRequest, retry: Retry) -> Result<EventStream, ProviderError> {
        let model = ctx.require_model()?;
        let key = ctx.require_key()?;
        let body = messages_body(req, Shape { model: Some(model), stream: true, anthropic_version: None });
        let mut out = Outgoing::post_json(self.url.clone(), &body);
        out.secret_header("x-api-key", key.expose()).map_err(|e| ctx.config_error(e))?;
        out.header("anthropic-version", API_VERSION);
        let resp = http::send(ctx, &out, retry).await?;
        Ok(EventStream::new(ctx, resp, Framing::Sse, Box::new(MessagesParser::default())))
    }
}

/// Claude hosts can only autocomplete through the chat prompt; any other mode is a config error.
pub(crate) fn check_completion_mode(ctx: &Ctx) -> Result<(), ProviderError> {
    let mode = ctx.config.completion_mode;
    if matches!(mode, CompletionMode::Auto | CompletionMode::Chat) {
        return Ok(());
    }
    let name = match mode {
        CompletionMode::Suffix => "suffix",
        CompletionMode::Template => "template",
        CompletionMode::Infill => "infill",
        CompletionMode::Prompt => "prompt",
        CompletionMode::Auto | CompletionMode::Chat => "chat",
    };
    Err(ctx.config_error(format!(
        "completion_mode `{name}` is not available for kind `{}`; use `chat` (or leave it unset): \
         Claude has no fill-in-the-middle endpoint",
        ctx.kind.as_str()
    )))
}

/// The chat request that autocompletes with a Claude model (which continues a prefill).
fn completion_as_chat(req: &CompletionRequest) -> ChatRequest {
    fim::chat_prompt(req, true)
}

/// Put `filter` on `stream`, if there is one.
fn apply_filter(stream: EventStream, filter: Option<Box<dyn DeltaFilter>>) -> EventStream {
    match filter {
        Some(f) => stream.with_filter(f),
        None => stream,
    }
}

/// The filters an answer to `req` needs, in order: realignment after a trimmed prefill, `then`
/// (the autocomplete extraction), and the whitespace-only stop sequences, which Claude refuses
/// on the wire and so are enforced here.
fn answer_filter(req: &ChatRequest, then: Option<Box<dyn DeltaFilter>>) -> Option<Box<dyn DeltaFilter>> {
    let trimmed = turns(req).trimmed;
    let realign =
        (!trimmed.is_empty()).then(|| Box::new(Realign { rest: trimmed, done: false }) as Box<dyn DeltaFilter>);
    let blank: Vec<String> = req.stop.iter().filter(|s| !s.is_empty() && s.trim().is_empty()).cloned().collect();
    let stops = (!blank.is_empty()).then(|| fim::strip_filter(blank));
    [realign, then, stops].into_iter().flatten().reduce(|a, b| Box::new(Chain(a, b)) as Box<dyn DeltaFilter>)
}

/// How a Messages body differs between the hosts that serve Claude.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape<'a> {
    /// Anthropic names the model in the body; Vertex and Bedrock name it in the URL.
    pub model: Option<&'a str>,
    /// Anthropic and Vertex ask for a stream in the body; Bedrock asks by its endpoint.
    pub stream: bool,
    /// Vertex (`vertex-2023-10-16`) and Bedrock (`bedrock-2023-05-31`) version the body;
    /// Anthropic versions the request with a header instead.
    pub anthropic_version: Option<&'static str>,
}

/// The Messages API body for `req`.
pub(crate) fn messages_body(req: &ChatRequest, shape: Shape<'_>) -> Value {
    let t = turns(req);
    let mut body = Map::new();
    if let Some(v) = shape.anthropic_version {
        body.insert("anthropic_version".into(), json!(v));
    }
    if let Some(m) = shape.model {
        body.insert("model".into(), json!(m));
    }
    let max_tokens = if req.max_tokens == 0 { DEFAULT_MAX_TOKENS } else { req.max_tokens };
    body.insert("max_tokens".into(), json!(max_tokens));
    if shape.stream {
        body.insert("stream".into(), json!(true));
    }
    if !t.system.is_empty() {
        body.insert("system".into(), json!(t.system));
    }
    let messages: Vec<Value> = t
        .messages
        .iter()
        .map(|(role, content)| {
            let role = if *role == Role::Assistant { "assistant" } else { "user" };
            json!({"role": role, "content": content})
        })
        .collect();
    body.insert("messages".into(), Value::Array(messages));
    // Anthropic refuses whitespace-only stop sequences outright.
    let stops: Vec<&str> = req.stop.iter().map(String::as_str).filter(|s| !s.trim().is_empty()).collect();
    if !stops.is_empty() {
        body.insert("stop_sequences".into(), json!(stops));
    }
    // Claude takes 0..=1 (OpenAI's scale goes to 2). Rounded so an f32 such as 0.2 is not
    // sent as 0.20000000298023224.
    let temperature = (f64::from(req.temperature.clamp(0.0, 1.0)) * 1e6).round() / 1e6;
    body.insert("temperature".into(), json!(temperature));
    Value::Object(body)
}

/// The conversation as Claude takes it.
struct Turns {
    system: String,
    /// Alternating user/assistant turns.
    messages: Vec<(Role, String)>,
    /// Whitespace cut from the end of a prefill (Claude refuses a final assistant turn ending
    /// in whitespace); the answer usually starts by writing it again.
    trimmed: String,
}

fn turns(req: &ChatRequest) -> Turns {
    let system: Vec<&str> = req
        .messages
        .iter()
        .filter(|m| m.role == Role::System && !m.content.trim().is_empty())
        .map(|m| m.content.as_str())
        .collect();
    let mut messages: Vec<(Role, String)> = Vec::new();
    let mut push = |role: Role, content: &str| match messages.last_mut() {
        // Claude wants turns to alternate; consecutive messages of one role become one turn.
        Some((last, text)) if *last == role => {
            text.push_str("\n\n");
            text.push_str(content);
        }
        _ => messages.push((role, content.to_owned())),
    };
    for m in &req.messages {
        if m.role != Role::System && !m.content.is_empty() {
            push(m.role, &m.content);
        }
    }
    let prefill = req.prefill.as_deref().filter(|p| !p.trim_end().is_empty());
    if let Some(p) = prefill {
        push(Role::Assistant, p);
    }
    let mut trimmed = String::new();
    if let Some((Role::Assistant, text)) = messages.last_mut() {
        let keep = text.trim_end().len();
        if prefill.is_some() {
            trimmed = text[keep..].to_owned();
        }
        text.truncate(keep);
    }
    Turns { system: system.join("\n\n"), messages, trimmed }
}

/// Drops from the start of the answer the whitespace cut off the prefill, so that prefill plus
/// answer reads as the model meant it ("x =" continued with " 1" after the prefill "x = ").
struct Realign {
    rest: String,
    done: bool,
}

impl DeltaFilter for Realign {
    fn push(&mut self, delta: &str) -> (String, bool) {
        if self.done {
            return (delta.to_owned(), false);
        }
        let mut text = delta;
        while let Some(c) = text.chars().next() {
            if !self.rest.starts_with(c) {
                self.done = true;
                break;
            }
            self.rest.drain(..c.len_utf8());
            text = &text[c.len_utf8()..];
            if self.rest.is_empty() {
                self.done = true;
                break;
            }
        }
        (text.to_owned(), false)
    }

    fn flush(&mut self) -> String {
        String::new()
    }
}

/// Two filters, one after the other.
struct Chain(Box<dyn DeltaFilter>, Box<dyn DeltaFilter>);

impl DeltaFilter for Chain {
    fn push(&mut self, delta: &str) -> (String, bool) {
        let (mid, over_first) = self.0.push(delta);
        let (mut out, over) = self.1.push(&mid);
        if over_first && !over {
            out.push_str(&self.1.flush());
        }
        (out, over_first || over)
    }

    fn flush(&mut self) -> String {
        let mid = self.0.flush();
        let (mut out, _) = self.1.push(&mid);
        out.push_str(&self.1.flush());
        out
    }
}

/// Reads the Messages stream events (`message_start` ... `message_stop`), from SSE or, for
/// Bedrock, as decoded JSON objects.
#[derive(Default)]
pub(crate) struct MessagesParser {
    usage: Usage,
    stop_reason: Option<StopReason>,
}

impl Parser for MessagesParser {
    fn frame(&mut self, frame: Frame, out: &mut Vec<Event>) -> Result<(), Fault> {
        let Frame::Sse(ev) = frame else {
            return Err(Fault::malformed("expected Anthropic server-sent events"));
        };
        // `json` is the framer's name for a bare JSON line; the data's `type` names it then.
        let name = if ev.event.is_empty() || ev.event == "json" { None } else { Some(ev.event.as_str()) };
        let v: Value = match serde_json::from_str(&ev.data) {
            Ok(v) => v,
            Err(_) if name == Some("error") => return Err(Fault::in_stream(ev.data)),
            Err(e) => {
                return Err(Fault::malformed(format!(
                    "the data of an Anthropic `{}` event is not JSON ({e})",
                    name.unwrap_or("message")
                )));
            }
        };
        self.on_event(name, &v, out)
    }
}

impl MessagesParser {
    /// One stream event as a JSON object (`{"type":"content_block_delta",...}`), as Bedrock
    /// delivers them: the event's name is its `type`.
    pub(crate) fn on_json(&mut self, v: &Value, out: &mut Vec<Event>) -> Result<(), Fault> {
        self.on_event(None, v, out)
    }

    fn on_event(&mut self, name: Option<&str>, v: &Value, out: &mut Vec<Event>) -> Result<(), Fault> {
        let Some(name) = name.or_else(|| v.get("type").and_then(Value::as_str)) else {
            return Err(Fault::malformed("an Anthropic stream event has neither an event name nor a `type`"));
        };
        match name {
            "message_start" => {
                if let Some(u) = v.get("message").and_then(|m| m.get("usage")) {
                    self.take_usage(u);
                }
            }
            "content_block_delta" => {
                let delta = v.get("delta");
                // thinking_delta, signature_delta and input_json_delta are not answer text.
                if delta.and_then(|d| d.get("type")).and_then(Value::as_str) == Some("text_delta") {
                    let Some(text) = delta.and_then(|d| d.get("text")).and_then(Value::as_str) else {
                        return Err(Fault::malformed("an Anthropic `text_delta` without its `text` string"));
                    };
                    out.push(Event::Delta(text.to_owned()));
                }
            }
            "message_delta" => {
                if let Some(r) = v.get("delta").and_then(|d| d.get("stop_reason")).and_then(Value::as_str) {
                    self.stop_reason = Some(stop_reason(r));
                }
                if let Some(u) = v.get("usage") {
                    self.take_usage(u);
                }
            }
            "message_stop" => {
                // Bedrock's own count of the whole invocation, when it adds one.
                if let Some(m) = v.get("amazon-bedrock-invocationMetrics") {
                    if let Some(n) = m.get("inputTokenCount").and_then(Value::as_u64) {
                        self.usage.input_tokens = Some(n);
                    }
                    if let Some(n) = m.get("outputTokenCount").and_then(Value::as_u64) {
                        self.usage.output_tokens = Some(n);
                    }
                }
                let stop_reason = self.stop_reason.take().unwrap_or_default();
                out.push(Event::Done(Finish { stop_reason, usage: self.usage }));
            }
            "error" => return Err(error_fault(v)),
            // ping, content_block_start/stop, and event types added after this was written.
            _ => {}
        }
        Ok(())
    }

    fn take_usage(&mut self, u: &Value) {
        let n = |k: &str| u.get(k).and_then(Value::as_u64);
        // Cached prompt tokens are counted apart from `input_tokens`; other vendors' prompt
        // counts include them, so they are added back.
        if let Some(input) = n("input_tokens") {
            let cached = n("cache_creation_input_tokens").unwrap_or(0) + n("cache_read_input_tokens").unwrap_or(0);
            self.usage.input_tokens = Some(input + cached);
        }
        // Cumulative: the last count is the total.
        if let Some(output) = n("output_tokens") {
            self.usage.output_tokens = Some(output);
        }
    }
}

/// Map a Claude stop reason into the common vocabulary.
pub(crate) fn stop_reason(r: &str) -> StopReason {
    match r {
        "end_turn" => StopReason::EndTurn,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "refusal" => StopReason::ContentFilter,
        other => StopReason::Other(other.to_owned()),
    }
}

/// The fault an in-stream `{"type":"error","error":{"type","message"}}` stands for.
pub(crate) fn error_fault(v: &Value) -> Fault {
    let err = v.get("error").unwrap_or(v);
    let kind_name = err.get("type").and_then(Value::as_str).unwrap_or("error");
    let message = err.get("message").and_then(Value::as_str).unwrap_or("");
    let kind = match kind_name {
        "overloaded_error" => ErrorKind::Overloaded { status: 529 },
        "rate_limit_error" => ErrorKind::RateLimited,
        "api_error" => ErrorKind::Server { status: 500 },
        _ => ErrorKind::InStream,
    };
    let detail = if message.is_empty() { kind_name.to_owned() } else { format!("{kind_name}: {message}") };
    Fault { kind, detail: format!("{detail} (sent mid-stream)") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Message;

    fn req(messages: &[(Role, &str)], prefill: Option<&str>) -> ChatRequest {
        ChatRequest {
            messages: messages.iter().map(|(r, c)| Message::new(*r, *c)).collect(),
            prefill: prefill.map(str::to_owned),
            stop: vec!["\n\n".into(), "  ".into(), "END".into()],
            max_tokens: 64,
            temperature: 0.2,
        }
    }

    #[test]
    fn body_for_each_host() {
        let r = req(
            &[
                (Role::System, "Be brief."),
                (Role::User, "a"),
                (Role::System, "Use Rust."),
                (Role::User, "b"),
                (Role::Assistant, "c"),
            ],
            Some("fn main() {\n    "),
        );
        let body = messages_body(&r, Shape { model: Some("claude-x"), stream: true, anthropic_version: None });
        assert_eq!(
            body,
            json!({
                "model": "claude-x", "max_tokens": 64, "stream": true, "system": "Be brief.\n\nUse Rust.",
                "messages": [
                    {"role": "user", "content": "a\n\nb"},
                    {"role": "assistant", "content": "c\n\nfn main() {"},
                ],
                "stop_sequences": ["END"], "temperature": 0.2,
            })
        );
        let bedrock = messages_body(
            &req(&[(Role::User, "hi")], None),
            Shape { model: None, stream: false, anthropic_version: Some("bedrock-2023-05-31") },
        );
        assert_eq!(
            bedrock,
            json!({
                "anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
                "messages": [{"role": "user", "content": "hi"}],
                "stop_sequences": ["END"], "temperature": 0.2,
            })
        );
    }

    #[test]
    fn realigns_after_a_trimmed_prefill() {
        let req = |m: &[(Role, &str)], p: Option<&str>| ChatRequest { stop: Vec::new(), ..req(m, p) };
        let r = req(&[(Role::User, "go")], Some("let x = "));
        let mut f = answer_filter(&r, None).expect("a filter for trailing whitespace");
        assert_eq!(f.push(""), (String::new(), false));
        assert_eq!(f.push(" 1"), ("1".to_owned(), false));
        assert_eq!(f.push(" + 2"), (" + 2".to_owned(), false));
        let mut f = answer_filter(&req(&[(Role::User, "go")], Some("{\n  ")), None).expect("filter");
        assert_eq!(f.push("\n"), (String::new(), false));
        assert_eq!(f.push(" x"), ("x".to_owned(), false));
        let mut f = answer_filter(&req(&[(Role::User, "go")], Some("a ")), None).expect("filter");
        assert_eq!(f.push("b"), ("b".to_owned(), false));
        assert!(answer_filter(&req(&[(Role::User, "go")], Some("abc")), None).is_none());
        assert!(answer_filter(&req(&[(Role::User, "go")], None), None).is_none());
    }

    #[test]
    fn whitespace_stops_end_the_answer_after_realignment() {
        let mut r = req(&[(Role::User, "go")], Some("x = "));
        r.stop = vec!["\n".into(), "END".into()];
        let mut f = answer_filter(&r, None).expect("filters");
        assert_eq!(f.push(" 1"), ("1".to_owned(), false));
        let (text, over) = f.push(" + 2\ny = 3");
        assert_eq!((text.as_str(), over), (" + 2", true));
    }

    #[test]
    fn stream_events_as_bedrock_delivers_them() {
        let mut p = MessagesParser::default();
        let mut out = Vec::new();
        for v in [
            json!({"type":"message_start","message":{"usage":{"input_tokens":3,"cache_read_input_tokens":4,"output_tokens":1}}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}),
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}),
            json!({"type":"some_future_event"}),
            json!({"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":9}}),
            json!({"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":8,"outputTokenCount":10}}),
        ] {
            p.on_json(&v, &mut out).expect("valid event");
        }
        let usage = Usage { input_tokens: Some(8), output_tokens: Some(10) };
        assert_eq!(
            out,
            vec![Event::Delta("Hi".into()), Event::Done(Finish { stop_reason: StopReason::MaxTokens, usage })]
        );
        let f = p
            .on_json(&json!({"type":"error","error":{"type":"rate_limit_error","message":"slow"}}), &mut out)
            .expect_err("an error event");
        assert_eq!(f.kind, ErrorKind::RateLimited);
        assert!(f.detail.starts_with("rate_limit_error: slow"), "{}", f.detail);
    }
}
