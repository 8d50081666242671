//! The LSP side of autocomplete: `textDocument/inlineCompletion`, the `textDocument/completion`
//! fallback, the accept command, and the `quill/status` notification. Both requests run the same
//! pipeline ([`Scheduler::suggest`]); this file only converts positions and shapes replies.

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use serde_json::{Value, json};
use tower_lsp_server::{Client, ls_types::*};

use super::{Effective, ext};
use crate::{
    complete::{
        self,
        scheduler::{Answer, At, Outcome, Scheduler, Settings, Status},
    },
    config::Feature,
    position::{self, PositionEncoding},
    provider::{Provider, ProviderError},
    store::{Snapshot, Store},
};

/// The command an inline item carries, so the server learns it was accepted.
pub const ACCEPT_COMMAND: &str = "quill.acceptCompletion";

/// Autocomplete state kept by the server: the scheduler for the providers in force, and the
/// status pump.
pub struct Autocomplete {
    /// The scheduler and the effective config it was built for (compared by pointer).
    current: Mutex<Option<(Arc<Effective>, Arc<Scheduler>)>>,
    status: tokio::sync::mpsc::UnboundedSender<Status>,
    status_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Status>>>,
}

impl Default for Autocomplete {
    fn default() -> Self {
        let (status, rx) = tokio::sync::mpsc::unbounded_channel();
        Autocomplete { current: Mutex::new(None), status, status_rx: Mutex::new(Some(rx)) }
    }
}

impl Autocomplete {
    /// Start sending `quill/status` (and one `window/showMessage` per run of errors). Statuses
    /// go through one task so they reach the client in order.
    pub fn start_status(&self, client: Client) {
        let Some(mut rx) = self.status_rx.lock().ok().and_then(|mut r| r.take()) else { return };
        tokio::spawn(async move {
            let mut last: Option<Value> = None;
            let shown = AtomicBool::new(false);
            while let Some(status) = rx.recv().await {
                let (params, error) = match &status {
                    Status::Fetching => (json!({"state": "fetching"}), None),
                    Status::Idle => {
                        // A success ends the run of failures: the next one is shown again.
                        shown.store(false, Ordering::Relaxed);
                        (json!({"state": "idle"}), None)
                    }
                    Status::Cancelled => (json!({"state": "idle"}), None),
                    Status::Error(e) => {
                        (json!({"state": "error", "reason": e.to_string(), "provider": e.provider}), Some(e))
                    }
                };
                if last.as_ref() != Some(&params) {
                    client.send_notification::<ext::Status>(params.clone()).await;
                    last = Some(params);
                }
                if let Some(e) = error {
                    tracing::warn!("autocomplete: {e}");
                    // Once per run of failures: a broken key must not pop up on every keystroke.
                    if !shown.swap(true, Ordering::Relaxed) {
                        client.show_message(MessageType::ERROR, format!("Quill autocomplete: {e}")).await;
                    }
                }
            }
        });
    }

    /// The scheduler for the providers in force, built on first use after each config change.
    pub fn scheduler(&self, eff: &Arc<Effective>) -> Result<Arc<Scheduler>, ProviderError> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((built_for, s)) = current.as_ref()
            && Arc::ptr_eq(built_for, eff)
        {
            return Ok(s.clone());
        }
        let config = &eff.discovery.config;
        let provider = Provider::for_feature(config, Feature::Completion)?;
        let tx = self.status.clone();
        let sched =
            Scheduler::new(Arc::new(provider), Settings::from_config(&config.completion)).with_status(move |s| {
                let _ = tx.send(s);
            });
        let sched = Arc::new(sched);
        if let Some((_, old)) = current.replace((eff.clone(), sched.clone())) {
            drop(old); // its in-flight calls end with their tasks
        }
        Ok(sched)
    }

    /// The scheduler in force, if one was built (for didClose and accept).
    pub fn existing(&self) -> Option<Arc<Scheduler>> {
        self.current.lock().ok().and_then(|c| c.as_ref().map(|(_, s)| s.clone()))
    }

    /// Report a provider error that happened before the scheduler existed.
    pub fn report(&self, e: ProviderError) {
        let _ = self.status.send(Status::Error(e));
    }
}

/// Everything a suggestion request needs besides the scheduler.
pub struct Ask<'a> {
    pub store: &'a Store,
    /// The document as the request found it (text only, see [`Store::peek`]).
    pub peek: Snapshot,
    pub cursor: usize,
    pub manual: bool,
    pub root: Option<PathBuf>,
    pub enc: PositionEncoding,
}

/// Run the pipeline, then re-check the answer against the document as it is now. `Some` with
/// the answer and the range (in the current text) it replaces.
pub async fn ask(sched: &Scheduler, ask: Ask<'_>) -> Result<Option<(Answer, Range)>, ProviderError> {
    let Ask { store, peek, cursor, manual, root, enc } = ask;
    let uri = peek.uri.clone();
    let at = At { uri: &uri, version: peek.version, cursor, manual, root: root.as_deref() };
    let Outcome { result, overhead } = sched.suggest_in(store, at).await?;
    let answer = match result {
        Ok(a) => a,
        Err(why) => {
            tracing::trace!(uri, ?why, ?overhead, "no suggestion");
            return Ok(None);
        }
    };
    tracing::debug!(uri, served = ?answer.served, ?overhead, "suggestion");
    // The document may have changed while the model answered.
    let Some((now_version, now)) = store.text(&uri) else { return Ok(None) };
    let (start, end) = if now_version == peek.version {
        (answer.start, answer.end)
    } else {
        match complete::rebase(&answer, &peek.text, &now) {
            Some(r) => r,
            None => {
                tracing::debug!(uri, "document changed; suggestion dropped");
                return Ok(None);
            }
        }
    };
    // Ranges go out in the client's encoding, against the current text.
    let range = Range::new(to_lsp(&now, start, enc), to_lsp(&now, end, enc));
    Ok(Some((answer, range)))
}

fn to_lsp(text: &ropey::Rope, byte: usize, enc: PositionEncoding) -> Position {
    super::convert::position(position::from_byte(text, byte, enc))
}

/// The inline item for an answer.
pub fn inline_item(uri: &Uri, answer: &Answer, range: Range) -> InlineCompletionItem {
    InlineCompletionItem {
        insert_text: answer.text.clone(),
        filter_text: None,
        range: Some(range),
        command: Some(Command {
            title: "Quill: suggestion accepted".into(),
            command: ACCEPT_COMMAND.into(),
            arguments: Some(vec![json!({"uri": uri.as_str(), "id": answer.id})]),
        }),
        insert_text_format: Some(InsertTextFormat::PLAIN_TEXT),
    }
}

/// The completion-menu item for an answer: labelled by its first line, so it reads well in a
/// menu; the whole suggestion is in `textEdit` and the documentation.
pub fn menu_item(uri: &Uri, answer: &Answer, range: Range) -> CompletionItem {
    let first = answer.text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    let mut label: String = first.chars().take(60).collect();
    if first.chars().count() > 60 || answer.text.trim().lines().count() > 1 {
        label.push('…');
    }
    CompletionItem {
        label,
        kind: Some(CompletionItemKind::TEXT),
        detail: Some("Quill".into()),
        documentation: Some(Documentation::MarkupContent(MarkupContent {
            kind: MarkupKind::Markdown,
            value: format!("```\n{}\n```", answer.text),
        })),
        preselect: Some(true),
        sort_text: Some("0".into()),
        // The range starts at the cursor, so the editor filters on nothing typed yet; a filter
        // text equal to the insertion keeps clients that filter by label from hiding the item.
        filter_text: Some(answer.text.clone()),
        insert_text_format: Some(InsertTextFormat::PLAIN_TEXT),
        text_edit: Some(CompletionTextEdit::Edit(TextEdit { range, new_text: answer.text.clone() })),
        command: Some(Command {
            title: "Quill: suggestion accepted".into(),
            command: ACCEPT_COMMAND.into(),
            arguments: Some(vec![json!({"uri": uri.as_str(), "id": answer.id})]),
        }),
        ..Default::default()
    }
}
