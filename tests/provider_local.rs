//! The self-hosted kinds against fake servers: `ollama` (native NDJSON `/api/generate` and
//! `/api/chat`) and `llamacpp` (`/infill`, `/completion`, the 501 fallback, `/v1/chat/completions`):
//! wire transcripts, the requests as sent, failures, cancellation, and that a key never leaks.

mod fake;

use bytes::Bytes;
use fake::{
    Fake, Recorded, Reply, assert_drop_closes, assert_idle_timeout, chat_err, complete_err, drain, short_timeouts,
    shown,
};
use quill::{
    config::{CompletionMode, CustomFimTemplate, Feature, FimTemplateConfig, ProviderConfig, ProviderKind},
    provider::{
        ChatRequest, CompletionRequest, ErrorKind, Event, Finish, Message, Op, Provider, Role, Snippet, StopReason,
        TimeoutPhase, Usage, env_from, parse_recorded,
    },
};
use serde_json::json;

const OLLAMA_MODEL: &str = "qwen2.5-coder:1.5b-base";

/// The §9.1 generate transcript, byte for byte.
const GENERATE: &str = "{\"model\":\"qwen2.5-coder:1.5b-base\",\"created_at\":\"2025-01-01T00:00:00Z\",\"response\":\"y = x\",\"done\":false}\n\
{\"model\":\"qwen2.5-coder:1.5b-base\",\"created_at\":\"2025-01-01T00:00:00Z\",\"response\":\"\",\"done\":true,\"done_reason\":\"stop\",\"total_duration\":1162761250,\"load_duration\":6683708,\"prompt_eval_count\":17,\"prompt_eval_duration\":201222000,\"eval_count\":63,\"eval_duration\":953997000}\n";

fn gen_line(text: &str) -> String {
    format!("{}\n", json!({"model":OLLAMA_MODEL,"created_at":"2025-01-01T00:00:00Z","response":text,"done":false}))
}

fn chat_line(text: &str) -> String {
    format!(
        "{}\n",
        json!({"model":OLLAMA_MODEL,"created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":text},"done":false})
    )
}

fn chat_done(reason: &str) -> String {
    format!(
        "{}\n",
        json!({"model":OLLAMA_MODEL,"created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":""},
               "done":true,"done_reason":reason,"total_duration":5,"prompt_eval_count":30,"eval_count":4})
    )
}

fn ndjson(chunks: &[&str]) -> Reply {
    Reply::stream("application/x-ndjson", chunks)
}

fn ollama(fake: &Fake, tweak: impl FnOnce(&mut ProviderConfig)) -> Provider {
    ollama_with(fake, OLLAMA_MODEL, &[], tweak)
}

fn ollama_with(fake: &Fake, model: &str, env: &[(&str, &str)], tweak: impl FnOnce(&mut ProviderConfig)) -> Provider {
    let mut cfg = ProviderConfig::new(ProviderKind::Ollama);
    cfg.base_url = Some(fake.url.clone());
    tweak(&mut cfg);
    Provider::build("local", &cfg, Some(model.into()), env_from(env)).expect("provider builds")
}

fn llama(fake: &Fake, tweak: impl FnOnce(&mut ProviderConfig)) -> Provider {
    llama_with(fake, &[], tweak)
}

fn llama_with(fake: &Fake, env: &[(&str, &str)], tweak: impl FnOnce(&mut ProviderConfig)) -> Provider {
    let mut cfg = ProviderConfig::new(ProviderKind::Llamacpp);
    cfg.base_url = Some(fake.url.clone());
    tweak(&mut cfg);
    Provider::build("llama", &cfg, None, env_from(env)).expect("provider builds")
}

/// The §9.1 request.
fn completion_req() -> CompletionRequest {
    CompletionRequest {
        prefix: "def f(x):\n    ".into(),
        suffix: "\n    return y".into(),
        path: Some("f.py".into()),
        language: Some("python".into()),
        snippets: vec![Snippet { path: "util.py".into(), text: "def g():\n    pass\n".into() }],
        stop: vec!["\n\n".into()],
        max_tokens: 128,
        temperature: 0.2,
    }
}

fn chat_req() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::new(Role::System, "Be terse."), Message::new(Role::User, "Write f.")],
        prefill: None,
        stop: vec!["\n\n".into()],
        max_tokens: 100,
        temperature: 0.2,
    }
}

fn paths(fake: &Fake) -> Vec<String> {
    fake.requests().iter().map(|r: &Recorded| r.path.clone()).collect()
}

// ---------------------------------------------------------------- Ollama

#[tokio::test(flavor = "multi_thread")]
async fn ollama_generate_streams_the_reference_lines_and_sends_the_suffix() {
    fake::capture_traces();
    // Split mid-line, and a UTF-8 character across chunks.
    let body = format!("{}{GENERATE}", gen_line("é"));
    let fake = Fake::always(Reply::chunked("application/x-ndjson", &body, &[5, 60, 1, 90, 7])).await;
    let p = ollama(&fake, |_| {});
    let (deltas, fin, err) = drain(p.complete(&completion_req()).await.expect("opens")).await;
    assert_eq!(err, None);
    assert_eq!(deltas.concat(), "éy = x");
    let usage = Usage { input_tokens: Some(17), output_tokens: Some(63) };
    assert_eq!(fin, Some(Finish { stop_reason: StopReason::EndTurn, usage }));

    let r = fake.request(0);
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/api/generate"));
    assert_eq!(r.header("authorization"), None, "no key, no auth header");
    assert_eq!(
        r.json(),
        json!({
            "model": OLLAMA_MODEL, "prompt": "def f(x):\n    ", "suffix": "\n    return y",
            "stream": true, "raw": false,
            "options": {"num_predict": 128, "temperature": 0.2, "stop": ["\n\n"]},
            "keep_alive": "5m",
        })
    );
}

#[test]
fn ollama_every_split_of_the_reference_lines_parses_the_same() {
    let bytes = GENERATE.as_bytes();
    let usage = Usage { input_tokens: Some(17), output_tokens: Some(63) };
    let want = ("y = x".to_owned(), Finish { stop_reason: StopReason::EndTurn, usage });
    let each: Vec<Bytes> = bytes.iter().map(|b| Bytes::copy_from_slice(&[*b])).collect();
    assert_eq!(parse_recorded(ProviderKind::Ollama, Op::Complete, each).expect("parses"), want);
    // Each parse builds an HTTP client, so not every offset.
    let newline = GENERATE.find('\n').expect("two lines");
    for cut in (0..=bytes.len()).step_by(47).chain([newline, newline + 1]) {
        let chunks = vec![Bytes::copy_from_slice(&bytes[..cut]), Bytes::copy_from_slice(&bytes[cut..])];
        assert_eq!(parse_recorded(ProviderKind::Ollama, Op::Complete, chunks).expect("parses"), want, "split at {cut}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ollama_chat_continues_the_prefill_and_ignores_thinking() {
    fake::capture_traces();
    let thinking = format!(
        "{}\n",
        json!({"model":OLLAMA_MODEL,"created_at":"x","message":{"role":"assistant","content":"","thinking":"hmm"},"done":false})
    );
    let body = format!("{thinking}{}{}{}", chat_line("  return x\n"), chat_line("日本"), chat_done("length"));
    let fake = Fake::always(Reply::chunked("application/x-ndjson", &body, &[40, 3])).await;
    let p = ollama(&fake, |_| {});
    let req = ChatRequest { prefill: Some("def f(x):\n".into()), ..chat_req() };
    let (text, fin) = p.chat(&req, Feature::Chat).await.expect("opens").text().await.expect("completes");
    assert_eq!(text, "  return x\n日本");
    assert_eq!(
        fin,
        Finish { stop_reason: StopReason::MaxTokens, usage: Usage { input_tokens: Some(30), output_tokens: Some(4) } }
    );
    let r = fake.request(0);
    assert_eq!(r.path, "/api/chat");
    assert_eq!(
        r.json(),
        json!({
            "model": OLLAMA_MODEL,
            "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "Write f."},
                {"role": "assistant", "content": "def f(x):\n"},
            ],
            "stream": true,
            "options": {"num_predict": 100, "temperature": 0.2, "stop": ["\n\n"]},
            "keep_alive": "5m",
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ollama_template_mode_sends_a_raw_prompt_and_strips_leaked_tokens() {
    fake::capture_traces();
    let fake =
        Fake::always(ndjson(&[&gen_line("y = x * 2"), &gen_line("<EOT>"), &gen_line("junk"), &chat_done("stop")]))
            .await;
    let tweak = |c: &mut ProviderConfig| {
        c.completion_mode = CompletionMode::Template;
        c.fim_template = Some(FimTemplateConfig::Custom(CustomFimTemplate {
            template: "<PRE> {prefix} <SUF>{suffix} <MID>".into(),
            stop: vec!["<EOT>".into()],
        }));
    };
    let p = ollama(&fake, tweak);
    let (deltas, fin, err) = drain(p.complete(&completion_req()).await.expect("opens")).await;
    assert_eq!(err, None);
    assert_eq!(deltas.concat(), "y = x * 2", "the answer ends at the leaked stop token");
    assert!(fin.is_some());
    let body = fake.request(0).json();
    assert_eq!(body["raw"], true);
    assert_eq!(body["prompt"], "<PRE> def f(x):\n     <SUF>\n    return y <MID>");
    assert_eq!(body.get("suffix"), None);
    assert_eq!(body["options"]["stop"], json!(["\n\n", "<EOT>"]));

    // Prompt mode: the prefix alone, raw.
    let fake = Fake::always(ndjson(&[GENERATE])).await;
    let p = ollama(&fake, |c| c.completion_mode = CompletionMode::Prompt);
    p.complete(&completion_req()).await.expect("opens").text().await.expect("completes");
    let body = fake.request(0).json();
    assert_eq!(
        (body["prompt"].as_str(), body["raw"].as_bool(), body.get("suffix")),
        (Some("def f(x):\n    "), Some(true), None)
    );

    // Chat mode: /api/chat, with `<fill>` prefilled as the last assistant message.
    let fake = Fake::always(ndjson(&[&chat_line("y = x"), &chat_line("</fill>"), &chat_done("stop")])).await;
    let p = ollama(&fake, |c| c.completion_mode = CompletionMode::Chat);
    let (text, _) = p.complete(&completion_req()).await.expect("opens").text().await.expect("completes");
    assert_eq!(text, "y = x");
    let r = fake.request(0);
    assert_eq!(r.path, "/api/chat");
    let msgs = r.json()["messages"].as_array().cloned().expect("messages");
    assert_eq!(msgs.last().map(|m| m["role"].clone()), Some(json!("assistant")));
}

#[test]
fn ollama_settings_are_checked_when_built() {
    let mut cfg = ProviderConfig::new(ProviderKind::Ollama);
    let e = Provider::build("local", &cfg, None, env_from(&[])).expect_err("no model");
    assert!(e.to_string().contains("providers.local.model"), "{e}");
    cfg.completion_mode = CompletionMode::Infill;
    let e = Provider::build("local", &cfg, Some(OLLAMA_MODEL.into()), env_from(&[])).expect_err("no infill");
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.to_string().contains("`infill` is not available for kind `ollama`"), "{e}");
    // Built without a key and without reading $OLLAMA_HOST.
    let cfg = ProviderConfig::new(ProviderKind::Ollama);
    Provider::build("local", &cfg, Some(OLLAMA_MODEL.into()), env_from(&[("OLLAMA_HOST", "http://10.9.9.9:1")]))
        .expect("builds");
}

#[tokio::test(flavor = "multi_thread")]
async fn ollama_an_error_line_mid_stream_is_an_error_not_text() {
    fake::capture_traces();
    let fake = Fake::always(
        ndjson(&[&gen_line("y =")])
            .delay(20)
            .bytes("{\"error\":\"an error was encountered while running the model: unexpected EOF\"}\n"),
    )
    .await;
    let p = ollama(&fake, |_| {});
    let (deltas, fin, err) = drain(p.complete(&completion_req()).await.expect("opens")).await;
    assert_eq!((deltas, fin), (vec!["y =".to_owned()], None));
    let e = err.expect("an error");
    assert_eq!(e.kind, ErrorKind::InStream);
    assert!(e.detail.contains("unexpected EOF"), "{}", e.detail);
    assert_eq!(fake.requests().len(), 1);

    // Chat lines too; and a line that is not JSON.
    let e = parse_recorded(
        ProviderKind::Ollama,
        Op::Chat,
        vec![Bytes::from(format!("{}{{\"error\":\"boom\"}}\n", chat_line("a")))],
    )
    .expect_err("error line");
    assert_eq!((e.kind, e.detail.as_str()), (ErrorKind::InStream, "boom"));
    let e = parse_recorded(ProviderKind::Ollama, Op::Complete, vec![Bytes::from_static(b"data: {\"x\":1}\n")])
        .expect_err("not NDJSON");
    assert_eq!(e.kind, ErrorKind::Malformed);
}

#[tokio::test(flavor = "multi_thread")]
async fn ollama_http_errors_name_the_cause() {
    fake::capture_traces();
    let fake = Fake::always(Reply::json(
        404,
        r#"{"error":"model 'qwen2.5-coder:1.5b-base' not found, try pulling it first"}"#,
    ))
    .await;
    let p = ollama(&fake, |_| {});
    let e = complete_err(&p, &completion_req()).await;
    assert_eq!(e.kind, ErrorKind::NotFound { status: 404, model: Some(OLLAMA_MODEL.into()) });
    assert!(e.to_string().contains("try pulling it first"), "{e}");

    let fake = Fake::always(Reply::json(
        400,
        r#"{"error":"registry.ollama.ai/library/llama3.2:latest does not support insert"}"#,
    ))
    .await;
    let p = ollama(&fake, |_| {});
    let e = complete_err(&p, &completion_req()).await;
    assert_eq!(e.kind, ErrorKind::Unsupported);
    let text = e.to_string();
    assert!(text.contains("does not support insert") && text.contains("completion_mode"), "{text}");
    assert!(text.contains("\"template\"") && text.contains("\"chat\""), "{text}");

    let busy = Reply::json(503, r#"{"error":"server busy, please try again.  maximum pending requests exceeded"}"#);
    let fake = Fake::always(busy.clone()).await;
    let p = ollama(&fake, |_| {});
    let e = complete_err(&p, &completion_req()).await;
    assert_eq!(e.kind, ErrorKind::Overloaded { status: 503 });
    assert!(e.to_string().contains("server busy"), "{e}");
    assert_eq!(fake.requests().len(), 1, "autocomplete never retries");
    let done = chat_done("stop");
    let fake = Fake::start(move |_, i| if i == 0 { busy.clone() } else { ndjson(&[&chat_line("ok"), &done]) }).await;
    let p = ollama(&fake, |_| {});
    let (text, _) = p.chat(&chat_req(), Feature::Chat).await.expect("retried").text().await.expect("completes");
    assert_eq!((text.as_str(), fake.requests().len()), ("ok", 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn ollama_sends_a_bearer_only_when_a_key_is_configured() {
    fake::capture_traces();
    let key = fake::fake_key("proxy");
    let fake = Fake::always(ndjson(&[GENERATE])).await;
    let p = ollama_with(&fake, OLLAMA_MODEL, &[("OLLAMA_PROXY_KEY", &key)], |c| {
        c.api_key_env = Some("OLLAMA_PROXY_KEY".into())
    });
    p.complete(&completion_req()).await.expect("opens").text().await.expect("completes");
    assert_eq!(fake.request(0).header("authorization"), Some(format!("Bearer {key}").as_str()));

    // A key in the environment is not sent unless configured.
    let fake = Fake::always(ndjson(&[GENERATE])).await;
    let p = ollama_with(&fake, OLLAMA_MODEL, &[("OLLAMA_PROXY_KEY", &key)], |_| {});
    p.chat(&chat_req(), Feature::Chat).await.expect("opens");
    assert_eq!(fake.request(0).header("authorization"), None);

    let fake = Fake::always(Reply::json(401, &format!(r#"{{"error":"unauthorized: bad token {key}"}}"#))).await;
    let p = ollama_with(&fake, OLLAMA_MODEL, &[("OLLAMA_PROXY_KEY", &key)], |c| {
        c.api_key_env = Some("OLLAMA_PROXY_KEY".into())
    });
    let e = chat_err(&p, &chat_req(), Feature::Chat).await;
    assert_eq!(e.kind, ErrorKind::Auth { status: 401, env: Some("OLLAMA_PROXY_KEY".into()) });
    assert!(e.to_string().contains("$OLLAMA_PROXY_KEY"), "{e}");
    fake::assert_secret_absent(&key, &[shown(&e), vec![format!("{p:?}")]].concat());
}

#[tokio::test(flavor = "multi_thread")]
async fn ollama_eof_without_done_is_incomplete() {
    fake::capture_traces();
    let fake = Fake::always(ndjson(&[&gen_line("y = "), &gen_line("x")])).await;
    let p = ollama(&fake, |_| {});
    let (deltas, fin, err) = drain(p.complete(&completion_req()).await.expect("opens")).await;
    assert_eq!((deltas.concat(), fin), ("y = x".to_owned(), None));
    assert_eq!(err.expect("an error").kind, ErrorKind::Incomplete { received: 5 });
}

// ---------------------------------------------------------------- llama.cpp

/// Lines as a real llama-server build sends them from `/completion` (trimmed settings).
fn native(content: &str) -> String {
    format!(
        "data: {}\n\n",
        json!({"index":0,"content":content,"tokens":[3725],"stop":false,"id_slot":-1,"tokens_predicted":1,"tokens_evaluated":8})
    )
}

fn native_stop(stop_type: &str) -> String {
    format!(
        "data: {}\n\n",
        json!({"index":0,"content":"","tokens":[],"id_slot":1,"stop":true,"model":"SmolLM2","tokens_predicted":16,
               "tokens_evaluated":8,"generation_settings":{"n_predict":16},"prompt":"def f(x):","has_new_line":true,
               "truncated":false,"stop_type":stop_type,"stopping_word":"","tokens_cached":23,"timings":{"predicted_n":16}})
    )
}

const NO_INFILL: &str = r#"{"error":{"code":501,"message":"Infill is not supported by this model: prefix token is missing. suffix token is missing. middle token is missing. ","type":"not_supported_error"}}"#;

#[tokio::test(flavor = "multi_thread")]
async fn llamacpp_infill_sends_prefix_suffix_and_snippets() {
    fake::capture_traces();
    let body = format!("{}{}{}", native("```"), native(" return x\n  é"), native_stop("limit"));
    let fake = Fake::always(Reply::chunked("text/event-stream", &body, &[11, 1, 200, 3])).await;
    let p = llama(&fake, |_| {});
    let (deltas, fin, err) = drain(p.complete(&completion_req()).await.expect("opens")).await;
    assert_eq!(err, None);
    assert_eq!(deltas.concat(), "``` return x\n  é");
    let usage = Usage { input_tokens: Some(8), output_tokens: Some(16) };
    assert_eq!(fin, Some(Finish { stop_reason: StopReason::MaxTokens, usage }));
    let r = fake.request(0);
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/infill"));
    assert_eq!(r.header("authorization"), None);
    assert_eq!(
        r.json(),
        json!({
            "input_prefix": "def f(x):\n    ", "input_suffix": "\n    return y",
            "input_extra": [{"filename": "util.py", "text": "def g():\n    pass\n"}],
            "prompt": "", "n_predict": 128, "temperature": 0.2, "stop": ["\n\n"],
            "stream": true, "cache_prompt": true,
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn llamacpp_without_fim_tokens_falls_back_to_plain_prompts_once_and_for_all() {
    fake::capture_traces();
    let ok = format!("{}{}", native(" return x"), native_stop("eos"));
    let fake =
        Fake::start(move |r, _| if r.path == "/infill" { Reply::json(501, NO_INFILL) } else { Reply::sse(&[&ok]) })
            .await;
    let p = llama(&fake, |_| {});
    let (text, fin) = p.complete(&completion_req()).await.expect("falls back").text().await.expect("completes");
    assert_eq!((text.as_str(), fin.stop_reason), (" return x", StopReason::EndTurn));
    assert_eq!(paths(&fake), ["/infill", "/completion"]);
    assert_eq!(
        fake.request(1).json(),
        json!({"prompt": "def f(x):\n    ", "n_predict": 128, "temperature": 0.2, "stop": ["\n\n"], "stream": true, "cache_prompt": true})
    );
    // Later requests go straight to /completion, also from clones of the provider.
    let q = p.clone();
    q.complete(&completion_req()).await.expect("opens").text().await.expect("completes");
    p.complete(&completion_req()).await.expect("opens").text().await.expect("completes");
    assert_eq!(paths(&fake), ["/infill", "/completion", "/completion", "/completion"]);

    // With `infill` asked for explicitly, the refusal is the answer.
    let fake = Fake::always(Reply::json(501, NO_INFILL)).await;
    let p = llama(&fake, |c| c.completion_mode = CompletionMode::Infill);
    let e = complete_err(&p, &completion_req()).await;
    assert_eq!(e.kind, ErrorKind::Unsupported);
    let text = e.to_string();
    assert!(text.contains("prefix token is missing") && text.contains("completion_mode"), "{text}");
    assert_eq!(paths(&fake), ["/infill"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn llamacpp_template_and_prompt_modes_use_completion() {
    fake::capture_traces();
    let body = format!("{}{}{}", native("y = x"), native("<|endoftext|>"), native_stop("word"));
    let fake = Fake::always(Reply::sse(&[&body])).await;
    let p = llama(&fake, |c| {
        c.completion_mode = CompletionMode::Template;
        c.fim_template = Some(FimTemplateConfig::Family("qwen".into()));
    });
    let (text, fin) = p.complete(&completion_req()).await.expect("opens").text().await.expect("completes");
    assert_eq!(text, "y = x");
    assert_eq!(fin.stop_reason, StopReason::StopSequence);
    let r = fake.request(0);
    assert_eq!(r.path, "/completion");
    let b = r.json();
    let prompt = b["prompt"].as_str().expect("prompt");
    assert!(prompt.contains("<|fim_prefix|>") && prompt.ends_with("<|fim_middle|>"), "{prompt}");
    assert!(
        b["stop"].as_array().is_some_and(|s| s.contains(&json!("\n\n")) && s.contains(&json!("<|endoftext|>"))),
        "{b}"
    );
    assert_eq!(b.get("input_prefix"), None);

    let fake = Fake::always(Reply::sse(&[&native_stop("eos")])).await;
    let p = llama(&fake, |c| c.completion_mode = CompletionMode::Prompt);
    p.complete(&completion_req()).await.expect("opens").text().await.expect("completes");
    assert_eq!(
        (fake.request(0).path.as_str(), fake.request(0).json()["prompt"].as_str()),
        ("/completion", Some("def f(x):\n    "))
    );

    let mut cfg = ProviderConfig::new(ProviderKind::Llamacpp);
    cfg.completion_mode = CompletionMode::Suffix;
    let e = Provider::build("llama", &cfg, None, env_from(&[])).expect_err("no suffix");
    assert!(e.to_string().contains("`suffix` is not available for kind `llamacpp`"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn llamacpp_chat_speaks_the_openai_wire() {
    fake::capture_traces();
    let body = "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"finish_reason\":null}],\"object\":\"chat.completion.chunk\"}\n\n\
                data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"object\":\"chat.completion.chunk\"}\n\n\
                data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1,\"total_tokens\":10}}\n\n\
                data: [DONE]\n\n";
    let fake = Fake::always(Reply::sse(&[body])).await;
    let p = llama(&fake, |_| {});
    let (text, fin) = p.chat(&chat_req(), Feature::Chat).await.expect("opens").text().await.expect("completes");
    assert_eq!(text, "Hi");
    assert_eq!(fin.usage, Usage { input_tokens: Some(9), output_tokens: Some(1) });
    let r = fake.request(0);
    assert_eq!(r.path, "/v1/chat/completions");
    let b = r.json();
    assert_eq!(b["messages"][1], json!({"role": "user", "content": "Write f."}));
    assert_eq!((b["stream"].as_bool(), b.get("model")), (Some(true), None));
}

#[tokio::test(flavor = "multi_thread")]
async fn llamacpp_errors_inside_the_stream_are_errors_not_text() {
    fake::capture_traces();
    // Older builds: an `error:` field line.
    let fake = Fake::always(
        Reply::sse(&[&native("so")])
            .delay(20)
            .bytes("error: {\"code\":500,\"message\":\"llama_decode failed\",\"type\":\"server_error\"}\n\n"),
    )
    .await;
    let p = llama(&fake, |c| c.completion_mode = CompletionMode::Prompt);
    let (deltas, fin, err) = drain(p.complete(&completion_req()).await.expect("opens")).await;
    assert_eq!((deltas, fin), (vec!["so".to_owned()], None));
    let e = err.expect("an error");
    assert_eq!(e.kind, ErrorKind::InStream);
    assert!(e.detail.contains("llama_decode failed"), "{}", e.detail);

    // Newer builds: `data: {"error":…}`.
    let body = format!(
        "{}data: {{\"error\":{{\"code\":503,\"message\":\"Loading model\",\"type\":\"unavailable_error\"}}}}\n\n",
        native("a")
    );
    let e = parse_recorded(ProviderKind::Llamacpp, Op::Complete, vec![Bytes::from(body)]).expect_err("error object");
    assert_eq!(e.kind, ErrorKind::Overloaded { status: 503 });
    assert!(e.detail.contains("Loading model"), "{}", e.detail);
    let e = parse_recorded(ProviderKind::Llamacpp, Op::Complete, vec![Bytes::from_static(b"data: {\"content\":\n\n")])
        .expect_err("malformed");
    assert_eq!(e.kind, ErrorKind::Malformed);
}

#[test]
fn llamacpp_stop_types_map_into_the_common_vocabulary() {
    for (wire, want) in [
        ("eos", StopReason::EndTurn),
        ("limit", StopReason::MaxTokens),
        ("word", StopReason::StopSequence),
        ("none", StopReason::Other("none".into())),
    ] {
        let body = format!("{}{}", native("x"), native_stop(wire));
        let (text, fin) =
            parse_recorded(ProviderKind::Llamacpp, Op::Complete, vec![Bytes::from(body)]).expect("parses");
        assert_eq!((text.as_str(), fin.stop_reason), ("x", want), "{wire}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn llamacpp_cut_and_eof_without_stop_are_incomplete() {
    fake::capture_traces();
    let fake = Fake::always(Reply::sse(&[&native("Hello, ")]).delay(20).cut()).await;
    let p = llama(&fake, |_| {});
    let (deltas, fin, err) = drain(p.complete(&completion_req()).await.expect("opens")).await;
    assert_eq!((deltas.concat(), fin), ("Hello, ".to_owned(), None));
    assert_eq!(err.expect("an error").kind, ErrorKind::Incomplete { received: 7 });
    assert_eq!(fake.requests().len(), 1);

    let e = parse_recorded(ProviderKind::Llamacpp, Op::Complete, vec![Bytes::from(native("Hi"))]).expect_err("no stop");
    assert_eq!(e.kind, ErrorKind::Incomplete { received: 2 });
}

#[tokio::test(flavor = "multi_thread")]
async fn llamacpp_a_stalled_server_times_out() {
    fake::capture_traces();
    let fake = Fake::always(Reply::sse(&[&native("so")]).stall()).await;
    let p = llama(&fake, short_timeouts);
    assert_idle_timeout(p.complete(&completion_req()), "so").await;

    let fake = Fake::always(Reply::silent()).await;
    let p = ollama(&fake, short_timeouts);
    let e = complete_err(&p, &completion_req()).await;
    assert!(matches!(e.kind, ErrorKind::Timeout { phase: TimeoutPhase::FirstByte, .. }), "{e:?}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_a_stream_closes_the_connection_at_once() {
    fake::capture_traces();
    for kind in [ProviderKind::Llamacpp, ProviderKind::Ollama] {
        let first = if kind == ProviderKind::Llamacpp { native("first") } else { gen_line("first") };
        let fake = Fake::always(Reply::sse(&[&first]).delay(5_000).bytes(&first)).await;
        let p = if kind == ProviderKind::Llamacpp { llama(&fake, |_| {}) } else { ollama(&fake, |_| {}) };
        let mut s = p.complete(&completion_req()).await.expect("opens");
        assert_eq!(s.next().await.map(|e| e.expect("text")), Some(Event::Delta("first".into())));
        assert_drop_closes(&fake, s, &format!("{kind:?}")).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn llamacpp_sends_a_bearer_only_with_a_key_and_never_shows_it() {
    fake::capture_traces();
    let key = fake::fake_key("llama");
    let env = [("LLAMA_API_KEY", key.as_str())];
    let fake = Fake::always(Reply::sse(&[&native_stop("eos")])).await;
    let p = llama_with(&fake, &env, |c| c.api_key_env = Some("LLAMA_API_KEY".into()));
    p.complete(&completion_req()).await.expect("opens").text().await.expect("completes");
    assert_eq!(fake.request(0).header("authorization"), Some(format!("Bearer {key}").as_str()));

    let fake = Fake::always(Reply::json(
        401,
        r#"{"error":{"code":401,"message":"Invalid API Key","type":"authentication_error"}}"#,
    ))
    .await;
    let p = llama_with(&fake, &env, |c| c.api_key_env = Some("LLAMA_API_KEY".into()));
    let e = complete_err(&p, &completion_req()).await;
    assert_eq!(e.kind, ErrorKind::Auth { status: 401, env: Some("LLAMA_API_KEY".into()) });
    assert!(e.to_string().contains("$LLAMA_API_KEY") && e.to_string().contains("Invalid API Key"), "{e}");
    assert_eq!(fake.requests().len(), 1);
    fake::assert_secret_absent(&key, &[shown(&e), vec![format!("{p:?}")]].concat());
}
