//! Test harness: a small LSP client that drives the real `quill` binary over stdio, and fixture
//! helpers (`$0` cursor markers). Shared by the integration tests and the memory benchmark.
#![allow(dead_code)] // each test binary uses a different subset

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

pub const TIMEOUT: Duration = Duration::from_secs(20);

/// The binary under test (set by cargo for integration tests and benches).
pub fn quill_bin() -> &'static str {
    env!("CARGO_BIN_EXE_quill")
}

/// A running `quill lsp` with a JSON-RPC client attached.
pub struct Lsp {
    child: Child,
    stdin: Option<ChildStdin>,
    inbox: Receiver<Value>,
    /// Server-to-client notifications and requests seen while waiting for responses.
    pub seen: Vec<Value>,
    next_id: i64,
    pub home: tempfile::TempDir,
    /// Answers server-to-client requests (`workspace/applyEdit`, `window/workDoneProgress/create`,
    /// ...). `None` answers `null`. The default accepts every `workspace/applyEdit`.
    answer: Answer,
}

/// How server-to-client requests are answered (see [`Lsp::on_request`]).
type Answer = Box<dyn FnMut(&Value) -> Option<Value>>;

impl Lsp {
    /// Start the server with an isolated home and config directory.
    pub fn spawn() -> Lsp {
        Lsp::spawn_in(None)
    }

    pub fn spawn_in(xdg_config: Option<&Path>) -> Lsp {
        Lsp::launch(xdg_config, None)
    }

    /// Start the server with only these environment variables (plus `PATH`, `HOME`,
    /// `XDG_CONFIG_HOME` and `QUILL_LOG`), so API keys on the test machine cannot change the outcome.
    pub fn spawn_clean(xdg_config: Option<&Path>, env: &[(&str, &str)]) -> Lsp {
        Lsp::launch(xdg_config, Some(env))
    }

    /// Start the server with these variables added to the test's environment (for example
    /// `XDG_DATA_HOME`, to share chat history between two servers).
    pub fn spawn_env(env: &[(&str, &str)]) -> Lsp {
        Lsp::launch_with(None, None, env)
    }

    fn launch(xdg_config: Option<&Path>, clean_env: Option<&[(&str, &str)]>) -> Lsp {
        Lsp::launch_with(xdg_config, clean_env, &[])
    }

    fn launch_with(xdg_config: Option<&Path>, clean_env: Option<&[(&str, &str)]>, extra: &[(&str, &str)]) -> Lsp {
        let home = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(quill_bin());
        if clean_env.is_some() {
            cmd.env_clear();
            if let Some(path) = std::env::var_os("PATH") {
                cmd.env("PATH", path);
            }
        }
        cmd.arg("lsp")
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", xdg_config.unwrap_or(home.path()))
            // Chat history goes to the temporary home, never the user's.
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("QUILL_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in clean_env.unwrap_or_default().iter().chain(extra) {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn quill");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            while let Some(msg) = read_message(&mut reader) {
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        let answer = Box::new(|msg: &Value| (msg["method"] == "workspace/applyEdit").then(|| json!({"applied": true})));
        Lsp { child, stdin, inbox: rx, seen: Vec::new(), next_id: 1, home, answer }
    }

    /// Set how server-to-client requests are answered: `Some(result)`, or `None` for `null`.
    /// Every request is still recorded in `seen`.
    pub fn on_request(&mut self, answer: impl FnMut(&Value) -> Option<Value> + 'static) {
        self.answer = Box::new(answer);
    }

    /// Start and complete the `initialize` handshake.
    pub fn start(init_params: Value) -> (Lsp, Value) {
        let mut lsp = Lsp::spawn();
        let result = lsp.initialize(init_params);
        (lsp, result)
    }

    pub fn initialize(&mut self, params: Value) -> Value {
        let result = self.request("initialize", params).expect("initialize ok");
        self.notify("initialized", json!({}));
        result
    }

    pub fn write_raw(&mut self, bytes: &[u8]) {
        if let Some(stdin) = self.stdin.as_mut() {
            // The server may have exited; the test then sees it through missing replies.
            let _ = stdin.write_all(bytes).and_then(|_| stdin.flush());
        }
    }

    pub fn send(&mut self, msg: &Value) {
        let body = serde_json::to_vec(msg).expect("json");
        let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
        frame.extend_from_slice(&body);
        self.write_raw(&frame);
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Send a request and wait for its response: `Ok(result)` or `Err(error object)`.
    pub fn request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.response(&json!(id))
    }

    /// Send a request without waiting for its response; returns its id, for [`Lsp::response`]
    /// (or `$/cancelRequest`).
    pub fn send_request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        json!(id)
    }

    /// Wait until a message matching `pred` has arrived, leaving it and every other message in
    /// `seen`, in arrival order (for tests about the order of notifications).
    pub fn wait_seen(&mut self, pred: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.seen.iter().any(&pred) {
            if !self.receive(deadline) {
                panic!("timed out; messages seen: {:#?}", self.seen);
            }
        }
    }

    /// Like [`Lsp::wait_for`], but `None` when nothing matches within `within` (for liveness
    /// checks that must fail rather than hang for [`TIMEOUT`]).
    pub fn try_wait_for(&mut self, pred: impl Fn(&Value) -> bool, within: Duration) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(i) = self.seen.iter().position(&pred) {
                return Some(self.seen.remove(i));
            }
            if !self.receive(deadline) {
                return None;
            }
        }
    }

    /// Move one message from the server into `seen`, answering server-to-client requests so the
    /// server never waits on us. `false` when `deadline` passed first.
    fn receive(&mut self, deadline: Instant) -> bool {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.inbox.recv_timeout(left) {
            Ok(msg) => {
                if msg.get("id").is_some() && msg.get("method").is_some() {
                    let result = (self.answer)(&msg).unwrap_or(Value::Null);
                    let reply = json!({"jsonrpc": "2.0", "id": msg["id"], "result": result});
                    self.send(&reply);
                }
                self.seen.push(msg);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => panic!("server closed stdout; seen: {:#?}", self.seen),
        }
    }

    /// Wait for the response with this id, answering server requests on the way.
    pub fn response(&mut self, id: &Value) -> Result<Value, Value> {
        let msg = self.wait_for(|m| m.get("id") == Some(id) && m.get("method").is_none());
        match msg.get("error") {
            Some(err) => Err(err.clone()),
            None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
        }
    }

    /// Wait for a message matching `pred`; other messages go to `seen`.
    pub fn wait_for(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(i) = self.seen.iter().position(&pred) {
                return self.seen.remove(i);
            }
            if !self.receive(deadline) {
                panic!("timed out; messages seen: {:#?}", self.seen);
            }
        }
    }

    pub fn notification(&mut self, method: &str) -> Value {
        let m = method.to_owned();
        self.wait_for(move |msg| msg.get("method").and_then(Value::as_str) == Some(&m) && msg.get("id").is_none())
    }

    pub fn open(&mut self, uri: &str, language_id: &str, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": language_id, "version": 1, "text": text}}),
        );
    }

    pub fn change(&mut self, uri: &str, version: i32, changes: Value) {
        self.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": changes}),
        );
    }

    pub fn document(&mut self, uri: &str) -> Result<Value, Value> {
        self.request("quill/document", json!({"uri": uri}))
    }

    pub fn text(&mut self, uri: &str) -> String {
        let doc = self.document(uri).expect("quill/document");
        doc["text"].as_str().expect("text").to_owned()
    }

    /// Close stdin and wait for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        self.stdin.take();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("server did not exit");
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// `shutdown` then `exit`; returns the exit code.
    pub fn shutdown(&mut self) -> Option<i32> {
        self.request("shutdown", Value::Null).expect("shutdown ok");
        self.notify("exit", Value::Null);
        self.wait_exit()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Lsp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Read one framed message; `None` at end of stream.
fn read_message(reader: &mut impl BufRead) -> Option<Value> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length:") {
            length = v.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; length?];
    reader.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

/// Split a fixture at its `$0` marker: the text without it, and the marker's (line, UTF-16 column).
pub fn cursor(fixture: &str) -> (String, (u32, u32)) {
    let at = fixture.find("$0").expect("fixture has a $0 marker");
    let before = &fixture[..at];
    let line = before.matches('\n').count() as u32;
    let col = before.rsplit('\n').next().unwrap_or("").encode_utf16().count() as u32;
    (format!("{before}{}", &fixture[at + 2..]), (line, col))
}

/// Initialize params offering the given position encodings.
pub fn init_params(encodings: &[&str]) -> Value {
    json!({
        "processId": null,
        "rootUri": null,
        "capabilities": {"general": {"positionEncodings": encodings}},
    })
}

/// A loopback URL where nothing listens (connections are refused at once).
/// A `quill` command that sees only `PATH` plus `home` as its home, config and data directories,
/// and finds no local model server (the probes point at a closed port), so API keys and servers
/// on the test machine cannot change the outcome.
pub fn isolated_command(home: &Path) -> Command {
    let mut cmd = Command::new(quill_bin());
    cmd.env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("HOME", home)
        .env("XDG_CONFIG_HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("QUILL_LOG", "warn")
        .env("QUILL_PROBE_OLLAMA", closed_port_url())
        .env("QUILL_PROBE_LLAMACPP", closed_port_url());
    cmd
}

impl Lsp {
    /// [`Lsp::spawn_clean`] with the local-server probes pointed at a closed port, plus `env`.
    pub fn spawn_isolated(env: &[(&str, &str)]) -> Lsp {
        let closed = closed_port_url();
        let mut all = vec![("QUILL_PROBE_OLLAMA", closed.as_str()), ("QUILL_PROBE_LLAMACPP", closed.as_str())];
        all.extend_from_slice(env);
        Lsp::spawn_clean(None, &all)
    }
}

/// A temporary workspace whose `quill.toml` routes `feature` (`chat`, `edit`, ...) to one
/// `openai-compatible` provider at `base_url` (the fake's URL; `/v1` is added).
pub fn workspace_for(base_url: &str, feature: &str) -> tempfile::TempDir {
    let ws = tempfile::tempdir().expect("tempdir");
    let toml = format!(
        "[providers.x]\nkind = \"openai-compatible\"\nbase_url = \"{base_url}/v1\"\nmodel = \"m\"\n[{feature}]\nprovider = \"x\"\n"
    );
    std::fs::write(ws.path().join("quill.toml"), toml).expect("write quill.toml");
    ws
}

pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

pub fn range(sl: u32, sc: u32, el: u32, ec: u32) -> Value {
    json!({"start": {"line": sl, "character": sc}, "end": {"line": el, "character": ec}})
}
