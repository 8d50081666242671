//! The command line: `quill lsp` (the default), `quill check` and `quill config-schema`.
//!
//! stdout belongs to the LSP transport in `quill lsp`; logs always go to stderr or a file.
//! Other subcommands write their report to stdout through `report`, never `println!`.

use std::{
    io::{self, Write},
    path::PathBuf,
    process::ExitCode,
};

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::config::{self, Feature, KeyStatus, Layer};

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
    /// Validate the configuration and print providers and routing.
    Check {
        /// Workspace whose `quill.toml` to read (default: the current directory).
        #[arg(long, value_name = "DIR")]
        workspace: Option<PathBuf>,
    },
    /// Print the JSON Schema of the configuration.
    ConfigSchema,
}

pub fn run(cli: Cli) -> ExitCode {
    if let Err(e) = init_logging(cli.log_file.as_ref(), cli.log.as_deref()) {
        let _ = writeln!(io::stderr(), "quill: cannot open log file: {e}");
        return ExitCode::from(2);
    }
    match cli.command.unwrap_or(Command::Lsp) {
        Command::Lsp => run_lsp(),
        Command::Check { workspace } => check(workspace),
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

fn check(workspace: Option<PathBuf>) -> ExitCode {
    let root = workspace.or_else(|| std::env::current_dir().ok());
    let (layers, mut errors) = config::file_layers(root.as_deref());
    let resolved = config::resolve(&layers);
    errors.extend(resolved.errors);
    let mut out = String::new();
    let sources: Vec<&str> = layers.iter().map(|l: &Layer| l.source.as_str()).collect();
    out.push_str(&format!(
        "config sources: {}\n",
        if sources.is_empty() { "none (defaults)".into() } else { sources.join(", ") }
    ));
    let config = resolved.config.unwrap_or_default();
    out.push_str("providers:\n");
    if config.providers.is_empty() {
        out.push_str("  (none)\n");
    }
    for (name, p) in &config.providers {
        let key = match p.key_status() {
            KeyStatus::NotConfigured => "no key configured".to_owned(),
            KeyStatus::Present(var) => format!("key from ${var} (set)"),
            KeyStatus::Missing(var) => format!("key from ${var} (NOT SET)"),
        };
        out.push_str(&format!(
            "  {name}: kind={} model={} base_url={} {key}\n",
            p.kind.as_str(),
            p.model.as_deref().unwrap_or("(default)"),
            p.base_url.as_deref().unwrap_or("(default)"),
        ));
    }
    out.push_str("routing:\n");
    for feature in Feature::ALL {
        let target = match config.route(feature) {
            Some((name, p)) => {
                let model = config.feature(feature).model.as_deref().or(p.model.as_deref()).unwrap_or("(default)");
                format!("{name} ({}, model {model})", p.kind.as_str())
            }
            None => "not routed".to_owned(),
        };
        out.push_str(&format!("  {}: {target}\n", feature.as_str()));
    }
    for e in &errors {
        out.push_str(&format!("error: {e}\n"));
    }
    let code = report(out.trim_end());
    if errors.is_empty() { code } else { ExitCode::FAILURE }
}
