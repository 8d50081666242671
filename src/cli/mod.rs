//! The command line: `quill lsp` (the default), `quill check`, `quill config-schema`,
//! `quill complete`, and `quill chat` and `quill edit` (in `chat.rs` and `edit.rs`).
//!
//! stdout belongs to the LSP transport in `quill lsp`; logs always go to stderr or a file.
//! Other subcommands write their report to stdout through `report`, never `println!`.
//! `quill check` is what a user runs when nothing appears in their editor, so it says which
//! provider serves each feature and why, and with `--ping` whether each one answers.

use std::{
    fmt::Write as _,
    io::{self, Write},
    path::PathBuf,
    process::ExitCode,
    time::Duration,
};

mod chat;
mod edit;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::{
    config::{self, Config, Feature, Layer, ProviderConfig, ProviderKind},
    provider::{
        Env, Provider, default_key_env,
        discover::{self, Discovery, Origin, ProbeTargets},
        process_env,
    },
};

/// How long `quill check --ping` waits for all providers together.
const PING_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Parser)]
#[command(name = "quill", version, about = "Quill: an AI pair-programmer for any editor, over LSP")]
pub struct Cli {
    /// Write logs to this file instead of stderr.
    #[arg(long, global = true, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Log filter, e.g. `info` or `quill=debug` (overrides $QUILL_LOG).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the language server over stdio (the default).
    Lsp,
    /// Validate the configuration and print providers and routing. With no provider configured,
    /// say which one is picked from the environment and why, or how to set one up.
    ///
    /// Exit code 0 when at least one feature has a usable provider (and, with `--ping`, every
    /// provider answered); 1 on config errors, when no feature has a usable provider, or when a
    /// ping fails.
    Check {
        /// Workspace whose `quill.toml` to read (default: the current directory).
        #[arg(long, value_name = "DIR")]
        workspace: Option<PathBuf>,
        /// Also send each provider a one-token request and print `ok` with the latency, or the
        /// error.
        #[arg(long)]
        ping: bool,
    },
    /// Print the JSON Schema of the configuration.
    ConfigSchema,
    /// Print the autocomplete suggestion at a position of a file, through the same pipeline as
    /// the editor (trigger, context, provider, post-processing), without the debounce.
    ///
    /// Exit code 0 with the suggestion on stdout (nothing when there is none: the reason goes to
    /// stderr); 1 on errors (bad position, unreadable file, provider failure).
    Complete {
        /// `FILE:LINE:COL`, 1-based; the column counts characters (Unicode scalar values).
        location: String,
        /// Print `{"text", "range"}` as JSON, the range 0-based in characters.
        #[arg(long)]
        json: bool,
        /// Workspace whose `quill.toml` to read (default: the current directory).
        #[arg(long, value_name = "DIR")]
        workspace: Option<PathBuf>,
    },
    /// Ask a question and stream the answer to stdout.
    Chat(chat::ChatArgs),
    /// Rewrite lines of a file from an instruction; print the change as a unified diff.
    Edit(edit::EditArgs),
}

pub fn run(cli: Cli) -> ExitCode {
    if let Err(e) = init_logging(cli.log_file.as_ref(), cli.log.as_deref()) {
        let _ = writeln!(io::stderr(), "quill: cannot open log file: {e}");
        return ExitCode::from(2);
    }
    match cli.command.unwrap_or(Command::Lsp) {
        Command::Lsp => run_lsp(),
        Command::Check { workspace, ping } => check(workspace, ping),
        Command::Complete { location, json, workspace } => complete_cmd(&location, json, workspace),
        Command::Chat(args) => chat::run(args),
        Command::Edit(args) => edit::run(args),
        Command::ConfigSchema => {
            let schema = serde_json::to_string_pretty(&config::json_schema()).unwrap_or_default();
            report(&schema)
        }
    }
}

fn init_logging(file: Option<&PathBuf>, filter: Option<&str>) -> io::Result<()> {
    let filter = filter
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_env("QUILL_LOG").ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false);
    // try_init: a second call (tests) keeps the first subscriber.
    match file {
        Some(path) => {
            let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            let _ = builder.with_writer(std::sync::Mutex::new(f)).try_init();
        }
        None => {
            let _ = builder.with_writer(io::stderr).try_init();
        }
    }
    Ok(())
}

fn run_lsp() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(crate::lsp::serve_stdio());
    // Background tasks must not keep the process alive after `exit`.
    runtime.shutdown_background();
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Write a report to stdout (only for subcommands that do not speak LSP).
fn report(text: &str) -> ExitCode {
    let mut out = io::stdout().lock();
    match writeln!(out, "{text}") {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(2),
    }
}

fn check(workspace: Option<PathBuf>, ping: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let (text, ok) = runtime.block_on(check_report(workspace, ping, process_env()));
    let code = report(text.trim_end());
    if ok { code } else { ExitCode::FAILURE }
}

/// The report of `quill check`, and whether all is well.
async fn check_report(workspace: Option<PathBuf>, ping: bool, env: Env) -> (String, bool) {
    let root = workspace.or_else(|| std::env::current_dir().ok());
    let (layers, mut errors) = config::file_layers(root.as_deref());
    let resolved = config::resolve(&layers);
    errors.extend(resolved.errors);
    let mut out = String::new();
    let sources: Vec<&str> = layers.iter().map(|l: &Layer| l.source.as_str()).collect();
    let _ = writeln!(
        out,
        "config sources: {}",
        if sources.is_empty() { "none (defaults)".into() } else { sources.join(", ") }
    );
    let user_config = resolved.config.unwrap_or_default();
    let discovery = discover::discover(&user_config, &env, &ProbeTargets::from_env(&env)).await;
    if let (Origin::Discovered { .. }, Some(text)) = (&discovery.origin, discovery.announcement()) {
        let _ = writeln!(out, "{text}");
    }
    let config = &discovery.config;
    out.push_str("providers:\n");
    if config.providers.is_empty() {
        out.push_str("  (none)\n");
    }
    for (name, p) in &config.providers {
        let _ = writeln!(
            out,
            "  {name}: kind={} model={} base_url={} {}",
            p.kind.as_str(),
            p.model.as_deref().unwrap_or("(default)"),
            p.base_url.as_deref().unwrap_or("(default)"),
            key_status(p, &env),
        );
    }
    out.push_str("routing:\n");
    let mut usable = 0;
    for feature in Feature::ALL {
        let target = match config.route(feature) {
            Some((name, p)) => {
                let model = config.feature(feature).model.clone().or_else(|| p.model.clone());
                let shown = model.as_deref().unwrap_or("(default)");
                // Building checks settings and keys without sending anything.
                match Provider::build(name, p, model.clone(), env.clone()) {
                    Ok(_) => {
                        usable += 1;
                        format!("{name} ({}, model {shown})", p.kind.as_str())
                    }
                    Err(e) => format!("{name} ({}, model {shown}): not usable: {e}", p.kind.as_str()),
                }
            }
            None => "not routed".to_owned(),
        };
        let _ = writeln!(out, "  {}: {target}", feature.as_str());
    }
    match &discovery.origin {
        Origin::Configured => {
            for note in &discovery.notes {
                let _ = writeln!(out, "note: {note}");
            }
        }
        Origin::Discovered { .. } => {}
        Origin::Missing => {
            let _ = writeln!(out, "{}", discovery.advice(None));
        }
    }
    if usable == 0 && discovery.is_usable() {
        out.push_str("No feature has a usable provider: fix the problems above.\n");
    }
    for e in &errors {
        let _ = writeln!(out, "error: {e}");
    }
    let mut ok = errors.is_empty() && usable > 0;
    if ping {
        ok &= ping_all(&discovery, &env, &mut out).await;
    }
    (out, ok)
}

/// Where a provider's credentials come from, and whether they are set. Never their values.
fn key_status(p: &ProviderConfig, env: &Env) -> String {
    let set = |var: &str| env(var).is_some_and(|v| !v.trim().is_empty());
    match p.kind {
        ProviderKind::Bedrock if p.api_key_env.is_none() && !set("AWS_BEARER_TOKEN_BEDROCK") => {
            return if set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY") {
                "AWS credentials from $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY (set)".into()
            } else {
                "AWS credentials NOT SET ($AWS_BEARER_TOKEN_BEDROCK, or $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY)"
                    .into()
            };
        }
        ProviderKind::Vertex if p.api_key_env.is_none() => {
            return match (&p.credentials_file, set("GOOGLE_APPLICATION_CREDENTIALS")) {
                (Some(path), _) => format!("credentials from {}", path.display()),
                (None, true) => "credentials from $GOOGLE_APPLICATION_CREDENTIALS (set)".into(),
                (None, false) => "credentials from $GOOGLE_APPLICATION_CREDENTIALS (NOT SET)".into(),
            };
        }
        _ => {}
    }
    match p.api_key_env.as_deref().or(default_key_env(p.kind)) {
        None => "no key configured".to_owned(),
        Some(var) if set(var) => format!("key from ${var} (set)"),
        Some(var) => format!("key from ${var} (NOT SET)"),
    }
}

/// The model a ping asks for: the provider's, else that of the first feature routed to it.
fn ping_model(config: &Config, name: &str, p: &ProviderConfig) -> Option<String> {
    p.model.clone().or_else(|| {
        Feature::ALL
            .into_iter()
            .filter(|f| config.feature(*f).provider.as_deref() == Some(name))
            .find_map(|f| config.feature(f).model.clone())
    })
}

/// Ping every provider at once; one line each. True if all answered.
async fn ping_all(discovery: &Discovery, env: &Env, out: &mut String) -> bool {
    let config = &discovery.config;
    let deadline = tokio::time::Instant::now() + PING_TIMEOUT;
    let pings = config.providers.iter().map(|(name, p)| {
        let model = ping_model(config, name, p);
        let env = env.clone();
        async move {
            let kind = p.kind.as_str();
            let shown = model.clone().unwrap_or_else(|| "(default)".into());
            let provider = match Provider::build(name, p, model, env) {
                Ok(provider) => provider,
                Err(e) => return (false, format!("FAIL {name} ({kind}): {e}")),
            };
            match tokio::time::timeout_at(deadline, provider.ping()).await {
                Ok(Ok(latency)) => (true, format!("ok   {name} ({kind}, {shown}) {} ms", latency.as_millis())),
                Ok(Err(e)) => (false, format!("FAIL {name} ({kind}): {e}")),
                Err(_) => (false, format!("FAIL {name} ({kind}): no answer within {} s", PING_TIMEOUT.as_secs())),
            }
        }
    });
    let results = futures_util::future::join_all(pings).await;
    if results.is_empty() {
        out.push_str("ping: no provider to ping\n");
        return false;
    }
    let mut all_ok = true;
    for (ok, line) in results {
        all_ok &= ok;
        out.push_str(&line);
        out.push('\n');
    }
    all_ok
}

/// Split `FILE:LINE:COL` (1-based) from the right, so paths may hold colons.
fn parse_location(s: &str) -> Option<(PathBuf, usize, usize)> {
    let (rest, col) = s.rsplit_once(':')?;
    let (file, line) = rest.rsplit_once(':')?;
    let line: usize = line.parse().ok().filter(|&l| l >= 1)?;
    let col: usize = col.parse().ok().filter(|&c| c >= 1)?;
    (!file.is_empty()).then(|| (PathBuf::from(file), line - 1, col - 1))
}

fn complete_cmd(location: &str, json: bool, workspace: Option<PathBuf>) -> ExitCode {
    let fail = |msg: String| {
        let _ = writeln!(io::stderr(), "quill complete: {msg}");
        ExitCode::FAILURE
    };
    let Some((file, line, col)) = parse_location(location) else {
        return fail(format!("expected FILE:LINE:COL with 1-based numbers, got `{location}`"));
    };
    let bytes = match std::fs::read(&file) {
        Ok(b) => b,
        Err(e) => return fail(format!("cannot read {}: {e}", file.display())),
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return fail(format!("{} is not UTF-8 text", file.display()));
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the async runtime: {e}")),
    };
    let root = workspace.or_else(|| std::env::current_dir().ok());
    match runtime.block_on(complete_at(&file, &text, line, col, root, process_env())) {
        Ok(Some((suggestion, range))) => {
            if json {
                let v = serde_json::json!({
                    "text": suggestion,
                    "range": {"start": {"line": range.0.0, "character": range.0.1},
                              "end": {"line": range.1.0, "character": range.1.1}},
                });
                report(&v.to_string())
            } else {
                let mut out = io::stdout().lock();
                match out.write_all(suggestion.as_bytes()).and_then(|()| out.write_all(b"\n")) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(_) => ExitCode::from(2),
                }
            }
        }
        Ok(None) => {
            if json {
                report("null")
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(msg) => fail(msg),
    }
}

/// A (line, character) pair, 0-based, characters as Unicode scalar values.
type LineCol = (usize, usize);

/// The suggestion at `line:col` of `text`, and the range it replaces.
async fn complete_at(
    file: &std::path::Path,
    text: &str,
    line: usize,
    col: usize,
    root: Option<PathBuf>,
    env: Env,
) -> Result<Option<(String, (LineCol, LineCol))>, String> {
    use crate::complete::{self, scheduler};
    let (provider, cfg) = provider_for(Feature::Completion, root.as_deref(), None, env).await?;
    let cfg = &cfg;

    let abs = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
    // Resolved like the file, so the model sees a path relative to the workspace.
    let root = root.map(|r| std::fs::canonicalize(&r).unwrap_or(r));
    let uri = format!("file://{}", abs.display());
    let store = crate::store::Store::new();
    let language_id = crate::syntax::Language::detect("", &uri).map_or("plaintext", |l| l.name());
    store.open(&uri, language_id, 0, text, cfg.documents.max_parse_bytes);
    let snap = store.snapshot(&uri).ok_or("document vanished")?;
    let rope = &snap.text;
    if line >= rope.len_lines() {
        return Err(format!("line {} is past the end ({} lines)", line + 1, rope.len_lines()));
    }
    let line_start = rope.line_to_char(line);
    let line_len = rope.line(line).chars().filter(|c| !matches!(c, '\n' | '\r')).count();
    if col > line_len {
        return Err(format!("column {} is past the end of line {} ({} characters)", col + 1, line + 1, line_len));
    }
    let cursor = rope.char_to_byte(line_start + col);
    let settings =
        scheduler::Settings { debounce: Duration::ZERO, ..scheduler::Settings::from_config(&cfg.completion) };
    let sched = scheduler::Scheduler::new(std::sync::Arc::new(provider), settings);
    let others = Vec::new();
    let path = Some(complete::prompt_path(&uri, root.as_deref()));
    let req = scheduler::Request { snap: snap.clone(), cursor, manual: true, path, others };
    let outcome = sched.suggest(req).await.map_err(|e| e.to_string())?;
    match outcome.result {
        Ok(a) => {
            let at = |byte: usize| {
                let ch = rope.byte_to_char(byte);
                let l = rope.char_to_line(ch);
                (l, ch - rope.line_to_char(l))
            };
            Ok(Some((a.text, (at(a.start), at(a.end)))))
        }
        Err(why) => {
            let _ = writeln!(io::stderr(), "quill complete: no suggestion ({why:?})");
            Ok(None)
        }
    }
}

/// The config in force for a command run in `root` (files only: no editor layers), completed by
/// discovery, and the provider serving `feature`. `provider` names a `[providers]` entry to use
/// instead of the feature's routing (`--provider`). Errors are the message for the user.
pub(crate) async fn provider_for(
    feature: Feature,
    root: Option<&std::path::Path>,
    provider: Option<&str>,
    env: Env,
) -> Result<(Provider, Config), String> {
    let (layers, errors) = config::file_layers(root);
    if let Some(e) = errors.first() {
        return Err(format!("config error: {e}"));
    }
    let resolved = config::resolve(&layers);
    if let Some(e) = resolved.errors.first() {
        return Err(format!("config error: {e}"));
    }
    let mut user_config = resolved.config.unwrap_or_default();
    if let Some(name) = provider {
        if !user_config.providers.contains_key(name) {
            let known: Vec<&str> = user_config.providers.keys().map(String::as_str).collect();
            let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
            return Err(format!("no provider named `{name}` in the config (defined: {known})"));
        }
        // The feature's own model override was meant for its own provider.
        let (p, model) = user_config.route_mut(feature);
        *p = Some(name.to_owned());
        *model = None;
    }
    let discovery = discover::discover(&user_config, &env, &ProbeTargets::from_env(&env)).await;
    if !discovery.serves(feature) {
        return Err(discovery.advice(Some(feature)));
    }
    let Some((name, pc)) = discovery.config.route(feature) else {
        return Err(discovery.advice(Some(feature)));
    };
    let model = discovery.config.feature(feature).model.or_else(|| pc.model.clone());
    let provider = Provider::build(name, pc, model, env).map_err(|e| e.to_string())?;
    Ok((provider, discovery.config))
}
