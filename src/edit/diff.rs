//! Line diffs between a selection and its replacement: the minimal edits to send to an editor,
//! and a unified diff for the CLI and for patch tools.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::Range;

use similar::algorithms::Capture;
use similar::{Algorithm, DiffOp, DiffTag};

/// One run of changed lines: replace `old` (a byte range of the original) by `new_text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineEdit {
    pub old: Range<usize>,
    pub new_text: String,
}

/// The runs of lines that differ between `original` and `replacement`, in order and
/// non-overlapping. Unchanged lines are never rewritten, so the editor keeps the user's cursor,
/// marks and folds there. Applying the edits to `original` (see [`apply`]) gives `replacement`
/// byte for byte.
///
/// Lines end at `\n`, `\r\n` or a lone `\r`, and a line's ending is part of it: a line that
/// only changes its ending (or gains one at the end of the text) counts as changed.
pub fn line_edits(original: &str, replacement: &str) -> Vec<LineEdit> {
    let old = split_lines(original, true);
    let new = split_lines(replacement, true);
    let ops = diff_ops(&old, &new);
    // Byte offset where each original line starts, plus the end, so ranges are O(1).
    let mut starts = Vec::with_capacity(old.len() + 1);
    let mut at = 0;
    for line in &old {
        starts.push(at);
        at += line.len();
    }
    starts.push(at);

    ops.iter()
        .map(DiffOp::as_tag_tuple)
        .filter(|(tag, _, _)| *tag != DiffTag::Equal)
        .map(|(_, o, n)| LineEdit { old: starts[o.start]..starts[o.end], new_text: new[n].concat() })
        .collect()
}

/// Applies edits as [`line_edits`] returns them (ordered, non-overlapping) to `original`.
/// Out-of-order or out-of-range edits are skipped rather than panicking.
pub fn apply(original: &str, edits: &[LineEdit]) -> String {
    let mut out = String::with_capacity(original.len());
    let mut at = 0;
    for edit in edits {
        let Range { start, end } = edit.old;
        if start < at || end < start || original.get(at..start).is_none() || original.get(start..end).is_none() {
            continue;
        }
        out.push_str(&original[at..start]);
        out.push_str(&edit.new_text);
        at = end;
    }
    out.push_str(original.get(at..).unwrap_or_default());
    out
}

/// A unified diff of `original` → `replacement` as `git apply` and `patch -p1` read it:
/// `--- a/path` / `+++ b/path` headers, hunks with `context` lines around each change, and
/// `\ No newline at end of file` where a side does not end with `\n`. Empty when the texts are
/// equal. Line numbers count from the start of `original`, so pass whole files. With `context`
/// 0, `git apply` needs `--unidiff-zero` (as for any zero-context diff); `patch` takes it as is.
///
/// Only `\n` ends a line here, unlike [`line_edits`]: patch tools split on `\n` alone, so a
/// CRLF line keeps its `\r` and a lone `\r` is not a line break.
pub fn unified(path: &str, original: &str, replacement: &str, context: usize) -> String {
    let old = split_lines(original, false);
    let new = split_lines(replacement, false);
    let ops = diff_ops(&old, &new);
    if ops.iter().all(|op| op.tag() == DiffTag::Equal) {
        return String::new();
    }
    let path = path.trim_start_matches("./").trim_start_matches('/');
    let mut out = format!("--- a/{path}\n+++ b/{path}\n");
    for hunk in similar::group_diff_ops(ops, context) {
        let (Some(first), Some(last)) = (hunk.first(), hunk.last()) else { continue };
        let o = first.old_range().start..last.old_range().end;
        let n = first.new_range().start..last.new_range().end;
        let _ = writeln!(out, "@@ -{} +{} @@", hunk_range(&o), hunk_range(&n));
        for op in &hunk {
            let (tag, or, nr) = op.as_tag_tuple();
            match tag {
                DiffTag::Equal => push_lines(&mut out, ' ', &old[or]),
                DiffTag::Delete => push_lines(&mut out, '-', &old[or]),
                DiffTag::Insert => push_lines(&mut out, '+', &new[nr]),
                DiffTag::Replace => {
                    push_lines(&mut out, '-', &old[or]);
                    push_lines(&mut out, '+', &new[nr]);
                }
            }
        }
    }
    out
}

/// `start,len` with a 1-based start; an empty range names the line before it (0 at the top), as
/// GNU diff writes it.
fn hunk_range(r: &Range<usize>) -> String {
    let len = r.end - r.start;
    let start = if len == 0 { r.start } else { r.start + 1 };
    format!("{start},{len}")
}

fn push_lines(out: &mut String, sign: char, lines: &[&str]) {
    for line in lines {
        out.push(sign);
        out.push_str(line);
        if !line.ends_with('\n') {
            // Only the last line of a text can lack its `\n`.
            out.push_str("\n\\ No newline at end of file\n");
        }
    }
}

/// Splits after each line break, keeping it, so the pieces concatenate back to `text`. With
/// `cr`, a lone `\r` is a break too (the editor's view, ropey's `cr_lines`); without, only `\n`.
fn split_lines(text: &str, cr: bool) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut lines = Vec::with_capacity(text.len() / 32 + 1);
    let mut start = 0;
    for i in memchr::memchr2_iter(b'\n', b'\r', bytes) {
        let brk = match bytes[i] {
            b'\n' => true,
            _ => cr && bytes.get(i + 1) != Some(&b'\n'),
        };
        if brk {
            lines.push(&text[start..=i]);
            start = i + 1;
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// Diffs two line lists into alternating equal and changed runs (a changed run is one
/// `Delete`, `Insert` or `Replace`), with a longest common subsequence of lines kept equal.
///
/// Lines are interned to integers, and lines that occur on one side only are set aside before
/// Myers runs: they can never be matched, so the result is the same, but the diff's cost grows
/// with the number of differences, and a re-indented selection differs on every line. This
/// calls Myers directly rather than `similar::capture_diff_slices`, whose compaction pass
/// (similar 2.7) can report ranges that do not line up (old `[0, 1, 2, 3]`, new
/// `[1, 2, 1, 2, 3]`).
fn diff_ops<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<DiffOp> {
    let mut ids: HashMap<&'a str, u32> = HashMap::with_capacity(old.len() + new.len());
    let mut intern = |lines: &[&'a str]| -> Vec<u32> {
        lines
            .iter()
            .map(|l| {
                let next = ids.len() as u32;
                *ids.entry(l).or_insert(next)
            })
            .collect()
    };
    let old_ids = intern(old);
    let new_ids = intern(new);
    let (mut in_old, mut in_new) = (vec![false; ids.len()], vec![false; ids.len()]);
    old_ids.iter().for_each(|&id| in_old[id as usize] = true);
    new_ids.iter().for_each(|&id| in_new[id as usize] = true);
    let old_keep: Vec<usize> = (0..old_ids.len()).filter(|&i| in_new[old_ids[i] as usize]).collect();
    let new_keep: Vec<usize> = (0..new_ids.len()).filter(|&j| in_old[new_ids[j] as usize]).collect();
    let a: Vec<u32> = old_keep.iter().map(|&i| old_ids[i]).collect();
    let b: Vec<u32> = new_keep.iter().map(|&j| new_ids[j]).collect();
    let mut capture = Capture::new();
    // `Capture` cannot fail: its error type is `Infallible`.
    let Ok(()) = similar::algorithms::diff_slices(Algorithm::Myers, &mut capture, &a, &b);

    // Map the matches back to full indices; everything between two matches is one change.
    let mut ops = Vec::new();
    let (mut oi, mut ni) = (0, 0);
    for op in capture.into_ops() {
        let DiffOp::Equal { old_index, new_index, len } = op else { continue };
        for k in 0..len {
            let (i, j) = (old_keep[old_index + k], new_keep[new_index + k]);
            if i > oi || j > ni {
                ops.push(change(oi..i, ni..j));
            }
            match ops.last_mut() {
                Some(DiffOp::Equal { old_index, new_index, len })
                    if *old_index + *len == i && *new_index + *len == j =>
                {
                    *len += 1
                }
                _ => ops.push(DiffOp::Equal { old_index: i, new_index: j, len: 1 }),
            }
            (oi, ni) = (i + 1, j + 1);
        }
    }
    if oi < old.len() || ni < new.len() {
        ops.push(change(oi..old.len(), ni..new.len()));
    }
    ops
}

fn change(o: Range<usize>, n: Range<usize>) -> DiffOp {
    match (o.is_empty(), n.is_empty()) {
        (false, true) => DiffOp::Delete { old_index: o.start, old_len: o.len(), new_index: n.start },
        (true, false) => DiffOp::Insert { old_index: o.start, new_index: n.start, new_len: n.len() },
        _ => DiffOp::Replace { old_index: o.start, old_len: o.len(), new_index: n.start, new_len: n.len() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_every_kind_of_break() {
        assert_eq!(split_lines("a\r\nb\rc\nd", true), ["a\r\n", "b\r", "c\n", "d"]);
        assert_eq!(split_lines("a\r\nb\rc\nd", false), ["a\r\n", "b\rc\n", "d"]);
        assert!(split_lines("", true).is_empty());
    }

    #[test]
    fn a_replaced_line_is_one_edit() {
        let edits = line_edits("a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(edits, [LineEdit { old: 2..4, new_text: "B\n".into() }]);
    }
}
