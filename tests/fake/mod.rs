//! Fake vendor servers for provider tests: a scriptable HTTP/1.1 server on 127.0.0.1 that records
//! every request, answers with exact bytes (chunk by chunk, with delays, cuts and stalls), and
//! notes when the client closes the connection. Also a trace-level log capture, so tests can
//! check that no secret is ever written.
//!
//! Also the helpers every provider test shares, kept here so each vendor's file holds only what
//! is particular to that vendor:
//! - Split bodies (`chunks_of`, `Reply::chunked`): every parser must survive arbitrary chunk
//!   boundaries, so each vendor's tests cut its transcripts the same way.
//! - Stream outcomes (`drain`, `chat_err`, `complete_err`, `Refused`): every vendor's stream
//!   ends in text, a finish or an error, and failure tests all want that error however it came.
//! - Shown errors (`shown`): what a user can see of an error, for the no-secret-leaks checks.
//! - Timeouts and cancellation (`short_timeouts`, `assert_idle_timeout`, `assert_drop_closes`):
//!   every vendor must give up on a stalled stream and close the connection when dropped, and
//!   every vendor's test checks that against the same bounds.
//! - Fixtures (`rust_completion_req`): the autocomplete request that chat-only vendors share.
#![allow(dead_code)] // each test binary uses a different subset

use std::{
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

use quill::{
    config::{Feature, ProviderConfig},
    provider::{
        ChatRequest, CompletionRequest, ErrorKind, Event, EventStream, Finish, Provider, ProviderError, TimeoutPhase,
    },
};

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent (still percent-encoded).
    pub path: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// One piece of an answer body.
#[derive(Debug, Clone)]
pub enum Part {
    /// Bytes, sent as one HTTP chunk.
    Bytes(Vec<u8>),
    /// Wait before the next part (noting a client close meanwhile).
    Delay(Duration),
    /// Close the connection abruptly, without ending the body.
    Cut,
    /// Send nothing more, keep the connection open until the client leaves.
    Stall,
    /// Wait until the test opens this gate (noting a client close meanwhile).
    Gate(Gate),
}

/// A latch a reply waits on ([`Reply::gate`]) until the test opens it: the test, not a timer,
/// decides when the answer goes on, so the order of events is fixed.
#[derive(Debug, Clone, Default)]
pub struct Gate(Arc<std::sync::atomic::AtomicBool>);

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }
    pub fn open(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    pub fn is_open(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub parts: Vec<Part>,
    /// Stall before even sending the status line.
    pub stall_before_head: bool,
    /// Wait this long before sending the status line.
    pub head_delay: Option<Duration>,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply { status, headers: Vec::new(), parts: Vec::new(), stall_before_head: false, head_delay: None }
    }
    pub fn header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }
    pub fn bytes(mut self, b: impl AsRef<[u8]>) -> Reply {
        self.parts.push(Part::Bytes(b.as_ref().to_vec()));
        self
    }
    pub fn delay(mut self, ms: u64) -> Reply {
        self.parts.push(Part::Delay(Duration::from_millis(ms)));
        self
    }
    pub fn cut(mut self) -> Reply {
        self.parts.push(Part::Cut);
        self
    }
    pub fn stall(mut self) -> Reply {
        self.parts.push(Part::Stall);
        self
    }
    /// Wait for `gate` to open before the next part.
    pub fn gate(mut self, gate: &Gate) -> Reply {
        self.parts.push(Part::Gate(gate.clone()));
        self
    }
    /// A JSON answer in one piece.
    pub fn json(status: u16, body: &str) -> Reply {
        Reply::new(status).header("content-type", "application/json").bytes(body)
    }
    /// An event stream: each string is sent as its own chunk, exactly as given.
    pub fn stream(content_type: &str, chunks: &[&str]) -> Reply {
        let mut r = Reply::new(200).header("content-type", content_type);
        for c in chunks {
            r = r.bytes(c);
        }
        r
    }
    /// `text/event-stream` with these exact chunks.
    pub fn sse(chunks: &[&str]) -> Reply {
        Reply::stream("text/event-stream", chunks)
    }
    /// No answer at all: the server accepts the request and never replies.
    pub fn silent() -> Reply {
        Reply { stall_before_head: true, ..Reply::new(200) }
    }
    /// Answer only after `ms` milliseconds.
    pub fn head_after(mut self, ms: u64) -> Reply {
        self.head_delay = Some(Duration::from_millis(ms));
        self
    }
    /// A 200 with `content_type`, its body sent in pieces of these sizes (in turn, see
    /// [`chunks_of`]), so lines, fields and UTF-8 sequences split.
    pub fn chunked(content_type: &str, body: impl AsRef<[u8]>, sizes: &[usize]) -> Reply {
        chunks_of(body.as_ref(), sizes)
            .into_iter()
            .fold(Reply::new(200).header("content-type", content_type), Reply::bytes)
    }
}

type Handler = dyn Fn(&Recorded, usize) -> Reply + Send + Sync;

struct State {
    /// TCP connections accepted: fewer than requests means keep-alive reuse.
    connections: std::sync::atomic::AtomicUsize,
    requests: Mutex<Vec<Recorded>>,
    closes: Mutex<Vec<Instant>>,
    handler: Box<Handler>,
}

/// A running fake server. It stops when dropped (its tasks end with the test's runtime).
pub struct Fake {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:port`
    pub url: String,
    state: Arc<State>,
}

impl Fake {
    /// Serve every request with `handler(request, index)`; `index` counts requests from 0.
    pub async fn start(handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State {
            connections: Default::default(),
            requests: Mutex::new(Vec::new()),
            closes: Mutex::new(Vec::new()),
            handler: Box::new(handler),
        });
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                st.connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let st = st.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, st).await;
                });
            }
        });
        Fake { addr, url: format!("http://{addr}"), state }
    }

    /// Always answer with the same reply.
    pub async fn always(reply: Reply) -> Fake {
        Fake::start(move |_, _| reply.clone()).await
    }

    /// How many TCP connections clients opened.
    pub fn connections(&self) -> usize {
        self.state.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }

    pub fn request(&self, i: usize) -> Recorded {
        self.requests().get(i).cloned().unwrap_or_else(|| panic!("no request #{i}"))
    }

    /// Wait until the fake sees a client close a connection it was streaming or stalling on;
    /// returns when that happened.
    pub async fn wait_close(&self, within: Duration) -> Option<Instant> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(t) = self.state.closes.lock().expect("lock").first() {
                return Some(*t);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

async fn serve(mut sock: TcpStream, st: Arc<State>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        // Read the head.
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            let mut tmp = [0u8; 8192];
            let n = sock.read(&mut tmp).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or_default().split(' ');
        let method = first.next().unwrap_or_default().to_owned();
        let path = first.next().unwrap_or_default().to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let len: usize =
            headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
        let mut rest = buf.split_off(head_end + 4);
        while rest.len() < len {
            let mut tmp = [0u8; 65536];
            let n = sock.read(&mut tmp).await?;
            if n == 0 {
                return Ok(());
            }
            rest.extend_from_slice(&tmp[..n]);
        }
        buf = rest.split_off(len);
        let req = Recorded { method, path, headers, body: rest };
        let index = {
            let mut reqs = st.requests.lock().expect("lock");
            reqs.push(req.clone());
            reqs.len() - 1
        };
        let reply = (st.handler)(&req, index);
        if let Some(d) = reply.head_delay
            && watch_close(&mut sock, Some(d), &st).await
        {
            return Ok(());
        }
        if reply.stall_before_head {
            watch_close(&mut sock, None, &st).await;
            return Ok(());
        }
        let chunked = reply.parts.len() != 1 || !matches!(reply.parts[0], Part::Bytes(_));
        let mut out = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
        for (k, v) in &reply.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if chunked {
            out.push_str("transfer-encoding: chunked\r\n\r\n");
        } else if let Some(Part::Bytes(b)) = reply.parts.first() {
            out.push_str(&format!("content-length: {}\r\n\r\n", b.len()));
        }
        sock.write_all(out.as_bytes()).await?;
        for part in &reply.parts {
            match part {
                Part::Bytes(b) if !chunked => sock.write_all(b).await?,
                Part::Bytes(b) => {
                    if b.is_empty() {
                        continue;
                    }
                    let mut frame = format!("{:x}\r\n", b.len()).into_bytes();
                    frame.extend_from_slice(b);
                    frame.extend_from_slice(b"\r\n");
                    if sock.write_all(&frame).await.is_err() {
                        note_close(&st);
                        return Ok(());
                    }
                    sock.flush().await?;
                }
                Part::Delay(d) => {
                    if watch_close(&mut sock, Some(*d), &st).await {
                        return Ok(());
                    }
                }
                Part::Cut => return Ok(()),
                Part::Stall => {
                    watch_close(&mut sock, None, &st).await;
                    return Ok(());
                }
                Part::Gate(gate) => {
                    while !gate.is_open() {
                        if watch_close(&mut sock, Some(Duration::from_millis(2)), &st).await {
                            return Ok(());
                        }
                    }
                }
            }
        }
        if chunked {
            sock.write_all(b"0\r\n\r\n").await?;
        }
    }
}

/// Wait `d` (or for ever), noting if the client closes meanwhile. True if it closed.
async fn watch_close(sock: &mut TcpStream, d: Option<Duration>, st: &State) -> bool {
    let mut tmp = [0u8; 1024];
    let sleep = tokio::time::sleep(d.unwrap_or(Duration::from_secs(3600)));
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return false,
            r = sock.read(&mut tmp) => match r {
                Ok(0) | Err(_) => {
                    note_close(st);
                    return true;
                }
                Ok(_) => {} // a client does not send more on this connection; ignore
            },
        }
    }
}

fn note_close(st: &State) {
    st.closes.lock().expect("lock").push(Instant::now());
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        529 => "Site Overloaded",
        _ => "Status",
    }
}

/// Everything written by `tracing` at every level, from every module (reqwest, hyper, rustls
/// included), for the whole test binary. Call at the start of each test.
pub fn capture_traces() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(|| CaptureWriter)
            .with_ansi(false)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

fn log_buffer() -> &'static Mutex<Vec<u8>> {
    static BUF: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    BUF.get_or_init(|| Mutex::new(Vec::new()))
}

struct CaptureWriter;

impl Write for CaptureWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        log_buffer().lock().expect("lock").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything logged so far by this test binary.
pub fn captured_log() -> String {
    String::from_utf8_lossy(&log_buffer().lock().expect("lock")).into_owned()
}

/// Assert that `secret` appears nowhere in the captured log nor in any of `shown` (error texts,
/// Debug output). Also checks that the log is not empty, so the check cannot pass vacuously.
pub fn assert_secret_absent(secret: &str, shown: &[String]) {
    let log = captured_log();
    assert!(!log.is_empty(), "trace capture is empty: call fake::capture_traces() first");
    assert!(!log.contains(secret), "the secret appears in the trace log");
    for s in shown {
        assert!(!s.contains(secret), "the secret appears in: {s}");
    }
}

/// A unique fake key per test, so a leak is attributable.
pub fn fake_key(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-quill-test-secret-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the provider tests.

/// `bytes` cut into pieces of these sizes, taken in turn (cycling) until the bytes run out.
pub fn chunks_of(bytes: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    for n in sizes.iter().cycle() {
        if i >= bytes.len() {
            break;
        }
        let end = (i + n).min(bytes.len());
        out.push(bytes[i..end].to_vec());
        i = end;
    }
    out
}

/// Everything a stream yields: the deltas, how it ended, or the error that ended it.
pub async fn drain(mut s: EventStream) -> (Vec<String>, Option<Finish>, Option<ProviderError>) {
    let mut deltas = Vec::new();
    while let Some(ev) = s.next().await {
        match ev {
            Ok(Event::Delta(t)) => deltas.push(t),
            Ok(Event::Done(f)) => return (deltas, Some(f), None),
            Err(e) => return (deltas, None, Some(e)),
        }
    }
    (deltas, None, None)
}

/// The error of a chat request, from the request or from its stream.
pub async fn chat_err(p: &Provider, req: &ChatRequest, feature: Feature) -> ProviderError {
    match p.chat(req, feature).await {
        Ok(s) => drain(s).await.2.expect("the stream fails"),
        Err(e) => e,
    }
}

/// The error of an autocomplete request, from the request or from its stream.
pub async fn complete_err(p: &Provider, req: &CompletionRequest) -> ProviderError {
    match p.complete(req).await {
        Ok(s) => drain(s).await.2.expect("the stream fails"),
        Err(e) => e,
    }
}

/// `expect_err` for an answer, which has no `Debug`: the request itself must fail.
pub trait Refused {
    fn refused(self, why: &str) -> ProviderError;
}

impl Refused for Result<EventStream, ProviderError> {
    fn refused(self, why: &str) -> ProviderError {
        match self {
            Ok(_) => panic!("expected an error: {why}"),
            Err(e) => e,
        }
    }
}

/// An error as a user may see it: its message and its `Debug` form.
pub fn shown(e: &ProviderError) -> Vec<String> {
    vec![format!("{e}"), format!("{e:?}")]
}

/// A config tweak: 300 ms to the first byte and between bytes, so timeout tests stay fast.
pub fn short_timeouts(c: &mut ProviderConfig) {
    c.first_byte_timeout_ms = 300;
    c.idle_timeout_ms = 300;
}

/// Open a stream (the clock starts before `open` runs) that sends `text` then stalls: it must
/// yield `text`, then fail with an idle timeout well within 1.5 s.
pub async fn assert_idle_timeout(open: impl Future<Output = Result<EventStream, ProviderError>>, text: &str) {
    let started = Instant::now();
    let (deltas, _, err) = drain(open.await.expect("opens")).await;
    assert_eq!(deltas.concat(), text);
    let e = err.expect("an error");
    assert!(matches!(e.kind, ErrorKind::Timeout { phase: TimeoutPhase::Idle, .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_millis(1500));
}

/// Drop `s` mid-answer: `fake` must see the connection close within 50 ms of the drop.
/// `context` names the case in the failure message.
pub async fn assert_drop_closes(fake: &Fake, s: EventStream, context: &str) {
    let dropped = Instant::now();
    drop(s);
    let closed = fake.wait_close(Duration::from_millis(500)).await.expect("the fake sees the close");
    let took = closed.saturating_duration_since(dropped);
    assert!(took <= Duration::from_millis(50), "{context}: closed {took:?} after the drop");
}

/// An autocomplete request in the middle of a Rust function.
pub fn rust_completion_req() -> CompletionRequest {
    CompletionRequest {
        prefix: "fn add(a: i32, b: i32) -> i32 {\n    ".into(),
        suffix: "\n}\n".into(),
        path: Some("src/lib.rs".into()),
        language: Some("rust".into()),
        max_tokens: 64,
        temperature: 0.1,
        ..Default::default()
    }
}
