//! Chat: persisted conversations ([`history`]) and what one chat turn sends ([`context`]).
//!
//! Both halves are plain library code with no LSP types, so the LSP requests (`quill/chat/*`) and
//! the CLI (`quill chat`) share them.

pub mod context;
pub mod history;

pub use context::{Budget, ContextItem, ContextStatus, Docs, Mention, Turn, build_turn};
pub use history::{Chat, ChatMessage, ChatSummary, HistoryError, HistoryStore, Role};
