//! End-to-end tests of the LSP server core: the real binary, driven over stdio by a JSON-RPC client.
//! They cover the handshake, document sync in every encoding, config layering and bad input.

mod common;

use common::{Lsp, closed_port_url, cursor, init_params, range};
use expect_test::expect;
use serde_json::{Value, json};

const URI: &str = "file:///work/main.rs";

/// `params` with a provider routed to every feature, so feature requests do not depend on the
/// machine's environment. Nothing is sent to it yet.
fn with_provider(mut params: Value) -> Value {
    params["initializationOptions"] = json!({
        "providers": {"stub": {"kind": "openai-compatible", "base_url": closed_port_url(), "model": "m"}},
        "completion": {"provider": "stub"},
    });
    params
}

/// The next `window/showMessage` of type Error (discovery may send Info or Warning ones).
fn error_message(lsp: &mut Lsp) -> Value {
    lsp.wait_for(|m| m["method"] == "window/showMessage" && m["params"]["type"] == 1)
}

#[test]
fn initialize_advertises_capabilities() {
    let (mut lsp, result) = Lsp::start(init_params(&["utf-16"]));
    let caps = serde_json::to_string_pretty(&result["capabilities"]).expect("json");
    expect![[r#"
        {
          "codeActionProvider": {
            "codeActionKinds": [
              "quickfix",
              "refactor",
              "refactor.rewrite",
              "quill.explain"
            ],
            "resolveProvider": true
          },
          "completionProvider": {
            "resolveProvider": false,
            "triggerCharacters": [
              ".",
              "(",
              "{",
              "[",
              " ",
              ":",
              "=",
              ",",
              "\n"
            ]
          },
          "executeCommandProvider": {
            "commands": [
              "quill.acceptCompletion",
              "quill.edit",
              "quill.explain"
            ]
          },
          "inlineCompletionProvider": true,
          "positionEncoding": "utf-16",
          "textDocumentSync": {
            "change": 2,
            "openClose": true
          }
        }"#]]
    .assert_eq(&caps);
    assert_eq!(result["serverInfo"]["name"], "quill");
    assert_eq!(lsp.shutdown(), Some(0));
}

#[test]
fn position_encoding_is_negotiated() {
    for (offered, chosen) in [
        (vec!["utf-16", "utf-8"], "utf-8"),
        (vec!["utf-32", "utf-16"], "utf-32"),
        (vec!["utf-16", "utf-32"], "utf-16"),
        (vec![], "utf-16"),
    ] {
        let (_lsp, result) = Lsp::start(init_params(&offered));
        assert_eq!(result["capabilities"]["positionEncoding"], chosen, "offered {offered:?}");
    }
    // No `general` capabilities at all: UTF-16.
    let (_lsp, result) = Lsp::start(json!({"capabilities": {}}));
    assert_eq!(result["capabilities"]["positionEncoding"], "utf-16");
}

/// The same logical edit, expressed in each encoding's columns, gives the same text.
#[test]
fn incremental_changes_in_every_encoding() {
    // Insert "X" right after the emoji, whose end is at column 19 in bytes, 16 in UTF-16 units and
    // 15 in scalars.
    for (enc, col) in [("utf-8", 19), ("utf-16", 16), ("utf-32", 15)] {
        let (mut lsp, _) = Lsp::start(init_params(&[enc]));
        lsp.open(URI, "rust", "fn f() {\n    let s = \"é😀\";\n}\n");
        lsp.change(URI, 2, json!([{"range": range(1, col, 1, col), "text": "X"}]));
        assert_eq!(lsp.text(URI), "fn f() {\n    let s = \"é😀X\";\n}\n", "{enc}");
        // A column inside the emoji is refused as a whole batch (except in UTF-32, where it cannot be).
        if enc != "utf-32" {
            lsp.change(URI, 3, json!([{"range": range(1, col - 1, 1, col - 1), "text": "!"}]));
            let doc = lsp.document(URI).expect("doc");
            assert_eq!(doc["version"], 2, "{enc}");
        }
    }
}

#[test]
fn document_state_tracks_edits_and_parse() {
    let (mut lsp, _) = Lsp::start(init_params(&["utf-16"]));
    let (text, (line, col)) = cursor("fn main() {\n    let x = 1$0;\n}\n");
    lsp.open(URI, "rust", &text);
    let doc = lsp.document(URI).expect("doc");
    assert_eq!(doc["parsed"], true);
    assert_eq!(doc["syntaxErrors"], 0);
    assert_eq!(doc["languageId"], "rust");

    // Delete the semicolon: a syntax error appears; put it back: it goes away.
    lsp.change(URI, 2, json!([{"range": range(line, col, line, col + 1), "text": ""}]));
    let doc = lsp.document(URI).expect("doc");
    assert!(doc["syntaxErrors"].as_u64() > Some(0), "{doc}");
    lsp.change(URI, 3, json!([{"range": range(line, col, line, col), "text": ";"}]));
    let doc = lsp.document(URI).expect("doc");
    assert_eq!((doc["version"].clone(), doc["syntaxErrors"].clone()), (json!(3), json!(0)));

    // Several changes in one notification apply in order; a full replace resets everything.
    lsp.change(
        URI,
        4,
        json!([
            {"range": range(0, 0, 0, 0), "text": "// a\n"},
            {"range": range(0, 4, 0, 4), "text": "b"},
        ]),
    );
    assert!(lsp.text(URI).starts_with("// ab\nfn main"));
    lsp.change(URI, 5, json!([{"text": "x = 1\n"}]));
    assert_eq!(lsp.text(URI), "x = 1\n");

    // Stale and duplicate versions are ignored.
    lsp.change(URI, 5, json!([{"text": "duplicate"}]));
    lsp.change(URI, 1, json!([{"text": "stale"}]));
    let doc = lsp.document(URI).expect("doc");
    assert_eq!((doc["version"].clone(), doc["text"].clone()), (json!(5), json!("x = 1\n")));

    // didClose frees the document.
    lsp.notify("textDocument/didClose", json!({"textDocument": {"uri": URI}}));
    let err = lsp.document(URI).expect_err("closed");
    assert_eq!(err["code"], -32602);
    assert!(err["message"].as_str().is_some_and(|m| m.contains("unknown document")), "{err}");
    assert_eq!(lsp.shutdown(), Some(0));
}

#[test]
fn out_of_range_positions_are_clamped() {
    let (mut lsp, _) = Lsp::start(with_provider(init_params(&["utf-16"])));
    lsp.open(URI, "rust", "ab\r\ncd\n");
    // Past the line end: clamped to before "\r\n".
    lsp.change(URI, 2, json!([{"range": range(0, 99, 0, 120), "text": "!"}]));
    assert_eq!(lsp.text(URI), "ab!\r\ncd\n");
    // Past the last line: the end of the document.
    lsp.change(URI, 3, json!([{"range": range(50, 0, 60, 9), "text": "tail"}]));
    assert_eq!(lsp.text(URI), "ab!\r\ncd\ntail");
    // A reversed range is read as its mirror image.
    lsp.change(URI, 4, json!([{"range": range(1, 2, 1, 0), "text": "CD"}]));
    assert_eq!(lsp.text(URI), "ab!\r\nCD\ntail");
    // Requests with positions far out of range are clamped too, not refused.
    let r = lsp.request(
        "textDocument/completion",
        json!({"textDocument": {"uri": URI}, "position": {"line": 1_000_000, "character": 5}}),
    );
    let r = r.expect("clamped, not refused");
    assert_eq!(r["items"], json!([]), "{r}");
}

#[test]
fn large_and_binary_documents_are_kept_unparsed() {
    let (mut lsp, _) = Lsp::start(json!({
        "capabilities": {},
        "initializationOptions": {"documents": {"max_parse_bytes": 64}},
    }));
    let big = "fn x() {}\n".repeat(10);
    lsp.open("file:///big.rs", "rust", &big);
    let doc = lsp.document("file:///big.rs").expect("doc");
    assert_eq!((doc["parsed"].clone(), doc["text"].as_str().map(str::len)), (json!(false), Some(100)));
    assert!(doc["parseStatus"].as_str().is_some_and(|s| s.contains("64-byte limit")), "{doc}");

    lsp.open("file:///bin.rs", "rust", "fn a() {}\u{0}\u{1}\u{2}");
    let doc = lsp.document("file:///bin.rs").expect("doc");
    assert_eq!(doc["parsed"], false);
    assert_eq!(doc["text"], "fn a() {}\u{0}\u{1}\u{2}");

    lsp.open("file:///notes.txt", "plaintext", "hello");
    let doc = lsp.document("file:///notes.txt").expect("doc");
    assert_eq!((doc["parsed"].clone(), doc["text"].clone()), (json!(false), json!("hello")));
}

#[test]
fn malformed_messages_get_errors_and_the_server_stays_up() {
    let (mut lsp, _) = Lsp::start(init_params(&["utf-16"]));
    lsp.open(URI, "rust", "fn a() {}\n");

    // Not JSON at all.
    let garbage = b"{\"jsonrpc\": \"2.0\", \"id\": 5, \"method\": ";
    lsp.write_raw(format!("Content-Length: {}\r\n\r\n", garbage.len()).as_bytes());
    lsp.write_raw(garbage);
    let err = lsp.wait_for(|m| m.get("error").is_some() && m["id"].is_null());
    assert_eq!(err["error"]["code"], -32700, "{err}");

    // Invalid UTF-8 inside a message body.
    let mut body = br#"{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///u.rs","languageId":"rust","version":1,"text":"a"#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe]);
    body.extend_from_slice(br#""}}}"#);
    lsp.write_raw(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    lsp.write_raw(&body);
    let err = lsp.wait_for(|m| m.get("error").is_some() && m["id"].is_null());
    assert_eq!(err["error"]["code"], -32700, "{err}");

    // A lone surrogate escape is not a valid string: the notification is dropped, not applied.
    let lone = br#"{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///s.rs","languageId":"rust","version":1,"text":"\ud800"}}}"#;
    lsp.write_raw(format!("Content-Length: {}\r\n\r\n", lone.len()).as_bytes());
    lsp.write_raw(lone);
    assert!(lsp.document("file:///s.rs").is_err());

    // Unknown methods: a request gets MethodNotFound, a notification is ignored.
    let err = lsp.request("quill/noSuchMethod", json!({})).expect_err("unknown");
    assert_eq!(err["code"], -32601);
    lsp.notify("quill/noSuchNotification", json!({"x": 1}));

    // Wrong parameter shapes.
    let err = lsp.request("quill/document", json!({"url": URI})).expect_err("bad params");
    assert_eq!(err["code"], -32602);
    let err = lsp
        .request(
            "textDocument/completion",
            json!({"textDocument": {"uri": "file:///nope.rs"}, "position": {"line": 0, "character": 0}}),
        )
        .expect_err("unknown doc");
    assert!(err["message"].as_str().is_some_and(|m| m.contains("unknown document")), "{err}");
    let err = lsp
        .request("textDocument/inlineCompletion", json!({"textDocument": {"uri": "file:///nope.rs"}, "position": {"line": 0, "character": 0}, "context": {"triggerKind": 1}}))
        .expect_err("unknown doc");
    assert_eq!(err["code"], -32602);
    lsp.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": "file:///nope.rs", "version": 2}, "contentChanges": [{"text": "x"}]}),
    );
    lsp.notify("textDocument/didChange", json!({"textDocument": {"uri": URI}}));
    let err = lsp
        .request("workspace/executeCommand", json!({"command": "quill.nothing", "arguments": []}))
        .expect_err("unknown cmd");
    assert_eq!(err["code"], -32602);

    // After all that, the document is intact and the server answers.
    assert_eq!(lsp.text(URI), "fn a() {}\n");
    assert!(lsp.is_running());
    assert_eq!(lsp.shutdown(), Some(0));
}

#[test]
fn inline_completion_answers_empty_and_code_actions_list_without_calling_the_provider() {
    let (mut lsp, _) = Lsp::start(with_provider(init_params(&["utf-16"])));
    lsp.open(URI, "rust", "fn a() {\n    \n}\n");
    let r = lsp
        .request("textDocument/inlineCompletion", json!({"textDocument": {"uri": URI}, "position": {"line": 1, "character": 4}, "context": {"triggerKind": 2}}))
        .expect("inline");
    assert_eq!(r, json!({"items": []}));
    // The stub provider is unreachable: listing must not need it (see tests/edit_lsp.rs).
    let r = lsp
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": URI}, "range": range(0, 0, 2, 1), "context": {"diagnostics": []}}),
        )
        .expect("actions");
    let titles: Vec<&str> = r.as_array().expect("list").iter().filter_map(|a| a["title"].as_str()).collect();
    assert_eq!(titles, ["Quill: Edit selection…", "Quill: Document", "Quill: Generate tests", "Quill: Explain"]);
}

#[test]
fn lifecycle_follows_the_spec() {
    // exit without shutdown: exit code 1.
    let (mut lsp, _) = Lsp::start(init_params(&[]));
    lsp.notify("exit", Value::Null);
    assert_eq!(lsp.wait_exit(), Some(1));

    // Requests after shutdown are refused; exit then gives 0.
    let (mut lsp, _) = Lsp::start(init_params(&[]));
    lsp.request("shutdown", Value::Null).expect("shutdown");
    let err = lsp.request("quill/document", json!({"uri": URI})).expect_err("after shutdown");
    assert_eq!(err["code"], -32600);
    lsp.notify("exit", Value::Null);
    assert_eq!(lsp.wait_exit(), Some(0));

    // A request before initialize is refused with ServerNotInitialized.
    let mut lsp = Lsp::spawn();
    let err = lsp.request("quill/document", json!({"uri": URI})).expect_err("before init");
    assert_eq!(err["code"], -32002);

    // End of input without exit: the process ends (code 1).
    let (mut lsp, _) = Lsp::start(init_params(&[]));
    assert_eq!(lsp.wait_exit(), Some(1));
}

/// Config layering, observed through `documents.max_parse_bytes`.
#[test]
fn config_layers_and_errors() {
    let workspace = tempfile::tempdir().expect("tempdir");
    let xdg = tempfile::tempdir().expect("tempdir");
    std::fs::write(workspace.path().join("quill.toml"), "[documents]\nmax_parse_bytes = 5\n").expect("write");
    let root = format!("file://{}", workspace.path().display());
    let parsed = |lsp: &mut Lsp, uri: &str| lsp.document(uri).expect("doc")["parsed"].as_bool();

    // The workspace file applies.
    let mut lsp = Lsp::spawn_in(Some(xdg.path()));
    lsp.initialize(json!({"capabilities": {}, "rootUri": root}));
    lsp.open("file:///a.rs", "rust", "fn a() {}");
    assert_eq!(parsed(&mut lsp, "file:///a.rs"), Some(false));
    drop(lsp);

    // The user file overrides it; initializationOptions override both.
    std::fs::create_dir_all(xdg.path().join("quill")).expect("mkdir");
    std::fs::write(xdg.path().join("quill/config.toml"), "[documents]\nmax_parse_bytes = 1000\n").expect("write");
    let mut lsp = Lsp::spawn_in(Some(xdg.path()));
    lsp.initialize(json!({"capabilities": {}, "rootUri": root}));
    lsp.open("file:///a.rs", "rust", "fn a() {}");
    assert_eq!(parsed(&mut lsp, "file:///a.rs"), Some(true));
    drop(lsp);

    let mut lsp = Lsp::spawn_in(Some(xdg.path()));
    lsp.initialize(
        json!({"capabilities": {}, "rootUri": root, "initializationOptions": {"documents": {"max_parse_bytes": 3}}}),
    );
    lsp.open("file:///a.rs", "rust", "fn a() {}");
    assert_eq!(parsed(&mut lsp, "file:///a.rs"), Some(false));

    // A valid didChangeConfiguration (VS Code style, wrapped in "quill") applies to new documents.
    lsp.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"quill": {"documents": {"max_parse_bytes": 100}}}}),
    );
    lsp.open("file:///b.rs", "rust", "fn b() {}");
    assert_eq!(parsed(&mut lsp, "file:///b.rs"), Some(true));

    // An invalid one is reported by key, and the last good config stays.
    lsp.notify(
        "workspace/didChangeConfiguration",
        json!({"settings": {"documents": {"max_parse_bytes": 1, "colour": "red"}}}),
    );
    let msg = error_message(&mut lsp);
    let text = msg["params"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("documents.colour"), "{text}");
    lsp.open("file:///c.rs", "rust", "fn c() {}");
    assert_eq!(parsed(&mut lsp, "file:///c.rs"), Some(true));

    // Routing to an undefined provider is refused, naming the key.
    lsp.notify("workspace/didChangeConfiguration", json!({"settings": {"chat": {"provider": "ghost"}}}));
    let msg = error_message(&mut lsp);
    let text = msg["params"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("chat.provider") && text.contains("ghost"), "{text}");
    assert!(lsp.is_running());
    assert_eq!(lsp.shutdown(), Some(0));
}

#[test]
fn invalid_startup_config_is_reported_and_the_server_runs() {
    let workspace = tempfile::tempdir().expect("tempdir");
    std::fs::write(workspace.path().join("quill.toml"), "[providers.x]\nkind = \"openai\"\nmodle = 3\n")
        .expect("write");
    let root = format!("file://{}", workspace.path().display());
    let mut lsp = Lsp::spawn();
    lsp.initialize(json!({"capabilities": {}, "rootUri": root}));
    let msg = error_message(&mut lsp);
    let text = msg["params"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("quill.toml") && text.contains("providers.x.modle"), "{text}");
    lsp.open(URI, "rust", "fn a() {}");
    assert_eq!(lsp.text(URI), "fn a() {}");

    // The broken file is reported once: a later valid change does not repeat it, so the next
    // message is about the next mistake.
    lsp.notify("workspace/didChangeConfiguration", json!({"settings": {"documents": {"max_parse_bytes": 100}}}));
    lsp.notify("workspace/didChangeConfiguration", json!({"settings": {"documents": {"colour": 1}}}));
    let msg = error_message(&mut lsp);
    let text = msg["params"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("documents.colour") && !text.contains("quill.toml"), "{text}");
}

/// With no provider configured, no key set and no local server, the user is told how to set one
/// up: once by message, and by every feature request instead of an empty answer.
#[test]
fn without_a_provider_features_answer_with_setup_advice_and_one_message() {
    let (ollama, llamacpp) = (closed_port_url(), closed_port_url());
    let mut lsp = Lsp::spawn_clean(None, &[("QUILL_PROBE_OLLAMA", &ollama), ("QUILL_PROBE_LLAMACPP", &llamacpp)]);
    lsp.initialize(init_params(&["utf-16"]));
    let msg = lsp.notification("window/showMessage");
    assert_eq!(msg["params"]["type"], 2, "a warning: {msg}");
    let text = msg["params"]["message"].as_str().unwrap_or_default();
    for needle in ["no AI provider", "ANTHROPIC_API_KEY", "ollama pull", "[providers.mine]", "quill check --ping"] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }

    lsp.open(URI, "rust", "fn a() {\n    \n}\n");
    let inline =
        json!({"textDocument": {"uri": URI}, "position": {"line": 1, "character": 4}, "context": {"triggerKind": 2}});
    for _ in 0..2 {
        let err = lsp.request("textDocument/inlineCompletion", inline.clone()).expect_err("no provider");
        assert_eq!(err["code"], -32803, "{err}");
        let text = err["message"].as_str().unwrap_or_default();
        assert!(text.contains("no AI provider for autocomplete") && text.contains("ANTHROPIC_API_KEY"), "{text}");
    }
    let err = lsp
        .request(
            "textDocument/completion",
            json!({"textDocument": {"uri": URI}, "position": {"line": 1, "character": 4}}),
        )
        .expect_err("no provider");
    assert_eq!(err["code"], -32803, "{err}");
    // Listing code actions stays quiet (editors ask on every cursor move); running one says why.
    let actions = lsp
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": URI}, "range": range(0, 0, 2, 1), "context": {"diagnostics": []}}),
        )
        .expect("listing needs no provider");
    assert_eq!(actions, json!([]));
    let edit = json!({"uri": URI, "range": range(0, 0, 2, 1), "intent": "document"});
    let err = lsp
        .request("workspace/executeCommand", json!({"command": "quill.edit", "arguments": [edit]}))
        .expect_err("no provider");
    assert!(err["message"].as_str().is_some_and(|m| m.contains("no AI provider for edits")), "{err}");

    // A provider configured later serves at once, without a message.
    let provider = json!({"providers": {"stub": {"kind": "openai-compatible", "base_url": ollama, "model": "m"}},
                          "edit": {"provider": "stub"}});
    lsp.notify("workspace/didChangeConfiguration", json!({"settings": provider}));
    let r = lsp.request("textDocument/inlineCompletion", inline.clone()).expect("a provider is configured");
    assert_eq!(r, json!({"items": []}));

    // Back to nothing: errors again, but the message is not repeated.
    lsp.notify("workspace/didChangeConfiguration", json!({"settings": {"documents": {"max_parse_bytes": 1000}}}));
    let err = lsp.request("textDocument/inlineCompletion", inline).expect_err("no provider again");
    assert_eq!(err["code"], -32803, "{err}");
    std::thread::sleep(std::time::Duration::from_millis(300));
    lsp.document(URI).expect("round trip");
    // The configured provider could not be reached: autocomplete says so once; discovery's
    // message is not repeated.
    let messages: Vec<&Value> = lsp.seen.iter().filter(|m| m["method"] == "window/showMessage").collect();
    let (autocomplete, others): (Vec<&Value>, Vec<&Value>) = messages
        .into_iter()
        .partition(|m| m["params"]["message"].as_str().is_some_and(|t| t.starts_with("Quill autocomplete:")));
    assert!(others.is_empty(), "only one discovery message per session: {others:#?}");
    assert!(autocomplete.len() <= 1, "one autocomplete error at most: {autocomplete:#?}");
    assert_eq!(lsp.shutdown(), Some(0));
}

/// A key in the environment is picked, and the message says which provider and why.
#[test]
fn a_key_in_the_environment_is_announced_once() {
    let secret = "sk-ant-quill-lsp-test-secret";
    let closed = closed_port_url();
    let mut lsp = Lsp::spawn_clean(
        None,
        &[("ANTHROPIC_API_KEY", secret), ("QUILL_PROBE_OLLAMA", &closed), ("QUILL_PROBE_LLAMACPP", &closed)],
    );
    lsp.initialize(init_params(&["utf-16"]));
    let msg = lsp.notification("window/showMessage");
    assert_eq!(msg["params"]["type"], 3, "info: {msg}");
    let text = msg["params"]["message"].as_str().unwrap_or_default();
    assert!(text.contains("using anthropic because ANTHROPIC_API_KEY is set"), "{text}");
    assert!(text.contains("completion: claude-haiku-4-5"), "{text}");
    assert!(!text.contains(secret), "{text}");
    lsp.open(URI, "rust", "fn a() {}\n");
    let r = lsp
        .request("textDocument/inlineCompletion", json!({"textDocument": {"uri": URI}, "position": {"line": 0, "character": 0}, "context": {"triggerKind": 2}}))
        .expect("served");
    assert_eq!(r, json!({"items": []}));
    assert_eq!(lsp.shutdown(), Some(0));
    assert!(lsp.seen.iter().all(|m| m["method"] != "window/showMessage"), "{:#?}", lsp.seen);
}

/// A local server started after the editor is found on a later request, without a restart.
#[test]
fn a_local_server_started_later_is_found_without_a_restart() {
    let ollama = closed_port_url();
    let closed = closed_port_url();
    let mut lsp = Lsp::spawn_clean(
        None,
        &[("QUILL_PROBE_OLLAMA", &ollama), ("QUILL_PROBE_LLAMACPP", &closed), ("QUILL_RECHECK_MS", "0")],
    );
    lsp.initialize(init_params(&["utf-16"]));
    let msg = lsp.notification("window/showMessage");
    assert_eq!(msg["params"]["type"], 2, "{msg}");
    lsp.open(URI, "rust", "fn a() {}\n");
    let inline =
        json!({"textDocument": {"uri": URI}, "position": {"line": 0, "character": 0}, "context": {"triggerKind": 2}});
    lsp.request("textDocument/inlineCompletion", inline.clone()).expect_err("nothing yet");

    // "Start Ollama" on the probed port.
    let port = ollama.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).expect("port");
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind the probed port");
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let body = r#"{"models":[{"name":"qwen2.5-coder:1.5b-base"},{"name":"llama3.2:3b"}]}"#;
        for mut sock in listener.incoming().flatten() {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && sock.read(&mut byte).is_ok_and(|n| n == 1) {
                head.push(byte[0]);
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(reply.as_bytes());
        }
    });

    let r = lsp.request("textDocument/inlineCompletion", inline).expect("found on this request");
    assert_eq!(r, json!({"items": []}));
    let msg = lsp.notification("window/showMessage");
    assert_eq!(msg["params"]["type"], 3, "{msg}");
    let text = msg["params"]["message"].as_str().unwrap_or_default();
    assert!(text.contains(&format!("using ollama because Ollama answers at {ollama}")), "{text}");
    assert!(text.contains("completion: qwen2.5-coder:1.5b-base, chat: llama3.2:3b"), "{text}");
}

#[test]
fn quill_requests_may_leave_params_out() {
    // JSON-RPC allows a request without `params`; tower-lsp-server would refuse it for a method
    // registered with a parameter, so the transport supplies `null`.
    let (mut lsp, _) = Lsp::start(init_params(&[]));
    for (id, method) in [(900, "quill/chat/list"), (901, "quill/models")] {
        lsp.send(&json!({"jsonrpc": "2.0", "id": id, "method": method}));
        let r = lsp.response(&json!(id));
        assert!(r.is_ok(), "{method}: {r:?}");
    }
}
