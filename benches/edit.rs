//! Benchmarks of the edit diff: `line_edits` on a 5k-line selection with about 5% of its lines
//! changed, and with every line re-indented (the worst case: nothing in common).

mod fixtures;

use divan::{Bencher, black_box};
use quill::edit::line_edits;

fn main() {
    divan::main();
}

const LINES: usize = 5_000;

/// Every 20th line edited in place: the shape of a typical rename or small refactor.
fn five_percent(original: &str) -> String {
    original
        .lines()
        .enumerate()
        .map(|(i, l)| if i % 20 == 7 { format!("{l} // changed\n") } else { format!("{l}\n") })
        .collect()
}

fn reindented(original: &str) -> String {
    original.lines().map(|l| if l.is_empty() { "\n".to_owned() } else { format!("    {l}\n") }).collect()
}

#[divan::bench(args = ["5%", "reindent"], sample_count = 100)]
fn line_edits_5k_lines(bencher: Bencher, shape: &str) {
    let original = fixtures::rust_file(LINES);
    let replacement = if shape == "5%" { five_percent(&original) } else { reindented(&original) };
    bencher.bench(|| line_edits(black_box(&original), black_box(&replacement)));
}
