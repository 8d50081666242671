//! The `vertex` provider against a fake Google: a token endpoint that checks the service-account
//! JWT with the key's public half, and a `streamRawPredict` endpoint speaking Anthropic SSE.

mod fake;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
};

use fake::{Fake, Recorded, Refused, Reply};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use quill::{
    config::{Feature, ProviderConfig, ProviderKind},
    provider::{ChatRequest, CompletionRequest, ErrorKind, Message, Provider, ProviderError, Role, env_from},
};
use rsa::{
    RsaPrivateKey, RsaPublicKey,
    pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding},
};
use serde::Deserialize;

const MODEL: &str = "claude-3-5-haiku@20241022";
const PROJECT: &str = "quill-test-project";
const EMAIL: &str = "quill-ci@quill-test-project.iam.gserviceaccount.com";
const KID: &str = "0123456789abcdef0123456789abcdef01234567";
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const GRANT: &str = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";

/// An RSA key pair made once per test binary (generating one takes a moment).
struct Keys {
    private_pem: String,
    public_pem: String,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("generate an RSA key");
        let private_pem = key.to_pkcs8_pem(LineEnding::LF).expect("PKCS#8 PEM").to_string();
        let public_pem = RsaPublicKey::from(&key).to_public_key_pem(LineEnding::LF).expect("public PEM");
        Keys { private_pem, public_pem }
    })
}

/// Lines of the private key's body: what a leak would show.
fn key_fragments() -> Vec<&'static str> {
    keys().private_pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    scope: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// What the fake token endpoint does with a request: check it as Google would.
fn check_token_request(r: &Recorded, token_uri: &str) -> Result<Claims, String> {
    if r.method != "POST" {
        return Err(format!("method {}", r.method));
    }
    if r.header("content-type") != Some("application/x-www-form-urlencoded") {
        return Err(format!("content-type {:?}", r.header("content-type")));
    }
    let body = String::from_utf8(r.body.clone()).map_err(|e| e.to_string())?;
    let (grant, assertion) = body.split_once('&').ok_or("one field only")?;
    if grant != GRANT {
        return Err(format!("grant {grant}"));
    }
    let assertion = assertion.strip_prefix("assertion=").ok_or("no assertion")?;
    let header = jsonwebtoken::decode_header(assertion).map_err(|e| e.to_string())?;
    if header.alg != Algorithm::RS256 || header.kid.as_deref() != Some(KID) {
        return Err(format!("header {header:?}"));
    }
    let key = DecodingKey::from_rsa_pem(keys().public_pem.as_bytes()).map_err(|e| e.to_string())?;
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[token_uri]);
    v.set_issuer(&[EMAIL]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    let claims = jsonwebtoken::decode::<Claims>(assertion, &key, &v).map_err(|e| e.to_string())?.claims;
    if claims.iss != EMAIL
        || claims.aud != token_uri
        || claims.scope != SCOPE
        || claims.exp.saturating_sub(claims.iat) > 3600
        || claims.exp <= claims.iat
    {
        return Err(format!("claims {claims:?}"));
    }
    Ok(claims)
}

fn invalid_grant() -> Reply {
    Reply::json(400, r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#)
}

const ANSWER: &str = "event: message_start
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_v\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-3-5-haiku-20241022\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}

event: content_block_start
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}

event: ping
data: {\"type\": \"ping\"}

event: content_block_delta
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi from Vertex\"}}

event: content_block_stop
data: {\"type\":\"content_block_stop\",\"index\":0}

event: message_delta
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":4}}

event: message_stop
data: {\"type\":\"message_stop\"}

";

/// A fake Google. Token requests are checked; the n-th valid one gets `ya29.token-<n>` with
/// `expires_in`. `stream` answers everything else.
struct Google {
    fake: Fake,
    token_uri: String,
    problems: Arc<Mutex<Vec<String>>>,
}

impl Google {
    async fn start(expires_in: u64, stream: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Google {
        let problems = Arc::new(Mutex::new(Vec::new()));
        let issued = Arc::new(Mutex::new(0u32));
        let uri = Arc::new(OnceLock::<String>::new());
        let (p, u) = (problems.clone(), uri.clone());
        let fake = Fake::start(move |r, _| {
            if r.path != "/token" {
                return stream(r);
            }
            match check_token_request(r, u.get().map(String::as_str).unwrap_or_default()) {
                Ok(_) => {
                    let mut n = issued.lock().expect("lock");
                    *n += 1;
                    Reply::json(
                        200,
                        &format!(
                            r#"{{"access_token":"ya29.token-{}-{}","expires_in":{expires_in},"token_type":"Bearer"}}"#,
                            std::process::id(),
                            *n
                        ),
                    )
                }
                Err(why) => {
                    p.lock().expect("lock").push(why);
                    invalid_grant()
                }
            }
        })
        .await;
        let token_uri = format!("{}/token", fake.url);
        uri.set(token_uri.clone()).expect("set once");
        Google { fake, token_uri, problems }
    }

    fn token(&self, n: u32) -> String {
        format!("ya29.token-{}-{n}", std::process::id())
    }

    fn token_requests(&self) -> usize {
        self.fake.requests().iter().filter(|r| r.path == "/token").count()
    }

    fn stream_requests(&self) -> Vec<Recorded> {
        self.fake.requests().into_iter().filter(|r| r.path != "/token").collect()
    }

    fn assert_tokens_were_valid(&self) {
        assert_eq!(*self.problems.lock().expect("lock"), Vec::<String>::new());
    }
}

fn stream_path(region: &str) -> String {
    format!("/v1/projects/{PROJECT}/locations/{region}/publishers/anthropic/models/{MODEL}:streamRawPredict")
}

/// A service-account key file in `dir`, its token URI pointing at the fake.
fn key_file(dir: &Path, token_uri: &str) -> PathBuf {
    let sa = serde_json::json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": KID,
        "private_key": keys().private_pem,
        "client_email": EMAIL,
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    });
    let path = dir.join("service-account.json");
    std::fs::write(&path, sa.to_string()).expect("write the key file");
    path
}

fn config(g: &Google, file: Option<&Path>) -> ProviderConfig {
    let mut cfg = ProviderConfig::new(ProviderKind::Vertex);
    cfg.base_url = Some(g.fake.url.clone());
    cfg.credentials_file = file.map(Path::to_owned);
    cfg
}

fn build(cfg: &ProviderConfig, env: &[(&str, &str)]) -> Result<Provider, ProviderError> {
    Provider::build("claude-vertex", cfg, Some(MODEL.into()), env_from(env))
}

fn chat_req() -> ChatRequest {
    ChatRequest {
        messages: vec![Message::new(Role::System, "Be brief."), Message::new(Role::User, "Hello?")],
        prefill: Some("Hi ".into()),
        stop: vec!["\n\nHuman:".into()],
        max_tokens: 128,
        temperature: 0.5,
    }
}

fn sse_ok(_: &Recorded) -> Reply {
    Reply::sse(&[ANSWER])
}

/// No secret in the trace log or in anything shown: the key, the token, the signed assertion.
fn assert_nothing_leaked(g: &Google, shown: &[String]) {
    for fragment in key_fragments() {
        fake::assert_secret_absent(fragment, shown);
    }
    for r in g.fake.requests() {
        if r.path == "/token" {
            let body = String::from_utf8_lossy(&r.body).into_owned();
            let assertion = body.split_once("assertion=").map(|(_, a)| a.to_owned()).unwrap_or_default();
            assert!(assertion.len() > 100, "an assertion was sent");
            fake::assert_secret_absent(&assertion, shown);
        }
    }
    for n in 1..=3 {
        fake::assert_secret_absent(&g.token(n), shown);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_with_a_token_minted_from_the_service_account() {
    fake::capture_traces();
    let g = Google::start(3599, sse_ok).await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    let file = key_file(dir.path(), &g.token_uri);
    // The key file named by the environment, the project taken from it.
    let p = build(&config(&g, None), &[("GOOGLE_APPLICATION_CREDENTIALS", file.to_str().expect("utf-8 path"))])
        .expect("builds");
    for _ in 0..2 {
        let (text, fin) = p.chat(&chat_req(), Feature::Chat).await.expect("opens").text().await.expect("completes");
        // The prefill "Hi " went out as "Hi"; the answer continues after it.
        assert_eq!(text, "Hi from Vertex");
        assert_eq!((fin.usage.input_tokens, fin.usage.output_tokens), (Some(9), Some(4)));
    }
    g.assert_tokens_were_valid();
    assert_eq!(g.token_requests(), 1, "the token is cached");
    let streams = g.stream_requests();
    assert_eq!(streams.len(), 2);
    for r in &streams {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", stream_path("us-east5").as_str()));
        assert_eq!(r.header("authorization"), Some(format!("Bearer {}", g.token(1)).as_str()));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("x-api-key"), None);
        assert_eq!(
            r.json(),
            serde_json::json!({
                "anthropic_version": "vertex-2023-10-16", "stream": true, "max_tokens": 128,
                "system": "Be brief.",
                "messages": [{"role": "user", "content": "Hello?"}, {"role": "assistant", "content": "Hi"}],
                "stop_sequences": ["\n\nHuman:"], "temperature": 0.5,
            })
        );
    }
    let debug = format!("{p:?}");
    assert_nothing_leaked(&g, &[debug]);
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_override_the_file_and_autocomplete_uses_the_same_path() {
    fake::capture_traces();
    let g = Google::start(3599, sse_ok).await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    let file = key_file(dir.path(), &g.token_uri);
    let mut cfg = config(&g, Some(&file));
    cfg.region = Some("europe-west1".into());
    cfg.project = Some("other-project".into());
    let p = build(&cfg, &[("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/ignored.json")]).expect("builds");
    let req =
        CompletionRequest { prefix: "let x = ".into(), suffix: ";\n".into(), max_tokens: 32, ..Default::default() };
    let stream = p.complete(&req).await.expect("opens");
    let _ = stream.text().await;
    g.assert_tokens_were_valid();
    let r = &g.stream_requests()[0];
    assert_eq!(
        r.path,
        format!(
            "/v1/projects/other-project/locations/europe-west1/publishers/anthropic/models/{MODEL}:streamRawPredict"
        )
    );
    assert_eq!(r.header("authorization"), Some(format!("Bearer {}", g.token(1)).as_str()));
    assert_eq!(r.json()["anthropic_version"], "vertex-2023-10-16");
    assert_eq!(r.json().get("model"), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_share_one_token_fetch() {
    fake::capture_traces();
    let g = Google::start(3599, sse_ok).await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    let file = key_file(dir.path(), &g.token_uri);
    let p = build(&config(&g, Some(&file)), &[]).expect("builds");
    let req = chat_req();
    let (a, b, c) = tokio::join!(p.chat(&req, Feature::Chat), p.chat(&req, Feature::Chat), p.chat(&req, Feature::Edit));
    for s in [a, b, c] {
        s.expect("opens").text().await.expect("completes");
    }
    assert_eq!(g.token_requests(), 1);
    assert_eq!(g.stream_requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_near_expiry_is_replaced() {
    fake::capture_traces();
    let g = Google::start(1, sse_ok).await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    let file = key_file(dir.path(), &g.token_uri);
    let p = build(&config(&g, Some(&file)), &[]).expect("builds");
    for _ in 0..2 {
        p.chat(&chat_req(), Feature::Chat).await.expect("opens").text().await.expect("completes");
    }
    g.assert_tokens_were_valid();
    assert_eq!(g.token_requests(), 2);
    let auth: Vec<String> =
        g.stream_requests().iter().map(|r| r.header("authorization").unwrap_or_default().to_owned()).collect();
    assert_eq!(auth, [format!("Bearer {}", g.token(1)), format!("Bearer {}", g.token(2))]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_key_is_an_auth_error_naming_the_file() {
    fake::capture_traces();
    let g = Google::start(3599, sse_ok).await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    // The file claims another key id, so the fake refuses the signature as Google would.
    let file = key_file(dir.path(), &g.token_uri);
    let text = std::fs::read_to_string(&file).expect("read").replace(KID, "ffffffffffffffffffffffffffffffffffffffff");
    std::fs::write(&file, text).expect("write");
    let p = build(&config(&g, Some(&file)), &[]).expect("builds");
    let e = p.chat(&chat_req(), Feature::Chat).await.refused("the token endpoint refused the key");
    assert!(matches!(e.kind, ErrorKind::Auth { status: 400, .. }), "{e:?}");
    let shown = e.to_string();
    assert!(shown.contains(&file.display().to_string()), "{shown}");
    assert!(shown.contains("invalid_grant: Invalid JWT Signature"), "{shown}");
    assert_eq!((g.token_requests(), g.stream_requests().len()), (1, 0), "not retried, nothing streamed");
    assert_nothing_leaked(&g, &[shown, format!("{e:?}")]);
}

#[tokio::test(flavor = "multi_thread")]
async fn vertex_errors_read_well() {
    fake::capture_traces();
    let quota = r#"[{"error":{"code":429,"message":"Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model with base model: anthropic-claude-3-5-haiku. Please submit a quota increase request.","status":"RESOURCE_EXHAUSTED"}}]"#;
    let g = Google::start(3599, move |_| Reply::json(429, quota)).await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    let file = key_file(dir.path(), &g.token_uri);
    let p = build(&config(&g, Some(&file)), &[]).expect("builds");
    let e = match p.complete(&CompletionRequest { prefix: "x".into(), ..Default::default() }).await {
        Ok(s) => s.text().await.expect_err("quota"),
        Err(e) => e,
    };
    assert_eq!(e.kind, ErrorKind::RateLimited);
    // The words as Google wrote them, the status said once.
    let s = e.to_string();
    assert!(s.starts_with("provider `claude-vertex` (vertex) is rate-limiting requests (HTTP 429): "), "{s}");
    assert!(
        s.contains(
            "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model with base model: \
             anthropic-claude-3-5-haiku. Please submit a quota increase request. To fix: wait a little and retry."
        ),
        "{s}"
    );
    assert!(!s.contains("429: ") && !s.contains(".."), "{s}");
    assert_eq!(g.stream_requests().len(), 1, "autocomplete never retries");
    assert_nothing_leaked(&g, &[e.to_string(), format!("{e:?}")]);

    // A 401 forgets the token, so the next request mints another.
    let g = Google::start(3599, |r| {
        if r.header("authorization").is_some_and(|a| a.ends_with("-1")) {
            Reply::json(
                401,
                r#"[{"error":{"code":401,"message":"Request had invalid authentication credentials.","status":"UNAUTHENTICATED"}}]"#,
            )
        } else {
            Reply::sse(&[ANSWER])
        }
    })
    .await;
    let file = key_file(dir.path(), &g.token_uri);
    let p = build(&config(&g, Some(&file)), &[]).expect("builds");
    let e = chat_or_err(&p).await.expect_err("token refused");
    assert!(matches!(e.kind, ErrorKind::Auth { status: 401, .. }), "{e:?}");
    assert!(e.to_string().contains("invalid authentication credentials"), "{e}");
    assert!(e.to_string().contains(&file.display().to_string()), "{e}");
    chat_or_err(&p).await.expect("a fresh token works");
    assert_eq!(g.token_requests(), 2);
    assert_nothing_leaked(&g, &[e.to_string(), format!("{e:?}")]);

    // Overloaded in the middle of a stream, in Anthropic's shape.
    let g = Google::start(3599, |_| {
        Reply::sse(&[
            &ANSWER[..ANSWER.find("event: content_block_stop").unwrap_or(0)],
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        ])
    })
    .await;
    let file = key_file(dir.path(), &g.token_uri);
    let p = build(&config(&g, Some(&file)), &[]).expect("builds");
    let e = chat_or_err(&p).await.expect_err("overloaded");
    assert_eq!(e.kind, ErrorKind::Overloaded { status: 529 });
}

async fn chat_or_err(p: &Provider) -> Result<String, ProviderError> {
    Ok(p.chat(&chat_req(), Feature::Completion).await?.text().await?.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_credentials_files_are_clear_config_errors() {
    fake::capture_traces();
    let g = Google::start(3599, sse_ok).await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    let cfg = config(&g, None);

    let e = build(&cfg, &[]).expect_err("no key file");
    assert_eq!(e.kind, ErrorKind::Config);
    let s = e.to_string();
    assert!(
        s.contains("providers.claude-vertex.credentials_file") && s.contains("$GOOGLE_APPLICATION_CREDENTIALS"),
        "{s}"
    );

    let missing = dir.path().join("missing.json");
    let e = build(&config(&g, Some(&missing)), &[]).expect_err("no such file");
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.to_string().contains(&missing.display().to_string()), "{e}");

    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    };
    let pem = &keys().private_pem;
    let cases = [
        ("not-json.json", format!("{{\"private_key\": \"{pem}")),
        ("user.json", serde_json::json!({"type":"authorized_user","client_id":"x","client_secret":"s-secret","refresh_token":"r-secret"}).to_string()),
        ("no-key.json", serde_json::json!({"type":"service_account","client_email":EMAIL,"project_id":PROJECT}).to_string()),
        (
            "bad-key.json",
            serde_json::json!({"type":"service_account","client_email":EMAIL,"project_id":PROJECT,
                "private_key": pem.replace("MII", "XXX")})
            .to_string(),
        ),
        ("no-project.json", serde_json::json!({"type":"service_account","client_email":EMAIL,"private_key":pem}).to_string()),
    ];
    for (name, text) in cases {
        let path = write(name, &text);
        let e = build(&config(&g, Some(&path)), &[]).expect_err(name);
        assert_eq!(e.kind, ErrorKind::Config, "{name}");
        let s = e.to_string();
        assert!(s.contains(&path.display().to_string()), "{name}: {s}");
        assert!(!s.contains("secret"), "{name}: {s}");
        for fragment in key_fragments() {
            assert!(!s.contains(fragment) && !format!("{e:?}").contains(fragment), "{name}: the key leaked");
        }
    }
}
