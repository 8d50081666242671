//! Edits over LSP: the code actions, their resolve step, `quill.edit` and `quill/edit`.
//! (Skeleton: filled in by issue 5.)

use serde_json::Value;
use tower_lsp_server::{jsonrpc::Result, ls_types::*};

use super::{QuillServer, to_rpc};
use crate::{config::Feature, error::Error};

/// Edit state kept by the server.
#[derive(Debug, Default)]
pub struct Edits {}

impl QuillServer {
    /// `textDocument/codeAction`.
    pub(super) async fn code_actions(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        let snap = self.snapshot(&params.text_document.uri).map_err(to_rpc)?;
        self.char_at(&snap, params.range.start).map_err(to_rpc)?;
        self.char_at(&snap, params.range.end).map_err(to_rpc)?;
        self.require_provider(Feature::Edit).await?;
        Ok(Some(Vec::new()))
    }

    /// `codeAction/resolve`.
    pub(super) async fn resolve_code_action(&self, action: CodeAction) -> Result<CodeAction> {
        Ok(action)
    }

    /// `workspace/executeCommand quill.edit`.
    pub(super) async fn execute_edit(&self, _args: Vec<Value>) -> Result<Option<Value>> {
        Err(to_rpc(Error::InvalidParams("not implemented yet".into())))
    }

    /// `window/workDoneProgress/cancel`.
    pub(super) async fn progress_cancel(&self, _params: WorkDoneProgressCancelParams) {}

    /// `quill/edit`.
    pub(super) async fn edit_preview(&self, _params: Value) -> Result<Value> {
        Err(to_rpc(Error::InvalidParams("not implemented yet".into())))
    }
}
