//! End-to-end chat over LSP: the real `quill` binary against a fake OpenAI-compatible server
//! (`/v1/chat/completions`, streamed). `quill/chat/*`, `quill/chat/delta` and `quill/chat/done`,
//! `quill/models` and the `quill.explain` command.
//!
//! Order is fixed by gates in the fake (the test decides when an answer goes on) and by waiting
//! for notifications, never by sleeps; nothing asserts how long anything took.

mod common;
mod fake;

use common::{Lsp, TIMEOUT, range};
use expect_test::expect;
use fake::{Fake, Gate, Recorded, Reply};
use serde_json::{Value, json};

const INVALID_PARAMS: i64 = -32602;
const REQUEST_FAILED: i64 = -32803;
const REQUEST_CANCELLED: i64 = -32800;

// ---------------------------------------------------------------------------------------------
// The fake's answers: Chat Completions chunks.

fn chunk(delta: Value, finish: Value) -> String {
    let v = json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
        "choices":[{"index":0,"delta":delta,"finish_reason":finish}]});
    format!("data: {v}\n\n")
}

/// One piece of text.
fn text(t: &str) -> String {
    chunk(json!({"content": t}), Value::Null)
}

/// The end of an answer: finish reason, usage, `[DONE]`.
fn end() -> String {
    let usage = json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],
        "usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}});
    chunk(json!({}), json!("stop")) + &format!("data: {usage}\n\n") + "data: [DONE]\n\n"
}

/// A whole answer streaming `parts`, one chunk each.
fn answer(parts: &[&str]) -> Reply {
    let mut r = Reply::new(200).header("content-type", "text/event-stream");
    for p in parts {
        r = r.bytes(text(p));
    }
    r.bytes(end())
}

/// `first`, then the rest only once `gate` opens.
fn gated(first: &str, gate: &Gate, rest: &[&str]) -> Reply {
    let mut r = Reply::new(200).header("content-type", "text/event-stream").bytes(text(first)).gate(gate);
    for p in rest {
        r = r.bytes(text(p));
    }
    r.bytes(end())
}

// ---------------------------------------------------------------------------------------------
// A test's world.

struct World {
    rt: tokio::runtime::Runtime,
    fake: Fake,
    lsp: Lsp,
    root: tempfile::TempDir,
}

impl World {
    fn start(handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static) -> World {
        World::start_with(handler, &[])
    }

    /// `env` is added to the server's (clean) environment, e.g. a shared `XDG_DATA_HOME`.
    fn start_with(handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static, env: &[(&str, &str)]) -> World {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let fake = rt.block_on(Fake::start(handler));
        let root = tempfile::tempdir().expect("tempdir");
        let lsp = launch(&fake, &root, env);
        World { rt, fake, lsp, root }
    }

    fn always(reply: Reply) -> World {
        World::start(move |_, _| reply.clone())
    }

    fn uri(&self, rel: &str) -> String {
        format!("file://{}/{rel}", self.root.path().display())
    }

    fn new_chat(&mut self) -> String {
        let r = self.lsp.request("quill/chat/new", json!({})).expect("chat/new");
        r["chatId"].as_str().expect("chatId").to_owned()
    }

    fn send(&mut self, chat: &str, message: &str) -> Result<Value, Value> {
        self.lsp.request("quill/chat/send", json!({"chatId": chat, "message": message}))
    }

    fn history(&mut self, chat: &str) -> Value {
        self.lsp.request("quill/chat/history", json!({"chatId": chat})).expect("history")
    }

    /// The `quill/chat/done` of a reply (every delta of it has arrived before it).
    fn done(&mut self, message_id: &str) -> Value {
        let id = message_id.to_owned();
        self.lsp.wait_for(move |m| m["method"] == "quill/chat/done" && m["params"]["messageId"] == id.as_str())
            ["params"]
            .clone()
    }

    /// The deltas of a reply seen so far, in arrival order (removing them).
    fn deltas(&mut self, message_id: &str) -> Vec<Value> {
        let (mine, rest): (Vec<Value>, Vec<Value>) = std::mem::take(&mut self.lsp.seen)
            .into_iter()
            .partition(|m| m["method"] == "quill/chat/delta" && m["params"]["messageId"] == message_id);
        self.lsp.seen = rest;
        mine.into_iter().map(|m| m["params"].clone()).collect()
    }

    fn first_delta(&mut self) -> Value {
        self.lsp.wait_for(|m| m["method"] == "quill/chat/delta")["params"].clone()
    }

    fn closed(&self) -> bool {
        self.rt.block_on(self.fake.wait_close(TIMEOUT)).is_some()
    }

    /// The last user message the fake received, in request `i`.
    fn asked(&self, i: usize) -> Value {
        self.fake.request(i).json()["messages"].clone()
    }
}

fn launch(fake: &Fake, root: &tempfile::TempDir, env: &[(&str, &str)]) -> Lsp {
    let mut lsp = Lsp::spawn_isolated(env);
    lsp.initialize(json!({
        "processId": null,
        "rootUri": format!("file://{}", root.path().display()),
        "capabilities": {"general": {"positionEncodings": ["utf-16"]}},
        "initializationOptions": {
            "providers": {"x": {"kind": "openai-compatible", "base_url": format!("{}/v1", fake.url), "model": "m"}},
            "chat": {"provider": "x"},
        },
    }));
    lsp
}

fn code(e: &Value) -> i64 {
    e["code"].as_i64().unwrap_or_default()
}

fn message(e: &Value) -> &str {
    e["message"].as_str().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Streaming.

#[test]
fn deltas_stream_in_order_and_join_to_the_reply_while_the_editor_keeps_working() {
    let gate = Gate::new();
    let g = gate.clone();
    let mut w = World::start(move |_, _| gated("Hello", &g, &[", ", "wor", "ld", "!"]));
    let uri = w.uri("a.rs");
    w.lsp.open(&uri, "rust", "fn a() {}\n");
    let chat = w.new_chat();
    let id = w.lsp.send_request("quill/chat/send", json!({"chatId": chat, "message": "Say hello"}));

    // The first delta arrives while the provider is still held: the reply streams.
    let first = w.first_delta();
    assert_eq!((first["seq"].clone(), first["delta"].clone()), (json!(0), json!("Hello")), "{first}");
    assert_eq!(first["chatId"], chat.as_str());

    // Mid-stream, keystrokes and requests are served.
    w.lsp.change(&uri, 2, json!([{"text": "fn b() {}\n"}]));
    assert_eq!(w.lsp.text(&uri), "fn b() {}\n");
    gate.open();

    let r = w.lsp.response(&id).expect("send answers");
    let message_id = r["messageId"].as_str().expect("messageId").to_owned();
    assert_eq!(first["messageId"], message_id.as_str());
    assert_eq!(r["reply"], "Hello, world!");
    assert_eq!(r["stopReason"], "end_turn");
    assert_eq!(r["usage"], json!({"inputTokens": 12, "outputTokens": 3}));
    assert_eq!(r["contextUsed"], json!([]));
    assert_eq!(r["historyDropped"], 0);

    let done = w.done(&message_id);
    assert_eq!((done["reply"].clone(), done["stopReason"].clone()), (json!("Hello, world!"), json!("end_turn")));
    let mut deltas = vec![first];
    deltas.extend(w.deltas(&message_id));
    let seqs: Vec<u64> = deltas.iter().map(|d| d["seq"].as_u64().expect("seq")).collect();
    assert_eq!(seqs, (0..deltas.len() as u64).collect::<Vec<_>>(), "in order, none missing");
    let joined: String = deltas.iter().map(|d| d["delta"].as_str().expect("delta")).collect();
    assert_eq!(joined, "Hello, world!");

    // The request: system prompt, then the question; `[chat]`'s limits.
    let body = w.fake.request(0).json();
    assert_eq!(body["max_tokens"], 4000);
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][1], json!({"role": "user", "content": "Say hello"}));
}

#[test]
fn history_survives_a_restart_and_feeds_the_next_turn() {
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().display().to_string();
    let env = [("XDG_DATA_HOME", data_dir.as_str())];
    let mut w = World::start_with(|_, i| answer(&[&format!("Answer {i}")]), &env);
    let r = w.lsp.request("quill/chat/new", json!({"model": "big-model"})).expect("new");
    let chat = r["chatId"].as_str().expect("chatId").to_owned();
    let r = w.send(&chat, "First question").expect("send");
    assert_eq!(r["reply"], "Answer 0");
    assert_eq!(w.fake.request(0).json()["model"], "big-model", "the chat's model is used");
    w.lsp.shutdown();

    // A second server on the same data dir.
    let mut lsp = launch(&w.fake, &w.root, &env);
    let list = lsp.request("quill/chat/list", json!({})).expect("list");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["chatId"], chat.as_str());
    assert_eq!(list[0]["title"], "First question");
    assert_eq!(list[0]["model"], "big-model");
    assert_eq!(list[0]["messages"], 2);
    let h = lsp.request("quill/chat/history", json!({"chatId": chat})).expect("history");
    let msgs: Vec<(Value, Value)> =
        h["messages"].as_array().expect("messages").iter().map(|m| (m["role"].clone(), m["content"].clone())).collect();
    assert_eq!(msgs, [(json!("user"), json!("First question")), (json!("assistant"), json!("Answer 0"))]);
    assert_eq!(h["messages"][1]["usage"], json!({"inputTokens": 12, "outputTokens": 3}));

    // The next turn carries the earlier one.
    let r = lsp.request("quill/chat/send", json!({"chatId": chat, "message": "Second"})).expect("send");
    assert_eq!(r["reply"], "Answer 1");
    let sent: Vec<Value> =
        w.asked(1).as_array().expect("messages").iter().map(|m| m["content"].clone()).skip(1).collect();
    assert_eq!(sent, [json!("First question"), json!("Answer 0"), json!("Second")]);
    assert_eq!(w.fake.request(1).json()["model"], "big-model", "the model survives the restart");
}

// ---------------------------------------------------------------------------------------------
// Cancel.

#[test]
fn chat_cancel_closes_the_provider_stream_and_keeps_the_partial() {
    let mut w =
        World::always(Reply::new(200).header("content-type", "text/event-stream").bytes(text("Partial ")).stall());
    let chat = w.new_chat();
    let nothing = w.lsp.request("quill/chat/cancel", json!({"chatId": chat})).expect("cancel");
    assert_eq!(nothing, json!({"cancelled": false}), "nothing in progress");

    let id = w.lsp.send_request("quill/chat/send", json!({"chatId": chat, "message": "Go on"}));
    let first = w.first_delta();
    let c = w.lsp.request("quill/chat/cancel", json!({"chatId": chat})).expect("cancel");
    assert_eq!(c["cancelled"], true, "{c}");
    assert_eq!(c["messageId"], first["messageId"]);
    let r = w.lsp.response(&id).expect("the send resolves with what arrived");
    assert_eq!((r["reply"].clone(), r["stopReason"].clone()), (json!("Partial "), json!("cancelled")));
    assert!(w.closed(), "the provider connection is closed");

    let h = w.history(&chat);
    assert_eq!(h["messages"][0]["content"], "Go on");
    assert_eq!(h["messages"][1]["content"], "Partial ");
    assert_eq!(h["messages"][1]["error"], "cancelled");
    assert_eq!(h["generating"], false);
}

#[test]
fn cancel_request_closes_the_provider_stream_and_keeps_the_partial() {
    let mut w =
        World::always(Reply::new(200).header("content-type", "text/event-stream").bytes(text("Half a")).stall());
    let chat = w.new_chat();
    let id = w.lsp.send_request("quill/chat/send", json!({"chatId": chat, "message": "Go on"}));
    let first = w.first_delta();
    w.lsp.notify("$/cancelRequest", json!({"id": id}));
    let e = w.lsp.response(&id).expect_err("cancelled");
    assert_eq!(code(&e), REQUEST_CANCELLED, "{e}");
    assert!(w.closed(), "the provider connection is closed");
    let done = w.done(first["messageId"].as_str().expect("id"));
    assert_eq!((done["reply"].clone(), done["stopReason"].clone()), (json!("Half a"), json!("cancelled")));
    let h = w.history(&chat);
    assert_eq!(
        (h["messages"][1]["content"].clone(), h["messages"][1]["error"].clone()),
        (json!("Half a"), json!("cancelled"))
    );
    // The chat is free again.
    let r = w.lsp.request("quill/chat/cancel", json!({"chatId": chat})).expect("cancel");
    assert_eq!(r, json!({"cancelled": false}));
}

// ---------------------------------------------------------------------------------------------
// Bad input.

#[test]
fn unknown_and_invalid_chat_ids_are_invalid_params() {
    let mut w = World::always(answer(&["x"]));
    for method in ["quill/chat/send", "quill/chat/history", "quill/chat/delete", "quill/chat/cancel"] {
        for (id, says) in [("0-0-0000000000000000", "unknown chat"), ("../../etc/passwd", "invalid chat or message id")]
        {
            let e = w.lsp.request(method, json!({"chatId": id, "message": "hi"})).expect_err(method);
            assert_eq!(code(&e), INVALID_PARAMS, "{method} {id}: {e}");
            assert!(message(&e).contains(says), "{method} {id}: {e}");
        }
    }
    let e = w.lsp.request("quill/chat/send", json!({"message": "hi"})).expect_err("no chatId");
    assert_eq!(code(&e), INVALID_PARAMS, "{e}");
    let chat = w.new_chat();
    let e = w.send(&chat, "   ").expect_err("empty message");
    assert!(message(&e).contains("empty"), "{e}");
    assert!(w.fake.requests().is_empty(), "nothing reached the provider");
}

#[test]
fn bad_context_is_dropped_with_a_reason_and_the_reply_still_comes() {
    let mut w = World::always(answer(&["Fine."]));
    let dir = w.root.path().to_path_buf();
    std::fs::write(dir.join("bin.dat"), b"abc\0def").expect("write");
    std::fs::write(dir.join("latin1.txt"), b"caf\xe9\n").expect("write");
    std::fs::write(dir.join("disk.py"), "def on_disk():\n    return 1\n").expect("write");
    let open = w.uri("open.rs");
    w.lsp.open(&open, "rust", "fn helper() -> u8 {\n    7\n}\n\nfn main() {}\n");
    let chat = w.new_chat();
    let r = w
        .lsp
        .request(
            "quill/chat/send",
            json!({"chatId": chat, "message": "What is this?",
                "context": [
                    {"uri": w.uri("missing.rs")},
                    {"uri": w.uri("bin.dat")},
                    {"uri": w.uri("latin1.txt")},
                    {"uri": open, "range": range(40, 0, 45, 0)},
                    {"uri": open, "range": range(4, 0, 5, 0)},
                    {"uri": w.uri("disk.py")},
                ],
                "selection": {"uri": open, "range": range(0, 3, 0, 9)},
                "symbols": ["helper", "nowhere"]}),
        )
        .expect("the reply comes");
    assert_eq!(r["reply"], "Fine.");
    let root = dir.display().to_string();
    let used = serde_json::to_string_pretty(&r["contextUsed"]).expect("json").replace(&root, "$ROOT");
    expect![[r#"
        [
          {
            "range": [
              0,
              0
            ],
            "status": {
              "kind": "included"
            },
            "uri": "file://$ROOT/open.rs"
          },
          {
            "status": {
              "kind": "dropped",
              "reason": "no such file"
            },
            "uri": "file://$ROOT/missing.rs"
          },
          {
            "status": {
              "kind": "dropped",
              "reason": "binary content (NUL bytes)"
            },
            "uri": "file://$ROOT/bin.dat"
          },
          {
            "status": {
              "kind": "dropped",
              "reason": "binary content (not UTF-8 text)"
            },
            "uri": "file://$ROOT/latin1.txt"
          },
          {
            "range": [
              40,
              44
            ],
            "status": {
              "kind": "dropped",
              "reason": "lines 41-45 outside the document (5 lines)"
            },
            "uri": "file://$ROOT/open.rs"
          },
          {
            "range": [
              4,
              4
            ],
            "status": {
              "kind": "included"
            },
            "uri": "file://$ROOT/open.rs"
          },
          {
            "status": {
              "kind": "included"
            },
            "uri": "file://$ROOT/disk.py"
          },
          {
            "range": [
              0,
              2
            ],
            "status": {
              "kind": "included"
            },
            "symbol": "helper",
            "uri": "file://$ROOT/open.rs"
          },
          {
            "status": {
              "kind": "dropped",
              "reason": "symbol `nowhere` not found in the open documents"
            },
            "symbol": "nowhere",
            "uri": ""
          }
        ]"#]]
    .assert_eq(&used);
    // What was included went to the provider; the selection is the selected text only.
    let sent = w.asked(0)[1]["content"].as_str().expect("content").to_owned();
    assert!(sent.contains("(selection, line 1):\n```rust\nhelper\n```"), "{sent}");
    assert!(sent.contains("def on_disk():") && sent.contains("fn main() {}"), "{sent}");
    assert!(!sent.contains("abc") && !sent.contains("caf"), "{sent}");
    assert!(sent.ends_with("What is this?"), "{sent}");
    // The user message keeps what went with it.
    let h = w.history(&chat);
    assert_eq!(h["messages"][0]["contextUsed"], r["contextUsed"]);
}

#[test]
fn a_provider_failing_mid_stream_keeps_the_question_and_the_partial() {
    let mut w =
        World::always(Reply::new(200).header("content-type", "text/event-stream").bytes(text("Half an ")).cut());
    let chat = w.new_chat();
    let e = w.send(&chat, "Explain monads").expect_err("the provider failed");
    assert_eq!(code(&e), REQUEST_FAILED, "{e}");
    assert!(message(&e).contains("provider `x`"), "the provider's own message: {e}");
    let message_id = e["data"]["messageId"].as_str().expect("messageId").to_owned();
    assert_eq!(e["data"]["partial"], "Half an ");
    let done = w.done(&message_id);
    assert_eq!((done["stopReason"].clone(), done["reply"].clone()), (json!("error"), json!("Half an ")));
    assert_eq!(done["error"], e["message"]);

    let h = w.history(&chat);
    let m = h["messages"].as_array().expect("messages");
    assert_eq!(m.len(), 2, "{h}");
    assert_eq!((m[0]["role"].clone(), m[0]["content"].clone()), (json!("user"), json!("Explain monads")));
    assert_eq!((m[1]["id"].as_str(), m[1]["content"].clone()), (Some(message_id.as_str()), json!("Half an ")));
    assert_eq!(m[1]["error"], e["message"]);
}

#[test]
fn a_second_send_while_generating_is_refused() {
    let gate = Gate::new();
    let g = gate.clone();
    let mut w = World::start(move |_, i| if i == 0 { gated("One", &g, &[" done"]) } else { answer(&["Two"]) });
    let chat = w.new_chat();
    let other = w.new_chat();
    let id = w.lsp.send_request("quill/chat/send", json!({"chatId": chat, "message": "first"}));
    w.first_delta();
    let e = w.send(&chat, "second").expect_err("refused");
    assert_eq!(message(&e), "a message is already in progress in this chat", "{e}");
    assert_eq!(w.history(&chat)["generating"], true);
    // Another chat is not held up.
    assert_eq!(w.send(&other, "elsewhere").expect("other chat")["reply"], "Two");
    gate.open();
    assert_eq!(w.lsp.response(&id).expect("first")["reply"], "One done");
    // Free again; the refused message was never recorded.
    let r = w.send(&chat, "third").expect("third");
    assert_eq!(r["reply"], "Two");
    let contents: Vec<Value> =
        w.history(&chat)["messages"].as_array().expect("m").iter().map(|m| m["content"].clone()).collect();
    assert_eq!(contents, [json!("first"), json!("One done"), json!("third"), json!("Two")]);
}

// ---------------------------------------------------------------------------------------------
// list / history / delete, models, explain.

#[test]
fn list_history_and_delete() {
    let mut w = World::start(|_, i| answer(&[&format!("A{i}")]));
    let empty = w.lsp.request("quill/chat/list", Value::Null).expect("list with null params");
    assert_eq!(empty, json!([]));
    let a = w.new_chat();
    w.send(&a, "About apples\nand more").expect("send");
    let b = w.new_chat();
    w.send(&b, "About bananas").expect("send");
    let list = w.lsp.request("quill/chat/list", json!({})).expect("list");
    let rows: Vec<(Value, Value, Value)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|c| (c["chatId"].clone(), c["title"].clone(), c["messages"].clone()))
        .collect();
    assert_eq!(rows, [(json!(b), json!("About bananas"), json!(2)), (json!(a), json!("About apples"), json!(2))]);
    assert!(list[0]["updated"].as_u64().is_some_and(|u| u >= list[1]["updated"].as_u64().unwrap_or(0)));

    let h = w.history(&a);
    assert_eq!((h["chatId"].clone(), h["title"].clone()), (json!(a), json!("About apples")));
    let m = &h["messages"][1];
    assert!(m["id"].is_string() && m["role"] == "assistant" && m["content"] == "A0", "{h}");

    assert_eq!(w.lsp.request("quill/chat/delete", json!({"chatId": a})).expect("delete"), json!({"deleted": true}));
    let list = w.lsp.request("quill/chat/list", json!({})).expect("list");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let e = w.lsp.request("quill/chat/history", json!({"chatId": a})).expect_err("deleted");
    assert!(message(&e).contains("unknown chat"), "{e}");
    let e = w.lsp.request("quill/chat/delete", json!({"chatId": a})).expect_err("twice");
    assert_eq!(code(&e), INVALID_PARAMS);
}

#[test]
fn models_lists_the_provider_and_model_per_feature() {
    let mut w = World::always(answer(&["x"]));
    let m = w.lsp.request("quill/models", json!({})).expect("models");
    let shown = serde_json::to_string_pretty(&m).expect("json").replace(&w.fake.url, "$FAKE");
    expect![[r#"
        {
          "features": [
            {
              "feature": "completion",
              "kind": "openai-compatible",
              "model": "m",
              "provider": "x",
              "usable": true
            },
            {
              "feature": "chat",
              "kind": "openai-compatible",
              "model": "m",
              "provider": "x",
              "usable": true
            },
            {
              "feature": "edit",
              "kind": "openai-compatible",
              "model": "m",
              "provider": "x",
              "usable": true
            }
          ],
          "providers": [
            {
              "kind": "openai-compatible",
              "model": "m",
              "name": "x"
            }
          ]
        }"#]]
    .assert_eq(&shown);
}

#[test]
fn explain_starts_a_chat_at_once_and_streams_into_it() {
    let gate = Gate::new();
    let g = gate.clone();
    let mut w = World::start(move |_, _| gated("It adds", &g, &[" two numbers."]));
    std::fs::create_dir(w.root.path().join("src")).expect("mkdir");
    let uri = w.uri("src/lib.rs");
    w.lsp.open(&uri, "rust", "// math\nfn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n");
    // Answered while the provider is still held: the command does not wait for the reply.
    let r = w
        .lsp
        .request(
            "workspace/executeCommand",
            json!({"command": "quill.explain", "arguments": [{"uri": uri, "range": range(1, 0, 4, 0)}]}),
        )
        .expect("explain");
    let chat = r["chatId"].as_str().expect("chatId").to_owned();
    let message_id = r["messageId"].as_str().expect("messageId").to_owned();
    let first = w.first_delta();
    assert_eq!(
        (first["chatId"].as_str(), first["messageId"].as_str()),
        (Some(chat.as_str()), Some(message_id.as_str()))
    );
    gate.open();
    let done = w.done(&message_id);
    assert_eq!(done["reply"], "It adds two numbers.");

    let h = w.history(&chat);
    assert_eq!(h["title"], "Explain src/lib.rs:2-4");
    assert_eq!(h["messages"][0]["content"], "Explain what the selected code does.");
    assert_eq!(h["messages"][1]["content"], "It adds two numbers.");
    let sent = w.asked(0)[1]["content"].as_str().expect("content").to_owned();
    assert!(sent.contains("fn add(a: i32, b: i32) -> i32 {\n    a + b\n}"), "{sent}");
    assert!(!sent.contains("// math"), "only the selection: {sent}");

    // A document that is not open is refused, and no chat is left behind.
    let e = w
        .lsp
        .request(
            "workspace/executeCommand",
            json!({"command": "quill.explain", "arguments": [{"uri": w.uri("nope.rs"), "range": range(0, 0, 1, 0)}]}),
        )
        .expect_err("not open");
    assert!(message(&e).contains("unknown document"), "{e}");
    let list = w.lsp.request("quill/chat/list", json!({})).expect("list");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
}

#[test]
fn history_that_cannot_be_opened_fails_chat_requests_with_the_reason() {
    let blocker = tempfile::NamedTempFile::new().expect("file");
    // XDG_DATA_HOME is a file: `quill/chats` cannot be created under it.
    let path = blocker.path().display().to_string();
    let mut w = World::start_with(|_, _| answer(&["x"]), &[("XDG_DATA_HOME", path.as_str())]);
    let e = w.lsp.request("quill/chat/new", json!({})).expect_err("no history");
    assert_eq!(code(&e), REQUEST_FAILED, "{e}");
    assert!(message(&e).contains("cannot open chat history") && message(&e).contains(&path), "{e}");
    // Every chat request says so; the server itself carries on.
    let e = w.lsp.request("quill/chat/list", json!({})).expect_err("no history");
    assert!(message(&e).contains("cannot open chat history"), "{e}");
    assert!(w.lsp.is_running());
}

// ---------------------------------------------------------------------------------------------
// A reply in progress survives the process dying; delete while streaming.

#[test]
fn a_reply_cut_by_a_killed_server_is_kept_for_the_next_one() {
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().display().to_string();
    let env = [("XDG_DATA_HOME", data_dir.as_str())];
    let gate = Gate::new();
    let g = gate.clone();
    let mut w = World::start_with(move |_, _| gated("Partial answer", &g, &[" never sent"]), &env);
    let chat = w.new_chat();
    let _id = w.lsp.send_request("quill/chat/send", json!({"chatId": chat, "message": "Tell me"}));
    w.first_delta();
    // The interim save lands within a moment of the delta; wait for it on disk (bounded).
    let file = data.path().join("quill/chats").join(format!("{chat}.json"));
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !std::fs::read_to_string(&file).is_ok_and(|t| t.contains("Partial answer")) {
        assert!(std::time::Instant::now() < deadline, "the partial reply was never saved");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Killed mid-stream (dropping the harness kills the process).
    let old = std::mem::replace(&mut w.lsp, launch(&w.fake, &w.root, &env));
    drop(old);
    let h = w.history(&chat);
    let msgs: Vec<(Value, Value)> =
        h["messages"].as_array().expect("messages").iter().map(|m| (m["role"].clone(), m["content"].clone())).collect();
    assert_eq!(msgs, [(json!("user"), json!("Tell me")), (json!("assistant"), json!("Partial answer"))], "{h}");
    assert!(h["messages"][1]["error"].as_str().is_some_and(|e| e.starts_with("interrupted")), "{h}");
    gate.open();
}

#[test]
fn shutdown_saves_a_streaming_reply_as_cancelled() {
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().display().to_string();
    let env = [("XDG_DATA_HOME", data_dir.as_str())];
    let gate = Gate::new();
    let g = gate.clone();
    let mut w = World::start_with(move |_, _| gated("Half an answer", &g, &[" never sent"]), &env);
    let uri = w.uri("lib.rs");
    w.lsp.open(&uri, "rust", "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n");
    // An explain turn: no request waits on it, so only `shutdown` can stop it and save it as
    // cancelled (otherwise the last interim save says "interrupted", or nothing arrived yet).
    let r = w
        .lsp
        .request(
            "workspace/executeCommand",
            json!({"command": "quill.explain", "arguments": [{"uri": uri, "range": range(0, 0, 3, 0)}]}),
        )
        .expect("explain");
    let chat = r["chatId"].as_str().expect("chatId").to_owned();
    w.first_delta();
    w.lsp.request("shutdown", Value::Null).expect("shutdown");
    w.lsp.notify("exit", Value::Null);
    assert_eq!(w.lsp.wait_exit(), Some(0));
    w.lsp = launch(&w.fake, &w.root, &env);
    let h = w.history(&chat);
    assert_eq!(h["messages"][1]["content"], "Half an answer", "{h}");
    assert_eq!(h["messages"][1]["error"], "cancelled", "{h}");
    gate.open();
}

#[test]
fn delete_while_a_reply_streams_stops_it_and_leaves_no_file() {
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().display().to_string();
    let env = [("XDG_DATA_HOME", data_dir.as_str())];
    let gate = Gate::new();
    let g = gate.clone();
    let mut w = World::start_with(move |_, _| gated("Half", &g, &[" more"]), &env);
    let chat = w.new_chat();
    let id = w.lsp.send_request("quill/chat/send", json!({"chatId": chat, "message": "Go"}));
    let first = w.first_delta();
    let r = w.lsp.request("quill/chat/delete", json!({"chatId": chat})).expect("delete");
    assert_eq!(r, json!({"deleted": true}));
    // The turn is stopped (the gate never opens) and ends on its own.
    let r = w.lsp.response(&id).expect("send resolves");
    assert_eq!(r["stopReason"], "cancelled", "{r}");
    w.done(first["messageId"].as_str().expect("id"));
    assert!(w.closed(), "the provider connection is closed");
    let e = w.lsp.request("quill/chat/history", json!({"chatId": chat})).expect_err("deleted");
    assert_eq!(code(&e), INVALID_PARAMS, "{e}");
    assert_eq!(w.lsp.request("quill/chat/list", json!({})).expect("list"), json!([]));
    let file = data.path().join("quill/chats").join(format!("{chat}.json"));
    assert!(!file.exists(), "the reply's last save did not bring the file back");
    gate.open();
}
