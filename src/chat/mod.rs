//! Chat: persisted conversations ([`history`]), what one chat turn sends ([`context`]), and the
//! turn itself ([`run`]).
//!
//! [`run`] drives one turn (save the question, stream the answer, save it). All three are plain
//! library code with no LSP types, so the LSP requests (`quill/chat/*`) and the CLI (`quill chat`)
//! share them.

pub mod context;
pub mod history;
pub mod run;

pub use context::{Budget, ContextItem, ContextStatus, Docs, Mention, Turn, build_turn};
pub use history::{Chat, ChatMessage, ChatSummary, HistoryError, HistoryStore, Role};
