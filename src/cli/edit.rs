//! `quill edit`: rewrite lines of a file, print a unified diff. (Skeleton: filled in by issue 5.)

use std::{io::Write, process::ExitCode};

/// `quill edit PATH:L1-L2 "instruction" [--apply]`.
#[derive(Debug, clap::Args)]
pub struct EditArgs {
    /// `PATH:L1-L2`, 1-based and inclusive.
    pub location: String,
    /// What to do with those lines.
    pub instruction: String,
}

pub fn run(_args: EditArgs) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "quill edit: not implemented yet");
    ExitCode::FAILURE
}
