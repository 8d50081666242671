//! End-to-end autocomplete: the real `quill` binary, over LSP and as `quill complete`, against a
//! fake OpenAI-compatible server (`/v1/completions`, the legacy Completions stream).
//!
//! Every test asserts what a user or an editor sees, never how long it took. The order of events
//! is fixed by gates in the fake (the test decides when an answer goes on) and by round trips to
//! the server, not by sleeps; deadlines are generous, for a loaded CI machine.

mod common;
mod fake;

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use common::{Lsp, TIMEOUT, closed_port_url, cursor};
use expect_test::expect;
use fake::{Fake, Gate, Recorded, Reply};
use serde_json::{Value, json};

/// `triggerKind` of an inline request: the user asked (a keybinding) or the editor asked while
/// typing.
const INVOKED: u8 = 1;
const AUTOMATIC: u8 = 2;

/// JSON-RPC `InvalidParams` and LSP `RequestCancelled`.
const INVALID_PARAMS: i64 = -32602;
const REQUEST_CANCELLED: i64 = -32800;

/// A line where the real trigger asks for the rest of the line.
const LET_X: &str = "fn main() {\n    let x = $0\n}\n";

// ---------------------------------------------------------------------------------------------
// The fake's answers.

/// One event of the legacy Completions stream.
fn text_chunk(text: &str, finish: Option<&str>) -> String {
    let v = json!({"id":"cmpl-1","object":"text_completion","created":1,"model":"m",
        "choices":[{"text":text,"index":0,"logprobs":null,"finish_reason":finish}]});
    format!("data: {v}\n\n")
}

/// A whole Completions answer streaming `parts`.
fn text_answer(parts: &[&str]) -> String {
    let s: String = parts.iter().map(|p| text_chunk(p, None)).collect();
    s + &text_chunk("", Some("stop")) + "data: [DONE]\n\n"
}

/// A whole streamed answer, as a reply.
fn answer(parts: &[&str]) -> Reply {
    Reply::sse(&[&text_answer(parts)])
}

/// A whole Chat Completions answer with `content`.
fn chat_answer(content: &str) -> Reply {
    let chunk = |delta: Value, finish: Value| {
        let v = json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
            "choices":[{"index":0,"delta":delta,"finish_reason":finish}]});
        format!("data: {v}\n\n")
    };
    let body = chunk(json!({"content": content}), Value::Null) + &chunk(json!({}), json!("stop")) + "data: [DONE]\n\n";
    Reply::sse(&[&body])
}

/// Headers at once, then `body` only when `gate` opens.
fn gated(gate: &Gate, body: &str) -> Reply {
    Reply::new(200).header("content-type", "text/event-stream").gate(gate).bytes(body)
}

// ---------------------------------------------------------------------------------------------
// A test's world: the fake on a runtime that lives as long as the test, and the server.

struct World {
    rt: tokio::runtime::Runtime,
    fake: Fake,
    lsp: Lsp,
    root: tempfile::TempDir,
}

/// The `initializationOptions` every test starts from: one provider, `x`, serving autocomplete
/// from the fake's `/v1/completions` with prefix and suffix fields.
fn options(fake: &Fake) -> Value {
    json!({
        "providers": {"x": {"kind": "openai-compatible", "base_url": format!("{}/v1", fake.url), "model": "m",
                            "completion_mode": "suffix"}},
        "completion": {"provider": "x", "debounce_ms": 10},
    })
}

impl World {
    /// Start the fake with `handler`, and the server with [`options`] changed by `tweak` and only
    /// `env` in its environment.
    fn start(
        handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static,
        tweak: impl FnOnce(&mut Value),
        env: &[(&str, &str)],
    ) -> World {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let fake = rt.block_on(Fake::start(handler));
        let mut opts = options(&fake);
        tweak(&mut opts);
        let root = tempfile::tempdir().expect("tempdir");
        let mut lsp = Lsp::spawn_isolated(env);
        lsp.initialize(json!({
            "processId": null,
            "rootUri": format!("file://{}", root.path().display()),
            "capabilities": {"general": {"positionEncodings": ["utf-16"]}},
            "initializationOptions": opts,
        }));
        World { rt, fake, lsp, root }
    }

    /// Every request answered with `reply`, default options.
    fn always(reply: Reply) -> World {
        World::start(move |_, _| reply.clone(), |_| {}, &[])
    }

    fn uri(&self, rel: &str) -> String {
        format!("file://{}/{rel}", self.root.path().display())
    }

    /// Open `rel` (under the workspace root) with a `$0` fixture; its URI and the cursor.
    fn open(&mut self, rel: &str, language_id: &str, fixture: &str) -> (String, (u32, u32)) {
        let (text, pos) = cursor(fixture);
        let uri = self.uri(rel);
        self.lsp.open(&uri, language_id, &text);
        (uri, pos)
    }

    fn inline(&mut self, uri: &str, pos: (u32, u32), kind: u8) -> Result<Value, Value> {
        self.lsp.request("textDocument/inlineCompletion", inline_params(uri, pos, kind))
    }

    /// Send an inline request without waiting; its id.
    fn send_inline(&mut self, uri: &str, pos: (u32, u32), kind: u8) -> Value {
        self.lsp.send_request("textDocument/inlineCompletion", inline_params(uri, pos, kind))
    }

    /// Insert `text` at `pos` as document version `version`.
    fn type_at(&mut self, uri: &str, version: i32, pos: (u32, u32), text: &str) {
        let at = json!({"line": pos.0, "character": pos.1});
        self.lsp.change(uri, version, json!([{"range": {"start": at, "end": at}, "text": text}]));
    }

    /// Wait until the fake has received `n` requests.
    fn wait_requests(&self, n: usize) {
        let deadline = Instant::now() + TIMEOUT;
        while self.fake.requests().len() < n {
            assert!(Instant::now() < deadline, "the fake got {} requests, not {n}", self.fake.requests().len());
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Whether the fake saw a client close a connection it was answering, within `within`.
    fn closed_within(&self, within: Duration) -> bool {
        self.rt.block_on(self.fake.wait_close(within)).is_some()
    }

    /// The text of prompt `i` the fake received (`prompt` of a Completions body).
    fn prompt(&self, i: usize) -> String {
        self.fake.request(i).json()["prompt"].as_str().unwrap_or_default().to_owned()
    }
}

fn inline_params(uri: &str, pos: (u32, u32), kind: u8) -> Value {
    json!({"textDocument": {"uri": uri}, "position": {"line": pos.0, "character": pos.1},
           "context": {"triggerKind": kind}})
}

fn lsp_pos(pos: (u32, u32)) -> Value {
    json!({"line": pos.0, "character": pos.1})
}

/// The only item of an inline answer.
fn only_item(r: &Value) -> &Value {
    let items = r["items"].as_array().unwrap_or_else(|| panic!("not a list: {r}"));
    assert_eq!(items.len(), 1, "{r}");
    &items[0]
}

/// An item as a stable snapshot: the workspace root and the suggestion id replaced.
fn shown(item: &Value, root: &Path) -> String {
    let mut item = item.clone();
    let args = &mut item["command"]["arguments"][0];
    assert!(args["id"].is_u64(), "the id is a number: {args}");
    args["id"] = json!("<id>");
    serde_json::to_string_pretty(&item).expect("json").replace(&root.display().to_string(), "$ROOT")
}

/// The params of the `quill/status` notifications seen so far, in order (removing them).
fn take_statuses(lsp: &mut Lsp) -> Vec<Value> {
    let (statuses, rest): (Vec<Value>, Vec<Value>) =
        std::mem::take(&mut lsp.seen).into_iter().partition(|m| m["method"] == "quill/status");
    lsp.seen = rest;
    statuses.into_iter().map(|m| m["params"].clone()).collect()
}

fn is_status(m: &Value, state: &str) -> bool {
    m["method"] == "quill/status" && m["params"]["state"] == state
}

// ---------------------------------------------------------------------------------------------
// 1. The inline item and the accept command.

#[test]
fn inline_item_has_text_range_at_the_cursor_and_the_accept_command() {
    let mut w = World::always(answer(&["answer(1", ", 2);"]));
    let (uri, pos) = w.open("src/main.rs", "rust", LET_X);
    let r = w.inline(&uri, pos, INVOKED).expect("inline");
    let item = only_item(&r).clone();
    assert_eq!(item["range"]["start"], lsp_pos(pos), "the range starts at the cursor");
    expect![[r#"
        {
          "command": {
            "arguments": [
              {
                "id": "<id>",
                "uri": "file://$ROOT/src/main.rs"
              }
            ],
            "command": "quill.acceptCompletion",
            "title": "Quill: suggestion accepted"
          },
          "insertText": "answer(1, 2);",
          "insertTextFormat": 1,
          "range": {
            "end": {
              "character": 12,
              "line": 1
            },
            "start": {
              "character": 12,
              "line": 1
            }
          }
        }"#]]
    .assert_eq(&shown(&item, w.root.path()));

    // The editor runs the item's command when the user accepts it.
    let cmd = json!({"command": item["command"]["command"], "arguments": item["command"]["arguments"]});
    assert_eq!(w.lsp.request("workspace/executeCommand", cmd), Ok(Value::Null));

    // Malformed arguments are refused as such; the server stays up.
    for args in [json!([]), json!([{"uri": uri}]), json!([{"uri": uri, "id": "7"}]), json!([{"id": 7}]), json!(["x"])] {
        let err = w
            .lsp
            .request("workspace/executeCommand", json!({"command": "quill.acceptCompletion", "arguments": args}))
            .expect_err("bad arguments");
        assert_eq!(err["code"], INVALID_PARAMS, "{args}: {err}");
    }
    assert!(w.lsp.is_running());
    assert_eq!(w.lsp.shutdown(), Some(0));
}

// ---------------------------------------------------------------------------------------------
// 2. A single line ends at its line break, while the model is still streaming.

#[test]
fn single_line_answer_is_cut_at_its_line_break_and_the_connection_closed() {
    let slow = Reply::new(200)
        .header("content-type", "text/event-stream")
        .bytes(text_chunk("foo(1", None))
        .delay(20)
        .bytes(text_chunk(");\n    let", None))
        .delay(20)
        .bytes(text_chunk(" y = 2;\n", None))
        .stall();
    let mut w = World::always(slow);
    let (uri, pos) = w.open("src/main.rs", "rust", LET_X);
    // The fake never ends its answer: an item at all means the stream was cut.
    let r = w.inline(&uri, pos, AUTOMATIC).expect("inline");
    assert_eq!(only_item(&r)["insertText"], "foo(1);", "{r}");
    assert!(w.closed_within(Duration::from_secs(5)), "the provider connection is closed");
    // The provider is told too, so a server that honours it stops by itself.
    assert_eq!(w.fake.request(0).json()["stop"], json!(["\n"]));
}

// ---------------------------------------------------------------------------------------------
// 3. The completion-menu fallback.

#[test]
fn completion_fallback_is_one_incomplete_item_labelled_by_its_first_line() {
    let mut w = World::start(
        |_, i| match i {
            0 => answer(&["answer(1, 2);"]),
            _ => answer(&["let a = 1;\n", "    let b = 2;"]),
        },
        |_| {},
        &[],
    );
    let (uri, pos) = w.open("src/main.rs", "rust", LET_X);
    let params =
        |uri: &str, pos| json!({"textDocument": {"uri": uri}, "position": lsp_pos(pos), "context": {"triggerKind": 1}});
    let r = w.lsp.request("textDocument/completion", params(&uri, pos)).expect("completion");
    assert_eq!(r["isIncomplete"], true, "the editor asks again as the user types");
    let item = only_item(&r);
    let compact = json!({"label": item["label"], "filterText": item["filterText"], "textEdit": item["textEdit"],
                         "command": item["command"]["command"]});
    expect![[r#"
        {
          "command": "quill.acceptCompletion",
          "filterText": "answer(1, 2);",
          "label": "answer(1, 2);",
          "textEdit": {
            "newText": "answer(1, 2);",
            "range": {
              "end": {
                "character": 12,
                "line": 1
              },
              "start": {
                "character": 12,
                "line": 1
              }
            }
          }
        }"#]]
    .assert_eq(&serde_json::to_string_pretty(&compact).expect("json"));

    // A multi-line suggestion in an empty block: the label is its first line and an ellipsis.
    let (uri, pos) = w.open("src/lib.rs", "rust", "fn g() {\n    $0\n}\n");
    let r = w.lsp.request("textDocument/completion", params(&uri, pos)).expect("completion");
    let item = only_item(&r);
    // An empty block: the suggestion is multi-line, and the label says there is more.
    assert_eq!(item["label"], "let a = 1;…", "{item}");
    assert_eq!(item["textEdit"]["newText"], "let a = 1;\n    let b = 2;", "{item}");
}

// ---------------------------------------------------------------------------------------------
// 4. `$/cancelRequest`.

#[test]
fn cancelled_request_gets_request_cancelled_and_the_provider_call_is_closed() {
    let mut w = World::always(Reply::silent());
    let (uri, pos) = w.open("src/main.rs", "rust", LET_X);
    let id = w.send_inline(&uri, pos, INVOKED);
    w.wait_requests(1);
    w.lsp.notify("$/cancelRequest", json!({"id": id}));
    let err = w.lsp.response(&id).expect_err("cancelled");
    assert_eq!(err["code"], REQUEST_CANCELLED, "{err}");
    // Nothing adopts the call within the grace period, so it is aborted.
    assert!(w.closed_within(Duration::from_secs(5)), "the provider connection is closed");
    assert!(w.lsp.is_running());
    assert_eq!(w.lsp.shutdown(), Some(0));
}

// ---------------------------------------------------------------------------------------------
// 5. The latest request wins the debounce.

#[test]
fn of_two_quick_requests_only_the_latest_reaches_the_provider() {
    let mut w = World::start(|_, _| answer(&["oo(1);"]), |o| o["completion"]["debounce_ms"] = json!(300), &[]);
    let (uri, pos) = w.open("src/main.rs", "rust", LET_X);
    let first = w.send_inline(&uri, pos, AUTOMATIC);
    w.type_at(&uri, 2, pos, "f");
    let second = w.send_inline(&uri, (pos.0, pos.1 + 1), AUTOMATIC);
    assert_eq!(w.lsp.response(&first), Ok(json!({"items": []})), "superseded");
    let r = w.lsp.response(&second).expect("inline");
    assert_eq!(only_item(&r)["insertText"], "oo(1);", "{r}");
    assert_eq!(w.fake.requests().len(), 1, "one provider request");
    assert!(w.prompt(0).ends_with("    let x = f"), "{}", w.prompt(0));
}

// ---------------------------------------------------------------------------------------------
// 6. Typing what the suggestion says.

#[test]
fn typing_the_suggestion_serves_its_rest_without_a_new_request() {
    let mut w = World::always(answer(&["answer(1, 2);"]));
    let (uri, pos) = w.open("src/main.rs", "rust", LET_X);
    let r = w.inline(&uri, pos, AUTOMATIC).expect("inline");
    assert_eq!(only_item(&r)["insertText"], "answer(1, 2);", "{r}");

    w.type_at(&uri, 2, pos, "ans");
    let now = (pos.0, pos.1 + 3);
    let r = w.inline(&uri, now, AUTOMATIC).expect("inline");
    let item = only_item(&r);
    assert_eq!(item["insertText"], "wer(1, 2);", "{r}");
    assert_eq!(item["range"]["start"], lsp_pos(now), "{r}");
    assert_eq!(w.fake.requests().len(), 1, "served from the last suggestion");
}

// ---------------------------------------------------------------------------------------------
// 7. The document changes while the model answers.

#[test]
fn an_answer_is_rechecked_against_what_the_user_typed_meanwhile() {
    let gates = [Gate::new(), Gate::new()];
    let for_fake = gates.clone();
    let mut w = World::start(move |_, i| gated(&for_fake[i.min(1)], &text_answer(&["answer(1, 2);"])), |_| {}, &[]);

    // A character the suggestion does not start with: nothing to show.
    let (uri, pos) = w.open("src/main.rs", "rust", LET_X);
    let id = w.send_inline(&uri, pos, INVOKED);
    w.wait_requests(1);
    w.type_at(&uri, 2, pos, "z");
    assert_eq!(w.lsp.document(&uri).expect("doc")["version"], 2);
    gates[0].open();
    assert_eq!(w.lsp.response(&id), Ok(json!({"items": []})));

    // The character it starts with: the whole suggestion, from the original cursor, so it still
    // begins with what was typed (editors filter inline items by it).
    let (uri, pos) = w.open("src/other.rs", "rust", "fn other() {\n    let y = $0\n}\n");
    let id = w.send_inline(&uri, pos, INVOKED);
    w.wait_requests(2);
    w.type_at(&uri, 2, pos, "a");
    assert_eq!(w.lsp.document(&uri).expect("doc")["version"], 2);
    gates[1].open();
    let r = w.lsp.response(&id).expect("inline");
    let item = only_item(&r);
    assert_eq!(item["insertText"], "answer(1, 2);", "{r}");
    assert_eq!(item["range"], json!({"start": lsp_pos(pos), "end": lsp_pos((pos.0, pos.1 + 1))}), "{r}");
}

// ---------------------------------------------------------------------------------------------
// 8. Inside a word.

#[test]
fn no_suggestion_and_no_provider_request_in_the_middle_of_a_word() {
    let mut w = World::always(answer(&["answer(1, 2);"]));
    let (uri, pos) = w.open("src/main.rs", "rust", "fn main() {\n    let va$0lue = 1;\n    let x = \n}\n");
    assert_eq!(w.inline(&uri, pos, AUTOMATIC), Ok(json!({"items": []})));
    assert!(w.fake.requests().is_empty(), "{:?}", w.fake.requests());
    // The provider is reachable: the same document at the end of line 3 gets a suggestion.
    let r = w.inline(&uri, (2, 12), AUTOMATIC).expect("inline");
    assert_eq!(only_item(&r)["insertText"], "answer(1, 2);", "{r}");
    assert_eq!(w.fake.requests().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// 9. `quill/status` and error messages.

#[test]
fn status_goes_fetching_then_idle() {
    let mut w = World::always(answer(&["answer(1, 2);"]));
    let (uri, pos) = w.open("src/main.rs", "rust", LET_X);
    only_item(&w.inline(&uri, pos, AUTOMATIC).expect("inline"));
    w.lsp.wait_seen(|m| is_status(m, "idle"));
    assert_eq!(take_statuses(&mut w.lsp), vec![json!({"state": "fetching"}), json!({"state": "idle"})]);
}

#[test]
fn a_rejected_key_is_reported_once_and_never_shown() {
    let key = fake::fake_key("sk");
    let mut w = World::start(
        |r, i| match i {
            // OpenAI echoes the key it refused; Quill must not pass it on.
            0..5 => {
                let sent = r.header("authorization").unwrap_or_default().trim_start_matches("Bearer ");
                let body = json!({"error": {"message": format!("Incorrect API key provided: {sent}."),
                                             "type": "invalid_request_error", "code": "invalid_api_key"}});
                Reply::json(401, &body.to_string())
            }
            _ => answer(&["answer(1, 2);"]),
        },
        |o| o["providers"]["x"]["api_key_env"] = json!("QUILL_TEST_KEY"),
        &[("QUILL_TEST_KEY", &key)],
    );
    let (uri, pos) = w.open("src/main.rs", "rust", LET_X);
    let mut replies = Vec::new();
    for _ in 0..5 {
        let r = w.inline(&uri, pos, INVOKED).expect("a provider failure answers empty, not an error");
        assert_eq!(r, json!({"items": []}));
        replies.push(r);
    }
    assert_eq!(w.fake.requests().len(), 5, "each request tried the provider");
    assert_eq!(w.fake.request(0).header("authorization"), Some(format!("Bearer {key}").as_str()));

    // A success ends the run of errors; its `idle` comes after every earlier status and message.
    let r = w.inline(&uri, (pos.0, pos.1), INVOKED).expect("inline");
    replies.push(r);
    w.lsp.wait_seen(|m| is_status(m, "idle"));

    let everything = serde_json::to_string(&(&w.lsp.seen, &replies)).expect("json");
    assert!(!everything.contains(&key), "the key leaked: {everything}");
    let errors: Vec<&Value> =
        w.lsp.seen.iter().filter(|m| m["method"] == "window/showMessage" && m["params"]["type"] == 1).collect();
    assert_eq!(errors.len(), 1, "one message per run of errors: {errors:#?}");
    let text = errors[0]["params"]["message"].as_str().unwrap_or_default();
    assert!(text.starts_with("Quill autocomplete:") && text.contains("401"), "{text}");
    assert!(text.contains("QUILL_TEST_KEY"), "names where the key comes from: {text}");

    let statuses = take_statuses(&mut w.lsp);
    let states: Vec<&str> = statuses.iter().map(|s| s["state"].as_str().unwrap_or_default()).collect();
    assert_eq!(states.first(), Some(&"fetching"), "{statuses:#?}");
    assert_eq!(states.last(), Some(&"idle"), "{statuses:#?}");
    let error = statuses.iter().find(|s| s["state"] == "error").expect("an error status");
    assert_eq!(error["provider"], "x");
    assert!(error["reason"].as_str().is_some_and(|r| r.contains("401")), "{error}");
}

// ---------------------------------------------------------------------------------------------
// 10. What the model is shown.

#[test]
fn prompt_holds_prefix_and_suffix_around_the_cursor() {
    let mut w = World::always(answer(&["compute_total(&items);"]));
    let (uri, pos) = w.open(
        "src/main.rs",
        "rust",
        "use crate::util::compute_total;\n\nfn main() {\n    let total = $0\n    println!(\"{total}\");\n}\n",
    );
    only_item(&w.inline(&uri, pos, AUTOMATIC).expect("inline"));
    let r = w.fake.request(0);
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/completions"));
    let body = r.json();
    assert_eq!((body["model"].clone(), body["stream"].clone()), (json!("m"), json!(true)));
    let prompt = body["prompt"].as_str().unwrap_or_default();
    let suffix = body["suffix"].as_str().unwrap_or_default();
    assert!(prompt.ends_with("use crate::util::compute_total;\n\nfn main() {\n    let total = "), "{prompt:?}");
    assert!(suffix.starts_with("\n    println!(\"{total}\");\n}"), "{suffix:?}");
}

#[test]
fn prompt_names_the_file_relative_to_the_workspace_and_quotes_related_documents() {
    // A chat-shaped prompt shows everything the model is given: path, text and snippets.
    let mut w = World::start(
        |_, _| chat_answer("<fill>compute_total(&items)</fill>"),
        |o| o["providers"]["x"]["completion_mode"] = json!("chat"),
        &[],
    );
    let util = "pub struct Item {\n    pub price: u64,\n    pub quantity: u64,\n}\n\n\
                pub fn compute_total(items: &[Item]) -> u64 {\n    \
                items.iter().map(|item| item.price * item.quantity).sum()\n}\n";
    w.open("src/util.rs", "rust", &format!("{util}$0"));
    w.open("scripts/total.py", "python", "def compute_total(items):\n    return sum(i.price for i in items)\n$0");
    let (uri, pos) = w.open(
        "src/main.rs",
        "rust",
        "use crate::util::{compute_total, Item};\n\nfn main() {\n    let items: Vec<Item> = Vec::new();\n    \
         let total = $0\n}\n",
    );
    let r = w.inline(&uri, pos, AUTOMATIC).expect("inline");
    assert_eq!(only_item(&r)["insertText"], "compute_total(&items)", "{r}");
    let req = w.fake.request(0);
    assert_eq!(req.path, "/v1/chat/completions");
    let body = req.json();
    let user = body["messages"][1]["content"].as_str().unwrap_or_default().to_owned();
    assert!(user.contains("<file path=\"src/main.rs\">\n"), "the path is relative to the workspace: {user}");
    assert!(
        user.contains("    let items: Vec<Item> = Vec::new();\n    let total = <cursor/>\n}"),
        "prefix and suffix around the cursor: {user}"
    );
    // The open document that shares identifiers is quoted; the Python one is not.
    assert!(user.contains("<snippet path=\"src/util.rs\">"), "a snippet from the related document: {user}");
    assert!(user.contains("item.price * item.quantity"), "{user}");
    assert!(!user.contains("total.py"), "only documents of the same language: {user}");
}

// ---------------------------------------------------------------------------------------------
// 11. `quill complete`.

/// What a run of `quill` printed.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run `quill args` in `dir` with a clean environment (no real keys, no local servers).
fn quill(args: &[&str], dir: &Path) -> Run {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(common::quill_bin());
    cmd.args(args).current_dir(dir).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env("QUILL_LOG", "warn")
        .env("QUILL_PROBE_OLLAMA", closed_port_url())
        .env("QUILL_PROBE_LLAMACPP", closed_port_url());
    let out = cmd.output().expect("run quill");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn quill_complete_prints_the_suggestion_and_refuses_bad_locations() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let fake = rt.block_on(Fake::always(answer(&["answer(1", ", 2);"])));
    let ws = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        ws.path().join("quill.toml"),
        format!(
            "[providers.x]\nkind = \"openai-compatible\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\n\
             completion_mode = \"suffix\"\n[completion]\nprovider = \"x\"\n",
            fake.url
        ),
    )
    .expect("write");
    std::fs::create_dir(ws.path().join("src")).expect("mkdir");
    std::fs::write(ws.path().join("src/main.rs"), "fn main() {\n    let x = \n}\n").expect("write");
    let dir = ws.path();
    let wsp = dir.display().to_string();

    // Line 2, column 13: after `    let x = `.
    let r = quill(&["complete", "src/main.rs:2:13", "--workspace", &wsp], dir);
    assert_eq!((r.code, r.stdout.as_str()), (0, "answer(1, 2);\n"), "{}", r.stderr);
    let r = quill(&["complete", "--json", "src/main.rs:2:13", "--workspace", &wsp], dir);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).expect("JSON");
    assert_eq!(
        v,
        json!({"text": "answer(1, 2);", "range": {"start": {"line": 1, "character": 12}, "end": {"line": 1, "character": 12}}})
    );
    let body = fake.request(0).json();
    assert!(body["prompt"].as_str().is_some_and(|p| p.ends_with("fn main() {\n    let x = ")), "{body}");

    // Bad locations and files: exit 1, and stderr says what is wrong.
    for (location, says) in [
        ("x.rs:0:1", "FILE:LINE:COL"),
        ("x.rs:1:0", "FILE:LINE:COL"),
        ("x.rs:abc", "FILE:LINE:COL"),
        ("src/main.rs", "FILE:LINE:COL"),
        ("src/main.rs:99:1", "line 99 is past the end"),
        ("src/main.rs:2:99", "column 99 is past the end of line 2"),
        ("nope.rs:1:1", "cannot read nope.rs"),
    ] {
        let r = quill(&["complete", location, "--workspace", &wsp], dir);
        assert_eq!(r.code, 1, "{location}: {}", r.stdout);
        assert!(r.stdout.is_empty(), "{location}: {}", r.stdout);
        assert!(r.stderr.contains("quill complete:") && r.stderr.contains(says), "{location}: {}", r.stderr);
    }
    assert_eq!(fake.requests().len(), 2, "bad locations never reach the provider");
    drop(rt);
}

// ---------------------------------------------------------------------------------------------
// 12. Bad input.

#[test]
fn unknown_documents_and_positions_inside_a_character_are_invalid_params() {
    let mut w = World::always(answer(&["answer(1, 2);"]));
    // The emoji spans UTF-16 columns 13 and 14 of line 1; the cursor is at column 26.
    let (uri, pos) = w.open("src/main.rs", "rust", "fn main() {\n    let s = \"😀\"; let x = $0\n}\n");
    assert_eq!(pos, (1, 26));
    let nowhere = w.uri("src/nowhere.rs");
    for method in ["textDocument/inlineCompletion", "textDocument/completion"] {
        for (doc, pos) in [(&nowhere, (0, 0)), (&uri, (1, 14))] {
            let err = w.lsp.request(method, inline_params(doc, pos, INVOKED)).expect_err("refused");
            assert_eq!(err["code"], INVALID_PARAMS, "{method} {doc} {pos:?}: {err}");
        }
    }
    assert!(w.fake.requests().is_empty());
    // Still up and serving, with the range in UTF-16 columns.
    let r = w.inline(&uri, pos, INVOKED).expect("inline");
    let item = only_item(&r);
    assert_eq!(item["insertText"], "answer(1, 2);", "{r}");
    assert_eq!(item["range"], json!({"start": lsp_pos(pos), "end": lsp_pos(pos)}), "{r}");
    assert_eq!(w.lsp.shutdown(), Some(0));
}

// ---------------------------------------------------------------------------------------------
// Beyond the list: cancellation as editors do it, liveness, and the status after an abort.

/// Editors cancel the request for the previous keystroke: its provider call, if the user typed
/// what is consistent with it, serves the next request instead of a new one.
#[test]
fn a_cancelled_requests_provider_call_serves_the_next_keystroke() {
    let gate = Gate::new();
    let for_fake = gate.clone();
    // A long debounce gives a long grace period (`debounce_ms` clamped to 50..300 ms).
    let mut w = World::start(
        move |_, _| gated(&for_fake, &text_answer(&["answer(1, 2);"])),
        |o| o["completion"]["debounce_ms"] = json!(300),
        &[],
    );
    let (uri, pos) = w.open("src/main.rs", "rust", LET_X);
    let first = w.send_inline(&uri, pos, INVOKED);
    w.wait_requests(1);
    w.lsp.notify("$/cancelRequest", json!({"id": first}));
    w.type_at(&uri, 2, pos, "a");
    let second = w.send_inline(&uri, (pos.0, pos.1 + 1), AUTOMATIC);
    assert_eq!(w.lsp.response(&first).expect_err("cancelled")["code"], REQUEST_CANCELLED);
    gate.open();
    let r = w.lsp.response(&second).expect("inline");
    let item = only_item(&r);
    assert_eq!(item["insertText"], "nswer(1, 2);", "{r}");
    assert_eq!(item["range"]["start"], lsp_pos((pos.0, pos.1 + 1)), "{r}");
    assert_eq!(w.fake.requests().len(), 1, "the call was adopted, not repeated");
}

/// Requests waiting on a slow provider must not hold up document sync, other requests or
/// cancellation: the server answers them while the provider has not answered yet.
/// (tower-lsp-server's default of 4 messages at once would hold the fifth back.)
#[test]
fn requests_waiting_on_a_slow_provider_do_not_block_other_messages() {
    let gate = Gate::new();
    let for_fake = gate.clone();
    let mut w = World::start(
        move |_, _| gated(&for_fake, &text_answer(&["answer(1, 2);"])),
        |o| o["completion"]["timeout_ms"] = json!(60_000),
        &[],
    );
    // As a user keeps typing what the (silent) model may still say, each keystroke's request
    // waits on the same provider call.
    let (uri, pos) = w.open("src/main.rs", "rust", LET_X);
    let mut ids = vec![w.send_inline(&uri, pos, INVOKED)];
    w.wait_requests(1);
    for (i, ch) in "ans".chars().enumerate() {
        let at = (pos.0, pos.1 + i as u32);
        w.type_at(&uri, 2 + i as i32, at, &ch.to_string());
        ids.push(w.send_inline(&uri, (at.0, at.1 + 1), AUTOMATIC));
    }
    let doc = w.lsp.send_request("quill/document", json!({"uri": uri}));
    let answered = w.lsp.try_wait_for(|m| m["id"] == doc && m.get("method").is_none(), Duration::from_secs(5));
    gate.open();
    let answered = answered.expect("quill/document answered while suggestions wait on the provider");
    assert_eq!(answered["result"]["text"], "fn main() {\n    let x = ans\n}\n");
    for id in ids {
        w.lsp.response(&id).expect("inline");
    }
    assert_eq!(w.fake.requests().len(), 1);
}

/// A provider call aborted because its document closed ends in `idle`, so a status item does
/// not show "fetching" for ever.
#[test]
fn status_returns_to_idle_when_a_call_is_aborted() {
    let mut w = World::always(Reply::silent());
    let (uri, pos) = w.open("src/main.rs", "rust", LET_X);
    let id = w.send_inline(&uri, pos, INVOKED);
    w.lsp.wait_seen(|m| is_status(m, "fetching"));
    // `fetching` is sent as the call starts; close only once the request has reached the
    // provider, or there is no connection to see closed.
    w.wait_requests(1);
    w.lsp.notify("textDocument/didClose", json!({"textDocument": {"uri": uri}}));
    assert_eq!(w.lsp.response(&id), Ok(json!({"items": []})));
    assert!(w.closed_within(Duration::from_secs(5)), "the provider connection is closed");
    let idle = w.lsp.try_wait_for(|m| is_status(m, "idle"), Duration::from_secs(5));
    assert!(idle.is_some(), "no `idle` after the aborted call: {:#?}", w.lsp.seen);
}

/// `quill complete` shows the model the file's path relative to the workspace, however the
/// workspace was given.
/// (`--workspace .` must be resolved like the file, or the model sees an absolute path.)
#[test]
fn quill_complete_names_the_file_relative_to_the_workspace() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let fake = rt.block_on(Fake::always(chat_answer("<fill>answer(1, 2);</fill>")));
    let ws = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        ws.path().join("quill.toml"),
        format!(
            "[providers.x]\nkind = \"openai-compatible\"\nbase_url = \"{}/v1\"\nmodel = \"m\"\n\
             completion_mode = \"chat\"\n[completion]\nprovider = \"x\"\n",
            fake.url
        ),
    )
    .expect("write");
    std::fs::create_dir(ws.path().join("src")).expect("mkdir");
    std::fs::write(ws.path().join("src/main.rs"), "fn main() {\n    let x = \n}\n").expect("write");
    let wsp = ws.path().display().to_string();
    let runs: [&[&str]; 3] = [&["--workspace", &wsp], &[], &["--workspace", "."]];
    for (i, extra) in runs.into_iter().enumerate() {
        let mut args = vec!["complete", "src/main.rs:2:13"];
        args.extend_from_slice(extra);
        let r = quill(&args, ws.path());
        assert_eq!((r.code, r.stdout.as_str()), (0, "answer(1, 2);\n"), "{args:?}: {}", r.stderr);
        let body = fake.request(i).json();
        let user = body["messages"][1]["content"].as_str().unwrap_or_default().to_owned();
        assert!(user.contains("<file path=\"src/main.rs\">"), "{args:?}: {user}");
    }
    drop(rt);
}
