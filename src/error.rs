//! Quill's request errors. They carry no LSP types; `lsp/` maps them to JSON-RPC codes.

use crate::position::TextPos;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request names a document that is not open.
    #[error("unknown document: {0} (not open; send textDocument/didOpen first)")]
    UnknownDocument(String),
    /// A position falls inside a character in the negotiated encoding.
    #[error("invalid position {}:{} in {enc}: inside a character", .pos.line, .pos.col)]
    InvalidPosition { pos: TextPos, enc: &'static str },
    /// Parameters are well-formed JSON but mean nothing to us.
    #[error("{0}")]
    InvalidParams(String),
}
