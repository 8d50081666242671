//! Tests of the command line other than `lsp`: `--version`, `check` (with provider discovery
//! and `--ping`) and `config-schema`.

mod fake;

use std::{path::Path, process::Command};

use fake::{Fake, Reply};

/// What a run printed.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run quill in `workspace` with only `env` (plus `PATH` and an empty home), and with the local
/// server probes pointed at closed ports unless `env` says otherwise: the machine's keys and
/// servers must not change the outcome.
fn run(args: &[&str], workspace: &Path, env: &[(&str, &str)]) -> Run {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quill"));
    cmd.args(args).current_dir(workspace).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env("QUILL_PROBE_OLLAMA", closed_port_url())
        .env("QUILL_PROBE_LLAMACPP", closed_port_url());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run quill");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn quill(args: &[&str], workspace: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let r = run(args, workspace, env);
    (r.code, r.stdout)
}

/// [`run`] from async tests, whose runtime serves the fake servers meanwhile.
async fn run_async(args: &[&str], workspace: &Path, env: &[(&str, &str)]) -> Run {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let workspace = workspace.to_owned();
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run(&args, &workspace, &env)
    })
    .await
    .expect("join")
}

/// A loopback URL where nothing listens.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn version_prints_the_crate_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out) = quill(&["--version"], dir.path(), &[]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("quill {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn check_reports_providers_routing_and_key_presence_without_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("quill.toml"),
        "[providers.claude]\nkind = \"anthropic\"\nmodel = \"claude-sonnet-4-5\"\napi_key_env = \"QUILL_TEST_KEY\"\n\
         [providers.local]\nkind = \"ollama\"\nmodel = \"qwen2.5-coder:1.5b-base\"\n\
         [completion]\nprovider = \"local\"\n[chat]\nprovider = \"claude\"\n",
    )
    .expect("write");
    let secret = "sk-ant-very-secret-value";
    let (code, out) = quill(&["check"], dir.path(), &[("QUILL_TEST_KEY", secret)]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains(secret), "the key's value must never be printed: {out}");
    let out = out.replace(&dir.path().display().to_string(), "$WORKSPACE");
    expect_test::expect![[r#"
        config sources: $WORKSPACE/quill.toml
        providers:
          claude: kind=anthropic model=claude-sonnet-4-5 base_url=(default) key from $QUILL_TEST_KEY (set)
          local: kind=ollama model=qwen2.5-coder:1.5b-base base_url=(default) no key configured
        routing:
          completion: local (ollama, model qwen2.5-coder:1.5b-base)
          chat: claude (anthropic, model claude-sonnet-4-5)
          edit: claude (anthropic, model claude-sonnet-4-5)
        note: `[edit] provider` is not set, so edit uses `claude` like chat.
    "#]]
    .assert_eq(&out);

    // Without the key, chat and edit are unusable and say why; autocomplete still works.
    let (code, out) = quill(&["check"], dir.path(), &[]);
    assert!(out.contains("key from $QUILL_TEST_KEY (NOT SET)"), "{out}");
    assert!(out.contains("  chat: claude (anthropic, model claude-sonnet-4-5): not usable: "), "{out}");
    assert!(out.lines().any(|l| l.starts_with("  edit: claude") && l.contains("$QUILL_TEST_KEY is not set")), "{out}");
    assert_eq!(code, 0, "{out}");
}

#[test]
fn check_fails_on_invalid_config_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("quill.toml"), "[edit]\nprovider = \"nobody\"\n").expect("write");
    let (code, out) = quill(&["check"], dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error:") && out.contains("`edit.provider`") && out.contains("nobody"), "{out}");

    std::fs::write(dir.path().join("quill.toml"), "[documents\n").expect("write");
    let (code, out) = quill(&["check"], dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("quill.toml") && out.contains("line 1"), "{out}");
}

#[test]
fn config_schema_is_the_shipped_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out) = quill(&["config-schema"], dir.path(), &[]);
    assert_eq!(code, 0);
    let printed: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let shipped: serde_json::Value =
        serde_json::from_str(include_str!("../docs/config.schema.json")).expect("shipped schema is JSON");
    assert_eq!(printed, shipped);
    assert!(printed["properties"]["providers"].is_object());
}

#[test]
fn check_picks_a_provider_from_a_key_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = fake::fake_key("sk-ant");
    let r = run(&["check"], dir.path(), &[("ANTHROPIC_API_KEY", &secret), ("QUILL_LOG", "trace")]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stdout.contains(
            "No provider configured; using anthropic because ANTHROPIC_API_KEY is set \
             (completion: claude-haiku-4-5, chat: claude-sonnet-4-5, edit: claude-sonnet-4-5)."
        ),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("anthropic: kind=anthropic model=claude-sonnet-4-5"), "{}", r.stdout);
    assert!(r.stdout.contains("key from $ANTHROPIC_API_KEY (set)"), "{}", r.stdout);
    assert!(r.stdout.contains("  completion: anthropic (anthropic, model claude-haiku-4-5)"), "{}", r.stdout);
    assert!(!r.stdout.contains(&secret) && !r.stderr.contains(&secret), "the key must never be printed");

    // An earlier key in the order wins; the others are mentioned.
    let r = run(&["check"], dir.path(), &[("FIREWORKS_API_KEY", "fw"), ("OPENAI_API_KEY", "o")]);
    assert!(r.stdout.contains("using openai because OPENAI_API_KEY is set"), "{}", r.stdout);
    assert!(r.stdout.contains("Also set: FIREWORKS_API_KEY"), "{}", r.stdout);
}

#[test]
fn check_without_any_provider_prints_setup_advice_and_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = run(&["check"], dir.path(), &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    for needle in [
        "Quill found no AI provider",
        "ANTHROPIC_API_KEY, OPENAI_API_KEY, GEMINI_API_KEY, FIREWORKS_API_KEY",
        "AWS_ACCESS_KEY_ID",
        "ollama pull qwen2.5-coder:1.5b-base",
        "llama-server",
        "[providers.mine]",
        "quill check --ping",
        "  completion: not routed",
    ] {
        assert!(r.stdout.contains(needle), "{needle} missing from {}", r.stdout);
    }
    let r = run(&["check", "--ping"], dir.path(), &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("ping: no provider to ping"), "{}", r.stdout);
}

const OLLAMA_TAGS: &str = r#"{"models":[
  {"name":"llama3.2:3b","model":"llama3.2:3b","modified_at":"2025-05-04T17:37:44Z","size":2019393189},
  {"name":"nomic-embed-text:latest","model":"nomic-embed-text:latest","size":274302450},
  {"name":"qwen2.5-coder:1.5b-base","model":"qwen2.5-coder:1.5b-base","size":986061892}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_picks_a_local_ollama_and_its_coder_model() {
    let ollama = Fake::start(|req, _| match req.path.as_str() {
        "/api/tags" => Reply::json(200, OLLAMA_TAGS),
        _ => Reply::json(404, r#"{"error":"not found"}"#),
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let r = run_async(&["check"], dir.path(), &[("QUILL_PROBE_OLLAMA", &ollama.url)]).await;
    assert_eq!(r.code, 0, "{}", r.stdout);
    let expected = format!(
        "No provider configured; using ollama because Ollama answers at {} \
         (completion: qwen2.5-coder:1.5b-base, chat: llama3.2:3b, edit: llama3.2:3b).",
        ollama.url
    );
    assert!(r.stdout.contains(&expected), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("base_url={}", ollama.url)), "{}", r.stdout);
    let probes: Vec<(String, String)> = ollama.requests().into_iter().map(|q| (q.method, q.path)).collect();
    assert_eq!(probes, [("GET".to_owned(), "/api/tags".to_owned())]);

    // A key wins over a local server, and then nothing is probed.
    let r = run_async(&["check"], dir.path(), &[("QUILL_PROBE_OLLAMA", &ollama.url), ("GEMINI_API_KEY", "g")]).await;
    assert!(r.stdout.contains("using gemini because GEMINI_API_KEY is set"), "{}", r.stdout);
    assert_eq!(ollama.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ollama_without_models_is_named_in_the_advice() {
    let ollama = Fake::always(Reply::json(200, r#"{"models":[]}"#)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let r = run_async(&["check"], dir.path(), &[("QUILL_PROBE_OLLAMA", &ollama.url)]).await;
    assert_eq!(r.code, 1, "{}", r.stdout);
    let note =
        format!("Ollama is running at {} but has no models: run `ollama pull qwen2.5-coder:1.5b-base`.", ollama.url);
    assert!(r.stdout.contains(&note), "{}", r.stdout);
}

fn llamacpp_reply(req: &fake::Recorded) -> Reply {
    match req.path.as_str() {
        "/health" => Reply::json(200, r#"{"status":"ok"}"#),
        "/v1/models" => Reply::json(
            200,
            r#"{"object":"list","data":[{"id":"qwen2.5-coder-1.5b-q8_0.gguf","object":"model","created":1,"owned_by":"llamacpp"}]}"#,
        ),
        _ => Reply::json(404, r#"{"error":{"code":404,"message":"File Not Found","type":"not_found_error"}}"#),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_picks_a_healthy_llamacpp_server_after_ollama() {
    let llama = Fake::start(|req, _| llamacpp_reply(req)).await;
    let ollama = Fake::always(Reply::json(200, OLLAMA_TAGS)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let r = run_async(&["check"], dir.path(), &[("QUILL_PROBE_LLAMACPP", &llama.url)]).await;
    assert_eq!(r.code, 0, "{}", r.stdout);
    let expected = format!(
        "using llamacpp because a llama.cpp server answers at {} (completion: qwen2.5-coder-1.5b-q8_0.gguf",
        llama.url
    );
    assert!(r.stdout.contains(&expected), "{}", r.stdout);

    // With both running, Ollama comes first.
    let r =
        run_async(&["check"], dir.path(), &[("QUILL_PROBE_LLAMACPP", &llama.url), ("QUILL_PROBE_OLLAMA", &ollama.url)])
            .await;
    assert!(r.stdout.contains("using ollama because"), "{}", r.stdout);

    // Another web server on the port is not taken for llama.cpp.
    let other = Fake::always(Reply::new(200).header("content-type", "text/plain").bytes("OK")).await;
    let r = run_async(&["check"], dir.path(), &[("QUILL_PROBE_LLAMACPP", &other.url)]).await;
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("Quill found no AI provider"), "{}", r.stdout);
}

/// A workspace whose one provider is an OpenAI-compatible server at `url`, keyed by
/// `$QUILL_TEST_KEY`.
fn compatible_workspace(url: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("quill.toml"),
        format!(
            "[providers.fake]\nkind = \"openai-compatible\"\nbase_url = \"{url}/v1\"\nmodel = \"m\"\n\
             api_key_env = \"QUILL_TEST_KEY\"\n[completion]\nprovider = \"fake\"\n"
        ),
    )
    .expect("write");
    dir
}

const CHAT_STREAM: &[&str] = &[
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"ok\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n",
    "data: [DONE]\n\n",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_ping_prints_ok_and_latency_per_provider() {
    // The answer starts late and ends late: the latency must cover the whole round trip.
    let reply = Reply::new(200).header("content-type", "text/event-stream").delay(20).bytes(CHAT_STREAM[0]).delay(20);
    let server = Fake::always(CHAT_STREAM[1..].iter().fold(reply, |r, c| r.bytes(c))).await;
    let dir = compatible_workspace(&server.url);
    let key = fake::fake_key("sk");
    let r = run_async(&["check", "--ping"], dir.path(), &[("QUILL_TEST_KEY", &key), ("QUILL_LOG", "trace")]).await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("ok   fake (openai-compatible, m) "))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    let ms: u64 = line.trim_end_matches(" ms").rsplit(' ').next().and_then(|n| n.parse().ok()).expect("latency");
    assert!(ms >= 40, "the latency covers the whole answer: {line}");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1, "one request per provider");
    assert_eq!(reqs[0].method, "POST");
    assert!(!r.stdout.contains(&key) && !r.stderr.contains(&key), "the key must never be printed");
    assert!(!r.stderr.is_empty(), "QUILL_LOG=trace logs something");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_ping_fails_naming_the_key_variable_without_showing_the_key() {
    let key = fake::fake_key("sk");
    // Vendors echo (part of) a rejected key; it must be scrubbed.
    let body = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {key}.","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
    );
    let server = Fake::always(Reply::json(401, &body)).await;
    let dir = compatible_workspace(&server.url);
    let r = run_async(&["check", "--ping"], dir.path(), &[("QUILL_TEST_KEY", &key), ("QUILL_LOG", "trace")]).await;
    assert_eq!(r.code, 1, "{}", r.stdout);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("FAIL fake (openai-compatible): "))
        .unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(line.contains("$QUILL_TEST_KEY") && line.contains("401"), "{line}");
    assert!(!r.stdout.contains(&key) && !r.stderr.contains(&key), "the key must never be printed");
    assert!(!r.stderr.is_empty(), "QUILL_LOG=trace logs something");

    // Without the key, nothing is sent and the line says which variable to set.
    let r = run_async(&["check", "--ping"], dir.path(), &[]).await;
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("key from $QUILL_TEST_KEY (NOT SET)"), "{}", r.stdout);
}
