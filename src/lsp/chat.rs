//! Chat over LSP: `quill/chat/*`, `quill/models` and the `quill.explain` command.
//!
//! A turn (`quill/chat/send`, `quill.explain`) is SPAWNED: the `send` handler only awaits its
//! result through a [`TurnGuard`], so keystrokes and autocomplete keep flowing meanwhile. When the
//! client cancels the request (`$/cancelRequest` drops the handler's future), the guard signals
//! the turn's [`Cancel`] rather than aborting the task: the turn drops the provider stream (closing
//! the connection) and still saves what arrived, so nothing is lost at an `.await`.
//!
//! Deltas go out as `quill/chat/delta` notifications from one forwarder task per turn, so they
//! stay in order; deltas that arrive within [`COALESCE`] of the previous notification are joined
//! into the next one (the first is never delayed). `quill/chat/done` follows the last delta.
//!
//! History is opened lazily, on the first chat request, from `$XDG_DATA_HOME/quill/chats`; if it
//! cannot be opened, chat requests fail with the reason (and try again next time).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower_lsp_server::{
    Client,
    jsonrpc::{self, Result},
    ls_types::{Range, Uri, notification::Notification},
};

use super::{Effective, QuillServer, REQUEST_FAILED, convert, to_rpc};
use crate::{
    chat::{
        Docs, HistoryError, HistoryStore, Mention, Role,
        history::{self, Chat, ChatMessage},
        run::{self, Cancel, Ending, Outcome, Settings},
    },
    config::Feature,
    error::Error,
    provider::{Provider, ProviderError, process_env},
    store::{Store, uri_path},
    syntax::Language,
};

/// Deltas arriving within this long of the previous notification are joined into the next one.
const COALESCE: Duration = Duration::from_millis(5);

/// The message of a second `send` while a chat is generating.
const BUSY: &str = "a message is already in progress in this chat";

/// `quill/chat/delta` (server → client): more text of a reply.
#[derive(Debug)]
pub enum ChatDelta {}

impl Notification for ChatDelta {
    type Params = DeltaParams;
    const METHOD: &'static str = "quill/chat/delta";
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaParams {
    pub chat_id: String,
    pub message_id: String,
    /// 0, 1, 2, ... per reply.
    pub seq: u64,
    pub delta: String,
}

/// `quill/chat/done` (server → client): a reply ended; sent after its last delta.
#[derive(Debug)]
pub enum ChatDone {}

impl Notification for ChatDone {
    type Params = Value;
    const METHOD: &'static str = "quill/chat/done";
}

/// Chat state kept by the server.
#[derive(Debug, Default)]
pub struct Chats {
    /// Opened on first use; `None` until then, or while it cannot be opened.
    history: Mutex<Option<Arc<HistoryStore>>>,
    /// The chats generating a reply, by chat id.
    running: Arc<Mutex<HashMap<String, Running>>>,
    /// Chat providers built for the providers in force (compared by pointer), by model override.
    providers: Mutex<Option<(Arc<Effective>, ProvidersByModel)>>,
}

/// Chat providers by the chat's model override (`None`: `[chat]`'s model).
type ProvidersByModel = HashMap<Option<String>, Provider>;

#[derive(Debug)]
struct Running {
    message_id: String,
    cancel: Cancel,
}

/// A poisoned lock means a task panicked mid-update of a small map; the map is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn failed(message: impl Into<String>, data: Option<Value>) -> jsonrpc::Error {
    jsonrpc::Error { code: jsonrpc::ErrorCode::ServerError(REQUEST_FAILED), message: message.into().into(), data }
}

fn invalid(message: impl Into<String>) -> jsonrpc::Error {
    to_rpc(Error::InvalidParams(message.into()))
}

/// Bad ids and unknown chats are the client's mistake (invalid params); disk trouble is not.
fn history_error(e: HistoryError) -> jsonrpc::Error {
    match e {
        HistoryError::BadId(_) | HistoryError::UnknownChat(_) | HistoryError::UnknownMessage { .. } => {
            invalid(e.to_string())
        }
        HistoryError::Io { .. } | HistoryError::Serialize { .. } => failed(format!("chat history: {e}"), None),
    }
}

fn parse<T: serde::de::DeserializeOwned>(params: Value, shape: &str) -> Result<T> {
    serde_json::from_value(params).map_err(|e| invalid(format!("expected {shape}: {e}")))
}

/// The entry of a chat generating a reply; removed when dropped, however the turn ends.
struct Slot {
    running: Arc<Mutex<HashMap<String, Running>>>,
    chat_id: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.running).remove(&self.chat_id);
    }
}

/// Awaits a spawned turn; dropping it (the client cancelled the request) cancels the turn, which
/// then ends on its own, saving what arrived.
struct TurnGuard {
    handle: tokio::task::JoinHandle<TurnResult>,
    /// `None` once detached.
    cancel: Option<Cancel>,
}

impl TurnGuard {
    /// Let the turn run on with nobody awaiting it (dropping a `JoinHandle` does not abort).
    fn detach(mut self) {
        self.cancel = None;
    }
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        if let Some(cancel) = &self.cancel
            && !self.handle.is_finished()
        {
            cancel.cancel();
        }
    }
}

/// A turn's outcome, or why it could not start (context preparation crashed, the question could
/// not be saved); the provider was not called in the latter cases.
type TurnResult = std::result::Result<Outcome, String>;

/// Documents for context: the open ones from the store, others read from disk (`file://` only).
struct StoreDocs {
    store: Arc<Store>,
    /// Searched first for symbols: the documents the user mentioned.
    first: Vec<String>,
}

impl Docs for StoreDocs {
    fn text(&self, uri: &str) -> Option<(String, ropey::Rope)> {
        self.resolve(uri).ok()
    }

    fn resolve(&self, uri: &str) -> std::result::Result<(String, ropey::Rope), String> {
        if let Some(snap) = self.store.peek(uri) {
            return Ok((snap.language_id, snap.text));
        }
        let Some(path) = uri_path(uri) else {
            return Err("not open, and not a file:// URI that could be read from disk".to_owned());
        };
        run::read_context_file(std::path::Path::new(&path)).map(|rope| (String::new(), rope))
    }

    fn open_docs(&self) -> Vec<(String, Option<Language>, ropey::Rope)> {
        let mut docs: Vec<(String, Option<Language>, ropey::Rope)> = Language::ALL
            .iter()
            .flat_map(|&lang| {
                self.store.texts_in(lang, "", usize::MAX).into_iter().map(move |(uri, text)| (uri, Some(lang), text))
            })
            .collect();
        // Mentioned documents first, then the most recently used (the store's order per language).
        docs.sort_by_key(|(uri, _, _)| !self.first.contains(uri));
        docs
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewParams {
    #[serde(default)]
    model: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChatIdParams {
    chat_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendParams {
    chat_id: String,
    message: String,
    #[serde(default)]
    context: Vec<ContextRef>,
    #[serde(default)]
    selection: Option<SelectionRef>,
    #[serde(default)]
    symbols: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContextRef {
    uri: Uri,
    #[serde(default)]
    range: Option<Range>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SelectionRef {
    uri: Uri,
    range: Range,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExplainArgs {
    uri: Uri,
    range: Range,
}

/// Token counts as the protocol shows them.
fn usage_json(input: Option<u64>, output: Option<u64>) -> Value {
    let mut v = serde_json::Map::new();
    if let Some(i) = input {
        v.insert("inputTokens".into(), json!(i));
    }
    if let Some(o) = output {
        v.insert("outputTokens".into(), json!(o));
    }
    Value::Object(v)
}

/// Lines `start..=end` of an LSP range: an end at column 0 of a later line ends the line before
/// (editors select whole lines that way).
fn range_lines(r: &Range) -> (usize, usize) {
    let start = r.start.line as usize;
    let mut end = r.end.line as usize;
    if r.end.character == 0 && end > start {
        end -= 1;
    }
    (start, end)
}

fn message_json(m: &ChatMessage) -> Value {
    let mut v = json!({
        "id": m.id,
        "role": match m.role { Role::User => "user", Role::Assistant => "assistant" },
        "content": m.content,
        "contextUsed": m.context_used,
    });
    if let Some((i, o)) = m.usage {
        v["usage"] = usage_json(Some(i), Some(o));
    }
    if let Some(e) = &m.error {
        v["error"] = json!(e);
    }
    v
}

fn summary_json(c: &Chat) -> Value {
    json!({
        "chatId": c.id,
        "title": c.title,
        "model": c.model,
        "updated": c.updated_ms,
        "messages": c.messages.len(),
    })
}

/// What the `send` response and the `done` notification share.
fn outcome_json(chat_id: &str, o: &Outcome) -> Value {
    let usage = o.usage();
    let mut v = json!({
        "chatId": chat_id,
        "messageId": o.message_id,
        "reply": o.reply,
        "usage": usage_json(usage.input_tokens, usage.output_tokens),
        "contextUsed": o.context_used,
        "historyDropped": o.history_dropped,
        "stopReason": o.stop_reason(),
    });
    if let Some(e) = o.error() {
        v["error"] = json!(e.to_string());
    }
    if let Some(e) = &o.save_error {
        v["saveError"] = json!(e);
    }
    v
}

/// Send deltas in order, joining those that arrive within [`COALESCE`] of the last notification.
async fn forward_deltas(
    client: Client,
    chat_id: String,
    message_id: String,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    let mut seq = 0;
    let mut last: Option<tokio::time::Instant> = None;
    while let Some(mut delta) = rx.recv().await {
        if let Some(at) = last {
            tokio::time::sleep_until(at + COALESCE).await;
        }
        while let Ok(more) = rx.try_recv() {
            delta.push_str(&more);
        }
        let params = DeltaParams { chat_id: chat_id.clone(), message_id: message_id.clone(), seq, delta };
        client.send_notification::<ChatDelta>(params).await;
        seq += 1;
        last = Some(tokio::time::Instant::now());
    }
}

/// A turn about to be spawned.
struct Start {
    chat_id: String,
    message: String,
    mentions: Vec<Mention>,
    /// Documents to search first for symbols.
    first: Vec<String>,
}

impl QuillServer {
    /// The history store, opened on first use.
    fn history(&self) -> Result<Arc<HistoryStore>> {
        let mut slot = lock(&self.chats.history);
        if let Some(h) = slot.as_ref() {
            return Ok(h.clone());
        }
        let Some(dir) = history::default_dir(|k| std::env::var_os(k)) else {
            return Err(failed(
                "chat history has no place to live: set XDG_DATA_HOME or HOME to an absolute path",
                None,
            ));
        };
        let store = HistoryStore::open(dir).map_err(|e| failed(format!("cannot open chat history: {e}"), None))?;
        let store = Arc::new(store);
        *slot = Some(store.clone());
        Ok(store)
    }

    /// The provider for a chat: `[chat]`'s, with the chat's own model when it has one.
    async fn chat_provider(&self, model: Option<String>) -> Result<(Provider, Settings)> {
        self.require_provider(Feature::Chat).await?;
        let Some(eff) = self.effective().await else {
            return Err(failed("Quill is still looking for an AI provider; try again in a moment.", None));
        };
        let settings = Settings::from_config(&eff.discovery.config.chat);
        let mut cache = lock(&self.chats.providers);
        if !cache.as_ref().is_some_and(|(built_for, _)| Arc::ptr_eq(built_for, &eff)) {
            *cache = Some((eff.clone(), HashMap::new()));
        }
        let Some((_, built)) = cache.as_mut() else { return Err(failed("chat providers unavailable", None)) };
        if let Some(p) = built.get(&model) {
            return Ok((p.clone(), settings));
        }
        let config = &eff.discovery.config;
        let provider = match &model {
            None => Provider::for_feature(config, Feature::Chat),
            Some(m) => match config.route(Feature::Chat) {
                Some((name, pc)) => Provider::build(name, pc, Some(m.clone()), process_env()),
                None => Provider::for_feature(config, Feature::Chat),
            },
        }
        .map_err(|e: ProviderError| failed(e.to_string(), None))?;
        built.insert(model, provider.clone());
        Ok((provider, settings))
    }

    /// Claim the chat, then spawn its turn. Returns the reply's id and the turn's guard.
    async fn start_turn(&self, start: Start) -> Result<(String, TurnGuard)> {
        let history = self.history()?;
        let chat_id = history.get(&start.chat_id).map_err(history_error)?.id;
        let message_id = history::new_id();
        let cancel = Cancel::new();
        let slot = {
            let mut running = lock(&self.chats.running);
            if running.contains_key(&chat_id) {
                return Err(failed(BUSY, Some(json!({"chatId": chat_id}))));
            }
            running.insert(chat_id.clone(), Running { message_id: message_id.clone(), cancel: cancel.clone() });
            Slot { running: self.chats.running.clone(), chat_id }
        };
        // Read after claiming: a turn that just ended has saved its reply before freeing the slot.
        let chat = history.get(&start.chat_id).map_err(history_error)?;
        // The slot is held from here on: a second send is refused while the provider is found.
        let (provider, settings) = self.chat_provider(chat.model.clone()).await?;
        let Start { chat_id, message, mentions, first } = start;
        let docs = StoreDocs { store: self.store.clone(), first };
        let client = self.client.clone();
        let task_cancel = cancel.clone();
        let history = history.clone();
        let id = message_id.clone();
        let handle = tokio::spawn(async move {
            // Held to the end, panic or not: the chat is free again once the turn is over.
            let _slot = slot;
            // The question is saved before anything else can go wrong.
            let question = ChatMessage::user(message.as_str());
            let question_id = question.id.clone();
            if let Err(e) = history.append_message(&chat_id, question) {
                return not_started(&client, &chat_id, &id, format!("the message could not be saved: {e}")).await;
            }
            // What arrived so far, kept outside the turn so a panic cannot lose it.
            let partial = Arc::new(Mutex::new(String::new()));
            let body = turn_body(TurnParts {
                client: client.clone(),
                history: history.clone(),
                chat_id: chat_id.clone(),
                id: id.clone(),
                question_id,
                history_now: chat.messages,
                message,
                mentions,
                docs,
                settings,
                provider,
                cancel: task_cancel,
                partial: partial.clone(),
            });
            match futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(body)).await {
                Ok(r) => r,
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_default();
                    let why = format!("internal error: the chat turn crashed ({what})");
                    let reply = lock(&partial).clone();
                    let mut m = ChatMessage { id: id.clone(), ..ChatMessage::assistant(reply) };
                    m.error = Some(why.clone());
                    if let Err(e) = run::save_message(&history, &chat_id, m) {
                        tracing::warn!(chat = chat_id, "chat reply not saved after a crash: {e}");
                    }
                    not_started(&client, &chat_id, &id, why).await
                }
            }
        });
        Ok((message_id, TurnGuard { handle, cancel: Some(cancel) }))
    }

    pub(super) async fn chat_new(&self, params: Value) -> Result<Value> {
        let p: NewParams = if params.is_null() { NewParams { model: None } } else { parse(params, "{model?}")? };
        let model = p.model.filter(|m| !m.trim().is_empty());
        let chat = self.history()?.create(model).map_err(history_error)?;
        Ok(json!({"chatId": chat.id}))
    }

    pub(super) async fn chat_send(&self, params: Value) -> Result<Value> {
        let p: SendParams = parse(params, "{chatId, message, context?, selection?, symbols?}")?;
        if p.message.trim().is_empty() {
            return Err(invalid("the message is empty"));
        }
        let mut mentions = Vec::new();
        let mut first = Vec::new();
        if let Some(sel) = &p.selection {
            mentions.push(self.selection_mention(sel));
            first.push(convert::uri_key(&sel.uri).to_owned());
        }
        for c in &p.context {
            let uri = convert::uri_key(&c.uri).to_owned();
            first.push(uri.clone());
            mentions.push(match &c.range {
                None => Mention::File { uri },
                Some(r) => {
                    let (start_line, end_line) = range_lines(r);
                    Mention::Range { uri, start_line, end_line }
                }
            });
        }
        mentions.extend(p.symbols.iter().map(|name| Mention::Symbol { name: name.clone() }));
        let start = Start { chat_id: p.chat_id.clone(), message: p.message, mentions, first };
        let (_, mut guard) = self.start_turn(start).await?;
        let outcome = match (&mut guard.handle).await {
            Ok(Ok(o)) => o,
            Ok(Err(why)) => return Err(failed(why, None)),
            Err(e) => return Err(failed(format!("the chat turn failed: {e}"), None)),
        };
        let body = outcome_json(&p.chat_id, &outcome);
        match outcome.ending {
            Ending::Failed(e) => {
                Err(failed(e.to_string(), Some(json!({"messageId": outcome.message_id, "partial": outcome.reply}))))
            }
            _ => Ok(body),
        }
    }

    /// The selection as context: the client's text when it sent one; else the open document's
    /// text in the range; else (not open, or the range is outside it) the range's lines, which
    /// the context builder reads or drops with a reason.
    fn selection_mention(&self, sel: &SelectionRef) -> Mention {
        let uri = convert::uri_key(&sel.uri).to_owned();
        let lines = range_lines(&sel.range);
        if let Some(text) = &sel.text {
            return Mention::Selection { uri, range: lines, text: text.clone() };
        }
        if let Ok(snap) = self.snapshot(&sel.uri)
            && (sel.range.start.line as usize) < snap.text.len_lines()
            && let (Ok(a), Ok(b)) = (self.char_at(&snap, sel.range.start), self.char_at(&snap, sel.range.end))
            && a < b
        {
            return Mention::Selection { uri, range: lines, text: snap.text.slice(a..b).to_string() };
        }
        Mention::Range { uri, start_line: lines.0, end_line: lines.1 }
    }

    pub(super) async fn chat_cancel(&self, params: Value) -> Result<Value> {
        let p: ChatIdParams = parse(params, "{chatId}")?;
        // Unknown or invalid ids are errors; a known chat with nothing running is not.
        self.history()?.get(&p.chat_id).map_err(history_error)?;
        let running = lock(&self.chats.running);
        match running.get(&p.chat_id) {
            Some(r) => {
                r.cancel.cancel();
                Ok(json!({"cancelled": true, "messageId": r.message_id}))
            }
            None => Ok(json!({"cancelled": false})),
        }
    }

    pub(super) async fn chat_list(&self, _params: Value) -> Result<Value> {
        let history = self.history()?;
        let chats: Vec<Value> = history
            .list()
            .iter()
            .map(|c| {
                json!({"chatId": c.id, "title": c.title, "model": c.model, "updated": c.updated_ms,
                       "messages": c.message_count})
            })
            .collect();
        Ok(Value::Array(chats))
    }

    pub(super) async fn chat_history(&self, params: Value) -> Result<Value> {
        let p: ChatIdParams = parse(params, "{chatId}")?;
        let chat = self.history()?.get(&p.chat_id).map_err(history_error)?;
        let generating = lock(&self.chats.running).contains_key(&chat.id);
        let mut v = summary_json(&chat);
        v["generating"] = json!(generating);
        v["messages"] = Value::Array(chat.messages.iter().map(message_json).collect());
        Ok(v)
    }

    pub(super) async fn chat_delete(&self, params: Value) -> Result<Value> {
        let p: ChatIdParams = parse(params, "{chatId}")?;
        let history = self.history()?;
        history.get(&p.chat_id).map_err(history_error)?;
        // A reply in progress is stopped first; its final save then finds no chat and is dropped.
        if let Some(r) = lock(&self.chats.running).get(&p.chat_id) {
            r.cancel.cancel();
        }
        history.delete(&p.chat_id).map_err(history_error)?;
        Ok(json!({"deleted": true}))
    }

    pub(super) async fn models(&self, _params: Value) -> Result<Value> {
        let Some(eff) = self.effective().await else {
            return Err(failed("Quill is still looking for an AI provider; try again in a moment.", None));
        };
        let config = &eff.discovery.config;
        let features: Vec<Value> = Feature::ALL
            .iter()
            .map(|&f| match config.route(f) {
                Some((name, pc)) => {
                    let model = config.feature(f).model.or_else(|| pc.model.clone());
                    // Building checks settings and keys without sending anything; keys never leave.
                    let usable = Provider::build(name, pc, model.clone(), process_env());
                    let mut v = json!({
                        "feature": f.as_str(),
                        "provider": name,
                        "kind": pc.kind.as_str(),
                        "model": model,
                        "usable": usable.is_ok(),
                    });
                    if let Err(e) = usable {
                        v["reason"] = json!(e.to_string());
                    }
                    v
                }
                None => json!({
                    "feature": f.as_str(),
                    "provider": null,
                    "kind": null,
                    "model": null,
                    "usable": false,
                    "reason": eff.discovery.advice(Some(f)),
                }),
            })
            .collect();
        let providers: Vec<Value> = config
            .providers
            .iter()
            .map(|(name, p)| json!({"name": name, "kind": p.kind.as_str(), "model": p.model}))
            .collect();
        Ok(json!({"features": features, "providers": providers}))
    }

    /// `workspace/executeCommand quill.explain`: a new chat explaining the selection. Answers
    /// `{chatId, messageId}` at once; deltas and `quill/chat/done` follow.
    pub(super) async fn execute_explain(&self, args: Vec<Value>) -> Result<Option<Value>> {
        let Some(arg) = args.into_iter().next() else {
            return Err(invalid("`quill.explain` takes one argument {uri, range}"));
        };
        let a: ExplainArgs = parse(arg, "{uri, range}")?;
        let snap = self.snapshot(&a.uri).map_err(to_rpc)?;
        let start = self.char_at(&snap, a.range.start).map_err(to_rpc)?;
        let end = self.char_at(&snap, a.range.end).map_err(to_rpc)?;
        let (first_line, last_line) = range_lines(&a.range);
        if first_line >= snap.text.len_lines() {
            return Err(invalid(format!("line {} is outside the document", first_line + 1)));
        }
        // An empty selection explains the line the cursor is on.
        let (start, end, last_line) = if start < end {
            (start, end, last_line)
        } else {
            let l = snap.text.char_to_line(start);
            (snap.text.line_to_char(l), snap.text.line_to_char(l) + snap.text.line(l).len_chars(), l)
        };
        let text = snap.text.slice(start..end).to_string();
        if text.trim().is_empty() {
            return Err(invalid("nothing to explain: the selection is blank"));
        }
        let uri = snap.uri.clone();
        let path = crate::complete::prompt_path(&uri, self.root().as_deref());
        let lines = if first_line == last_line {
            format!("{}", first_line + 1)
        } else {
            format!("{}-{}", first_line + 1, last_line + 1)
        };
        // Found before the chat is made, so a missing provider leaves no empty chat behind.
        self.require_provider(Feature::Chat).await?;
        let history = self.history()?;
        let chat = history.create(None).map_err(history_error)?;
        history.set_title(&chat.id, format!("Explain {path}:{lines}")).map_err(history_error)?;
        let start = Start {
            chat_id: chat.id.clone(),
            message: "Explain what the selected code does.".to_owned(),
            mentions: vec![Mention::Selection { uri: uri.clone(), range: (first_line, last_line), text }],
            first: vec![uri],
        };
        let (message_id, guard) = self.start_turn(start).await?;
        // Nobody awaits this turn: it runs to its end (or a `quill/chat/cancel`).
        guard.detach();
        Ok(Some(json!({"chatId": chat.id, "messageId": message_id})))
    }

    /// On `shutdown`: stop every running turn and wait (at most about a second) for each to save
    /// what arrived, so replies in progress are kept (marked cancelled) across the restart.
    pub(super) async fn cancel_all_chats(&self) {
        for r in lock(&self.chats.running).values() {
            r.cancel.cancel();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        // A turn frees its slot only after its final save.
        while !lock(&self.chats.running).is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// What a spawned turn needs.
struct TurnParts {
    client: Client,
    history: Arc<HistoryStore>,
    chat_id: String,
    id: String,
    /// The saved question, replaced by the prepared one (which lists the context used).
    question_id: String,
    history_now: Vec<ChatMessage>,
    message: String,
    mentions: Vec<Mention>,
    docs: StoreDocs,
    settings: Settings,
    provider: Provider,
    cancel: Cancel,
    partial: Arc<Mutex<String>>,
}

/// A turn after its question was saved: prepare, stream, save, tell the client.
async fn turn_body(t: TurnParts) -> TurnResult {
    let TurnParts {
        client,
        history,
        chat_id,
        id,
        question_id,
        history_now,
        message,
        mentions,
        docs,
        settings,
        provider,
        cancel,
        partial,
    } = t;
    // Context resolution reads files and may parse documents for symbols: off the async workers.
    let prep_id = id.clone();
    let prepared =
        tokio::task::spawn_blocking(move || run::prepare(&history_now, &message, &mentions, &docs, &settings, prep_id))
            .await;
    let mut prepared = match prepared {
        Ok(p) => p,
        Err(e) => return not_started(&client, &chat_id, &id, format!("context could not be prepared: {e}")).await,
    };
    prepared.user.id = question_id;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let forwarder = tokio::spawn(forward_deltas(client.clone(), chat_id.clone(), id.clone(), rx));
    let result = run::run(&provider, prepared, Some((&history, &chat_id)), &cancel, |t| {
        lock(&partial).push_str(t);
        let _ = tx.send(t.to_owned());
    })
    .await;
    drop(tx);
    // Every delta is out before `done`.
    let _ = forwarder.await;
    let outcome = match result {
        Ok(o) => o,
        Err(e) => return not_started(&client, &chat_id, &id, format!("the message could not be saved: {e}")).await,
    };
    if let Some(e) = &outcome.save_error {
        client
            .show_message(
                tower_lsp_server::ls_types::MessageType::WARNING,
                format!("Quill chat: the reply was not saved: {e}"),
            )
            .await;
    }
    client.send_notification::<ChatDone>(outcome_json(&chat_id, &outcome)).await;
    Ok(outcome)
}

/// Tell the client a turn ended before its provider was called; the `Err` of its task.
async fn not_started(client: &Client, chat_id: &str, message_id: &str, why: String) -> TurnResult {
    tracing::warn!(chat = chat_id, "chat turn: {why}");
    let done = json!({"chatId": chat_id, "messageId": message_id, "reply": "", "error": why,
                      "stopReason": "error", "usage": {}, "contextUsed": [], "historyDropped": 0});
    client.send_notification::<ChatDone>(done).await;
    Err(why)
}
