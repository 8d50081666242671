//! `quill chat` end to end: the real binary against a fake OpenAI-compatible server. stdout holds
//! the answer only, streamed; warnings and errors go to stderr.

mod common;
mod fake;

use std::{
    io::{Read, Write},
    process::{Command, Stdio},
    sync::mpsc,
    time::Instant,
};

use common::TIMEOUT;
use fake::{Fake, Gate, Reply};
use serde_json::{Value, json};

fn text(t: &str) -> String {
    let v = json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
        "choices":[{"index":0,"delta":{"content": t},"finish_reason":null}]});
    format!("data: {v}\n\n")
}

fn end() -> String {
    let v = json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
        "choices":[{"index":0,"delta":{},"finish_reason":"stop"}]});
    format!("data: {v}\n\ndata: [DONE]\n\n")
}

fn answer(parts: &[&str]) -> Reply {
    let mut r = Reply::new(200).header("content-type", "text/event-stream");
    for p in parts {
        r = r.bytes(text(p));
    }
    r.bytes(end())
}

/// A fake on its own runtime, and a workspace whose `quill.toml` routes chat to it.
struct Setup {
    rt: tokio::runtime::Runtime,
    fake: Fake,
    ws: tempfile::TempDir,
}

impl Setup {
    fn new(handler: impl Fn(&fake::Recorded, usize) -> Reply + Send + Sync + 'static) -> Setup {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let fake = rt.block_on(Fake::start(handler));
        let ws = common::workspace_for(&fake.url, "chat");
        Setup { rt, fake, ws }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = common::isolated_command(&self.ws.path().join("home"));
        cmd.arg("chat").args(args).current_dir(self.ws.path());
        cmd
    }

    /// Run with `stdin` as input; (exit code, stdout, stderr).
    fn run(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        if let Some(mut i) = child.stdin.take() {
            i.write_all(stdin.as_bytes()).expect("stdin");
        }
        let out = child.wait_with_output().expect("wait");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The messages of request `i`.
    fn messages(&self, i: usize) -> Vec<Value> {
        self.fake.request(i).json()["messages"].as_array().cloned().unwrap_or_default()
    }
}

#[test]
fn the_answer_streams_to_stdout_as_it_arrives() {
    let gate = Gate::new();
    let g = gate.clone();
    let s = Setup::new(move |_, _| {
        Reply::new(200)
            .header("content-type", "text/event-stream")
            .bytes(text("First part"))
            .gate(&g)
            .bytes(text(", rest"))
            .bytes(end())
    });
    let mut child = s
        .command(&["What?"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    // The first part is on stdout while the provider still holds the rest.
    let mut got = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while !String::from_utf8_lossy(&got).contains("First part") {
        let left = deadline.saturating_duration_since(Instant::now());
        got.extend(rx.recv_timeout(left).expect("the first part arrives before the gate opens"));
    }
    gate.open();
    got.extend(rx.iter().flatten());
    let status = child.wait().expect("wait");
    let mut err = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut err).expect("stderr");
    assert_eq!((status.code(), String::from_utf8_lossy(&got).as_ref()), (Some(0), "First part, rest\n"), "{err}");
    assert_eq!(err, "");
    let m = s.messages(0);
    assert_eq!(m.last(), Some(&json!({"role": "user", "content": "What?"})));
    drop(s.rt);
}

#[test]
fn the_question_comes_from_stdin_when_absent_and_must_not_be_empty() {
    let s = Setup::new(|_, _| answer(&["Yes.\n"]));
    let (code, out, err) = s.run(&[], "Is this\npiped?\n");
    assert_eq!((code, out.as_str()), (0, "Yes.\n"), "the answer's own newline is not doubled; {err}");
    assert_eq!(s.messages(0).last().map(|m| m["content"].clone()), Some(json!("Is this\npiped?")));

    let (code, out, err) = s.run(&[], "  \n");
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("quill chat: the question is empty"), "{err}");
    assert_eq!(s.fake.requests().len(), 1, "an empty question never reaches the provider");
}

#[test]
fn files_and_line_ranges_go_as_context_and_bad_ones_are_warnings() {
    let s = Setup::new(|_, _| answer(&["Answer"]));
    let lines: String = (1..=10).map(|i| format!("line {i}\n")).collect();
    std::fs::write(s.ws.path().join("notes.txt"), &lines).expect("write");
    std::fs::write(s.ws.path().join("blob.bin"), b"\x00\x01\x02").expect("write");
    let (code, out, err) = s.run(
        &[
            "Summarise",
            "--file",
            "notes.txt:3-4",
            "--file",
            "missing.txt",
            "--file",
            "blob.bin",
            "--file",
            "notes.txt:9-3",
        ],
        "",
    );
    assert_eq!((code, out.as_str()), (0, "Answer\n"), "{err}");
    let warnings: Vec<&str> = err.lines().collect();
    assert_eq!(
        warnings,
        [
            "quill chat: warning: notes.txt:9-3: bad line range `9-3`: use L1-L2 with 1 <= L1 <= L2; left out",
            "quill chat: warning: missing.txt: no such file; left out",
            "quill chat: warning: blob.bin: binary content (NUL bytes); left out",
        ],
        "{err}"
    );
    let sent = s.messages(0).last().and_then(|m| m["content"].as_str().map(str::to_owned)).expect("content");
    assert!(sent.contains("notes.txt (lines 3-4):\n```\nline 3\nline 4\n```"), "{sent}");
    assert!(!sent.contains("line 2\n") && !sent.contains("line 5\n"), "{sent}");
    assert!(sent.ends_with("Summarise"), "{sent}");
    assert!(!s.ws.path().join("home/data/quill").exists(), "the CLI keeps no history");
}

#[test]
fn provider_errors_go_to_stderr_with_a_failing_exit_code() {
    let s = Setup::new(|_, _| Reply::json(401, r#"{"error":{"message":"bad key","type":"invalid_request_error"}}"#));
    let (code, out, err) = s.run(&["Hello?"], "");
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.starts_with("quill chat: provider `x`") && err.contains("bad key"), "{err}");

    // Cut mid-answer: what arrived is printed (with a newline), then the error.
    let s = Setup::new(|_, _| Reply::new(200).header("content-type", "text/event-stream").bytes(text("Half")).cut());
    let (code, out, err) = s.run(&["Hello?"], "");
    assert_eq!((code, out.as_str()), (1, "Half\n"), "{err}");
    assert!(err.contains("quill chat: provider `x`"), "{err}");

    // No such provider.
    let (code, _, err) = s.run(&["Hello?", "--provider", "nope"], "");
    assert_eq!(code, 1);
    assert!(err.contains("no provider named `nope`"), "{err}");
}

#[test]
fn file_names_with_percent_and_non_ascii_are_read_as_named() {
    let s = Setup::new(|_, _| answer(&["Answer"]));
    std::fs::write(s.ws.path().join("a%41.rs"), "fn percent() {}\n").expect("write");
    // A decoy the unencoded URI would have decoded to.
    std::fs::write(s.ws.path().join("aA.rs"), "fn decoy() {}\n").expect("write");
    std::fs::write(s.ws.path().join("é.rs"), "fn accent() {}\n").expect("write");
    let (code, out, err) = s.run(&["Read", "--file", "a%41.rs", "--file", "é.rs"], "");
    assert_eq!((code, out.as_str(), err.as_str()), (0, "Answer\n", ""));
    let sent = s.messages(0).last().and_then(|m| m["content"].as_str().map(str::to_owned)).expect("content");
    assert!(sent.contains("fn percent() {}") && !sent.contains("decoy"), "{sent}");
    assert!(sent.contains("fn accent() {}") && sent.contains("a%41.rs"), "{sent}");
}
