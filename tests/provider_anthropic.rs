//! The `anthropic` provider against a fake Messages API: wire transcripts, the request as sent,
//! every failure class, retries, timeouts, cancellation, and that the key never leaks.

mod fake;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::Bytes;
use fake::{
    Fake, Reply, assert_drop_closes, assert_idle_timeout, chat_err, complete_err, drain, rust_completion_req,
    short_timeouts, shown,
};
use quill::{
    config::{CompletionMode, Feature, ProviderConfig, ProviderKind},
    provider::{
        ChatRequest, CompletionRequest, ErrorKind, Event, Finish, Message, Op, Provider, Role, StopReason,
        TimeoutPhase, Usage, env_from, parse_recorded,
    },
};

const MODEL: &str = "claude-3-5-haiku-latest";

/// The §2 transcript of the wire reference, byte for byte (note the space in the ping data).
const TRANSCRIPT: &str = "event: message_start
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-3-opus-latest\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":11,\"output_tokens\":1}}}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}

event: ping
data: {\"type\": \"ping\"}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":0}

event: message_delta
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":6}}

event: message_stop
data: {\"type\":\"message_stop\"}

";

const START: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_2\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-3-5-haiku-latest\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n";
const BLOCK_START: &str = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
const BLOCK_STOP: &str = "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n";
const STOP: &str = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

fn delta(text: &str) -> String {
    let d = serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":text}});
    format!("event: content_block_delta\ndata: {d}\n\n")
}

fn message_delta(reason: &str, output_tokens: u64) -> String {
    let d = serde_json::json!({"type":"message_delta","delta":{"stop_reason":reason,"stop_sequence":null},"usage":{"output_tokens":output_tokens}});
    format!("event: message_delta\ndata: {d}\n\n")
}

/// A whole answer streaming `parts` as text deltas.
fn answer(parts: &[&str], reason: &str) -> String {
    let mut s = format!("{START}{BLOCK_START}");
    for p in parts {
        s.push_str(&delta(p));
    }
    s + BLOCK_STOP + &message_delta(reason, 7) + STOP
}

fn provider(fake: &Fake, key: &str, tweak: impl FnOnce(&mut ProviderConfig)) -> Provider {
    let mut cfg = ProviderConfig::new(ProviderKind::Anthropic);
    cfg.base_url = Some(fake.url.clone());
    tweak(&mut cfg);
    let env_var = cfg.api_key_env.clone().unwrap_or_else(|| "ANTHROPIC_API_KEY".into());
    Provider::build("claude", &cfg, Some(MODEL.into()), env_from(&[(env_var.as_str(), key)])).expect("provider builds")
}

fn chat_req() -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::new(Role::System, "You are terse."),
            Message::new(Role::User, "Say hello."),
            Message::new(Role::System, "Answer in English."),
        ],
        prefill: None,
        stop: vec!["\n\n".into(), "\t".into(), "END".into()],
        max_tokens: 256,
        temperature: 0.2,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_the_reference_transcript_and_sends_the_documented_request() {
    fake::capture_traces();
    let key = fake::fake_key("sk-ant");
    let fake = Fake::always(Reply::chunked("text/event-stream", TRANSCRIPT, &[1, 7, 3, 64, 13, 2, 200])).await;
    let p = provider(&fake, &key, |_| {});
    let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("stream opens")).await;
    assert_eq!(err, None);
    assert_eq!(deltas.concat(), "Hello");
    let usage = Usage { input_tokens: Some(11), output_tokens: Some(6) };
    assert_eq!(fin, Some(Finish { stop_reason: StopReason::EndTurn, usage }));

    let r = fake.request(0);
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/messages"));
    assert_eq!(r.header("x-api-key"), Some(key.as_str()));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("authorization"), None);
    assert_eq!(
        r.json(),
        serde_json::json!({
            "model": MODEL, "max_tokens": 256, "stream": true,
            "system": "You are terse.\n\nAnswer in English.",
            "messages": [{"role": "user", "content": "Say hello."}],
            // Anthropic refuses whitespace-only stop sequences: they are enforced client-side.
            "stop_sequences": ["END"],
            "temperature": 0.2,
        })
    );
    fake::assert_secret_absent(&key, &[format!("{p:?}")]);
}

#[test]
fn every_split_of_the_transcript_parses_the_same() {
    let bytes = TRANSCRIPT.as_bytes();
    let usage = Usage { input_tokens: Some(11), output_tokens: Some(6) };
    // Chunks of n bytes, starting at every offset below n: together they split every line,
    // every field and every `\n\n` at each of its positions.
    for n in 1..=6 {
        for offset in 0..n {
            let mut chunks = vec![Bytes::copy_from_slice(&bytes[..offset])];
            chunks.extend(bytes[offset..].chunks(n).map(Bytes::copy_from_slice));
            let got = parse_recorded(ProviderKind::Anthropic, Op::Chat, chunks).expect("parses");
            let want = ("Hello".to_owned(), Finish { stop_reason: StopReason::EndTurn, usage });
            assert_eq!(got, want, "chunks of {n} from {offset}");
        }
    }
    // Vertex streams the same events.
    let got = parse_recorded(ProviderKind::Vertex, Op::Chat, vec![Bytes::from_static(bytes)]).expect("parses");
    assert_eq!(got.0, "Hello");
}

#[test]
fn multibyte_text_multiline_data_crlf_and_many_pings() {
    let body = format!(
        "{START}: a comment\r\n\r\n{BLOCK_START}event: ping\ndata: {{\"type\": \"ping\"}}\n\n{}event: ping\ndata: {{\"type\": \"ping\"}}\n\n\
         event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\ndata: \"delta\":{{\"type\":\"text_delta\",\"text\":\" 世界 🦀\\n\"}}}}\n\n\
         event: content_block_delta\r\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"thinking_delta\",\"thinking\":\"no\"}}}}\r\n\r\n\
         event: some_new_event\ndata: {{\"type\":\"some_new_event\"}}\n\n{BLOCK_STOP}{}{STOP}",
        delta("Grüße,"),
        message_delta("max_tokens", 12),
    );
    let bytes = body.as_bytes();
    let want = ("Grüße, 世界 🦀\n".to_owned(), StopReason::MaxTokens);
    // Byte by byte splits every line, CRLF pair and UTF-8 sequence.
    let chunks: Vec<Bytes> = bytes.iter().map(|b| Bytes::copy_from_slice(&[*b])).collect();
    let (text, fin) = parse_recorded(ProviderKind::Anthropic, Op::Chat, chunks).expect("parses");
    assert_eq!((text, fin.stop_reason), want);
    assert_eq!(fin.usage, Usage { input_tokens: Some(25), output_tokens: Some(12) });
}

#[test]
fn stop_reasons_map_into_the_common_vocabulary() {
    for (wire, want) in [
        ("end_turn", StopReason::EndTurn),
        ("max_tokens", StopReason::MaxTokens),
        ("stop_sequence", StopReason::StopSequence),
        ("refusal", StopReason::ContentFilter),
        ("pause_turn", StopReason::Other("pause_turn".into())),
    ] {
        let body = answer(&["x"], wire);
        let (_, fin) = parse_recorded(ProviderKind::Anthropic, Op::Chat, vec![Bytes::from(body)]).expect("parses");
        assert_eq!(fin.stop_reason, want, "{wire}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chunks_split_mid_utf8_over_the_network() {
    fake::capture_traces();
    let body = answer(&["naïve ", "café — ", "日本語"], "stop_sequence");
    let fake = Fake::always(Reply::chunked("text/event-stream", &body, &[5, 1, 1, 9, 2])).await;
    let p = provider(&fake, &fake::fake_key("sk-ant"), |_| {});
    let (text, fin) = p.chat(&chat_req(), Feature::Chat).await.expect("opens").text().await.expect("completes");
    assert_eq!(text, "naïve café — 日本語");
    assert_eq!(fin.stop_reason, StopReason::StopSequence);
    assert_eq!(fin.usage, Usage { input_tokens: Some(25), output_tokens: Some(7) });
}

#[tokio::test(flavor = "multi_thread")]
async fn prefill_is_the_last_assistant_turn_without_trailing_whitespace() {
    fake::capture_traces();
    // Claude continues after "{", so it writes the trimmed newline and indent again.
    let fake = Fake::always(Reply::sse(&[&answer(&["\n  ", "  println!(\"hi\");"], "end_turn")])).await;
    let p = provider(&fake, &fake::fake_key("sk-ant"), |_| {});
    let req = ChatRequest {
        messages: vec![
            Message::new(Role::User, "Write main."),
            Message::new(Role::User, "In Rust."),
            Message::new(Role::Assistant, "Sure."),
            Message::new(Role::User, "Go on."),
        ],
        prefill: Some("fn main() {\n    ".into()),
        max_tokens: 100,
        temperature: 0.0,
        ..Default::default()
    };
    let (text, _) = p.chat(&req, Feature::Chat).await.expect("opens").text().await.expect("completes");
    // Prefill plus answer reads as the model wrote it.
    assert_eq!(format!("{}{text}", req.prefill.as_deref().unwrap_or_default()), "fn main() {\n    println!(\"hi\");");
    let body = fake.request(0).json();
    assert_eq!(
        body["messages"],
        serde_json::json!([
            {"role": "user", "content": "Write main.\n\nIn Rust."},
            {"role": "assistant", "content": "Sure."},
            {"role": "user", "content": "Go on."},
            {"role": "assistant", "content": "fn main() {"},
        ])
    );
    assert_eq!(body.get("system"), None);
    assert_eq!(body.get("stop_sequences"), None);
    assert_eq!(body["temperature"], 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn autocomplete_goes_through_the_chat_path() {
    fake::capture_traces();
    let key = fake::fake_key("sk-ant");
    // The server stopped at `</fill>`; the newline stop is Quill's to apply.
    let fake = Fake::always(Reply::sse(&[&answer(&["a + b", "\n}\n"], "stop_sequence")])).await;
    let p = provider(&fake, &key, |_| {});
    let req = CompletionRequest { stop: vec!["\n".into()], ..rust_completion_req() };
    let (text, fin) = p.complete(&req).await.expect("opens").text().await.expect("completes");
    assert_eq!((text.as_str(), fin.stop_reason), ("a + b", StopReason::StopSequence));
    let r = fake.request(0);
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some(key.as_str()));
    let body = r.json();
    assert_eq!((body["model"].as_str(), body["stream"].as_bool()), (Some(MODEL), Some(true)));
    assert_eq!((body["max_tokens"].as_u64(), body["temperature"].as_f64()), (Some(64), Some(0.1)));
    assert!(body["system"].as_str().is_some_and(|s| !s.is_empty()), "{body}");
    // Claude continues a prefilled answer; whitespace-only stops stay off the wire.
    let messages = body["messages"].as_array().expect("messages");
    let last = messages.last().expect("a last turn");
    assert_eq!(last["role"], "assistant");
    assert!(messages[0]["content"].as_str().is_some_and(|c| c.contains("fn add(a: i32, b: i32)")), "{body}");
    let stops = body["stop_sequences"].as_array().expect("stops");
    assert!(!stops.is_empty() && stops.iter().all(|s| s.as_str().is_some_and(|s| !s.trim().is_empty())), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn whitespace_stop_sequences_are_applied_client_side() {
    fake::capture_traces();
    let fake = Fake::always(Reply::sse(&[&answer(&["first li", "ne\n", "second line"], "end_turn")])).await;
    let p = provider(&fake, &fake::fake_key("sk-ant"), |_| {});
    let req = ChatRequest { stop: vec!["\n".into(), "  ".into()], ..chat_req() };
    let (text, fin) = p.chat(&req, Feature::Chat).await.expect("opens").text().await.expect("completes");
    assert_eq!((text.as_str(), fin.stop_reason), ("first line", StopReason::StopSequence));
    assert_eq!(fake.request(0).json().get("stop_sequences"), None);
}

#[test]
fn completion_modes_other_than_chat_are_config_errors() {
    for mode in [CompletionMode::Suffix, CompletionMode::Template, CompletionMode::Infill, CompletionMode::Prompt] {
        let mut cfg = ProviderConfig::new(ProviderKind::Anthropic);
        cfg.completion_mode = mode;
        let e = Provider::build("claude", &cfg, Some(MODEL.into()), env_from(&[("ANTHROPIC_API_KEY", "k-123")]))
            .expect_err("refused");
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.to_string().contains("use `chat`"), "{e}");
    }
    let mut cfg = ProviderConfig::new(ProviderKind::Anthropic);
    cfg.completion_mode = CompletionMode::Chat;
    Provider::build("claude", &cfg, Some(MODEL.into()), env_from(&[("ANTHROPIC_API_KEY", "k-123")]))
        .expect("chat mode");
}

#[test]
fn missing_key_and_model_are_reported_before_any_request() {
    let cfg = ProviderConfig::new(ProviderKind::Anthropic);
    let e = Provider::build("claude", &cfg, Some(MODEL.into()), env_from(&[])).expect_err("no key");
    assert_eq!(e.kind, ErrorKind::MissingKey { env: "ANTHROPIC_API_KEY".into() });
    assert!(e.to_string().contains("$ANTHROPIC_API_KEY"), "{e}");
    let e = Provider::build("claude", &cfg, None, env_from(&[("ANTHROPIC_API_KEY", "k-123")])).expect_err("no model");
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.to_string().contains("providers.claude.model"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_keys_name_the_variable_and_never_show_the_key() {
    fake::capture_traces();
    let key = fake::fake_key("sk-ant");
    let echo = format!(
        "{{\"type\":\"error\",\"error\":{{\"type\":\"authentication_error\",\"message\":\"invalid x-api-key {key}\"}},\"request_id\":\"req_1\"}}"
    );
    let fake = Fake::always(Reply::json(401, &echo)).await;
    let p = provider(&fake, &key, |c| c.api_key_env = Some("MY_CLAUDE_KEY".into()));
    let e = chat_err(&p, &chat_req(), Feature::Chat).await;
    assert_eq!(e.kind, ErrorKind::Auth { status: 401, env: Some("MY_CLAUDE_KEY".into()) });
    let text = e.to_string();
    assert!(text.contains("$MY_CLAUDE_KEY") && text.contains("invalid x-api-key"), "{text}");
    assert_eq!(fake.requests().len(), 1, "401 is not retried");
    fake::assert_secret_absent(&key, &shown(&e));

    let fake = Fake::always(Reply::json(
        403,
        r#"{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}"#,
    ))
    .await;
    let p = provider(&fake, &key, |_| {});
    let e = chat_err(&p, &chat_req(), Feature::Chat).await;
    assert_eq!(e.kind, ErrorKind::Auth { status: 403, env: Some("ANTHROPIC_API_KEY".into()) });
    assert!(e.to_string().contains("$ANTHROPIC_API_KEY"), "{e}");
    fake::assert_secret_absent(&key, &shown(&e));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_model_names_the_model() {
    fake::capture_traces();
    let key = fake::fake_key("sk-ant");
    let fake = Fake::always(Reply::json(
        404,
        &format!(r#"{{"type":"error","error":{{"type":"not_found_error","message":"model: {MODEL}"}}}}"#),
    ))
    .await;
    let p = provider(&fake, &key, |_| {});
    let e = chat_err(&p, &chat_req(), Feature::Chat).await;
    assert_eq!(e.kind, ErrorKind::NotFound { status: 404, model: Some(MODEL.into()) });
    assert!(e.to_string().contains("providers.claude.model"), "{e}");
    assert_eq!(fake.requests().len(), 1);
    fake::assert_secret_absent(&key, &shown(&e));
}

fn rate_limited(after: &str) -> Reply {
    Reply::json(429, r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#)
        .header("retry-after", after)
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_retry_after_is_honoured() {
    fake::capture_traces();
    let key = fake::fake_key("sk-ant");
    // Chat waits a short retry-after out and succeeds.
    let ok = answer(&["ok"], "end_turn");
    let fake = Fake::start(move |_, i| if i == 0 { rate_limited("0.2") } else { Reply::sse(&[&ok]) }).await;
    let p = provider(&fake, &key, |_| {});
    let started = Instant::now();
    let (text, _) = p.chat(&chat_req(), Feature::Chat).await.expect("retried").text().await.expect("completes");
    assert_eq!(text, "ok");
    assert_eq!(fake.requests().len(), 2);
    assert!(started.elapsed() >= Duration::from_millis(200), "waited {:?}", started.elapsed());

    // Autocomplete never waits: the error says how long, and the next attempt inside that window
    // fails without a request.
    let fake = Fake::always(rate_limited("5")).await;
    let p = provider(&fake, &key, |_| {});
    let e = complete_err(&p, &rust_completion_req()).await;
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_secs(5)));
    assert!(e.to_string().contains("retry in 5 s"), "{e}");
    let e2 = complete_err(&p, &rust_completion_req()).await;
    assert_eq!(e2.kind, ErrorKind::RateLimited);
    assert_eq!(fake.requests().len(), 1);

    // Chat does not sit out a long retry-after either.
    let fake = Fake::always(rate_limited("30")).await;
    let p = provider(&fake, &key, |_| {});
    let e = chat_err(&p, &chat_req(), Feature::Chat).await;
    assert_eq!((e.kind.clone(), e.retry_after), (ErrorKind::RateLimited, Some(Duration::from_secs(30))));
    assert_eq!(fake.requests().len(), 1);
    fake::assert_secret_absent(&key, &shown(&e));
}

fn overloaded() -> Reply {
    Reply::json(
        529,
        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_9"}"#,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn overloaded_is_retried_with_backoff_for_chat_only() {
    fake::capture_traces();
    let key = fake::fake_key("sk-ant");
    let ok = answer(&["fine"], "end_turn");
    let times = Arc::new(Mutex::new(Vec::new()));
    let t = times.clone();
    let fake = Fake::start(move |_, i| {
        t.lock().expect("lock").push(Instant::now());
        if i < 2 { overloaded() } else { Reply::sse(&[&ok]) }
    })
    .await;
    let p = provider(&fake, &key, |_| {});
    let (text, _) = p.chat(&chat_req(), Feature::Edit).await.expect("retried").text().await.expect("completes");
    assert_eq!(text, "fine");
    assert_eq!(fake.requests().len(), 3);
    let t = times.lock().expect("lock").clone();
    // The first backoff step is 250..500 ms, the second 500..1000 ms.
    assert!(t[1] - t[0] >= Duration::from_millis(240), "{:?}", t[1] - t[0]);
    assert!(t[2] - t[1] >= Duration::from_millis(490), "{:?}", t[2] - t[1]);

    let fake = Fake::always(overloaded()).await;
    let p = provider(&fake, &key, |_| {});
    let e = complete_err(&p, &rust_completion_req()).await;
    assert_eq!(e.kind, ErrorKind::Overloaded { status: 529 });
    assert!(e.to_string().contains("Overloaded"), "{e}");
    assert_eq!(fake.requests().len(), 1, "autocomplete never retries");
    // Chat from the completion feature does not retry either.
    let e = chat_err(&p, &chat_req(), Feature::Completion).await;
    assert_eq!(e.kind, ErrorKind::Overloaded { status: 529 });
    assert_eq!(fake.requests().len(), 2);
    fake::assert_secret_absent(&key, &shown(&e));
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_but_not_when_the_server_says_no() {
    fake::capture_traces();
    let key = fake::fake_key("sk-ant");
    let ok = answer(&["back"], "end_turn");
    let fake = Fake::start(move |_, i| {
        if i == 0 {
            Reply::json(500, r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"}}"#)
        } else {
            Reply::sse(&[&ok])
        }
    })
    .await;
    let p = provider(&fake, &key, |_| {});
    let (text, _) = p.chat(&chat_req(), Feature::Chat).await.expect("retried").text().await.expect("completes");
    assert_eq!((text.as_str(), fake.requests().len()), ("back", 2));

    let fake = Fake::always(overloaded().header("x-should-retry", "false")).await;
    let p = provider(&fake, &key, |_| {});
    let e = chat_err(&p, &chat_req(), Feature::Chat).await;
    // Still reported as what it is, an overload, but not retried.
    assert!(matches!(e.kind, ErrorKind::Overloaded { status: 529 }) && e.no_retry, "{e:?}");
    assert_eq!(fake.requests().len(), 1, "x-should-retry: false is obeyed");
    fake::assert_secret_absent(&key, &shown(&e));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_event_after_text_is_an_error_not_text() {
    fake::capture_traces();
    let key = fake::fake_key("sk-ant");
    let fake = Fake::always(
        Reply::sse(&[START, BLOCK_START, &delta("Hel")]).delay(30).bytes(
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        ),
    )
    .await;
    let p = provider(&fake, &key, |_| {});
    let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("opens")).await;
    assert_eq!((deltas, fin), (vec!["Hel".to_owned()], None));
    let e = err.expect("an error");
    assert_eq!(e.kind, ErrorKind::Overloaded { status: 529 });
    assert!(e.detail.contains("overloaded_error: Overloaded"), "{}", e.detail);
    assert_eq!(fake.requests().len(), 1, "a started stream is never re-sent");
    fake::assert_secret_absent(&key, &shown(&e));

    for (kind_name, want) in [
        ("rate_limit_error", ErrorKind::RateLimited),
        ("api_error", ErrorKind::Server { status: 500 }),
        ("invalid_request_error", ErrorKind::InStream),
    ] {
        let body = format!(
            "{START}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"{kind_name}\",\"message\":\"boom\"}}}}\n\n"
        );
        let e = parse_recorded(ProviderKind::Anthropic, Op::Chat, vec![Bytes::from(body)]).expect_err("error event");
        assert_eq!(e.kind, want, "{kind_name}");
        assert!(e.detail.contains("boom"), "{}", e.detail);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_stream_is_incomplete_after_its_text() {
    fake::capture_traces();
    let fake = Fake::always(Reply::sse(&[START, BLOCK_START, &delta("Hello, wor")]).delay(20).cut()).await;
    let p = provider(&fake, &fake::fake_key("sk-ant"), |_| {});
    let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("opens")).await;
    assert_eq!((deltas.concat(), fin), ("Hello, wor".to_owned(), None));
    assert_eq!(err.expect("an error").kind, ErrorKind::Incomplete { received: 10 });
    assert_eq!(fake.requests().len(), 1);

    // Ending cleanly without message_stop is a cut as well.
    let body = format!("{START}{BLOCK_START}{}", delta("Hi"));
    let e = parse_recorded(ProviderKind::Anthropic, Op::Chat, vec![Bytes::from(body)]).expect_err("no message_stop");
    assert_eq!(e.kind, ErrorKind::Incomplete { received: 2 });
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_data_is_reported_as_such() {
    fake::capture_traces();
    let bad = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_d\n\n";
    let fake = Fake::always(Reply::sse(&[START, BLOCK_START, &delta("ok")]).delay(20).bytes(bad)).await;
    let p = provider(&fake, &fake::fake_key("sk-ant"), |_| {});
    let (deltas, _, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("opens")).await;
    assert_eq!(deltas.concat(), "ok");
    let e = err.expect("an error");
    assert_eq!(e.kind, ErrorKind::Malformed);
    assert!(e.detail.contains("content_block_delta") && e.detail.contains("not JSON"), "{}", e.detail);

    let body = format!(
        "{START}event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"delta\":{{\"type\":\"text_delta\"}}}}\n\n"
    );
    let e = parse_recorded(ProviderKind::Anthropic, Op::Chat, vec![Bytes::from(body)]).expect_err("no text");
    assert_eq!(e.kind, ErrorKind::Malformed);
    // A different protocol at the base URL.
    let e = parse_recorded(ProviderKind::Anthropic, Op::Chat, vec![Bytes::from_static(b"data: [DONE]\n\n")])
        .expect_err("not Anthropic");
    assert_eq!(e.kind, ErrorKind::Malformed);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_upstream_times_out() {
    fake::capture_traces();
    let fake = Fake::always(Reply::sse(&[START, BLOCK_START, &delta("so")]).stall()).await;
    let p = provider(&fake, &fake::fake_key("sk-ant"), short_timeouts);
    assert_idle_timeout(p.chat(&chat_req(), Feature::Chat), "so").await;

    let fake = Fake::always(Reply::silent()).await;
    let p = provider(&fake, &fake::fake_key("sk-ant"), short_timeouts);
    let e = complete_err(&p, &rust_completion_req()).await;
    assert!(matches!(e.kind, ErrorKind::Timeout { phase: TimeoutPhase::FirstByte, .. }), "{e:?}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_stream_closes_the_connection() {
    fake::capture_traces();
    let fake = Fake::always(Reply::sse(&[START, BLOCK_START, &delta("first")]).delay(5_000).bytes(delta("late"))).await;
    let p = provider(&fake, &fake::fake_key("sk-ant"), |_| {});
    let mut s = p.chat(&chat_req(), Feature::Chat).await.expect("opens");
    assert_eq!(s.next().await.map(|e| e.expect("text")), Some(Event::Delta("first".into())));
    assert_drop_closes(&fake, s, "anthropic chat").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_base_url_ending_in_v1_is_not_doubled() {
    fake::capture_traces();
    let fake = Fake::always(Reply::sse(&[TRANSCRIPT])).await;
    let url = format!("{}/v1/", fake.url);
    let p = provider(&fake, &fake::fake_key("sk-ant"), |c| c.base_url = Some(url));
    p.chat(&chat_req(), Feature::Chat).await.expect("opens").text().await.expect("completes");
    assert_eq!(fake.request(0).path, "/v1/messages");
}
