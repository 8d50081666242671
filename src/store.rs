//! The map of open documents, keyed by URI string, and cheap snapshots of them.
//!
//! Architecture Invariant: the store is changed only by the document-sync notification handlers,
//! synchronously, before their first `.await`. Everything downstream reads a [`Snapshot`], which
//! owns its data (an O(1) rope clone and a refcounted tree), so no map lock outlives a call here.

use dashmap::DashMap;
use ropey::Rope;
use tree_sitter::Tree;

use crate::{
    document::{Change, ChangeError, Document, ParseStatus},
    position::PositionEncoding,
    syntax::Language,
};

/// An owned, immutable view of a document at one version.
#[derive(Clone)]
pub struct Snapshot {
    pub uri: String,
    pub version: i32,
    pub language_id: String,
    pub language: Option<Language>,
    pub text: Rope,
    pub tree: Option<Tree>,
    pub status: ParseStatus,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("uri", &self.uri)
            .field("version", &self.version)
            .field("bytes", &self.text.len_bytes())
            .finish()
    }
}

/// Why a store operation did nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("unknown document {0}")]
    Unknown(String),
    #[error(transparent)]
    Change(#[from] ChangeError),
}

/// Debug facts about a document (the `quill/document` request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentInfo {
    pub version: i32,
    pub language_id: String,
    pub text: String,
    pub parsed: bool,
    pub syntax_errors: usize,
    pub status: String,
}

#[derive(Debug, Default)]
pub struct Store {
    docs: DashMap<String, Document>,
}

impl Store {
    pub fn new() -> Self {
        Store::default()
    }

    /// Open (or reopen) a document. A reopen replaces the old state, as the spec implies.
    pub fn open(&self, uri: &str, language_id: &str, version: i32, text: &str, max_parse_bytes: usize) {
        let language = Language::detect(language_id, uri);
        let doc = Document::new(text, version, language_id, language, max_parse_bytes);
        if let Some(old) = self.docs.insert(uri.to_owned(), doc) {
            tracing::warn!(uri, old_version = old.version(), "didOpen for a document already open; replaced");
        }
    }

    pub fn change(&self, uri: &str, version: i32, changes: &[Change], enc: PositionEncoding) -> Result<(), StoreError> {
        let mut doc = self.docs.get_mut(uri).ok_or_else(|| StoreError::Unknown(uri.to_owned()))?;
        doc.apply_changes(version, changes, enc)?;
        Ok(())
    }

    /// Forget a document. Returns whether it was open.
    pub fn close(&self, uri: &str) -> bool {
        self.docs.remove(uri).is_some()
    }

    pub fn snapshot(&self, uri: &str) -> Option<Snapshot> {
        let doc = self.docs.get(uri)?;
        Some(Snapshot {
            uri: uri.to_owned(),
            version: doc.version(),
            language_id: doc.language_id().to_owned(),
            language: doc.language(),
            text: doc.text().clone(),
            tree: doc.tree().cloned(),
            status: doc.status(),
        })
    }

    pub fn info(&self, uri: &str) -> Option<DocumentInfo> {
        let doc = self.docs.get(uri)?;
        Some(DocumentInfo {
            version: doc.version(),
            language_id: doc.language_id().to_owned(),
            text: doc.text().to_string(),
            parsed: doc.tree().is_some(),
            syntax_errors: doc.syntax_errors(),
            status: doc.status().to_string(),
        })
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
}
