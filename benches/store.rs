//! Benchmarks of the document store's hot paths: a keystroke (edit plus incremental reparse) on a
//! 20k-line file, and position conversion in each encoding. Results go in docs/BENCHMARKS.md.

mod fixtures;

use std::cell::Cell;

use divan::{Bencher, black_box, counter::ItemsCount};
use quill::{
    document::{Change, DEFAULT_MAX_PARSE_BYTES, Document},
    position::{self, PositionEncoding, TextPos},
    syntax::Language,
};
use ropey::Rope;

fn main() {
    divan::main();
}

const LINES: usize = 20_000;

/// Types one character, or deletes it again on odd versions, so the document keeps its size.
fn keystroke(doc: &mut Document, version: &Cell<i32>, at: TextPos) {
    let v = version.get() + 1;
    version.set(v);
    let change = if v % 2 == 0 {
        Change { range: Some((at, at)), text: "x".into() }
    } else {
        Change { range: Some((at, TextPos::new(at.line, at.col + 1))), text: String::new() }
    };
    doc.apply_changes(v, &[change], PositionEncoding::Utf16).expect("edit applies");
}

/// A point inside a function body near the middle of the file, where typing a letter is ordinary.
fn middle(text: &str) -> TextPos {
    let line = text.lines().enumerate().skip(LINES / 2).find(|(_, l)| l.contains("let prefix")).map(|(i, _)| i);
    TextPos::new(line.expect("fixture has bodies") as u32, 8)
}

/// What `didChange` costs: one character into a 20k-line file (rope edit plus `Tree::edit`; the
/// reparse is deferred to the next reader).
#[divan::bench(sample_count = 500)]
fn keystroke_20k_lines(bencher: Bencher) {
    let text = fixtures::rust_file(LINES);
    let at = middle(&text);
    let mut doc = Document::new(&text, 1, "rust", Some(Language::Rust), DEFAULT_MAX_PARSE_BYTES);
    doc.ensure_parsed();
    let version = Cell::new(1);
    bencher.bench_local(|| keystroke(&mut doc, &version, at));
}

/// One character plus the incremental reparse. `flat`: 5,000 top-level items (the worst shape:
/// tree-sitter's reparse walks every top-level sibling); `in_mods`: the same items, 50 to a `mod`.
#[divan::bench(args = ["flat", "in_mods"], sample_count = 100)]
fn keystroke_reparse_20k_lines(bencher: Bencher, shape: &str) {
    let text = if shape == "flat" { fixtures::rust_file(LINES) } else { fixtures::rust_file_in_mods(LINES, 50) };
    let at = middle(&text);
    let mut doc = Document::new(&text, 1, "rust", Some(Language::Rust), DEFAULT_MAX_PARSE_BYTES);
    doc.ensure_parsed();
    let version = Cell::new(1);
    bencher.bench_local(|| {
        keystroke(&mut doc, &version, at);
        doc.ensure_parsed();
    });
}

/// A keystroke in a document with no grammar: the rope edit alone, as a baseline.
#[divan::bench(sample_count = 500)]
fn keystroke_text_only_20k_lines(bencher: Bencher) {
    let text = fixtures::rust_file(LINES);
    let at = middle(&text);
    let mut doc = Document::new(&text, 1, "plaintext", None, DEFAULT_MAX_PARSE_BYTES);
    let version = Cell::new(1);
    bencher.bench_local(|| keystroke(&mut doc, &version, at));
}

/// Full parse of the same file, for the ratio against the incremental path.
#[divan::bench(sample_count = 20)]
fn full_parse_20k_lines(bencher: Bencher) {
    let text = fixtures::rust_file(LINES);
    bencher.bench(|| {
        let mut doc = Document::new(black_box(&text), 1, "rust", Some(Language::Rust), DEFAULT_MAX_PARSE_BYTES);
        doc.ensure_parsed();
        doc
    });
}

const ENCODINGS: [PositionEncoding; 3] = [PositionEncoding::Utf8, PositionEncoding::Utf16, PositionEncoding::Utf32];

fn positions(rope: &Rope) -> Vec<TextPos> {
    // A fixed spread of lines, each at a column past its multi-byte characters.
    (0..1000u32).map(|i| TextPos::new((i * 7919) % rope.len_lines() as u32, 18)).collect()
}

/// Position → offset, 1000 conversions per iteration.
#[divan::bench(args = ENCODINGS, sample_count = 100)]
fn position_to_offset(bencher: Bencher, enc: PositionEncoding) {
    let rope = Rope::from_str(&fixtures::rust_file(LINES));
    let pos = positions(&rope);
    bencher.counter(ItemsCount::new(pos.len())).bench_local(|| {
        for &p in &pos {
            black_box(position::to_char(&rope, p, enc));
        }
    });
}

/// Offset → position, 1000 conversions per iteration.
#[divan::bench(args = ENCODINGS, sample_count = 100)]
fn offset_to_position(bencher: Bencher, enc: PositionEncoding) {
    let rope = Rope::from_str(&fixtures::rust_file(LINES));
    let offsets: Vec<usize> =
        positions(&rope).into_iter().filter_map(|p| position::to_char(&rope, p, PositionEncoding::Utf32)).collect();
    bencher.counter(ItemsCount::new(offsets.len())).bench_local(|| {
        for &o in &offsets {
            black_box(position::from_char(&rope, o, enc));
        }
    });
}
