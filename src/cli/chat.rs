//! `quill chat`: one question, the answer streamed to stdout as it arrives.
//!
//! stdout gets the answer only (flushed per delta, ending with a newline), so it pipes cleanly;
//! warnings (a `--file` that cannot be used) and errors go to stderr. Nothing is saved: the CLI
//! keeps no chat history.

use std::{
    io::{self, IsTerminal, Read, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use super::provider_for;
use crate::{
    chat::{
        ContextStatus, Docs, Mention,
        run::{self, Cancel, Ending, Settings},
    },
    config::Feature,
    provider::process_env,
    store::uri_path,
    syntax::Language,
};

/// `quill chat "question" [--file PATH[:L1-L2]]... [--provider NAME] [--workspace DIR]`.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// The question; read from stdin when absent.
    pub question: Option<String>,
    /// A file to give as context, whole or as `PATH:L1-L2` (1-based, inclusive). Repeatable.
    #[arg(long = "file", value_name = "PATH[:L1-L2]")]
    pub files: Vec<String>,
    /// Use this `[providers]` entry instead of `[chat]`'s.
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// Workspace whose `quill.toml` to read (default: the current directory).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

/// Files on disk.
struct FsDocs;

impl Docs for FsDocs {
    fn text(&self, uri: &str) -> Option<(String, ropey::Rope)> {
        self.resolve(uri).ok()
    }

    fn resolve(&self, uri: &str) -> Result<(String, ropey::Rope), String> {
        let path = uri_path(uri).ok_or_else(|| "not a file".to_owned())?;
        run::read_context_file(Path::new(&path)).map(|rope| (String::new(), rope))
    }

    fn open_docs(&self) -> Vec<(String, Option<Language>, ropey::Rope)> {
        Vec::new()
    }
}

/// `PATH` or `PATH:L1-L2` (1-based, inclusive), split from the right so paths may hold colons.
/// A suffix that is not a line range is part of the path. `Err` for a range that makes no sense.
fn parse_file(arg: &str) -> Result<(PathBuf, Option<(usize, usize)>), String> {
    if let Some((path, range)) = arg.rsplit_once(':')
        && !path.is_empty()
        && let Some((a, b)) = range.split_once('-')
        && let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>())
    {
        if a == 0 || b < a {
            return Err(format!("bad line range `{range}`: use L1-L2 with 1 <= L1 <= L2"));
        }
        return Ok((PathBuf::from(path), Some((a - 1, b - 1))));
    }
    Ok((PathBuf::from(arg), None))
}

fn file_uri(path: &Path) -> String {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| match std::env::current_dir() {
        Ok(cwd) => cwd.join(path),
        Err(_) => path.to_path_buf(),
    });
    // Percent-encoded, so `%` and non-ASCII names decode back to the same path (`uri_path`).
    let mut uri = String::from("file://");
    for &b in abs.to_string_lossy().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri
}

fn warn(msg: &str) {
    let _ = writeln!(io::stderr(), "quill chat: warning: {msg}");
}

pub fn run(args: ChatArgs) -> ExitCode {
    let fail = |msg: &str| {
        let _ = writeln!(io::stderr(), "quill chat: {msg}");
        ExitCode::FAILURE
    };
    let question = match args.question {
        Some(q) => q,
        None => {
            let mut stdin = io::stdin();
            if stdin.is_terminal() {
                let _ = writeln!(io::stderr(), "quill chat: reading the question from stdin (end with Ctrl-D)");
            }
            let mut q = String::new();
            if let Err(e) = stdin.read_to_string(&mut q) {
                return fail(&format!("cannot read the question from stdin: {e}"));
            }
            q
        }
    };
    let question = question.trim();
    if question.is_empty() {
        return fail("the question is empty");
    }

    // Bad `--file` values are warned about and left out; the question still goes.
    let mut mentions = Vec::new();
    let mut shown: Vec<(String, String)> = Vec::new();
    for arg in &args.files {
        match parse_file(arg) {
            Ok((path, range)) => {
                let uri = file_uri(&path);
                shown.push((uri.clone(), arg.clone()));
                mentions.push(match range {
                    None => Mention::File { uri },
                    Some((start_line, end_line)) => Mention::Range { uri, start_line, end_line },
                });
            }
            Err(e) => warn(&format!("{arg}: {e}; left out")),
        }
    }

    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}")),
    };
    let root = args.workspace.or_else(|| std::env::current_dir().ok());
    let (provider, config) =
        match runtime.block_on(provider_for(Feature::Chat, root.as_deref(), args.provider.as_deref(), process_env())) {
            Ok(found) => found,
            Err(e) => return fail(&e),
        };
    let settings = Settings::from_config(&config.chat);
    let prepared = run::prepare(&[], question, &mentions, &FsDocs, &settings, crate::chat::history::new_id());
    for item in &prepared.context_used {
        let name = shown.iter().find(|(u, _)| *u == item.uri).map_or(item.uri.as_str(), |(_, a)| a.as_str());
        match &item.status {
            ContextStatus::Included => {}
            ContextStatus::Truncated { kept_lines } => {
                warn(&format!("{name}: only the first {kept_lines} lines fit the context budget"));
            }
            ContextStatus::Dropped { reason } => warn(&format!("{name}: {reason}; left out")),
        }
    }

    let cancel = Cancel::new();
    let mut out = io::stdout().lock();
    let mut write_error: Option<io::Error> = None;
    let mut last = '\n';
    let outcome = runtime.block_on(run::run(&provider, prepared, None, &cancel, |t| {
        if write_error.is_some() {
            return;
        }
        match out.write_all(t.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => last = t.chars().last().unwrap_or(last),
            Err(e) => {
                // Nobody reads any more (a closed pipe): stop the provider too.
                write_error = Some(e);
                cancel.cancel();
            }
        }
    }));
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return fail(&e.to_string()),
    };
    if let Some(e) = write_error {
        return fail(&format!("cannot write the answer: {e}"));
    }
    // End on a newline, also after a partial answer, so the shell prompt starts on its own line.
    if !outcome.reply.is_empty() && last != '\n' && out.write_all(b"\n").and_then(|()| out.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    match outcome.ending {
        Ending::Finished(_) => ExitCode::SUCCESS,
        Ending::Cancelled => fail("cancelled"),
        Ending::Failed(e) => fail(&e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_arguments_split_ranges_from_the_right() {
        assert_eq!(parse_file("a.rs"), Ok((PathBuf::from("a.rs"), None)));
        assert_eq!(parse_file("a.rs:3-7"), Ok((PathBuf::from("a.rs"), Some((2, 6)))));
        assert_eq!(parse_file("c:/x:y.rs:1-1"), Ok((PathBuf::from("c:/x:y.rs"), Some((0, 0)))));
        assert_eq!(parse_file("odd:name"), Ok((PathBuf::from("odd:name"), None)));
        assert!(parse_file("a.rs:0-3").is_err());
        assert!(parse_file("a.rs:5-2").is_err());
    }

    #[test]
    fn file_uris_decode_back_to_the_path() {
        for name in ["a%41.rs", "é ü.rs", "100%+"] {
            let path = std::env::temp_dir().join(name);
            assert_eq!(uri_path(&file_uri(&path)), Some(path.display().to_string()), "{name}");
        }
    }
}
