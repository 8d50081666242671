//! Chat time to first delta, server overhead only: the real `quill lsp` process against a local
//! fake OpenAI-compatible server that answers at once. Each sample is the time from writing a
//! `quill/chat/send` to reading the first `quill/chat/delta`: parsing, context resolution, saving
//! the question (an fsynced atomic write), the HTTP round trip on loopback, SSE parsing and the
//! notification. Run with `cargo bench --bench chat`; it prints median, p90 and min per scenario
//! for each of three runs, then the median of the run medians.

#[path = "../tests/common/mod.rs"]
mod common;
mod fixtures;

use std::{io::Write, time::Instant};

use common::Lsp;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const RUNS: usize = 3;
const SAMPLES: usize = 150;
const WARMUP: usize = 20;
/// A new chat every this many samples, so history stays small and comparable.
const TURNS_PER_CHAT: usize = 5;

/// The whole HTTP answer: headers and a streamed Chat Completions body, in one write.
fn answer() -> Vec<u8> {
    let chunk = |delta: Value, finish: Value| {
        let v = json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
            "choices":[{"index":0,"delta":delta,"finish_reason":finish}]});
        format!("data: {v}\n\n")
    };
    let body = chunk(json!({"content": "Hi"}), Value::Null)
        + &chunk(json!({"content": " there"}), Value::Null)
        + &chunk(json!({}), json!("stop"))
        + "data: [DONE]\n\n";
    format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{body}", body.len())
        .into_bytes()
}

/// A fake OpenAI-compatible server that answers every request at once, in one write with
/// `TCP_NODELAY` (the test fake writes head and body separately, and Nagle's algorithm then waits
/// for a delayed ACK: 40 ms that are not Quill's). Returns its base URL.
async fn fake_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let _ = sock.set_nodelay(true);
            tokio::spawn(async move {
                let reply = answer();
                let mut buf = Vec::new();
                let mut tmp = [0u8; 65536];
                loop {
                    // One request: its head, then `content-length` bytes of body.
                    let (head_end, len) = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (i + 4, len);
                        }
                        match sock.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    };
                    while buf.len() < head_end + len {
                        match sock.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    buf.drain(..head_end + len);
                    if sock.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

struct Scenario {
    name: &'static str,
    /// Extra `quill/chat/send` params.
    params: fn(&str, &str) -> Value,
}

/// Time to first delta for `SAMPLES` sends, in microseconds, sorted.
fn measure(lsp: &mut Lsp, extra: &Value, samples: usize) -> Vec<u128> {
    let mut out = Vec::with_capacity(samples);
    let mut chat = String::new();
    for i in 0..samples {
        if i % TURNS_PER_CHAT == 0 {
            let r = lsp.request("quill/chat/new", json!({})).expect("chat/new");
            chat = r["chatId"].as_str().expect("chatId").to_owned();
        }
        let mut params = json!({"chatId": chat, "message": "What does this code do?"});
        if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        let started = Instant::now();
        let id = lsp.send_request("quill/chat/send", params);
        lsp.wait_for(|m| m["method"] == "quill/chat/delta");
        out.push(started.elapsed().as_micros());
        let r = lsp.response(&id).expect("send");
        assert_eq!(r["reply"], "Hi there");
        let message_id = r["messageId"].clone();
        lsp.wait_for(move |m| m["method"] == "quill/chat/done" && m["params"]["messageId"] == message_id);
        lsp.seen.clear();
    }
    out.sort_unstable();
    out
}

fn ms(us: u128) -> f64 {
    us as f64 / 1000.0
}

fn main() {
    let mut err = std::io::stderr();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    let fake_url = rt.block_on(fake_server());
    let root = tempfile::tempdir().expect("tempdir");
    let big = fixtures::rust_file(2000);
    let disk_path = root.path().join("on_disk.rs");
    std::fs::write(&disk_path, &big).expect("write fixture");
    let open_uri = format!("file://{}/open.rs", root.path().display());
    let disk_uri = format!("file://{}", disk_path.display());

    let scenarios = [
        Scenario { name: "no context", params: |_, _| json!({}) },
        Scenario { name: "2k-line file, open", params: |open, _| json!({"context": [{"uri": open}]}) },
        Scenario { name: "2k-line file, on disk", params: |_, disk| json!({"context": [{"uri": disk}]}) },
        Scenario { name: "symbol lookup in an open 2k-line file", params: |_, _| json!({"symbols": ["Item7"]}) },
    ];
    let mut medians: Vec<Vec<u128>> = vec![Vec::new(); scenarios.len()];
    for run in 1..=RUNS {
        let mut lsp = Lsp::spawn_isolated(&[]);
        lsp.initialize(json!({
            "processId": null,
            "rootUri": format!("file://{}", root.path().display()),
            "capabilities": {"general": {"positionEncodings": ["utf-16"]}},
            "initializationOptions": {
                "providers": {"x": {"kind": "openai-compatible", "base_url": format!("{fake_url}/v1"), "model": "m"}},
                "chat": {"provider": "x"},
            },
        }));
        lsp.open(&open_uri, "rust", &big);
        measure(&mut lsp, &json!({}), WARMUP);
        for (i, s) in scenarios.iter().enumerate() {
            let t = measure(&mut lsp, &(s.params)(&open_uri, &disk_uri), SAMPLES);
            let (median, p90) = (t[t.len() / 2], t[t.len() * 9 / 10]);
            let _ = writeln!(
                err,
                "chat run {run}, {}: time to first delta median {:.2} ms, p90 {:.2} ms, min {:.2} ms ({SAMPLES} samples)",
                s.name,
                ms(median),
                ms(p90),
                ms(t[0])
            );
            medians[i].push(median);
        }
        lsp.shutdown();
    }
    for (s, m) in scenarios.iter().zip(&mut medians) {
        m.sort_unstable();
        let _ = writeln!(err, "chat {}: median of {RUNS} run medians {:.2} ms", s.name, ms(m[RUNS / 2]));
    }
}
