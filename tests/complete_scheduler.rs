//! The autocomplete scheduler against a scripted source, in virtual time: what reaches the
//! provider, what is reused (typed-ahead, in flight, cache), what is cancelled, and what is cut
//! early. Timings are virtual (`start_paused`), so these tests assert behaviour, never speed.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::stream;
use quill::{
    complete::scheduler::{Deltas, Nothing, Opening, Request, Scheduler, Served, Settings, Source},
    document::DEFAULT_MAX_PARSE_BYTES,
    provider::{CompletionRequest, Event, Finish, ProviderError},
    store::Store,
};

/// A provider double: each call streams `chunks` with `gap` between them, after `ttft`.
/// It records every request, and counts streams dropped before their end (aborted calls).
type Script = Box<dyn Fn(&CompletionRequest) -> Vec<String> + Send + Sync>;

struct Scripted {
    answer: Script,
    ttft: Duration,
    gap: Duration,
    requests: Mutex<Vec<CompletionRequest>>,
    dropped_early: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
}

struct DropFlag {
    done: bool,
    dropped_early: Arc<AtomicUsize>,
}

impl Drop for DropFlag {
    fn drop(&mut self) {
        if !self.done {
            self.dropped_early.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Scripted {
    fn new(answer: impl Fn(&CompletionRequest) -> Vec<String> + Send + Sync + 'static) -> Arc<Scripted> {
        Arc::new(Scripted {
            answer: Box::new(answer),
            ttft: Duration::from_millis(150),
            gap: Duration::from_millis(20),
            requests: Mutex::new(Vec::new()),
            dropped_early: Arc::default(),
            finished: Arc::default(),
        })
    }
    fn count(&self) -> usize {
        self.requests.lock().expect("lock").len()
    }
}

impl Source for Scripted {
    fn open(&self, req: CompletionRequest) -> Opening {
        let chunks = (self.answer)(&req);
        self.requests.lock().expect("lock").push(req);
        let (ttft, gap) = (self.ttft, self.gap);
        let flag = DropFlag { done: false, dropped_early: self.dropped_early.clone() };
        let finished = self.finished.clone();
        Box::pin(async move {
            tokio::time::sleep(ttft).await;
            let s = stream::unfold((chunks.into_iter(), flag, true), move |(mut it, mut flag, first)| {
                let finished = finished.clone();
                async move {
                    if !first {
                        tokio::time::sleep(gap).await;
                    }
                    match it.next() {
                        Some(c) => Some((Ok::<_, ProviderError>(Event::Delta(c)), (it, flag, false))),
                        None if !flag.done => {
                            flag.done = true;
                            finished.fetch_add(1, Ordering::SeqCst);
                            Some((Ok(Event::Done(Finish::default())), (it, flag, false)))
                        }
                        None => None,
                    }
                }
            });
            Ok(Box::pin(s) as Deltas)
        })
    }
    fn name(&self) -> &str {
        "scripted"
    }
}

const URI: &str = "file:///w/src/main.rs";

fn settings() -> Settings {
    Settings { debounce: Duration::from_millis(75), ..Settings::default() }
}

/// A store holding `fixture` (with `$0` removed) and the cursor's byte offset.
fn open(store: &Store, fixture: &str, version: i32) -> usize {
    let cursor = fixture.find("$0").expect("fixture has $0");
    let text = fixture.replacen("$0", "", 1);
    store.open(URI, "rust", version, &text, DEFAULT_MAX_PARSE_BYTES);
    cursor
}

fn request(store: &Store, cursor: usize) -> Request {
    let snap = store.snapshot(URI).expect("open");
    Request { snap, cursor, manual: false, path: Some("src/main.rs".into()), others: Vec::new() }
}

fn chunks(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    chars.chunks(n).map(|c| c.iter().collect()).collect()
}

#[tokio::test(start_paused = true)]
async fn a_single_line_answer_is_cut_at_its_first_line_and_the_rest_aborted() {
    let src = Scripted::new(|_| chunks("answer(1, 2);\n    let y = 3;\n    let z = 4;\n", 3));
    let sched = Scheduler::new(src.clone(), settings());
    let store = Store::new();
    let cursor = open(&store, "fn main() {\n    let x = $0\n}\n", 1);
    let out = sched.suggest(request(&store, cursor)).await.expect("no provider error");
    let answer = out.result.expect("a suggestion");
    assert_eq!(answer.text, "answer(1, 2);");
    assert_eq!(answer.served, Served::Network);
    assert_eq!(src.count(), 1);
    assert_eq!(src.requests.lock().expect("lock")[0].stop, vec!["\n".to_owned()]);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(src.dropped_early.load(Ordering::SeqCst), 1, "the stream was dropped once the line was complete");
}

#[tokio::test(start_paused = true)]
async fn typing_into_a_suggestion_reuses_it_without_a_new_request() {
    let src = Scripted::new(|_| vec!["answer(1, 2);\n".into()]);
    let sched = Scheduler::new(src.clone(), settings());
    let store = Store::new();
    let cursor = open(&store, "fn main() {\n    let x = $0\n}\n", 1);
    let first = sched.suggest(request(&store, cursor)).await.expect("ok").result.expect("shown");
    assert_eq!(first.text, "answer(1, 2);");
    // The user types "ans": the rest is served from the last suggestion.
    let cursor = open(&store, "fn main() {\n    let x = ans$0\n}\n", 2);
    let again = sched.suggest(request(&store, cursor)).await.expect("ok");
    let again = again.result.expect("reused");
    assert_eq!(again.text, "wer(1, 2);");
    assert_eq!(again.served, Served::TypedAhead);
    assert_eq!(src.count(), 1, "no second provider request");
    // Typing something else is a miss: a new request.
    let cursor = open(&store, "fn main() {\n    let x = bo$0\n}\n", 3);
    let _ = sched.suggest(request(&store, cursor)).await.expect("ok");
    assert_eq!(src.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_latest_request_wins_during_the_debounce() {
    let src = Scripted::new(|_| vec!["1;\n".into()]);
    let sched = Arc::new(Scheduler::new(src.clone(), settings()));
    let store = Store::new();
    let c1 = open(&store, "fn main() {\n    let x = a $0\n}\n", 1);
    let r1 = request(&store, c1);
    let c2 = open(&store, "fn main() {\n    let x = a + $0\n}\n", 2);
    let r2 = request(&store, c2);
    let s1 = sched.clone();
    let first = tokio::spawn(async move { s1.suggest(r1).await });
    tokio::time::sleep(Duration::from_millis(30)).await; // a keystroke inside the debounce
    let second = sched.suggest(r2).await.expect("ok");
    let first = first.await.expect("join").expect("ok");
    assert_eq!(first.result.err(), Some(Nothing::Superseded));
    assert_eq!(second.result.expect("shown").text, "1;");
    assert_eq!(src.count(), 1, "only the latest reached the provider");
}

#[tokio::test(start_paused = true)]
async fn a_call_in_flight_serves_a_request_that_typed_along_with_it() {
    let src = Scripted::new(|_| chunks("answer(1, 2);", 2));
    let sched = Arc::new(Scheduler::new(src.clone(), settings()));
    let store = Store::new();
    let c1 = open(&store, "fn main() {\n    let x = $0\n}\n", 1);
    let r1 = request(&store, c1);
    let s1 = sched.clone();
    let first = tokio::spawn(async move { s1.suggest(r1).await });
    // After the debounce and the first tokens, the user types "an", which the answer starts with.
    tokio::time::sleep(Duration::from_millis(75 + 160)).await;
    assert_eq!(src.count(), 1);
    let c2 = open(&store, "fn main() {\n    let x = an$0\n}\n", 2);
    let second = sched.suggest(request(&store, c2)).await.expect("ok").result.expect("served");
    assert_eq!(second.text, "swer(1, 2);");
    assert_eq!(second.served, Served::InFlight);
    assert_eq!(src.count(), 1, "no new provider request");
    let _ = first.await;
    assert_eq!(src.dropped_early.load(Ordering::SeqCst), 0, "the call that could serve was not cancelled");
}

#[tokio::test(start_paused = true)]
async fn a_call_that_can_no_longer_serve_is_aborted_for_the_new_one() {
    let src = Scripted::new(|_| chunks("answer(1, 2);", 1));
    let sched = Arc::new(Scheduler::new(src.clone(), Settings { debounce: Duration::ZERO, ..settings() }));
    let store = Store::new();
    let c1 = open(&store, "fn main() {\n    let x = $0\n}\n", 1);
    let r1 = request(&store, c1);
    let s1 = sched.clone();
    let first = tokio::spawn(async move { s1.suggest(r1).await });
    tokio::time::sleep(Duration::from_millis(170)).await;
    let c2 = open(&store, "fn main() {\n    let x = zz$0\n}\n", 2);
    let _ = sched.suggest(request(&store, c2)).await.expect("ok");
    assert_eq!(src.count(), 2);
    assert_eq!(src.dropped_early.load(Ordering::SeqCst), 1, "the first call was aborted");
    let first = first.await.expect("join").expect("ok");
    assert!(first.result.is_err(), "the aborted request shows nothing");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_request_aborts_its_call_after_the_grace_period() {
    let src = Scripted::new(|_| chunks("answer(1, 2);", 1));
    let sched = Arc::new(Scheduler::new(src.clone(), Settings { debounce: Duration::ZERO, ..settings() }));
    let store = Store::new();
    let c1 = open(&store, "fn main() {\n    let x = $0\n}\n", 1);
    let r1 = request(&store, c1);
    let s1 = sched.clone();
    let task = tokio::spawn(async move { s1.suggest(r1).await });
    tokio::time::sleep(Duration::from_millis(160)).await;
    task.abort(); // what tower-lsp-server does on `$/cancelRequest`
    let _ = task.await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(src.dropped_early.load(Ordering::SeqCst), 1, "the provider call was aborted");
    assert_eq!(sched.stats.aborted.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn the_cache_answers_a_context_seen_before() {
    let src = Scripted::new(|_| vec!["1;\n".into()]);
    let sched = Scheduler::new(src.clone(), settings());
    let store = Store::new();
    let c1 = open(&store, "fn main() {\n    let x = $0\n}\n", 1);
    let _ = sched.suggest(request(&store, c1)).await.expect("ok");
    // Elsewhere, then back (e.g. typed and deleted): the same context is a cache hit.
    let c2 = open(&store, "fn main() {\n    let xy = $0\n}\n", 2);
    let _ = sched.suggest(request(&store, c2)).await.expect("ok");
    let c3 = open(&store, "fn main() {\n    let x = $0\n}\n", 3);
    let hit = sched.suggest(request(&store, c3)).await.expect("ok").result.expect("hit");
    assert_eq!(hit.served, Served::Cache);
    assert_eq!(hit.text, "1;");
    assert_eq!(src.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn no_request_mid_word() {
    let src = Scripted::new(|_| vec!["x".into()]);
    let sched = Scheduler::new(src.clone(), settings());
    let store = Store::new();
    let c = open(&store, "fn main() {\n    let va$0lue = 1;\n}\n", 1);
    let out = sched.suggest(request(&store, c)).await.expect("ok");
    assert!(matches!(out.result, Err(Nothing::Skipped(_))), "{:?}", out.result);
    assert_eq!(src.count(), 0);
}

#[tokio::test(start_paused = true)]
async fn typing_an_opener_that_the_editor_auto_closes_still_reuses_the_suggestion() {
    let src = Scripted::new(|_| vec!["answer(1, 2);\n".into()]);
    let sched = Scheduler::new(src.clone(), settings());
    let store = Store::new();
    let cursor = open(&store, "fn main() {\n    let x = $0\n}\n", 1);
    let _ = sched.suggest(request(&store, cursor)).await.expect("ok").result.expect("shown");
    // The user types "answer(" and the editor inserts ")" after the cursor.
    let cursor = open(&store, "fn main() {\n    let x = answer($0)\n}\n", 2);
    let again = sched.suggest(request(&store, cursor)).await.expect("ok").result.expect("reused");
    assert_eq!(again.text, "1, 2);");
    assert_eq!(again.end - again.start, 1, "the item spans the auto-inserted `)`");
    assert_eq!(src.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn out_of_time_the_text_streamed_so_far_is_used_and_silence_is_an_error() {
    let slow = Arc::new(Scripted {
        gap: Duration::from_secs(5),
        ..Arc::into_inner(Scripted::new(|_| vec!["answer(".into(), "1, 2);\n".into()])).expect("sole owner")
    });
    let settings = Settings { timeout: Duration::from_secs(2), ..settings() };
    let sched = Scheduler::new(slow.clone(), settings.clone());
    let store = Store::new();
    let cursor = open(&store, "fn main() {\n    let x = $0\n}\n", 1);
    let partial = sched.suggest(request(&store, cursor)).await.expect("partial text is used");
    assert_eq!(partial.result.expect("shown").text, "answer(");

    let silent = Arc::new(Scripted {
        ttft: Duration::from_secs(60),
        ..Arc::into_inner(Scripted::new(|_| vec!["x".into()])).expect("sole owner")
    });
    let sched = Scheduler::new(silent, settings);
    let err = sched.suggest(request(&store, cursor)).await.expect_err("nothing arrived in time");
    assert!(err.to_string().contains("timeout") || err.to_string().contains("time"), "{err}");
}

/// Answers "import os" to Python prompts and "use std::io;" to the others.
fn by_language(req: &CompletionRequest) -> Vec<String> {
    let python = req.language.as_deref() == Some("python");
    vec![if python { "import os\n" } else { "use std::io;\n" }.to_owned()]
}

#[tokio::test(start_paused = true)]
async fn the_cache_does_not_cross_languages_or_files() {
    let src = Scripted::new(by_language);
    let sched = Scheduler::new(src.clone(), Settings { debounce: Duration::ZERO, ..settings() });
    let store = Store::new();
    let header = "# Copyright 2025 Example Corp. All rights reserved.\n\n";
    store.open("file:///w/a.py", "python", 1, header, DEFAULT_MAX_PARSE_BYTES);
    store.open("file:///w/b.rs", "rust", 1, header, DEFAULT_MAX_PARSE_BYTES);
    let req = |uri: &str| Request {
        snap: store.snapshot(uri).expect("open"),
        cursor: header.len(),
        manual: true,
        path: Some(uri.into()),
        others: Vec::new(),
    };
    let py = sched.suggest(req("file:///w/a.py")).await.expect("ok").result.expect("py");
    assert_eq!(py.text, "import os");
    let rs = sched.suggest(req("file:///w/b.rs")).await.expect("ok").result.expect("rs");
    assert_eq!((rs.text.as_str(), rs.served), ("use std::io;", Served::Network));
}

/// A provider double whose stream streams a little text and then panics (a bug anywhere in the
/// flight's task).
struct Panicking(AtomicUsize);

impl Source for Panicking {
    fn open(&self, _req: CompletionRequest) -> Opening {
        self.0.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let s = stream::unfold(0, |n| async move {
                assert!(n == 0, "a bug in the flight task");
                Some((Ok::<_, ProviderError>(Event::Delta("x".into())), n + 1))
            });
            Ok(Box::pin(s) as Deltas)
        })
    }
    fn name(&self) -> &str {
        "panicking"
    }
}

#[tokio::test(start_paused = true)]
async fn a_flight_that_died_is_not_adopted() {
    let src = Arc::new(Panicking(AtomicUsize::new(0)));
    let sched = Scheduler::new(src.clone(), Settings { debounce: Duration::ZERO, ..settings() });
    let store = Store::new();
    let cursor = open(&store, "fn main() {\n    let s = $0\n}\n", 1);
    for _ in 0..3 {
        let out = sched.suggest(request(&store, cursor)).await.expect("no provider error");
        assert!(out.result.is_err(), "nothing to show from a dead call");
    }
    assert_eq!(src.0.load(Ordering::SeqCst), 3, "each request reached the provider");
}

#[tokio::test(start_paused = true)]
async fn deleting_a_closer_is_not_taken_for_an_auto_inserted_one() {
    let src = Scripted::new(|_| vec!["x))".into()]);
    let sched = Scheduler::new(src.clone(), Settings { debounce: Duration::ZERO, ..settings() });
    let store = Store::new();
    let cursor = open(&store, "fn main() {\n    foo(bar($0))", 1);
    let first = sched.suggest(request(&store, cursor)).await.expect("ok").result.expect("shown");
    assert_eq!((first.text.as_str(), first.end - first.start), ("x))", 2));
    // The user deletes a `)` after the cursor: the old answer's range would pass the end.
    let cursor = open(&store, "fn main() {\n    foo(bar($0)", 2);
    let len = store.snapshot(URI).expect("open").text.len_bytes();
    if let Ok(a) = sched.suggest(request(&store, cursor)).await.expect("ok").result {
        assert!(a.end <= len, "answer ends at {} past the end {len} ({:?})", a.end, a.served);
        assert_ne!(a.served, Served::TypedAhead);
    }
}

#[test]
fn the_version_recheck_survives_non_ascii_text_near_its_window() {
    use quill::complete::{Mode, rebase, scheduler::Answer};
    let mut before = String::from("// ");
    before.push_str(&"é".repeat(1200)); // the 2 KiB window edge falls inside an `é`
    before.push_str("\nlet x = ");
    let cursor = before.len();
    let now = format!("{before}a");
    let answer = Answer {
        id: 1,
        text: "abc;".into(),
        start: cursor,
        end: cursor,
        served: Served::Network,
        mode: Mode::SingleLine,
    };
    let (b, n) = (ropey::Rope::from_str(&before), ropey::Rope::from_str(&now));
    assert_eq!(rebase(&answer, &b, &n), Some((cursor, cursor + 1)));
    // A change that is not typing the answer's beginning drops it.
    let other = ropey::Rope::from_str(&format!("{before}z"));
    assert_eq!(rebase(&answer, &b, &other), None);
}
