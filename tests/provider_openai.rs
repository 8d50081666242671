//! The OpenAI-wire providers (`openai`, `azure-openai`, `fireworks`, `openai-compatible`,
//! `quill-gateway`) against fake servers: the reference transcripts, the requests as sent, every
//! completion mode, every failure class, retries, timeouts, cancellation, and that keys never leak.

mod fake;

use std::time::{Duration, Instant};

use bytes::Bytes;
use fake::{Fake, Reply, chat_err, complete_err, drain, shown};
use quill::{
    config::{CompletionMode, CustomFimTemplate, Feature, FimTemplateConfig, ProviderConfig, ProviderKind},
    provider::{
        ChatRequest, CompletionRequest, ErrorKind, Event, Finish, Message, Op, Provider, ProviderError, Role,
        StopReason, TimeoutPhase, Usage, default_key_env, env_from, parse_recorded,
    },
};
use serde_json::{Value, json};

/// §1.1 of the wire reference, byte for byte.
const CHAT_TRANSCRIPT: &str = r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}

data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}

data: [DONE]

"#;

/// §1.2 of the wire reference, byte for byte.
const COMPLETIONS_TRANSCRIPT: &str = r#"data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"gpt-3.5-turbo-instruct","choices":[{"text":"    return a + b","index":0,"logprobs":null,"finish_reason":null}]}

data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"gpt-3.5-turbo-instruct","choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}]}

data: [DONE]

"#;

/// Azure's stream (§5): a prompt-filter chunk with no choices first, content-filter results on
/// every choice, a chunk carrying only filter results, then the usage chunk.
const AZURE_TRANSCRIPT: &str = r#"data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"},"self_harm":{"filtered":false,"severity":"safe"},"sexual":{"filtered":false,"severity":"safe"},"violence":{"filtered":false,"severity":"safe"}}}]}

data: {"choices":[{"content_filter_results":{},"delta":{"content":"","refusal":null,"role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],"created":1,"id":"chatcmpl-1","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk","system_fingerprint":"fp_1","usage":null}

data: {"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}},"delta":{"content":"Hello"},"finish_reason":null,"index":0,"logprobs":null}],"created":1,"id":"chatcmpl-1","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk","system_fingerprint":"fp_1","usage":null}

data: {"choices":[{"content_filter_results":{},"delta":{},"finish_reason":"stop","index":0,"logprobs":null}],"created":1,"id":"chatcmpl-1","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk","system_fingerprint":"fp_1","usage":null}

data: {"choices":[{"content_filter_results":{"protected_material_text":{"filtered":false,"detected":false}},"finish_reason":null,"index":0}],"created":1,"id":"chatcmpl-1","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk"}

data: {"choices":[],"created":1,"id":"chatcmpl-1","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk","usage":{"completion_tokens":1,"prompt_tokens":9,"total_tokens":10}}

data: [DONE]

"#;

const DONE: &str = "data: [DONE]\n\n";

fn chunk(content: &str) -> String {
    let v = json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
        "choices":[{"index":0,"delta":{"content":content},"finish_reason":null}],"usage":null});
    format!("data: {v}\n\n")
}

fn finish_chunk(reason: &str) -> String {
    let v = json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
        "choices":[{"index":0,"delta":{},"finish_reason":reason}],"usage":null});
    format!("data: {v}\n\n")
}

fn usage_chunk(input: u64, output: u64) -> String {
    let v = json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],
        "usage":{"prompt_tokens":input,"completion_tokens":output,"total_tokens":input + output}});
    format!("data: {v}\n\n")
}

fn text_chunk(text: &str, finish: Option<&str>) -> String {
    let v = json!({"id":"cmpl-1","object":"text_completion","created":1,"model":"m",
        "choices":[{"text":text,"index":0,"logprobs":null,"finish_reason":finish}]});
    format!("data: {v}\n\n")
}

/// A whole chat answer streaming `parts`.
fn chat_answer(parts: &[&str]) -> String {
    let s: String = parts.iter().map(|p| chunk(p)).collect();
    s + &finish_chunk("stop") + &usage_chunk(7, parts.len() as u64) + DONE
}

/// A whole completions answer streaming `parts`.
fn text_answer(parts: &[&str]) -> String {
    let s: String = parts.iter().map(|p| text_chunk(p, None)).collect();
    s + &text_chunk("", Some("stop")) + DONE
}

fn build(
    kind: ProviderKind,
    base_url: Option<String>,
    model: Option<&str>,
    key: Option<&str>,
    tweak: impl FnOnce(&mut ProviderConfig),
) -> Result<Provider, ProviderError> {
    let mut cfg = ProviderConfig::new(kind);
    cfg.base_url = base_url;
    tweak(&mut cfg);
    let var = cfg.api_key_env.clone().or_else(|| default_key_env(kind).map(str::to_owned));
    let pairs: Vec<(&str, &str)> = match (&var, key) {
        (Some(v), Some(k)) => vec![(v.as_str(), k)],
        _ => Vec::new(),
    };
    Provider::build(kind.as_str(), &cfg, model.map(str::to_owned), env_from(&pairs))
}

fn openai(fake: &Fake, key: &str, tweak: impl FnOnce(&mut ProviderConfig)) -> Provider {
    build(ProviderKind::Openai, Some(format!("{}/v1", fake.url)), Some("gpt-4.1-mini"), Some(key), tweak)
        .expect("openai provider builds")
}

fn chat_req() -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::new(Role::System, "You are terse."),
            Message::new(Role::User, "Say hi."),
            Message::new(Role::Assistant, "Hi."),
            Message::new(Role::User, "Again."),
        ],
        prefill: None,
        stop: vec!["\n\n".into()],
        max_tokens: 256,
        temperature: 0.2,
    }
}

fn fim_req() -> CompletionRequest {
    CompletionRequest {
        prefix: "def add(a, b):\n".into(),
        suffix: "\n\nprint(add(1, 2))".into(),
        path: Some("add.py".into()),
        language: Some("python".into()),
        stop: vec!["\n\n".into()],
        max_tokens: 64,
        temperature: 0.0,
        ..Default::default()
    }
}

fn custom_template() -> FimTemplateConfig {
    FimTemplateConfig::Custom(CustomFimTemplate {
        template: "<PRE>{prefix}<SUF>{suffix}<MID>".into(),
        stop: vec!["<EOT>".into()],
    })
}

fn usage(input: u64, output: u64) -> Usage {
    Usage { input_tokens: Some(input), output_tokens: Some(output) }
}

/// The body without `temperature`, and `temperature` alone (`0.0` and `0` are different JSON).
fn split_temperature(mut body: Value) -> (Value, Option<f64>) {
    let t = body.as_object_mut().and_then(|o| o.remove("temperature")).and_then(|t| t.as_f64());
    (body, t)
}

// ---------------------------------------------------------------------------------------------
// openai

#[tokio::test(flavor = "multi_thread")]
async fn openai_chat_streams_the_reference_transcript_and_sends_the_documented_request() {
    fake::capture_traces();
    let key = fake::fake_key("sk");
    let fake = Fake::always(Reply::chunked("text/event-stream", CHAT_TRANSCRIPT, &[1, 7, 3, 64, 13, 2, 200])).await;
    let p = openai(&fake, &key, |_| {});
    let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("stream opens")).await;
    assert_eq!(err, None);
    assert_eq!(deltas, ["Hi"]);
    assert_eq!(fin, Some(Finish { stop_reason: StopReason::EndTurn, usage: usage(5, 1) }));

    let r = fake.request(0);
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/chat/completions"));
    assert_eq!(r.header("authorization"), Some(format!("Bearer {key}").as_str()));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("api-key"), None);
    assert_eq!(
        r.json(),
        json!({
            "model": "gpt-4.1-mini", "stream": true, "stream_options": {"include_usage": true},
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Say hi."},
                {"role": "assistant", "content": "Hi."},
                {"role": "user", "content": "Again."},
            ],
            "max_completion_tokens": 256, "temperature": 0.2, "stop": ["\n\n"],
        })
    );
    fake::assert_secret_absent(&key, &[format!("{p:?}")]);
}

#[test]
fn any_chunking_of_the_reference_transcripts_parses_the_same() {
    // Pieces of one byte put a boundary at every offset (each parse builds an HTTP client, so a
    // parse per split point would be slow); the other sizes mix boundaries inside lines, CRLF-free
    // blank lines and JSON strings.
    let chat = CHAT_TRANSCRIPT.as_bytes();
    let legacy = COMPLETIONS_TRANSCRIPT.as_bytes();
    let want_chat = ("Hi".to_owned(), Finish { stop_reason: StopReason::EndTurn, usage: usage(5, 1) });
    let want_legacy = ("    return a + b".to_owned(), Finish::default());
    for size in [1, 2, 3, 7, 64, 4096] {
        let pieces = |b: &[u8]| b.chunks(size).map(Bytes::copy_from_slice).collect::<Vec<_>>();
        let got = parse_recorded(ProviderKind::Openai, Op::Chat, pieces(chat)).expect("parses");
        assert_eq!(got, want_chat, "pieces of {size}");
        let got = parse_recorded(ProviderKind::Openai, Op::Complete, pieces(legacy)).expect("parses");
        assert_eq!(got, want_legacy, "pieces of {size}");
    }
    // Azure, Fireworks and the self-hosted kinds read the same wire.
    for kind in
        [ProviderKind::AzureOpenai, ProviderKind::Fireworks, ProviderKind::OpenaiCompatible, ProviderKind::QuillGateway]
    {
        let got = parse_recorded(kind, Op::Chat, vec![Bytes::from_static(chat)]).expect("parses");
        assert_eq!(got, want_chat, "{kind:?}");
    }
}

/// The first-byte and total deadlines count from sending the request, not from when the answer's
/// head arrived: a slow head plus a slow body must not get twice the time.
#[tokio::test(flavor = "multi_thread")]
async fn deadlines_count_from_the_request_not_the_answer_head() {
    fake::capture_traces();
    let key = fake::fake_key("sk");
    let slow = || {
        Reply::new(200).header("content-type", "text/event-stream").head_after(250).delay(250).bytes(CHAT_TRANSCRIPT)
    };
    let fake = Fake::always(slow()).await;
    let p = openai(&fake, &key, |c| c.first_byte_timeout_ms = 400);
    let (_, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("the head comes in time")).await;
    assert_eq!(fin, None);
    let e = err.expect("an error");
    assert!(matches!(e.kind, ErrorKind::Timeout { phase: TimeoutPhase::FirstByte, .. }), "{e:?}");

    let p = openai(&fake, &key, |c| c.total_timeout_ms = 400);
    let (_, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("the head comes in time")).await;
    assert_eq!(fin, None);
    let e = err.expect("an error");
    assert!(matches!(e.kind, ErrorKind::Timeout { phase: TimeoutPhase::Total, .. }), "{e:?}");

    // With room for both, the same answer arrives whole.
    let p = openai(&fake, &key, |c| c.first_byte_timeout_ms = 2_000);
    let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("opens")).await;
    assert_eq!((deltas.len(), fin.is_some(), err), (1, true, None));
}

/// One pooled client: finished streams hand their connection back, so later requests (even from
/// another provider value) skip the TCP and TLS handshakes.
#[tokio::test(flavor = "multi_thread")]
async fn connections_are_kept_alive_and_shared() {
    fake::capture_traces();
    let key = fake::fake_key("sk");
    // The end of the body comes a little after `[DONE]`, as it may over a real network.
    let fake = Fake::always(Reply::chunked("text/event-stream", CHAT_TRANSCRIPT, &[64]).delay(30)).await;
    for _ in 0..2 {
        let p = openai(&fake, &key, |_| {});
        for _ in 0..2 {
            let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("stream opens")).await;
            assert_eq!((deltas.len(), fin.is_some(), err), (1, true, None));
            // The rest of the body (the chunked terminator) is read in the background.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(fake.requests().len(), 4);
    assert_eq!(fake.connections(), 1, "every request after the first reuses the connection");
}

#[tokio::test(flavor = "multi_thread")]
async fn crlf_comments_multiline_data_and_split_utf8_arrive_intact() {
    fake::capture_traces();
    // Keep-alive comments, CRLF line ends, one event's JSON across two `data:` lines, escaped
    // newlines and tabs, multi-byte characters, and a final `[DONE]` without its blank line.
    let body = format!(
        ": keep-alive\r\n\r\n{}: ping\r\n\r\ndata: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\r\ndata: \"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" wörld 🦀\\n\\tdone\"}},\"finish_reason\":null}}]}}\r\n\r\n{}{}data: [DONE]",
        chunk("héllo").replace('\n', "\r\n"),
        finish_chunk("length").replace('\n', "\r\n"),
        usage_chunk(3, 4),
    );
    let want = "héllo wörld 🦀\n\tdone";
    for sizes in [&[1usize][..], &[2], &[3, 5], &[7, 1, 4], &[4096]] {
        let fake = Fake::always(Reply::chunked("text/event-stream", &body, sizes)).await;
        let p = openai(&fake, "sk-test", |_| {});
        let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("stream opens")).await;
        assert_eq!(err, None, "sizes {sizes:?}");
        assert_eq!(deltas.concat(), want, "sizes {sizes:?}");
        assert_eq!(fin, Some(Finish { stop_reason: StopReason::MaxTokens, usage: usage(3, 4) }), "sizes {sizes:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_prefill_is_dropped_and_stops_are_capped_at_four() {
    fake::capture_traces();
    let fake = Fake::always(Reply::sse(&[&chat_answer(&["ok"])])).await;
    let p = openai(&fake, "sk-test", |_| {});
    let req = ChatRequest {
        prefill: Some("PREFILL-TEXT".into()),
        stop: (1..=6).map(|i| format!("s{i}")).collect(),
        ..chat_req()
    };
    let (deltas, _, err) = drain(p.chat(&req, Feature::Chat).await.expect("stream opens")).await;
    assert_eq!((deltas.concat(), err), ("ok".to_owned(), None));
    assert!(!p.supports_prefill());
    let body = fake.request(0).json();
    assert!(!body.to_string().contains("PREFILL-TEXT"), "{body}");
    assert_eq!(body["stop"], json!(["s1", "s2", "s3", "s4"]));
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(4), "no assistant turn is added");

    // No stops: no `stop` field at all.
    let req = ChatRequest { stop: vec![], ..chat_req() };
    drain(p.chat(&req, Feature::Chat).await.expect("stream opens")).await;
    assert_eq!(fake.request(1).json().get("stop"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_instruct_model_completes_with_suffix_on_the_legacy_endpoint() {
    fake::capture_traces();
    let key = fake::fake_key("sk");
    let fake = Fake::always(Reply::chunked("text/event-stream", COMPLETIONS_TRANSCRIPT, &[5, 50])).await;
    let p = build(
        ProviderKind::Openai,
        Some(format!("{}/v1", fake.url)),
        Some("gpt-3.5-turbo-instruct"),
        Some(&key),
        |_| {},
    )
    .expect("builds");
    let (deltas, fin, err) = drain(p.complete(&fim_req()).await.expect("stream opens")).await;
    assert_eq!(err, None);
    assert_eq!(deltas.concat(), "    return a + b");
    assert_eq!(fin, Some(Finish { stop_reason: StopReason::EndTurn, usage: Usage::default() }));

    let r = fake.request(0);
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/completions"));
    assert_eq!(r.header("authorization"), Some(format!("Bearer {key}").as_str()));
    let (body, temperature) = split_temperature(r.json());
    assert_eq!(temperature, Some(0.0));
    assert_eq!(
        body,
        json!({"model":"gpt-3.5-turbo-instruct","prompt":"def add(a, b):\n","suffix":"\n\nprint(add(1, 2))",
            "max_tokens":64,"stop":["\n\n"],"stream":true,"stream_options":{"include_usage":true}})
    );
    fake::assert_secret_absent(&key, &[]);

    // davinci-002 and babbage-002 are completion models too.
    for model in ["davinci-002", "babbage-002"] {
        let fake = Fake::always(Reply::sse(&[COMPLETIONS_TRANSCRIPT])).await;
        let p = build(ProviderKind::Openai, Some(fake.url.clone()), Some(model), Some("sk-t"), |_| {}).expect("builds");
        drain(p.complete(&fim_req()).await.expect("stream opens")).await;
        assert_eq!(fake.request(0).path, "/completions", "{model}");
        assert_eq!(fake.request(0).json()["suffix"], "\n\nprint(add(1, 2))", "{model}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_chat_model_completes_through_a_chat_prompt() {
    fake::capture_traces();
    // The model wraps its fill as asked; the wrapper is split across deltas.
    let fake = Fake::always(Reply::sse(&[&chat_answer(&["<fi", "ll>    return", " a + b</fi", "ll> trailing"])])).await;
    let p = openai(&fake, "sk-test", |_| {});
    let (deltas, _, err) = drain(p.complete(&fim_req()).await.expect("stream opens")).await;
    assert_eq!(err, None);
    assert_eq!(deltas.concat(), "    return a + b");
    let r = fake.request(0);
    assert_eq!(r.path, "/v1/chat/completions");
    let body = r.json();
    assert_eq!(body.get("suffix"), None);
    assert_eq!(body.get("prompt"), None);
    assert_eq!(body["max_completion_tokens"], 64);
    assert_eq!(body["stop"][0], "</fill>", "the closing tag is the first stop, so the cap keeps it");
    let user = body["messages"][1]["content"].as_str().expect("user message");
    assert!(user.contains("def add(a, b):\n<cursor/>\n\nprint(add(1, 2))"), "{user}");
    assert_eq!(body["messages"][0]["role"], "system");
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_template_and_prompt_modes_send_raw_prompts() {
    fake::capture_traces();
    let fake = Fake::always(Reply::sse(&[&text_answer(&["x", " + y<EO", "T>garbage"])])).await;
    let p = openai(&fake, "sk-test", |c| {
        c.completion_mode = CompletionMode::Template;
        c.fim_template = Some(custom_template());
    });
    let (deltas, fin, err) = drain(p.complete(&fim_req()).await.expect("stream opens")).await;
    assert_eq!(err, None);
    assert_eq!(deltas.concat(), "x + y", "the leaked stop token and what follows are stripped");
    assert_eq!(fin.map(|f| f.stop_reason), Some(StopReason::StopSequence));
    let r = fake.request(0);
    assert_eq!(r.path, "/v1/completions");
    let body = r.json();
    assert_eq!(body["prompt"], "<PRE>def add(a, b):\n<SUF>\n\nprint(add(1, 2))<MID>");
    assert_eq!(body.get("suffix"), None);
    assert_eq!(body["stop"], json!(["\n\n", "<EOT>"]));

    let fake = Fake::always(Reply::sse(&[&text_answer(&["    return a + b"])])).await;
    let p = openai(&fake, "sk-test", |c| c.completion_mode = CompletionMode::Prompt);
    let (deltas, _, err) = drain(p.complete(&fim_req()).await.expect("stream opens")).await;
    assert_eq!((deltas.concat(), err), ("    return a + b".to_owned(), None));
    let body = fake.request(0).json();
    assert_eq!((&body["prompt"], body.get("suffix")), (&json!("def add(a, b):\n"), None));
}

#[test]
fn settings_that_cannot_work_are_refused_when_the_provider_is_built() {
    let url = Some("http://127.0.0.1:9".to_owned());
    let err = build(ProviderKind::Openai, url.clone(), Some("gpt-4o"), None, |_| {}).expect_err("no key");
    assert_eq!(err.kind, ErrorKind::MissingKey { env: "OPENAI_API_KEY".into() });
    assert!(err.to_string().contains("$OPENAI_API_KEY"), "{err}");

    let err =
        build(ProviderKind::Openai, url.clone(), Some("gpt-4o"), None, |c| c.api_key_env = Some("WORK_KEY".into()))
            .expect_err("no key");
    assert!(err.to_string().contains("$WORK_KEY"), "{err}");

    let err = build(ProviderKind::Openai, url.clone(), None, Some("sk-t"), |_| {}).expect_err("no model");
    assert_eq!(err.kind, ErrorKind::Config);
    assert!(err.to_string().contains("providers.openai.model"), "{err}");

    let err = build(ProviderKind::Openai, url.clone(), Some("gpt-4o"), Some("sk-t"), |c| {
        c.completion_mode = CompletionMode::Infill;
    })
    .expect_err("no infill");
    assert!(err.to_string().contains("completion_mode `infill` is not available for kind `openai`"), "{err}");

    let err = build(ProviderKind::Openai, url.clone(), Some("gpt-4o"), Some("sk-t"), |c| {
        c.completion_mode = CompletionMode::Template;
    })
    .expect_err("no template for gpt-4o");
    assert!(err.to_string().contains("fim_template"), "{err}");

    let err = build(ProviderKind::Fireworks, url.clone(), Some("m"), Some("fw-t"), |c| {
        c.completion_mode = CompletionMode::Suffix;
    })
    .expect_err("fireworks has no suffix");
    assert!(err.to_string().contains("`suffix` is not available for kind `fireworks`; use `template`"), "{err}");

    let err = build(ProviderKind::OpenaiCompatible, url, None, None, |c| {
        c.fim_template = Some(FimTemplateConfig::Family("no-such-family".into()));
    })
    .expect_err("unknown family");
    assert!(err.to_string().contains("no-such-family"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Failures on the OpenAI wire

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_key_names_its_variable_and_is_never_shown() {
    fake::capture_traces();
    let key = fake::fake_key("sk");
    // OpenAI echoes (part of) the key; the message must not.
    let body = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {key}. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}}}"#
    );
    let fake = Fake::always(Reply::json(401, &body)).await;
    let p = openai(&fake, &key, |_| {});
    let err = chat_err(&p, &chat_req(), Feature::Chat).await;
    assert_eq!(err.kind, ErrorKind::Auth { status: 401, env: Some("OPENAI_API_KEY".into()) });
    let text = err.to_string();
    assert!(text.contains("$OPENAI_API_KEY") && text.contains("Incorrect API key provided"), "{text}");
    assert_eq!(fake.requests().len(), 1, "a rejected key is not retried");
    fake::assert_secret_absent(&key, &shown(&err));

    let fake = Fake::always(Reply::json(
        403,
        r#"{"error":{"message":"Country, region, or territory not supported","type":"request_forbidden","param":null,"code":"unsupported_country_region_territory"}}"#,
    ))
    .await;
    let p = openai(&fake, &key, |c| c.api_key_env = Some("TEAM_OPENAI_KEY".into()));
    let err = complete_err(&p, &fim_req()).await;
    assert_eq!(err.kind, ErrorKind::Auth { status: 403, env: Some("TEAM_OPENAI_KEY".into()) });
    assert!(err.to_string().contains("$TEAM_OPENAI_KEY"), "{err}");
    fake::assert_secret_absent(&key, &shown(&err));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_model_is_not_found() {
    fake::capture_traces();
    let key = fake::fake_key("sk");
    let fake = Fake::always(Reply::json(
        404,
        r#"{"error":{"message":"The model `gpt-4.1-mini` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#,
    ))
    .await;
    let p = openai(&fake, &key, |_| {});
    let err = chat_err(&p, &chat_req(), Feature::Chat).await;
    assert_eq!(err.kind, ErrorKind::NotFound { status: 404, model: Some("gpt-4.1-mini".into()) });
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert_eq!(fake.requests().len(), 1);
    fake::assert_secret_absent(&key, &shown(&err));
}

const RATE_LIMITED: &str = r#"{"error":{"message":"Rate limit reached for gpt-4.1-mini on requests per min (RPM): Limit 3, Used 3, Requested 1.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_are_waited_out_for_chat_but_never_for_completion() {
    fake::capture_traces();
    let key = fake::fake_key("sk");
    let answer = chat_answer(&["ok"]);
    let fake = Fake::start(move |_, i| {
        if i == 0 { Reply::json(429, RATE_LIMITED).header("retry-after", "0.2") } else { Reply::sse(&[&answer]) }
    })
    .await;
    let p = openai(&fake, &key, |_| {});
    let started = Instant::now();
    let (deltas, _, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("retried")).await;
    assert_eq!((deltas.concat(), err), ("ok".to_owned(), None));
    assert_eq!(fake.requests().len(), 2);
    assert!(started.elapsed() >= Duration::from_millis(200), "waited the retry-after");

    let fake = Fake::always(Reply::json(429, RATE_LIMITED).header("retry-after", "0.2")).await;
    let p = openai(&fake, &key, |_| {});
    let err = complete_err(&p, &fim_req()).await;
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(err.retry_after, Some(Duration::from_millis(200)));
    assert_eq!(fake.requests().len(), 1, "autocomplete never retries");
    // While the cooldown lasts autocomplete fails at once, without a request.
    let err = complete_err(&p, &fim_req()).await;
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(fake.requests().len(), 1);
    fake::assert_secret_absent(&key, &shown(&err));
}

#[tokio::test(flavor = "multi_thread")]
async fn long_retry_after_and_quota_errors_are_reported_not_retried() {
    fake::capture_traces();
    let fake = Fake::always(Reply::json(429, RATE_LIMITED).header("retry-after", "30")).await;
    let p = openai(&fake, "sk-test", |_| {});
    let err = chat_err(&p, &chat_req(), Feature::Chat).await;
    assert_eq!((err.kind.clone(), err.retry_after), (ErrorKind::RateLimited, Some(Duration::from_secs(30))));
    assert_eq!(fake.requests().len(), 1);
    assert!(err.to_string().contains("retry in 30 s"), "{err}");

    let fake = Fake::always(Reply::json(
        429,
        r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
    ))
    .await;
    let p = openai(&fake, "sk-test", |_| {});
    let err = chat_err(&p, &chat_req(), Feature::Chat).await;
    assert_eq!(err.kind, ErrorKind::QuotaExceeded);
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn overload_and_server_errors_are_retried_with_backoff_for_chat_only() {
    fake::capture_traces();
    let answer = chat_answer(&["ok"]);
    let fake = Fake::start(move |_, i| match i {
        0 => Reply::json(503, r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error","param":null,"code":null}}"#),
        _ => Reply::sse(&[&answer]),
    })
    .await;
    let p = openai(&fake, "sk-test", |_| {});
    let started = Instant::now();
    let (deltas, _, err) = drain(p.chat(&chat_req(), Feature::Edit).await.expect("retried")).await;
    assert_eq!((deltas.concat(), err), ("ok".to_owned(), None));
    assert_eq!(fake.requests().len(), 2);
    assert!(started.elapsed() >= Duration::from_millis(250), "backed off before retrying");

    let fake = Fake::always(Reply::json(
        500,
        r#"{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}"#,
    ))
    .await;
    let p = openai(&fake, "sk-test", |c| c.max_retries = 1);
    let err = chat_err(&p, &chat_req(), Feature::Chat).await;
    assert_eq!(err.kind, ErrorKind::Server { status: 500 });
    assert_eq!(fake.requests().len(), 2, "one try and max_retries = 1 retry");

    let fake = Fake::always(Reply::json(503, "Service Unavailable")).await;
    let p = openai(&fake, "sk-test", |_| {});
    let err = complete_err(&p, &fim_req()).await;
    assert_eq!(err.kind, ErrorKind::Overloaded { status: 503 });
    assert_eq!(fake.requests().len(), 1, "autocomplete never retries");
    // Chat mode of autocomplete goes through the chat path: still not retried.
    let err = chat_err(&p, &chat_req(), Feature::Completion).await;
    assert_eq!(err.kind, ErrorKind::Overloaded { status: 503 });
    assert_eq!(fake.requests().len(), 2);

    // A proxy in front of a self-hosted server may answer 529.
    let fake = Fake::always(Reply::json(529, r#"{"error":{"message":"Overloaded","type":"overloaded_error"}}"#)).await;
    let p = build(ProviderKind::OpenaiCompatible, Some(fake.url.clone()), None, None, |c| {
        c.completion_mode = CompletionMode::Suffix;
    })
    .expect("builds");
    let err = complete_err(&p, &fim_req()).await;
    assert_eq!(err.kind, ErrorKind::Overloaded { status: 529 });
    assert_eq!(fake.requests().len(), 1, "autocomplete never retries");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_stream_delivers_its_text_then_fails_and_is_never_resent() {
    fake::capture_traces();
    let fake =
        Fake::always(Reply::sse(&[&chunk("Hel"), &chunk("lo, wö")]).bytes("data: {\"id\":\"c1\",\"choi").cut()).await;
    let p = openai(&fake, "sk-test", |_| {});
    let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("stream opens")).await;
    assert_eq!(deltas.concat(), "Hello, wö");
    assert_eq!(fin, None);
    let err = err.expect("an error after the text");
    assert_eq!(err.kind, ErrorKind::Incomplete { received: 9 });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(fake.requests().len(), 1, "a started stream is never re-posted");

    // A body that ends cleanly but without `[DONE]` or a finish_reason was cut too.
    let fake = Fake::always(Reply::sse(&[&chunk("partial")])).await;
    let p = openai(&fake, "sk-test", |_| {});
    let (deltas, _, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("stream opens")).await;
    assert_eq!(deltas.concat(), "partial");
    assert_eq!(err.map(|e| e.kind), Some(ErrorKind::Incomplete { received: 7 }));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_inside_the_stream_is_an_error_not_text() {
    fake::capture_traces();
    let key = fake::fake_key("sk");
    let fake = Fake::always(
        Reply::sse(&[&chunk("Hel")])
            .delay(30)
            .bytes(format!(
                "data: {{\"error\":{{\"message\":\"The server had an error while processing your request. key {key}\",\"type\":\"server_error\",\"param\":null,\"code\":null}}}}\n\n"
            ))
            .bytes(DONE),
    )
    .await;
    let p = openai(&fake, &key, |_| {});
    let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("stream opens")).await;
    assert_eq!(deltas, ["Hel"]);
    assert_eq!(fin, None);
    let err = err.expect("the error");
    assert_eq!(err.kind, ErrorKind::InStream);
    assert!(err.detail.contains("server_error: The server had an error"), "{}", err.detail);
    fake::assert_secret_absent(&key, &shown(&err));

    // Classified by code: a rate limit, an overload.
    for (data, kind) in [
        (r#"{"error":{"message":"slow down","type":"tokens","code":"rate_limit_exceeded"}}"#, ErrorKind::RateLimited),
        (
            r#"{"error":{"message":"overloaded","type":"BadRequestError","code":503}}"#,
            ErrorKind::Overloaded { status: 503 },
        ),
    ] {
        let fake = Fake::always(Reply::sse(&[&format!("data: {data}\n\n")])).await;
        let p = openai(&fake, &key, |_| {});
        let err = chat_err(&p, &chat_req(), Feature::Chat).await;
        assert_eq!(err.kind, kind, "{data}");
        assert_eq!(fake.requests().len(), 1, "never retried once the answer started");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn error_lines_of_older_servers_are_errors() {
    fake::capture_traces();
    // llama.cpp before PR 16109: an `error:` field line; some servers: a bare JSON line.
    for (body, kind, words) in [
        (
            "error: {\"code\":500,\"message\":\"slot unavailable\",\"type\":\"server_error\"}\n\n",
            ErrorKind::InStream,
            "slot unavailable",
        ),
        (
            "{\"error\":{\"code\":503,\"message\":\"Loading model\",\"type\":\"unavailable_error\"}}\n",
            ErrorKind::Overloaded { status: 503 },
            "Loading model",
        ),
    ] {
        let full = chunk("a") + body;
        let fake = Fake::always(Reply::sse(&[&full])).await;
        let p = build(ProviderKind::OpenaiCompatible, Some(fake.url.clone()), None, None, |_| {}).expect("builds");
        let err = chat_err(&p, &chat_req(), Feature::Chat).await;
        assert_eq!(err.kind, kind, "{body}");
        assert!(err.detail.contains(words), "{}", err.detail);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_frames_are_reported_as_such() {
    fake::capture_traces();
    for body in ["data: {\"choices\":[{\"delta\":\n\n", "data: <html>oops</html>\n\n", "data: {\"choices\":7}\n\n"] {
        let fake = Fake::always(Reply::sse(&[&chunk("x"), body])).await;
        let p = openai(&fake, "sk-test", |_| {});
        let err = chat_err(&p, &chat_req(), Feature::Chat).await;
        assert_eq!(err.kind, ErrorKind::Malformed, "{body}");
        assert!(err.detail.contains("chat.completion.chunk"), "{}", err.detail);
        assert!(err.to_string().contains("providers.openai.kind"), "{err}");
    }
    let fake = Fake::always(Reply::sse(&[&text_chunk("x", None), "data: [1,2]\n\n"])).await;
    let p = build(ProviderKind::Openai, Some(fake.url.clone()), Some("gpt-3.5-turbo-instruct"), Some("sk"), |_| {})
        .expect("builds");
    let err = complete_err(&p, &fim_req()).await;
    assert_eq!(err.kind, ErrorKind::Malformed);
    assert!(err.detail.contains("text_completion"), "{}", err.detail);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_or_stalled_upstream_times_out() {
    fake::capture_traces();
    let fake = Fake::always(Reply::silent()).await;
    let p = openai(&fake, "sk-test", |c| c.first_byte_timeout_ms = 300);
    let started = Instant::now();
    let err = chat_err(&p, &chat_req(), Feature::Chat).await;
    assert_eq!(err.kind, ErrorKind::Timeout { phase: TimeoutPhase::FirstByte, after: Duration::from_millis(300) });
    assert!(started.elapsed() < Duration::from_millis(1000), "{:?}", started.elapsed());

    let fake = Fake::always(Reply::sse(&[&chunk("Hi")]).stall()).await;
    let p = openai(&fake, "sk-test", |c| c.idle_timeout_ms = 300);
    let (deltas, _, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("stream opens")).await;
    assert_eq!(deltas, ["Hi"]);
    assert_eq!(
        err.map(|e| e.kind),
        Some(ErrorKind::Timeout { phase: TimeoutPhase::Idle, after: Duration::from_millis(300) })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_stream_closes_the_connection_at_once() {
    fake::capture_traces();
    for stall in [false, true] {
        let reply = Reply::sse(&[&chunk("first")]);
        let reply = if stall { reply.stall() } else { reply.delay(3000).bytes(chunk("late")).bytes(DONE) };
        let fake = Fake::always(reply).await;
        let p = openai(&fake, "sk-test", |_| {});
        let mut s = p.chat(&chat_req(), Feature::Chat).await.expect("stream opens");
        assert_eq!(s.next().await.map(|e| e.expect("delta")), Some(Event::Delta("first".into())));
        drop(s);
        let dropped = Instant::now();
        let closed = fake.wait_close(Duration::from_secs(1)).await.expect("the fake sees the close");
        let lag = closed.saturating_duration_since(dropped);
        assert!(lag <= Duration::from_millis(50), "closed {lag:?} after the drop (stall: {stall})");
    }
    // The same for autocomplete, in template mode on a self-hosted server.
    let fake = Fake::always(Reply::sse(&[&text_chunk("x", None)]).delay(3000)).await;
    let p = build(ProviderKind::OpenaiCompatible, Some(fake.url.clone()), Some("m"), None, |c| {
        c.fim_template = Some(custom_template());
    })
    .expect("builds");
    let mut s = p.complete(&fim_req()).await.expect("stream opens");
    assert!(matches!(s.next().await, Some(Ok(Event::Delta(_)))));
    drop(s);
    let dropped = Instant::now();
    let closed = fake.wait_close(Duration::from_secs(1)).await.expect("the fake sees the close");
    assert!(closed.saturating_duration_since(dropped) <= Duration::from_millis(50));
}

/// Text a filter holds back (it might begin a stop token) still reaches the user when the
/// connection breaks, before the error.
#[tokio::test(flavor = "multi_thread")]
async fn held_back_text_is_delivered_when_the_connection_breaks() {
    fake::capture_traces();
    let fake = Fake::always(Reply::sse(&[&text_chunk("a + b <EO", None)]).delay(20).cut()).await;
    let p = build(ProviderKind::OpenaiCompatible, Some(fake.url.clone()), Some("m"), None, |c| {
        c.fim_template = Some(custom_template());
    })
    .expect("builds");
    let (deltas, fin, err) = drain(p.complete(&fim_req()).await.expect("stream opens")).await;
    assert_eq!((deltas.concat().as_str(), fin), ("a + b <EO", None));
    let e = err.expect("an error");
    assert_eq!(e.kind, ErrorKind::Incomplete { received: 9 }, "{e}");
}

/// A leaked stop token ends the answer on our side; the model, still generating, is stopped by
/// closing the connection while the stream value is still held.
#[tokio::test(flavor = "multi_thread")]
async fn an_answer_ended_by_a_leaked_stop_token_stops_the_model() {
    fake::capture_traces();
    let fake = Fake::always(Reply::sse(&[&text_chunk("    return a + b<EOT>junk", None)]).delay(3000)).await;
    let p = build(ProviderKind::OpenaiCompatible, Some(fake.url.clone()), Some("m"), None, |c| {
        c.fim_template = Some(custom_template());
    })
    .expect("builds");
    let mut s = p.complete(&fim_req()).await.expect("stream opens");
    assert_eq!(s.next().await, Some(Ok(Event::Delta("    return a + b".into()))));
    let done = s.next().await;
    assert!(matches!(&done, Some(Ok(Event::Done(f))) if f.stop_reason == StopReason::StopSequence), "{done:?}");
    let ended = Instant::now();
    let closed = fake.wait_close(Duration::from_secs(2)).await.expect("the fake sees the close");
    assert!(closed.saturating_duration_since(ended) <= Duration::from_millis(50));
    drop(s);
}

// ---------------------------------------------------------------------------------------------
// azure-openai

#[tokio::test(flavor = "multi_thread")]
async fn azure_classic_surface_puts_the_deployment_in_the_path_and_the_key_in_api_key() {
    fake::capture_traces();
    let key = fake::fake_key("az");
    let fake = Fake::always(Reply::chunked("text/event-stream", AZURE_TRANSCRIPT, &[9, 100, 3])).await;
    let p = build(ProviderKind::AzureOpenai, Some(format!("{}/", fake.url)), Some("my-gpt4o"), Some(&key), |c| {
        c.api_version = Some("2024-10-21".into());
    })
    .expect("builds");
    let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("stream opens")).await;
    assert_eq!(err, None);
    assert_eq!(deltas, ["Hello"]);
    assert_eq!(fin, Some(Finish { stop_reason: StopReason::EndTurn, usage: usage(9, 1) }));
    let r = fake.request(0);
    assert_eq!(r.path, "/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21");
    assert_eq!(r.header("api-key"), Some(key.as_str()));
    assert_eq!(r.header("authorization"), None);
    let body = r.json();
    assert_eq!(body.get("model"), None, "the path names the deployment");
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));

    // Autocomplete: a chat prompt by default, the legacy endpoint when `suffix` is asked for.
    drain(p.complete(&fim_req()).await.expect("stream opens")).await;
    assert_eq!(fake.request(1).path, "/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21");
    let fake = Fake::always(Reply::sse(&[COMPLETIONS_TRANSCRIPT])).await;
    let p = build(ProviderKind::AzureOpenai, Some(fake.url.clone()), Some("my-instruct"), Some(&key), |c| {
        c.api_version = Some("2024-10-21".into());
        c.completion_mode = CompletionMode::Suffix;
    })
    .expect("builds");
    let (deltas, _, err) = drain(p.complete(&fim_req()).await.expect("stream opens")).await;
    assert_eq!((deltas.concat(), err), ("    return a + b".to_owned(), None));
    let r = fake.request(0);
    assert_eq!(r.path, "/openai/deployments/my-instruct/completions?api-version=2024-10-21");
    assert_eq!(
        (r.json()["prompt"].clone(), r.json()["suffix"].clone()),
        (json!("def add(a, b):\n"), json!("\n\nprint(add(1, 2))"))
    );
    fake::assert_secret_absent(&key, &[format!("{p:?}")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_v1_surface_names_the_deployment_in_the_body() {
    fake::capture_traces();
    let key = fake::fake_key("az");
    let fake = Fake::always(Reply::sse(&[AZURE_TRANSCRIPT])).await;
    // The endpoint as some users paste it, with the path already on.
    let p = build(
        ProviderKind::AzureOpenai,
        Some(format!("{}/openai/v1/", fake.url)),
        Some("my-gpt4o"),
        Some(&key),
        |_| {},
    )
    .expect("builds");
    let (deltas, _, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("stream opens")).await;
    assert_eq!((deltas.concat(), err), ("Hello".to_owned(), None));
    let r = fake.request(0);
    assert_eq!(r.path, "/openai/v1/chat/completions");
    assert_eq!(r.header("api-key"), Some(key.as_str()));
    assert_eq!(r.header("authorization"), None);
    let body = r.json();
    assert_eq!(body["model"], "my-gpt4o");
    assert_eq!(body["max_completion_tokens"], 256);
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_content_filter_ends_the_answer_with_its_own_reason() {
    fake::capture_traces();
    let body = AZURE_TRANSCRIPT.replace(r#""finish_reason":"stop""#, r#""finish_reason":"content_filter""#);
    let fake = Fake::always(Reply::sse(&[&body])).await;
    let p =
        build(ProviderKind::AzureOpenai, Some(fake.url.clone()), Some("dep"), Some("k-test"), |_| {}).expect("builds");
    let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("stream opens")).await;
    assert_eq!((deltas.concat(), err), ("Hello".to_owned(), None));
    assert_eq!(fin.map(|f| f.stop_reason), Some(StopReason::ContentFilter));
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_errors_read_well_and_retry_after_ms_is_honoured() {
    fake::capture_traces();
    let key = fake::fake_key("az");
    let fake = Fake::always(Reply::json(
        404,
        r#"{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again."}}"#,
    ))
    .await;
    let p =
        build(ProviderKind::AzureOpenai, Some(fake.url.clone()), Some("my-gpt4o"), Some(&key), |_| {}).expect("builds");
    let err = chat_err(&p, &chat_req(), Feature::Chat).await;
    assert_eq!(err.kind, ErrorKind::NotFound { status: 404, model: Some("my-gpt4o".into()) });
    assert_eq!(
        err.to_string(),
        "provider `azure-openai` (azure-openai) model or deployment `my-gpt4o` was not found (HTTP 404): \
         DeploymentNotFound: The API deployment for this resource does not exist. If you created the deployment \
         within the last 5 minutes, please wait a moment and try again. To fix: check `providers.azure-openai.model` \
         and `providers.azure-openai.base_url`."
    );
    fake::assert_secret_absent(&key, &shown(&err));

    let fake = Fake::always(Reply::json(401, r#"{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}"#)).await;
    let p = build(ProviderKind::AzureOpenai, Some(fake.url.clone()), Some("dep"), Some(&key), |_| {}).expect("builds");
    let err = complete_err(&p, &fim_req()).await;
    assert_eq!(err.kind, ErrorKind::Auth { status: 401, env: Some("AZURE_OPENAI_API_KEY".into()) });
    assert!(err.to_string().contains("$AZURE_OPENAI_API_KEY"), "{err}");
    fake::assert_secret_absent(&key, &shown(&err));

    // `retry-after-ms` wins over the coarser `retry-after`.
    let limited = r#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 1 second."}}"#;
    let answer = chat_answer(&["ok"]);
    let fake = Fake::start(move |_, i| {
        if i == 0 {
            Reply::json(429, limited).header("retry-after-ms", "80").header("retry-after", "1")
        } else {
            Reply::sse(&[&answer])
        }
    })
    .await;
    let p = build(ProviderKind::AzureOpenai, Some(fake.url.clone()), Some("dep"), Some(&key), |_| {}).expect("builds");
    let started = Instant::now();
    let (deltas, _, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("retried")).await;
    assert_eq!((deltas.concat(), err), ("ok".to_owned(), None));
    assert_eq!(fake.requests().len(), 2);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(80) && waited < Duration::from_millis(900), "{waited:?}");

    let fake = Fake::always(Reply::json(429, limited).header("retry-after-ms", "80")).await;
    let p = build(ProviderKind::AzureOpenai, Some(fake.url.clone()), Some("dep"), Some(&key), |_| {}).expect("builds");
    let err = complete_err(&p, &fim_req()).await;
    assert_eq!((err.kind.clone(), err.retry_after), (ErrorKind::RateLimited, Some(Duration::from_millis(80))));
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn azure_needs_an_endpoint_a_deployment_and_a_key() {
    let err = build(ProviderKind::AzureOpenai, None, Some("dep"), Some("k"), |_| {}).expect_err("no base_url");
    assert_eq!(err.kind, ErrorKind::Config);
    assert!(
        err.to_string().contains("`providers.azure-openai.base_url`") && err.to_string().contains(".openai.azure.com"),
        "{err}"
    );
    let url = Some("https://res.openai.azure.com".to_owned());
    let err = build(ProviderKind::AzureOpenai, url.clone(), None, Some("k"), |_| {}).expect_err("no deployment");
    assert!(err.to_string().contains("deployment name"), "{err}");
    let err = build(ProviderKind::AzureOpenai, url, Some("dep"), None, |_| {}).expect_err("no key");
    assert_eq!(err.kind, ErrorKind::MissingKey { env: "AZURE_OPENAI_API_KEY".into() });
}

// ---------------------------------------------------------------------------------------------
// fireworks

#[tokio::test(flavor = "multi_thread")]
async fn fireworks_chat_reads_usage_from_the_final_chunk() {
    fake::capture_traces();
    let key = fake::fake_key("fw");
    // Fireworks puts usage on the chunk with the finish_reason, unasked.
    let last = json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
        "choices":[{"index":0,"delta":{},"finish_reason":"length"}],
        "usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}});
    let body = chunk("Hi") + &chunk(" there") + &format!("data: {last}\n\n") + DONE;
    let fake = Fake::always(Reply::sse(&[&body])).await;
    let model = "accounts/fireworks/models/llama-v3p1-8b-instruct";
    let p = build(ProviderKind::Fireworks, Some(format!("{}/inference/v1", fake.url)), Some(model), Some(&key), |_| {})
        .expect("builds");
    let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("stream opens")).await;
    assert_eq!((deltas.concat(), err), ("Hi there".to_owned(), None));
    assert_eq!(fin, Some(Finish { stop_reason: StopReason::MaxTokens, usage: usage(12, 2) }));
    let r = fake.request(0);
    assert_eq!(r.path, "/inference/v1/chat/completions");
    assert_eq!(r.header("authorization"), Some(format!("Bearer {key}").as_str()));
    let body = r.json();
    assert_eq!((&body["model"], &body["max_tokens"]), (&json!(model), &json!(256)));
    assert_eq!(body.get("max_completion_tokens"), None);
    assert_eq!(body.get("stream_options"), None, "usage comes unasked");

    // No FIM template for this model: autocomplete asks the chat endpoint.
    drain(p.complete(&fim_req()).await.expect("stream opens")).await;
    assert_eq!(fake.request(1).path, "/inference/v1/chat/completions");
    fake::assert_secret_absent(&key, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn fireworks_autocomplete_sends_the_models_fim_template_as_a_raw_prompt() {
    fake::capture_traces();
    let key = fake::fake_key("fw");
    let last = json!({"id":"cmpl-1","object":"text_completion","created":1,"model":"m",
        "choices":[{"text":"","index":0,"finish_reason":"stop"}],
        "usage":{"prompt_tokens":20,"completion_tokens":3,"total_tokens":23}});
    let body = text_chunk("x + y", None) + &format!("data: {last}\n\n") + DONE;
    let fake = Fake::always(Reply::sse(&[&body])).await;
    let base = Some(format!("{}/inference/v1", fake.url));
    let p = build(
        ProviderKind::Fireworks,
        base.clone(),
        Some("accounts/fireworks/models/qwen2p5-coder-7b"),
        Some(&key),
        |_| {},
    )
    .expect("builds");
    let (deltas, fin, err) = drain(p.complete(&fim_req()).await.expect("stream opens")).await;
    assert_eq!((deltas.concat(), err), ("x + y".to_owned(), None));
    assert_eq!(fin, Some(Finish { stop_reason: StopReason::EndTurn, usage: usage(20, 3) }));
    let r = fake.request(0);
    assert_eq!(r.path, "/inference/v1/completions");
    let body = r.json();
    let prompt = body["prompt"].as_str().expect("prompt");
    assert!(
        prompt.contains("<|fim_prefix|>")
            && prompt.contains("def add(a, b):\n<|fim_suffix|>\n\nprint(add(1, 2))<|fim_middle|>"),
        "{prompt}"
    );
    assert_eq!(body.get("suffix"), None);
    let stop: Vec<&str> = body["stop"].as_array().expect("stop").iter().filter_map(Value::as_str).collect();
    assert_eq!(stop[0], "\n\n", "the request's own stops come first");
    assert!(stop.contains(&"<|endoftext|>") && stop.contains(&"<|fim_pad|>"), "{stop:?}");

    // A custom template overrides detection.
    let p = build(ProviderKind::Fireworks, base, Some("accounts/me/models/mine"), Some(&key), |c| {
        c.fim_template = Some(custom_template());
    })
    .expect("builds");
    drain(p.complete(&fim_req()).await.expect("stream opens")).await;
    let body = fake.request(1).json();
    assert_eq!(body["prompt"], "<PRE>def add(a, b):\n<SUF>\n\nprint(add(1, 2))<MID>");
    assert_eq!(body["stop"], json!(["\n\n", "<EOT>"]));
    assert_eq!(body["max_tokens"], 64);
}

// ---------------------------------------------------------------------------------------------
// openai-compatible (vLLM, LM Studio, llama.cpp /v1)

#[tokio::test(flavor = "multi_thread")]
async fn compatible_without_a_key_sends_no_auth_and_without_a_model_no_model() {
    fake::capture_traces();
    let fake = Fake::always(Reply::sse(&[CHAT_TRANSCRIPT])).await;
    let p =
        build(ProviderKind::OpenaiCompatible, Some(format!("{}/v1", fake.url)), None, None, |_| {}).expect("builds");
    let req = ChatRequest { stop: (1..=6).map(|i| format!("s{i}")).collect(), ..chat_req() };
    let (deltas, fin, err) = drain(p.chat(&req, Feature::Chat).await.expect("stream opens")).await;
    assert_eq!((deltas.concat(), err), ("Hi".to_owned(), None));
    assert_eq!(fin.map(|f| f.usage), Some(usage(5, 1)));
    let r = fake.request(0);
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(r.header("authorization"), None);
    let body = r.json();
    assert_eq!(body.get("model"), None);
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(body["stop"].as_array().map(Vec::len), Some(6), "only OpenAI caps stops at four");

    // With a key (`--api-key`), it is sent as a Bearer token.
    let key = fake::fake_key("vllm");
    let p = build(
        ProviderKind::OpenaiCompatible,
        Some(format!("{}/v1", fake.url)),
        Some("Qwen/Qwen2.5-7B-Instruct"),
        Some(&key),
        |c| {
            c.api_key_env = Some("VLLM_API_KEY".into());
        },
    )
    .expect("builds");
    drain(p.chat(&chat_req(), Feature::Chat).await.expect("stream opens")).await;
    let r = fake.request(1);
    assert_eq!(r.header("authorization"), Some(format!("Bearer {key}").as_str()));
    assert_eq!(r.json()["model"], "Qwen/Qwen2.5-7B-Instruct");
    fake::assert_secret_absent(&key, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn compatible_autocomplete_renders_the_template_and_never_sends_suffix() {
    fake::capture_traces();
    // llama.cpp's /v1/completions: usage on the final chunk without a separate usage chunk, and
    // `[DONE]` without its blank line.
    let last = json!({"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}],"created":1,
        "model":"m","object":"text_completion","usage":{"completion_tokens":2,"prompt_tokens":30,"total_tokens":32},
        "timings":{"prompt_n":30,"predicted_n":2}});
    let body = text_chunk("x +", None) + &text_chunk(" y", None) + &format!("data: {last}\n\n") + "data: [DONE]";
    let fake = Fake::always(Reply::sse(&[&body])).await;
    let p = build(ProviderKind::OpenaiCompatible, Some(format!("{}/v1", fake.url)), Some("local"), None, |c| {
        c.fim_template = Some(custom_template());
    })
    .expect("builds");
    let (deltas, fin, err) = drain(p.complete(&fim_req()).await.expect("stream opens")).await;
    assert_eq!((deltas.concat(), err), ("x + y".to_owned(), None));
    assert_eq!(fin, Some(Finish { stop_reason: StopReason::EndTurn, usage: usage(30, 2) }));
    let r = fake.request(0);
    assert_eq!(r.path, "/v1/completions");
    let (body, _) = split_temperature(r.json());
    assert_eq!(
        body,
        json!({"model":"local","prompt":"<PRE>def add(a, b):\n<SUF>\n\nprint(add(1, 2))<MID>","max_tokens":64,
            "stop":["\n\n","<EOT>"],"stream":true,"stream_options":{"include_usage":true}})
    );

    // A model of a known family is detected from its name.
    let p = build(
        ProviderKind::OpenaiCompatible,
        Some(format!("{}/v1", fake.url)),
        Some("bigcode/starcoder2-3b"),
        None,
        |_| {},
    )
    .expect("builds");
    drain(p.complete(&fim_req()).await.expect("stream opens")).await;
    let body = fake.request(1).json();
    assert!(body["prompt"].as_str().is_some_and(|s| s.contains("<fim_prefix>")), "{body}");
    assert_eq!(body.get("suffix"), None);

    // No template known: a chat prompt.
    let p = build(
        ProviderKind::OpenaiCompatible,
        Some(format!("{}/v1", fake.url)),
        Some("llama-3.1-8b-instruct"),
        None,
        |_| {},
    )
    .expect("builds");
    let _ = p.complete(&fim_req()).await;
    assert_eq!(fake.request(2).path, "/v1/chat/completions");

    // Prompt mode: the prefix alone.
    let p = build(ProviderKind::OpenaiCompatible, Some(format!("{}/v1", fake.url)), Some("base"), None, |c| {
        c.completion_mode = CompletionMode::Prompt;
    })
    .expect("builds");
    drain(p.complete(&fim_req()).await.expect("stream opens")).await;
    let body = fake.request(3).json();
    assert_eq!((&body["prompt"], body.get("suffix")), (&json!("def add(a, b):\n"), None));
}

#[tokio::test(flavor = "multi_thread")]
async fn vllm_refusing_suffix_gives_a_clear_bad_request() {
    fake::capture_traces();
    let fake = Fake::always(Reply::json(
        400,
        r#"{"error":{"message":"suffix is not currently supported","type":"BadRequestError","param":null,"code":400}}"#,
    ))
    .await;
    let p = build(ProviderKind::OpenaiCompatible, Some(format!("{}/v1", fake.url)), Some("m"), None, |c| {
        c.completion_mode = CompletionMode::Suffix;
    })
    .expect("builds");
    let err = complete_err(&p, &fim_req()).await;
    assert_eq!(err.kind, ErrorKind::BadRequest { status: 400 });
    let text = err.to_string();
    assert!(
        text.contains("refused the request (HTTP 400): BadRequestError: suffix is not currently supported"),
        "{text}"
    );
    assert!(text.contains("`providers.openai-compatible.completion_mode` to `template`"), "{text}");
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(fake.request(0).json()["suffix"], "\n\nprint(add(1, 2))");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finish_reason_then_eof_without_done_is_a_whole_answer() {
    fake::capture_traces();
    let body = chunk("all") + &chunk(" here") + &finish_chunk("stop");
    let fake = Fake::always(Reply::sse(&[&body])).await;
    let p = build(ProviderKind::OpenaiCompatible, Some(fake.url.clone()), None, None, |_| {}).expect("builds");
    let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("stream opens")).await;
    assert_eq!((deltas.concat(), err), ("all here".to_owned(), None));
    assert_eq!(fin.map(|f| f.stop_reason), Some(StopReason::EndTurn));
}

#[test]
fn compatible_needs_a_base_url() {
    let err = build(ProviderKind::OpenaiCompatible, None, Some("m"), None, |_| {}).expect_err("no base_url");
    assert_eq!(err.kind, ErrorKind::Config);
    assert!(err.to_string().contains("`providers.openai-compatible.base_url`"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// quill-gateway

#[tokio::test(flavor = "multi_thread")]
async fn gateway_takes_a_bearer_token_and_prefix_and_suffix() {
    fake::capture_traces();
    let token = fake::fake_key("qg");
    let fake = Fake::always(Reply::sse(&[COMPLETIONS_TRANSCRIPT])).await;
    let p = build(ProviderKind::QuillGateway, Some(format!("{}/v1", fake.url)), Some("fast"), Some(&token), |_| {})
        .expect("builds");
    let (deltas, _, err) = drain(p.complete(&fim_req()).await.expect("stream opens")).await;
    assert_eq!((deltas.concat(), err), ("    return a + b".to_owned(), None));
    let r = fake.request(0);
    assert_eq!(r.path, "/v1/completions");
    assert_eq!(r.header("authorization"), Some(format!("Bearer {token}").as_str()));
    let body = r.json();
    assert_eq!(
        (&body["prompt"], &body["suffix"], &body["model"]),
        (&json!("def add(a, b):\n"), &json!("\n\nprint(add(1, 2))"), &json!("fast"))
    );

    let fake =
        Fake::always(Reply::json(401, r#"{"error":{"message":"bad token","type":"invalid_request_error"}}"#)).await;
    let p = build(ProviderKind::QuillGateway, Some(fake.url.clone()), None, Some(&token), |_| {}).expect("builds");
    let err = chat_err(&p, &chat_req(), Feature::Chat).await;
    assert!(err.to_string().contains("$QUILL_GATEWAY_TOKEN"), "{err}");
    fake::assert_secret_absent(&token, &shown(&err));

    let err = build(ProviderKind::QuillGateway, Some(fake.url.clone()), None, None, |_| {}).expect_err("no token");
    assert_eq!(err.kind, ErrorKind::MissingKey { env: "QUILL_GATEWAY_TOKEN".into() });
    let err = build(ProviderKind::QuillGateway, None, None, Some(&token), |_| {}).expect_err("no base_url");
    assert_eq!(err.kind, ErrorKind::Config);
}
