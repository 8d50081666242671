//! The `quill` binary: parses the command line and hands off to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = quill::cli::Cli::parse();
    quill::cli::run(cli)
}
