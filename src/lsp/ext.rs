//! Quill's custom LSP methods: their names and parameter and result shapes.
//! Every one is documented in `docs/protocol.md`.

use serde::{Deserialize, Serialize};
use tower_lsp_server::ls_types::Uri;

/// `quill/document`: debug view of the server's copy of a document.
pub const DOCUMENT: &str = "quill/document";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentParams {
    pub uri: Uri,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DocumentResult {
    pub version: i32,
    pub language_id: String,
    pub text: String,
    /// Whether a syntax tree exists for the current text.
    pub parsed: bool,
    /// Count of tree-sitter `ERROR` and `MISSING` nodes.
    pub syntax_errors: usize,
    /// Why the document is or is not parsed, in words.
    pub parse_status: String,
}

/// `textDocument/inlineCompletion` (LSP 3.18), routed as a custom method because
/// tower-lsp-server's trait predates it.
pub const INLINE_COMPLETION: &str = "textDocument/inlineCompletion";

/// `quill/status` (server → client notification): autocomplete's state, for a status item.
/// Params: `{state: "idle" | "fetching" | "error", reason?, provider?}`.
#[derive(Debug)]
pub enum Status {}

impl tower_lsp_server::ls_types::notification::Notification for Status {
    type Params = serde_json::Value;
    const METHOD: &'static str = "quill/status";
}

/// `quill/edit`: the `WorkspaceEdit` an edit would make, without applying it (see `lsp/edit.rs`).
pub const EDIT: &str = "quill/edit";
/// `window/workDoneProgress/cancel` (client → server): the user cancelled a progress we began.
pub const PROGRESS_CANCEL: &str = "window/workDoneProgress/cancel";
/// `workspace/executeCommand` that runs an edit and applies it with `workspace/applyEdit`.
/// Arguments: one object `{uri, range, instruction?, intent?}`.
pub const EDIT_COMMAND: &str = "quill.edit";
/// `workspace/executeCommand` that explains a selection in a new chat (the "Quill: Explain" code
/// action). Arguments: one object `{uri, range}`.
pub const EXPLAIN_COMMAND: &str = "quill.explain";

/// Chat requests (see `lsp/chat.rs` and docs/protocol.md).
pub const CHAT_NEW: &str = "quill/chat/new";
pub const CHAT_SEND: &str = "quill/chat/send";
pub const CHAT_CANCEL: &str = "quill/chat/cancel";
pub const CHAT_LIST: &str = "quill/chat/list";
pub const CHAT_HISTORY: &str = "quill/chat/history";
pub const CHAT_DELETE: &str = "quill/chat/delete";
/// `quill/models`: the providers and models configured per feature.
pub const MODELS: &str = "quill/models";
