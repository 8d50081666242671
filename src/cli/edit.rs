//! `quill edit`: rewrite lines of a file from an instruction through the same engine as the
//! editor's `quill.edit`, and print the change as a unified diff. Only the diff goes to stdout,
//! so it pipes into `git apply` or `patch`; errors go to stderr with exit code 1. `--apply`
//! writes the result atomically, and only if the file is still what was read.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use ropey::Rope;

use crate::{
    config::Feature,
    edit::{
        Intent, apply,
        run::{self, Job},
        testfile::{TestTarget, test_target},
        unified,
    },
    provider::process_env,
    syntax::Language,
};

/// Lines of context around each hunk of the printed diff.
const DIFF_CONTEXT: usize = 3;

/// `quill edit PATH:L1-L2 "instruction" [--apply] [--intent …] [--provider NAME] [--workspace DIR]`.
#[derive(Debug, clap::Args)]
pub struct EditArgs {
    /// `PATH:L1-L2` (or `PATH:L`), 1-based and inclusive.
    pub location: String,
    /// What to do with those lines (required for `--intent edit`).
    pub instruction: Option<String>,
    /// Write the change to the file (atomically; refused if the file changed meanwhile).
    #[arg(long)]
    pub apply: bool,
    /// `edit`, `document`, `tests` or `fix`.
    #[arg(long, default_value = "edit")]
    pub intent: String,
    /// Use this `[providers]` entry instead of the `[edit]` routing.
    #[arg(long, value_name = "NAME")]
    pub provider: Option<String>,
    /// Workspace whose `quill.toml` to read, and that diff paths are relative to (default: the
    /// current directory).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
}

pub fn run(args: EditArgs) -> ExitCode {
    match edit(args) {
        Ok(diff) => {
            let mut out = io::stdout().lock();
            match out.write_all(diff.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::from(2),
            }
        }
        Err(msg) => {
            let _ = writeln!(io::stderr(), "quill edit: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// Split `PATH:L1-L2` from the right, so paths may hold colons. 1-based lines.
fn parse_location(s: &str) -> Result<(PathBuf, usize, usize), String> {
    let bad = || format!("expected PATH:L1-L2 (1-based, inclusive line numbers), got `{s}`");
    let (file, lines) = s.rsplit_once(':').ok_or_else(bad)?;
    let (a, b) = lines.split_once('-').unwrap_or((lines, lines));
    let a: usize = a.trim().parse().map_err(|_| bad())?;
    let b: usize = b.trim().parse().map_err(|_| bad())?;
    if file.is_empty() {
        return Err(bad());
    }
    if a == 0 || b == 0 {
        return Err(format!("line numbers start at 1, got `{lines}`"));
    }
    if a > b {
        return Err(format!("the first line ({a}) is after the last ({b})"));
    }
    Ok((PathBuf::from(file), a, b))
}

/// Reads a file as UTF-8 text, refusing binary content.
fn read_text(path: &Path) -> Result<(Vec<u8>, String), String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8(bytes.clone())
        .map_err(|_| format!("{} is not UTF-8 text; refusing to edit it", path.display()))?;
    if text.contains('\0') {
        return Err(format!("{} looks binary (it has NUL bytes); refusing to edit it", path.display()));
    }
    Ok((bytes, text))
}

/// `path` as shown in the diff: relative to `root` when inside it.
fn shown_path(path: &Path, root: Option<&Path>) -> String {
    let abs = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let rel = root
        .and_then(|r| fs::canonicalize(r).ok())
        .and_then(|r| abs.strip_prefix(&r).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf());
    rel.to_string_lossy().into_owned()
}

/// Everything up to the diff (and the write with `--apply`). The diff on success.
fn edit(args: EditArgs) -> Result<String, String> {
    let intent = Intent::parse_edit(&args.intent)?;
    let instruction = args.instruction.unwrap_or_default();
    if intent == Intent::Edit && instruction.trim().is_empty() {
        return Err("an instruction is required (or pass --intent document, tests or fix)".into());
    }
    let (file, first, last) = parse_location(&args.location)?;
    let (bytes, text) = read_text(&file)?;
    let rope = Rope::from_str(&text);
    // Lines as an editor numbers them: a final line break does not start another line.
    let count = rope.len_lines() - usize::from(rope.line(rope.len_lines() - 1).len_chars() == 0);
    if last > count {
        return Err(format!("line {last} is past the end of {} ({count} lines)", file.display()));
    }
    let start = rope.line_to_byte(first - 1);
    let selection = run::whole_lines(&rope, start..rope.line_to_byte(last));
    let root = args.workspace.clone().or_else(|| std::env::current_dir().ok());
    let abs = fs::canonicalize(&file).map_err(|e| format!("cannot resolve {}: {e}", file.display()))?;
    let uri = format!("file://{}", abs.display());
    let language_id = Language::detect("", &uri).map_or("plaintext", |l| l.name()).to_owned();
    let job = Job {
        path: shown_path(&file, root.as_deref()),
        language_id: language_id.clone(),
        text: rope.clone(),
        selection,
        instruction,
        intent,
        diagnostics: Vec::new(),
    };

    // Where generated tests go, and what is there, read BEFORE the model answers, like the
    // source: a test file that appears or changes meanwhile makes `--apply` refuse (the create
    // fails, or the re-read differs) rather than be overwritten or appended to unseen.
    let tests_target = if intent == Intent::Tests {
        let target = match test_target(&abs, &language_id, Path::is_dir) {
            TestTarget::SameFile => abs.clone(),
            TestTarget::File(p) => p,
        };
        let (old_bytes, old) = if target == abs {
            (Some(bytes.clone()), text.clone())
        } else if target.exists() {
            let (b, t) = read_text(&target)?;
            (Some(b), t)
        } else {
            (None, String::new())
        };
        Some((target, old_bytes, old))
    } else {
        None
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let answer = runtime.block_on(async {
        let (provider, config) =
            super::provider_for(Feature::Edit, root.as_deref(), args.provider.as_deref(), process_env()).await?;
        let req = job.request(&config.edit);
        run::stream(&provider, &req, |_| {}).await.map_err(|e| match e {
            run::RunError::Provider(p) => format!("the provider failed: {p}"),
            other => other.to_string(),
        })
    })?;

    // Where the change goes: this file, or (tests) a test file next to it.
    let (target, original, original_bytes, new_text) = if let Some((target, old_bytes, old)) = tests_target {
        let eol = run::line_ending(if old.is_empty() { &text } else { &old });
        let tests = run::tests_text(&answer, eol, &language_id).map_err(|e| e.to_string())?;
        let new = format!("{old}{}", run::appended(&old, &tests, eol));
        (target, old, old_bytes, new)
    } else {
        let edits = job.rewrite(&answer).map_err(|e| e.to_string())?;
        if edits.is_empty() {
            return Err("the model returned the code unchanged; nothing to do".into());
        }
        let new = apply(&text, &edits);
        (abs.clone(), text.clone(), Some(bytes), new)
    };
    let diff = unified(&shown_path(&target, root.as_deref()), &original, &new_text, DIFF_CONTEXT);
    if args.apply {
        match original_bytes {
            Some(read) => write_atomic(&target, new_text.as_bytes(), &read).map_err(|e| match e {
                WriteError::Changed => {
                    format!("{} changed on disk since it was read; nothing was written (run again)", target.display())
                }
                WriteError::Io(e) => format!("cannot write {}: {e}", target.display()),
            })?,
            None => create_new(&target, new_text.as_bytes()).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => format!(
                    "cannot create {}: it appeared while the model answered; nothing was written (run again)",
                    target.display()
                ),
                _ => format!("cannot create {}: {e}", target.display()),
            })?,
        }
    }
    Ok(diff)
}

/// A temporary file next to `path`, written and synced; the caller moves it into place.
fn temp_beside(path: &Path, bytes: &[u8], perms: Option<fs::Permissions>) -> io::Result<PathBuf> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut n = 0u32;
    loop {
        let tmp = dir.join(format!(".{name}.quill-{}-{n}.tmp", std::process::id()));
        match fs::OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(mut f) => {
                let written = f.write_all(bytes).and_then(|()| f.sync_all());
                let written = match (written, perms) {
                    (Ok(()), Some(p)) => fs::set_permissions(&tmp, p),
                    (w, _) => w,
                };
                if let Err(e) = written {
                    let _ = fs::remove_file(&tmp);
                    return Err(e);
                }
                return Ok(tmp);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => n += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Why [`write_atomic`] wrote nothing.
#[derive(Debug)]
enum WriteError {
    /// The file no longer holds what was read.
    Changed,
    Io(io::Error),
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        WriteError::Io(e)
    }
}

/// Replaces `path` (the file a symlink points to, if it is one) in one rename, keeping its
/// permissions: readers see the old file or the new one, never a mix. Only if it still holds
/// `expected`: the new content is written and synced first, so the re-read and the rename
/// follow each other directly and a change made while the model answered (or while the file
/// was being written) wins. The window left is one read and one rename.
fn write_atomic(path: &Path, bytes: &[u8], expected: &[u8]) -> Result<(), WriteError> {
    let real = fs::canonicalize(path)?;
    let perms = fs::metadata(&real)?.permissions();
    let tmp = temp_beside(&real, bytes, Some(perms))?;
    let unchanged = fs::read(&real).map(|now| now == expected);
    let moved = match unchanged {
        Ok(true) => fs::rename(&tmp, &real).map_err(WriteError::Io),
        Ok(false) => Err(WriteError::Changed),
        Err(e) => Err(WriteError::Io(e)),
    };
    if moved.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    moved?;
    sync_dir(&real);
    Ok(())
}

/// Creates `path` with `bytes`, failing if it exists (a file that appeared meanwhile is never
/// overwritten): a hard link of a finished temporary file, so the file appears whole.
fn create_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_beside(path, bytes, None)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    linked?;
    sync_dir(path);
    Ok(())
}

/// Makes a rename durable (best effort: not every platform can open a directory).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_bad_ones_say_why() {
        assert_eq!(parse_location("a:b.rs:2-5"), Ok((PathBuf::from("a:b.rs"), 2, 5)));
        assert_eq!(parse_location("x.py:7"), Ok((PathBuf::from("x.py"), 7, 7)));
        assert!(parse_location("x.py:0-2").expect_err("refused").contains("start at 1"));
        assert!(parse_location("x.py:5-2").expect_err("refused").contains("after the last"));
        assert!(parse_location("x.py").expect_err("refused").contains("expected PATH:L1-L2"));
        assert!(parse_location(":1-2").is_err());
    }
}
