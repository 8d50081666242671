//! The LSP edge: capabilities, handlers and custom methods. The only module that sees LSP types.
//!
//! Handlers follow two rules. Document-sync notifications change the store synchronously, before
//! any `.await`, so changes apply in arrival order. Requests take a snapshot and drop every lock
//! before they await anything.

pub mod autocomplete;
pub mod chat;
pub mod convert;
pub mod edit;
pub mod ext;
pub mod transport;

use std::{
    path::PathBuf,
    sync::{
        Arc, OnceLock, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;
use tower_lsp_server::{
    Client, LanguageServer, LspService, Server,
    jsonrpc::{self, Result},
    ls_types::*,
};

use crate::{
    complete,
    config::{self, Config, ConfigError, Feature, Layer},
    error::Error,
    position::{self, PositionEncoding},
    provider::{
        Env,
        discover::{self, Discovery, Origin, ProbeTargets},
        process_env,
    },
    store::{Snapshot, Store},
};

/// JSON-RPC `RequestFailed` (LSP 3.17): the request was valid but could not be served.
const REQUEST_FAILED: i64 = -32803;
/// Messages handled at once (see `serve_stdio`).
const CONCURRENCY: usize = 32;
/// How long a request waits for the first discovery (probes take at most about a second).
const DISCOVERY_WAIT: Duration = Duration::from_secs(3);
/// With no provider found, a request looks again after this long, so a local server started
/// after the editor is picked up without a restart.
const RECHECK_AFTER: Duration = Duration::from_secs(10);
/// Test hook: milliseconds to use instead of [`RECHECK_AFTER`].
const RECHECK_VAR: &str = "QUILL_RECHECK_MS";

/// The providers in force and how they were found.
#[derive(Debug)]
pub struct Effective {
    /// The effective config (the user's, completed by discovery) and its origin.
    pub discovery: Discovery,
    /// The user's config it was derived from.
    user_config: Arc<Config>,
    at: Instant,
}

/// Discovery state: it runs in the background after every config change; the latest wins.
struct Providers {
    current: tokio::sync::watch::Sender<Option<Arc<Effective>>>,
    /// Bumped by each config change, so a slow discovery for an older config is discarded.
    generation: AtomicU64,
    /// Messages sent before the client's `initialized` may be lost.
    client_ready: AtomicBool,
    /// One message per session for each outcome, so users are told once, not on every keystroke.
    announced_found: AtomicBool,
    announced_missing: AtomicBool,
    /// One look-again at a time; requests meanwhile wait for its outcome.
    recheck: tokio::sync::Mutex<()>,
    recheck_after: Duration,
    env: Env,
    probes: ProbeTargets,
}

impl Providers {
    fn new() -> Self {
        let env = process_env();
        let probes = ProbeTargets::from_env(&env);
        let recheck_after =
            env(RECHECK_VAR).and_then(|v| v.trim().parse().ok()).map_or(RECHECK_AFTER, Duration::from_millis);
        Providers {
            current: tokio::sync::watch::Sender::new(None),
            generation: AtomicU64::new(0),
            client_ready: AtomicBool::new(false),
            announced_found: AtomicBool::new(false),
            announced_missing: AtomicBool::new(false),
            recheck: tokio::sync::Mutex::new(()),
            recheck_after,
            env,
            probes,
        }
    }

    /// Make a new config's providers current. A config that names a provider needs no probing
    /// and is in force at once, so the next request sees it; otherwise requests wait for the
    /// discovery running in the background.
    fn refresh(self: &Arc<Self>, client: Client, config: Arc<Config>) {
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(discovery) = discover::from_config(&config, &self.env) {
            for note in &discovery.notes {
                tracing::info!("providers: {note}");
            }
            let effective = Effective { discovery, user_config: config, at: Instant::now() };
            self.current.send_replace(Some(Arc::new(effective)));
            return;
        }
        self.current.send_replace(None);
        let this = self.clone();
        tokio::spawn(async move {
            let discovery = discover::discover(&config, &this.env, &this.probes).await;
            this.publish(generation, config, discovery, &client).await;
        });
    }

    async fn publish(&self, generation: u64, user_config: Arc<Config>, discovery: Discovery, client: &Client) {
        if self.generation.load(Ordering::SeqCst) != generation {
            return; // a newer config is being resolved
        }
        let effective = Arc::new(Effective { discovery, user_config, at: Instant::now() });
        self.current.send_replace(Some(effective.clone()));
        if self.client_ready.load(Ordering::SeqCst) {
            self.announce(client, &effective.discovery).await;
        }
    }

    async fn announce(&self, client: &Client, d: &Discovery) {
        let (flag, level) = match d.origin {
            Origin::Configured => return, // the user chose; `refresh` logged any notes
            Origin::Discovered { .. } => (&self.announced_found, MessageType::INFO),
            Origin::Missing => (&self.announced_missing, MessageType::WARNING),
        };
        let Some(text) = d.announcement() else { return };
        tracing::info!("providers: {text}");
        if !flag.swap(true, Ordering::SeqCst) {
            client.show_message(level, text).await;
        }
    }

    /// The effective providers, waiting for a discovery that is still running.
    async fn wait_current(&self) -> Option<Arc<Effective>> {
        let mut rx = self.current.subscribe();
        match tokio::time::timeout(DISCOVERY_WAIT, rx.wait_for(Option::is_some)).await {
            Ok(Ok(v)) => v.clone(),
            _ => None,
        }
    }

    /// The effective providers for a request. When none was found a while ago, look again
    /// first.
    async fn get(&self, client: &Client) -> Option<Arc<Effective>> {
        let current = self.wait_current().await?;
        let stale = current.discovery.origin == Origin::Missing && current.at.elapsed() >= self.recheck_after;
        if !stale {
            return Some(current);
        }
        let _one_at_a_time = self.recheck.lock().await;
        let Some(latest) = self.current.borrow().clone() else { return Some(current) };
        if latest.at > current.at {
            return Some(latest); // looked again while this request waited
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let discovery = discover::discover(&latest.user_config, &self.env, &self.probes).await;
        if discovery.origin == Origin::Missing {
            // Nothing new: only restart the clock, without a message.
            let again = Arc::new(Effective { discovery, user_config: latest.user_config.clone(), at: Instant::now() });
            if self.generation.load(Ordering::SeqCst) == generation {
                self.current.send_replace(Some(again.clone()));
            }
            return Some(again);
        }
        self.publish(generation, latest.user_config.clone(), discovery, client).await;
        self.current.borrow().clone()
    }
}

/// Session state that is not the documents.
#[derive(Debug, Default)]
struct Session {
    /// Layers from files and `initializationOptions`, fixed at start.
    base_layers: Vec<Layer>,
    /// The last valid `workspace/didChangeConfiguration` layer.
    client_layer: Option<Layer>,
    supports_configuration_pull: bool,
    /// The workspace root, for the paths shown to models.
    root: Option<PathBuf>,
}

pub struct QuillServer {
    client: Client,
    store: Arc<Store>,
    encoding: OnceLock<PositionEncoding>,
    config: RwLock<Arc<Config>>,
    session: RwLock<Session>,
    /// Config errors found during `initialize`, shown once the client is ready for messages.
    startup_errors: RwLock<Vec<ConfigError>>,
    providers: Arc<Providers>,
    autocomplete: autocomplete::Autocomplete,
    edits: edit::Edits,
    chats: chat::Chats,
    /// What the client said it supports, from `initialize`.
    client_caps: OnceLock<ClientCapabilities>,
    shutdown_requested: Arc<AtomicBool>,
}

impl std::fmt::Debug for QuillServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuillServer").field("documents", &self.store.len()).finish()
    }
}

/// Serve LSP over stdio until `exit` or end of input. Returns the process exit code: 0 after a
/// `shutdown` request, 1 otherwise, as the spec asks.
pub async fn serve_stdio() -> i32 {
    let shutdown = Arc::new(AtomicBool::new(false));
    let flag = shutdown.clone();
    let (service, socket) = LspService::build(move |client| QuillServer::new(client, flag.clone()))
        .custom_method(ext::DOCUMENT, QuillServer::document)
        .custom_method(ext::INLINE_COMPLETION, QuillServer::inline_completion)
        .custom_method(ext::EDIT, QuillServer::edit_preview)
        // tower-lsp-server 0.23 has no handler for it.
        .custom_method(ext::PROGRESS_CANCEL, QuillServer::progress_cancel)
        .custom_method(ext::CHAT_NEW, QuillServer::chat_new)
        .custom_method(ext::CHAT_SEND, QuillServer::chat_send)
        .custom_method(ext::CHAT_CANCEL, QuillServer::chat_cancel)
        .custom_method(ext::CHAT_LIST, QuillServer::chat_list)
        .custom_method(ext::CHAT_HISTORY, QuillServer::chat_history)
        .custom_method(ext::CHAT_DELETE, QuillServer::chat_delete)
        .custom_method(ext::MODELS, QuillServer::models)
        .custom_method(transport::MALFORMED, QuillServer::malformed)
        .finish();
    let stdin = transport::sanitized(tokio::io::stdin());
    // tower-lsp-server runs at most this many messages at once, notifications included. A
    // suggestion request waits for its provider; with the default of 4, a client that does not
    // cancel stale requests would hold every slot and delay `didChange`.
    Server::new(stdin, tokio::io::stdout(), socket).concurrency_level(CONCURRENCY).serve(service).await;
    if shutdown.load(Ordering::SeqCst) { 0 } else { 1 }
}

impl QuillServer {
    fn new(client: Client, shutdown_requested: Arc<AtomicBool>) -> Self {
        QuillServer {
            client,
            store: Arc::new(Store::new()),
            encoding: OnceLock::new(),
            config: RwLock::new(Arc::new(Config::default())),
            session: RwLock::new(Session::default()),
            startup_errors: RwLock::new(Vec::new()),
            providers: Arc::new(Providers::new()),
            autocomplete: autocomplete::Autocomplete::default(),
            edits: edit::Edits::default(),
            chats: chat::Chats::default(),
            client_caps: OnceLock::new(),
            shutdown_requested,
        }
    }

    fn encoding(&self) -> PositionEncoding {
        self.encoding.get().copied().unwrap_or_default()
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// The workspace root from `initialize`, for the paths shown to models and in titles.
    fn root(&self) -> Option<PathBuf> {
        self.session.read().ok().and_then(|s| s.root.clone())
    }

    fn snapshot(&self, uri: &Uri) -> std::result::Result<Snapshot, Error> {
        let key = convert::uri_key(uri);
        self.store.snapshot(key).ok_or_else(|| Error::UnknownDocument(key.to_owned()))
    }

    /// Resolve a request position in a snapshot: clamped per spec, refused if inside a character.
    fn char_at(&self, snap: &Snapshot, pos: Position) -> std::result::Result<usize, Error> {
        let enc = self.encoding();
        let pos = convert::text_pos(pos);
        position::to_char(&snap.text, pos, enc).ok_or(Error::InvalidPosition { pos, enc: enc.as_str() })
    }

    /// Re-resolve config from the base layers plus `client_layer`; on success make it current.
    /// Returns the errors to show. On failure the last good config stays in force.
    fn apply_layers(&self, client_layer: Option<Layer>) -> Vec<ConfigError> {
        let Ok(mut session) = self.session.write() else { return Vec::new() };
        if let Some(layer) = &client_layer
            && let Err(e) = layer.check()
        {
            return vec![e];
        }
        let mut layers = session.base_layers.clone();
        layers.extend(client_layer.clone().or_else(|| session.client_layer.clone()));
        let resolved = config::resolve(&layers);
        if let Some(new) = resolved.config {
            if client_layer.is_some() {
                session.client_layer = client_layer;
            }
            self.store.set_tree_budget(new.documents.tree_cache_bytes);
            if let Ok(mut current) = self.config.write() {
                *current = Arc::new(new);
            }
        }
        resolved.errors
    }

    /// Re-run discovery if the config in force changed since `before`.
    fn rediscover_if_changed(&self, before: &Arc<Config>) {
        let now = self.config();
        if !Arc::ptr_eq(before, &now) {
            self.providers.refresh(self.client.clone(), now);
        }
    }

    /// The providers in force: the user's config completed by discovery. `None` only while the
    /// first discovery is still running.
    pub async fn effective(&self) -> Option<Arc<Effective>> {
        self.providers.get(&self.client).await
    }

    /// Refuse a request for `feature` when no provider serves it, with the setup advice as the
    /// error, so the user sees why nothing happens rather than an empty answer.
    async fn require_provider(&self, feature: Feature) -> Result<()> {
        let message = match self.effective().await {
            Some(e) if e.discovery.serves(feature) => return Ok(()),
            Some(e) => e.discovery.advice(Some(feature)),
            None => "Quill is still looking for an AI provider; try again in a moment.".to_owned(),
        };
        Err(jsonrpc::Error {
            code: jsonrpc::ErrorCode::ServerError(REQUEST_FAILED),
            message: message.into(),
            data: None,
        })
    }

    async fn show_config_errors(&self, errors: Vec<ConfigError>) {
        for e in errors {
            tracing::error!("config: {e}");
            let msg = format!("Quill config error: {e}. Running on the last good configuration.");
            self.client.show_message(MessageType::ERROR, msg).await;
        }
    }

    /// Answers a malformed message (see `transport`) with the JSON-RPC error it deserves.
    async fn malformed(&self, params: transport::MalformedParams) -> Result<()> {
        Err(jsonrpc::Error { code: params.code.into(), message: params.message.into(), data: None })
    }

    /// `quill/document`: the server's view of a document, for tests and troubleshooting.
    async fn document(&self, params: ext::DocumentParams) -> Result<ext::DocumentResult> {
        let key = convert::uri_key(&params.uri);
        let info = self.store.info(key).ok_or_else(|| to_rpc(Error::UnknownDocument(key.to_owned())))?;
        Ok(ext::DocumentResult {
            version: info.version,
            language_id: info.language_id,
            text: info.text,
            parsed: info.parsed,
            syntax_errors: info.syntax_errors,
            parse_status: info.status,
        })
    }

    /// `textDocument/inlineCompletion`: ghost text for the cursor, through the autocomplete
    /// pipeline. Provider failures answer an empty list (shown once through `quill/status` and
    /// `window/showMessage`), never an error per keystroke.
    async fn inline_completion(&self, params: InlineCompletionParams) -> Result<InlineCompletionResponse> {
        let tdp = params.text_document_position;
        let manual = params.context.trigger_kind == InlineCompletionTriggerKind::INVOKED;
        let empty = InlineCompletionResponse::List(InlineCompletionList { items: Vec::new() });
        let uri = tdp.text_document.uri.clone();
        match self.suggest(&tdp, manual).await? {
            Some((answer, range)) => {
                let item = autocomplete::inline_item(&uri, &answer, range);
                Ok(InlineCompletionResponse::List(InlineCompletionList { items: vec![item] }))
            }
            None => Ok(empty),
        }
    }

    /// The pipeline shared by inline completion and the completion-menu fallback.
    async fn suggest(
        &self,
        tdp: &TextDocumentPositionParams,
        manual: bool,
    ) -> Result<Option<(complete::scheduler::Answer, Range)>> {
        // Text only: the reparse waits until the pipeline needs a tree (typed-ahead reuse
        // does not).
        let key = convert::uri_key(&tdp.text_document.uri);
        let peek = self.store.peek(key).ok_or_else(|| to_rpc(Error::UnknownDocument(key.to_owned())))?;
        let ch = self.char_at(&peek, tdp.position).map_err(to_rpc)?;
        self.require_provider(Feature::Completion).await?;
        let Some(eff) = self.effective().await else { return Ok(None) };
        if !eff.discovery.config.completion.enabled {
            return Ok(None);
        }
        let sched = match self.autocomplete.scheduler(&eff) {
            Ok(s) => s,
            Err(e) => {
                self.autocomplete.report(e);
                return Ok(None);
            }
        };
        let cursor = peek.text.char_to_byte(ch);
        let root = self.root();
        let ask = autocomplete::Ask { store: &self.store, peek, cursor, manual, root, enc: self.encoding() };
        // Errors were already reported through the status pump.
        Ok(autocomplete::ask(&sched, ask).await.unwrap_or(None))
    }
}

fn to_rpc(e: Error) -> jsonrpc::Error {
    jsonrpc::Error::invalid_params(e.to_string())
}

fn server_capabilities(enc: PositionEncoding) -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(PositionEncodingKind::from(enc.as_str().to_owned())),
        text_document_sync: Some(TextDocumentSyncCapability::Options(TextDocumentSyncOptions {
            open_close: Some(true),
            change: Some(TextDocumentSyncKind::INCREMENTAL),
            ..Default::default()
        })),
        inline_completion_provider: Some(OneOf::Left(true)),
        completion_provider: Some(CompletionOptions {
            resolve_provider: Some(false),
            // Where a suggestion is likely wanted; editors also ask on their own while typing.
            trigger_characters: Some([".", "(", "{", "[", " ", ":", "=", ",", "\n"].map(String::from).to_vec()),
            ..Default::default()
        }),
        code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
            code_action_kinds: Some(vec![
                CodeActionKind::QUICKFIX,
                CodeActionKind::REFACTOR,
                CodeActionKind::REFACTOR_REWRITE,
                CodeActionKind::from(ext::EXPLAIN_COMMAND),
            ]),
            resolve_provider: Some(true),
            ..Default::default()
        })),
        execute_command_provider: Some(ExecuteCommandOptions {
            commands: vec![autocomplete::ACCEPT_COMMAND.into(), ext::EDIT_COMMAND.into(), ext::EXPLAIN_COMMAND.into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn workspace_root(params: &InitializeParams) -> Option<PathBuf> {
    let from_folders = params.workspace_folders.as_ref().and_then(|f| f.first()).map(|f| &f.uri);
    #[allow(deprecated)] // rootUri is still what many clients send
    let uri = from_folders.or(params.root_uri.as_ref())?;
    uri.to_file_path().map(|p| p.into_owned())
}

impl LanguageServer for QuillServer {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        let offered = params.capabilities.general.as_ref().and_then(|g| g.position_encodings.as_ref());
        let enc = PositionEncoding::negotiate(offered.into_iter().flatten().map(|k| k.as_str()));
        let _ = self.encoding.set(enc);
        let _ = self.client_caps.set(params.capabilities.clone());

        let root = workspace_root(&params);
        let (mut layers, mut errors) = config::file_layers(root.as_deref());
        if let Some(opts) = params.initialization_options {
            layers.push(Layer::from_client("initializationOptions", opts));
        }
        // Invalid sources are reported once, here, and left out of every later resolution.
        layers.retain(|layer| match layer.check() {
            Ok(()) => true,
            Err(e) => {
                errors.push(e);
                false
            }
        });
        let pull = params.capabilities.workspace.as_ref().and_then(|w| w.configuration).unwrap_or(false);
        if let Ok(mut s) = self.session.write() {
            s.base_layers = layers;
            s.supports_configuration_pull = pull;
            s.root = root.clone();
        }
        errors.extend(self.apply_layers(None));
        // Discovery starts now; its message waits for `initialized`.
        self.providers.refresh(self.client.clone(), self.config());
        if let Ok(mut e) = self.startup_errors.write() {
            *e = errors;
        }
        tracing::info!(encoding = enc.as_str(), "initialized");
        Ok(InitializeResult {
            capabilities: server_capabilities(enc),
            server_info: Some(ServerInfo { name: "quill".into(), version: Some(env!("CARGO_PKG_VERSION").into()) }),
            offset_encoding: None,
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        let errors = self.startup_errors.write().map(|mut e| std::mem::take(&mut *e)).unwrap_or_default();
        self.show_config_errors(errors).await;
        self.providers.client_ready.store(true, Ordering::SeqCst);
        self.autocomplete.start_status(self.client.clone());
        let providers = self.providers.clone();
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Some(e) = providers.wait_current().await {
                providers.announce(&client, &e.discovery).await;
            }
        });
    }

    async fn shutdown(&self) -> Result<()> {
        self.shutdown_requested.store(true, Ordering::SeqCst);
        tracing::info!("shutdown requested");
        // Replies still streaming are saved (marked cancelled) before the process may exit.
        self.cancel_all_chats().await;
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let doc = params.text_document;
        let limit = self.config().documents.max_parse_bytes;
        self.store.open(convert::uri_key(&doc.uri), &doc.language_id, doc.version, &doc.text, limit);
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let uri = convert::uri_key(&params.text_document.uri);
        let changes: Vec<_> = params.content_changes.into_iter().map(convert::change).collect();
        if let Err(e) = self.store.change(uri, params.text_document.version, &changes, self.encoding()) {
            tracing::warn!(uri, "didChange ignored: {e}");
        }
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let uri = convert::uri_key(&params.text_document.uri);
        if let Some(s) = self.autocomplete.existing() {
            s.close(uri);
        }
        if !self.store.close(uri) {
            tracing::warn!(uri, "didClose for a document that is not open");
        }
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        let empty = match &params.settings {
            Value::Null => true,
            Value::Object(m) => m.is_empty(),
            _ => false,
        };
        let pull = self.session.read().map(|s| s.supports_configuration_pull).unwrap_or(false);
        let settings = if empty && pull {
            // The client signals a change without data: ask for the `quill` section.
            let item = ConfigurationItem { scope_uri: None, section: Some("quill".into()) };
            match self.client.configuration(vec![item]).await {
                Ok(mut v) if !v.is_empty() => v.swap_remove(0),
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!("workspace/configuration failed: {e}");
                    return;
                }
            }
        } else {
            params.settings
        };
        let before = self.config();
        let errors = self.apply_layers(Some(Layer::from_client("workspace/didChangeConfiguration", settings)));
        self.rediscover_if_changed(&before);
        self.show_config_errors(errors).await;
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        // The fallback for editors without inline completion: the same suggestion as one item.
        let manual = params.context.as_ref().is_some_and(|c| c.trigger_kind == CompletionTriggerKind::INVOKED);
        let tdp = params.text_document_position;
        let uri = tdp.text_document.uri.clone();
        let items = match self.suggest(&tdp, manual).await? {
            Some((answer, range)) => vec![autocomplete::menu_item(&uri, &answer, range)],
            None => Vec::new(),
        };
        // Incomplete: the editor asks again as the user types, so the suggestion follows.
        Ok(Some(CompletionResponse::List(CompletionList { is_incomplete: true, items })))
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        self.code_actions(params).await
    }

    async fn code_action_resolve(&self, action: CodeAction) -> Result<CodeAction> {
        self.resolve_code_action(action).await
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> Result<Option<serde_json::Value>> {
        if params.command == autocomplete::ACCEPT_COMMAND {
            let arg = params.arguments.first();
            let uri = arg.and_then(|a| a.get("uri")).and_then(Value::as_str);
            let id = arg.and_then(|a| a.get("id")).and_then(Value::as_u64);
            let (Some(uri), Some(id)) = (uri, id) else {
                return Err(to_rpc(Error::InvalidParams(format!(
                    "`{}` takes one argument {{uri, id}}",
                    autocomplete::ACCEPT_COMMAND
                ))));
            };
            if let Some(s) = self.autocomplete.existing() {
                s.accepted(uri, id);
            }
            return Ok(None);
        }
        match params.command.as_str() {
            ext::EDIT_COMMAND => {
                self.execute_edit(params.arguments, params.work_done_progress_params.work_done_token).await
            }
            ext::EXPLAIN_COMMAND => self.execute_explain(params.arguments).await,
            _ => Err(to_rpc(Error::InvalidParams(format!("unknown command `{}`", params.command)))),
        }
    }
}
