//! Edits: the pure pieces behind "Quill: Edit selection…", Document, Generate tests, Fix and
//! Explain. `prompt` builds the chat request, `output` turns the answer into a replacement (or
//! refuses it), and `diff` reduces the replacement to the changed line runs the editor applies.
//! No I/O here: the LSP and CLI layers stream, check document versions and apply.

pub mod diff;
pub mod output;
pub mod prompt;

pub use diff::{LineEdit, apply, line_edits, unified};
pub use output::{Cleaned, Refusal, Source, clean};
pub use prompt::{EditDiagnostic, EditInput, Intent, Severity, edit_prompt};
