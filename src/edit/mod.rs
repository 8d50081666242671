//! Edits: the pure pieces behind "Quill: Edit selection…", Document, Generate tests, Fix and
//! Explain. `prompt` builds the chat request, `output` turns the answer into a replacement (or
//! refuses it), and `diff` reduces the replacement to the changed line runs the editor applies.
//! `run` is the engine both front ends share (selection, request, streaming, line edits) and
//! `testfile` says where generated tests go. No LSP types here: the LSP and CLI layers check
//! document versions and apply.

pub mod diff;
pub mod output;
pub mod prompt;
pub mod run;
pub mod testfile;

pub use diff::{LineEdit, apply, line_edits, unified};
pub use output::{Cleaned, Refusal, Source, clean};
pub use prompt::{EditDiagnostic, EditInput, Intent, Severity, edit_prompt};
