//! Edits end to end: the real `quill` binary over LSP against a fake OpenAI-compatible chat
//! server. Code actions (with and without resolve support), `quill.edit` and its one
//! `workspace/applyEdit`, the stale-document refusal, progress and cancellation, bad answers,
//! provider failures, bad input, "Generate tests" files, and the `quill/edit` preview.
//!
//! Ordering comes from gates in the fake and round trips to the server, never from sleeps.

mod common;
mod fake;

use std::time::Duration;

use common::{Lsp, range};
use expect_test::expect;
use fake::{Fake, Gate, Recorded, Reply};
use serde_json::{Value, json};

const INVALID_PARAMS: i64 = -32602;
const REQUEST_FAILED: i64 = -32803;
const REQUEST_CANCELLED: i64 = -32800;

/// A Python file; line 0 holds non-ASCII text so UTF-16 columns differ from bytes.
const CALC: &str = "# café ☕ 😀 calc\n\ndef area(r):\n    return 3.14 * r * r\n\ndef double(x):\n    return x * 2\n";

/// `area` documented, as the model answers it (fenced, with prose around).
const AREA_DOC: &str = "Here is the documented function:\n\n```python\ndef area(r):\n    \"\"\"Area of a circle of radius r.\"\"\"\n    return 3.14 * r * r\n```\n\nI added a docstring.";
const CALC_DOCUMENTED: &str = "# café ☕ 😀 calc\n\ndef area(r):\n    \"\"\"Area of a circle of radius r.\"\"\"\n    return 3.14 * r * r\n\ndef double(x):\n    return x * 2\n";

// ---------------------------------------------------------------------------------------------
// The fake's answers: OpenAI Chat Completions streams.

fn chunk(content: &str) -> String {
    let v = json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
        "choices":[{"index":0,"delta":{"content":content},"finish_reason":null}]});
    format!("data: {v}\n\n")
}

fn finish(reason: &str) -> String {
    let v = json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
        "choices":[{"index":0,"delta":{},"finish_reason":reason}]});
    format!("data: {v}\n\ndata: [DONE]\n\n")
}

/// A whole answer, one line per chunk so progress has something to report.
fn answer(content: &str) -> Reply {
    let mut parts: Vec<String> = content.split_inclusive('\n').map(chunk).collect();
    parts.push(finish("stop"));
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    Reply::sse(&refs)
}

fn sse_head() -> Reply {
    Reply::new(200).header("content-type", "text/event-stream")
}

// ---------------------------------------------------------------------------------------------
// A test's world.

struct World {
    rt: tokio::runtime::Runtime,
    fake: Fake,
    lsp: Lsp,
    root: tempfile::TempDir,
}

/// What the client supports: everything an edit can use.
fn full_caps() -> Value {
    json!({
        "general": {"positionEncodings": ["utf-16"]},
        "workspace": {"applyEdit": true, "workspaceEdit": {"documentChanges": true, "resourceOperations": ["create"]}},
        "window": {"workDoneProgress": true},
        "textDocument": {"codeAction": {"dataSupport": true, "resolveSupport": {"properties": ["edit"]}}},
    })
}

fn plain_caps() -> Value {
    json!({"general": {"positionEncodings": ["utf-16"]}})
}

impl World {
    fn start(handler: impl Fn(&Recorded, usize) -> Reply + Send + Sync + 'static, caps: Value) -> World {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        let fake = rt.block_on(Fake::start(handler));
        let root = tempfile::tempdir().expect("tempdir");
        let mut lsp = Lsp::spawn_isolated(&[]);
        lsp.initialize(json!({
            "processId": null,
            "rootUri": format!("file://{}", root.path().display()),
            "capabilities": caps,
            "initializationOptions": {
                "providers": {"x": {"kind": "openai-compatible", "base_url": format!("{}/v1", fake.url), "model": "m"}},
                "edit": {"provider": "x", "max_tokens": 777},
                "chat": {"provider": "x"},
                "completion": {"provider": "x"},
            },
        }));
        World { rt, fake, lsp, root }
    }

    fn always(reply: Reply, caps: Value) -> World {
        World::start(move |_, _| reply.clone(), caps)
    }

    fn uri(&self, rel: &str) -> String {
        format!("file://{}/{rel}", self.root.path().display())
    }

    fn open(&mut self, rel: &str, language_id: &str, text: &str) -> String {
        let uri = self.uri(rel);
        self.lsp.open(&uri, language_id, text);
        uri
    }

    fn edit(&mut self, args: Value) -> Result<Value, Value> {
        self.lsp.request("workspace/executeCommand", json!({"command": "quill.edit", "arguments": [args]}))
    }

    /// The `workspace/applyEdit` requests the server sent so far.
    fn applied(&self) -> Vec<Value> {
        self.lsp.seen.iter().filter(|m| m["method"] == "workspace/applyEdit").cloned().collect()
    }

    /// Wait until the fake has received `n` requests (a round trip per poll, no sleeps).
    fn wait_requests(&mut self, n: usize) {
        let deadline = std::time::Instant::now() + common::TIMEOUT;
        while self.fake.requests().len() < n {
            assert!(std::time::Instant::now() < deadline, "the provider never got request #{n}");
            let _ = self.lsp.document("file:///nothing");
        }
    }

    /// The user prompt of request `i`.
    fn prompt(&self, i: usize) -> String {
        let body = self.fake.request(i).json();
        body["messages"].as_array().expect("messages").iter().map(|m| m["content"].as_str().unwrap_or("")).collect()
    }
}

/// Applies LSP text edits (UTF-16 positions) to `text`, last first. Strict, so a wrong column
/// fails the test instead of being clamped: a position must fall on a character boundary
/// within its line (at most at the line's end, before its line break), and the only position
/// past the last line is the start of the empty line after a final line break.
fn apply_edits(text: &str, edits: &[Value]) -> String {
    let offset = |pos: &Value| {
        let (line, col) = (pos["line"].as_u64().expect("line") as usize, pos["character"].as_u64().expect("char"));
        let mut at = 0;
        for (i, l) in text.split_inclusive('\n').enumerate() {
            if i == line {
                let content = l.trim_end_matches(['\r', '\n']);
                let mut units = 0;
                for (b, ch) in content.char_indices() {
                    if units == col {
                        return at + b;
                    }
                    assert!(units < col, "position {pos} is inside a character of {content:?}");
                    units += ch.len_utf16() as u64;
                }
                assert_eq!(units, col, "position {pos} is past the end of line {line} ({content:?})");
                return at + content.len();
            }
            at += l.len();
        }
        assert!(text.ends_with('\n') && line == text.split_inclusive('\n').count() && col == 0, "bad position {pos}");
        text.len()
    };
    let mut spans: Vec<(usize, usize, String)> = edits
        .iter()
        .map(|e| {
            (offset(&e["range"]["start"]), offset(&e["range"]["end"]), e["newText"].as_str().expect("newText").into())
        })
        .collect();
    spans.sort_by_key(|s| std::cmp::Reverse(s.0));
    let mut out = text.to_owned();
    for (a, b, t) in spans {
        out.replace_range(a..b, &t);
    }
    out
}

/// The edits of the one `TextDocumentEdit` in a workspace edit, and its version.
fn document_edit(edit: &Value) -> (Value, Vec<Value>) {
    let changes = edit["documentChanges"].as_array().expect("documentChanges");
    assert_eq!(changes.len(), 1, "one document edit: {edit:#}");
    (changes[0]["textDocument"]["version"].clone(), changes[0]["edits"].as_array().expect("edits").clone())
}

fn titles(actions: &Value) -> Vec<String> {
    actions.as_array().expect("actions").iter().map(|a| a["title"].as_str().unwrap_or("").to_owned()).collect()
}

fn diagnostic(line: u32, message: &str) -> Value {
    json!({"range": range(line, 4, line, 10), "severity": 1, "message": message})
}

// ---------------------------------------------------------------------------------------------
// Listing.

#[test]
fn actions_carry_commands_when_the_client_cannot_resolve() {
    let mut w = World::always(answer("unused"), plain_caps());
    let uri = w.open("calc.py", "python", CALC);
    let long = format!("{}\nsecond line", "x".repeat(80));
    let diags = json!([diagnostic(3, "undefined name `pi`"), diagnostic(6, "not in range"), diagnostic(2, &long)]);
    let params = json!({"textDocument": {"uri": uri}, "range": range(2, 0, 3, 5), "context": {"diagnostics": diags}});
    let actions = w.lsp.request("textDocument/codeAction", params.clone()).expect("actions");
    expect![[r#"
        [
            "Quill: Edit selection…",
            "Quill: Document",
            "Quill: Generate tests",
            "Quill: Explain",
            "Quill: Fix: undefined name `pi`",
            "Quill: Fix: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…",
        ]
    "#]]
    .assert_debug_eq(&titles(&actions));
    let all = actions.as_array().expect("array");
    // Nothing was asked of the provider to list them.
    assert!(w.fake.requests().is_empty());
    // Edit selection…: the command without an instruction (the editor asks the user).
    assert_eq!(all[0]["kind"], "refactor.rewrite");
    assert_eq!(all[0]["command"]["command"], "quill.edit");
    assert_eq!(
        all[0]["command"]["arguments"][0],
        json!({"uri": uri, "range": range(2, 0, 3, 5), "intent": "edit", "version": 1}),
        "the editor adds the instruction; the version stays so a stale run is refused"
    );
    // Document: the command, with the version the range belongs to.
    assert_eq!(all[1]["command"]["arguments"][0]["version"], 1);
    assert_eq!(all[1]["command"]["arguments"][0]["intent"], "document");
    assert!(all[1].get("data").is_none() && all[1].get("edit").is_none());
    assert_eq!(all[2]["kind"], "refactor");
    assert_eq!(all[3]["kind"], "quill.explain");
    assert_eq!(all[3]["command"]["command"], "quill.explain");
    assert_eq!(all[3]["command"]["arguments"][0], json!({"uri": uri, "range": range(2, 0, 3, 5)}));
    // Fix: one per diagnostic in range, each carrying its own.
    assert_eq!(all[4]["kind"], "quickfix");
    assert_eq!(all[4]["isPreferred"], false);
    assert_eq!(all[4]["diagnostics"], json!([diags[0]]));
    assert_eq!(all[4]["command"]["arguments"][0]["diagnostics"], json!([diags[0]]));
    assert_eq!(all[4]["command"]["arguments"][0]["intent"], "fix");

    // `only` filters by kind prefix.
    let mut only = |kinds: Value| {
        let mut p = params.clone();
        p["context"]["only"] = kinds;
        titles(&w.lsp.request("textDocument/codeAction", p).expect("actions"))
    };
    assert_eq!(only(json!(["quickfix"])).len(), 2);
    assert_eq!(only(json!(["refactor"])), ["Quill: Edit selection…", "Quill: Document", "Quill: Generate tests"]);
    assert_eq!(only(json!(["refactor.rewrite"])), ["Quill: Edit selection…", "Quill: Document"]);
    assert_eq!(only(json!(["source"])), Vec::<String>::new());
}

#[test]
fn resolve_returns_a_versioned_edit_and_applies_nothing() {
    let mut w = World::always(answer(AREA_DOC), full_caps());
    let uri = w.open("calc.py", "python", CALC);
    let params = json!({"textDocument": {"uri": uri}, "range": range(2, 3, 3, 8), "context": {"diagnostics": []}});
    let actions = w.lsp.request("textDocument/codeAction", params).expect("actions");
    let document =
        actions.as_array().expect("array").iter().find(|a| a["title"] == "Quill: Document").expect("Document");
    assert!(document.get("command").is_none() && document.get("edit").is_none(), "{document:#}");
    assert_eq!(document["data"]["version"], 1);
    assert!(w.fake.requests().is_empty(), "listing called the provider");

    let resolved = w.lsp.request("codeAction/resolve", document.clone()).expect("resolve");
    let (version, edits) = document_edit(&resolved["edit"]);
    assert_eq!(version, 1);
    assert_eq!(apply_edits(CALC, &edits), CALC_DOCUMENTED);
    // Only the changed line run is rewritten.
    assert_eq!(edits.len(), 1, "{edits:#?}");
    assert!(w.applied().is_empty());
    assert_eq!(w.lsp.text(&uri), CALC);
    // The partial selection grew to whole lines; the request used `[edit]`'s budget.
    assert!(w.prompt(0).contains("The selected code, lines 3-4"), "{}", w.prompt(0));
    assert_eq!(w.fake.request(0).json()["max_tokens"], 777);

    // Stale data (the user typed since the listing) is refused.
    w.lsp.change(&uri, 2, json!([{"range": range(6, 0, 6, 0), "text": "#"}]));
    let err = w.lsp.request("codeAction/resolve", document.clone()).expect_err("stale");
    assert!(err["message"].as_str().unwrap_or("").contains("changed since this action was listed"), "{err}");
}

#[test]
fn no_provider_lists_nothing_and_no_error() {
    let mut lsp = Lsp::spawn_isolated(&[]);
    lsp.initialize(json!({"processId": null, "rootUri": null, "capabilities": {}}));
    lsp.open("file:///a.py", "python", CALC);
    let params =
        json!({"textDocument": {"uri": "file:///a.py"}, "range": range(2, 0, 4, 0), "context": {"diagnostics": []}});
    assert_eq!(lsp.request("textDocument/codeAction", params).expect("actions"), json!([]));
}

// ---------------------------------------------------------------------------------------------
// quill.edit

#[test]
fn quill_edit_applies_one_versioned_edit() {
    let mut w = World::always(answer(AREA_DOC), full_caps());
    let uri = w.open("pkg/calc.py", "python", CALC);
    let r = w.edit(json!({"uri": uri, "range": range(2, 0, 4, 0), "intent": "document"})).expect("edit");
    assert_eq!(r, json!({"applied": true}));
    let applied = w.applied();
    assert_eq!(applied.len(), 1, "one workspace edit, one undo step");
    assert_eq!(applied[0]["params"]["label"], "Quill: Document");
    let (version, edits) = document_edit(&applied[0]["params"]["edit"]);
    assert_eq!(version, 1, "the version the prompt was built from");
    assert_eq!(apply_edits(CALC, &edits), CALC_DOCUMENTED);
    // The prompt: workspace-relative path, the selection, the code around it.
    let prompt = w.prompt(0);
    assert!(prompt.contains("File: pkg/calc.py (python)"), "{prompt}");
    assert!(prompt.contains("def double(x):"), "context after the selection: {prompt}");
}

#[test]
fn quill_edit_with_an_instruction_and_a_cursor_rewrites_the_enclosing_function() {
    let answer_text = "```python\ndef double(x):\n    return x + x\n```";
    let mut w = World::always(answer(answer_text), plain_caps());
    let uri = w.open("calc.py", "python", CALC);
    // A cursor inside `double`'s body: the whole function.
    let r = w
        .edit(json!({"uri": uri, "range": range(6, 8, 6, 8), "instruction": "use addition", "intent": "edit"}))
        .expect("edit");
    assert_eq!(r, json!({"applied": true}));
    let prompt = w.prompt(0);
    assert!(prompt.contains("The selected code, lines 6-7"), "{prompt}");
    assert!(prompt.contains("Instruction: use addition"), "{prompt}");
    // No documentChanges support: `changes`, still computed after the version re-check.
    let applied = w.applied();
    let edits = applied[0]["params"]["edit"]["changes"][&uri].as_array().expect("changes").clone();
    assert_eq!(apply_edits(CALC, &edits), CALC.replace("return x * 2", "return x + x"));
}

/// A Document edit of `calc.py` in flight: returns once the provider has the request, whose
/// answer waits for the returned gate.
fn held_document_edit() -> (World, Gate, String, Value) {
    let gate = Gate::new();
    let g = gate.clone();
    let body: String = AREA_DOC.split_inclusive('\n').map(chunk).collect::<String>() + &finish("stop");
    let mut w = World::start(move |_, _| sse_head().gate(&g).bytes(body.clone()), full_caps());
    let uri = w.open("calc.py", "python", CALC);
    let id = w.lsp.send_request(
        "workspace/executeCommand",
        json!({"command": "quill.edit", "arguments": [{"uri": uri, "range": range(2, 0, 4, 0), "intent": "document"}]}),
    );
    w.wait_requests(1);
    (w, gate, uri, id)
}

#[test]
fn a_stale_edit_is_refused_and_the_typing_survives() {
    let (mut w, gate, uri, id) = held_document_edit();
    // The user types while the model answers; keystrokes still flow.
    w.lsp.change(&uri, 2, json!([{"range": range(3, 4, 3, 4), "text": "# mine\n    "}]));
    let typed = w.lsp.text(&uri);
    assert!(typed.contains("# mine"));
    gate.open();
    let err = w.lsp.response(&id).expect_err("stale edit refused");
    assert_eq!(err["code"], REQUEST_FAILED);
    assert_eq!(err["message"], "document changed, edit not applied");
    let shown = w.lsp.wait_for(|m| m["method"] == "window/showMessage");
    assert!(shown["params"]["message"].as_str().unwrap_or("").contains("document changed, edit not applied"));
    assert!(w.applied().is_empty(), "nothing sent to the editor");
    assert_eq!(w.lsp.text(&uri), typed);
}

#[test]
fn progress_begins_reports_ends_and_cancel_closes_the_provider_stream() {
    let reply = sse_head().bytes(chunk("```python\n")).bytes(chunk("def area(r):\n")).stall();
    let mut w = World::always(reply, full_caps());
    let uri = w.open("calc.py", "python", CALC);
    let id = w.lsp.send_request(
        "workspace/executeCommand",
        json!({"command": "quill.edit", "arguments": [{"uri": uri, "range": range(2, 0, 4, 0), "intent": "document"}]}),
    );
    let create = w.lsp.wait_for(|m| m["method"] == "window/workDoneProgress/create");
    let token = create["params"]["token"].clone();
    let is = |kind: &'static str| move |m: &Value| m["method"] == "$/progress" && m["params"]["value"]["kind"] == kind;
    let begin = w.lsp.wait_for(is("begin"));
    assert_eq!(begin["params"]["token"], token);
    assert_eq!(begin["params"]["value"]["title"], "Quill: Document…");
    assert_eq!(begin["params"]["value"]["cancellable"], true);
    let report = w.lsp.wait_for(is("report"));
    assert!(report["params"]["value"]["message"].as_str().unwrap_or("").ends_with("lines received"), "{report}");

    w.lsp.notify("window/workDoneProgress/cancel", json!({"token": token}));
    let err = w.lsp.response(&id).expect_err("cancelled");
    assert_eq!(err["code"], REQUEST_CANCELLED);
    assert!(w.rt.block_on(w.fake.wait_close(Duration::from_secs(10))).is_some(), "provider stream not closed");
    let end = w.lsp.wait_for(is("end"));
    assert_eq!(end["params"]["token"], token);
    assert!(w.applied().is_empty());
    assert_eq!(w.lsp.text(&uri), CALC);
}

#[test]
fn cancel_request_closes_the_provider_stream() {
    let reply = sse_head().bytes(chunk("```python\n")).stall();
    let mut w = World::always(reply, plain_caps());
    let uri = w.open("calc.py", "python", CALC);
    let id = w.lsp.send_request(
        "workspace/executeCommand",
        json!({"command": "quill.edit", "arguments": [{"uri": uri, "range": range(2, 0, 4, 0), "intent": "document"}]}),
    );
    w.wait_requests(1);
    w.lsp.notify("$/cancelRequest", json!({"id": id}));
    let err = w.lsp.response(&id).expect_err("cancelled");
    assert_eq!(err["code"], REQUEST_CANCELLED);
    assert!(w.rt.block_on(w.fake.wait_close(Duration::from_secs(10))).is_some(), "provider stream not closed");
    assert!(w.applied().is_empty());
}

#[test]
fn bad_answers_get_clear_refusals_and_fences_are_stripped() {
    let prose = "I think this function is fine as it is. It computes the area of a circle correctly.";
    let replies = [
        answer(prose),
        answer(""),
        answer("```python\n```"),
        answer("```python\ndef area(r):\n    return 3.14 * r * r\n```"),
        answer("```\ndef area(r):\n    return 3.14159 * r * r\n```"),
    ];
    let mut w = World::start(move |_, i| replies[i.min(4)].clone(), full_caps());
    let uri = w.open("calc.py", "python", CALC);
    let args = json!({"uri": uri, "range": range(2, 0, 4, 0), "intent": "edit", "instruction": "more precise pi"});
    let message = |r: Result<Value, Value>| r.expect_err("refused")["message"].as_str().unwrap_or("").to_owned();
    assert_eq!(
        message(w.edit(args.clone())),
        "the model answered in prose instead of code; the selection was left unchanged"
    );
    assert_eq!(message(w.edit(args.clone())), "the model returned no code; the selection was left unchanged");
    assert_eq!(message(w.edit(args.clone())), "the model returned no code; the selection was left unchanged");
    assert_eq!(message(w.edit(args.clone())), "the model returned the code unchanged; nothing to apply");
    assert!(w.applied().is_empty());
    assert_eq!(w.edit(args).expect("fenced answer applies"), json!({"applied": true}));
    let (_, edits) = document_edit(&w.applied()[0]["params"]["edit"]);
    assert_eq!(apply_edits(CALC, &edits), CALC.replace("3.14 *", "3.14159 *"));
}

#[test]
fn a_provider_failing_mid_stream_applies_nothing() {
    let reply = sse_head().bytes(chunk("```python\ndef area(r):\n")).cut();
    let mut w = World::always(reply, full_caps());
    let uri = w.open("calc.py", "python", CALC);
    let err = w.edit(json!({"uri": uri, "range": range(2, 0, 4, 0), "intent": "document"})).expect_err("failed");
    assert_eq!(err["code"], REQUEST_FAILED);
    let msg = err["message"].as_str().unwrap_or("");
    assert!(msg.starts_with("the provider failed; nothing was applied: "), "{msg}");
    assert!(w.applied().is_empty());
    assert_eq!(w.lsp.text(&uri), CALC);

    // An answer cut at the token limit would delete code: refused too.
    let truncated: String = chunk("```python\ndef area(r):\n") + &finish("length");
    let mut w = World::always(sse_head().bytes(truncated), full_caps());
    let uri = w.open("calc.py", "python", CALC);
    let err = w.edit(json!({"uri": uri, "range": range(2, 0, 4, 0), "intent": "document"})).expect_err("truncated");
    assert!(err["message"].as_str().unwrap_or("").contains("max_tokens = 777"), "{err}");
    assert!(w.applied().is_empty());
}

#[test]
fn bad_input_gets_clear_errors() {
    let mut w = World::always(answer(AREA_DOC), full_caps());
    let uri = w.open("calc.py", "python", CALC);
    let mut check = |args: Value, code: i64, needle: &str| {
        let err = w.lsp.request("workspace/executeCommand", json!({"command": "quill.edit", "arguments": args}));
        let err = err.expect_err(needle);
        assert_eq!(err["code"], code, "{err}");
        assert!(err["message"].as_str().unwrap_or("").contains(needle), "{err} lacks {needle}");
    };
    let ok_range = range(2, 0, 4, 0);
    check(
        json!([{"uri": "file:///nope.py", "range": ok_range, "intent": "document"}]),
        INVALID_PARAMS,
        "unknown document",
    );
    check(
        json!([{"uri": uri, "range": range(2, 0, 40, 0), "intent": "document"}]),
        INVALID_PARAMS,
        "outside the document (8 lines)",
    );
    check(json!([{"uri": uri, "range": ok_range, "intent": "rename"}]), INVALID_PARAMS, "unknown intent `rename`");
    check(json!([{"uri": uri, "range": ok_range, "intent": "explain"}]), INVALID_PARAMS, "quill.explain");
    check(json!([{"uri": uri, "range": ok_range}]), INVALID_PARAMS, "needs an `instruction`");
    check(
        json!([{"uri": uri, "range": ok_range, "intent": "edit", "instruction": "  "}]),
        INVALID_PARAMS,
        "needs an `instruction`",
    );
    check(json!([]), INVALID_PARAMS, "takes one argument");
    check(json!([{"uri": uri}]), INVALID_PARAMS, "missing field `range`");
    // Inside a surrogate pair (😀 at UTF-16 columns 9-10 of line 0).
    check(
        json!([{"uri": uri, "range": range(0, 10, 1, 0), "intent": "document"}]),
        INVALID_PARAMS,
        "inside a character",
    );
    let err = w
        .lsp
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": "file:///nope.py"}, "range": ok_range, "context": {"diagnostics": []}}),
        )
        .expect_err("unknown document");
    assert_eq!(err["code"], INVALID_PARAMS);
    assert!(w.fake.requests().is_empty(), "bad input reached the provider");
    assert!(w.applied().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Generate tests

const TESTS_ANSWER: &str = "```python\nfrom calc import area\n\ndef test_area():\n    assert area(1) == 3.14\n```";

#[test]
fn generate_tests_creates_a_new_file_and_never_overwrites_one() {
    let mut w = World::always(answer(TESTS_ANSWER), full_caps());
    let uri = w.open("calc.py", "python", CALC);
    let args = json!({"uri": uri, "range": range(2, 0, 4, 0), "intent": "tests"});
    assert_eq!(w.edit(args.clone()).expect("tests"), json!({"applied": true}));
    let edit = w.applied()[0]["params"]["edit"].clone();
    let test_uri = w.uri("test_calc.py");
    let shown = serde_json::to_string_pretty(&edit["documentChanges"]).expect("json").replace(&test_uri, "TEST_URI");
    expect![[r#"
        [
          {
            "kind": "create",
            "options": {
              "ignoreIfExists": false,
              "overwrite": false
            },
            "uri": "TEST_URI"
          },
          {
            "edits": [
              {
                "newText": "from calc import area\n\ndef test_area():\n    assert area(1) == 3.14\n",
                "range": {
                  "end": {
                    "character": 0,
                    "line": 0
                  },
                  "start": {
                    "character": 0,
                    "line": 0
                  }
                }
              }
            ],
            "textDocument": {
              "uri": "TEST_URI",
              "version": null
            }
          }
        ]"#]]
    .assert_eq(&shown);

    // The file exists on disk now: the tests are appended at its end, no CreateFile.
    let existing = "import calc\n\ndef test_old():\n    pass\n";
    std::fs::write(w.root.path().join("test_calc.py"), existing).expect("write");
    w.lsp.seen.clear();
    assert_eq!(w.edit(args.clone()).expect("tests"), json!({"applied": true}));
    let (version, edits) = document_edit(&w.applied()[0]["params"]["edit"]);
    assert_eq!(version, Value::Null);
    assert_eq!(w.applied()[0]["params"]["edit"]["documentChanges"][0]["textDocument"]["uri"], test_uri);
    assert_eq!(
        apply_edits(existing, &edits),
        format!("{existing}\nfrom calc import area\n\ndef test_area():\n    assert area(1) == 3.14\n")
    );

    // Open in the editor: appended there, with the editor's version.
    w.lsp.open(&test_uri, "python", existing);
    w.lsp.change(&test_uri, 5, json!([{"range": range(0, 0, 0, 0), "text": "# open\n"}]));
    w.lsp.seen.clear();
    w.edit(args).expect("tests");
    let (version, _) = document_edit(&w.applied()[0]["params"]["edit"]);
    assert_eq!(version, 5);
}

#[test]
fn generate_tests_without_create_support_says_so_and_rust_appends_to_the_file() {
    let rust_tests = "```rust\n#[cfg(test)]\nmod tests {\n    #[test]\n    fn one() {}\n}\n```";
    let replies = [answer(TESTS_ANSWER), answer(rust_tests)];
    let mut caps = full_caps();
    caps["workspace"]["workspaceEdit"]["resourceOperations"] = json!([]);
    let mut w = World::start(move |_, i| replies[i.min(1)].clone(), caps);
    let uri = w.open("calc.py", "python", CALC);
    let err = w.edit(json!({"uri": uri, "range": range(2, 0, 4, 0), "intent": "tests"})).expect_err("no create");
    assert!(err["message"].as_str().unwrap_or("").contains("cannot create files"), "{err}");
    assert!(!w.root.path().join("test_calc.py").exists());

    let lib = "pub fn one() -> i32 {\n    1\n}\n";
    let uri = w.open("lib.rs", "rust", lib);
    w.edit(json!({"uri": uri, "range": range(0, 0, 3, 0), "intent": "tests"})).expect("rust tests");
    let (version, edits) = document_edit(&w.applied()[0]["params"]["edit"]);
    assert_eq!(version, 1);
    assert_eq!(
        apply_edits(lib, &edits),
        format!("{lib}\n#[cfg(test)]\nmod tests {{\n    #[test]\n    fn one() {{}}\n}}\n")
    );
}

// ---------------------------------------------------------------------------------------------
// quill/edit

#[test]
fn quill_edit_preview_returns_the_edit_and_applies_nothing() {
    let mut w = World::always(answer(AREA_DOC), full_caps());
    let uri = w.open("calc.py", "python", CALC);
    let r = w
        .lsp
        .request("quill/edit", json!({"uri": uri, "range": range(2, 0, 4, 0), "intent": "document"}))
        .expect("preview");
    assert_eq!(r["version"], 1);
    let (version, edits) = document_edit(&r["edit"]);
    assert_eq!(version, 1);
    assert_eq!(apply_edits(CALC, &edits), CALC_DOCUMENTED);
    assert!(w.applied().is_empty());
    assert_eq!(w.lsp.text(&uri), CALC);
    let err = w.lsp.request("quill/edit", json!({"uri": uri})).expect_err("bad params");
    assert_eq!(err["code"], INVALID_PARAMS);
}

#[test]
fn a_client_refusal_is_reported_with_its_reason() {
    let mut w = World::always(answer(AREA_DOC), full_caps());
    w.lsp.on_request(|m| {
        (m["method"] == "workspace/applyEdit")
            .then(|| json!({"applied": false, "failureReason": "buffer is read-only"}))
    });
    let uri = w.open("calc.py", "python", CALC);
    let err = w.edit(json!({"uri": uri, "range": range(2, 0, 4, 0), "intent": "document"})).expect_err("refused");
    assert_eq!(err["message"], "the editor refused the edit: buffer is read-only");
}

// ---------------------------------------------------------------------------------------------
// Review fixes: reopened documents, shared tokens, capabilities, encodings.

#[test]
fn a_document_reopened_with_other_text_at_the_same_version_is_refused() {
    let (mut w, gate, uri, id) = held_document_edit();
    // A `git checkout` while the model answers: closed, then reopened at version 1 again.
    w.lsp.notify("textDocument/didClose", json!({"textDocument": {"uri": uri}}));
    let checked_out = CALC.replace("def area(r):\n    return 3.14 * r * r\n", "def area(r):\n    return r ** 2\n");
    w.lsp.open(&uri, "python", &checked_out);
    assert_eq!(w.lsp.document(&uri).expect("document")["version"], 1, "the same version as before");
    gate.open();
    let err = w.lsp.response(&id).expect_err("edit of the old text refused");
    assert_eq!(err["code"], REQUEST_FAILED);
    assert_eq!(err["message"], "document changed, edit not applied");
    assert!(w.applied().is_empty(), "nothing sent to the editor");
    assert_eq!(w.lsp.text(&uri), checked_out);
}

#[test]
fn a_progress_token_already_in_use_is_refused_and_the_first_edit_stays_cancellable() {
    let reply = sse_head().bytes(chunk("```python\n")).stall();
    let mut w = World::always(reply, full_caps());
    let uri = w.open("calc.py", "python", CALC);
    let token = "client-token-1";
    let args = json!({"uri": uri, "range": range(2, 0, 4, 0), "intent": "document", "workDoneToken": token});
    let first = w.lsp.send_request("quill/edit", args.clone());
    w.wait_requests(1);
    let err = w.lsp.request("quill/edit", args).expect_err("duplicate token");
    assert_eq!(err["code"], INVALID_PARAMS);
    assert!(err["message"].as_str().unwrap_or("").contains("already belongs to a running edit"), "{err}");
    assert_eq!(w.fake.requests().len(), 1, "the refused edit reached the provider");
    // The token still cancels the first edit.
    w.lsp.notify("window/workDoneProgress/cancel", json!({"token": token}));
    let err = w.lsp.response(&first).expect_err("cancelled");
    assert_eq!(err["code"], REQUEST_CANCELLED);
    assert!(w.rt.block_on(w.fake.wait_close(Duration::from_secs(10))).is_some(), "provider stream not closed");
}

#[test]
fn resolve_support_without_data_support_gets_commands() {
    let mut caps = full_caps();
    caps["textDocument"]["codeAction"] = json!({"resolveSupport": {"properties": ["edit"]}});
    let mut w = World::always(answer(AREA_DOC), caps);
    let uri = w.open("calc.py", "python", CALC);
    let params = json!({"textDocument": {"uri": uri}, "range": range(2, 0, 4, 0), "context": {"diagnostics": []}});
    let actions = w.lsp.request("textDocument/codeAction", params).expect("actions");
    let document =
        actions.as_array().expect("array").iter().find(|a| a["title"] == "Quill: Document").expect("Document");
    assert!(document.get("data").is_none(), "data sent to a client that may drop it: {document:#}");
    assert_eq!(document["command"]["command"], "quill.edit");
    assert_eq!(document["command"]["arguments"][0]["intent"], "document");
}

#[test]
fn a_last_line_without_a_line_break_and_wide_characters_is_edited_exactly() {
    // UTF-16 columns differ from bytes on the last line (é is 2 bytes/1 unit, 😀 4 bytes/2 units),
    // and the text ends without a line break: the edit's end is the end of that line.
    let text = "def greet():\n    return 'é😀'";
    let mut w = World::always(answer("```python\n    return 'é😀!'\n```"), plain_caps());
    let uri = w.open("greet.py", "python", text);
    let r = w
        .edit(json!({"uri": uri, "range": range(1, 0, 1, 16), "instruction": "add a bang", "intent": "edit"}))
        .expect("edit");
    assert_eq!(r, json!({"applied": true}));
    let edits = w.applied()[0]["params"]["edit"]["changes"][&uri].as_array().expect("changes").clone();
    assert_eq!(edits.len(), 1, "{edits:#?}");
    assert_eq!(edits[0]["range"]["end"], json!({"line": 1, "character": 16}), "UTF-16 units, not bytes");
    assert_eq!(apply_edits(text, &edits), "def greet():\n    return 'é😀!'");
}

#[test]
fn a_crlf_document_keeps_its_line_endings() {
    let text = "def f():\r\n    return 1\r\n\r\ndef g():\r\n    return 2\r\n";
    let mut w = World::always(answer("```python\ndef g():\n    # two\n    return 2\n```"), full_caps());
    let uri = w.open("crlf.py", "python", text);
    w.edit(json!({"uri": uri, "range": range(3, 0, 5, 0), "instruction": "comment", "intent": "edit"})).expect("edit");
    let (_, edits) = document_edit(&w.applied()[0]["params"]["edit"]);
    assert_eq!(apply_edits(text, &edits), "def f():\r\n    return 1\r\n\r\ndef g():\r\n    # two\r\n    return 2\r\n");
}
