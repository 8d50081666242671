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

fn doc() -> Document {
    Document::new(&fixtures::rust_file(LINES), 1, "rust", Some(Language::Rust), DEFAULT_MAX_PARSE_BYTES)
}

/// One typed character in the middle of a 20k-line file, then the incremental reparse. Iterations
/// alternate between typing and deleting the character so the document stays the same size.
#[divan::bench(sample_count = 200)]
fn keystroke_reparse_20k_lines(bencher: Bencher) {
    let mut doc = doc();
    assert!(doc.tree().is_some());
    let version = Cell::new(1);
    // Inside a function body, at a point where typing a letter is ordinary.
    let at = TextPos::new(10_006, 8);
    bencher.bench_local(|| {
        let v = version.get() + 1;
        version.set(v);
        let change = if v % 2 == 0 {
            Change { range: Some((at, at)), text: "x".into() }
        } else {
            Change { range: Some((at, TextPos::new(at.line, at.col + 1))), text: String::new() }
        };
        doc.apply_changes(v, &[change], PositionEncoding::Utf16).expect("edit applies");
    });
}

/// A keystroke in a document with no grammar: the cost of the rope edit alone, as a baseline.
#[divan::bench(sample_count = 200)]
fn keystroke_text_only_20k_lines(bencher: Bencher) {
    let mut doc = Document::new(&fixtures::rust_file(LINES), 1, "plaintext", None, DEFAULT_MAX_PARSE_BYTES);
    let version = Cell::new(1);
    let at = TextPos::new(10_006, 8);
    bencher.bench_local(|| {
        let v = version.get() + 1;
        version.set(v);
        let change = if v % 2 == 0 {
            Change { range: Some((at, at)), text: "x".into() }
        } else {
            Change { range: Some((at, TextPos::new(at.line, at.col + 1))), text: String::new() }
        };
        doc.apply_changes(v, &[change], PositionEncoding::Utf16).expect("edit applies");
    });
}

/// Full parse of the same file, for the ratio against the incremental path.
#[divan::bench(sample_count = 20)]
fn full_parse_20k_lines(bencher: Bencher) {
    let text = fixtures::rust_file(LINES);
    bencher.bench(|| Document::new(black_box(&text), 1, "rust", Some(Language::Rust), DEFAULT_MAX_PARSE_BYTES));
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
