//! Scheduling: when a suggestion request reaches the provider, and when it does not need to.
//!
//! Per document there is at most one provider request in flight. A request is answered, in
//! order of preference, from:
//! 1. the last suggestion, when the user has typed a prefix of it (typed-ahead reuse);
//! 2. the request in flight, when what the user typed since it started is consistent with what
//!    it has streamed so far (it can still serve, so it is not cancelled);
//! 3. a small LRU cache keyed on the prompt's prefix and suffix;
//! 4. a new provider request, after a per-document debounce (none at the start of a line). A
//!    newer request for the same document supersedes an older one still waiting, and a new
//!    provider request aborts the old one, which closes its connection.
//!
//! A request whose client gave up (`$/cancelRequest` drops its future) leaves its provider call
//! running for a short grace period, so the request that replaced it can adopt the answer; if
//! none does, the call is aborted.
//!
//! Architecture Invariant: the state lock is a `std::sync::Mutex` held only for map updates,
//! never across an `.await`; the pure stages run outside it, on an owned snapshot.

use std::{
    collections::HashMap,
    future::Future,
    hash::{Hash, Hasher},
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{Stream, StreamExt};
use tokio::{sync::watch, task::AbortHandle};

use super::{
    Mode,
    context::{self, Budget, DocContext, OtherDoc, SnippetOptions},
    postprocess::{self, Dropped, StreamCut, Suggestion},
    trigger::{self, Skip},
};
use crate::{
    config::CompletionConfig,
    provider::{CompletionRequest, ErrorKind, Event, Provider, ProviderError, TimeoutPhase},
    store::{Snapshot, Store},
};

/// A provider answer as a stream of events. Dropping it aborts the call.
pub type Deltas = Pin<Box<dyn Stream<Item = Result<Event, ProviderError>> + Send>>;
/// A provider call being opened.
pub type Opening = Pin<Box<dyn Future<Output = Result<Deltas, ProviderError>> + Send>>;

/// Where completions come from: a provider, or (in tests and benchmarks) a scripted oracle.
pub trait Source: Send + Sync {
    fn open(&self, req: CompletionRequest) -> Opening;
    /// The name used in errors.
    fn name(&self) -> &str;
}

impl Source for Provider {
    fn open(&self, req: CompletionRequest) -> Opening {
        let provider = self.clone();
        Box::pin(async move {
            let stream = provider.complete(&req).await?;
            let deltas = futures_util::stream::unfold(stream, |mut s| async move { s.next().await.map(|ev| (ev, s)) });
            Ok(Box::pin(deltas) as Deltas)
        })
    }

    fn name(&self) -> &str {
        Provider::name(self)
    }
}

/// The scheduler's knobs, from `[completion]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub debounce: Duration,
    pub budget: Budget,
    pub snippets: SnippetOptions,
    pub multiline: bool,
    pub max_tokens: u32,
    pub temperature: f32,
    pub cache_entries: usize,
    pub timeout: Duration,
    /// How long an abandoned provider call waits to be adopted before it is aborted.
    pub grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_config(&CompletionConfig::default())
    }
}

impl Settings {
    pub fn from_config(c: &CompletionConfig) -> Settings {
        let budget = Budget {
            context_tokens: c.context_tokens,
            chars_per_token: 3.5,
            prefix_share: c.prefix_share,
            suffix_share: c.suffix_share,
        };
        // Snippets get what prefix and suffix leave of the total (10% is kept for the template).
        let used = budget.prefix_chars() + budget.suffix_chars();
        let snippets = SnippetOptions {
            max_snippets: c.snippets,
            max_chars: budget.total_chars().saturating_sub(used),
            time_budget: Duration::from_millis(c.snippet_budget_ms),
            ..SnippetOptions::default()
        };
        Settings {
            debounce: Duration::from_millis(c.debounce_ms),
            budget,
            snippets,
            multiline: c.multiline,
            max_tokens: c.max_tokens,
            temperature: c.temperature,
            cache_entries: c.cache_entries,
            timeout: Duration::from_millis(c.timeout_ms),
            grace: Duration::from_millis(c.debounce_ms.clamp(50, 300)),
        }
    }
}

/// One request for a suggestion.
#[derive(Debug, Clone)]
pub struct Request {
    pub snap: Snapshot,
    /// Byte offset of the cursor in `snap`.
    pub cursor: usize,
    /// The user asked (a keybinding) rather than typed: no debounce, no bail-outs.
    pub manual: bool,
    /// The document's path for the prompt (relative to the workspace when possible).
    pub path: Option<String>,
    /// Other open documents of the same language, for snippets.
    pub others: Vec<OtherDoc>,
}

/// Where a suggestion is asked for, for [`Scheduler::suggest_in`].
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub uri: &'a str,
    /// The document version `cursor` was computed for; another version answers `Stale`.
    pub version: i32,
    /// Byte offset in that version's text.
    pub cursor: usize,
    pub manual: bool,
    /// The workspace root, for the paths shown to the model.
    pub root: Option<&'a std::path::Path>,
}

/// A request without its snippet sources (moved out first).
struct Partial {
    snap: Snapshot,
    cursor: usize,
    manual: bool,
    path: Option<String>,
}

/// How an answer was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// A new provider request.
    Network,
    /// A provider request that was already running when this one came.
    InFlight,
    /// The user typed a prefix of the last suggestion.
    TypedAhead,
    Cache,
}

/// A suggestion ready to show: `text` replaces `start..end` (byte offsets in `snap`).
#[derive(Debug, Clone)]
pub struct Answer {
    pub id: u64,
    pub text: String,
    pub start: usize,
    pub end: usize,
    pub served: Served,
    pub mode: Mode,
}

/// Why there is no suggestion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nothing {
    Disabled,
    Skipped(Skip),
    /// A newer request for the document came while this one waited.
    Superseded,
    /// Post-processing dropped the model's answer.
    Dropped(Dropped),
    /// The document changed so that the suggestion no longer fits.
    Stale,
}

/// The result of a request, with the time spent inside Quill (excluding debounce and provider
/// waits), for the replay benchmark and logs.
#[derive(Debug)]
pub struct Outcome {
    pub result: Result<Answer, Nothing>,
    pub overhead: Duration,
}

/// What the editor's status item should show.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Fetching,
    /// A provider call ended with an answer.
    Idle,
    /// A provider call was abandoned (nobody waits for it any more); not a success.
    Cancelled,
    Error(ProviderError),
}

/// Counters for tests and the replay benchmark.
#[derive(Debug, Default)]
pub struct Stats {
    pub provider_requests: AtomicU64,
    /// Provider requests sent with a word character right after the cursor (should stay 0).
    pub mid_word_requests: AtomicU64,
    /// Provider calls aborted before their end (superseded, cancelled, or cut early).
    pub aborted: AtomicU64,
    pub served_in_flight: AtomicU64,
    pub served_typed_ahead: AtomicU64,
    pub served_cache: AtomicU64,
    pub accepted: AtomicU64,
}

/// What a provider call has produced so far.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// Raw text streamed so far (after the early cut).
    streamed: String,
    end: Option<Result<Result<Suggestion, Dropped>, ProviderError>>,
    /// CPU time spent in the stream cut and post-processing.
    work: Duration,
}

/// The text a suggestion was computed against: the prompt's prefix (from `prefix_start` to the
/// cursor) and suffix.
#[derive(Debug, Clone)]
struct Anchor {
    prefix_start: usize,
    prefix: String,
    suffix: String,
    cursor: usize,
    mode: Mode,
}

impl Anchor {
    /// What was typed since, if the current context continues this one: the text between the
    /// old cursor and the new one, and how many bytes the editor auto-inserted right after the
    /// cursor meanwhile (a closing bracket or quote typed with its opener; 0 when the suffix is
    /// unchanged).
    fn typed_since(&self, now: &DocContext, snap: &Snapshot) -> Option<(String, usize)> {
        if now.cursor < self.cursor || self.prefix_start > now.cursor || now.cursor > snap.text.len_bytes() {
            return None;
        }
        let auto = if now.suffix == self.suffix {
            0
        } else {
            let c = now.suffix.chars().next().filter(|c| matches!(c, ')' | ']' | '}' | '"' | '\'' | '`' | '>'))?;
            let rest = &now.suffix[c.len_utf8()..];
            // The rest must be the old suffix. Only where the budget ends may they differ: one
            // more character can push the last whole line out.
            let head = |s: &str| s.rfind('\n').map_or(0, |i| i + 1);
            let (old_head, rest_head) = (&self.suffix[..head(&self.suffix)], &rest[..head(rest)]);
            let budget_cut = !old_head.is_empty() && rest.starts_with(old_head) && self.suffix.starts_with(rest_head);
            if rest != self.suffix && !budget_cut {
                return None;
            }
            c.len_utf8()
        };
        // Compare the old prefix with the same span now: a few KB, no whole-document copy.
        let span = snap.text.get_byte_slice(self.prefix_start..now.cursor)?;
        let mut text = String::with_capacity(span.len_bytes());
        for c in span.chunks() {
            text.push_str(c);
        }
        text.strip_prefix(self.prefix.as_str()).map(|t| (t.to_owned(), auto))
    }
}

struct Flight {
    id: u64,
    anchor: Anchor,
    progress: watch::Receiver<Progress>,
    task: AbortHandle,
    /// Requests waiting on this call; when the last one leaves unanswered, the grace period
    /// starts.
    waiters: usize,
    /// Bumped each time the call is orphaned, so only the latest grace timer may abort it.
    orphaned: u64,
}

#[derive(Default)]
struct DocState {
    /// Bumped by every request; a debounced request that is no longer the latest gives up.
    seq: u64,
    flight: Option<Flight>,
    last: Option<(Anchor, Suggestion)>,
}

#[derive(Default)]
struct State {
    docs: HashMap<String, DocState>,
    cache: Lru,
}

/// The autocomplete scheduler. Cheap to share behind an `Arc`.
pub struct Scheduler {
    source: Arc<dyn Source>,
    settings: Settings,
    state: Arc<Mutex<State>>,
    next_id: AtomicU64,
    pub stats: Arc<Stats>,
    on_status: Arc<dyn Fn(Status) + Send + Sync>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").field("source", &self.source.name()).finish()
    }
}

impl Scheduler {
    pub fn new(source: Arc<dyn Source>, settings: Settings) -> Scheduler {
        let state = State { docs: HashMap::new(), cache: Lru::new(settings.cache_entries) };
        Scheduler {
            source,
            settings,
            state: Arc::new(Mutex::new(state)),
            next_id: AtomicU64::new(1),
            stats: Arc::new(Stats::default()),
            on_status: Arc::new(|_| {}),
        }
    }

    /// Called on every change of the provider's state (fetching, idle, error).
    pub fn with_status(mut self, f: impl Fn(Status) + Send + Sync + 'static) -> Scheduler {
        self.on_status = Arc::new(f);
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn source_name(&self) -> &str {
        self.source.name()
    }

    /// Forget a closed document, aborting its provider call.
    pub fn close(&self, uri: &str) {
        let flight = self.lock().docs.remove(uri).and_then(|mut d| d.flight.take());
        if let Some(f) = flight {
            f.task.abort();
            self.stats.aborted.fetch_add(1, Ordering::Relaxed);
            (self.on_status)(Status::Cancelled);
        }
    }

    /// The user accepted suggestion `id`: the last candidate is spent.
    pub fn accepted(&self, uri: &str, id: u64) {
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        if let Some(d) = self.lock().docs.get_mut(uri) {
            d.last = None;
        }
        tracing::debug!(uri, id, "suggestion accepted");
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters (each update is a single insert or take), so a poisoned lock is used as is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answer a request for `uri` at byte `cursor`, reading the document from `store`. The
    /// cheapest path goes first: typed-ahead reuse needs only the text, so a keystroke that types
    /// into the last suggestion never waits for a reparse. Otherwise the snapshot (with its
    /// incremental reparse) and the other open documents are taken, and [`Scheduler::suggest`]
    /// runs; their cost counts in the outcome's overhead.
    pub async fn suggest_in(&self, store: &Store, at: At<'_>) -> Result<Outcome, ProviderError> {
        let started = Instant::now();
        let stale = |started: Instant| Outcome { result: Err(Nothing::Stale), overhead: started.elapsed() };
        let Some(peek) = store.peek(at.uri).filter(|p| p.version == at.version) else { return Ok(stale(started)) };
        if !at.manual
            && let Some(answer) = self.reuse_typed(&peek, at.cursor)
        {
            return Ok(Outcome { result: Ok(answer), overhead: started.elapsed() });
        }
        let Some(snap) = store.snapshot(at.uri) else { return Ok(stale(started)) };
        if snap.version != peek.version {
            return Ok(stale(started));
        }
        let others = match snap.language {
            Some(lang) if self.settings.snippets.max_snippets > 0 => store
                .texts_in(lang, at.uri, super::MAX_SNIPPET_DOCS)
                .into_iter()
                .map(|(uri, text)| OtherDoc { path: super::prompt_path(&uri, at.root), text })
                .collect(),
            _ => Vec::new(),
        };
        let path = Some(super::prompt_path(at.uri, at.root));
        let before = started.elapsed();
        let mut out = self.suggest(Request { snap, cursor: at.cursor, manual: at.manual, path, others }).await?;
        out.overhead += before;
        Ok(out)
    }

    /// Typed-ahead reuse on a tree-less snapshot; counts as a request (it supersedes older
    /// ones still waiting in the debounce).
    fn reuse_typed(&self, snap: &Snapshot, cursor: usize) -> Option<Answer> {
        if cursor > snap.text.len_bytes() {
            return None;
        }
        let ctx = context::doc_context(snap, cursor, &self.settings.budget);
        let mut st = self.lock();
        let doc = st.docs.get_mut(&snap.uri)?;
        let answer = doc.last.as_ref().and_then(|(a, s)| self.typed_ahead(a, s, &ctx, snap))?;
        doc.seq += 1;
        self.stats.served_typed_ahead.fetch_add(1, Ordering::Relaxed);
        Some(answer)
    }

    /// Answer one request. Dropping the future (the client cancelled) is safe at every `.await`:
    /// the only state left behind is a provider call, which the grace timer aborts.
    pub async fn suggest(&self, req: Request) -> Result<Outcome, ProviderError> {
        let mut clock = Overhead::start();
        let Request { snap, cursor, manual, path, others } = req;
        let req = Partial { snap, cursor, manual, path };
        let uri = req.snap.uri.clone();
        let decision = trigger::decide(&req.snap, req.cursor);
        let mode = match (decision.mode, req.manual) {
            (Some(m), _) => m,
            (None, true) => Mode::SingleLine,
            (None, false) => {
                let skip = decision.skip.unwrap_or(Skip::MidWord);
                return Ok(clock.done(Err(Nothing::Skipped(skip))));
            }
        };
        let mode = if self.settings.multiline { mode } else { Mode::SingleLine };
        let ctx = context::doc_context(&req.snap, req.cursor, &self.settings.budget);
        let key = cache_key(&ctx, mode, &req.snap.language_id, req.path.as_deref());

        // Reuse, newest state first; start waiting on a flight that can still serve.
        let (seq, adopt) = {
            let mut st = self.lock();
            let st = &mut *st;
            let doc = st.docs.entry(uri.clone()).or_default();
            doc.seq += 1;
            let seq = doc.seq;
            if let Some(answer) = doc.last.as_ref().and_then(|(a, s)| self.typed_ahead(a, s, &ctx, &req.snap)) {
                self.stats.served_typed_ahead.fetch_add(1, Ordering::Relaxed);
                return Ok(clock.done(Ok(answer)));
            }
            let adopt = match doc.flight.as_mut() {
                Some(f) if can_serve(f, &ctx, &req.snap) => {
                    f.waiters += 1;
                    Some((f.id, f.progress.clone(), f.anchor.clone()))
                }
                Some(_) => {
                    if let Some(old) = doc.flight.take() {
                        old.task.abort();
                        self.stats.aborted.fetch_add(1, Ordering::Relaxed);
                        // A new call may not follow (cache hit, superseded): say so.
                        (self.on_status)(Status::Cancelled);
                    }
                    None
                }
                None => None,
            };
            if adopt.is_none()
                && let Some(text) = st.cache.get(key)
            {
                self.stats.served_cache.fetch_add(1, Ordering::Relaxed);
                let end = ctx.cursor + text.1;
                let answer = Answer {
                    id: self.next_id.fetch_add(1, Ordering::Relaxed),
                    text: text.0,
                    start: ctx.cursor,
                    end,
                    served: Served::Cache,
                    mode,
                };
                return Ok(clock.done(Ok(answer)));
            }
            (seq, adopt)
        };

        if let Some((id, progress, anchor)) = adopt {
            let guard = WaitGuard { sched: self, uri: &uri, id, answered: false };
            self.stats.served_in_flight.fetch_add(1, Ordering::Relaxed);
            clock.pause();
            let end = wait_end(progress).await;
            clock.resume(end.work);
            return self.conclude(guard, end, &anchor, &ctx, &req.snap, clock, Served::InFlight);
        }

        // Debounce: a newer request for this document within the window supersedes this one.
        if !decision.line_start && !req.manual && !self.settings.debounce.is_zero() {
            clock.pause();
            tokio::time::sleep(self.settings.debounce).await;
            clock.resume(Duration::ZERO);
            let latest = self.lock().docs.get(&uri).map(|d| d.seq);
            if latest != Some(seq) {
                return Ok(clock.done(Err(Nothing::Superseded)));
            }
        }

        let snippets = if self.settings.snippets.max_snippets > 0 && !others.is_empty() {
            context::snippets(&ctx, &others, &self.settings.snippets)
        } else {
            Vec::new()
        };
        let creq = CompletionRequest {
            prefix: ctx.prefix.clone(),
            suffix: ctx.suffix.clone(),
            path: req.path.clone(),
            language: Some(req.snap.language_id.clone()),
            snippets,
            // A single line ends at its line break: the provider stops generating there too.
            stop: if mode == Mode::SingleLine { vec!["\n".into()] } else { Vec::new() },
            max_tokens: self.settings.max_tokens,
            temperature: self.settings.temperature,
        };
        let anchor = Anchor {
            prefix_start: ctx.prefix_start,
            prefix: ctx.prefix.clone(),
            suffix: ctx.suffix.clone(),
            cursor: ctx.cursor,
            mode,
        };
        let Some((id, progress)) = self.launch(creq, anchor.clone(), &req.snap, key, seq) else {
            return Ok(clock.done(Err(Nothing::Superseded)));
        };
        let guard = WaitGuard { sched: self, uri: &uri, id, answered: false };
        clock.pause();
        let end = wait_end(progress).await;
        clock.resume(end.work);
        self.conclude(guard, end, &anchor, &ctx, &req.snap, clock, Served::Network)
    }

    /// Start a provider call for `uri`, replacing (and aborting) any other.
    fn launch(
        &self,
        creq: CompletionRequest,
        anchor: Anchor,
        snap: &Snapshot,
        key: u64,
        seq: u64,
    ) -> Option<(u64, watch::Receiver<Progress>)> {
        let uri = snap.uri.as_str();
        // The flight is registered under the lock before its task can finish and look for it;
        // and a newer request that got here first is not replaced by this older one.
        let mut st = self.lock();
        if st.docs.get(uri).map(|d| d.seq) != Some(seq) {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(Progress::default());
        self.stats.provider_requests.fetch_add(1, Ordering::Relaxed);
        if trigger::mid_word(&snap.text, anchor.cursor) {
            self.stats.mid_word_requests.fetch_add(1, Ordering::Relaxed);
        }
        let source = self.source.clone();
        let state = self.state.clone();
        let stats = self.stats.clone();
        let on_status = self.on_status.clone();
        let timeout = self.settings.timeout;
        let snap = snap.clone();
        let uri_owned = uri.to_owned();
        let task_anchor = anchor.clone();
        (on_status)(Status::Fetching);
        let guard = FlightGuard { state: state.clone(), uri: uri_owned.clone(), id, on_status: on_status.clone() };
        let task = tokio::spawn(async move {
            // Unregisters the flight however the task ends (a panic in a pure stage included),
            // so a dead flight is never adopted.
            let _guard = guard;
            let outcome = run_flight(&*source, creq, &snap, &task_anchor, timeout, &tx, &stats).await;
            let mut work = tx.borrow().work;
            let started = Instant::now();
            let end = outcome.map(|raw: String| postprocess::finish(&snap, task_anchor.cursor, task_anchor.mode, &raw));
            work += started.elapsed();
            {
                let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                let st = &mut *st;
                if let Some(doc) = st.docs.get_mut(&uri_owned)
                    && doc.flight.as_ref().is_some_and(|f| f.id == id)
                {
                    doc.flight = None;
                    if let Ok(Ok(s)) = &end {
                        doc.last = Some((task_anchor.clone(), s.clone()));
                    }
                }
                if let Ok(Ok(s)) = &end {
                    st.cache.put(key, (s.text.clone(), s.replace_end - task_anchor.cursor));
                }
            }
            match &end {
                Err(e) => (on_status)(Status::Error(e.clone())),
                Ok(_) => (on_status)(Status::Idle),
            }
            tx.send_modify(|p| {
                p.end = Some(end);
                p.work = work;
            });
        });
        let flight = Flight { id, anchor, progress: rx.clone(), task: task.abort_handle(), waiters: 1, orphaned: 0 };
        let doc = st.docs.entry(uri.to_owned()).or_default();
        if let Some(old) = doc.flight.replace(flight) {
            old.task.abort();
            self.stats.aborted.fetch_add(1, Ordering::Relaxed);
        }
        Some((id, rx))
    }

    /// Turn a finished call into this request's answer, re-checked against the document now.
    #[allow(clippy::too_many_arguments)]
    fn conclude(
        &self,
        mut guard: WaitGuard<'_>,
        end: Ended,
        anchor: &Anchor,
        ctx: &DocContext,
        snap: &Snapshot,
        clock: Overhead,
        served: Served,
    ) -> Result<Outcome, ProviderError> {
        guard.answered = true;
        let suggestion = match end.result {
            None => return Ok(clock.done(Err(Nothing::Superseded))),
            Some(Err(e)) => return Err(e),
            Some(Ok(Err(dropped))) => return Ok(clock.done(Err(Nothing::Dropped(dropped)))),
            Some(Ok(Ok(s))) => s,
        };
        // The call may have been computed for an earlier cursor (adopted) — serve the part the
        // user has not typed yet.
        let answer = if anchor.cursor == ctx.cursor && anchor.prefix == ctx.prefix && anchor.suffix == ctx.suffix {
            Some(Answer {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                text: suggestion.text,
                start: ctx.cursor,
                end: suggestion.replace_end,
                served,
                mode: anchor.mode,
            })
        } else {
            self.typed_ahead(anchor, &suggestion, ctx, snap).map(|a| Answer { served, ..a })
        };
        Ok(clock.done(answer.ok_or(Nothing::Stale)))
    }

    /// The rest of `s` when the user has typed its beginning since `anchor`.
    fn typed_ahead(&self, anchor: &Anchor, s: &Suggestion, ctx: &DocContext, snap: &Snapshot) -> Option<Answer> {
        let (typed, auto) = anchor.typed_since(ctx, snap)?;
        let rest = s.text.strip_prefix(typed.as_str())?;
        if rest.trim().is_empty() {
            return None;
        }
        // An auto-inserted closer must be one the suggestion brings: the item then spans it.
        if auto > 0 && !ctx.suffix.get(..auto).is_some_and(|c| rest.contains(c)) {
            return None;
        }
        let overwrite = s.replace_end - anchor.cursor;
        // What the suggestion overwrites must still be there.
        if ctx.suffix.get(auto..auto + overwrite) != anchor.suffix.get(..overwrite) {
            return None;
        }
        Some(Answer {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            text: rest.to_owned(),
            start: ctx.cursor,
            end: ctx.cursor + auto + overwrite,
            served: Served::TypedAhead,
            mode: anchor.mode,
        })
    }

    /// Called when a waiter leaves without an answer: the last one starts the grace period.
    fn release(&self, uri: &str, id: u64) {
        let orphaned = {
            let mut st = self.lock();
            match st.docs.get_mut(uri).and_then(|d| d.flight.as_mut()) {
                Some(f) if f.id == id => {
                    f.waiters = f.waiters.saturating_sub(1);
                    if f.waiters == 0 {
                        f.orphaned += 1;
                        Some(f.orphaned)
                    } else {
                        None
                    }
                }
                _ => None,
            }
        };
        let Some(generation) = orphaned else { return };
        let state = self.state.clone();
        let stats = self.stats.clone();
        let uri = uri.to_owned();
        let grace = self.settings.grace;
        let on_status = self.on_status.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(doc) = st.docs.get_mut(&uri)
                && doc.flight.as_ref().is_some_and(|f| f.id == id && f.waiters == 0 && f.orphaned == generation)
                && let Some(f) = doc.flight.take()
            {
                f.task.abort();
                stats.aborted.fetch_add(1, Ordering::Relaxed);
                drop(st);
                tracing::debug!(uri, id, "abandoned suggestion request aborted");
                (on_status)(Status::Cancelled);
            }
        });
    }
}

/// Whether a running call can still serve a request at `now`: the user only typed text that
/// agrees with what the call has streamed so far.
fn can_serve(f: &Flight, now: &DocContext, snap: &Snapshot) -> bool {
    let Some((typed, _)) = f.anchor.typed_since(now, snap) else { return false };
    if typed.contains(['\n', '\r']) && f.anchor.mode == Mode::SingleLine {
        return false;
    }
    if f.progress.has_changed().is_err() {
        return false; // its task is gone (aborted or failed) without an answer
    }
    let p = f.progress.borrow();
    if p.end.is_some() {
        return false; // finished: its answer is in `last` or was dropped
    }
    let streamed = p.streamed.as_str();
    streamed.starts_with(typed.as_str()) || typed.starts_with(streamed)
}

/// Removes a flight from its document when its task ends, unless a newer one replaced it.
struct FlightGuard {
    state: Arc<Mutex<State>>,
    uri: String,
    id: u64,
    on_status: Arc<dyn Fn(Status) + Send + Sync>,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let removed = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match st.docs.get_mut(&self.uri) {
                Some(doc) if doc.flight.as_ref().is_some_and(|f| f.id == self.id) => doc.flight.take().is_some(),
                _ => false,
            }
        };
        if removed {
            (self.on_status)(Status::Cancelled);
        }
    }
}

/// Unregisters a waiter that leaves early (its future was dropped).
struct WaitGuard<'a> {
    sched: &'a Scheduler,
    uri: &'a str,
    id: u64,
    answered: bool,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.sched.release(self.uri, self.id);
        }
    }
}

struct Ended {
    /// `None` when the call was aborted for a newer one.
    result: Option<Result<Result<Suggestion, Dropped>, ProviderError>>,
    work: Duration,
}

async fn wait_end(mut rx: watch::Receiver<Progress>) -> Ended {
    let got = rx.wait_for(|p| p.end.is_some()).await;
    match got {
        Ok(p) => Ended { result: p.end.clone(), work: p.work },
        // The task was aborted (superseded by a newer call): nothing to show.
        Err(_) => Ended { result: None, work: Duration::ZERO },
    }
}

/// Stream one provider answer, stopping as soon as it is complete.
async fn run_flight(
    source: &dyn Source,
    req: CompletionRequest,
    snap: &Snapshot,
    anchor: &Anchor,
    timeout: Duration,
    tx: &watch::Sender<Progress>,
    stats: &Stats,
) -> Result<String, ProviderError> {
    let name = source.name().to_owned();
    let work = async {
        let mut deltas = source.open(req).await?;
        let t = Instant::now();
        let mut cut = StreamCut::new(snap, anchor.cursor, anchor.mode);
        let mut raw = String::new();
        let mut spent = t.elapsed();
        while let Some(ev) = deltas.next().await {
            match ev? {
                Event::Delta(d) => {
                    let t = Instant::now();
                    raw.push_str(&d);
                    let done = cut.feed(&raw);
                    if let Some(n) = done {
                        raw.truncate(n.min(raw.len()));
                    }
                    spent += t.elapsed();
                    let streamed = raw.clone();
                    tx.send_modify(|p| {
                        p.streamed = streamed;
                        p.work = spent;
                    });
                    if done.is_some() {
                        // Dropping the stream closes the connection: the model stops generating.
                        stats.aborted.fetch_add(1, Ordering::Relaxed);
                        return Ok(raw);
                    }
                }
                Event::Done(_) => return Ok(raw),
            }
        }
        Ok(raw)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        // Out of time mid-stream: what arrived is still worth showing (Cody does the same).
        Err(_) if !tx.borrow().streamed.trim().is_empty() => Ok(tx.borrow().streamed.clone()),
        Err(_) => Err(ProviderError::new(
            &name,
            "autocomplete",
            ErrorKind::Timeout { phase: TimeoutPhase::Total, after: timeout },
            "no suggestion within `completion.timeout_ms`",
        )),
    }
}

/// Wall time spent inside Quill for one request, excluding the waits.
struct Overhead {
    since: Option<Instant>,
    total: Duration,
}

impl Overhead {
    fn start() -> Overhead {
        Overhead { since: Some(Instant::now()), total: Duration::ZERO }
    }
    fn pause(&mut self) {
        if let Some(s) = self.since.take() {
            self.total += s.elapsed();
        }
    }
    fn resume(&mut self, extra: Duration) {
        self.total += extra;
        self.since = Some(Instant::now());
    }
    fn done(mut self, result: Result<Answer, Nothing>) -> Outcome {
        self.pause();
        Outcome { result, overhead: self.total }
    }
}

/// The prompt's identity: its text around the cursor, and the document's language and path
/// (two files may share a license header and nothing else).
fn cache_key(ctx: &DocContext, mode: Mode, language_id: &str, path: Option<&str>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    language_id.hash(&mut h);
    path.hash(&mut h);
    ctx.prefix.hash(&mut h);
    ctx.suffix.hash(&mut h);
    mode.hash(&mut h);
    h.finish()
}

/// A small least-recently-used map from prompt hash to (suggestion text, bytes overwritten
/// after the cursor). Eviction scans the entries: at a few hundred entries that is cheaper than
/// keeping an order list.
#[derive(Default)]
struct Lru {
    cap: usize,
    tick: u64,
    map: HashMap<u64, (u64, (String, usize))>,
}

impl Lru {
    fn new(cap: usize) -> Lru {
        Lru { cap, tick: 0, map: HashMap::new() }
    }

    fn get(&mut self, key: u64) -> Option<(String, usize)> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(&key).map(|(t, v)| {
            *t = tick;
            v.clone()
        })
    }

    fn put(&mut self, key: u64, value: (String, usize)) {
        if self.cap == 0 {
            return;
        }
        self.tick += 1;
        if self.map.len() >= self.cap
            && !self.map.contains_key(&key)
            && let Some(oldest) = self.map.iter().min_by_key(|(_, (t, _))| *t).map(|(k, _)| *k)
        {
            self.map.remove(&oldest);
        }
        self.map.insert(key, (self.tick, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let mut lru = Lru::new(2);
        lru.put(1, ("a".into(), 0));
        lru.put(2, ("b".into(), 0));
        assert!(lru.get(1).is_some());
        lru.put(3, ("c".into(), 0));
        assert!(lru.get(2).is_none(), "2 was the least recently used");
        assert!(lru.get(1).is_some() && lru.get(3).is_some());
        let mut off = Lru::new(0);
        off.put(1, ("a".into(), 0));
        assert!(off.get(1).is_none());
    }
}
