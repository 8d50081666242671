//! `quill chat`: one question, the answer streamed to stdout. (Skeleton: filled in by issue 5.)

use std::{io::Write, process::ExitCode};

/// `quill chat "question" [--file PATH[:L1-L2]]... [--provider NAME]`.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// The question; read from stdin when absent.
    pub question: Option<String>,
}

pub fn run(_args: ChatArgs) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "quill chat: not implemented yet");
    ExitCode::FAILURE
}
