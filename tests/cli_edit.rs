//! `quill edit` end to end: the real binary against a fake OpenAI-compatible chat server. The
//! diff on stdout (and nothing else), `--apply` (atomic, permissions kept, refused when the file
//! changed on disk meanwhile), generated test files, and errors on stderr with exit code 1.

mod common;
mod fake;

use std::{
    path::Path,
    process::{Command, Output, Stdio},
};

use expect_test::expect;
use fake::{Fake, Gate, Reply};
use serde_json::json;

const CALC: &str = "import math\n\ndef area(r):\n    return 3.14 * r * r\n\ndef double(x):\n    return x * 2\n";

/// One streamed delta event.
fn delta(content: &str) -> String {
    let v = json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
        "choices":[{"index":0,"delta":{"content":content},"finish_reason":null}]});
    format!("data: {v}\n\n")
}

/// A whole answer in one event, then the end.
fn chat(content: &str) -> String {
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        let v = json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
            "choices":[{"index":0,"delta":delta,"finish_reason":finish}]});
        format!("data: {v}\n\n")
    };
    chunk(json!({"content": content}), serde_json::Value::Null) + &chunk(json!({}), json!("stop")) + "data: [DONE]\n\n"
}

fn answer(content: &str) -> Reply {
    Reply::sse(&[&chat(content)])
}

struct World {
    _rt: tokio::runtime::Runtime,
    fake: Fake,
    ws: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl World {
    fn start(handler: impl Fn(&fake::Recorded, usize) -> Reply + Send + Sync + 'static) -> World {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let fake = rt.block_on(Fake::start(handler));
        let ws = common::workspace_for(&fake.url, "edit");
        std::fs::create_dir(ws.path().join("pkg")).expect("mkdir");
        std::fs::write(ws.path().join("pkg/calc.py"), CALC).expect("write");
        World { _rt: rt, fake, ws, home: tempfile::tempdir().expect("tempdir") }
    }

    fn always(reply: Reply) -> World {
        World::start(move |_, _| reply.clone())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = common::isolated_command(self.home.path());
        cmd.arg("edit").args(args).current_dir(self.ws.path());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run quill edit")
    }

    fn file(&self, rel: &str) -> String {
        std::fs::read_to_string(self.ws.path().join(rel)).expect("read")
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const PRECISE: &str = "```python\ndef area(r):\n    return math.pi * r * r\n```";

#[test]
fn prints_a_unified_diff_and_leaves_the_file_alone() {
    let w = World::always(answer(PRECISE));
    let out = w.run(&["pkg/calc.py:3-4", "use math.pi"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    expect![[r#"
        --- a/pkg/calc.py
        +++ b/pkg/calc.py
        @@ -1,7 +1,7 @@
         import math
         
         def area(r):
        -    return 3.14 * r * r
        +    return math.pi * r * r
         
         def double(x):
             return x * 2
    "#]]
    .assert_eq(&stdout(&out));
    assert_eq!(w.file("pkg/calc.py"), CALC);
    let prompt = w.fake.request(0).json()["messages"][1]["content"].as_str().unwrap_or("").to_owned();
    assert!(prompt.contains("File: pkg/calc.py (python)") && prompt.contains("Instruction: use math.pi"), "{prompt}");
}

#[test]
fn apply_writes_atomically_and_keeps_permissions() {
    let w = World::always(answer(PRECISE));
    let path = w.ws.path().join("pkg/calc.py");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    }
    #[cfg(unix)]
    let inode = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&path).expect("meta").ino()
    };
    let out = w.run(&["pkg/calc.py:3-4", "use math.pi", "--apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("--- a/pkg/calc.py\n"));
    assert_eq!(w.file("pkg/calc.py"), CALC.replace("3.14", "math.pi"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o640);
        // A new file renamed into place, not the old one rewritten in place (which a reader
        // could see half-written).
        use std::os::unix::fs::MetadataExt;
        assert_ne!(std::fs::metadata(&path).expect("meta").ino(), inode, "the file was rewritten in place");
    }
    // No temporary file left behind.
    let names: Vec<_> =
        std::fs::read_dir(w.ws.path().join("pkg")).expect("ls").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(names, ["calc.py"]);
}

/// Starts `quill edit ARGS` against an answer held at a gate, and returns once the provider
/// has the request (the model is "answering").
fn gated(answer: &str, args: &[&str]) -> (World, Gate, std::process::Child) {
    let gate = Gate::new();
    let g = gate.clone();
    let body = chat(answer);
    let w = World::start(move |_, _| {
        Reply::new(200).header("content-type", "text/event-stream").gate(&g).bytes(body.clone())
    });
    let child = w.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    while w.fake.requests().is_empty() {
        assert!(std::time::Instant::now() < deadline, "quill edit never asked the provider");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (w, gate, child)
}

#[test]
fn apply_refuses_when_the_file_changed_on_disk() {
    let (w, gate, child) = gated(PRECISE, &["pkg/calc.py:3-4", "use math.pi", "--apply"]);
    // The user saves a change while the model answers.
    let mine = CALC.replace("x * 2", "x + x");
    std::fs::write(w.ws.path().join("pkg/calc.py"), &mine).expect("write");
    gate.open();
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("changed on disk since it was read; nothing was written"), "{}", stderr(&out));
    assert_eq!(w.file("pkg/calc.py"), mine);
}

#[test]
fn bad_locations_and_files_are_refused_on_stderr() {
    let w = World::always(answer(PRECISE));
    std::fs::write(w.ws.path().join("bin.dat"), [0xff, 0xfe, 0x00, 0x01]).expect("write");
    let cases: [(&[&str], &str); 8] = [
        (&["pkg/calc.py:0-2", "x"], "line numbers start at 1"),
        (&["pkg/calc.py:4-2", "x"], "the first line (4) is after the last (2)"),
        (&["pkg/calc.py:3-9", "x"], "line 9 is past the end of pkg/calc.py (7 lines)"),
        (&["pkg/calc.py", "x"], "expected PATH:L1-L2"),
        (&["pkg/missing.py:1-2", "x"], "cannot read pkg/missing.py"),
        (&["bin.dat:1-1", "x"], "not UTF-8 text"),
        (&["pkg/calc.py:3-4"], "an instruction is required"),
        (&["pkg/calc.py:3-4", "x", "--intent", "rename"], "unknown intent `rename`"),
    ];
    for (args, needle) in cases {
        let out = w.run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stdout(&out).is_empty(), "{args:?}: stdout {}", stdout(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    assert!(w.fake.requests().is_empty(), "bad input reached the provider");
}

#[test]
fn provider_errors_and_bad_answers_are_refused_on_stderr() {
    let replies = [
        Reply::json(400, r#"{"error":{"message":"boom"}}"#),
        answer("I would rather not change this code. It looks fine to me as it stands."),
        // Cut mid-stream: the first delta, then the connection drops.
        Reply::new(200).header("content-type", "text/event-stream").bytes(delta("```python\n")).cut(),
    ];
    let w = World::start(move |_, i| replies[i.min(2)].clone());
    for needle in ["the provider failed", "prose instead of code", "the provider failed"] {
        let out = w.run(&["pkg/calc.py:3-4", "use math.pi", "--apply"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stdout(&out).is_empty(), "{}", stdout(&out));
        assert!(stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
        assert_eq!(w.file("pkg/calc.py"), CALC);
    }
}

#[test]
fn tests_go_to_a_new_file_that_is_never_overwritten() {
    let tests = "```python\nfrom calc import area\n\ndef test_area():\n    assert area(1) == 3.14\n```";
    let w = World::always(answer(tests));
    let out = w.run(&["pkg/calc.py:3-4", "--intent", "tests", "--apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let created = "from calc import area\n\ndef test_area():\n    assert area(1) == 3.14\n";
    assert_eq!(w.file("pkg/test_calc.py"), created);
    assert!(
        stdout(&out).starts_with("--- a/pkg/test_calc.py\n+++ b/pkg/test_calc.py\n@@ -0,0 +1,4 @@\n"),
        "{}",
        stdout(&out)
    );
    // Again: the file exists, so the tests are appended, never written over it.
    let out = w.run(&["pkg/calc.py:3-4", "--intent", "tests", "--apply"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(w.file("pkg/test_calc.py"), format!("{created}\n{created}"));
    assert!(Path::new(&w.ws.path().join("pkg/calc.py")).exists());
    assert_eq!(w.file("pkg/calc.py"), CALC);
}

#[test]
fn a_test_file_that_appears_while_the_model_answers_is_never_overwritten() {
    let tests = "```python\nfrom calc import area\n\ndef test_area():\n    assert area(1) == 3.14\n```";
    let (w, gate, child) = gated(tests, &["pkg/calc.py:3-4", "--intent", "tests", "--apply"]);
    // The user (or a tool) creates the test file before the answer arrives.
    let mine = "def test_mine():\n    pass\n";
    std::fs::write(w.ws.path().join("pkg/test_calc.py"), mine).expect("write");
    gate.open();
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("appeared while the model answered; nothing was written"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert_eq!(w.file("pkg/test_calc.py"), mine);
    let names: Vec<_> =
        std::fs::read_dir(w.ws.path().join("pkg")).expect("ls").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(names.len(), 2, "a temporary file was left behind: {names:?}");
}
