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
    history::{ChatMessage, HistoryError, HistoryStore, Role, new_id},
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

/// Run a prepared turn: save the user's message to `save` (a store and chat id; `None` for the
/// CLI, which keeps no history), stream the reply through `on_delta`, then save the reply.
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
    if let Some((store, chat_id)) = save {
        store.append_message(chat_id, user)?;
    }
    let mut reply = String::new();
    let ending = stream(provider, &request, cancel, |t| {
        reply.push_str(t);
        on_delta(t);
    })
    .await;

    let mut message = ChatMessage { id: assistant_id.clone(), ..ChatMessage::new(Role::Assistant, reply.clone()) };
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
    let save_error = match save {
        Some((store, chat_id)) => match store.append_message(chat_id, message) {
            Ok(()) => None,
            // Deleted while it answered: there is nothing left to save it to.
            Err(HistoryError::UnknownChat(_)) => None,
            Err(e) => {
                tracing::warn!(chat = chat_id, "chat reply not saved: {e}");
                Some(e.to_string())
            }
        },
        None => None,
    };
    Ok(Outcome { message_id: assistant_id, reply, ending, context_used, history_dropped, save_error })
}

/// Stream one answer, every wait raced against `cancel`. Dropping the stream on cancel closes the
/// provider's connection.
async fn stream(provider: &Provider, request: &ChatRequest, cancel: &Cancel, mut on_delta: impl FnMut(&str)) -> Ending {
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
    loop {
        let next = tokio::select! {
            biased;
            () = cancel.cancelled() => return Ending::Cancelled,
            ev = stream.next() => ev,
        };
        match next {
            Some(Ok(Event::Delta(t))) => {
                received += t.chars().count();
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
    let meta = std::fs::metadata(path).map_err(|e| io_reason(&e))?;
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!("file too large ({} bytes; the limit is {MAX_FILE_BYTES})", meta.len()));
    }
    let bytes = std::fs::read(path).map_err(|e| io_reason(&e))?;
    let text = String::from_utf8(bytes).map_err(|_| "binary content (not UTF-8 text)".to_owned())?;
    Ok(Rope::from_str(&text))
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => format!("cannot read: {e}"),
    }
}

/// A fresh message id, for callers that announce the reply's id before the turn runs.
pub fn new_message_id() -> String {
    new_id()
}
