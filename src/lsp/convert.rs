//! Conversions between LSP types and Quill's own. The math lives in `crate::position`; this file
//! only moves fields, so that LSP types never leak past `src/lsp/`.

use tower_lsp_server::ls_types::{Position, TextDocumentContentChangeEvent, Uri};

use crate::{document::Change, position::TextPos};

pub fn text_pos(p: Position) -> TextPos {
    TextPos::new(p.line, p.character)
}

pub fn position(p: TextPos) -> Position {
    Position::new(p.line, p.col)
}

pub fn change(event: TextDocumentContentChangeEvent) -> Change {
    Change { range: event.range.map(|r| (text_pos(r.start), text_pos(r.end))), text: event.text }
}

/// The store's key for a document: the URI exactly as the client spelled it.
pub fn uri_key(uri: &Uri) -> &str {
    uri.as_str()
}
