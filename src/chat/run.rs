//! One chat turn from question to saved answer, shared by the LSP (`quill/chat/send`,
//! `quill.explain`) and the CLI (`quill chat`).
//!
//! A turn is [`prepare`]d (context resolved and fitted, see [`super::context`]), then [`run`]:
//! the user's message is saved before the provider is called, the reply streams through a delta
//! callback, and the assistant's message is saved once the stream ends, however it ends. A reply
//! cut by a provider error or a cancel is kept with what arrived and the reason, so nothing the
//! user saw is lost.
//!
//! Cancelling ([`Cancel`]) drops the provider stream at once, which closes the HTTP connection
//! (that is how a vendor learns to stop generating), and the turn still ends normally: saved,
//! with [`Ending::Cancelled`]. It is a signal rather than a task abort so that the partial reply
//! is never lost at an `.await`.

use std::{path::Path, sync::Arc};

use ropey::Rope;

use super::{
    context::{Budget, ContextItem, Docs, Mention, build_turn},
    history::{ChatMessage, HistoryError, HistoryStore, Role},
};
use crate::{
    config::{ChatConfig, Feature},
    provider::{ChatRequest, ErrorKind, Event, Finish, Provider, ProviderError, Usage},
};

/// Files read from disk for context are refused above this size: far more than any budget takes,
/// and reading more would only cost time and memory.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// A cancel signal shared by a turn and whoever may stop it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Cancel(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Cancel {
    fn default() -> Self {
        Cancel(Arc::new(tokio::sync::watch::Sender::new(false)))
    }
}

impl Cancel {
    pub fn new() -> Self {
        Cancel::default()
    }

    /// Ask the turn to stop. Idempotent.
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once [`Cancel::cancel`] was called (at once if it already was).
    pub async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we wait.
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// The `[chat]` settings a turn uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub budget: Budget,
    pub max_tokens: u32,
    pub temperature: f32,
}

impl Settings {
    pub fn from_config(c: &ChatConfig) -> Self {
        Settings {
            budget: Budget { context_tokens: c.context_tokens, context_share: c.context_share, ..Budget::default() },
            max_tokens: c.max_tokens,
            temperature: c.temperature,
        }
    }
}

/// A turn ready to run.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The user's message as it will be saved (with what context went with it).
    pub user: ChatMessage,
    /// The id the assistant's reply will have (known up front, so deltas can name it).
    pub assistant_id: String,
    pub request: ChatRequest,
    pub context_used: Vec<ContextItem>,
    /// History turns left out to fit the budget.
    pub history_dropped: usize,
}

/// Build a turn: the request for the provider and the user's message to save.
pub fn prepare(
    history: &[ChatMessage],
    message: &str,
    mentions: &[Mention],
    docs: &dyn Docs,
    settings: &Settings,
    assistant_id: String,
) -> Prepared {
    let turn = build_turn(history, message, mentions, docs, &settings.budget);
    let mut request = turn.request;
    request.max_tokens = settings.max_tokens;
    request.temperature = settings.temperature;
    let mut user = ChatMessage::user(message);
    user.context_used = turn.context_used.clone();
    Prepared { user, assistant_id, request, context_used: turn.context_used, history_dropped: turn.history_dropped }
}

/// How a reply ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// The provider finished (for any reason it gives: end of turn, token limit, ...).
    Finished(Finish),
    /// [`Cancel::cancel`] was called; the reply holds what arrived before.
    Cancelled,
    /// The provider failed, before or during the stream; the reply holds what arrived before.
    Failed(ProviderError),
}

/// The result of a turn.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub message_id: String,
    /// The whole reply (partial when cancelled or failed).
    pub reply: String,
    pub ending: Ending,
    pub context_used: Vec<ContextItem>,
    pub history_dropped: usize,
    /// Saving the reply failed (the turn itself went through): the reason, to tell the user.
    pub save_error: Option<String>,
}

/// Stored as the `error` of a cancelled reply.
pub const CANCELLED: &str = "cancelled";

impl Outcome {
    /// `end_turn`, `max_tokens`, ..., `cancelled` or `error`.
    pub fn stop_reason(&self) -> String {
        match &self.ending {
            Ending::Finished(f) => f.stop_reason.to_string(),
            Ending::Cancelled => CANCELLED.to_owned(),
            Ending::Failed(_) => "error".to_owned(),
        }
    }

    pub fn usage(&self) -> Usage {
        match &self.ending {
            Ending::Finished(f) => f.usage,
            _ => Usage::default(),
        }
    }

    /// The provider's error, for a failed turn.
    pub fn error(&self) -> Option<&ProviderError> {
        match &self.ending {
            Ending::Failed(e) => Some(e),
            _ => None,
        }
    }
}

/// Interim saves of a streaming reply happen at most this often; a reply cut by a crash or a
/// kill loses at most this much of what arrived.
pub const SAVE_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// The `error` a reply carries while it streams: what a reader sees if the process died before
/// the reply ended. The final save replaces it.
pub const INTERRUPTED: &str = "interrupted: Quill stopped before the reply ended";

/// Save `message`, replacing the chat's message with the same id, or appending it if there is
/// none (a turn saves its reply early and then again, and may not have got as far as the first).
pub fn save_message(store: &HistoryStore, chat_id: &str, message: ChatMessage) -> Result<(), HistoryError> {
    match store.replace_message(chat_id, message.clone()) {
        Err(HistoryError::UnknownMessage { .. }) => store.append_message(chat_id, message),
        r => r,
    }
}

/// Run a prepared turn: save the user's message to `save` (a store and chat id; `None` for the
/// CLI, which keeps no history; a message with the same id already saved is replaced, so a
/// caller may save the question before preparing the turn), stream the reply through
/// `on_delta`, then save the reply.
///
/// The reply is saved before the provider is called (empty, marked [`INTERRUPTED`]), again at
/// most every [`SAVE_EVERY`] while it streams, and finally with how it ended, so a crash or a
/// kill mid-stream keeps what arrived.
///
/// Fails only when the user's message cannot be saved (the chat was deleted, the disk refused),
/// before the provider is called. Every other ending is an [`Outcome`].
pub async fn run(
    provider: &Provider,
    prepared: Prepared,
    save: Option<(&HistoryStore, &str)>,
    cancel: &Cancel,
    mut on_delta: impl FnMut(&str),
) -> Result<Outcome, HistoryError> {
    let Prepared { user, assistant_id, request, context_used, history_dropped } = prepared;
    let assistant = |content: &str| ChatMessage {
        id: assistant_id.clone(),
        ..ChatMessage::new(Role::Assistant, content.to_owned())
    };
    // The first failure to save the reply, to tell the user; later saves still try.
    let mut save_error: Option<String> = None;
    let mut checkpoint = |content: &str, error: Option<String>| {
        let Some((store, chat_id)) = save else { return };
        let mut message = assistant(content);
        message.error = error;
        save_reply(store, chat_id, message, &mut save_error);
    };
    if let Some((store, chat_id)) = save {
        save_message(store, chat_id, user)?;
    }
    checkpoint("", Some(INTERRUPTED.to_owned()));
    let mut reply = String::new();
    let ending = stream(provider, &request, cancel, &mut reply, &mut on_delta, |r: &str| {
        checkpoint(r, Some(INTERRUPTED.to_owned()));
    })
    .await;

    let mut message = assistant(&reply);
    match &ending {
        Ending::Finished(f) => {
            let Usage { input_tokens, output_tokens } = f.usage;
            if input_tokens.is_some() || output_tokens.is_some() {
                message.usage = Some((input_tokens.unwrap_or(0), output_tokens.unwrap_or(0)));
            }
        }
        Ending::Cancelled => message.error = Some(CANCELLED.to_owned()),
        Ending::Failed(e) => message.error = Some(e.to_string()),
    }
    if let Some((store, chat_id)) = save {
        save_reply(store, chat_id, message, &mut save_error);
    }
    Ok(Outcome { message_id: assistant_id, reply, ending, context_used, history_dropped, save_error })
}

/// Save a reply (early, interim or final), keeping the first error.
fn save_reply(store: &HistoryStore, chat_id: &str, message: ChatMessage, first_error: &mut Option<String>) {
    match save_message(store, chat_id, message) {
        Ok(()) => {}
        // Deleted while it answered: there is nothing left to save it to.
        Err(HistoryError::UnknownChat(_)) => {}
        Err(e) => {
            tracing::warn!(chat = chat_id, "chat reply not saved: {e}");
            first_error.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Stream one answer into `reply`, every wait raced against `cancel`. Dropping the stream on
/// cancel closes the provider's connection. `checkpoint` gets the reply so far when it has grown
/// and [`SAVE_EVERY`] has passed since the last checkpoint, also while the stream stalls.
async fn stream(
    provider: &Provider,
    request: &ChatRequest,
    cancel: &Cancel,
    reply: &mut String,
    mut on_delta: impl FnMut(&str),
    mut checkpoint: impl FnMut(&str),
) -> Ending {
    let opened = tokio::select! {
        biased;
        () = cancel.cancelled() => return Ending::Cancelled,
        r = provider.chat(request, Feature::Chat) => r,
    };
    let mut stream = match opened {
        Ok(s) => s,
        Err(e) => return Ending::Failed(e),
    };
    let mut received = 0;
    let mut dirty = false;
    let mut next_save = tokio::time::Instant::now() + SAVE_EVERY;
    loop {
        let next = tokio::select! {
            biased;
            () = cancel.cancelled() => return Ending::Cancelled,
            () = tokio::time::sleep_until(next_save), if dirty => {
                checkpoint(reply);
                dirty = false;
                next_save = tokio::time::Instant::now() + SAVE_EVERY;
                continue;
            }
            ev = stream.next() => ev,
        };
        match next {
            Some(Ok(Event::Delta(t))) => {
                received += t.chars().count();
                reply.push_str(&t);
                dirty = true;
                on_delta(&t);
            }
            Some(Ok(Event::Done(f))) => return Ending::Finished(f),
            Some(Err(e)) => return Ending::Failed(e),
            // Streams end with `Done` or an error; this guards against a parser that forgets.
            None => {
                return Ending::Failed(ProviderError::new(
                    provider.name(),
                    provider.kind().as_str(),
                    ErrorKind::Incomplete { received },
                    "the answer ended without an end marker",
                ));
            }
        }
    }
}

/// A file's text for context, or why it cannot be used. Too large or not UTF-8 (binary) files are
/// refused; NUL bytes are caught later by [`super::context`], with the same wording as open
/// documents.
pub fn read_context_file(path: &Path) -> Result<Rope, String> {
    use std::io::Read;
    // One open: the size checked is the size of the file read, even if the path is swapped.
    let file = std::fs::File::open(path).map_err(|e| io_reason(&e))?;
    let meta = file.metadata().map_err(|e| io_reason(&e))?;
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large(&meta.len().to_string()));
    }
    // A file growing after the check is still read at most one byte past the limit.
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(|e| io_reason(&e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(&format!("more than {MAX_FILE_BYTES}")));
    }
    let text = String::from_utf8(bytes).map_err(|_| "binary content (not UTF-8 text)".to_owned())?;
    Ok(Rope::from_str(&text))
}

fn too_large(len: &str) -> String {
    format!("file too large ({len} bytes; the limit is {MAX_FILE_BYTES})")
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => format!("cannot read: {e}"),
    }
}
