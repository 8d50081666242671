//! Whether and how to suggest at a cursor: none, single-line or multi-line. Pure.
// TEMP STUB (replaced by the helper's version)
use super::{Mode, Snapshot};
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    MidWord,
    AfterStatementEnd,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub mode: Option<Mode>,
    pub skip: Option<Skip>,
    pub line_start: bool,
}
pub fn decide(snap: &Snapshot, byte: usize) -> Decision {
    let mw = mid_word(&snap.text, byte);
    Decision {
        mode: if mw { None } else { Some(Mode::SingleLine) },
        skip: mw.then_some(Skip::MidWord),
        line_start: false,
    }
}
pub fn mid_word(text: &ropey::Rope, byte: usize) -> bool {
    text.get_char(text.byte_to_char(byte)).is_some_and(|c| c.is_alphanumeric() || c == '_')
}
