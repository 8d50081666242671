//! Chat over LSP: `quill/chat/*`, `quill/models` and the `quill.explain` command.
//! (Skeleton: filled in by issue 5.)

use serde_json::Value;
use tower_lsp_server::jsonrpc::Result;

use super::{QuillServer, to_rpc};
use crate::error::Error;

/// Chat state kept by the server.
#[derive(Debug, Default)]
pub struct Chats {}

fn todo() -> tower_lsp_server::jsonrpc::Error {
    to_rpc(Error::InvalidParams("not implemented yet".into()))
}

impl QuillServer {
    pub(super) async fn chat_new(&self, _params: Value) -> Result<Value> {
        Err(todo())
    }
    pub(super) async fn chat_send(&self, _params: Value) -> Result<Value> {
        Err(todo())
    }
    pub(super) async fn chat_cancel(&self, _params: Value) -> Result<Value> {
        Err(todo())
    }
    pub(super) async fn chat_list(&self, _params: Value) -> Result<Value> {
        Err(todo())
    }
    pub(super) async fn chat_history(&self, _params: Value) -> Result<Value> {
        Err(todo())
    }
    pub(super) async fn chat_delete(&self, _params: Value) -> Result<Value> {
        Err(todo())
    }
    pub(super) async fn models(&self, _params: Value) -> Result<Value> {
        Err(todo())
    }
    /// `workspace/executeCommand quill.explain`.
    pub(super) async fn execute_explain(&self, _args: Vec<Value>) -> Result<Option<Value>> {
        Err(todo())
    }
}
