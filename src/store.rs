//! The map of open documents, keyed by URI string, and cheap snapshots of them.
//!
//! Syntax trees are large (about 30 times their source), so the store keeps trees only for the most
//! recently used documents whose sources add up to the tree budget; others drop their tree and
//! reparse from scratch when next read. The most recently used tree is always kept.
//!
//! Architecture Invariant: the store is changed only by the document-sync notification handlers,
//! synchronously, before their first `.await`. Everything downstream reads a [`Snapshot`], which
//! owns its data (an O(1) rope clone and a refcounted tree), so no map lock outlives a call here.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use ropey::Rope;
use tree_sitter::Tree;

use crate::{
    document::{Change, ChangeError, DEFAULT_TREE_CACHE_BYTES, Document, ParseStatus},
    position::PositionEncoding,
    syntax::Language,
};

/// The path of a local `file://` URI (the store's keys), percent-decoded; `None` for other schemes
/// and for other hosts (`file://server/share/x` is not a path on this machine). A query or fragment
/// is not part of the path.
pub fn uri_path(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("file://")?;
    let path = if rest.starts_with('/') { rest } else { rest.strip_prefix("localhost")? };
    if !path.starts_with('/') {
        return None;
    }
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = path.get(i + 1..i + 3)
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    Some(String::from_utf8(out).unwrap_or_else(|_| path.to_owned()))
}

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

#[derive(Debug)]
pub struct Store {
    docs: DashMap<String, Entry>,
    /// Source bytes whose trees may stay cached (`documents.tree_cache_bytes`).
    tree_budget: AtomicUsize,
    /// Logical clock for least-recently-used tree eviction.
    clock: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    doc: Document,
    last_used: u64,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            docs: DashMap::new(),
            tree_budget: AtomicUsize::new(DEFAULT_TREE_CACHE_BYTES),
            clock: AtomicU64::new(0),
        }
    }
}

impl Store {
    pub fn new() -> Self {
        Store::default()
    }

    pub fn set_tree_budget(&self, bytes: usize) {
        self.tree_budget.store(bytes, Ordering::Relaxed);
    }

    /// Run `f` on a document with an up-to-date tree. Room in the tree cache is made first, so the
    /// evicted trees are freed before the new one is built and peak memory stays within budget.
    fn with_parsed<T>(&self, uri: &str, f: impl FnOnce(&mut Document) -> T) -> Option<T> {
        {
            let mut entry = self.docs.get_mut(uri)?;
            entry.last_used = self.clock.fetch_add(1, Ordering::Relaxed) + 1;
        } // each guard is dropped before eviction, which locks other shards
        self.evict_trees(uri);
        let mut entry = self.docs.get_mut(uri)?;
        entry.doc.ensure_parsed();
        Some(f(&mut entry.doc))
    }

    /// Drop the least recently used trees until the rest fit the budget, never `keep`'s.
    fn evict_trees(&self, keep: &str) {
        let budget = self.tree_budget.load(Ordering::Relaxed);
        let mut held: Vec<(u64, usize, String)> = self
            .docs
            .iter()
            .filter(|e| e.doc.holds_tree() && e.key() != keep)
            .map(|e| (e.last_used, e.doc.text().len_bytes(), e.key().clone()))
            .collect();
        let kept_bytes = self.docs.get(keep).map_or(0, |e| e.doc.text().len_bytes());
        let mut total: usize = kept_bytes + held.iter().map(|h| h.1).sum::<usize>();
        if total <= budget {
            return;
        }
        held.sort_unstable();
        for (_, bytes, uri) in held {
            if total <= budget {
                break;
            }
            if let Some(mut e) = self.docs.get_mut(&uri) {
                e.doc.drop_tree();
                tracing::debug!(uri, bytes, "syntax tree evicted (documents.tree_cache_bytes)");
            }
            total -= bytes;
        }
    }

    /// Open (or reopen) a document. A reopen replaces the old state, as the spec implies.
    pub fn open(&self, uri: &str, language_id: &str, version: i32, text: &str, max_parse_bytes: usize) {
        let language = Language::detect(language_id, uri);
        let doc = Document::new(text, version, language_id, language, max_parse_bytes);
        let entry = Entry { doc, last_used: 0 };
        if let Some(old) = self.docs.insert(uri.to_owned(), entry) {
            tracing::warn!(uri, old_version = old.doc.version(), "didOpen for a document already open; replaced");
        }
    }

    pub fn change(&self, uri: &str, version: i32, changes: &[Change], enc: PositionEncoding) -> Result<(), StoreError> {
        let mut entry = self.docs.get_mut(uri).ok_or_else(|| StoreError::Unknown(uri.to_owned()))?;
        entry.doc.apply_changes(version, changes, enc)?;
        Ok(())
    }

    /// Forget a document. Returns whether it was open.
    pub fn close(&self, uri: &str) -> bool {
        self.docs.remove(uri).is_some()
    }

    /// An owned view of the document, its tree brought up to date first.
    pub fn snapshot(&self, uri: &str) -> Option<Snapshot> {
        self.with_parsed(uri, |doc| Snapshot {
            uri: uri.to_owned(),
            version: doc.version(),
            language_id: doc.language_id().to_owned(),
            language: doc.language(),
            text: doc.text().clone(),
            tree: doc.tree().cloned(),
            status: doc.status(),
        })
    }

    /// A snapshot without a tree and without reparsing: enough for the text-only checks that
    /// run before anything needs syntax (autocomplete's typed-ahead reuse).
    pub fn peek(&self, uri: &str) -> Option<Snapshot> {
        self.docs.get(uri).map(|e| Snapshot {
            uri: uri.to_owned(),
            version: e.doc.version(),
            language_id: e.doc.language_id().to_owned(),
            language: e.doc.language(),
            text: e.doc.text().clone(),
            tree: None,
            status: e.doc.status(),
        })
    }

    /// The text and version of a document, without touching its tree (no reparse).
    pub fn text(&self, uri: &str) -> Option<(i32, Rope)> {
        self.docs.get(uri).map(|e| (e.doc.version(), e.doc.text().clone()))
    }

    /// The texts of the open documents in `language` other than `except`, at most `max` of them,
    /// most recently used first. Rope clones are O(1); nothing is parsed.
    pub fn texts_in(&self, language: Language, except: &str, max: usize) -> Vec<(String, Rope)> {
        let mut found: Vec<(u64, String, Rope)> = self
            .docs
            .iter()
            .filter(|e| e.key() != except && e.doc.language() == Some(language))
            .map(|e| (e.last_used, e.key().clone(), e.doc.text().clone()))
            .collect();
        found.sort_unstable_by_key(|f| std::cmp::Reverse(f.0));
        found.into_iter().take(max).map(|(_, uri, text)| (uri, text)).collect()
    }

    pub fn info(&self, uri: &str) -> Option<DocumentInfo> {
        self.with_parsed(uri, |doc| DocumentInfo {
            version: doc.version(),
            language_id: doc.language_id().to_owned(),
            text: doc.text().to_string(),
            parsed: doc.tree().is_some(),
            syntax_errors: doc.syntax_errors(),
            status: doc.status().to_string(),
        })
    }

    /// How many documents hold a syntax tree in memory (for tests and the memory benchmark).
    pub fn trees_held(&self) -> usize {
        self.docs.iter().filter(|e| e.doc.holds_tree()).count()
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::DEFAULT_MAX_PARSE_BYTES;

    #[test]
    fn trees_beyond_the_budget_are_evicted_least_recently_used_first() {
        let store = Store::new();
        store.set_tree_budget(25);
        for name in ["a", "b", "c"] {
            store.open(name, "rust", 1, "fn f() { let x = 1; }", DEFAULT_MAX_PARSE_BYTES); // 21 bytes
        }
        assert_eq!(store.trees_held(), 0, "parsing is lazy");
        store.snapshot("a");
        store.snapshot("b");
        assert_eq!(store.trees_held(), 1, "only the latest fits");
        let b = store.snapshot("b").expect("open");
        assert!(b.tree.is_some());
        // An evicted tree comes back on demand, parsed from scratch.
        let a = store.snapshot("a").expect("open");
        assert!(a.tree.is_some_and(|t| !t.root_node().has_error()));
        store.set_tree_budget(1000);
        store.snapshot("c");
        assert_eq!(store.trees_held(), 2);
    }

    #[test]
    fn uri_paths_are_local_and_decoded() {
        let cases = [
            ("file:///a/b%20c.rs", Some("/a/b c.rs")),
            ("file://localhost/a/b.rs", Some("/a/b.rs")),
            ("file:///a/b.rs#L3", Some("/a/b.rs")),
            ("file:///a/%23x.rs", Some("/a/#x.rs")),
            ("file://server/share/x.rs", None),
            ("file://relative.rs", None),
            ("untitled:Untitled-1", None),
        ];
        for (uri, want) in cases {
            assert_eq!(uri_path(uri).as_deref(), want, "{uri}");
        }
    }
}
