//! Autocomplete: from a cursor in a snapshot to one ghost-text suggestion.
//!
//! The pure stages (`trigger`, `context`, `postprocess`) take a [`Snapshot`] and a byte offset and
//! never await; the scheduler and the engine around them own timing, reuse and cancellation.

pub mod context;
pub mod postprocess;
pub mod trigger;

/// The kind of suggestion a cursor position calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The rest of the current line: the answer is cut at its first line break.
    SingleLine,
    /// A whole block body: the answer is cut where the block ends.
    MultiLine,
}

#[allow(unused_imports)]
pub(crate) use crate::store::Snapshot;
