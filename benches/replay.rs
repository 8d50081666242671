//! The autocomplete replay benchmark: types real source files keystroke by keystroke against an
//! oracle provider that streams each file's true continuation, and reports Quill's overhead,
//! request rate, latency and suggestion quality as markdown (stderr and `<target>/replay.md`).
//!
//! Run with `cargo bench --bench replay`. Time is virtual (a paused tokio clock), so 50 ms per key
//! and the provider's streaming cost nothing; overhead is measured in real time. Knobs (env):
//! `REPLAY_TTFT_MS` (150), `REPLAY_TPS` (60), `REPLAY_MAX_KEYS` per file (400), `REPLAY_FILTER`
//! (comma-separated language ids), `REPLAY_OPEN_DOCS` (3 other open documents of the same
//! language, for snippets), `REPLAY_ENTER_SPLITS` (1: Enter between auto-paired brackets puts the
//! closer on its own line, as editors do; 0: the closer stays after the cursor).
//!
//! How a file is typed: regions of it (function bodies found with the `blocks` query, plus short
//! bracket-balanced line spans, picked with a seed derived from the path) are deleted and typed back character by character with
//! an editor's habits: Enter inserts the line break and the next line's true indentation in one
//! keystroke; `(`, `[`, `{` auto-insert their closer before whitespace, a closer or the end of
//! the line; typing a closer that sits right after the cursor moves over it. After every keystroke
//! the harness asks for a suggestion the way `textDocument/inlineCompletion` does, as a task that
//! the next keystroke aborts (`$/cancelRequest`).
//!
//! This is a benchmark: it asserts nothing and must not panic on odd input.

use std::{
    collections::VecDeque,
    fmt::Write as _,
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures_util::stream;
use quill::{
    complete::{
        MAX_SNIPPET_DOCS, Mode,
        scheduler::{Answer, At, Deltas, Opening, Outcome, Scheduler, Settings, Source, Stats},
    },
    document::{Change, DEFAULT_MAX_PARSE_BYTES},
    position::{PositionEncoding, TextPos},
    provider::{CompletionRequest, Event, Finish, ProviderError},
    store::{Snapshot, Store},
    syntax::{self, Language, QueryKind},
};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::SliceRandom};
use ropey::Rope;
use tokio::task::JoinHandle;
use tree_sitter::{Parser, QueryCursor, StreamingIterator};

/// Gap between keystrokes while typing continuously.
const KEY_GAP: Duration = Duration::from_millis(50);
/// A pause lasts at least this long, and longer while its request is still running, up to
/// `PAUSE_MAX`: someone who stops to think waits for the suggestion.
const PAUSE: Duration = Duration::from_millis(1000);
const PAUSE_MAX: Duration = Duration::from_millis(4000);
/// Chance of a pause after an Enter whose previous line does not open a block (those always
/// pause), and after a keystroke that ends a word.
const PAUSE_AFTER_ENTER: f64 = 0.3;
const PAUSE_AT_WORD_END: f64 = 0.03;
/// The oracle keeps streaming this many lines past the end of the cursor's block.
const OVERRUN_LINES: usize = 20;
/// Characters that close something, for the suffix-duplicate rule.
const CLOSERS: &[char] = &[')', ']', '}', ';', ',', '"', '\''];
/// Share of a file's keystroke budget spent on function bodies (the rest on line spans).
const BODY_SHARE: f64 = 0.7;
/// Lines of the generated large Rust file (the overhead target's size).
const BIG_LINES: usize = 20_000;
const SEED: u64 = 0x5eed_2024;

fn main() {
    let knobs = Knobs::from_env();
    let real = Instant::now();
    let files = collect_files(&knobs);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("replay: cannot build a tokio runtime: {e}");
            return;
        }
    };
    let mut groups: Vec<(String, Tally)> = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let neighbours: Vec<&SourceFile> = files
            .iter()
            .skip(i + 1)
            .chain(files.iter().take(i))
            .filter(|f| f.language_id == file.language_id && f.group == file.group)
            .take(knobs.open_docs)
            .collect();
        let started = Instant::now();
        // Seeded by path, so a file types the same whatever REPLAY_FILTER selects.
        let seed = file.path.bytes().fold(SEED, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let tally = runtime.block_on(replay_file(file, &neighbours, &knobs, seed));
        eprintln!(
            "replay: {:<40} {:>5} keys {:>6.2} s real, {:>6.1} s virtual",
            file.path,
            tally.keys,
            started.elapsed().as_secs_f64(),
            tally.virtual_time.as_secs_f64()
        );
        match groups.iter_mut().find(|(g, _)| *g == file.group) {
            Some((_, t)) => t.merge(tally),
            None => groups.push((file.group.clone(), tally)),
        }
    }
    let report = render(&groups, &knobs, real.elapsed());
    eprintln!("\n{report}");
    let out = target_dir().join("replay.md");
    match std::fs::write(&out, &report) {
        Ok(()) => eprintln!("replay: report written to {}", out.display()),
        Err(e) => eprintln!("replay: cannot write {}: {e}", out.display()),
    }
}

// ---------------------------------------------------------------------------------------------
// Knobs and files

struct Knobs {
    ttft: Duration,
    tps: f64,
    max_keys: usize,
    filter: Option<Vec<String>>,
    open_docs: usize,
    enter_splits: bool,
}

impl Knobs {
    fn from_env() -> Knobs {
        fn num<T: std::str::FromStr>(name: &str, default: T) -> T {
            match std::env::var(name) {
                Ok(v) => v.trim().parse().unwrap_or_else(|_| {
                    eprintln!("replay: ignoring {name}={v:?} (not a number)");
                    default
                }),
                Err(_) => default,
            }
        }
        let filter = std::env::var("REPLAY_FILTER")
            .ok()
            .map(|f| f.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect::<Vec<_>>());
        Knobs {
            ttft: Duration::from_millis(num("REPLAY_TTFT_MS", 150u64)),
            tps: num("REPLAY_TPS", 60.0f64).max(0.1),
            max_keys: num("REPLAY_MAX_KEYS", 400usize),
            filter: filter.filter(|f| !f.is_empty()),
            open_docs: num("REPLAY_OPEN_DOCS", 3usize).min(MAX_SNIPPET_DOCS),
            enter_splits: num("REPLAY_ENTER_SPLITS", 1u8) != 0,
        }
    }

    fn wants(&self, language_id: &str) -> bool {
        self.filter.as_ref().is_none_or(|f| f.iter().any(|x| x == language_id))
    }
}

struct SourceFile {
    /// The report row this file counts in.
    group: String,
    /// Relative path, for the URI and the prompt.
    path: String,
    language_id: String,
    text: String,
}

/// The repo's own `src/**/*.rs`, the fixtures in `benches/replay/`, and a generated 20k-line
/// Rust file (the repo's sources inside `mod` blocks, repeated) for the overhead target.
fn collect_files(knobs: &Knobs) -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    let mut src = Vec::new();
    walk(&root.join("src"), &mut src);
    src.sort();
    let mut sources = Vec::new();
    for p in &src {
        if p.extension().is_some_and(|e| e == "rs")
            && let Ok(text) = std::fs::read_to_string(p)
        {
            let rel = p.strip_prefix(root).unwrap_or(p).to_string_lossy().into_owned();
            sources.push((rel, text));
        }
    }
    if knobs.wants("rust") {
        for (rel, text) in &sources {
            files.push(SourceFile {
                group: "rust (src/)".into(),
                path: rel.clone(),
                language_id: "rust".into(),
                text: text.clone(),
            });
        }
    }
    let mut fixtures = Vec::new();
    walk(&root.join("benches/replay"), &mut fixtures);
    fixtures.sort();
    for p in fixtures {
        let Some(ext) = p.extension().and_then(|e| e.to_str()) else { continue };
        let id = language_id_for(ext);
        if !knobs.wants(&id) {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(&p) {
            let rel = p.strip_prefix(root).unwrap_or(&p).to_string_lossy().into_owned();
            files.push(SourceFile { group: id.clone(), path: rel, language_id: id, text });
        }
    }
    if knobs.wants("rust") && !sources.is_empty() {
        let mut big = String::new();
        let mut lines = 0;
        let mut round = 0;
        'fill: loop {
            for (rel, text) in &sources {
                if lines >= BIG_LINES {
                    break 'fill;
                }
                let name: String = rel.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
                let _ = writeln!(big, "mod copy{round}_{name} {{");
                big.push_str(text);
                if !text.ends_with('\n') {
                    big.push('\n');
                }
                big.push_str("}\n");
                lines += text.lines().count() + 2;
            }
            round += 1;
        }
        // The same sources without the `mod` wrappers: thousands of top-level items, the worst
        // case for tree-sitter's incremental reparse (it re-walks every sibling of the edit).
        let mut flat = String::new();
        for (_, text) in sources.iter().cycle() {
            if flat.lines().count() >= BIG_LINES {
                break;
            }
            flat.push_str(text);
            if !text.ends_with('\n') {
                flat.push('\n');
            }
        }
        files.push(SourceFile {
            group: format!("rust ({}k-line file)", lines / 1000),
            path: "generated/big.rs".into(),
            language_id: "rust".into(),
            text: big,
        });
        files.push(SourceFile {
            group: format!("rust ({}k-line flat file)", flat.lines().count() / 1000),
            path: "generated/flat.rs".into(),
            language_id: "rust".into(),
            text: flat,
        });
    }
    files
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn language_id_for(ext: &str) -> String {
    match ext {
        "rs" => "rust",
        "py" => "python",
        "ts" => "typescript",
        "tsx" => "typescriptreact",
        "js" => "javascript",
        "go" => "go",
        "java" => "java",
        other => other,
    }
    .to_owned()
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
    }
}

// ---------------------------------------------------------------------------------------------
// The truth: the final text and its blocks

/// One block body of the final text.
#[derive(Debug, Clone, Copy)]
struct Body {
    start: usize,
    end: usize,
    /// The body holds its own opener and closer (`{ ... }`): it contains the cursor only strictly
    /// inside. Otherwise (Python's `block`, which spans its statements) its ends count too.
    braced: bool,
    /// The body of a function, method, closure or lambda: a candidate region to type.
    function: bool,
    /// Byte just past the opener token, when the match has one.
    opener_end: Option<usize>,
}

struct Truth {
    text: String,
    bodies: Vec<Body>,
}

impl Truth {
    fn new(text: String, language: Option<Language>) -> Truth {
        let bodies = language.map(|l| find_bodies(l, &text)).unwrap_or_default();
        Truth { text, bodies }
    }

    /// The end (exclusive byte offset) of the block that contains `c` in the final text, closing
    /// token included: through the `}` for braced bodies, through the last statement for
    /// Python-like ones. The innermost `@block.body` containing `c` decides; without one (no
    /// grammar, or top level), indentation does.
    fn block_end(&self, c: usize) -> usize {
        let inner = self
            .bodies
            .iter()
            .filter(|b| if b.braced { b.start < c && c < b.end } else { b.start <= c && c <= b.end })
            .min_by_key(|b| b.end - b.start);
        match inner {
            Some(b) => b.end,
            None => indent_block_end(&self.text, c),
        }
    }
}

fn find_bodies(lang: Language, text: &str) -> Vec<Body> {
    let (Some(grammar), Some(query)) = (lang.grammar(), syntax::query(lang, QueryKind::Blocks)) else {
        return Vec::new();
    };
    let mut parser = Parser::new();
    if parser.set_language(&grammar).is_err() {
        return Vec::new();
    }
    let Some(tree) = parser.parse(text, None) else { return Vec::new() };
    let mut cursor = QueryCursor::new();
    let mut it = cursor.matches(query, tree.root_node(), text.as_bytes());
    let mut out: Vec<Body> = Vec::new();
    while let Some(m) = it.next() {
        let (body, opener) = syntax::block_captures(query, m);
        let Some(node) = body else { continue };
        let (start, end) = (node.start_byte(), node.end_byte());
        let braced = match opener {
            Some(o) => o.start_byte() >= start,
            None => true,
        };
        let function = node.parent().is_some_and(|p| {
            let k = p.kind();
            ["function", "method", "constructor", "closure", "lambda", "arrow", "func"].iter().any(|w| k.contains(w))
        });
        if !out.iter().any(|b| b.start == start && b.end == end) {
            out.push(Body { start, end, braced, function, opener_end: opener.map(|o| o.end_byte()) });
        }
    }
    out
}

/// The block around `c` by indentation: the lines after the cursor's line that are blank or
/// indented at least as much, plus a closing token (`}`, `)`, `]`, `end`) that dedents. Top level
/// (indentation 0) is the whole rest of the file.
fn indent_block_end(t: &str, c: usize) -> usize {
    let c = c.min(t.len());
    let ls = line_start(t, c);
    let (line, mut pos) = line_at(t, ls);
    let indent = if line.trim().is_empty() {
        let mut p = pos;
        let mut found = None;
        while p < t.len() {
            let (l, next) = line_at(t, p);
            if !l.trim().is_empty() {
                found = Some(indent_of(l));
                break;
            }
            p = next;
        }
        found.unwrap_or(0)
    } else {
        indent_of(line)
    };
    if indent == 0 {
        return t.len();
    }
    let mut end = (ls + line.len()).max(c);
    while pos < t.len() {
        let (l, next) = line_at(t, pos);
        if !l.trim().is_empty() {
            if indent_of(l) >= indent {
                end = pos + l.len();
            } else {
                let body = l.trim_start();
                let at = pos + (l.len() - body.len());
                if body.starts_with(['}', ')', ']']) {
                    end = at + 1;
                } else if body.starts_with("end") {
                    end = at + 3;
                }
                break;
            }
        }
        pos = next;
    }
    end
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches([' ', '\t']).len()
}

/// Byte offset of the start of the line holding `c`.
fn line_start(t: &str, c: usize) -> usize {
    t.get(..c).and_then(|s| s.rfind(['\n', '\r'])).map_or(0, |i| i + 1)
}

/// The line starting at `p` (without its break) and the offset of the next line.
fn line_at(t: &str, p: usize) -> (&str, usize) {
    let rest = t.get(p..).unwrap_or("");
    match rest.find(['\n', '\r']) {
        Some(i) => {
            let brk = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
            (&rest[..i], p + i + brk)
        }
        None => (rest, t.len()),
    }
}

/// The line break at `p`, if one starts there.
fn break_at(t: &str, p: usize) -> Option<&'static str> {
    let rest = t.get(p..)?;
    if rest.starts_with("\r\n") {
        Some("\r\n")
    } else if rest.starts_with('\n') {
        Some("\n")
    } else if rest.starts_with('\r') {
        Some("\r")
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// The oracle provider

/// Streams the final text's continuation at the cursor: from the cursor to `OVERRUN_LINES` lines
/// past the end of the cursor's block (or the end of the file), cut before the first `stop`
/// sequence and at `max_tokens`, after `ttft`, at `tps` tokens per second.
struct Oracle {
    truth: Arc<Truth>,
    /// Recent cursor offsets in the final text, newest last (the harness pushes one per key).
    /// Before the cursor the document equals the final text, so a request is placed by finding
    /// the newest cursor whose preceding text ends with the request's prefix.
    cursors: Mutex<VecDeque<usize>>,
    ttft: Duration,
    gap: Duration,
    misses: AtomicU64,
    tokens: AtomicU64,
    chars: AtomicU64,
}

impl Oracle {
    fn push_cursor(&self, c: usize) {
        let mut q = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
        q.push_back(c);
        if q.len() > 64 {
            q.pop_front();
        }
    }

    fn locate(&self, prefix: &str) -> Option<usize> {
        let q = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
        let t = &self.truth.text;
        q.iter().rev().copied().find(|&c| t.get(..c).is_some_and(|before| before.ends_with(prefix)))
    }

    fn continuation(&self, c: usize, req: &CompletionRequest) -> Vec<String> {
        let t = &self.truth.text;
        let e = self.truth.block_end(c).max(c);
        // The rest of the block-end line, then OVERRUN_LINES more.
        let mut limit = e;
        for _ in 0..=OVERRUN_LINES {
            if limit >= t.len() {
                break;
            }
            limit = line_at(t, limit).1;
        }
        let mut text = t.get(c..limit.min(t.len())).unwrap_or("");
        // A real server stops before the first occurrence of any stop sequence.
        if let Some(cut) = req.stop.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min() {
            text = &text[..cut];
        }
        let mut tokens = tokenize(text);
        tokens.truncate(req.max_tokens as usize);
        tokens
    }
}

impl Source for Oracle {
    fn open(&self, req: CompletionRequest) -> Opening {
        let tokens = match self.locate(&req.prefix) {
            Some(c) => self.continuation(c, &req),
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                Vec::new()
            }
        };
        self.tokens.fetch_add(tokens.len() as u64, Ordering::Relaxed);
        self.chars.fetch_add(tokens.iter().map(|t| t.len() as u64).sum(), Ordering::Relaxed);
        let (ttft, gap) = (self.ttft, self.gap);
        Box::pin(async move {
            let first = tokio::time::Instant::now() + ttft;
            tokio::time::sleep_until(first).await;
            // Absolute deadlines, so the rate does not drift with the consumer's speed.
            let s = stream::unfold((tokens.into_iter(), 0u32, false), move |(mut it, i, done)| async move {
                if done {
                    return None;
                }
                match it.next() {
                    Some(tok) => {
                        tokio::time::sleep_until(first + gap * i).await;
                        Some((Ok::<_, ProviderError>(Event::Delta(tok)), (it, i + 1, false)))
                    }
                    None => Some((Ok(Event::Done(Finish::default())), (it, i, true))),
                }
            });
            Ok(Box::pin(s) as Deltas)
        })
    }

    fn name(&self) -> &str {
        "oracle"
    }
}

/// Split text into model-like tokens (about 3.5 characters each): a line break with the
/// indentation after it, or up to four spaces with the word (up to 8 characters) or one or two
/// punctuation characters that follow.
fn tokenize(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let word = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let start = i;
        if chars[i] == '\r' || chars[i] == '\n' {
            i += if chars[i] == '\r' && chars.get(i + 1) == Some(&'\n') { 2 } else { 1 };
            while i < chars.len() && i - start < 8 && (chars[i] == ' ' || chars[i] == '\t') {
                i += 1;
            }
        } else {
            while i < chars.len() && i - start < 4 && (chars[i] == ' ' || chars[i] == '\t') {
                i += 1;
            }
            let body = i;
            if i < chars.len() && word(chars[i]) {
                while i < chars.len() && i - body < 8 && word(chars[i]) {
                    i += 1;
                }
            } else if i < chars.len() && !matches!(chars[i], '\r' | '\n' | ' ' | '\t') {
                i += 1;
                if i < chars.len() && !word(chars[i]) && !chars[i].is_whitespace() {
                    i += 1;
                }
            }
        }
        if i == start {
            i += 1; // never stall
        }
        out.push(chars[start..i.min(chars.len())].iter().collect());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Measuring one request

/// What the harness learns about a request even when it is aborted.
#[derive(Debug, Default)]
struct Probe {
    /// Real time spent polling the request's future (Quill's work in this task).
    polled: Duration,
    /// The request started a provider call.
    launched: bool,
    /// Virtual time at which it finished.
    done_at: Option<tokio::time::Instant>,
}

/// Times every poll of the wrapped future, and notes whether a poll started a provider call (the
/// runtime has one thread, so the counter moving during our poll is ours).
struct Probed<F> {
    inner: Pin<Box<F>>,
    probe: Arc<Mutex<Probe>>,
    stats: Arc<Stats>,
}

impl<F: Future> Future for Probed<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let before = self.stats.provider_requests.load(Ordering::Relaxed);
        let t = Instant::now();
        let r = self.inner.as_mut().poll(cx);
        let spent = t.elapsed();
        let launched = self.stats.provider_requests.load(Ordering::Relaxed) > before;
        let mut p = self.probe.lock().unwrap_or_else(|p| p.into_inner());
        p.polled += spent;
        p.launched |= launched;
        if r.is_ready() {
            p.done_at = Some(tokio::time::Instant::now());
        }
        r
    }
}

struct Running {
    handle: JoinHandle<Result<Outcome, ProviderError>>,
    probe: Arc<Mutex<Probe>>,
    snap: Snapshot,
    cursor: usize,
    /// Real time of the store work for this keystroke (edit, reparse, snapshot, open documents).
    sync: Duration,
    at: tokio::time::Instant,
    hole: Hole,
}

// ---------------------------------------------------------------------------------------------
// Results

#[derive(Default, Clone)]
struct Tally {
    files: usize,
    keys: u64,
    lines: usize,
    /// Pipeline overhead per request: the scheduler's `Outcome::overhead` when the request
    /// finished, else the real time spent polling it before it was aborted.
    overhead_all: Vec<Duration>,
    overhead_provider: Vec<Duration>,
    /// The same plus the keystroke's store work.
    synced_all: Vec<Duration>,
    synced_provider: Vec<Duration>,
    sync: Vec<Duration>,
    completed: u64,
    cancelled: u64,
    errors: u64,
    provider_requests: u64,
    mid_word: u64,
    served_typed_ahead: u64,
    served_in_flight: u64,
    served_cache: u64,
    aborted_calls: u64,
    pauses: u64,
    pauses_answered: u64,
    pause_latency: Vec<Duration>,
    shown: u64,
    multiline: u64,
    exact: u64,
    duplicates: u64,
    oracle_misses: u64,
    oracle_tokens: u64,
    oracle_chars: u64,
    /// Regions where the typist's auto-inserted text never got consumed (cleaned up after).
    typist_leftovers: u64,
    /// The metrics applied at each pause to two reference answers, to check the definitions: the
    /// ideal multi-line answer and the raw oracle text. (exact, duplicate) counts.
    check_ideal: (u64, u64),
    check_raw: (u64, u64),
    virtual_time: Duration,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.files += o.files;
        self.keys += o.keys;
        self.lines += o.lines;
        self.overhead_all.extend(o.overhead_all);
        self.overhead_provider.extend(o.overhead_provider);
        self.synced_all.extend(o.synced_all);
        self.synced_provider.extend(o.synced_provider);
        self.sync.extend(o.sync);
        self.completed += o.completed;
        self.cancelled += o.cancelled;
        self.errors += o.errors;
        self.provider_requests += o.provider_requests;
        self.mid_word += o.mid_word;
        self.served_typed_ahead += o.served_typed_ahead;
        self.served_in_flight += o.served_in_flight;
        self.served_cache += o.served_cache;
        self.aborted_calls += o.aborted_calls;
        self.pauses += o.pauses;
        self.pauses_answered += o.pauses_answered;
        self.pause_latency.extend(o.pause_latency);
        self.shown += o.shown;
        self.multiline += o.multiline;
        self.exact += o.exact;
        self.duplicates += o.duplicates;
        self.oracle_misses += o.oracle_misses;
        self.oracle_tokens += o.oracle_tokens;
        self.oracle_chars += o.oracle_chars;
        self.typist_leftovers += o.typist_leftovers;
        self.check_ideal = (self.check_ideal.0 + o.check_ideal.0, self.check_ideal.1 + o.check_ideal.1);
        self.check_raw = (self.check_raw.0 + o.check_raw.0, self.check_raw.1 + o.check_raw.1);
        self.virtual_time += o.virtual_time;
    }
}

/// Whether a shown multi-line suggestion ends exactly at the true block end.
///
/// With D the document, c the cursor, S the suggestion replacing `c..answer.end`, and E the end
/// of the block containing c in the final text T (closing token included, see
/// [`Truth::block_end`]): exact iff the document after applying S reads, from c through E,
/// exactly as T does (so S may stop before a closer that D already has after the cursor), and S
/// does not run past E (`S.trim_end()` is no longer than `T[c..E]`). D equals T before c by
/// construction, so c is also T's offset.
fn exact_block_end(truth: &Truth, d: &Rope, a: &Answer) -> bool {
    let t = &truth.text;
    let c = a.start;
    let e = truth.block_end(c);
    let Some(want) = t.get(c..e) else { return false };
    let s = a.text.as_str();
    if s.trim_end().len() > want.len() {
        return false;
    }
    let need = want.len().saturating_sub(s.len());
    let mut got = String::with_capacity(want.len() + 8);
    got.push_str(s);
    got.push_str(&rope_text(d, a.end, a.end.saturating_add(need)));
    got.as_bytes().get(..want.len()) == Some(want.as_bytes())
}

/// Where the document differs from the final text T at a request: it is always
/// `T[..cursor] + pending + T[region_end..]`.
#[derive(Debug, Clone)]
struct Hole {
    region_end: usize,
    pending: String,
    splits: bool,
}

/// Whether a shown suggestion S duplicates text already after the cursor c: after applying it,
/// some text that was after the cursor appears twice.
///
/// The document is always `T[..c] + pending + T[region_end..]`, where `pending` is what the
/// editor auto-inserted (closers) and `T[c..region_end]` the rest of the region being typed.
/// When S is T's own continuation (`T[c..]` starts with S, ending at `p = c + |S|`), applying it
/// gives `T[..p] + Y + T[region_end..]`, Y being the pending text S did not overwrite. That is
/// free of duplicates exactly when S stays inside the region (`p <= region_end`) and Y is still
/// to come in the truth: Y, ignoring whitespace, is a subsequence of `T[p..region_end]` (each
/// leftover closer stands for one the file has later). Otherwise the closer or the text was
/// already there and S repeated it.
///
/// When S is not T's continuation (it never is with the oracle, unless post-processing changed
/// it), two looser rules apply: (a) S's last non-blank line equals the first non-blank line
/// after the replaced range (both trimmed); (b) S ends with a run of closers and the text after
/// the replaced range starts with one of them.
fn duplicates_suffix(truth: &Truth, d: &Rope, a: &Answer, hole: &Hole) -> bool {
    let t = &truth.text;
    let (c, s) = (a.start, a.text.as_str());
    if s.trim().is_empty() || a.end < c {
        return false;
    }
    if t.get(c..).is_some_and(|rest| rest.starts_with(s)) {
        let p = c + s.len();
        let pending_end = c + hole.pending.len();
        if p > hole.region_end || a.end > pending_end {
            return true;
        }
        let leftover = rope_text(d, a.end, pending_end);
        let future = t.get(p..hole.region_end).unwrap_or("");
        return !is_subsequence_ignoring_space(&leftover, future);
    }
    let s = s.trim_end();
    let after = rope_text(d, a.end, a.end.saturating_add(4096));
    let last_line = s.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    if !last_line.is_empty() && last_line == first_nonblank_line(&after) {
        return true;
    }
    let run: Vec<char> = s.chars().rev().take_while(|c| CLOSERS.contains(c)).collect();
    after.chars().next().is_some_and(|r0| CLOSERS.contains(&r0) && run.contains(&r0))
}

/// Whether the non-whitespace characters of `needle` appear in `hay` in order.
fn is_subsequence_ignoring_space(needle: &str, hay: &str) -> bool {
    let mut hay = hay.chars().filter(|c| !c.is_whitespace());
    needle.chars().filter(|c| !c.is_whitespace()).all(|n| hay.any(|h| h == n))
}

fn first_nonblank_line(text: &str) -> &str {
    text.split(['\n', '\r']).map(str::trim).find(|l| !l.is_empty()).unwrap_or("")
}

/// `d[start..end]` as a string, clamped, never panicking.
fn rope_text(d: &Rope, start: usize, end: usize) -> String {
    let len = d.len_bytes();
    let (start, end) = (start.min(len), end.min(len));
    if start >= end {
        return String::new();
    }
    let (cs, ce) = (d.byte_to_char(start), d.byte_to_char(end));
    d.get_slice(cs..ce).map(|s| s.to_string()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Choosing what to type

#[derive(Debug, Clone, Copy)]
struct Region {
    start: usize,
    end: usize,
}

/// Keystrokes to type `text` with auto-indentation (each line's indentation comes with Enter).
fn estimate_keys(text: &str) -> usize {
    let mut n = 0;
    let mut at_line_start = false;
    for ch in text.chars() {
        if ch == '\n' || ch == '\r' {
            at_line_start = true;
            n += 1;
        } else if at_line_start && (ch == ' ' || ch == '\t') {
        } else {
            at_line_start = false;
            n += 1;
        }
    }
    n
}

/// Function bodies (70% of the budget), then bracket-balanced 1-3-line spans, disjoint, in
/// document order.
fn choose_regions(truth: &Truth, budget: usize, rng: &mut StdRng) -> Vec<Region> {
    let t = &truth.text;
    let mut chosen: Vec<Region> = Vec::new();
    let overlaps = |chosen: &[Region], r: Region| chosen.iter().any(|c| r.start < c.end + 2 && c.start < r.end + 2);
    let mut used = 0;

    let mut bodies: Vec<Region> =
        truth.bodies.iter().filter(|b| b.function).filter_map(|b| body_region(t, b)).collect();
    bodies.shuffle(rng);
    let body_budget = (budget as f64 * BODY_SHARE) as usize;
    for r in bodies {
        let Some(text) = t.get(r.start..r.end) else { continue };
        let lines = text.lines().count();
        let keys = estimate_keys(text);
        if !(2..=40).contains(&lines) || used + keys > body_budget || overlaps(&chosen, r) {
            continue;
        }
        used += keys;
        chosen.push(r);
    }

    let line_starts: Vec<usize> =
        std::iter::once(0).chain(t.match_indices('\n').map(|(i, _)| i + 1)).filter(|&i| i < t.len()).collect();
    let mut tries = 0;
    while used < budget && tries < 400 && !line_starts.is_empty() {
        tries += 1;
        let first = rng.gen_range(0..line_starts.len());
        let n = rng.gen_range(1..=3usize);
        let last = (first + n - 1).min(line_starts.len() - 1);
        let (l1, _) = line_at(t, line_starts[first]);
        let (l2, _) = line_at(t, line_starts[last]);
        if l1.trim().is_empty() || l2.trim().is_empty() {
            continue;
        }
        let r = Region { start: line_starts[first] + indent_of(l1), end: line_starts[last] + l2.len() };
        let Some(text) = t.get(r.start..r.end) else { continue };
        let keys = estimate_keys(text);
        if r.start >= r.end || !balanced(text) || used + keys > budget || overlaps(&chosen, r) {
            continue;
        }
        used += keys;
        chosen.push(r);
    }
    chosen.sort_by_key(|r| r.start);
    chosen
}

/// Brackets in `text` close in order and all close: a span a user could type as a unit.
fn balanced(text: &str) -> bool {
    let mut depth = 0i32;
    for ch in text.chars() {
        match ch {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    depth == 0
}

/// The typed part of a body: for `{ ... }` from just after `{` to the line break before the
/// `}` line (the document keeps `{` and `}` on their own lines, as after an editor's Enter); for
/// Python-like bodies from just after the opener `:` to the end of the last statement.
fn body_region(t: &str, b: &Body) -> Option<Region> {
    if b.braced {
        let bytes = t.as_bytes();
        if bytes.get(b.start) != Some(&b'{') || b.end < 2 || bytes.get(b.end - 1) != Some(&b'}') {
            return None;
        }
        let start = b.start + 1;
        break_at(t, start)?; // the opener ends its line
        let close = b.end - 1;
        let ls = line_start(t, close);
        if !t.get(ls..close)?.trim().is_empty() || ls <= start {
            return None;
        }
        let brk = if t.get(..ls)?.ends_with("\r\n") { 2 } else { 1 };
        let end = ls - brk;
        (end > start).then_some(Region { start, end })
    } else {
        let start = b.opener_end?;
        let gap = t.get(start..b.start)?;
        if !gap.contains(['\n', '\r']) || !gap.trim().is_empty() {
            return None;
        }
        (b.end > start).then_some(Region { start, end: b.end })
    }
}

// ---------------------------------------------------------------------------------------------
// Typing

struct Run<'a> {
    knobs: &'a Knobs,
    store: Arc<Store>,
    sched: Arc<Scheduler>,
    oracle: Arc<Oracle>,
    truth: Arc<Truth>,
    uri: String,
    path: String,
    version: i32,
    snap: Snapshot,
    /// Text the editor inserted after the cursor that the final text has later: the document is
    /// always `T[..cur] + pending + T[region.end..]`.
    pending: String,
    cur: usize,
    region_end: usize,
    running: Option<Running>,
    tally: Tally,
    rng: StdRng,
}

enum Key {
    /// Insert text at the cursor; the cursor ends `advance` bytes later; `pending` gets `tail`
    /// prepended (what was inserted after the cursor).
    Insert { text: String, advance: usize, tail: String },
    /// Move the cursor over `n` bytes of `pending` (overtype, or stepping onto a closer line).
    Over(usize),
}

async fn replay_file(file: &SourceFile, neighbours: &[&SourceFile], knobs: &Knobs, seed: u64) -> Tally {
    let uri = format!("file:///replay/{}", file.path);
    let language = Language::detect(&file.language_id, &uri);
    let truth = Arc::new(Truth::new(file.text.clone(), language));
    let oracle = Arc::new(Oracle {
        truth: truth.clone(),
        cursors: Mutex::new(VecDeque::new()),
        ttft: knobs.ttft,
        gap: Duration::from_secs_f64(1.0 / knobs.tps),
        misses: AtomicU64::new(0),
        tokens: AtomicU64::new(0),
        chars: AtomicU64::new(0),
    });
    let sched = Arc::new(Scheduler::new(oracle.clone(), Settings::default()));
    let store = Arc::new(Store::new());
    for n in neighbours {
        store.open(&format!("file:///replay/{}", n.path), &n.language_id, 1, &n.text, DEFAULT_MAX_PARSE_BYTES);
    }
    store.open(&uri, &file.language_id, 1, &file.text, DEFAULT_MAX_PARSE_BYTES);
    let Some(snap) = store.snapshot(&uri) else { return Tally::default() };
    let mut rng = StdRng::seed_from_u64(seed);
    let regions = choose_regions(&truth, knobs.max_keys, &mut rng);
    let began = tokio::time::Instant::now();
    let mut run = Run {
        knobs,
        store,
        sched: sched.clone(),
        oracle: oracle.clone(),
        truth,
        uri,
        path: file.path.clone(),
        version: 1,
        snap,
        pending: String::new(),
        cur: 0,
        region_end: 0,
        running: None,
        tally: Tally { files: 1, lines: file.text.lines().count(), ..Tally::default() },
        rng,
    };
    for r in regions {
        run.type_region(r).await;
    }
    // Let abandoned provider calls run out their grace period.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut tally = run.tally;
    tally.virtual_time = began.elapsed();
    let s = &sched.stats;
    tally.provider_requests = s.provider_requests.load(Ordering::Relaxed);
    tally.mid_word = s.mid_word_requests.load(Ordering::Relaxed);
    tally.served_typed_ahead = s.served_typed_ahead.load(Ordering::Relaxed);
    tally.served_in_flight = s.served_in_flight.load(Ordering::Relaxed);
    tally.served_cache = s.served_cache.load(Ordering::Relaxed);
    tally.aborted_calls = s.aborted.load(Ordering::Relaxed);
    tally.oracle_misses = oracle.misses.load(Ordering::Relaxed);
    tally.oracle_tokens = oracle.tokens.load(Ordering::Relaxed);
    tally.oracle_chars = oracle.chars.load(Ordering::Relaxed);
    tally
}

impl Run<'_> {
    fn pos(&self, byte: usize) -> TextPos {
        let rope = &self.snap.text;
        let byte = byte.min(rope.len_bytes());
        let line = rope.byte_to_line(byte);
        let col = byte - rope.line_to_byte(line);
        TextPos::new(line as u32, col as u32)
    }

    /// An edit that is setup, not a keystroke (untimed, no request).
    fn setup_edit(&mut self, start: usize, end: usize, text: &str) {
        let range = Some((self.pos(start), self.pos(end)));
        self.version += 1;
        let change = Change { range, text: text.to_owned() };
        if let Err(e) = self.store.change(&self.uri, self.version, &[change], PositionEncoding::Utf8) {
            eprintln!("replay: {}: setup edit refused: {e}", self.path);
        }
        if let Some(s) = self.store.snapshot(&self.uri) {
            self.snap = s;
        }
    }

    async fn type_region(&mut self, r: Region) {
        self.settle().await;
        self.setup_edit(r.start, r.end, "");
        self.cur = r.start;
        self.region_end = r.end;
        self.pending.clear();
        while self.cur < r.end {
            let key = self.next_key(r.end);
            if matches!(key, Key::Over(0)) {
                break; // the region does not end on a character boundary: give up on it
            }
            let enter = matches!(&key, Key::Insert { text, .. } if text.starts_with(['\n', '\r']));
            let typed_char = match &key {
                Key::Insert { text, .. } => text.chars().next(),
                Key::Over(_) => None,
            };
            self.press(key).await;
            let pause = if self.cur >= r.end {
                false
            } else if enter {
                opens_block(self.previous_line()) || self.rng.gen_bool(PAUSE_AFTER_ENTER)
            } else {
                let word = |c: char| c.is_alphanumeric() || c == '_';
                let next = self.truth.text.get(self.cur..).and_then(|s| s.chars().next());
                typed_char.is_some_and(word) && !next.is_some_and(word) && self.rng.gen_bool(PAUSE_AT_WORD_END)
            };
            if pause {
                self.pause().await;
            } else {
                tokio::time::sleep(KEY_GAP).await;
            }
        }
        self.settle().await;
        if !self.pending.is_empty() {
            // Unbalanced brackets in the region (a `(` in a string, a closer on another line):
            // the user deletes what the editor added.
            self.tally.typist_leftovers += 1;
            if std::env::var_os("REPLAY_DEBUG").is_some() {
                let t = &self.truth.text;
                eprintln!(
                    "replay: {}: leftover {:?} typing {:?}",
                    self.path,
                    self.pending,
                    t.get(r.start..r.end).unwrap_or("")
                );
            }
            let (c, n) = (self.cur, self.pending.len());
            self.setup_edit(c, c + n, "");
            self.pending.clear();
        }
        if self.snap.text != self.truth.text.as_str() {
            eprintln!("replay: {}: document diverged from the file; reopened", self.path);
            self.version += 1;
            self.store.open(&self.uri, &self.snap.language_id, self.version, &self.truth.text, DEFAULT_MAX_PARSE_BYTES);
            if let Some(s) = self.store.snapshot(&self.uri) {
                self.snap = s;
            }
        }
    }

    /// The line before the cursor's line, in the final text.
    fn previous_line(&self) -> &str {
        let t = &self.truth.text;
        let ls = line_start(t, self.cur);
        if ls == 0 {
            return "";
        }
        let brk = if t.get(..ls).is_some_and(|s| s.ends_with("\r\n")) { 2 } else { 1 };
        let prev_end = ls - brk;
        let ps = line_start(t, prev_end);
        t.get(ps..prev_end).unwrap_or("")
    }

    fn hole(&self) -> Hole {
        Hole { region_end: self.region_end, pending: self.pending.clone(), splits: self.knobs.enter_splits }
    }

    fn next_key(&self, region_end: usize) -> Key {
        let after = self.after_region_char();
        typist_key(&self.truth.text, self.cur, region_end, &self.pending, after, self.knobs.enter_splits)
    }

    /// The first character of the document after the untyped part of the region.
    fn after_region_char(&self) -> Option<char> {
        let d = &self.snap.text;
        let at = self.cur + self.pending.len();
        if at >= d.len_bytes() {
            return None;
        }
        d.get_char(d.byte_to_char(at))
    }

    async fn press(&mut self, key: Key) {
        let c = self.cur;
        let edit = match &key {
            Key::Insert { text, .. } => {
                let p = self.pos(c);
                Some(Change { range: Some((p, p)), text: text.clone() })
            }
            Key::Over(_) => None,
        };
        self.version += i32::from(edit.is_some());
        let t0 = Instant::now();
        if let Some(change) = edit
            && let Err(e) = self.store.change(&self.uri, self.version, &[change], PositionEncoding::Utf8)
        {
            eprintln!("replay: {}: keystroke refused: {e}", self.path);
        }
        // Text only, as the LSP handler does: the reparse happens inside the pipeline, and only
        // when a request needs the tree (so it counts in the pipeline's overhead).
        let snap = self.store.peek(&self.uri);
        let sync = t0.elapsed();
        match key {
            Key::Insert { advance, tail, .. } => {
                self.cur += advance;
                self.pending.insert_str(0, &tail);
            }
            Key::Over(n) => {
                self.cur += n;
                self.pending.drain(..n.min(self.pending.len()));
            }
        }
        let Some(snap) = snap else { return };
        self.snap = snap.clone();
        self.tally.keys += 1;
        self.tally.sync.push(sync);
        // The editor cancels the previous request when a new keystroke comes.
        if let Some(prev) = self.running.take() {
            self.harvest(prev).await;
        }
        self.oracle.push_cursor(self.cur);
        let probe = Arc::new(Mutex::new(Probe::default()));
        let sched = self.sched.clone();
        let (store, uri, version, cursor) = (self.store.clone(), self.uri.clone(), snap.version, self.cur);
        let fut = Probed {
            inner: Box::pin(async move {
                let at = At { uri: &uri, version, cursor, manual: false, root: None };
                sched.suggest_in(&store, at).await
            }),
            probe: probe.clone(),
            stats: self.sched.stats.clone(),
        };
        let handle = tokio::spawn(fut);
        let at = tokio::time::Instant::now();
        let hole = self.hole();
        self.running = Some(Running { handle, probe, snap, cursor: self.cur, sync, at, hole });
    }

    /// Wait (virtual time) for the request in flight to end, then record it.
    async fn settle(&mut self) {
        if let Some(r) = self.running.take() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while !r.handle.is_finished() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(KEY_GAP).await;
            }
            self.harvest(r).await;
        }
    }

    async fn pause(&mut self) {
        self.tally.pauses += 1;
        self.check_metrics();
        let began = tokio::time::Instant::now();
        tokio::time::sleep(PAUSE).await;
        while self.running.as_ref().is_some_and(|r| !r.handle.is_finished()) && began.elapsed() < PAUSE_MAX {
            tokio::time::sleep(KEY_GAP).await;
        }
        let Some(r) = self.running.take() else { return };
        let at = r.at;
        if let Some(done) = self.harvest(r).await {
            self.tally.pauses_answered += 1;
            self.tally.pause_latency.push(done.saturating_duration_since(at));
        }
    }

    /// Score two reference answers at the cursor with the same metrics, so the report shows what
    /// the definitions give for a perfect answer and for the model's unprocessed text.
    fn check_metrics(&mut self) {
        let (t, d, c) = (&self.truth.text, &self.snap.text, self.cur);
        let e = self.truth.block_end(c).max(c);
        // The ideal answer is T up to the block end or the end of the hole, whichever is first
        // (past the hole the document already has the text), replacing the auto-inserted
        // closers that the typist would move over.
        let hole = self.hole();
        let stop = e.min(hole.region_end).max(c);
        let Some(text) = t.get(c..stop).filter(|x| !x.trim().is_empty()) else { return };
        let after = rope_text(d, c + hole.pending.len(), c + hole.pending.len() + 4).chars().next();
        let m = pending_consumed(t, c, stop, &hole.pending, after, hole.splits);
        let ideal = Answer {
            id: 0,
            text: text.to_owned(),
            start: c,
            end: c + m,
            served: quill::complete::scheduler::Served::Network,
            mode: Mode::MultiLine,
        };
        let raw_req = CompletionRequest { max_tokens: u32::MAX, ..CompletionRequest::default() };
        let raw = Answer { text: self.oracle.continuation(c, &raw_req).concat(), end: c, ..ideal.clone() };
        if std::env::var_os("REPLAY_DEBUG").is_some() && duplicates_suffix(&self.truth, d, &ideal, &hole) {
            eprintln!(
                "replay: ideal flagged as duplicate: {:?} replacing {m} bytes before {:?}; T: {:?}|{:?}",
                ideal.text,
                rope_text(d, c + m, c + m + 80),
                t.get(c.saturating_sub(60)..c).unwrap_or(""),
                t.get(c..(c + 60).min(t.len())).unwrap_or(""),
            );
        }
        for (answer, slot) in [(ideal, &mut self.tally.check_ideal), (raw, &mut self.tally.check_raw)] {
            slot.0 += u64::from(exact_block_end(&self.truth, d, &answer));
            slot.1 += u64::from(duplicates_suffix(&self.truth, d, &answer, &hole));
        }
    }

    /// Record a request: finished (its outcome) or not (aborted now, as the editor's next
    /// keystroke cancels it). Returns when it finished, if it gave a suggestion.
    async fn harvest(&mut self, r: Running) -> Option<tokio::time::Instant> {
        let Running { handle, probe, snap, cursor, sync, hole, .. } = r;
        let (polled, launched, done_at) = {
            let p = probe.lock().unwrap_or_else(|p| p.into_inner());
            (p.polled, p.launched, p.done_at)
        };
        let record = |tally: &mut Tally, overhead: Duration| {
            tally.overhead_all.push(overhead);
            tally.synced_all.push(overhead + sync);
            if launched {
                tally.overhead_provider.push(overhead);
                tally.synced_provider.push(overhead + sync);
            }
        };
        if !handle.is_finished() {
            handle.abort();
            self.tally.cancelled += 1;
            record(&mut self.tally, polled);
            return None;
        }
        let outcome = match handle.await {
            Ok(Ok(o)) => o,
            Ok(Err(_)) => {
                self.tally.errors += 1;
                record(&mut self.tally, polled);
                return None;
            }
            Err(_) => {
                self.tally.cancelled += 1;
                record(&mut self.tally, polled);
                return None;
            }
        };
        self.tally.completed += 1;
        record(&mut self.tally, outcome.overhead);
        let answer = outcome.result.ok()?;
        if answer.start != cursor {
            return done_at; // not at the request's cursor: the metrics below would not apply
        }
        self.tally.shown += 1;
        if answer.mode == Mode::MultiLine {
            self.tally.multiline += 1;
            if exact_block_end(&self.truth, &snap.text, &answer) {
                self.tally.exact += 1;
            }
        }
        if duplicates_suffix(&self.truth, &snap.text, &answer, &hole) {
            if std::env::var_os("REPLAY_DEBUG").is_some() {
                eprintln!(
                    "replay: {}: duplicate {:?} replacing {:?} before {:?}",
                    self.path,
                    answer.text,
                    rope_text(&snap.text, answer.start, answer.end),
                    rope_text(&snap.text, answer.end, answer.end + 40)
                );
            }
            self.tally.duplicates += 1;
        }
        done_at
    }
}

/// What the typist presses next to produce `t[cur..limit]`, given `pending` (what the editor put
/// after the cursor) and `after`, the document's character after `pending`.
fn typist_key(t: &str, cur: usize, limit: usize, pending: &str, after: Option<char>, enter_splits: bool) -> Key {
    let upcoming = t.get(cur..limit).unwrap_or("");
    // Step over an auto-inserted closer line (`\n    }`) when the file continues with it.
    if pending.starts_with(['\n', '\r']) {
        let body = pending.trim_start_matches(['\n', '\r', ' ', '\t']);
        let seg = pending.len() - body.len() + body.chars().next().map_or(0, char::len_utf8);
        if body.starts_with([')', ']', '}']) && upcoming.starts_with(&pending[..seg]) {
            return Key::Over(seg);
        }
    }
    if cur < limit
        && let Some(brk) = break_at(t, cur)
    {
        let next = cur + brk.len();
        let indent_len = t.get(next..limit).map_or(0, |s| s.len() - s.trim_start_matches([' ', '\t']).len());
        let indent = t.get(next..next + indent_len).unwrap_or("");
        let mut text = format!("{brk}{indent}");
        let mut tail = String::new();
        let before = t.get(..cur).and_then(|s| s.chars().next_back());
        let paired = before.and_then(closer_of).is_some_and(|c| pending.starts_with(c));
        if enter_splits && paired {
            // Enter between `{` and its auto-inserted `}`: the closer moves to its own line at
            // the current line's indentation.
            let (line, _) = line_at(t, line_start(t, cur));
            tail = format!("{brk}{}", &line[..indent_of(line)]);
            text.push_str(&tail);
        }
        return Key::Insert { text, advance: brk.len() + indent_len, tail };
    }
    let Some(ch) = upcoming.chars().next() else { return Key::Over(0) };
    if matches!(ch, ')' | ']' | '}') && pending.starts_with(ch) {
        return Key::Over(1);
    }
    // Editors do not auto-close brackets inside a string literal (`"\x1b[31m"`).
    if let Some(close) = closer_of(ch).filter(|_| !inside_string(t, cur)) {
        let next = pending.chars().next().or(after);
        if next.is_none_or(|n| n.is_whitespace() || matches!(n, ')' | ']' | '}' | ';' | ',')) {
            return Key::Insert { text: format!("{ch}{close}"), advance: ch.len_utf8(), tail: close.to_string() };
        }
    }
    Key::Insert { text: ch.to_string(), advance: ch.len_utf8(), tail: String::new() }
}

/// Whether `cur` is inside a string literal on its line: an odd number of unescaped double
/// quotes before it (single quotes are Rust lifetimes and char literals, left alone).
fn inside_string(t: &str, cur: usize) -> bool {
    let line_start = t.get(..cur).and_then(|h| h.rfind('\n')).map_or(0, |i| i + 1);
    let mut inside = false;
    let mut escaped = false;
    for c in t.get(line_start..cur).unwrap_or("").chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => inside = !inside,
            _ => {}
        }
    }
    inside
}

/// How many bytes of `pending` the typist moves over (rather than retypes) while typing
/// `t[cur..limit]`: the auto-inserted closers that the typed text closes.
fn pending_consumed(t: &str, mut cur: usize, limit: usize, pending: &str, after: Option<char>, splits: bool) -> usize {
    let mut now = pending.to_owned();
    // Text the simulation inserted at the front of `now`; the original pending is what follows.
    let mut added = 0;
    let mut consumed = 0;
    while cur < limit {
        match typist_key(t, cur, limit, &now, after, splits) {
            Key::Over(0) => break,
            Key::Over(n) => {
                let n = n.min(now.len());
                now.drain(..n);
                consumed += n.saturating_sub(added);
                added = added.saturating_sub(n);
                cur += n;
            }
            Key::Insert { advance, tail, .. } => {
                added += tail.len();
                now.insert_str(0, &tail);
                cur += advance;
            }
        }
    }
    consumed
}

fn closer_of(c: char) -> Option<char> {
    match c {
        '(' => Some(')'),
        '[' => Some(']'),
        '{' => Some('}'),
        _ => None,
    }
}

/// A line after which the next line starts a block body.
fn opens_block(line: &str) -> bool {
    let l = line.trim_end();
    l.ends_with(['{', ':', '(', '[']) || l.ends_with("=>") || l.ends_with(" do") || l.ends_with(" then")
}

// ---------------------------------------------------------------------------------------------
// The report

fn pct(v: &[Duration], p: f64) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let rank = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s.get(rank - 1).copied()
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "–".into(), |d| format!("{:.3}", d.as_secs_f64() * 1000.0))
}

fn share(n: u64, of: u64) -> String {
    if of == 0 { "–".into() } else { format!("{:.1}% ({n}/{of})", 100.0 * n as f64 / of as f64) }
}

fn per100(n: u64, keys: u64) -> f64 {
    if keys == 0 { 0.0 } else { 100.0 * n as f64 / keys as f64 }
}

fn render(groups: &[(String, Tally)], knobs: &Knobs, real: Duration) -> String {
    let mut total = Tally::default();
    for (_, t) in groups {
        total.merge(t.clone());
    }
    let mut rows: Vec<(&str, &Tally)> = groups.iter().map(|(g, t)| (g.as_str(), t)).collect();
    rows.push(("**total**", &total));
    let mut o = String::new();
    let chars_per_token =
        if total.oracle_tokens == 0 { 0.0 } else { total.oracle_chars as f64 / total.oracle_tokens as f64 };
    let _ = writeln!(o, "## Autocomplete replay\n");
    let _ = writeln!(
        o,
        "Oracle provider: TTFT {} ms, {} tokens/s ({chars_per_token:.1} chars/token), {OVERRUN_LINES} lines of overrun \
         past the block end. Typing: {} ms per key, pauses of {}-{} s (always after a block opener line, {:.0}% of \
         other Enters, {:.0}% of word ends), at most {} keys per file, {} other open documents, Enter splits \
         auto-paired brackets: {}. Scheduler: default settings. Run: {:.1} s real, {:.0} s virtual.\n",
        knobs.ttft.as_millis(),
        knobs.tps,
        KEY_GAP.as_millis(),
        PAUSE.as_secs(),
        PAUSE_MAX.as_secs(),
        PAUSE_AFTER_ENTER * 100.0,
        PAUSE_AT_WORD_END * 100.0,
        knobs.max_keys,
        knobs.open_docs,
        if knobs.enter_splits { "yes" } else { "no" },
        real.as_secs_f64(),
        total.virtual_time.as_secs_f64(),
    );
    let _ = writeln!(o, "### Overhead (real time inside Quill, ms)\n");
    let _ = writeln!(
        o,
        "\"pipeline\" is `Scheduler::suggest_in` per request, as the LSP handler runs it: typed-ahead \
         reuse on the text alone, else the snapshot with its incremental reparse, the open documents, \
         trigger, context, snippets, reuse and post-processing (not debounce or provider waits); for \
         requests aborted by the next keystroke, the time spent polling them. \"+ sync\" adds the \
         keystroke's store work: applying the edit and the text-only peek. \"provider\" rows are \
         requests that started a provider call.\n"
    );
    let _ = writeln!(
        o,
        "| language | files | lines | keys | requests | pipeline p50 | p99 | provider p50 | p99 | + sync p50 | p99 | provider + sync p50 | p99 | sync p50 | p99 |"
    );
    let _ = writeln!(o, "|---|{}", "--:|".repeat(14));
    for (name, t) in &rows {
        let _ = writeln!(
            o,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            t.files,
            t.lines,
            t.keys,
            t.overhead_all.len(),
            ms(pct(&t.overhead_all, 0.5)),
            ms(pct(&t.overhead_all, 0.99)),
            ms(pct(&t.overhead_provider, 0.5)),
            ms(pct(&t.overhead_provider, 0.99)),
            ms(pct(&t.synced_all, 0.5)),
            ms(pct(&t.synced_all, 0.99)),
            ms(pct(&t.synced_provider, 0.5)),
            ms(pct(&t.synced_provider, 0.99)),
            ms(pct(&t.sync, 0.5)),
            ms(pct(&t.sync, 0.99)),
        );
    }
    let _ = writeln!(o, "\n### Behaviour\n");
    let _ = writeln!(
        o,
        "| language | provider requests / 100 keys | mid-word requests | pauses with a suggestion | pause → suggestion p50 (ms) | shown | multi-line | exact block end | suffix duplicates | typed-ahead / in-flight / cache | aborted calls |"
    );
    let _ = writeln!(o, "|---|{}", "--:|".repeat(10));
    for (name, t) in &rows {
        let _ = writeln!(
            o,
            "| {name} | {:.1} ({}) | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} | {} |",
            per100(t.provider_requests, t.keys),
            t.provider_requests,
            t.mid_word,
            share(t.pauses_answered, t.pauses),
            ms(pct(&t.pause_latency, 0.5)),
            t.shown,
            t.multiline,
            share(t.exact, t.multiline),
            share(t.duplicates, t.shown),
            t.served_typed_ahead,
            t.served_in_flight,
            t.served_cache,
            t.aborted_calls,
        );
    }
    let big = groups.iter().find(|(g, _)| g.contains("k-line file")).map(|(_, t)| t);
    let _ = writeln!(o, "\n### Targets\n");
    let check = |ok: Option<bool>| match ok {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    };
    let below = |d: Option<Duration>, ms: u64| d.map(|d| d <= Duration::from_millis(ms));
    let (p50, p99) = big.map_or((None, None), |b| (pct(&b.synced_all, 0.5), pct(&b.synced_all, 0.99)));
    let _ = writeln!(o, "| target | measured | |\n|---|--:|---|");
    let _ = writeln!(
        o,
        "| overhead ≤ 1 ms p50 on the 20k-line file (pipeline + sync) | {} | {} |",
        ms(p50),
        check(below(p50, 1))
    );
    let _ = writeln!(
        o,
        "| overhead ≤ 5 ms p99 on the 20k-line file (pipeline + sync) | {} | {} |",
        ms(p99),
        check(below(p99, 5))
    );
    let flat = groups.iter().find(|(g, _)| g.contains("k-line flat file")).map(|(_, t)| t);
    let (f50, f99) = flat.map_or((None, None), |b| (pct(&b.synced_all, 0.5), pct(&b.synced_all, 0.99)));
    let _ = writeln!(
        o,
        "| the same on a flat 20k-line file (thousands of top-level items) | {} / {} | {} / {} |",
        ms(f50),
        ms(f99),
        check(below(f50, 1)),
        check(below(f99, 5))
    );
    let rate = per100(total.provider_requests, total.keys);
    let _ = writeln!(
        o,
        "| ≤ 20 provider requests per 100 keys | {rate:.1} | {} |",
        check((total.keys > 0).then_some(rate <= 20.0))
    );
    let exact = (total.multiline > 0).then(|| total.exact as f64 / total.multiline as f64);
    let _ = writeln!(
        o,
        "| ≥ 90% exact block ends | {} | {} |",
        share(total.exact, total.multiline),
        check(exact.map(|e| e >= 0.9))
    );
    let _ = writeln!(o, "| 0 suffix duplicates | {} | {} |", total.duplicates, check(Some(total.duplicates == 0)));
    let _ = writeln!(o, "| 0 mid-word requests | {} | {} |", total.mid_word, check(Some(total.mid_word == 0)));
    let _ = writeln!(
        o,
        "\nRequests: {} finished, {} aborted by the next keystroke, {} provider errors. Oracle misses (prefix not \
         found in the file): {}. Regions whose auto-inserted closers were never typed over (line spans that \
         open a bracket the file closes later; deleted before the next region): {}.",
        total.completed, total.cancelled, total.errors, total.oracle_misses, total.typist_leftovers
    );
    let _ = writeln!(
        o,
        "\nMetric check, at each of the {} pauses: the ideal multi-line answer (the file up to the block end or \
         the end of the typed region, replacing the auto-inserted closers it closes) scores {} exact and {} duplicates; the raw oracle text \
         (20 lines past the block end) scores {} exact and {} duplicates.",
        total.pauses,
        share(total.check_ideal.0, total.pauses),
        share(total.check_ideal.1, total.pauses),
        share(total.check_raw.0, total.pauses),
        share(total.check_raw.1, total.pauses),
    );
    o
}
