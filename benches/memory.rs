//! Memory benchmark: resident set size of the real `quill lsp` process after it opens ten 20k-line
//! Rust files, against the target of 2x the text size plus 30 MB: once after the ten didOpens, and
//! once after each file was read (parsed), with the default tree cache. Run with
//! `cargo bench --bench memory`; it prints one line per run and the medians of five runs.

#[path = "../tests/common/mod.rs"]
mod common;
mod fixtures;

use std::io::Write;

use common::{Lsp, init_params};

const FILES: usize = 10;
const LINES: usize = 20_000;
const RUNS: usize = 5;

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

/// RSS when idle, after ten didOpens, and after every file was also read (so each was parsed and
/// the tree cache had to choose what to keep), plus the total text size.
fn one_run() -> Option<[u64; 4]> {
    let (mut lsp, _) = Lsp::start(init_params(&["utf-16"]));
    let idle = rss_bytes(lsp.pid())?;
    let mut text_bytes = 0u64;
    let mut uris = Vec::new();
    for i in 0..FILES {
        // Distinct content per file, so nothing can be shared between them.
        let text = fixtures::rust_file(LINES).replace("Item", &format!("Item{i}x"));
        text_bytes += text.len() as u64;
        let uri = format!("file:///bench/file{i}.rs");
        lsp.open(&uri, "rust", &text);
        uris.push(uri);
    }
    // A request after the notifications: the server has applied them all when it answers.
    lsp.request("workspace/executeCommand", serde_json::json!({"command": "sync"})).ok();
    let opened = rss_bytes(lsp.pid())?;
    for uri in &uris {
        let doc = lsp.document(uri).ok()?;
        assert_eq!(doc["parsed"], true, "every file must parse for the measurement to mean anything");
    }
    let read = rss_bytes(lsp.pid())?;
    Some([idle, opened, read, text_bytes])
}

fn main() {
    let mut out = std::io::stderr();
    let mut opened_runs = Vec::new();
    let mut read_runs = Vec::new();
    let mut text = 0;
    for run in 1..=RUNS {
        let Some([idle, opened, read, text_bytes]) = one_run() else {
            let _ = writeln!(out, "memory: cannot read /proc/<pid>/status (Linux only)");
            return;
        };
        text = text_bytes;
        let _ = writeln!(
            out,
            "memory run {run}: idle {:.1} MB, after {FILES} didOpen {:.1} MB, after reading each {:.1} MB",
            mb(idle),
            mb(opened),
            mb(read)
        );
        opened_runs.push(opened);
        read_runs.push(read);
    }
    opened_runs.sort_unstable();
    read_runs.sort_unstable();
    let target = 2 * text + 30_000_000;
    for (label, runs) in [("after didOpen", &opened_runs), ("after reading each (trees built)", &read_runs)] {
        let median = runs[RUNS / 2];
        let _ = writeln!(
            out,
            "memory {label}: text {:.1} MB in {FILES} files of {LINES} lines; median RSS {:.1} MB; target {:.1} MB (2x text + 30 MB): {}",
            mb(text),
            mb(median),
            mb(target),
            if median <= target { "within" } else { "OVER" }
        );
    }
}
