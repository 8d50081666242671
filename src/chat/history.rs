//! Chat history: the conversation model and its persistence, one JSON file per chat.
//!
//! Files live in `<dir>/<id>.json` (the default dir is `$XDG_DATA_HOME/quill/chats/`, see
//! [`default_dir`]) and carry `"version": 1`. Every write goes to a temp file in the same
//! directory, is fsynced, then renamed over the old file, so a crash leaves either the old or
//! the new chat, never half of one. Reading is forgiving: a corrupt, truncated or newer-version
//! file is skipped with a warning, so one bad file never takes the other chats down.
//!
//! Concurrency: the store is shared as `Arc<HistoryStore>`. The in-memory map sits behind a
//! `Mutex` held only to update a chat and serialize it; the file write happens after that lock is
//! released, under a second lock that serializes disk writes only. Each chat carries a generation
//! number bumped on every change, and a write whose generation is older than the one already on
//! disk is skipped, so two racing updates can never leave the older one on disk, and a delete
//! can never be undone by a write still in flight.

use std::{
    collections::HashMap,
    ffi::OsString,
    fs,
    hash::{BuildHasher, Hasher},
    io::Write as _,
    path::{Path, PathBuf},
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

use super::context::ContextItem;

/// The file format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Longest accepted id; generated ids are about 30 characters.
const MAX_ID_LEN: usize = 64;

/// Titles are taken from the first user message, cut to this many characters.
const TITLE_CHARS: usize = 60;

/// One conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chat {
    pub id: String,
    /// The first line of the first user message until someone renames it; empty before that.
    pub title: String,
    /// The model the chat was created for, when one was named.
    #[serde(default)]
    pub model: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
    #[serde(default)]
    pub messages: Vec<ChatMessage>,
}

/// Who wrote a message. System prompts are not stored: they are rebuilt on every turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One message of a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub id: String,
    pub role: Role,
    pub content: String,
    /// For a user message: what context went with it, and what was cut.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context_used: Vec<ContextItem>,
    /// (input, output) tokens, when the provider reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<(u64, u64)>,
    /// Why a reply ended early (provider error, cancel); `content` holds what arrived before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ChatMessage {
    /// A new message with a fresh id.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage { id: new_id(), role, content: content.into(), context_used: Vec::new(), usage: None, error: None }
    }

    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage::new(Role::User, content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage::new(Role::Assistant, content)
    }
}

/// What `quill/chat/list` shows of a chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatSummary {
    pub id: String,
    pub title: String,
    /// The chat's own model, if it has one.
    pub model: Option<String>,
    pub updated_ms: u64,
    pub message_count: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The id could name a file outside the chats dir, or is not one Quill would make.
    #[error("invalid chat or message id {0:?}: use letters, digits, '-' and '_' only (at most 64)")]
    BadId(String),
    #[error("unknown chat {0}")]
    UnknownChat(String),
    #[error("chat {chat} has no message {message}")]
    UnknownMessage { chat: String, message: String },
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot serialize chat {id}: {source}")]
    Serialize { id: String, source: serde_json::Error },
}

/// The chats directory: `$XDG_DATA_HOME/quill/chats`, else `$HOME/.local/share/quill/chats`.
///
/// `env` looks a variable up (pass `std::env::var_os`); it is a parameter because tests cannot
/// set environment variables without `unsafe`. Relative or empty values are ignored, as the XDG
/// spec asks. `None` when neither variable gives an absolute path.
pub fn default_dir(env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let absolute = |name: &str| env(name).map(PathBuf::from).filter(|p| p.is_absolute());
    let data = absolute("XDG_DATA_HOME").or_else(|| absolute("HOME").map(|h| h.join(".local").join("share")))?;
    Some(data.join("quill").join("chats"))
}

/// Whether `id` is safe to use as a file name stem: no separators, no dots, nothing exotic.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A fresh id: milliseconds, a process-wide counter and 64 random bits, in hex. Sorts roughly by
/// creation time; unique across processes sharing the dir thanks to the random part.
pub fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // `RandomState` is seeded from the OS once per process and perturbed per instance.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    format!("{:x}-{:x}-{:016x}", now_ms(), n, h.finish())
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(Serialize)]
struct FileOut<'a> {
    version: u32,
    #[serde(flatten)]
    chat: &'a Chat,
}

#[derive(Deserialize)]
struct FileIn {
    #[serde(flatten)]
    chat: Chat,
}

/// Read first so that a newer file is recognised before its (possibly different) shape is parsed.
#[derive(Deserialize)]
struct VersionProbe {
    version: u32,
}

struct Entry {
    chat: Chat,
    /// Bumped on every change; see the module docs.
    generation: u64,
}

/// The chats of one directory, loaded at open and written through on every change.
pub struct HistoryStore {
    dir: PathBuf,
    chats: Mutex<HashMap<String, Entry>>,
    /// Per chat, the generation on disk; `u64::MAX` once deleted. Held while writing files.
    on_disk: Mutex<HashMap<String, u64>>,
    tmp_counter: AtomicU64,
}

impl std::fmt::Debug for HistoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryStore").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// A poisoned lock only means another task panicked mid-update of one in-memory chat; the map
/// itself is still consistent, so carry on rather than take chat down for good.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl HistoryStore {
    /// Open (creating it if needed) a chats directory and load every readable chat in it.
    ///
    /// Unreadable, corrupt and newer-version files are skipped with a warning. Temp files left by
    /// a crash mid-write are removed.
    pub fn open(dir: PathBuf) -> Result<HistoryStore, HistoryError> {
        fs::create_dir_all(&dir).map_err(|source| HistoryError::Io { path: dir.clone(), source })?;
        let entries = fs::read_dir(&dir).map_err(|source| HistoryError::Io { path: dir.clone(), source })?;
        let mut chats = HashMap::new();
        let mut on_disk = HashMap::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            if name.starts_with('.') && name.contains(".tmp-") {
                if let Err(e) = fs::remove_file(&path) {
                    tracing::debug!(path = %path.display(), "leftover chat temp file not removed: {e}");
                }
                continue;
            }
            let Some(stem) = name.strip_suffix(".json") else { continue };
            if !valid_id(stem) {
                continue;
            }
            if let Some(chat) = load(&path, stem) {
                on_disk.insert(chat.id.clone(), 1);
                chats.insert(chat.id.clone(), Entry { chat, generation: 1 });
            }
        }
        tracing::debug!(dir = %dir.display(), chats = chats.len(), "chat history loaded");
        Ok(HistoryStore { dir, chats: Mutex::new(chats), on_disk: Mutex::new(on_disk), tmp_counter: AtomicU64::new(0) })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Start an empty chat and persist it.
    pub fn create(&self, model: Option<String>) -> Result<Chat, HistoryError> {
        let now = now_ms();
        let chat =
            Chat { id: new_id(), title: String::new(), model, created_ms: now, updated_ms: now, messages: Vec::new() };
        let bytes = serialize(&chat)?;
        lock(&self.chats).insert(chat.id.clone(), Entry { chat: chat.clone(), generation: 1 });
        self.write(&chat.id, 1, &bytes)?;
        Ok(chat)
    }

    /// A copy of one chat.
    pub fn get(&self, id: &str) -> Result<Chat, HistoryError> {
        check_id(id)?;
        lock(&self.chats).get(id).map(|e| e.chat.clone()).ok_or_else(|| HistoryError::UnknownChat(id.to_owned()))
    }

    /// Every chat, most recently updated first (ties by id, for a stable order).
    pub fn list(&self) -> Vec<ChatSummary> {
        let mut out: Vec<ChatSummary> = lock(&self.chats)
            .values()
            .map(|e| ChatSummary {
                id: e.chat.id.clone(),
                title: e.chat.title.clone(),
                model: e.chat.model.clone(),
                updated_ms: e.chat.updated_ms,
                message_count: e.chat.messages.len(),
            })
            .collect();
        out.sort_by(|a, b| b.updated_ms.cmp(&a.updated_ms).then_with(|| b.id.cmp(&a.id)));
        out
    }

    /// Add a message at the end. The first user message also names an untitled chat.
    pub fn append_message(&self, chat_id: &str, message: ChatMessage) -> Result<(), HistoryError> {
        check_id(&message.id)?;
        self.update(chat_id, |chat| {
            if chat.title.is_empty() && message.role == Role::User {
                chat.title = title_from(&message.content);
            }
            chat.messages.push(message);
            Ok(())
        })
    }

    /// Give a chat a title (the `quill.explain` chats are named after their selection).
    pub fn set_title(&self, chat_id: &str, title: impl Into<String>) -> Result<(), HistoryError> {
        let title = title.into();
        self.update(chat_id, |chat| {
            chat.title = title;
            Ok(())
        })
    }

    /// Replace the message with the same id: a streamed reply is appended empty, then saved
    /// again when it completes or is cut.
    pub fn replace_message(&self, chat_id: &str, message: ChatMessage) -> Result<(), HistoryError> {
        check_id(&message.id)?;
        self.update(chat_id, |chat| {
            let slot = chat
                .messages
                .iter_mut()
                .find(|m| m.id == message.id)
                .ok_or_else(|| HistoryError::UnknownMessage { chat: chat.id.clone(), message: message.id.clone() })?;
            *slot = message;
            Ok(())
        })
    }

    /// Remove a chat's file, then forget it. Deleting an unknown chat is an error, so a client
    /// learns it passed a wrong id. If the file cannot be removed the chat stays, in memory and
    /// on disk, and the error says why.
    pub fn delete(&self, id: &str) -> Result<(), HistoryError> {
        check_id(id)?;
        // Held throughout: no write of this chat lands between the removal and the forgetting.
        let mut on_disk = lock(&self.on_disk);
        if !lock(&self.chats).contains_key(id) {
            return Err(HistoryError::UnknownChat(id.to_owned()));
        }
        let path = self.path(id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(HistoryError::Io { path, source }),
        }
        // Later writes of it (a reply still being saved) are skipped.
        on_disk.insert(id.to_owned(), u64::MAX);
        lock(&self.chats).remove(id);
        Ok(())
    }

    /// Change one chat in memory, then persist it. On a write error the change stays in memory
    /// (the session goes on) and the file keeps its last good version; the error is returned so
    /// the caller can tell the user.
    fn update(&self, id: &str, f: impl FnOnce(&mut Chat) -> Result<(), HistoryError>) -> Result<(), HistoryError> {
        check_id(id)?;
        let (generation, bytes) = {
            let mut chats = lock(&self.chats);
            let entry = chats.get_mut(id).ok_or_else(|| HistoryError::UnknownChat(id.to_owned()))?;
            let mut chat = entry.chat.clone();
            f(&mut chat)?;
            chat.updated_ms = now_ms().max(chat.updated_ms);
            // Serialized under the lock: it is a copy of memory, small next to the file I/O.
            let bytes = serialize(&chat)?;
            entry.chat = chat;
            entry.generation += 1;
            (entry.generation, bytes)
        };
        self.write(id, generation, &bytes)
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Write `bytes` as chat `id` at `generation`, unless a newer one is already on disk.
    fn write(&self, id: &str, generation: u64, bytes: &[u8]) -> Result<(), HistoryError> {
        let mut on_disk = lock(&self.on_disk);
        if on_disk.get(id).is_some_and(|&g| g >= generation) {
            return Ok(());
        }
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!(".{id}.json.tmp-{}-{n}", std::process::id()));
        let path = self.path(id);
        if let Err(source) = write_atomic(&tmp, &path, bytes) {
            if let Err(e) = fs::remove_file(&tmp)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %tmp.display(), "chat temp file not removed: {e}");
            }
            return Err(HistoryError::Io { path, source });
        }
        on_disk.insert(id.to_owned(), generation);
        Ok(())
    }
}

fn check_id(id: &str) -> Result<(), HistoryError> {
    if valid_id(id) { Ok(()) } else { Err(HistoryError::BadId(id.to_owned())) }
}

fn serialize(chat: &Chat) -> Result<Vec<u8>, HistoryError> {
    serde_json::to_vec_pretty(&FileOut { version: FORMAT_VERSION, chat })
        .map_err(|source| HistoryError::Serialize { id: chat.id.clone(), source })
}

fn title_from(content: &str) -> String {
    let line = content.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    let mut title: String = line.chars().take(TITLE_CHARS).collect();
    if line.chars().nth(TITLE_CHARS).is_some() {
        title.push('…');
    }
    title
}

/// Temp file, fsync, rename, then fsync the directory so the rename itself survives a crash.
fn write_atomic(tmp: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new().write(true).create_new(true).open(tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(tmp, path)?;
    #[cfg(unix)]
    if let Some(dir) = path.parent()
        && let Err(e) = fs::File::open(dir).and_then(|d| d.sync_all())
    {
        // The rename is done; only its durability across a power cut is in doubt.
        tracing::debug!(dir = %dir.display(), "chats dir fsync failed: {e}");
    }
    Ok(())
}

/// One chat file, or `None` (with a warning) when it cannot be used.
fn load(path: &Path, stem: &str) -> Option<Chat> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(path = %path.display(), "chat file unreadable, skipped: {e}");
            return None;
        }
    };
    let version = match serde_json::from_slice::<VersionProbe>(&bytes) {
        Ok(p) => p.version,
        Err(e) => {
            tracing::warn!(path = %path.display(), "chat file corrupt or truncated, skipped: {e}");
            return None;
        }
    };
    if version != FORMAT_VERSION {
        tracing::warn!(path = %path.display(), version, "chat file from another Quill version, skipped");
        return None;
    }
    match serde_json::from_slice::<FileIn>(&bytes) {
        Ok(FileIn { chat }) if chat.id == stem => Some(chat),
        Ok(FileIn { chat }) => {
            tracing::warn!(path = %path.display(), id = chat.id, "chat file named after another id, skipped");
            None
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), "chat file corrupt, skipped: {e}");
            None
        }
    }
}
