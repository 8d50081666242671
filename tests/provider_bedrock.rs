//! Bedrock (`invoke-with-response-stream`) against a fake that encodes its event-stream frames
//! with `aws-smithy-eventstream` and checks each SigV4 signature with its own HMAC-SHA256
//! implementation of the algorithm, so neither side of Quill's wire code checks itself.

mod fake;

use std::time::{Duration, Instant, SystemTime};

use aws_smithy_types::event_stream as smithy;
use base64::Engine as _;
use fake::{
    Fake, Recorded, Refused, Reply, assert_drop_closes, assert_idle_timeout, chunks_of, drain, short_timeouts, shown,
};
use hmac::{Hmac, Mac};
use quill::{
    config::{CompletionMode, Feature, ProviderConfig, ProviderKind},
    provider::{
        ChatRequest, CompletionRequest, Env, ErrorKind, Event, Finish, Message, Op, Provider, ProviderError, Role,
        StopReason, TimeoutPhase, Usage, env_from, parse_recorded,
    },
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const MODEL: &str = "anthropic.claude-3-5-haiku-20241022-v1:0";
const MODEL_PATH: &str = "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke-with-response-stream";
const ACCESS_KEY: &str = "AKIAQUILLTEST0000001";
const BEARER_VAR: &str = "AWS_BEARER_TOKEN_BEDROCK";

// ---------------------------------------------------------------------------------------------
// The fake's side: frames encoded by the AWS implementation.

fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let m = smithy::Message::new_from_parts(
        headers
            .iter()
            .map(|(k, v)| smithy::Header::new((*k).to_owned(), smithy::HeaderValue::String((*v).to_owned().into())))
            .collect(),
        bytes::Bytes::copy_from_slice(payload),
    );
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&m, &mut out).expect("encode a frame");
    out
}

/// A `chunk` event carrying one Anthropic stream event, with padding as Bedrock adds it.
fn chunk(event: &Value) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(event.to_string());
    let pad = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0"[..(b64.len() % 37) + 3].to_owned();
    let payload = json!({"bytes": b64, "p": pad}).to_string();
    frame(
        &[(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")],
        payload.as_bytes(),
    )
}

fn exception(name: &str, message: &str) -> Vec<u8> {
    frame(
        &[(":exception-type", name), (":content-type", "application/json"), (":message-type", "exception")],
        json!({ "message": message }).to_string().as_bytes(),
    )
}

fn start(input: u64) -> Vec<u8> {
    chunk(
        &json!({"type":"message_start","message":{"id":"msg_bdrk_1","type":"message","role":"assistant","model":"claude-3-5-haiku-20241022","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":input,"output_tokens":1}}}),
    )
}

fn delta(text: &str) -> Vec<u8> {
    chunk(&json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":text}}))
}

/// The rest of a stream after its text: block stop, stop reason, usage, metrics.
fn ending(stop_reason: &str, output: u64, metrics: (u64, u64)) -> Vec<Vec<u8>> {
    vec![
        chunk(&json!({"type":"content_block_stop","index":0})),
        chunk(
            &json!({"type":"message_delta","delta":{"stop_reason":stop_reason,"stop_sequence":null},"usage":{"output_tokens":output}}),
        ),
        chunk(
            &json!({"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":metrics.0,"outputTokenCount":metrics.1,"invocationLatency":412,"firstByteLatency":187}}),
        ),
    ]
}

/// A whole answer streaming `texts`.
fn answer(texts: &[&str], stop_reason: &str) -> Vec<Vec<u8>> {
    let mut frames = vec![
        start(11),
        chunk(&json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})),
        chunk(&json!({"type":"ping"})),
    ];
    frames.extend(texts.iter().map(|t| delta(t)));
    frames.extend(ending(stop_reason, 6, (11, 6)));
    frames
}

/// Cut the bytes so that no chunk boundary falls on a frame boundary by design: 1-byte pieces,
/// preludes split, several frames in one piece.
fn awkward(bytes: &[u8]) -> Vec<Vec<u8>> {
    chunks_of(bytes, &[1, 3, 11, 1, 13, 29, 200, 7, 64, 2])
}

fn event_stream() -> Reply {
    Reply::new(200).header("content-type", "application/vnd.amazon.eventstream").header("x-amzn-requestid", "req-1")
}

fn stream_reply(frames: &[Vec<u8>]) -> Reply {
    awkward(&frames.concat()).into_iter().fold(event_stream(), Reply::bytes)
}

fn aws_error(status: u16, kind: &str, message: &str) -> Reply {
    Reply::json(status, &json!({ "message": message }).to_string())
        .header("x-amzn-ErrorType", &format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"))
}

// ---------------------------------------------------------------------------------------------
// An independent SigV4 verifier.

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("any key length");
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// RFC 3986 encoding of everything but unreserved characters (SigV4's `UriEncode`).
fn uri_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[derive(Debug)]
struct Authorization {
    access_key: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
}

fn parse_authorization(h: &str) -> Authorization {
    let rest = h.strip_prefix("AWS4-HMAC-SHA256 ").unwrap_or_else(|| panic!("not SigV4: {h}"));
    let mut cred = None;
    let mut signed = None;
    let mut sig = None;
    for part in rest.split(", ") {
        let (k, v) = part.split_once('=').unwrap_or_else(|| panic!("bad part {part}"));
        match k {
            "Credential" => cred = Some(v.to_owned()),
            "SignedHeaders" => signed = Some(v.split(';').map(str::to_owned).collect::<Vec<_>>()),
            "Signature" => sig = Some(v.to_owned()),
            other => panic!("unexpected {other}"),
        }
    }
    let cred = cred.expect("Credential");
    let scope: Vec<&str> = cred.split('/').collect();
    assert_eq!(scope.len(), 5, "{cred}");
    assert_eq!(scope[4], "aws4_request");
    Authorization {
        access_key: scope[0].into(),
        date: scope[1].into(),
        region: scope[2].into(),
        service: scope[3].into(),
        signed_headers: signed.expect("SignedHeaders"),
        signature: sig.expect("Signature"),
    }
}

/// The signature a server holding `secret` computes for this request (AWS's published
/// algorithm; the canonical URI encodes the already-encoded path once more).
fn expected_signature(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
    secret: &str,
    auth: &Authorization,
) -> String {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    assert_eq!(query, "", "Bedrock's invoke has no query");
    let canonical_uri: Vec<String> = path.split('/').map(uri_encode).collect();
    let value = |name: &str| {
        let v = headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("signed header `{name}` was not sent"));
        v.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
    };
    let mut canonical_headers = String::new();
    for name in &auth.signed_headers {
        canonical_headers.push_str(&format!("{name}:{}\n", value(name)));
    }
    let creq = format!(
        "{method}\n{}\n{query}\n{canonical_headers}\n{}\n{}",
        canonical_uri.join("/"),
        auth.signed_headers.join(";"),
        sha256_hex(body)
    );
    let scope = format!("{}/{}/{}/aws4_request", auth.date, auth.region, auth.service);
    let sts = format!("AWS4-HMAC-SHA256\n{}\n{scope}\n{}", value("x-amz-date"), sha256_hex(creq.as_bytes()));
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), &auth.date);
    for part in [&auth.region, &auth.service, "aws4_request"] {
        key = hmac(&key, part);
    }
    hex::encode(hmac(&key, &sts))
}

/// Check the request's SigV4 signature against `secret`; the parsed header.
fn verify_sigv4(r: &Recorded, secret: &str) -> Authorization {
    let auth = parse_authorization(r.header("authorization").expect("an authorization header"));
    let date = r.header("x-amz-date").expect("x-amz-date");
    assert_eq!(date.len(), 16, "{date}");
    assert!(
        date.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            15 => b == b'Z',
            _ => b.is_ascii_digit(),
        }),
        "x-amz-date {date} is not YYYYMMDDTHHMMSSZ"
    );
    assert_eq!(&date[..8], auth.date, "the scope's date is the request's date");
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).expect("clock").as_secs();
    let (y, mo, d) = civil_from_days((now / 86_400) as i64);
    let today = format!("{y:04}{mo:02}{d:02}");
    let yesterday = {
        let (y, mo, d) = civil_from_days((now / 86_400) as i64 - 1);
        format!("{y:04}{mo:02}{d:02}")
    };
    assert!(auth.date == today || auth.date == yesterday, "signed on {} (today is {today})", auth.date);
    assert_eq!(auth.access_key, ACCESS_KEY);
    assert_eq!(auth.service, "bedrock", "the signing name is bedrock, not bedrock-runtime");
    for must in ["host", "x-amz-date", "content-type"] {
        assert!(auth.signed_headers.iter().any(|h| h == must), "{must} unsigned: {:?}", auth.signed_headers);
    }
    assert!(auth.signed_headers.windows(2).all(|w| w[0] < w[1]), "signed headers sorted");
    assert_eq!(expected_signature(&r.method, &r.path, &r.headers, &r.body, secret, &auth), auth.signature);
    auth
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

#[test]
fn the_verifier_reproduces_the_reference_vector() {
    // providers.md §6.2, so a wrong verifier cannot pass the tests below by agreeing with a
    // wrong signer.
    let auth = parse_authorization(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock/aws4_request, \
         SignedHeaders=content-type;host;x-amz-date, \
         Signature=f35972f0633cc88e3b92e8bb7d7c4f71693e292ad7b46b2549952c0cbba365ec",
    );
    let headers = [
        ("content-type", "application/json"),
        ("host", "bedrock-runtime.us-east-1.amazonaws.com"),
        ("x-amz-date", "20250101T000000Z"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let body =
        br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]}"#;
    assert_eq!(sha256_hex(body), "bfe9595c6d3fa2509aa43ae91038e137bdd65ac5d9fe6b5a6f3d86a876b1ce96");
    let sig = |path: &str| {
        expected_signature("POST", path, &headers, body, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", &auth)
    };
    assert_eq!(sig(MODEL_PATH), auth.signature);
    assert_ne!(sig(&MODEL_PATH.replace("%3A", ":")), auth.signature);
    assert_eq!(civil_from_days(20_089), (2025, 1, 1));
}

// ---------------------------------------------------------------------------------------------
// Quill's side.

struct Aws {
    secret: String,
    token: Option<String>,
}

fn aws_env(aws: &Aws, extra: &[(&str, &str)]) -> Env {
    let mut pairs: Vec<(&str, &str)> = vec![("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", &aws.secret)];
    if let Some(t) = &aws.token {
        pairs.push(("AWS_SESSION_TOKEN", t));
    }
    pairs.extend_from_slice(extra);
    env_from(&pairs)
}

fn new_aws(token: bool) -> Aws {
    Aws { secret: fake::fake_key("aws-secret"), token: token.then(|| fake::fake_key("aws-session-token")) }
}

fn config(fake: &Fake, tweak: impl FnOnce(&mut ProviderConfig)) -> ProviderConfig {
    let mut cfg = ProviderConfig::new(ProviderKind::Bedrock);
    cfg.base_url = Some(fake.url.clone());
    cfg.region = Some("eu-west-3".into());
    tweak(&mut cfg);
    cfg
}

fn build(cfg: &ProviderConfig, env: Env) -> Result<Provider, ProviderError> {
    Provider::build("claude-aws", cfg, Some(MODEL.to_owned()), env)
}

fn sigv4_provider(fake: &Fake, aws: &Aws, tweak: impl FnOnce(&mut ProviderConfig)) -> Provider {
    build(&config(fake, tweak), aws_env(aws, &[])).expect("provider")
}

fn chat_req() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::new(Role::System, "Be terse."), Message::new(Role::User, "Say hello.")],
        prefill: None,
        stop: vec!["END".into()],
        max_tokens: 256,
        temperature: 0.2,
    }
}

/// The shared Rust autocomplete request, at the default temperature.
fn completion_req() -> CompletionRequest {
    CompletionRequest { temperature: 0.0, ..fake::rust_completion_req() }
}

fn assert_aws_secrets_absent(aws: &Aws, shown: &[String]) {
    fake::assert_secret_absent(&aws.secret, shown);
    if let Some(t) = &aws.token {
        fake::assert_secret_absent(t, shown);
    }
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn chat_streams_through_sigv4_with_a_session_token() {
    fake::capture_traces();
    let aws = new_aws(true);
    let fake = Fake::always(stream_reply(&answer(&["Hel", "lo, wörld", "\n", "✓"], "end_turn"))).await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("opens")).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(deltas.concat(), "Hello, wörld\n✓");
    assert_eq!(
        fin,
        Some(Finish {
            stop_reason: StopReason::EndTurn,
            usage: Usage { input_tokens: Some(11), output_tokens: Some(6) }
        })
    );

    let r = fake.request(0);
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", MODEL_PATH));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("accept"), Some("application/vnd.amazon.eventstream"));
    assert_eq!(r.header("x-amzn-bedrock-accept"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 256,
            "system": "Be terse.",
            "messages": [{"role": "user", "content": "Say hello."}],
            "stop_sequences": ["END"],
            "temperature": 0.2,
        })
    );
    let auth = verify_sigv4(&r, &aws.secret);
    assert_eq!(auth.region, "eu-west-3");
    let other = new_aws(false);
    assert_ne!(expected_signature(&r.method, &r.path, &r.headers, &r.body, &other.secret, &auth), auth.signature);
    assert_eq!(r.header("x-amz-security-token"), aws.token.as_deref());
    assert!(auth.signed_headers.contains(&"x-amz-security-token".to_owned()), "{:?}", auth.signed_headers);
    assert!(auth.signed_headers.contains(&"x-amzn-bedrock-accept".to_owned()), "{:?}", auth.signed_headers);
    assert_aws_secrets_absent(&aws, &[format!("{p:?}")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_can_come_from_the_invocation_metrics_alone() {
    fake::capture_traces();
    let aws = new_aws(false);
    let frames = vec![
        chunk(&json!({"type":"message_start","message":{"id":"m","role":"assistant","content":[]}})),
        delta("x"),
        chunk(&json!({"type":"message_delta","delta":{"stop_reason":"max_tokens"}})),
        chunk(
            &json!({"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":31,"outputTokenCount":64,"invocationLatency":9,"firstByteLatency":3}}),
        ),
    ];
    let fake = Fake::always(stream_reply(&frames)).await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let (text, fin) = p.chat(&chat_req(), Feature::Chat).await.expect("opens").text().await.expect("completes");
    assert_eq!(text, "x");
    assert_eq!(fin.stop_reason, StopReason::MaxTokens);
    assert_eq!(fin.usage, Usage { input_tokens: Some(31), output_tokens: Some(64) });
    let r = fake.request(0);
    verify_sigv4(&r, &aws.secret);
    assert_eq!(r.header("x-amz-security-token"), None, "no token without AWS_SESSION_TOKEN");
    assert_eq!(r.header("x-amz-content-sha256"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bedrock_api_key_is_sent_as_bearer_without_signing() {
    fake::capture_traces();
    let key = fake::fake_key("ABSK");
    let aws = new_aws(true);
    let fake = Fake::always(stream_reply(&answer(&["ok"], "end_turn"))).await;
    // The API key wins even when AWS credentials are in the environment too.
    let p = build(&config(&fake, |_| {}), aws_env(&aws, &[(BEARER_VAR, &key)])).expect("provider");
    let (text, _) = p.chat(&chat_req(), Feature::Chat).await.expect("opens").text().await.expect("completes");
    assert_eq!(text, "ok");
    let r = fake.request(0);
    assert_eq!(r.header("authorization"), Some(format!("Bearer {key}").as_str()));
    for h in ["x-amz-date", "x-amz-security-token", "x-amz-content-sha256"] {
        assert_eq!(r.header(h), None, "{h} sent in Bearer mode");
    }
    assert_eq!(r.path, MODEL_PATH);
    fake::assert_secret_absent(&key, &[format!("{p:?}")]);
    assert_aws_secrets_absent(&aws, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn autocomplete_asks_as_a_prefilled_chat() {
    fake::capture_traces();
    let aws = new_aws(false);
    let mut frames = vec![start(40), delta("a +"), delta(" b")];
    frames.extend(ending("stop_sequence", 3, (40, 3)));
    let fake = Fake::always(stream_reply(&frames)).await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let (text, fin) = p.complete(&completion_req()).await.expect("opens").text().await.expect("completes");
    assert_eq!(text, "a + b");
    assert_eq!(fin.usage, Usage { input_tokens: Some(40), output_tokens: Some(3) });
    let r = fake.request(0);
    verify_sigv4(&r, &aws.secret);
    let body = r.json();
    assert_eq!(body["anthropic_version"], "bedrock-2023-05-31");
    assert!(body.get("model").is_none() && body.get("stream").is_none(), "{body}");
    let messages = body["messages"].as_array().expect("messages");
    let last = messages.last().expect("a turn");
    assert_eq!(last["role"], "assistant", "the answer is prefilled: {body}");
    assert_eq!(last["content"], "<fill>");
    assert!(messages[0]["content"].as_str().expect("text").contains("fn add(a: i32, b: i32) -> i32 {"));
    assert!(body["stop_sequences"].as_array().expect("stops").contains(&json!("</fill>")), "{body}");

    // Only the chat prompt is possible.
    let e = build(&config(&fake, |c| c.completion_mode = CompletionMode::Template), aws_env(&aws, &[]))
        .expect_err("no FIM on Bedrock");
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.to_string().contains("completion_mode `template` is not available for kind `bedrock`"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn model_arns_and_regions() {
    fake::capture_traces();
    let aws = new_aws(false);
    let fake = Fake::always(stream_reply(&answer(&["ok"], "end_turn"))).await;
    let arn = "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0";
    let cfg = config(&fake, |_| {});
    let p = Provider::build("b", &cfg, Some(arn.into()), aws_env(&aws, &[])).expect("provider");
    p.chat(&chat_req(), Feature::Chat).await.expect("opens").text().await.expect("completes");
    let r = fake.request(0);
    assert_eq!(
        r.path,
        "/model/arn%3Aaws%3Abedrock%3Aus-west-2%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke-with-response-stream"
    );
    verify_sigv4(&r, &aws.secret);

    // config `region`, then $AWS_REGION, then $AWS_DEFAULT_REGION, then us-east-1.
    let both = [("AWS_REGION", "eu-central-1"), ("AWS_DEFAULT_REGION", "ap-south-1")];
    type Case<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 4] = [
        (Some("ca-central-1"), &both, "ca-central-1"),
        (None, &both, "eu-central-1"),
        (None, &both[1..], "ap-south-1"),
        (None, &[], "us-east-1"),
    ];
    for (i, (region, env, want)) in cases.into_iter().enumerate() {
        let cfg = config(&fake, |c| c.region = region.map(str::to_owned));
        let p = build(&cfg, aws_env(&aws, env)).expect("provider");
        p.chat(&chat_req(), Feature::Chat).await.expect("opens").text().await.expect("completes");
        assert_eq!(verify_sigv4(&fake.request(i + 1), &aws.secret).region, want);
    }

    let e = build(&config(&fake, |c| c.region = Some("us-east-1.evil.example/".into())), aws_env(&aws, &[]))
        .expect_err("not a region");
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.to_string().contains("region"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_credentials_name_both_ways_to_authenticate() {
    fake::capture_traces();
    let fake = Fake::always(Reply::json(500, "{}")).await;
    let e = build(&config(&fake, |_| {}), env_from(&[])).expect_err("no credentials");
    assert!(matches!(&e.kind, ErrorKind::MissingKey { .. }), "{e:?}");
    let text = e.to_string();
    for var in ["$AWS_BEARER_TOKEN_BEDROCK", "$AWS_ACCESS_KEY_ID", "$AWS_SECRET_ACCESS_KEY"] {
        assert!(text.contains(var), "{var} missing from: {text}");
    }

    let e = build(&config(&fake, |_| {}), env_from(&[("AWS_ACCESS_KEY_ID", ACCESS_KEY)])).expect_err("half");
    assert_eq!(e.kind, ErrorKind::MissingKey { env: "AWS_SECRET_ACCESS_KEY".into() });

    let mut cfg = config(&fake, |_| {});
    cfg.api_key_env = Some("MY_BEDROCK_KEY".into());
    let e = build(&cfg, env_from(&[])).expect_err("renamed key variable");
    assert!(e.to_string().contains("$MY_BEDROCK_KEY"), "{e}");
    let e = Provider::build("b", &config(&fake, |_| {}), None, aws_env(&new_aws(false), &[])).expect_err("no model");
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(fake.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exception_mid_stream_is_an_error_after_the_text() {
    fake::capture_traces();
    let aws = new_aws(true);
    let head = [start(11), delta("partial ")].concat();
    let reply = event_stream()
        .bytes(&head[..40])
        .bytes(&head[40..])
        .delay(60)
        .bytes(exception("throttlingException", "Too many tokens, please wait before trying again."));
    let fake = Fake::always(reply).await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("opens")).await;
    assert_eq!(deltas.concat(), "partial ");
    assert!(fin.is_none());
    let e = err.expect("an error");
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert!(e.to_string().contains("throttlingException: Too many tokens"), "{e}");
    assert_eq!(fake.requests().len(), 1, "never re-sent after bytes streamed");
    assert_aws_secrets_absent(&aws, &shown(&e));

    let cases = [
        ("serviceUnavailableException", ErrorKind::Overloaded { status: 503 }),
        ("internalServerException", ErrorKind::Server { status: 500 }),
        ("modelStreamErrorException", ErrorKind::InStream),
        ("modelTimeoutException", ErrorKind::InStream),
        ("validationException", ErrorKind::InStream),
    ];
    for (name, kind) in cases {
        let fake = Fake::always(stream_reply(&[start(1), exception(name, "no")])).await;
        let p = sigv4_provider(&fake, &aws, |_| {});
        let e = p.chat(&chat_req(), Feature::Chat).await.expect("opens").text().await.expect_err(name);
        assert_eq!(e.kind, kind, "{name}");
        assert!(e.detail.starts_with(&format!("{name}: no")), "{}", e.detail);
    }

    // An Anthropic error event inside a chunk.
    let err = chunk(&json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}));
    let fake = Fake::always(stream_reply(&[start(1), err])).await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let e = p.chat(&chat_req(), Feature::Chat).await.expect("opens").text().await.expect_err("overloaded");
    assert_eq!(e.kind, ErrorKind::Overloaded { status: 529 });

    // The protocol-level error message.
    let err = frame(&[(":message-type", "error"), (":error-code", "InternalFailure"), (":error-message", "oops")], b"");
    let fake = Fake::always(stream_reply(&[start(1), err])).await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let e = p.chat(&chat_req(), Feature::Chat).await.expect("opens").text().await.expect_err("error frame");
    assert_eq!(e.kind, ErrorKind::InStream);
    assert!(e.detail.contains("InternalFailure: oops"), "{}", e.detail);
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_frames_are_malformed() {
    fake::capture_traces();
    let aws = new_aws(false);
    let mut bad = delta(" more");
    let n = bad.len();
    bad[n - 20] ^= 0x01; // inside the payload: the message CRC catches it
    let good = [start(3), delta("kept")].concat();
    let fake = Fake::always(event_stream().bytes(&good).delay(60).bytes(&bad[..9]).bytes(&bad[9..])).await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let (deltas, _, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("opens")).await;
    assert_eq!(deltas.concat(), "kept");
    let e = err.expect("an error");
    assert_eq!(e.kind, ErrorKind::Malformed);
    assert!(e.detail.contains("message CRC mismatch"), "{}", e.detail);

    let mut bad = start(3);
    bad[9] ^= 0x80;
    let fake = Fake::always(stream_reply(&[bad])).await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let e = p.chat(&chat_req(), Feature::Chat).await.expect("opens").text().await.expect_err("prelude");
    assert_eq!(e.kind, ErrorKind::Malformed);
    assert!(e.detail.contains("prelude CRC mismatch"), "{}", e.detail);

    // Valid frames, wrong contents.
    let not_base64 = frame(
        &[(":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event")],
        br#"{"bytes":"%%%"}"#,
    );
    let fake = Fake::always(stream_reply(&[start(3), not_base64])).await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let e = p.chat(&chat_req(), Feature::Chat).await.expect("opens").text().await.expect_err("base64");
    assert_eq!(e.kind, ErrorKind::Malformed);
    assert!(e.detail.contains("not base64"), "{}", e.detail);

    // An SSE answer where frames were expected.
    let fake = Fake::always(Reply::sse(&["event: message_start\ndata: {}\n\n"])).await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let e = p.chat(&chat_req(), Feature::Chat).await.expect("opens").text().await.expect_err("not frames");
    assert_eq!(e.kind, ErrorKind::Malformed);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_cut_inside_a_frame_is_incomplete() {
    fake::capture_traces();
    let aws = new_aws(false);
    let next = delta("lost");
    let fake =
        Fake::always(event_stream().bytes([start(3), delta("got ")].concat()).delay(30).bytes(&next[..50]).cut()).await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let (deltas, fin, err) = drain(p.chat(&chat_req(), Feature::Chat).await.expect("opens")).await;
    assert_eq!(deltas.concat(), "got ");
    assert!(fin.is_none());
    let e = err.expect("an error");
    assert_eq!(e.kind, ErrorKind::Incomplete { received: 4 });

    // A body that ends cleanly, but inside a frame.
    let fake = Fake::always(event_stream().bytes(start(3)).bytes(&next[..50])).await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let e = p.chat(&chat_req(), Feature::Chat).await.expect("opens").text().await.expect_err("truncated");
    assert!(matches!(e.kind, ErrorKind::Malformed | ErrorKind::Incomplete { .. }), "{e:?}");

    // Whole frames, but no message_stop.
    let fake = Fake::always(stream_reply(&[start(3), delta("half")])).await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let e = p.chat(&chat_req(), Feature::Chat).await.expect("opens").text().await.expect_err("no end");
    assert_eq!(e.kind, ErrorKind::Incomplete { received: 4 });
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_credentials_name_the_right_variables() {
    fake::capture_traces();
    let aws = new_aws(true);
    let fake = Fake::always(aws_error(
        403,
        "UnrecognizedClientException",
        "The security token included in the request is invalid.",
    ))
    .await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let e = p.chat(&chat_req(), Feature::Chat).await.refused("403");
    assert!(matches!(e.kind, ErrorKind::Auth { status: 403, .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("UnrecognizedClientException: The security token included in the request is invalid"),
        "{text}"
    );
    assert!(text.contains("$AWS_ACCESS_KEY_ID") && text.contains("$AWS_SESSION_TOKEN"), "{text}");
    assert!(!text.contains(BEARER_VAR), "SigV4 was used, not the API key: {text}");
    assert_eq!(fake.requests().len(), 1, "auth errors are not retried");
    assert_aws_secrets_absent(&aws, &shown(&e));

    // A server that echoes the credentials back: scrubbed from the message.
    let echo = format!("Signature mismatch for secret {} and token {}", aws.secret, aws.token.as_deref().unwrap_or(""));
    let fake = Fake::always(aws_error(403, "InvalidSignatureException", &echo)).await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let e = p.chat(&chat_req(), Feature::Chat).await.refused("403");
    assert!(e.to_string().contains("InvalidSignatureException"), "{e}");
    assert_aws_secrets_absent(&aws, &shown(&e));

    let fake = Fake::always(aws_error(
        403,
        "InvalidSignatureException",
        "Signature expired: 20250101T000000Z is now earlier than 20250101T001000Z",
    ))
    .await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let e = p.chat(&chat_req(), Feature::Chat).await.refused("403");
    assert!(e.to_string().contains("clock"), "{e}");

    // Bearer mode names the key's variable.
    let key = fake::fake_key("ABSK");
    let fake = Fake::always(aws_error(403, "AccessDeniedException", &format!("Invalid API key {key}"))).await;
    let p = build(&config(&fake, |_| {}), env_from(&[(BEARER_VAR, &key)])).expect("provider");
    let e = p.complete(&completion_req()).await.refused("403");
    assert_eq!(e.kind, ErrorKind::Auth { status: 403, env: Some(BEARER_VAR.into()) });
    assert!(e.to_string().contains("$AWS_BEARER_TOKEN_BEDROCK"), "{e}");
    fake::assert_secret_absent(&key, &shown(&e));
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_and_overload_retry_for_chat_only() {
    fake::capture_traces();
    let aws = new_aws(true);
    let throttled = || {
        aws_error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
            .header("retry-after", "0")
    };
    let ok = stream_reply(&answer(&["fine"], "end_turn"));
    let fake = Fake::start(move |_, i| if i == 0 { throttled() } else { ok.clone() }).await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let (text, _) = p.chat(&chat_req(), Feature::Chat).await.expect("retried").text().await.expect("completes");
    assert_eq!(text, "fine");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    // The retry re-sends the same signed bytes, and the signature still verifies.
    assert_eq!(reqs[0].body, reqs[1].body);
    assert_eq!(reqs[0].header("authorization"), reqs[1].header("authorization"));
    verify_sigv4(&reqs[1], &aws.secret);

    let fake = Fake::always(
        aws_error(429, "ThrottlingException", "Too many requests, please wait before trying again.")
            .header("retry-after", "3"),
    )
    .await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let e = p.complete(&completion_req()).await.refused("throttled");
    assert_eq!(e.kind, ErrorKind::RateLimited);
    assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
    assert!(e.to_string().contains("ThrottlingException: Too many requests"), "{e}");
    assert_eq!(fake.requests().len(), 1, "autocomplete never retries");
    assert_aws_secrets_absent(&aws, &shown(&e));

    let unavailable = || aws_error(503, "ServiceUnavailableException", "Bedrock is unable to process your request.");
    let ok = stream_reply(&answer(&["up"], "end_turn"));
    let fake = Fake::start(move |_, i| if i == 0 { unavailable() } else { ok.clone() }).await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let started = Instant::now();
    let (text, _) = p.chat(&chat_req(), Feature::Edit).await.expect("retried").text().await.expect("completes");
    assert_eq!(text, "up");
    assert_eq!(fake.requests().len(), 2);
    assert!(started.elapsed() >= Duration::from_millis(240), "backed off only {:?}", started.elapsed());

    let fake = Fake::always(unavailable()).await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let e = p.complete(&completion_req()).await.refused("unavailable");
    assert_eq!(e.kind, ErrorKind::Overloaded { status: 503 });
    assert_eq!(fake.requests().len(), 1);

    let fake =
        Fake::always(aws_error(404, "ResourceNotFoundException", "Could not resolve the foundation model.")).await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let e = p.chat(&chat_req(), Feature::Chat).await.refused("404");
    assert_eq!(e.kind, ErrorKind::NotFound { status: 404, model: Some(MODEL.into()) });
    assert!(e.to_string().contains("ResourceNotFoundException: Could not resolve the foundation model"), "{e}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn stalls_time_out() {
    fake::capture_traces();
    let aws = new_aws(false);
    let fake = Fake::always(event_stream().bytes([start(1), delta("so")].concat()).stall()).await;
    let p = sigv4_provider(&fake, &aws, short_timeouts);
    assert_idle_timeout(p.chat(&chat_req(), Feature::Chat), "so").await;

    let fake = Fake::always(Reply::silent()).await;
    let p = sigv4_provider(&fake, &aws, short_timeouts);
    let e = p.complete(&completion_req()).await.refused("no answer");
    assert!(matches!(e.kind, ErrorKind::Timeout { phase: TimeoutPhase::FirstByte, .. }), "{e:?}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_stream_closes_the_connection() {
    fake::capture_traces();
    let aws = new_aws(true);
    let fake =
        Fake::always(event_stream().bytes([start(1), delta("first")].concat()).delay(5_000).bytes(delta("never")))
            .await;
    let p = sigv4_provider(&fake, &aws, |_| {});
    let mut s = p.chat(&chat_req(), Feature::Chat).await.expect("opens");
    assert_eq!(s.next().await.expect("an event").expect("ok"), Event::Delta("first".into()));
    assert_drop_closes(&fake, s, "bedrock chat").await;
    assert_aws_secrets_absent(&aws, &[]);
}

#[test]
fn the_reference_frame_ends_a_recorded_stream() {
    // providers.md §6.3's exact `chunk` frame, carrying `{"type":"message_stop"}`.
    let stop = hex::decode(
        "000000870000004b87ea2bf30b3a6576656e742d747970650700056368756e6b0d3a636f6e74656e742d74797065070010\
         6170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b226279746573223a2265\
         794a306558426c496a6f696257567a6332466e5a56397a64473977496e303d227dba48ab22",
    )
    .expect("hex");
    let body = [start(2), delta("done"), stop].concat();
    for op in [Op::Chat, Op::Complete] {
        for cut in [1, 12, 135, body.len() - 70] {
            let chunks = vec![bytes::Bytes::copy_from_slice(&body[..cut]), bytes::Bytes::copy_from_slice(&body[cut..])];
            let (text, fin) = parse_recorded(ProviderKind::Bedrock, op, chunks).expect("parses");
            assert_eq!(text, "done");
            assert_eq!(fin.usage, Usage { input_tokens: Some(2), output_tokens: Some(1) });
        }
    }
}
