//! Property test of document sync: random LSP incremental changes, in every position encoding,
//! against a naive `String` model. After every notification the store's text and version must match
//! the model. A second property edits valid code and undoes the edits: the incrementally maintained
//! tree must then equal a fresh parse.
//!
//! `QUILL_PROP_CASES` sets the number of cases (default 400; each case is dozens of edits in each
//! of the three encodings). The test prints the edit count it checked.

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::{
    prelude::*,
    test_runner::{Config, TestCaseError, TestRunner},
};
use quill::{document::DEFAULT_MAX_PARSE_BYTES, lsp::convert, position::PositionEncoding, store::Store};
use serde_json::json;
use tower_lsp_server::ls_types::TextDocumentContentChangeEvent;

/// Fragments chosen to hit every hard case: multi-byte, surrogate pairs, combining marks, CRLF,
/// lone CR, and brackets so the Rust grammar has structure to track.
const PIECES: &[&str] = &[
    "a",
    "b",
    "z",
    " ",
    "  ",
    "\n",
    "\r\n",
    "\r",
    "é",
    "😀",
    "e\u{301}",
    "中",
    "\t",
    "{",
    "}",
    "(",
    ")",
    ";",
    "fn f",
    "let x = 1",
    "\"",
    "//",
    "🇫🇷",
];

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(PIECES), 0..max).prop_map(|v| v.concat())
}

/// A change whose positions are random numbers: some valid, some past the end (clamped), some
/// inside a character (the batch must then be refused).
#[derive(Debug, Clone)]
struct RawChange {
    start: (u32, u32),
    end: (u32, u32),
    text: String,
    full: bool,
}

fn raw_change() -> impl Strategy<Value = RawChange> {
    (0u32..12, 0u32..24, 0u32..12, 0u32..24, text(5), prop::bool::weighted(0.02))
        .prop_map(|(sl, sc, el, ec, text, full)| RawChange { start: (sl, sc), end: (el, ec), text, full })
}

fn case() -> impl Strategy<Value = (String, Vec<Vec<RawChange>>)> {
    (text(60), prop::collection::vec(prop::collection::vec(raw_change(), 1..4), 1..40))
}

/// The model's lines: (content start, content end, next line start) in bytes.
fn lines(s: &str) -> Vec<(usize, usize, usize)> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\r' if b.get(i + 1) == Some(&b'\n') => {
                out.push((start, i, i + 2));
                i += 2;
                start = i;
            }
            b'\r' | b'\n' => {
                out.push((start, i, i + 1));
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    out.push((start, b.len(), b.len()));
    out
}

/// The spec's rules, written independently of `quill::position`.
fn model_offset(s: &str, (line, col): (u32, u32), enc: PositionEncoding) -> Option<usize> {
    let ls = lines(s);
    let Some(&(start, end, _)) = ls.get(line as usize) else { return Some(s.len()) };
    let mut units = 0usize;
    for (i, c) in s[start..end].char_indices() {
        if units == col as usize {
            return Some(start + i);
        }
        units += match enc {
            PositionEncoding::Utf8 => c.len_utf8(),
            PositionEncoding::Utf16 => c.len_utf16(),
            PositionEncoding::Utf32 => 1,
        };
        if units > col as usize {
            return None; // inside this character
        }
    }
    Some(end)
}

fn model_apply(s: &str, batch: &[RawChange], enc: PositionEncoding) -> Option<String> {
    let mut s = s.to_owned();
    for c in batch {
        if c.full {
            s = c.text.clone();
            continue;
        }
        let a = model_offset(&s, c.start, enc)?;
        let b = model_offset(&s, c.end, enc)?;
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        s.replace_range(a..b, &c.text);
    }
    Some(s)
}

static EDITS: AtomicUsize = AtomicUsize::new(0);
static REFUSED: AtomicUsize = AtomicUsize::new(0);
static UNDO_EDITS: AtomicUsize = AtomicUsize::new(0);

fn run_case(initial: &str, batches: &[Vec<RawChange>]) -> Result<(), TestCaseError> {
    for enc in [PositionEncoding::Utf8, PositionEncoding::Utf16, PositionEncoding::Utf32] {
        let store = Store::new();
        let uri = "file:///prop.rs";
        store.open(uri, "rust", 1, initial, DEFAULT_MAX_PARSE_BYTES);
        let mut model = initial.to_owned();
        let mut version = 1;
        for batch in batches {
            let events: Vec<TextDocumentContentChangeEvent> = batch
                .iter()
                .map(|c| {
                    let v = if c.full {
                        json!({"text": c.text})
                    } else {
                        json!({"range": {"start": {"line": c.start.0, "character": c.start.1}, "end": {"line": c.end.0, "character": c.end.1}}, "text": c.text})
                    };
                    serde_json::from_value(v).expect("valid change event")
                })
                .collect();
            let changes: Vec<_> = events.into_iter().map(convert::change).collect();
            let expected = model_apply(&model, batch, enc);
            let result = store.change(uri, version + 1, &changes, enc);
            EDITS.fetch_add(batch.len(), Ordering::Relaxed);
            match expected {
                Some(new) => {
                    prop_assert!(result.is_ok(), "{enc:?}: store refused a valid batch: {result:?}");
                    model = new;
                    version += 1;
                }
                None => {
                    REFUSED.fetch_add(1, Ordering::Relaxed);
                    prop_assert!(result.is_err(), "{enc:?}: store accepted a batch with a position inside a character");
                }
            }
            let snap = store.snapshot(uri).expect("open");
            prop_assert_eq!(snap.text.to_string(), model.clone(), "{:?} diverged", enc);
            prop_assert_eq!(snap.version, version);
            // Error recovery may legitimately differ between an incremental and a fresh parse of
            // broken code (tree-sitter's own tests only compare trees after undoing edits, which
            // `edits_then_undo_restore_the_tree` does); the span of the tree must always agree.
            let span = |t: &tree_sitter::Tree| t.root_node().byte_range();
            let fresh = Store::new();
            fresh.open(uri, "rust", 1, &model, DEFAULT_MAX_PARSE_BYTES);
            let fresh_span = fresh.snapshot(uri).and_then(|s| s.tree).map(|t| span(&t));
            prop_assert_eq!(
                snap.tree.as_ref().map(span),
                fresh_span,
                "{:?}: tree span differs from a fresh parse",
                enc
            );
        }
    }
    Ok(())
}

#[test]
fn store_matches_a_naive_model() {
    let cases = std::env::var("QUILL_PROP_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let result = runner.run(&case(), |(initial, batches)| run_case(&initial, &batches));
    let edits = EDITS.load(Ordering::Relaxed);
    let refused = REFUSED.load(Ordering::Relaxed);
    eprintln!("store_props: {cases} cases, {edits} edits applied and checked, {refused} batches correctly refused");
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Byte offset to (line, column) in `enc`, the model's inverse of `model_offset`.
fn model_position(s: &str, byte: usize, enc: PositionEncoding) -> (u32, u32) {
    let ls = lines(s);
    let line = ls.iter().rposition(|&(start, _, _)| start <= byte).unwrap_or(0);
    let start = ls[line].0;
    let col: usize = s[start..byte]
        .chars()
        .map(|c| match enc {
            PositionEncoding::Utf8 => c.len_utf8(),
            PositionEncoding::Utf16 => c.len_utf16(),
            PositionEncoding::Utf32 => 1,
        })
        .sum();
    (line as u32, col as u32)
}

fn splits_crlf(s: &str, i: usize) -> bool {
    s[..i].ends_with('\r') && s[i..].starts_with('\n')
}

const VALID_RUST: &str = "/// Résumé 😀\r\nstruct Point { x: i32, y: i32 }\n\nimpl Point {\r\n    fn norm(&self) -> i32 {\n        let s = \"é中🇫🇷\";\n        self.x * self.x + self.y * self.y\n    }\n}\n\nfn main() {\n    let p = Point { x: 1, y: 2 };\n    println!(\"{}\", p.norm());\n}\n";

/// Random edits to valid code at valid positions, then the inverse edits in reverse order: the text
/// and the incrementally maintained tree must come back to exactly the original.
fn undo_case(edits: &[(usize, usize, String)]) -> Result<(), TestCaseError> {
    for enc in [PositionEncoding::Utf8, PositionEncoding::Utf16, PositionEncoding::Utf32] {
        let store = Store::new();
        let uri = "file:///undo.rs";
        store.open(uri, "rust", 1, VALID_RUST, DEFAULT_MAX_PARSE_BYTES);
        let original_tree = store.snapshot(uri).and_then(|s| s.tree).map(|t| t.root_node().to_sexp());
        prop_assert!(original_tree.as_deref().is_some_and(|t| !t.contains("ERROR")), "fixture must be valid Rust");
        let mut model = VALID_RUST.to_owned();
        let mut version = 1;
        let mut undo: Vec<(usize, usize, String)> = Vec::new();
        let mut send = |model: &mut String, a: usize, b: usize, text: &str| -> Result<(), TestCaseError> {
            let (sl, sc) = model_position(model, a, enc);
            let (el, ec) = model_position(model, b, enc);
            let event: TextDocumentContentChangeEvent = serde_json::from_value(
                json!({"range": {"start": {"line": sl, "character": sc}, "end": {"line": el, "character": ec}}, "text": text}),
            )
            .expect("event");
            version += 1;
            let result = store.change(uri, version, &[convert::change(event)], enc);
            prop_assert!(result.is_ok(), "{:?}", result);
            model.replace_range(a..b, text);
            UNDO_EDITS.fetch_add(1, Ordering::Relaxed);
            Ok(())
        };
        for (start_pick, len, text) in edits {
            let boundaries: Vec<usize> = model.char_indices().map(|(i, _)| i).chain([model.len()]).collect();
            let a = boundaries[start_pick % boundaries.len()];
            let b = boundaries.iter().copied().filter(|&x| x >= a).nth(*len).unwrap_or(model.len());
            // LSP positions cannot point between the halves of a CRLF pair, so skip edits whose
            // ends (before, or after the edit, which the undo must address) would split one.
            let mut after = model.clone();
            after.replace_range(a..b, text);
            if splits_crlf(&model, a)
                || splits_crlf(&model, b)
                || splits_crlf(&after, a)
                || splits_crlf(&after, a + text.len())
            {
                continue;
            }
            let old = model[a..b].to_owned();
            send(&mut model, a, b, text)?;
            undo.push((a, a + text.len(), old));
        }
        while let Some((a, b, old)) = undo.pop() {
            send(&mut model, a, b, &old)?;
        }
        let snap = store.snapshot(uri).expect("open");
        prop_assert_eq!(snap.text.to_string(), VALID_RUST);
        prop_assert_eq!(snap.tree.map(|t| t.root_node().to_sexp()), original_tree, "{:?}", enc);
    }
    Ok(())
}

#[test]
fn edits_then_undo_restore_the_tree() {
    let cases = std::env::var("QUILL_PROP_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let edit = (0usize..10_000, 0usize..6, text(4));
    let result = runner.run(&prop::collection::vec(edit, 1..12), |edits| undo_case(&edits));
    eprintln!("store_props (undo): {cases} cases, {} edits and undos checked", UNDO_EDITS.load(Ordering::Relaxed));
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn model_agrees_with_spec_examples() {
    // Sanity checks of the model itself, so a wrong model cannot make the property vacuous.
    assert_eq!(model_offset("ab\r\ncd", (0, 9), PositionEncoding::Utf16), Some(2));
    assert_eq!(model_offset("ab\rcd", (1, 1), PositionEncoding::Utf16), Some(4));
    assert_eq!(model_offset("😀x", (0, 1), PositionEncoding::Utf16), None);
    assert_eq!(model_offset("😀x", (0, 2), PositionEncoding::Utf16), Some(4));
    assert_eq!(model_offset("😀x", (0, 1), PositionEncoding::Utf32), Some(4));
    assert_eq!(model_offset("a\n", (5, 0), PositionEncoding::Utf8), Some(2));
    assert_eq!(model_position("ab\r\né😀x", 10, PositionEncoding::Utf16), (1, 3));
    assert_eq!(model_position("ab\rc", 3, PositionEncoding::Utf8), (1, 0));
}
