//! The `gemini` provider against a fake `streamGenerateContent?alt=sse`: the CRLF transcript, the
//! request as sent (key in a header, never the URL), every failure class, cancellation, and that
//! the key never leaks.

mod fake;

use std::time::{Duration, Instant};

use bytes::Bytes;
use fake::{
    Fake, Reply, assert_drop_closes, assert_idle_timeout, chat_err, complete_err, drain, rust_completion_req,
    short_timeouts, shown,
};
use quill::{
    config::{CompletionMode, Feature, ProviderConfig, ProviderKind},
    provider::{
        ChatRequest, ErrorKind, Event, Finish, Message, Op, Provider, ProviderError, Role, StopReason, TimeoutPhase,
        Usage, env_from, parse_recorded,
    },
};
use serde_json::json;

const MODEL: &str = "gemini-2.5-flash";
const PATH: &str = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";

/// The §3 transcript of the wire reference, byte for byte.
const TRANSCRIPT: &str = "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hel\"}]}}],\"usageMetadata\":{\"promptTokenCount\":7,\"totalTokenCount\":7},\"responseId\":\"r1\"}\r\n\r\n\
data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"lo\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":2,\"totalTokenCount\":9},\"responseId\":\"r1\"}\r\n\r\n";

/// One `data:` event with `text` and, on the last, a finish reason and complete counts.
fn chunk(text: &str, finish: Option<&str>) -> String {
    let mut c = json!({"content":{"role":"model","parts":[{"text":text}]}});
    let mut usage = json!({"promptTokenCount":12,"totalTokenCount":12});
    if let Some(f) = finish {
        c["finishReason"] = json!(f);
        usage = json!({"promptTokenCount":12,"candidatesTokenCount":5,"totalTokenCount":17});
    }
    format!("data: {}\r\n\r\n", json!({"candidates":[c],"usageMetadata":usage,"modelVersion":MODEL}))
}

fn answer(parts: &[&str], finish: &str) -> String {
    let mut s = String::new();
    for (i, p) in parts.iter().enumerate() {
        s.push_str(&chunk(p, (i + 1 == parts.len()).then_some(finish)));
    }
    s
}

fn provider(fake: &Fake, key: &str, tweak: impl FnOnce(&mut ProviderConfig)) -> Provider {
    let mut cfg = ProviderConfig::new(ProviderKind::Gemini);
    cfg.base_url = Some(fake.url.clone());
    tweak(&mut cfg);
    let env_var = cfg.api_key_env.clone().unwrap_or_else(|| "GEMINI_API_KEY".into());
    Provider::build("gem", &cfg, Some(MODEL.into()), env_from(&[(env_var.as_str(), key)])).expect("provider builds")
}

fn chat_req() -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::new(Role::System, "You are terse."),
            Message::new(Role::User, "Say hello."),
            Message::new(Role::User, "In English."),
            Message::new(Role::Assistant, "Hello."),
            Message::new(Role::User, "Again."),
        ],
        prefill: None,
        stop: vec!["\n\n".into()],
        max_tokens: 256,
        temperature: 0.2,
    }
}

fn parse(body: &str) -> Result<(String, Finish), ProviderError> {
    parse_recorded(ProviderKind::Gemini, Op::Chat, vec![Bytes::from(body.to_owned())])
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_the_crlf_transcript_and_sends_the_key_in_a_header_only() {
    fake::capture_traces();
    let key = fake::fake_key("AIza");
    // Splits inside `\r\n` pairs and JSON alike.
    let fake = Fake::always(Reply::chunked("text/event-stream", TRANSCRIPT, &[1, 7, 3, 64, 13, 2, 200, 1])).await;
    let p = provider(&fake, &key, |_| {});
    let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("stream opens")).await;
    assert_eq!(err, None);
    assert_eq!(deltas.concat(), "Hello");
    let usage = Usage { input_tokens: Some(7), output_tokens: Some(2) };
    assert_eq!(fin, Some(Finish { stop_reason: StopReason::EndTurn, usage }));

    let r = fake.request(0);
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", PATH));
    assert_eq!(r.header("x-goog-api-key"), Some(key.as_str()));
    assert!(!r.path.contains("key="), "the key is never a query parameter: {}", r.path);
    assert!(!r.path.contains(&key));
    assert_eq!(r.header("authorization"), None);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({
            "contents": [
                {"role": "user", "parts": [{"text": "Say hello."}, {"text": "In English."}]},
                {"role": "model", "parts": [{"text": "Hello."}]},
                {"role": "user", "parts": [{"text": "Again."}]},
            ],
            "systemInstruction": {"parts": [{"text": "You are terse."}]},
            "generationConfig": {
                "maxOutputTokens": 256, "temperature": 0.2, "stopSequences": ["\n\n"], "candidateCount": 1,
                // 2.5 Flash would think first; that only adds latency here.
                "thinkingConfig": {"thinkingBudget": 0},
            },
        })
    );
    fake::assert_secret_absent(&key, &[format!("{p:?}")]);
}

#[test]
fn every_split_of_the_transcript_parses_the_same() {
    let bytes = TRANSCRIPT.as_bytes();
    let usage = Usage { input_tokens: Some(7), output_tokens: Some(2) };
    let want = ("Hello".to_owned(), Finish { stop_reason: StopReason::EndTurn, usage });
    // One byte per chunk splits everywhere at once.
    let bytes_each: Vec<Bytes> = bytes.iter().map(|b| Bytes::copy_from_slice(&[*b])).collect();
    assert_eq!(parse_recorded(ProviderKind::Gemini, Op::Chat, bytes_each).expect("parses"), want);
    // Two chunks: around every CRLF, and across the JSON. (Each parse builds an HTTP client, so
    // not every offset.)
    let mut cuts: Vec<usize> = (0..=bytes.len()).step_by(71).collect();
    for (i, _) in TRANSCRIPT.match_indices("\r\n") {
        cuts.extend([i + 1, i + 2]);
    }
    for cut in cuts {
        let chunks = vec![Bytes::copy_from_slice(&bytes[..cut]), Bytes::copy_from_slice(&bytes[cut..])];
        let got = parse_recorded(ProviderKind::Gemini, Op::Chat, chunks).expect("parses");
        assert_eq!(got, want, "split at {cut}");
    }
}

#[test]
fn thoughts_are_skipped_and_escapes_become_characters() {
    let body = "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Let me think \\\"hard\\\"\",\"thought\":true}]}}]}\r\n\r\n\
                : keep-alive\r\n\r\n\
                data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"if x {\\n\\t\\\"ok\\\" \\u00e9 日本\"},{\"text\":\"plan\",\"thought\":true}]}}]}\r\n\r\n\
                data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"\\n}\"}]},\"finishReason\":\"MAX_TOKENS\"}],\
                \"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":4,\"thoughtsTokenCount\":9}}\r\n\r\n";
    // Byte by byte splits every line, CRLF pair and UTF-8 sequence.
    let chunks: Vec<Bytes> = body.bytes().map(|b| Bytes::copy_from_slice(&[b])).collect();
    let (text, fin) = parse_recorded(ProviderKind::Gemini, Op::Chat, chunks).expect("parses");
    // A real newline and tab, not the two characters `\` `n`.
    assert_eq!(text, "if x {\n\t\"ok\" é 日本\n}");
    assert!(!text.contains("\\n") && !text.contains("think") && !text.contains("plan"), "{text:?}");
    assert_eq!(
        fin,
        Finish { stop_reason: StopReason::MaxTokens, usage: Usage { input_tokens: Some(3), output_tokens: Some(4) } }
    );
}

#[test]
fn finish_reasons_map_into_the_common_vocabulary() {
    for (wire, want) in [
        ("STOP", StopReason::EndTurn),
        ("MAX_TOKENS", StopReason::MaxTokens),
        ("SAFETY", StopReason::ContentFilter),
        ("RECITATION", StopReason::ContentFilter),
        ("BLOCKLIST", StopReason::ContentFilter),
        ("PROHIBITED_CONTENT", StopReason::ContentFilter),
        ("SPII", StopReason::ContentFilter),
        ("LANGUAGE", StopReason::Other("LANGUAGE".into())),
        ("MALFORMED_FUNCTION_CALL", StopReason::Other("MALFORMED_FUNCTION_CALL".into())),
    ] {
        let (text, fin) = parse(&answer(&["a", "b"], wire)).expect("parses");
        assert_eq!((text.as_str(), fin.stop_reason), ("ab", want), "{wire}");
        assert_eq!(fin.usage, Usage { input_tokens: Some(12), output_tokens: Some(5) });
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn prefill_is_a_final_model_turn_and_pro_models_keep_thinking() {
    fake::capture_traces();
    let fake = Fake::always(Reply::sse(&[&answer(&["  println!(\"hi\");\n}"], "STOP")])).await;
    let mut cfg = ProviderConfig::new(ProviderKind::Gemini);
    cfg.base_url = Some(fake.url.clone());
    let p =
        Provider::build("gem", &cfg, Some("models/gemini-2.5-pro".into()), env_from(&[("GEMINI_API_KEY", "k-1234")]))
            .expect("builds");
    assert!(p.supports_prefill());
    let req = ChatRequest {
        messages: vec![Message::new(Role::User, "Write main."), Message::new(Role::Assistant, "Sure:")],
        prefill: Some("fn main() {\n".into()),
        max_tokens: 100,
        temperature: 0.0,
        ..Default::default()
    };
    let (text, _) = p.chat(&req, Feature::Chat).await.expect("opens").text().await.expect("completes");
    assert_eq!(text, "  println!(\"hi\");\n}");
    let r = fake.request(0);
    assert_eq!(r.path, "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse");
    let body = r.json();
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Write main."}]},
            {"role": "model", "parts": [{"text": "Sure:"}, {"text": "fn main() {\n"}]},
        ])
    );
    assert_eq!(body.get("systemInstruction"), None);
    let g = &body["generationConfig"];
    assert_eq!((g.get("thinkingConfig"), g.get("stopSequences")), (None, None));
    assert_eq!(g["temperature"], 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn at_most_five_stop_sequences_are_sent() {
    fake::capture_traces();
    let fake = Fake::always(Reply::sse(&[&answer(&["x"], "STOP")])).await;
    let p = provider(&fake, &fake::fake_key("AIza"), |_| {});
    let req = ChatRequest { stop: (0..7).map(|i| format!("s{i}")).collect(), ..chat_req() };
    p.chat(&req, Feature::Chat).await.expect("opens").text().await.expect("completes");
    assert_eq!(fake.request(0).json()["generationConfig"]["stopSequences"], json!(["s0", "s1", "s2", "s3", "s4"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn autocomplete_is_a_chat_with_a_prefill_and_is_never_retried() {
    fake::capture_traces();
    let key = fake::fake_key("AIza");
    // The answer continues after the prefilled `<fill>` and ends at `</fill>`.
    let fake = Fake::always(Reply::sse(&[&answer(&["a + b", "</fill>"], "STOP")])).await;
    let p = provider(&fake, &key, |_| {});
    let (text, _) = p.complete(&rust_completion_req()).await.expect("opens").text().await.expect("completes");
    assert_eq!(text, "a + b");
    let r = fake.request(0);
    assert_eq!((r.path.as_str(), r.header("x-goog-api-key")), (PATH, Some(key.as_str())));
    let body = r.json();
    let contents = body["contents"].as_array().expect("contents");
    let last = contents.last().expect("a turn");
    assert_eq!(last["role"], "model", "the prefill is the last turn: {body}");
    assert!(contents[0]["parts"][0]["text"].as_str().is_some_and(|t| t.contains("fn add(a: i32, b: i32)")), "{body}");
    assert!(body["systemInstruction"]["parts"][0]["text"].is_string());
    assert_eq!(body["generationConfig"]["maxOutputTokens"], 64);

    let fake = Fake::always(Reply::json(
        503,
        r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#,
    ))
    .await;
    let p = provider(&fake, &key, |_| {});
    let e = complete_err(&p, &rust_completion_req()).await;
    assert_eq!(e.kind, ErrorKind::Overloaded { status: 503 });
    assert_eq!(fake.requests().len(), 1, "autocomplete never retries");
}

#[test]
fn completion_modes_other_than_chat_are_config_errors_and_the_key_is_required() {
    for mode in [CompletionMode::Suffix, CompletionMode::Template, CompletionMode::Infill, CompletionMode::Prompt] {
        let mut cfg = ProviderConfig::new(ProviderKind::Gemini);
        cfg.completion_mode = mode;
        let e = Provider::build("gem", &cfg, Some(MODEL.into()), env_from(&[("GEMINI_API_KEY", "k-123")]))
            .expect_err("refused");
        assert_eq!(e.kind, ErrorKind::Config);
        assert!(e.to_string().contains("`chat`"), "{e}");
    }
    let cfg = ProviderConfig::new(ProviderKind::Gemini);
    let e = Provider::build("gem", &cfg, Some(MODEL.into()), env_from(&[])).expect_err("no key");
    assert_eq!(e.kind, ErrorKind::MissingKey { env: "GEMINI_API_KEY".into() });
    let e = Provider::build("gem", &cfg, None, env_from(&[("GEMINI_API_KEY", "k-123")])).expect_err("no model");
    assert!(e.to_string().contains("providers.gem.model"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_key_is_an_auth_error_naming_the_variable() {
    fake::capture_traces();
    let key = fake::fake_key("AIza");
    let body = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#;
    let fake = Fake::always(Reply::json(400, body)).await;
    let p = provider(&fake, &key, |_| {});
    let e = chat_err(&p, &chat_req(), Feature::Chat).await;
    assert_eq!(e.kind, ErrorKind::Auth { status: 400, env: Some("GEMINI_API_KEY".into()) });
    let text = e.to_string();
    assert!(text.contains("rejected the key from $GEMINI_API_KEY (HTTP 400): API key not valid"), "{text}");
    assert!(!text.contains("400: ") && !text.contains(".."), "reads well: {text}");
    assert_eq!(fake.requests().len(), 1, "a bad key is not retried");
    fake::assert_secret_absent(&key, &shown(&e));

    let fake = Fake::always(Reply::json(
        403,
        r#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers.","status":"PERMISSION_DENIED"}}"#,
    ))
    .await;
    let p = provider(&fake, &key, |c| c.api_key_env = Some("MY_GEMINI".into()));
    let e = chat_err(&p, &chat_req(), Feature::Chat).await;
    assert_eq!(e.kind, ErrorKind::Auth { status: 403, env: Some("MY_GEMINI".into()) });
    assert!(e.to_string().contains("$MY_GEMINI"), "{e}");
    fake::assert_secret_absent(&key, &shown(&e));
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_model_names_the_model() {
    fake::capture_traces();
    let key = fake::fake_key("AIza");
    let fake = Fake::always(Reply::json(
        404,
        r#"{"error":{"code":404,"message":"models/gemini-9 is not found for API version v1beta, or is not supported for generateContent.","status":"NOT_FOUND"}}"#,
    ))
    .await;
    let p = provider(&fake, &key, |_| {});
    let e = chat_err(&p, &chat_req(), Feature::Chat).await;
    assert_eq!(e.kind, ErrorKind::NotFound { status: 404, model: Some(MODEL.into()) });
    assert!(e.to_string().contains("is not found for API version"), "{e}");
    assert_eq!(fake.requests().len(), 1);
    fake::assert_secret_absent(&key, &shown(&e));
}

fn exhausted(delay: &str) -> Reply {
    Reply::json(
        429,
        &format!(
            r#"{{"error":{{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests"}}]}},{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"{delay}"}}]}}}}"#
        ),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_take_the_delay_from_the_body() {
    fake::capture_traces();
    let key = fake::fake_key("AIza");
    let fake = Fake::always(exhausted("22s")).await;
    let p = provider(&fake, &key, |_| {});
    let e = complete_err(&p, &rust_completion_req()).await;
    assert_eq!((e.kind.clone(), e.retry_after), (ErrorKind::RateLimited, Some(Duration::from_secs(22))));
    assert!(e.to_string().contains("retry in 22 s"), "{e}");
    assert_eq!(fake.requests().len(), 1);
    fake::assert_secret_absent(&key, &shown(&e));

    // Chat does not sit out 22 s either.
    let fake = Fake::always(exhausted("22s")).await;
    let p = provider(&fake, &key, |_| {});
    let e = chat_err(&p, &chat_req(), Feature::Chat).await;
    assert_eq!(e.retry_after, Some(Duration::from_secs(22)));
    assert_eq!(fake.requests().len(), 1);

    // A short delay is waited out for chat.
    let ok = answer(&["ok"], "STOP");
    let fake = Fake::start(move |_, i| if i == 0 { exhausted("0.2s") } else { Reply::sse(&[&ok]) }).await;
    let p = provider(&fake, &key, |_| {});
    let started = Instant::now();
    let (text, _) = p.chat(&chat_req(), Feature::Chat).await.expect("retried").text().await.expect("completes");
    assert_eq!((text.as_str(), fake.requests().len()), ("ok", 2));
    assert!(started.elapsed() >= Duration::from_millis(200), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn unavailable_is_retried_for_chat() {
    fake::capture_traces();
    let ok = answer(&["fine"], "STOP");
    let fake = Fake::start(move |_, i| {
        if i == 0 {
            Reply::json(503, r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#)
        } else {
            Reply::sse(&[&ok])
        }
    })
    .await;
    let p = provider(&fake, &fake::fake_key("AIza"), |_| {});
    let (text, _) = p.chat(&chat_req(), Feature::Edit).await.expect("retried").text().await.expect("completes");
    assert_eq!((text.as_str(), fake.requests().len()), ("fine", 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bare_json_error_line_mid_stream_is_an_error_not_text() {
    fake::capture_traces();
    let key = fake::fake_key("AIza");
    let fake =
        Fake::always(Reply::sse(&[&chunk("Hel", None)]).delay(20).bytes(
            "{\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}\r\n",
        ))
        .await;
    let p = provider(&fake, &key, |_| {});
    let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("opens")).await;
    assert_eq!((deltas, fin), (vec!["Hel".to_owned()], None));
    let e = err.expect("an error");
    assert_eq!(e.kind, ErrorKind::Overloaded { status: 503 });
    assert!(e.detail.contains("UNAVAILABLE: The model is overloaded."), "{}", e.detail);
    assert_eq!(fake.requests().len(), 1, "a started stream is never re-sent");
    fake::assert_secret_absent(&key, &shown(&e));

    for (status, want) in [
        ("RESOURCE_EXHAUSTED", ErrorKind::RateLimited),
        ("UNAVAILABLE", ErrorKind::Overloaded { status: 503 }),
        ("INTERNAL", ErrorKind::InStream),
    ] {
        let err = format!(r#"{{"error":{{"code":500,"message":"boom","status":"{status}"}}}}"#);
        // As a bare line and as a `data:` object.
        for body in [format!("{}{err}\r\n", chunk("a", None)), format!("{}data: {err}\r\n\r\n", chunk("a", None))] {
            let e = parse(&body).expect_err("error line");
            assert_eq!(e.kind, want, "{body}");
            assert!(e.detail.contains("boom"), "{}", e.detail);
        }
    }
    // A pretty-printed error, one field per line, is gathered and classified.
    let pretty = "{\r\n  \"error\": {\r\n    \"code\": 503,\r\n    \"message\": \"The model is overloaded.\",\r\n    \"status\": \"UNAVAILABLE\"\r\n  }\r\n}\r\n";
    let e = parse(&format!("{}{pretty}", chunk("a", None))).expect_err("error");
    assert_eq!(e.kind, ErrorKind::Overloaded { status: 503 });
    assert!(e.detail.contains("The model is overloaded"), "{}", e.detail);
    // Broken off before it closes: still no text.
    let e = parse(&format!("{}{{\r\n  \"error\": {{\r\n", chunk("a", None))).expect_err("broken off");
    assert_eq!(e.kind, ErrorKind::InStream);
}

#[test]
fn a_blocked_prompt_is_an_error() {
    let body = "data: {\"promptFeedback\":{\"blockReason\":\"PROHIBITED_CONTENT\"},\"usageMetadata\":{\"promptTokenCount\":9,\"totalTokenCount\":9}}\r\n\r\n";
    let e = parse(body).expect_err("blocked");
    assert_eq!(e.kind, ErrorKind::InStream);
    assert_eq!(e.detail, "blocked: PROHIBITED_CONTENT");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_without_a_finish_reason_is_incomplete() {
    fake::capture_traces();
    // The body ends cleanly, but no finishReason ever came.
    let fake = Fake::always(Reply::sse(&[&chunk("Hello, ", None), &chunk("wor", None)])).await;
    let p = provider(&fake, &fake::fake_key("AIza"), |_| {});
    let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("opens")).await;
    assert_eq!((deltas.concat(), fin), ("Hello, wor".to_owned(), None));
    assert_eq!(err.expect("an error").kind, ErrorKind::Incomplete { received: 10 });

    // The connection breaks.
    let fake = Fake::always(Reply::sse(&[&chunk("Hi", None)]).delay(20).cut()).await;
    let p = provider(&fake, &fake::fake_key("AIza"), |_| {});
    let (deltas, _, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("opens")).await;
    assert_eq!(deltas.concat(), "Hi");
    assert_eq!(err.expect("an error").kind, ErrorKind::Incomplete { received: 2 });
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn malformed_data_is_reported_as_such() {
    let e = parse(&format!("{}data: {{\"candidates\":[{{\"content\r\n\r\n", chunk("a", None))).expect_err("cut JSON");
    assert_eq!(e.kind, ErrorKind::Malformed);
    assert!(e.detail.contains("GenerateContentResponse"), "{}", e.detail);
    let e = parse("data: [DONE]\r\n\r\n").expect_err("not Gemini");
    assert_eq!(e.kind, ErrorKind::Malformed);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_upstream_times_out() {
    fake::capture_traces();
    let fake = Fake::always(Reply::sse(&[&chunk("so", None)]).stall()).await;
    let p = provider(&fake, &fake::fake_key("AIza"), short_timeouts);
    assert_idle_timeout(p.chat(&chat_req(), Feature::Chat), "so").await;

    let fake = Fake::always(Reply::silent()).await;
    let p = provider(&fake, &fake::fake_key("AIza"), short_timeouts);
    let e = complete_err(&p, &rust_completion_req()).await;
    assert!(matches!(e.kind, ErrorKind::Timeout { phase: TimeoutPhase::FirstByte, .. }), "{e:?}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_stream_closes_the_connection() {
    fake::capture_traces();
    let fake = Fake::always(Reply::sse(&[&chunk("first", None)]).delay(5_000).bytes(chunk("late", Some("STOP")))).await;
    let p = provider(&fake, &fake::fake_key("AIza"), |_| {});
    let mut s = p.chat(&chat_req(), Feature::Chat).await.expect("opens");
    assert_eq!(s.next().await.map(|e| e.expect("text")), Some(Event::Delta("first".into())));
    assert_drop_closes(&fake, s, "gemini chat").await;
}
