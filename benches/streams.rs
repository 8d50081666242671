//! Benchmarks of provider stream parsing, the per-token hot path of every answer: SSE (OpenAI and
//! Anthropic wire) and AWS event-stream (Bedrock) throughput in MB/s, and the cost per delta.
//! Baselines: the SSE framer alone, and serde_json parsing each event's JSON (the floor any
//! parser pays). Results go in docs/BENCHMARKS.md.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use base64::Engine;
use bytes::Bytes;
use divan::{Bencher, black_box, counter::BytesCount, counter::ItemsCount};
use quill::{
    config::ProviderKind,
    provider::{Op, parse_recorded, sse::SseParser},
};

fn main() {
    divan::main();
}

/// Deltas per transcript: a long answer, about 4 characters each as real tokens are.
const DELTAS: usize = 4_000;

fn token(i: usize) -> String {
    format!("t{:03} ", i % 1000)
}

fn openai_chat() -> String {
    let mut s = String::new();
    for i in 0..DELTAS {
        s.push_str(&format!(
            "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{}\"}},\"finish_reason\":null}}],\"usage\":null}}\n\n",
            token(i)
        ));
    }
    s.push_str("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n");
    s.push_str("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":4000,\"total_tokens\":4005}}\n\ndata: [DONE]\n\n");
    s
}

fn anthropic_events() -> Vec<String> {
    let mut v = vec![
        r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":11,"output_tokens":1}}}"#.to_owned(),
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.to_owned(),
    ];
    for i in 0..DELTAS {
        v.push(format!(
            r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{}"}}}}"#,
            token(i)
        ));
    }
    v.push(r#"{"type":"content_block_stop","index":0}"#.to_owned());
    v.push(r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":4000}}"#.to_owned());
    v.push(r#"{"type":"message_stop"}"#.to_owned());
    v
}

fn anthropic_sse() -> String {
    let mut s = String::new();
    for data in anthropic_events() {
        let name = data.split('"').nth(3).unwrap_or("x").to_owned();
        s.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    }
    s
}

fn bedrock_stream() -> Vec<u8> {
    let mut out = Vec::new();
    for data in anthropic_events() {
        let payload = format!(
            r#"{{"bytes":"{}","p":"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123"}}"#,
            base64::engine::general_purpose::STANDARD.encode(data)
        );
        let msg = Message::new(payload.into_bytes())
            .add_header(Header::new(":event-type", HeaderValue::String("chunk".into())))
            .add_header(Header::new(":content-type", HeaderValue::String("application/json".into())))
            .add_header(Header::new(":message-type", HeaderValue::String("event".into())));
        write_message_to(&msg, &mut out).expect("encode");
    }
    out
}

/// Network-sized chunks (16 KiB), or one event per chunk as a token-by-token stream arrives.
fn chunks(bytes: &[u8], per_event: Option<&str>) -> Vec<Bytes> {
    match per_event {
        None => bytes.chunks(16 << 10).map(Bytes::copy_from_slice).collect(),
        Some(sep) => {
            let text = std::str::from_utf8(bytes).expect("utf-8");
            text.split_inclusive(sep).map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()
        }
    }
}

fn run(b: Bencher, kind: ProviderKind, op: Op, bytes: Vec<u8>, per_event: bool) {
    let sep = per_event.then_some("\n\n");
    let input = if kind == ProviderKind::Bedrock { chunks(&bytes, None) } else { chunks(&bytes, sep) };
    b.counter(BytesCount::new(bytes.len())).counter(ItemsCount::new(DELTAS)).bench(|| {
        let (text, _) = parse_recorded(kind, op, black_box(input.clone())).expect("parses");
        assert_eq!(text.len(), DELTAS * 5);
    });
}

/// OpenAI Chat Completions SSE, through framer, JSON and event queue.
#[divan::bench(args = [false, true])]
fn openai_chat_sse(b: Bencher, one_event_per_chunk: bool) {
    run(b, ProviderKind::Openai, Op::Chat, openai_chat().into_bytes(), one_event_per_chunk);
}

/// Anthropic Messages SSE (`event:` + `data:` lines).
#[divan::bench(args = [false, true])]
fn anthropic_sse_stream(b: Bencher, one_event_per_chunk: bool) {
    run(b, ProviderKind::Anthropic, Op::Chat, anthropic_sse().into_bytes(), one_event_per_chunk);
}

/// Bedrock: binary event-stream frames with CRCs, base64 payloads, then Anthropic JSON.
#[divan::bench]
fn bedrock_event_stream(b: Bencher) {
    run(b, ProviderKind::Bedrock, Op::Chat, bedrock_stream(), false);
}

/// Baseline: the SSE framer alone over the OpenAI transcript.
#[divan::bench]
fn baseline_sse_framer_only(b: Bencher) {
    let bytes = openai_chat().into_bytes();
    let input = chunks(&bytes, None);
    b.counter(BytesCount::new(bytes.len())).counter(ItemsCount::new(DELTAS)).bench(|| {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in black_box(&input) {
            p.feed(c, &mut out).expect("feed");
        }
        out.len()
    });
}

/// Baseline: serde_json parsing each event's JSON into a `Value`, nothing else.
#[divan::bench]
fn baseline_json_values_only(b: Bencher) {
    let text = openai_chat();
    let datas: Vec<&str> =
        text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).filter(|d| *d != "[DONE]").collect();
    b.counter(BytesCount::new(text.len())).counter(ItemsCount::new(DELTAS)).bench(|| {
        let mut n = 0;
        for d in black_box(&datas) {
            let v: serde_json::Value = serde_json::from_str(d).expect("json");
            n += v.as_object().map_or(0, |o| o.len());
        }
        n
    });
}
