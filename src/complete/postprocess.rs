//! From the model's raw text to what is shown: early cut while streaming, truncation at the end
//! of the block, overlap with the text after the cursor, and the drop rules. Pure.
// TEMP STUB
use super::{Mode, Snapshot};
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub text: String,
    pub replace_end: usize,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    Empty,
    Whitespace,
    SameAsSuffix,
    BreaksParse,
}
pub struct StreamCut {
    mode: Mode,
}
impl StreamCut {
    pub fn new(_s: &Snapshot, _c: usize, mode: Mode) -> StreamCut {
        StreamCut { mode }
    }
    pub fn feed(&mut self, so_far: &str) -> Option<usize> {
        if self.mode == Mode::SingleLine {
            let t = so_far.trim_start_matches(['\n']);
            let off = so_far.len() - t.len();
            t.find('\n').map(|i| i + off)
        } else {
            None
        }
    }
}
pub fn finish(_s: &Snapshot, cursor: usize, mode: Mode, raw: &str) -> Result<Suggestion, Dropped> {
    let t = if mode == Mode::SingleLine { raw.lines().next().unwrap_or("") } else { raw };
    let t = t.trim_end();
    if t.is_empty() {
        return Err(Dropped::Empty);
    }
    Ok(Suggestion { text: t.to_owned(), replace_end: cursor })
}
