//! AWS Bedrock serving Claude through `InvokeModelWithResponseStream` (providers.md §6): the
//! Anthropic Messages body, authorised by a Bedrock API key (`Authorization: Bearer`) or a SigV4
//! signature, answered with binary event-stream frames whose `chunk` payloads wrap base64-encoded
//! Anthropic stream events.

use std::{sync::Arc, time::SystemTime};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::{
    ChatRequest, Ctx, ErrorKind, Event, EventStream, ProviderError,
    anthropic::{self, ClaudeHost, MessagesParser, Shape},
    eventstream::Message,
    http::{self, Fault, Frame, Framing, Outgoing, Parser, Retry},
    sigv4::{self, AwsCreds},
};
use crate::config::Secret;

const ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";
const DEFAULT_REGION: &str = "us-east-1";
/// SigV4's name for Bedrock, though the host is `bedrock-runtime`.
const SIGNING_NAME: &str = "bedrock";
const ACCESS_KEY_VAR: &str = "AWS_ACCESS_KEY_ID";
const SECRET_KEY_VAR: &str = "AWS_SECRET_ACCESS_KEY";
const SESSION_TOKEN_VAR: &str = "AWS_SESSION_TOKEN";

pub(crate) struct Bedrock {
    url: String,
    region: String,
    auth: Auth,
}

enum Auth {
    /// A Bedrock API key, from `ctx.key`.
    Bearer,
    SigV4(AwsCreds),
}

impl Bedrock {
    pub fn new(ctx: &Ctx) -> Result<Self, ProviderError> {
        let model = ctx.require_model()?;
        anthropic::check_completion_mode(ctx)?;
        let region = region(ctx)?;
        let auth = auth(ctx)?;
        let base = ctx.base_url(&format!("https://bedrock-runtime.{region}.amazonaws.com"));
        let url = format!("{base}/model/{}/invoke-with-response-stream", encode_model_id(model));
        Ok(Bedrock { url, region, auth })
    }
}

impl ClaudeHost for Bedrock {
    async fn send(&self, ctx: &Arc<Ctx>, req: &ChatRequest, retry: Retry) -> Result<EventStream, ProviderError> {
        let body = anthropic::messages_body(
            req,
            Shape { model: None, stream: false, anthropic_version: Some(ANTHROPIC_VERSION) },
        );
        let mut out = Outgoing::post_json(self.url.clone(), &body);
        out.header("accept", "application/vnd.amazon.eventstream");
        out.header("x-amzn-bedrock-accept", "application/json");
        match &self.auth {
            Auth::Bearer => {
                let key = ctx.require_key()?;
                out.secret_header("authorization", &format!("Bearer {}", key.expose()))
                    .map_err(|e| ctx.config_error(e))?;
            }
            // Signed last, over the exact bytes that go out; a retry re-sends them unchanged, so
            // the signature stays valid for its five minutes.
            Auth::SigV4(creds) => sigv4::sign(
                &out.method,
                &out.url,
                &mut out.headers,
                &out.body,
                creds,
                &self.region,
                SIGNING_NAME,
                SystemTime::now(),
            )
            .map_err(|e| ctx.config_error(e))?,
        }
        let resp = http::send(ctx, &out, retry).await.map_err(|e| self.explain(e))?;
        Ok(EventStream::new(ctx, resp, Framing::EventStream, Box::new(InvokeParser::default())))
    }
}

impl Bedrock {
    /// A rejected signature is about the AWS variables, not the API-key variable the generic
    /// message would name.
    fn explain(&self, mut e: ProviderError) -> ProviderError {
        if let (ErrorKind::Auth { status, .. }, Auth::SigV4(creds)) = (&e.kind, &self.auth) {
            let mut vars = format!("${ACCESS_KEY_VAR} and ${SECRET_KEY_VAR}");
            if creds.session_token.is_some() {
                vars = format!("${ACCESS_KEY_VAR}, ${SECRET_KEY_VAR} and ${SESSION_TOKEN_VAR}");
            }
            let mut detail = e.detail.trim_end_matches('.').to_owned();
            if detail.contains("Signature expired") || detail.contains("not yet current") {
                detail.push_str("; check this machine's clock");
            }
            let sep = if detail.is_empty() { "" } else { "; " };
            e.detail = format!("{detail}{sep}signed with the credentials in {vars}");
            e.kind = ErrorKind::Auth { status: *status, env: None };
        }
        e
    }
}

/// `region` from config, else `$AWS_REGION`, else `$AWS_DEFAULT_REGION`, else `us-east-1`.
fn region(ctx: &Ctx) -> Result<String, ProviderError> {
    let region = ctx
        .config
        .region
        .clone()
        .or_else(|| ctx.var("AWS_REGION"))
        .or_else(|| ctx.var("AWS_DEFAULT_REGION"))
        .map(|r| r.trim().to_owned())
        .unwrap_or_else(|| DEFAULT_REGION.to_owned());
    // It becomes part of a host name.
    if region.is_empty() || !region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ctx.config_error(format!(
            "`{region}` is not an AWS region; set `providers.{}.region` (such as `us-east-1`)",
            ctx.name
        )));
    }
    Ok(region)
}

/// A Bedrock API key wins (as in Anthropic's SDK, which refuses to mix the two); else static
/// AWS credentials from the environment.
fn auth(ctx: &Ctx) -> Result<Auth, ProviderError> {
    if ctx.key.is_some() {
        return Ok(Auth::Bearer);
    }
    let var = |name: &str| ctx.var(name).map(|v| v.trim().to_owned());
    let key_env = ctx.key_env.clone().unwrap_or_else(|| "AWS_BEARER_TOKEN_BEDROCK".into());
    let (access_key_id, secret) = match (var(ACCESS_KEY_VAR), var(SECRET_KEY_VAR)) {
        (Some(id), Some(secret)) => (id, Secret::new(secret)),
        (Some(_), None) => {
            let detail = format!("${ACCESS_KEY_VAR} is set, so ${SECRET_KEY_VAR} must be too");
            return Err(ctx.error(ErrorKind::MissingKey { env: SECRET_KEY_VAR.into() }, detail));
        }
        (None, Some(_)) => {
            let detail = format!("${SECRET_KEY_VAR} is set, so ${ACCESS_KEY_VAR} must be too");
            return Err(ctx.error(ErrorKind::MissingKey { env: ACCESS_KEY_VAR.into() }, detail));
        }
        (None, None) => {
            let env = format!("{key_env} (or ${ACCESS_KEY_VAR} with ${SECRET_KEY_VAR})");
            let detail = format!("temporary AWS credentials also need ${SESSION_TOKEN_VAR}");
            return Err(ctx.error(ErrorKind::MissingKey { env }, detail));
        }
    };
    ctx.add_secret(&secret);
    let session_token = var(SESSION_TOKEN_VAR).map(Secret::new);
    if let Some(t) = &session_token {
        ctx.add_secret(t);
    }
    Ok(Auth::SigV4(AwsCreds { access_key_id, secret_access_key: secret, session_token }))
}

/// Percent-encode everything but RFC 3986's unreserved characters, so a model id's `:` and an
/// ARN's `/` travel as `%3A` and `%2F` inside one path segment.
fn encode_model_id(id: &str) -> String {
    let mut s = String::with_capacity(id.len() + 8);
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// A `chunk` event's payload: one Anthropic stream event, base64-encoded. Its `p` field is
/// random-length padding against traffic analysis, ignored.
#[derive(Deserialize)]
struct PayloadPart {
    bytes: String,
}

/// Reads the event-stream messages of `invoke-with-response-stream`.
#[derive(Default)]
pub(crate) struct InvokeParser {
    messages: MessagesParser,
}

impl Parser for InvokeParser {
    fn frame(&mut self, frame: Frame, out: &mut Vec<Event>) -> Result<(), Fault> {
        let Frame::Message(m) = frame else {
            return Err(Fault::malformed("expected AWS event-stream messages"));
        };
        match m.header_str(":message-type") {
            Some("event") => match m.header_str(":event-type") {
                Some("chunk") => self.chunk(&m.payload, out),
                // Not sent by invoke-with-response-stream today; a later addition is not text.
                other => {
                    tracing::debug!(event_type = ?other, "ignoring a Bedrock event");
                    Ok(())
                }
            },
            Some("exception") => Err(exception_fault(&m)),
            Some("error") => {
                let code = m.header_str(":error-code").unwrap_or("error");
                let message = m.header_str(":error-message").unwrap_or("");
                let detail = if message.is_empty() { code.to_owned() } else { format!("{code}: {message}") };
                Err(Fault::in_stream(format!("{detail} (sent mid-stream)")))
            }
            Some(other) => Err(Fault::malformed(format!(
                "an event-stream message of type `{other}`; expected `event`, `exception` or `error`"
            ))),
            None => Err(Fault::malformed("an event-stream message without a `:message-type` header")),
        }
    }
}

impl InvokeParser {
    fn chunk(&mut self, payload: &[u8], out: &mut Vec<Event>) -> Result<(), Fault> {
        let part: PayloadPart = serde_json::from_slice(payload).map_err(|e| {
            Fault::malformed(format!("a Bedrock `chunk` payload is not JSON with a `bytes` string ({e})"))
        })?;
        let event = base64::engine::general_purpose::STANDARD
            .decode(part.bytes.as_bytes())
            .map_err(|e| Fault::malformed(format!("the `bytes` of a Bedrock `chunk` are not base64 ({e})")))?;
        let v: Value = serde_json::from_slice(&event).map_err(|e| {
            Fault::malformed(format!("the decoded `bytes` of a Bedrock `chunk` are not an Anthropic event ({e})"))
        })?;
        self.messages.on_json(&v, out)
    }
}

/// The fault an `exception` message stands for; its payload is `{"message":"…"}`.
fn exception_fault(m: &Message) -> Fault {
    let name = m.header_str(":exception-type").unwrap_or("exception");
    let body: Option<Value> = serde_json::from_slice(&m.payload).ok();
    let field = |k: &str| body.as_ref().and_then(|b| b.get(k)).and_then(Value::as_str);
    let mut message = match field("message") {
        Some(msg) => msg.to_owned(),
        None if body.is_none() => String::from_utf8_lossy(&m.payload).into_owned(),
        None => String::new(),
    };
    // modelStreamErrorException names what the model itself failed with.
    if let Some(orig) = field("originalMessage") {
        let status = body.as_ref().and_then(|b| b.get("originalStatusCode")).and_then(Value::as_u64);
        match status {
            Some(s) => message.push_str(&format!(" (the model said, with status {s}: {orig})")),
            None => message.push_str(&format!(" (the model said: {orig})")),
        }
    }
    let kind = match name {
        "throttlingException" => ErrorKind::RateLimited,
        "serviceUnavailableException" => ErrorKind::Overloaded { status: 503 },
        "internalServerException" => ErrorKind::Server { status: 500 },
        _ => ErrorKind::InStream,
    };
    let message = message.trim();
    let detail = if message.is_empty() { name.to_owned() } else { format!("{name}: {message}") };
    Fault { kind, detail: format!("{detail} (sent mid-stream)") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::eventstream::HeaderValue;

    fn msg(headers: &[(&str, &str)], payload: &str) -> Frame {
        Frame::Message(Message {
            headers: headers.iter().map(|(k, v)| ((*k).to_owned(), HeaderValue::String((*v).to_owned()))).collect(),
            payload: payload.as_bytes().to_vec(),
        })
    }

    fn chunk(event: &str) -> Frame {
        let b64 = base64::engine::general_purpose::STANDARD.encode(event);
        msg(
            &[(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")],
            &format!(r#"{{"bytes":"{b64}","p":"abcdefghijklmnopqrstuvwxyzABCDEFGH"}}"#),
        )
    }

    #[test]
    fn model_ids_are_one_encoded_path_segment() {
        assert_eq!(
            encode_model_id("anthropic.claude-3-5-haiku-20241022-v1:0"),
            "anthropic.claude-3-5-haiku-20241022-v1%3A0"
        );
        assert_eq!(
            encode_model_id("arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic.x~y z"),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.anthropic.x~y%20z"
        );
    }

    #[test]
    fn chunks_carry_anthropic_events() {
        let mut p = InvokeParser::default();
        let mut out = Vec::new();
        p.frame(
            chunk(r#"{"type":"message_start","message":{"usage":{"input_tokens":5,"output_tokens":1}}}"#),
            &mut out,
        )
        .expect("start");
        p.frame(
            chunk(r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a\nb"}}"#),
            &mut out,
        )
        .expect("delta");
        p.frame(msg(&[(":message-type", "event"), (":event-type", "somethingNew")], "{}"), &mut out).expect("ignored");
        assert_eq!(out, vec![Event::Delta("a\nb".into())]);

        let bad = msg(&[(":message-type", "event"), (":event-type", "chunk")], r#"{"bytes":"!!"}"#);
        assert_eq!(p.frame(bad, &mut out).expect_err("base64").kind, ErrorKind::Malformed);
        let bad = msg(&[(":message-type", "event"), (":event-type", "chunk")], r#"{"byte":"e30="}"#);
        assert!(p.frame(bad, &mut out).expect_err("no bytes").detail.contains("`bytes` string"));
        let f = p.frame(chunk("not json"), &mut out).expect_err("json");
        assert!(
            f.detail.starts_with("the decoded `bytes` of a Bedrock `chunk` are not an Anthropic event"),
            "{}",
            f.detail
        );
        let f = p.frame(msg(&[], ""), &mut out).expect_err("no type");
        assert_eq!(f, Fault::malformed("an event-stream message without a `:message-type` header"));
        let f = p.frame(Frame::Line("{}".into()), &mut out).expect_err("not a message");
        assert_eq!(f.kind, ErrorKind::Malformed);
    }

    #[test]
    fn exceptions_map_to_error_classes() {
        let cases = [
            ("throttlingException", ErrorKind::RateLimited),
            ("serviceUnavailableException", ErrorKind::Overloaded { status: 503 }),
            ("internalServerException", ErrorKind::Server { status: 500 }),
            ("modelStreamErrorException", ErrorKind::InStream),
            ("modelTimeoutException", ErrorKind::InStream),
            ("validationException", ErrorKind::InStream),
        ];
        for (name, kind) in cases {
            let mut p = InvokeParser::default();
            let frame = msg(
                &[(":exception-type", name), (":content-type", "application/json"), (":message-type", "exception")],
                r#"{"message":"It went wrong."}"#,
            );
            let f = p.frame(frame, &mut Vec::new()).expect_err(name);
            assert_eq!(f, Fault { kind, detail: format!("{name}: It went wrong. (sent mid-stream)") });
        }
        let frame = msg(
            &[(":exception-type", "modelStreamErrorException"), (":message-type", "exception")],
            r#"{"message":"Model failed.","originalStatusCode":500,"originalMessage":"boom"}"#,
        );
        let f = InvokeParser::default().frame(frame, &mut Vec::new()).expect_err("stream error");
        assert_eq!(
            f.detail,
            "modelStreamErrorException: Model failed. (the model said, with status 500: boom) (sent mid-stream)"
        );
        let frame =
            msg(&[(":message-type", "error"), (":error-code", "InternalFailure"), (":error-message", "try later")], "");
        let f = InvokeParser::default().frame(frame, &mut Vec::new()).expect_err("error message");
        assert_eq!(f, Fault::in_stream("InternalFailure: try later (sent mid-stream)"));
    }
}
