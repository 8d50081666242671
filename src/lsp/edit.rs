//! Edits over LSP: the code actions, their resolve step, `quill.edit` and `quill/edit`.
//!
//! Listing actions is cheap: no provider call, no parse. Running one (`quill.edit`, resolve,
//! `quill/edit`) spawns a task that streams the answer (`edit::run`), reporting `$/progress`;
//! the handler awaits it through a guard that cancels the task if the handler is dropped
//! (`$/cancelRequest`), and `window/workDoneProgress/cancel` cancels it by token. Cancelling
//! drops the provider stream, which closes the connection. Then the answer becomes line edits of
//! the version the prompt was built from; the store is re-checked before anything is sent, and
//! the edit names that version, so the editor refuses it too if the user typed meanwhile.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;
use tower_lsp_server::{
    Client,
    jsonrpc::{self, ErrorCode, Result},
    ls_types::*,
};

use super::{Effective, QuillServer, REQUEST_FAILED, convert, ext, to_rpc};
use crate::{
    complete,
    config::Feature,
    edit::{
        EditDiagnostic, Intent, LineEdit, Severity,
        run::{self, Job, RunError},
        testfile::{TestTarget, test_target},
    },
    error::Error,
    position::{self, PositionEncoding},
    provider::Provider,
    store::Store,
};

/// Diagnostic messages longer than this are cut in "Quill: Fix: …" titles.
const TITLE_CHARS: usize = 60;

/// Edit state kept by the server: the provider for the effective config, and the cancel switch
/// of each running edit by progress token.
#[derive(Debug, Default)]
pub struct Edits {
    provider: Mutex<Option<(Arc<Effective>, Provider)>>,
    running: Arc<Mutex<HashMap<String, watch::Sender<bool>>>>,
    next_token: std::sync::atomic::AtomicU64,
}

/// The arguments of `quill.edit`, the params of `quill/edit`, and the `data` of a listed action.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EditArgs {
    pub uri: Uri,
    pub range: Range,
    /// The user's words; required for intent `edit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    /// `edit` (default), `document`, `tests` or `fix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// Diagnostics to fix or to show the model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
    /// The document version `range` refers to; the edit is refused if the document moved on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
    /// `quill/edit` only: a progress token the client created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_done_token: Option<ProgressToken>,
}

/// The result of `quill/edit`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EditPreview {
    pub edit: WorkspaceEdit,
    /// The version of the document the edit was computed from.
    pub version: i32,
}

/// What the client can do, read once per request from `initialize`'s capabilities.
#[derive(Debug, Clone, Copy, Default)]
struct Caps {
    document_changes: bool,
    create_files: bool,
    progress: bool,
    resolve_edit: bool,
}

impl Caps {
    fn of(c: Option<&ClientCapabilities>) -> Caps {
        let Some(c) = c else { return Caps::default() };
        let we = c.workspace.as_ref().and_then(|w| w.workspace_edit.as_ref());
        let ca = c.text_document.as_ref().and_then(|t| t.code_action.as_ref());
        Caps {
            document_changes: we.and_then(|w| w.document_changes).unwrap_or(false),
            create_files: we
                .and_then(|w| w.resource_operations.as_ref())
                .is_some_and(|ops| ops.contains(&ResourceOperationKind::Create)),
            progress: c.window.as_ref().and_then(|w| w.work_done_progress).unwrap_or(false),
            resolve_edit: ca.is_some_and(|ca| {
                ca.data_support == Some(true)
                    && ca.resolve_support.as_ref().is_some_and(|r| r.properties.iter().any(|p| p == "edit"))
            }),
        }
    }
}

/// Run the edit and apply it, or only compute it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Apply,
    Preview,
}

/// The outcome of an edit task.
enum Done {
    Applied,
    Preview(EditPreview),
}

/// A failed edit: the JSON-RPC error, and whether to tell the user with `window/showMessage`
/// too (the stale-document refusal: a user who typed on should know the edit went nowhere).
struct Failure {
    error: jsonrpc::Error,
    show: bool,
}

fn failed(message: impl Into<String>) -> Failure {
    Failure { error: request_failed(message), show: false }
}

fn request_failed(message: impl Into<String>) -> jsonrpc::Error {
    jsonrpc::Error { code: ErrorCode::ServerError(REQUEST_FAILED), message: message.into().into(), data: None }
}

fn invalid(message: impl Into<String>) -> jsonrpc::Error {
    to_rpc(Error::InvalidParams(message.into()))
}

/// Sets the cancel switch when dropped: the handler awaiting an edit task was dropped
/// (`$/cancelRequest`), so the task stops streaming and ends its progress.
struct CancelOnDrop(watch::Sender<bool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// Removes a running edit's token from the table when the task ends, however it ends.
struct Unregister {
    running: Arc<Mutex<HashMap<String, watch::Sender<bool>>>>,
    key: Option<String>,
}

impl Drop for Unregister {
    fn drop(&mut self) {
        if let (Some(key), Ok(mut map)) = (self.key.take(), self.running.lock()) {
            map.remove(&key);
        }
    }
}

fn token_key(t: &ProgressToken) -> String {
    serde_json::to_string(t).unwrap_or_default()
}

impl QuillServer {
    /// `textDocument/codeAction`: the Quill actions for a range. Costs no provider call: the
    /// actions that rewrite code carry a `quill.edit` command, or (when the client resolves
    /// edits) `data` for `codeAction/resolve`. When the providers in force serve neither edit
    /// nor chat, the list is empty rather than an error: editors ask on every cursor move.
    pub(super) async fn code_actions(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        let uri = params.text_document.uri;
        let snap = self.store.peek(convert::uri_key(&uri)).ok_or_else(|| unknown(&uri))?;
        self.byte_range(&snap, params.range)?;
        // Waits only for the first discovery after start (no re-probing here: editors ask on
        // every cursor move). Still unknown after that: list; running the action says why not.
        let current = self.providers.wait_current().await;
        let serves = |f: Feature| current.as_ref().is_none_or(|e| e.discovery.serves(f));
        let (edit_ok, chat_ok) = (serves(Feature::Edit), serves(Feature::Chat));
        let caps = Caps::of(self.client_caps.get());
        let only = params.context.only.unwrap_or_default();
        let wanted = |kind: &CodeActionKind| {
            only.is_empty()
                || only.iter().any(|o| {
                    let (o, k) = (o.as_str(), kind.as_str());
                    k == o || k.strip_prefix(o).is_some_and(|rest| rest.starts_with('.'))
                })
        };
        let range = params.range;
        let args = |intent: &str, diagnostics: Vec<Diagnostic>| EditArgs {
            uri: uri.clone(),
            range,
            instruction: None,
            intent: Some(intent.to_owned()),
            diagnostics,
            version: Some(snap.version),
            work_done_token: None,
        };
        let command = |title: &str, name: &str, arg: Value| Command {
            title: title.to_owned(),
            command: name.to_owned(),
            arguments: Some(vec![arg]),
        };
        // Resolved lazily where the client can, else run by the command.
        let lazy = |title: String, kind: CodeActionKind, a: EditArgs| {
            let diagnostics = (!a.diagnostics.is_empty()).then(|| a.diagnostics.clone());
            let arg = serde_json::to_value(&a).unwrap_or_default();
            let mut action = CodeAction { title: title.clone(), kind: Some(kind), diagnostics, ..Default::default() };
            if caps.resolve_edit {
                action.data = Some(arg);
            } else {
                action.command = Some(command(&title, ext::EDIT_COMMAND, arg));
            }
            action
        };

        let mut actions = Vec::new();
        if edit_ok {
            if wanted(&CodeActionKind::REFACTOR_REWRITE) {
                // The instruction comes from the user: the editor's extension asks for it.
                // It keeps `version`: the editor's extension only adds the instruction.
                let arg = serde_json::to_value(args("edit", Vec::new())).unwrap_or_default();
                actions.push(CodeAction {
                    title: "Quill: Edit selection…".into(),
                    kind: Some(CodeActionKind::REFACTOR_REWRITE),
                    command: Some(command("Quill: Edit selection…", ext::EDIT_COMMAND, arg)),
                    ..Default::default()
                });
                actions.push(lazy(
                    "Quill: Document".into(),
                    CodeActionKind::REFACTOR_REWRITE,
                    args("document", vec![]),
                ));
            }
            if wanted(&CodeActionKind::REFACTOR) {
                actions.push(lazy("Quill: Generate tests".into(), CodeActionKind::REFACTOR, args("tests", vec![])));
            }
        }
        let explain = CodeActionKind::from(ext::EXPLAIN_COMMAND);
        if chat_ok && wanted(&explain) {
            let arg = json!({"uri": uri.as_str(), "range": range});
            actions.push(CodeAction {
                title: "Quill: Explain".into(),
                kind: Some(explain),
                command: Some(command("Quill: Explain", ext::EXPLAIN_COMMAND, arg)),
                ..Default::default()
            });
        }
        if edit_ok && wanted(&CodeActionKind::QUICKFIX) {
            let key = |p: Position| (p.line, p.character);
            for d in params.context.diagnostics {
                let touches = key(d.range.start) <= key(range.end) && key(range.start) <= key(d.range.end);
                if !touches {
                    continue;
                }
                let title = format!("Quill: Fix: {}", short(&d.message));
                let mut action = lazy(title, CodeActionKind::QUICKFIX, args("fix", vec![d]));
                action.is_preferred = Some(false);
                actions.push(action);
            }
        }
        Ok(Some(actions.into_iter().map(CodeActionOrCommand::CodeAction).collect()))
    }

    /// `codeAction/resolve`: runs the edit a listed action describes (its `data`) and returns the
    /// action with its `edit`.
    pub(super) async fn resolve_code_action(&self, mut action: CodeAction) -> Result<CodeAction> {
        let Some(data) = action.data.clone() else {
            return Ok(action); // not one of ours to resolve (or already carries a command)
        };
        let args: EditArgs = serde_json::from_value(data)
            .map_err(|e| invalid(format!("this code action's data is not a Quill edit: {e}")))?;
        match self.run_edit(args, None, Mode::Preview).await? {
            Done::Preview(p) => action.edit = Some(p.edit),
            Done::Applied => {}
        }
        Ok(action)
    }

    /// `workspace/executeCommand quill.edit`: runs the edit and applies it with one
    /// `workspace/applyEdit`. Result `{applied: true}`.
    pub(super) async fn execute_edit(&self, args: Vec<Value>, token: Option<ProgressToken>) -> Result<Option<Value>> {
        let usage = || {
            format!(
                "`{}` takes one argument {{uri, range, instruction?, intent?, diagnostics?, version?}}",
                ext::EDIT_COMMAND
            )
        };
        let [arg] = <[Value; 1]>::try_from(args).map_err(|_| invalid(usage()))?;
        let args: EditArgs = serde_json::from_value(arg).map_err(|e| invalid(format!("{}: {e}", usage())))?;
        self.run_edit(args, token, Mode::Apply).await?;
        Ok(Some(json!({"applied": true})))
    }

    /// `window/workDoneProgress/cancel`: the user cancelled a running edit's progress.
    pub(super) async fn progress_cancel(&self, params: WorkDoneProgressCancelParams) {
        let key = token_key(&params.token);
        if let Ok(map) = self.edits.running.lock()
            && let Some(cancel) = map.get(&key)
        {
            cancel.send_replace(true);
        }
    }

    /// `quill/edit`: the `WorkspaceEdit` an edit would make, without applying it.
    pub(super) async fn edit_preview(&self, args: EditArgs) -> Result<EditPreview> {
        let token = args.work_done_token.clone();
        match self.run_edit(args, token, Mode::Preview).await? {
            Done::Preview(p) => Ok(p),
            Done::Applied => Err(request_failed("internal error: the preview was applied")),
        }
    }

    /// Byte range of an LSP range in `snap`. Lines past the end are refused (an edit must not
    /// guess); columns past a line's end clamp to it; a reversed range is read forwards.
    fn byte_range(&self, snap: &crate::store::Snapshot, range: Range) -> Result<std::ops::Range<usize>> {
        let lines = snap.text.len_lines() as u32;
        for p in [range.start, range.end] {
            if p.line >= lines {
                return Err(invalid(format!(
                    "range {}:{}-{}:{} is outside the document ({lines} lines)",
                    range.start.line, range.start.character, range.end.line, range.end.character
                )));
            }
        }
        let a = self.char_at(snap, range.start).map_err(to_rpc)?;
        let b = self.char_at(snap, range.end).map_err(to_rpc)?;
        let (a, b) = (a.min(b), a.max(b));
        Ok(snap.text.char_to_byte(a)..snap.text.char_to_byte(b))
    }

    /// The provider serving edits for the config in force, built once per config.
    async fn edit_provider(&self) -> Result<Provider> {
        self.require_provider(Feature::Edit).await?;
        let eff = self.effective().await.ok_or_else(|| request_failed("no provider configuration yet"))?;
        let mut cached = self.edits.provider.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((built_for, p)) = cached.as_ref()
            && Arc::ptr_eq(built_for, &eff)
        {
            return Ok(p.clone());
        }
        let p =
            Provider::for_feature(&eff.discovery.config, Feature::Edit).map_err(|e| request_failed(e.to_string()))?;
        *cached = Some((eff, p.clone()));
        Ok(p)
    }

    /// Validates `args`, builds the job, and runs it in a spawned task (see the module docs).
    async fn run_edit(&self, args: EditArgs, token: Option<ProgressToken>, mode: Mode) -> Result<Done> {
        let intent = Intent::parse_edit(args.intent.as_deref().unwrap_or("edit")).map_err(invalid)?;
        let instruction = args.instruction.clone().unwrap_or_default();
        if intent == Intent::Edit && instruction.trim().is_empty() {
            return Err(invalid(
                "intent `edit` needs an `instruction`: the editor's Quill extension asks the user for it before \
                 running `quill.edit` (Document, Generate tests and Fix need none)",
            ));
        }
        let snap = self.snapshot(&args.uri).map_err(to_rpc)?;
        if let Some(v) = args.version
            && v != snap.version
        {
            return Err(request_failed(format!(
                "the document changed since this action was listed (version {v}, now {}); ask for code actions again",
                snap.version
            )));
        }
        let bytes = self.byte_range(&snap, args.range)?;
        let provider = self.edit_provider().await?;
        let edit_config = self.effective().await.map(|e| e.discovery.config.edit.clone()).unwrap_or_default();

        let mut selection = run::selection(&snap.text, snap.tree.as_ref(), snap.language, bytes);
        let enc = self.encoding();
        let mut diagnostics = Vec::with_capacity(args.diagnostics.len());
        for d in &args.diagnostics {
            if intent == Intent::Fix
                && let Ok(r) = self.byte_range(&snap, d.range)
            {
                // The fix rewrites every line the diagnostic covers.
                let lines = run::whole_lines(&snap.text, r);
                selection = selection.start.min(lines.start)..selection.end.max(lines.end);
            }
            diagnostics.push(EditDiagnostic {
                message: d.message.clone(),
                severity: severity(d.severity),
                line: d.range.start.line as usize,
            });
        }
        let job = Job {
            path: complete::prompt_path(args.uri.as_str(), self.root().as_deref()),
            language_id: snap.language_id.clone(),
            text: snap.text.clone(),
            selection,
            instruction,
            intent,
            diagnostics,
        };
        let req = job.request(&edit_config);
        let caps = Caps::of(self.client_caps.get());
        let token = match token {
            Some(t) => Some(t),
            None if caps.progress => {
                let n = self.edits.next_token.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let t = ProgressToken::String(format!("quill-edit-{n}"));
                let created = self
                    .client
                    .send_request::<request::WorkDoneProgressCreate>(WorkDoneProgressCreateParams { token: t.clone() })
                    .await;
                created.is_ok().then_some(t)
            }
            None => None,
        };

        let (cancel, cancelled) = watch::channel(false);
        let key = token.as_ref().map(token_key);
        if let Some(k) = &key {
            let mut map = self.edits.running.lock().unwrap_or_else(|p| p.into_inner());
            // One token, one edit: a second edit under a running one's token would take over
            // its cancel switch, and the first could no longer be cancelled.
            if map.contains_key(k) {
                return Err(invalid(format!(
                    "the progress token {k} already belongs to a running edit; use a new token per request"
                )));
            }
            map.insert(k.clone(), cancel.clone());
        }
        let unregister = Unregister { running: self.edits.running.clone(), key };
        let task = Task {
            client: self.client.clone(),
            store: self.store.clone(),
            enc,
            caps,
            uri: args.uri,
            version: snap.version,
            job,
            token,
            mode,
        };
        let _guard = CancelOnDrop(cancel);
        let handle = tokio::spawn(async move {
            let _unregister = unregister;
            task.run(provider, req, cancelled).await
        });
        let outcome = handle.await.map_err(|e| request_failed(format!("the edit task failed: {e}")))?;
        match outcome {
            Ok(done) => Ok(done),
            Err(Failure { error, show }) => {
                if show {
                    self.client.show_message(MessageType::WARNING, format!("Quill: {}", error.message)).await;
                }
                Err(error)
            }
        }
    }
}

/// Everything a spawned edit needs, owned.
struct Task {
    client: Client,
    store: Arc<Store>,
    enc: PositionEncoding,
    caps: Caps,
    uri: Uri,
    version: i32,
    job: Job,
    token: Option<ProgressToken>,
    mode: Mode,
}

impl Task {
    async fn run(
        self,
        provider: Provider,
        req: crate::provider::ChatRequest,
        mut cancelled: watch::Receiver<bool>,
    ) -> std::result::Result<Done, Failure> {
        let title = self.job.intent.progress_title();
        self.progress(WorkDoneProgress::Begin(WorkDoneProgressBegin {
            title: title.to_owned(),
            cancellable: Some(true),
            message: Some("waiting for the model".into()),
            percentage: None,
        }))
        .await;
        // Reports go through a channel: the stream's callback is synchronous.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let reporter = self.token.clone().map(|token| {
            let client = self.client.clone();
            tokio::spawn(async move {
                while let Some(mut lines) = rx.recv().await {
                    while let Ok(more) = rx.try_recv() {
                        lines = more; // only the latest count matters
                    }
                    let value = WorkDoneProgress::Report(WorkDoneProgressReport {
                        cancellable: Some(true),
                        message: Some(format!("{lines} lines received")),
                        percentage: None,
                    });
                    let params = ProgressParams { token: token.clone(), value: ProgressParamsValue::WorkDone(value) };
                    client.send_notification::<notification::Progress>(params).await;
                }
            })
        });
        let streamed = tokio::select! {
            r = run::stream(&provider, &req, move |n| { let _ = tx.send(n); }) => Some(r),
            _ = cancelled.wait_for(|c| *c) => None,
        };
        if let Some(r) = reporter {
            let _ = r.await;
        }
        let result = match streamed {
            None => Err(cancelled_failure()),
            Some(Err(e)) => Err(failed(run_error(&e))),
            Some(Ok(answer)) => self.finish(&answer, &cancelled).await,
        };
        let message = match &result {
            // The editor applied it, but a cancel came while it was being sent: say both.
            Ok(Done::Applied) if *cancelled.borrow() => {
                "applied (the cancel came after the edit was sent to the editor)".to_owned()
            }
            Ok(Done::Applied) => "applied".to_owned(),
            Ok(Done::Preview(_)) => "ready".to_owned(),
            Err(f) => f.error.message.to_string(),
        };
        self.progress(WorkDoneProgress::End(WorkDoneProgressEnd { message: Some(message) })).await;
        result
    }

    /// Whether the stored document is still the one the edit was computed from: the same
    /// version AND the same text (versions restart at 1 when a document is closed and reopened,
    /// say after a `git checkout`, so a version alone can name different text).
    fn unchanged(&self, version: i32, text: &ropey::Rope) -> bool {
        version == self.version && *text == self.job.text
    }

    async fn progress(&self, value: WorkDoneProgress) {
        if let Some(token) = &self.token {
            let params = ProgressParams { token: token.clone(), value: ProgressParamsValue::WorkDone(value) };
            self.client.send_notification::<notification::Progress>(params).await;
        }
    }

    /// The answer as a workspace edit, checked against the store, then applied or returned.
    async fn finish(&self, answer: &str, cancelled: &watch::Receiver<bool>) -> std::result::Result<Done, Failure> {
        let key = convert::uri_key(&self.uri);
        let stale = || Failure { error: request_failed("document changed, edit not applied"), show: true };
        let Some((now, text)) = self.store.text(key) else {
            return Err(Failure { error: request_failed("the document was closed, edit not applied"), show: true });
        };
        if !self.unchanged(now, &text) {
            return Err(stale());
        }
        let edit = match self.job.intent {
            Intent::Tests => self.tests_edit(answer)?,
            _ => {
                let edits = self.job.rewrite(answer).map_err(|e| failed(run_error(&e)))?;
                if edits.is_empty() {
                    return Err(failed("the model returned the code unchanged; nothing to apply"));
                }
                self.text_edit(&self.uri, Some(self.version), &self.job.text, &edits)
            }
        };
        if self.mode == Mode::Preview {
            return Ok(Done::Preview(EditPreview { edit, version: self.version }));
        }
        // The last checks before sending: nothing below awaits before the request goes out.
        if !self.store.text(key).is_some_and(|(v, text)| self.unchanged(v, &text)) {
            return Err(stale());
        }
        // A `$/cancelRequest` or progress cancel that came after the answer: nothing is sent.
        if *cancelled.borrow() {
            return Err(cancelled_failure());
        }
        let label = Some(self.job.intent.progress_title().trim_end_matches('…').to_owned());
        let sent = self
            .client
            .send_request::<request::ApplyWorkspaceEdit>(ApplyWorkspaceEditParams { label, edit })
            .await
            .map_err(|e| failed(format!("the editor did not apply the edit: {}", e.message)))?;
        if !sent.applied {
            let why = sent.failure_reason.unwrap_or_else(|| "no reason given".into());
            return Err(failed(format!("the editor refused the edit: {why}")));
        }
        Ok(Done::Applied)
    }

    /// One document's edits, versioned where the client supports it.
    fn text_edit(&self, uri: &Uri, version: Option<i32>, text: &ropey::Rope, edits: &[LineEdit]) -> WorkspaceEdit {
        let edits: Vec<TextEdit> = edits
            .iter()
            .map(|e| TextEdit {
                range: Range::new(lsp_pos(text, e.old.start, self.enc), lsp_pos(text, e.old.end, self.enc)),
                new_text: e.new_text.clone(),
            })
            .collect();
        if self.caps.document_changes {
            WorkspaceEdit {
                document_changes: Some(DocumentChanges::Edits(vec![TextDocumentEdit {
                    text_document: OptionalVersionedTextDocumentIdentifier { uri: uri.clone(), version },
                    edits: edits.into_iter().map(OneOf::Left).collect(),
                }])),
                ..Default::default()
            }
        } else {
            WorkspaceEdit { changes: Some(HashMap::from([(uri.clone(), edits)])), ..Default::default() }
        }
    }

    /// Generated tests: appended to the source (Rust), to an existing test file (open or on
    /// disk), or written into a new file with `CreateFile` (never overwriting one).
    fn tests_edit(&self, answer: &str) -> std::result::Result<WorkspaceEdit, Failure> {
        let lang = &self.job.language_id;
        let source: Option<PathBuf> = self.uri.to_file_path().map(|p| p.into_owned());
        let target = match &source {
            Some(p) => test_target(p, lang, Path::is_dir),
            None => TestTarget::SameFile, // an unsaved buffer: keep the tests with it
        };
        let append = |uri: &Uri, version: Option<i32>, text: &ropey::Rope| {
            let existing = text.to_string();
            let eol = run::line_ending(&existing);
            let tests = run::tests_text(answer, eol, lang).map_err(|e| failed(run_error(&e)))?;
            let end = text.len_bytes();
            let edit = LineEdit { old: end..end, new_text: run::appended(&existing, &tests, eol) };
            Ok(self.text_edit(uri, version, text, &[edit]))
        };
        let path = match target {
            TestTarget::SameFile => return append(&self.uri, Some(self.version), &self.job.text),
            TestTarget::File(p) if Some(&p) == source.as_ref() => {
                return append(&self.uri, Some(self.version), &self.job.text);
            }
            TestTarget::File(p) => p,
        };
        let uri = Uri::from_file_path(&path)
            .ok_or_else(|| failed(format!("cannot name the test file {} as a URI", path.display())))?;
        // Open in the editor: its text there is the truth, and the edit carries its version.
        if let Some((version, text)) = self.store.text(convert::uri_key(&uri)) {
            return append(&uri, Some(version), &text);
        }
        if path.exists() {
            let bytes = std::fs::read(&path)
                .map_err(|e| failed(format!("cannot read the existing test file {}: {e}", path.display())))?;
            let text = String::from_utf8(bytes)
                .map_err(|_| failed(format!("the existing test file {} is not UTF-8 text", path.display())))?;
            return append(&uri, None, &ropey::Rope::from_str(&text));
        }
        if !(self.caps.document_changes && self.caps.create_files) {
            return Err(failed(format!(
                "the tests belong in a new file, {}, and this editor cannot create files through LSP \
                 (workspace.workspaceEdit.resourceOperations lacks \"create\"); create the file and run Generate \
                 tests again",
                path.display()
            )));
        }
        let tests = run::tests_text(answer, "\n", lang).map_err(|e| failed(run_error(&e)))?;
        let create = CreateFile {
            uri: uri.clone(),
            // Both false: a file that appeared since (made by the user or a tool) fails the whole
            // edit, so the tests are never inserted at the top of someone else's file.
            options: Some(CreateFileOptions { overwrite: Some(false), ignore_if_exists: Some(false) }),
            annotation_id: None,
        };
        let insert = TextDocumentEdit {
            text_document: OptionalVersionedTextDocumentIdentifier { uri, version: None },
            edits: vec![OneOf::Left(TextEdit { range: Range::default(), new_text: tests })],
        };
        Ok(WorkspaceEdit {
            document_changes: Some(DocumentChanges::Operations(vec![
                DocumentChangeOperation::Op(ResourceOp::Create(create)),
                DocumentChangeOperation::Edit(insert),
            ])),
            ..Default::default()
        })
    }
}

fn cancelled_failure() -> Failure {
    Failure {
        error: jsonrpc::Error {
            code: ErrorCode::RequestCancelled,
            message: "the edit was cancelled; nothing was applied".into(),
            data: None,
        },
        show: false,
    }
}

fn run_error(e: &RunError) -> String {
    match e {
        RunError::Provider(p) => format!("the provider failed; nothing was applied: {p}"),
        other => other.to_string(),
    }
}

fn lsp_pos(text: &ropey::Rope, byte: usize, enc: PositionEncoding) -> Position {
    convert::position(position::from_byte(text, byte, enc))
}

fn severity(s: Option<DiagnosticSeverity>) -> Severity {
    match s {
        Some(DiagnosticSeverity::WARNING) => Severity::Warning,
        Some(DiagnosticSeverity::INFORMATION) => Severity::Information,
        Some(DiagnosticSeverity::HINT) => Severity::Hint,
        _ => Severity::Error,
    }
}

fn unknown(uri: &Uri) -> jsonrpc::Error {
    to_rpc(Error::UnknownDocument(convert::uri_key(uri).to_owned()))
}

/// A diagnostic message for a title: its first line, cut to [`TITLE_CHARS`] characters.
fn short(message: &str) -> String {
    let mut lines = message.trim().lines();
    let first = lines.next().unwrap_or_default().trim();
    let mut out: String = first.chars().take(TITLE_CHARS).collect();
    if first.chars().count() > TITLE_CHARS || lines.next().is_some() {
        out = out.trim_end().to_owned();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_keep_the_first_line_and_sixty_characters() {
        assert_eq!(short("unused variable `x`"), "unused variable `x`");
        assert_eq!(short("mismatched types\nexpected i32"), "mismatched types…");
        let long = "a".repeat(80);
        assert_eq!(short(&long), format!("{}…", "a".repeat(60)));
    }
}
