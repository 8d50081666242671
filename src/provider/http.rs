//! The one place Quill speaks HTTP: a shared keep-alive client, sending with timeouts and bounded
//! retries, mapping error answers to [`ProviderError`], and driving a response body through a
//! framer and a vendor parser into [`Event`]s.
//!
//! Architecture Invariant: a request is re-sent only before any byte of its answer has been read,
//! and only for chat and edit. There is no reconnecting event source: a finished or cut stream is
//! never re-posted (that would bill the generation twice).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use reqwest::{
    Method, StatusCode,
    header::{HeaderMap, HeaderName, HeaderValue},
};
use serde_json::Value;

use super::{
    Ctx,
    error::{ErrorKind, ProviderError, TimeoutPhase},
    eventstream,
    sse::{LineParser, SseEvent, SseParser},
    types::{Event, Finish, StopReason, Usage},
};

/// A request ready to go on the wire. Kept as bytes so a retry (or a SigV4 signature) sees the
/// exact same body.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Outgoing {
    /// A JSON POST.
    pub fn post_json(url: String, body: &Value) -> Outgoing {
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Outgoing { method: Method::POST, url, headers, body: Bytes::from(body.to_string()) }
    }

    /// Add a header whose value is a credential: marked sensitive so no layer prints it.
    pub fn secret_header(&mut self, name: &'static str, value: &str) -> Result<(), String> {
        let mut v =
            HeaderValue::from_str(value).map_err(|_| format!("the value for `{name}` is not a valid header"))?;
        v.set_sensitive(true);
        self.headers.insert(HeaderName::from_static(name), v);
        Ok(())
    }

    pub fn header(&mut self, name: &'static str, value: &'static str) {
        self.headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
}

/// An `f32` as the decimal it was written as (`0.2`, not `0.20000000298023224`); `null` for NaN.
pub(crate) fn json_f32(x: f32) -> Value {
    x.to_string().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
}

/// Whether a failed send may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Autocomplete: a late answer is useless, so fail at once.
    Never,
    /// Chat and edit: retry transient failures, before any byte has streamed.
    Transient,
}

/// A 429's `retry-after` longer than this is reported rather than waited out.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(10);
const BACKOFF_BASE: Duration = Duration::from_millis(500);
const BACKOFF_CAP: Duration = Duration::from_secs(8);
/// How much of an error body is read to find the vendor's message.
const MAX_ERROR_BODY: usize = 64 << 10;

/// One pooled client per connect timeout (normally just one): reqwest's connect timeout is
/// per client, and keeping connections alive across requests saves a TLS handshake each time.
pub(crate) fn client(connect_timeout: Duration) -> Result<reqwest::Client, String> {
    static POOL: Mutex<Vec<(Duration, reqwest::Client)>> = Mutex::new(Vec::new());
    let mut pool = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, c)) = pool.iter().find(|(t, _)| *t == connect_timeout) {
        return Ok(c.clone());
    }
    let c = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        // A redirect could carry a key header to another host; no LLM API needs one.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("quill/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot start the HTTP client: {}", error_chain(&e)))?;
    pool.push((connect_timeout, c.clone()));
    Ok(c)
}

/// Send `out`, retrying transient failures when `retry` allows. Returns a 2xx response whose
/// body has not been read.
pub(crate) async fn send(ctx: &Ctx, out: &Outgoing, retry: Retry) -> Result<reqwest::Response, ProviderError> {
    send_with(ctx, out, retry, true).await
}

/// When a request was first sent and when its successful attempt was: the stream's first-byte
/// and total deadlines count from these, not from when the answer's head arrived.
#[derive(Debug, Clone, Copy)]
struct SentAt {
    first: Instant,
    attempt: Instant,
}

/// `send`, for a request to another host than the provider's API (an OAuth token endpoint): the
/// API's 429 cool-down neither applies to it nor is set by it.
pub(crate) async fn send_aside(ctx: &Ctx, out: &Outgoing) -> Result<reqwest::Response, ProviderError> {
    send_with(ctx, out, Retry::Never, false).await
}

async fn send_with(
    ctx: &Ctx,
    out: &Outgoing,
    retry: Retry,
    cooldown: bool,
) -> Result<reqwest::Response, ProviderError> {
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        if cooldown {
            ctx.wait_for_cooldown(retry).await?;
        }
        let attempt_started = Instant::now();
        let result = send_once(ctx, out, started).await;
        let err = match result {
            Ok(mut resp) => {
                resp.extensions_mut().insert(SentAt { first: started, attempt: attempt_started });
                return Ok(resp);
            }
            Err(e) => e,
        };
        if cooldown
            && err.kind == ErrorKind::RateLimited
            && let Some(after) = err.retry_after
        {
            ctx.set_cooldown(after);
        }
        let can_retry = retry == Retry::Transient
            && attempt < ctx.config.max_retries
            && err.is_transient()
            && !err.no_retry
            && err.retry_after.is_none_or(|d| d <= MAX_RETRY_WAIT);
        if !can_retry {
            return Err(err);
        }
        let wait = err.retry_after.unwrap_or_else(|| backoff(attempt));
        if started.elapsed() + wait > ctx.total_timeout() {
            return Err(err);
        }
        tracing::info!(provider = %ctx.name, attempt = attempt + 1, wait_ms = wait.as_millis() as u64, error = %err.kind_label(), "retrying");
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// Exponential backoff with jitter: half the step fixed, half random, so retries of many
/// clients do not arrive together.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let step = BACKOFF_BASE.saturating_mul(1u32 << attempt.min(16)).min(BACKOFF_CAP);
    let half = step / 2;
    half + half.mul_f64(random_unit())
}

fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

async fn send_once(ctx: &Ctx, out: &Outgoing, started: Instant) -> Result<reqwest::Response, ProviderError> {
    let req = ctx
        .client
        .request(out.method.clone(), &out.url)
        .headers(out.headers.clone())
        .body(out.body.clone())
        .build()
        .map_err(|e| {
            ctx.error(ErrorKind::Config, format!("cannot build a request for `{}`: {}", out.url, error_chain(&e)))
        })?;
    tracing::debug!(provider = %ctx.name, method = %out.method, url = %out.url, bytes = out.body.len(), "request");
    let left = ctx.total_timeout().saturating_sub(started.elapsed());
    let (wait, phase) = if ctx.first_byte_timeout() <= left {
        (ctx.first_byte_timeout(), TimeoutPhase::FirstByte)
    } else {
        (left, TimeoutPhase::Total)
    };
    let resp = match tokio::time::timeout(wait, ctx.client.execute(req)).await {
        Err(_) => return Err(ctx.timeout(phase)),
        Ok(Err(e)) => return Err(ctx.transport_error(&e)),
        Ok(Ok(resp)) => resp,
    };
    let status = resp.status();
    tracing::debug!(provider = %ctx.name, status = status.as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "response");
    if status.is_success() {
        return Ok(resp);
    }
    let headers = resp.headers().clone();
    // A body that trickles in must not hold the request past its total deadline.
    let deadline = (Instant::now() + ctx.idle_timeout()).min(started + ctx.total_timeout());
    let body = read_error_body(resp, deadline).await;
    Err(classify(ctx, status, &headers, &body))
}

async fn read_error_body(mut resp: reqwest::Response, deadline: Instant) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match tokio::time::timeout_at(deadline.into(), resp.chunk()).await {
            Ok(Ok(Some(c))) => body.extend_from_slice(&c),
            _ => break,
        }
    }
    body
}

/// Vendor error bodies share a few shapes; this finds the message and the machine-readable code.
/// Shapes: `{"error":{"message","type"|"code"|"status"}}` (OpenAI, Anthropic, Gemini, vLLM,
/// llama.cpp), `{"error":"…"}` (Ollama), `{"message":"…"}` plus `x-amzn-ErrorType` (Bedrock),
/// `[{"error":{…}}]` (Vertex), `{"error":"invalid_grant","error_description":"…"}` (OAuth).
pub(crate) struct ErrorInfo {
    pub codes: Vec<String>,
    pub message: String,
    pub retry_delay: Option<Duration>,
}

pub(crate) fn error_info(headers: &HeaderMap, body: &[u8]) -> ErrorInfo {
    let mut codes = Vec::new();
    let mut message = String::new();
    let mut retry_delay = None;
    if let Some(t) = headers.get("x-amzn-errortype").and_then(|v| v.to_str().ok()) {
        codes.push(t.split(':').next().unwrap_or(t).to_owned());
    }
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let root = match &parsed {
        Some(Value::Array(items)) => items.first(),
        other => other.as_ref(),
    };
    if let Some(root) = root {
        let err = root.get("error").unwrap_or(root);
        match err {
            Value::String(s) => {
                // OAuth puts the code in `error` and the words in `error_description`.
                match root.get("error_description").and_then(Value::as_str) {
                    Some(d) => {
                        codes.push(s.clone());
                        message = d.to_owned();
                    }
                    None => message = s.clone(),
                }
            }
            Value::Object(o) => {
                for key in ["type", "code", "status"] {
                    match o.get(key) {
                        Some(Value::String(s)) if s != "error" => codes.push(s.clone()),
                        Some(Value::Number(n)) => codes.push(n.to_string()),
                        _ => {}
                    }
                }
                if let Some(m) = o.get("message").and_then(Value::as_str) {
                    message = m.to_owned();
                }
                for d in o.get("details").and_then(Value::as_array).into_iter().flatten() {
                    if let Some(r) = d.get("reason").and_then(Value::as_str) {
                        codes.push(r.to_owned());
                    }
                    if let Some(delay) = d.get("retryDelay").and_then(Value::as_str) {
                        retry_delay = parse_seconds(delay);
                    }
                }
                // Anthropic's spend cap: `error.details.error_code`.
                if let Some(c) = o.get("details").and_then(|d| d.get("error_code")).and_then(Value::as_str) {
                    codes.push(c.to_owned());
                }
            }
            _ => {}
        }
        if message.is_empty()
            && let Some(m) = root.get("message").and_then(Value::as_str)
        {
            message = m.to_owned();
        }
    }
    if message.is_empty() && parsed.is_none() {
        message = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
    }
    ErrorInfo { codes, message, retry_delay }
}

fn parse_seconds(s: &str) -> Option<Duration> {
    let n: f64 = s.trim().strip_suffix('s')?.parse().ok()?;
    (n.is_finite() && n >= 0.0).then(|| Duration::from_secs_f64(n.min(86_400.0)))
}

/// `retry-after-ms` (Azure), then `retry-after` in seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms.min(86_400_000.0) / 1000.0));
    }
    let v = get("retry-after")?;
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(86_400.0)));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    // A skewed clock or a bogus date must not silence the provider for years.
    Some(when.duration_since(std::time::SystemTime::now()).unwrap_or_default().min(Duration::from_secs(86_400)))
}

/// Map an HTTP error answer to an error class.
pub(crate) fn classify(ctx: &Ctx, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ProviderError {
    let info = error_info(headers, body);
    let has = |code: &str| info.codes.iter().any(|c| c.eq_ignore_ascii_case(code));
    let s = status.as_u16();
    let kind = match s {
        401 | 403 => ErrorKind::Auth { status: s, env: ctx.key_env.clone() },
        400 if has("API_KEY_INVALID") || has("UNAUTHENTICATED") => {
            ErrorKind::Auth { status: s, env: ctx.key_env.clone() }
        }
        404 => ErrorKind::NotFound { status: s, model: ctx.model.clone() },
        429 if has("insufficient_quota") || has("enforced_spend_limit_reached") || has("billing_error") => {
            ErrorKind::QuotaExceeded
        }
        429 => ErrorKind::RateLimited,
        501 => ErrorKind::Unsupported,
        503 | 529 => ErrorKind::Overloaded { status: s },
        408 | 500..=599 => ErrorKind::Server { status: s },
        300..=399 => {
            let to = headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("elsewhere");
            return ctx.error(
                ErrorKind::BadRequest { status: s },
                format!("redirected to {to}; redirects are not followed, set base_url to the final address"),
            );
        }
        _ => ErrorKind::BadRequest { status: s },
    };
    let mut detail = info.message;
    // The vendor's code adds to the words only when there are none, when the request was refused
    // (`context_length_exceeded` says what to change), or when it is a CamelCase name (AWS's
    // `ExpiredTokenException`, Azure's `DeploymentNotFound` say more than their messages). Google
    // repeats the HTTP status as a numeric code, which the text already has.
    let camel = |c: &str| {
        c.starts_with(|ch: char| ch.is_ascii_uppercase())
            && c.chars().any(|ch| ch.is_ascii_lowercase())
            && c.chars().all(|ch| ch.is_ascii_alphanumeric())
    };
    let code_helps = detail.is_empty()
        || matches!(kind, ErrorKind::BadRequest { .. })
        || info.codes.first().is_some_and(|c| camel(c));
    if code_helps
        && let Some(code) = info.codes.iter().find(|c| **c != s.to_string())
        && !detail.contains(code.as_str())
    {
        detail = if detail.is_empty() { code.clone() } else { format!("{code}: {detail}") };
    }
    let mut e = ctx.error(kind, detail);
    if matches!(e.kind, ErrorKind::RateLimited | ErrorKind::Overloaded { .. } | ErrorKind::Server { .. }) {
        e.retry_after = retry_after(headers).or(info.retry_delay);
    }
    // Anthropic says outright whether a retry can help.
    if headers.get("x-should-retry").and_then(|v| v.to_str().ok()) == Some("false") {
        e.no_retry = true;
    }
    e
}

/// A reqwest error's message with its causes, which hold the useful part ("connection refused").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
}

/// How a response body is cut into frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Sse,
    Ndjson,
    EventStream,
}

/// One frame of a response body.
#[derive(Debug)]
pub(crate) enum Frame {
    Sse(SseEvent),
    Line(String),
    Message(eventstream::Message),
}

/// A fault a vendor parser found in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub kind: ErrorKind,
    pub detail: String,
}

impl Fault {
    pub fn malformed(detail: impl Into<String>) -> Fault {
        Fault { kind: ErrorKind::Malformed, detail: detail.into() }
    }
    pub fn in_stream(detail: impl Into<String>) -> Fault {
        Fault { kind: ErrorKind::InStream, detail: detail.into() }
    }
}

/// A vendor's stream parser: frames in, events out.
pub(crate) trait Parser: Send {
    /// Handle one frame. Push `Event::Done` when the vendor's end marker arrives.
    fn frame(&mut self, frame: Frame, out: &mut Vec<Event>) -> Result<(), Fault>;
    /// The body ended without an end marker. `Some` if the vendor legitimately ends that way
    /// (Gemini ends at EOF once a `finishReason` arrived); `None` means the stream was cut.
    fn eof(&mut self) -> Option<Finish> {
        None
    }
}

enum Framer {
    Sse(SseParser),
    Lines(LineParser),
    Events(eventstream::Decoder),
}

impl Framer {
    fn new(f: Framing) -> Framer {
        match f {
            Framing::Sse => Framer::Sse(SseParser::new()),
            Framing::Ndjson => Framer::Lines(LineParser::default()),
            Framing::EventStream => Framer::Events(eventstream::Decoder::new()),
        }
    }

    fn feed(&mut self, chunk: &[u8], frames: &mut Vec<Frame>) -> Result<(), String> {
        match self {
            // Frames decoded before an error are kept: the text they carry reaches the user
            // before the error does.
            Framer::Sse(p) => {
                let mut evs = Vec::new();
                let r = p.feed(chunk, &mut evs);
                frames.extend(evs.into_iter().map(Frame::Sse));
                r
            }
            Framer::Lines(p) => {
                let mut lines = Vec::new();
                let r = p.feed(chunk, &mut lines);
                frames.extend(lines.into_iter().map(Frame::Line));
                r
            }
            Framer::Events(d) => {
                let mut msgs = Vec::new();
                let r = d.feed(chunk, &mut msgs).map_err(|e| e.to_string());
                frames.extend(msgs.into_iter().map(Frame::Message));
                r
            }
        }
    }

    fn finish(&mut self, frames: &mut Vec<Frame>) -> Result<(), String> {
        match self {
            Framer::Sse(p) => {
                let mut evs = Vec::new();
                p.finish(&mut evs)?;
                frames.extend(evs.into_iter().map(Frame::Sse));
            }
            Framer::Lines(p) => {
                let mut lines = Vec::new();
                p.finish(&mut lines)?;
                frames.extend(lines.into_iter().map(Frame::Line));
            }
            Framer::Events(d) => d.finish().map_err(|e| e.to_string())?,
        }
        Ok(())
    }
}

/// A transformation of the text as it streams: strip template stop tokens that leaked, cut at a
/// closing tag. It may hold text back while it cannot yet tell (a token split across deltas).
pub(crate) trait DeltaFilter: Send {
    /// Text to pass on now, and whether the answer is over (the rest is not wanted).
    fn push(&mut self, delta: &str) -> (String, bool);
    /// The stream ended: whatever was held back.
    fn flush(&mut self) -> String;
}

/// Why reading the body stopped short.
enum ReadError {
    Timeout(TimeoutPhase),
    /// The connection broke; the transport's words.
    Broken(String),
}

/// Where the body bytes come from: the network, or (for tests and benchmarks) memory.
enum Source {
    Http(reqwest::Response),
    Memory(VecDeque<Bytes>),
}

/// A provider's answer: text deltas, then `Done`. Dropping it closes the connection, which is
/// how every vendor learns to stop generating.
pub struct EventStream {
    ctx: Arc<Ctx>,
    source: Option<Source>,
    framer: Framer,
    parser: Box<dyn Parser>,
    filter: Option<Box<dyn DeltaFilter>>,
    queue: VecDeque<Event>,
    frames: Vec<Frame>,
    events: Vec<Event>,
    /// Characters of text delivered so far.
    received: usize,
    got_first_byte: bool,
    first_byte_deadline: Instant,
    total_deadline: Instant,
    finished: bool,
    /// The answer was ended by a filter, not by the vendor: close the connection rather than
    /// read the rest.
    abort_on_done: bool,
    /// An error found after some events: it is returned once those are delivered.
    pending_error: Option<ProviderError>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").field("provider", &self.ctx.name).field("received", &self.received).finish()
    }
}

impl EventStream {
    pub(crate) fn new(ctx: &Arc<Ctx>, resp: reqwest::Response, framing: Framing, parser: Box<dyn Parser>) -> Self {
        let sent = resp.extensions().get::<SentAt>().copied();
        let mut s = Self::with_source(ctx, Source::Http(resp), framing, parser);
        if let Some(sent) = sent {
            s.first_byte_deadline = sent.attempt + ctx.first_byte_timeout();
            s.total_deadline = sent.first + ctx.total_timeout();
        }
        s
    }

    fn with_source(ctx: &Arc<Ctx>, source: Source, framing: Framing, parser: Box<dyn Parser>) -> Self {
        let now = Instant::now();
        EventStream {
            ctx: ctx.clone(),
            source: Some(source),
            framer: Framer::new(framing),
            parser,
            filter: None,
            queue: VecDeque::new(),
            frames: Vec::new(),
            events: Vec::new(),
            received: 0,
            got_first_byte: false,
            first_byte_deadline: now + ctx.first_byte_timeout(),
            total_deadline: now + ctx.total_timeout(),
            finished: false,
            abort_on_done: false,
            pending_error: None,
        }
    }

    /// Pass the text through `filter` as it streams.
    pub(crate) fn with_filter(mut self, filter: Box<dyn DeltaFilter>) -> Self {
        self.filter = Some(filter);
        self
    }

    /// The next event; `None` after `Done` or an error.
    pub async fn next(&mut self) -> Option<Result<Event, ProviderError>> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                match &ev {
                    Event::Delta(t) => self.received += t.chars().count(),
                    Event::Done(_) => self.finish_ok(),
                }
                return Some(Ok(ev));
            }
            if let Some(e) = self.pending_error.take() {
                return Some(Err(e));
            }
            if self.finished {
                return None;
            }
            match self.read().await {
                Ok(Some(chunk)) => {
                    let framed = self.framer.feed(&chunk, &mut self.frames);
                    self.parse_frames();
                    if let Err(e) = framed
                        && self.pending_error.is_none()
                    {
                        self.defer_error(ErrorKind::Malformed, e);
                    }
                }
                Ok(None) => {
                    let framed = self.framer.finish(&mut self.frames);
                    self.parse_frames();
                    if self.pending_error.is_some() {
                        continue;
                    }
                    if let Err(e) = framed {
                        // The body ended inside a frame: the stream was cut.
                        let received = self.received_with_queue();
                        self.defer_error(ErrorKind::Incomplete { received }, e);
                        continue;
                    }
                    if !self.queue.iter().any(|e| matches!(e, Event::Done(_))) {
                        self.flush_filter();
                        match self.parser.eof() {
                            Some(fin) => self.queue.push_back(Event::Done(fin)),
                            None => {
                                // Cut before the end marker: what arrived is handed over first.
                                let received = self.received_with_queue();
                                self.defer_error(ErrorKind::Incomplete { received }, String::new());
                            }
                        }
                    }
                }
                Err(e) => {
                    // Text a filter held back is the user's too: hand it over, then the error.
                    self.flush_filter();
                    let (kind, detail) = match e {
                        ReadError::Timeout(phase) => (self.ctx.timeout(phase).kind, String::new()),
                        ReadError::Broken(detail) => {
                            (ErrorKind::Incomplete { received: self.received_with_queue() }, detail)
                        }
                    };
                    self.defer_error(kind, detail);
                }
            }
        }
    }

    /// Collect the whole answer: the text and how it ended.
    pub async fn text(mut self) -> Result<(String, Finish), ProviderError> {
        let mut text = String::new();
        while let Some(ev) = self.next().await {
            match ev? {
                Event::Delta(t) => text.push_str(&t),
                Event::Done(f) => return Ok((text, f)),
            }
        }
        let received = self.received;
        Err(self.ctx.error(ErrorKind::Incomplete { received }, String::new()))
    }

    /// Characters delivered plus those queued for delivery.
    fn received_with_queue(&self) -> usize {
        self.received
            + self.queue.iter().map(|e| if let Event::Delta(t) = e { t.chars().count() } else { 0 }).sum::<usize>()
    }

    /// Stop reading; deliver what is queued, then this error. An answer already complete (its
    /// `Done` queued) stays complete: what broke came after its end.
    fn defer_error(&mut self, kind: ErrorKind, detail: String) {
        self.finished = true;
        self.source = None;
        if self.queue.iter().any(|e| matches!(e, Event::Done(_))) {
            return;
        }
        self.pending_error = Some(self.ctx.error(kind, detail));
    }

    /// Run the framed frames through the parser and filter into the queue. A fault stops the
    /// stream after the events that came before it.
    fn parse_frames(&mut self) {
        let mut frames = std::mem::take(&mut self.frames);
        let mut fault = None;
        for frame in frames.drain(..) {
            if let Err(f) = self.parser.frame(frame, &mut self.events) {
                fault = Some(f);
                break;
            }
            // Frames after the end marker are not ours to read.
            if matches!(self.events.last(), Some(Event::Done(_))) {
                break;
            }
        }
        frames.clear();
        self.frames = frames;
        let mut events = std::mem::take(&mut self.events);
        for ev in events.drain(..) {
            match ev {
                Event::Delta(t) if t.is_empty() => {}
                Event::Delta(t) => {
                    let Some(filter) = &mut self.filter else {
                        self.queue.push_back(Event::Delta(t));
                        continue;
                    };
                    let (text, over) = filter.push(&t);
                    if !text.is_empty() {
                        self.queue.push_back(Event::Delta(text));
                    }
                    if over {
                        let fin = Finish { stop_reason: StopReason::StopSequence, usage: Usage::default() };
                        self.queue.push_back(Event::Done(fin));
                        // The model is still generating what we will not use: stop it.
                        self.abort_on_done = true;
                        break;
                    }
                }
                Event::Done(f) => {
                    self.flush_filter();
                    self.queue.push_back(Event::Done(f));
                    // Anything after the end marker is not ours to read.
                    break;
                }
            }
        }
        events.clear();
        self.events = events;
        if let Some(f) = fault {
            self.defer_error(f.kind, f.detail);
        }
    }

    fn flush_filter(&mut self) {
        if let Some(filter) = &mut self.filter {
            let rest = filter.flush();
            if !rest.is_empty() {
                self.queue.push_back(Event::Delta(rest));
            }
        }
    }

    async fn read(&mut self) -> Result<Option<Bytes>, ReadError> {
        let (deadline, phase) = if self.got_first_byte {
            let idle = Instant::now() + self.ctx.idle_timeout();
            if idle < self.total_deadline {
                (idle, TimeoutPhase::Idle)
            } else {
                (self.total_deadline, TimeoutPhase::Total)
            }
        } else if self.first_byte_deadline < self.total_deadline {
            (self.first_byte_deadline, TimeoutPhase::FirstByte)
        } else {
            (self.total_deadline, TimeoutPhase::Total)
        };
        let result = match &mut self.source {
            None => return Ok(None),
            Some(Source::Memory(chunks)) => Ok(chunks.pop_front()),
            Some(Source::Http(resp)) => match tokio::time::timeout_at(deadline.into(), resp.chunk()).await {
                Err(_) => return Err(ReadError::Timeout(phase)),
                Ok(r) => r,
            },
        };
        match result {
            Ok(Some(c)) => {
                self.got_first_byte = true;
                Ok(Some(c))
            }
            Ok(None) => {
                self.source = None;
                Ok(None)
            }
            // The connection broke mid-body: the stream is incomplete.
            Err(e) => Err(ReadError::Broken(error_chain(&e))),
        }
    }

    fn finish_ok(&mut self) {
        self.finished = true;
        self.queue.clear();
        if self.abort_on_done {
            self.source = None;
            return;
        }
        // Read the rest of the body (normally just the chunked terminator) in the background so
        // the connection goes back to the pool instead of being closed.
        if let Some(Source::Http(mut resp)) = self.source.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let drain = async {
                    let mut left = 64usize << 10;
                    while let Ok(Some(c)) = resp.chunk().await {
                        left = left.saturating_sub(c.len());
                        if left == 0 {
                            break;
                        }
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
            });
        }
    }
}

/// Parse an in-memory body as if it had arrived over the network in these chunks. For tests and
/// the stream-parsing benchmarks.
#[doc(hidden)]
pub fn parse_recorded(
    kind: crate::config::ProviderKind,
    op: super::Op,
    framing_chunks: Vec<Bytes>,
) -> Result<(String, Finish), ProviderError> {
    let ctx = Arc::new(Ctx::for_tests(kind));
    let (framing, parser) = super::parser_for(kind, op);
    let mut s = EventStream::with_source(&ctx, Source::Memory(framing_chunks.into()), framing, parser);
    // Memory sources never wait, so polling once to completion is enough.
    futures_util::FutureExt::now_or_never(async move {
        let mut text = String::new();
        while let Some(ev) = s.next().await {
            match ev? {
                Event::Delta(t) => text.push_str(&t),
                Event::Done(f) => return Ok((text, f)),
            }
        }
        Err(s.ctx.error(ErrorKind::Incomplete { received: s.received }, String::new()))
    })
    .unwrap_or_else(|| Err(ctx.error(ErrorKind::Malformed, "a memory stream waited")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_static(k), HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(retry_after(&headers(&[("retry-after", "3")])), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "250"), ("retry-after", "9")])),
            Some(Duration::from_millis(250))
        );
        let past = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_after(&past), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers(&[("retry-after", "soon")])), None);
    }

    #[test]
    fn error_bodies_of_every_shape() {
        let h = HeaderMap::new();
        let i = error_info(
            &h,
            br#"{"error":{"message":"Incorrect API key","type":"invalid_request_error","code":"invalid_api_key"}}"#,
        );
        assert_eq!(
            (i.codes.as_slice(), i.message.as_str()),
            (&["invalid_request_error".to_owned(), "invalid_api_key".into()][..], "Incorrect API key")
        );
        let i = error_info(&h, br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#);
        assert_eq!(i.codes, ["overloaded_error"]);
        let i = error_info(&h, br#"[{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}]"#);
        assert_eq!(i.codes, ["429", "RESOURCE_EXHAUSTED"]);
        let i = error_info(&h, br#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"22s"}]}}"#);
        assert!(i.codes.contains(&"API_KEY_INVALID".to_owned()));
        assert_eq!(i.retry_delay, Some(Duration::from_secs(22)));
        let i = error_info(&h, br#"{"error":"model 'x' not found"}"#);
        assert_eq!(i.message, "model 'x' not found");
        let i = error_info(
            &headers(&[(
                "x-amzn-errortype",
                "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            )]),
            br#"{"message":"Too many requests"}"#,
        );
        assert_eq!(
            (i.codes.as_slice(), i.message.as_str()),
            (&["ThrottlingException".to_owned()][..], "Too many requests")
        );
        let i = error_info(&h, br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#);
        assert_eq!(
            (i.codes.as_slice(), i.message.as_str()),
            (&["invalid_grant".to_owned()][..], "Invalid JWT Signature.")
        );
        let i = error_info(&h, b"<html>Bad Gateway</html>");
        assert_eq!(i.message, "<html>Bad Gateway</html>");
    }

    fn recorded(kind: crate::config::ProviderKind, chunks: &[&[u8]]) -> Result<(String, Finish), ProviderError> {
        let chunks = chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect();
        parse_recorded(kind, super::super::Op::Chat, chunks)
    }

    #[test]
    fn nothing_after_the_end_marker_can_spoil_a_finished_answer() {
        use crate::config::ProviderKind;
        let openai = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\ndata: \xff\n\n";
        let (text, fin) = recorded(ProviderKind::Openai, &[openai]).expect("complete");
        assert_eq!((text.as_str(), fin.stop_reason), ("Hi", StopReason::EndTurn));
        let anthropic = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\nevent: x\ndata: not json\n\n";
        let (text, _) = recorded(ProviderKind::Anthropic, &[anthropic]).expect("complete");
        assert_eq!(text, "Hi");
    }

    #[test]
    fn text_before_a_fault_in_the_same_chunk_is_delivered_first() {
        use crate::config::ProviderKind;
        let ctx = Arc::new(Ctx::for_tests(ProviderKind::Openai));
        let (framing, parser) = super::super::parser_for(ProviderKind::Openai, super::super::Op::Chat);
        let body = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\ndata: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}\n\n";
        let chunks = VecDeque::from([Bytes::from_static(body)]);
        let mut s = EventStream::with_source(&ctx, Source::Memory(chunks), framing, parser);
        let events = futures_util::FutureExt::now_or_never(async move {
            let mut v = Vec::new();
            while let Some(ev) = s.next().await {
                v.push(ev);
            }
            v
        })
        .expect("memory streams never wait");
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0], Ok(Event::Delta("Hi".into())));
        assert!(events[1].as_ref().is_err_and(|e| e.detail.contains("boom")), "{events:?}");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 0..20 {
            let d = backoff(attempt);
            let step = BACKOFF_BASE.saturating_mul(1 << attempt.min(16)).min(BACKOFF_CAP);
            assert!(d >= step / 2 && d <= step, "{attempt}: {d:?}");
        }
    }
}
