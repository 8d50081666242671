//! Zero-config first run: when the config routes no feature to a provider, find one in the
//! environment and say which and why; when none is found, say exactly how to set one up. Users of
//! similar tools most often report "nothing happens", so Quill never stays silent about this.
//!
//! Order, first match wins: an API key that is set ([`HOSTED`] in order, then AWS credentials for
//! Bedrock), each with default models per feature; else a local Ollama, then a llama.cpp server,
//! that answers a health probe ([`ProbeTargets`]). A config that routes some features but not all
//! has the others filled from a routed sibling, and says so in a note.

use std::time::Duration;

use serde_json::Value;

use super::Env;
use crate::config::{self, Config, Feature, ProviderConfig, ProviderKind};

/// Default models of a hosted vendor picked because its key variable is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostedDefaults {
    pub kind: ProviderKind,
    /// The variable whose presence picks this vendor (the kind's default key variable).
    pub env: &'static str,
    /// Autocomplete: small and fast, since a late suggestion is useless.
    pub completion: &'static str,
    /// Chat and edit.
    pub chat: &'static str,
}

/// The hosted vendors, in the order their keys are looked for.
pub const HOSTED: [HostedDefaults; 4] = [
    HostedDefaults {
        kind: ProviderKind::Anthropic,
        env: "ANTHROPIC_API_KEY",
        completion: "claude-haiku-4-5",
        chat: "claude-sonnet-4-5",
    },
    HostedDefaults { kind: ProviderKind::Openai, env: "OPENAI_API_KEY", completion: "gpt-4.1-mini", chat: "gpt-4.1" },
    HostedDefaults {
        kind: ProviderKind::Gemini,
        env: "GEMINI_API_KEY",
        completion: "gemini-2.5-flash-lite",
        chat: "gemini-2.5-flash",
    },
    HostedDefaults {
        kind: ProviderKind::Fireworks,
        env: "FIREWORKS_API_KEY",
        completion: "accounts/fireworks/models/qwen2p5-coder-32b-instruct",
        chat: "accounts/fireworks/models/llama-v3p3-70b-instruct",
    },
];

/// Bedrock's models, without the inference-profile prefix (`us.`, `eu.`, `global.`) that
/// [`bedrock_models`] adds for the region.
pub const BEDROCK_COMPLETION: &str = "anthropic.claude-haiku-4-5-20251001-v1:0";
pub const BEDROCK_CHAT: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";

/// Where local servers are looked for unless [`ProbeTargets`] says otherwise.
pub const OLLAMA_URL: &str = "http://127.0.0.1:11434";
pub const LLAMACPP_URL: &str = "http://127.0.0.1:8080";
/// What to pull when Ollama runs without a model: small, and trained for fill-in-the-middle.
pub const OLLAMA_SUGGESTED_MODEL: &str = "qwen2.5-coder:1.5b-base";

/// Probes must not delay startup: a local server answers in milliseconds or not at all.
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The (completion, chat) models on Bedrock for a region: cross-region inference profiles, which
/// on-demand use of these models requires. US regions (and no region: the backend's default is
/// `us-east-1`) use `us.`, EU regions `eu.`, all others `global.`.
pub fn bedrock_models(region: Option<&str>) -> (String, String) {
    let prefix = match region {
        None => "us",
        Some(r) if r.starts_with("us-") => "us",
        Some(r) if r.starts_with("eu-") => "eu",
        Some(_) => "global",
    };
    (format!("{prefix}.{BEDROCK_COMPLETION}"), format!("{prefix}.{BEDROCK_CHAT}"))
}

/// The base URLs probed for local servers; `None` skips a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTargets {
    pub ollama: Option<String>,
    pub llamacpp: Option<String>,
}

impl Default for ProbeTargets {
    fn default() -> Self {
        ProbeTargets { ollama: Some(OLLAMA_URL.into()), llamacpp: Some(LLAMACPP_URL.into()) }
    }
}

impl ProbeTargets {
    /// Test hook: a base URL (or `off`) that replaces the Ollama probe's default.
    pub const OLLAMA_VAR: &'static str = "QUILL_PROBE_OLLAMA";
    /// Test hook: a base URL (or `off`) that replaces the llama.cpp probe's default.
    pub const LLAMACPP_VAR: &'static str = "QUILL_PROBE_LLAMACPP";

    /// Probe nothing.
    pub fn none() -> Self {
        ProbeTargets { ollama: None, llamacpp: None }
    }

    /// The defaults, unless the test hooks [`Self::OLLAMA_VAR`] / [`Self::LLAMACPP_VAR`] say
    /// otherwise. They exist so tests never depend on what runs on the machine's usual ports.
    pub fn from_env(env: &Env) -> Self {
        let pick = |var: &str, default: &str| match env(var).map(|v| v.trim().to_owned()) {
            Some(v) if v.eq_ignore_ascii_case("off") => None,
            Some(v) if !v.is_empty() => Some(v.trim_end_matches('/').to_owned()),
            _ => Some(default.to_owned()),
        };
        ProbeTargets { ollama: pick(Self::OLLAMA_VAR, OLLAMA_URL), llamacpp: pick(Self::LLAMACPP_VAR, LLAMACPP_URL) }
    }
}

/// A provider found in the environment, before it is merged into a config.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Its name in the effective config: its kind's name.
    pub name: String,
    /// Its settings; `model` is the chat and edit model.
    pub provider: ProviderConfig,
    /// The autocomplete model, when it differs from `provider.model`.
    pub completion_model: Option<String>,
    /// Why it was picked, e.g. "ANTHROPIC_API_KEY is set".
    pub reason: String,
}

/// Where the effective config's providers come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// The user's config routes at least one feature, or defines a provider.
    Configured,
    /// Nothing was configured; this provider was found in the environment.
    Discovered { name: String, kind: ProviderKind, reason: String },
    /// Nothing configured and nothing found.
    Missing,
}

/// The config Quill runs on and how it came about.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    /// The effective config: the user's, with unrouted features filled in (from a sibling
    /// feature, or from the provider found in the environment).
    pub config: Config,
    pub origin: Origin,
    /// Things worth telling the user: features filled in, other keys also set, a local server
    /// that answers but cannot serve yet.
    pub notes: Vec<String>,
}

impl Discovery {
    /// The provider picked from the environment and why: `(name, reason)`.
    pub fn chosen(&self) -> Option<(&str, &str)> {
        match &self.origin {
            Origin::Discovered { name, reason, .. } => Some((name, reason)),
            _ => None,
        }
    }

    /// Whether any feature has a provider.
    pub fn is_usable(&self) -> bool {
        Feature::ALL.iter().any(|f| self.config.route(*f).is_some())
    }

    /// Whether `feature` has a provider.
    pub fn serves(&self, feature: Feature) -> bool {
        self.config.route(feature).is_some()
    }

    /// What to tell a user who configured nothing: the provider picked and why, or how to set
    /// one up. `None` when the user configured a provider.
    pub fn announcement(&self) -> Option<String> {
        match &self.origin {
            Origin::Configured => None,
            Origin::Discovered { name, reason, .. } => {
                let models: Vec<String> =
                    Feature::ALL.iter().map(|f| format!("{}: {}", f.as_str(), self.model(*f))).collect();
                let mut s = format!("No provider configured; using {name} because {reason} ({}).", models.join(", "));
                for note in &self.notes {
                    s.push(' ');
                    s.push_str(note);
                }
                s.push_str(&format!(" To choose another, add `[providers.<name>]` to {}.", config_files()));
                Some(s)
            }
            Origin::Missing => Some(self.advice(None)),
        }
    }

    /// The answer to a request for `feature` when it has no provider: how to set one up, with
    /// what the search found (say, Ollama running without models).
    pub fn advice(&self, feature: Option<Feature>) -> String {
        let mut s = advice_for(feature);
        if !self.notes.is_empty() {
            s.push_str("\nFound: ");
            s.push_str(&self.notes.join(" "));
        }
        s
    }

    /// The model a feature uses, for display.
    pub fn model(&self, feature: Feature) -> String {
        let Some((_, p)) = self.config.route(feature) else { return "none".into() };
        self.config.feature(feature).model.clone().or_else(|| p.model.clone()).unwrap_or_else(|| "(default)".into())
    }
}

/// How to set up a provider for `feature`: short and complete. Used whenever a feature has none.
pub fn setup_advice(feature: Feature) -> String {
    advice_for(Some(feature))
}

fn feature_label(feature: Feature) -> &'static str {
    match feature {
        Feature::Completion => "autocomplete",
        Feature::Chat => "chat",
        Feature::Edit => "edits",
    }
}

fn config_files() -> String {
    match config::user_config_path() {
        Some(p) => format!("quill.toml (workspace) or {}", p.display()),
        None => "quill.toml (workspace) or the user config file".into(),
    }
}

fn advice_for(feature: Option<Feature>) -> String {
    let what = match feature {
        Some(f) => format!("Quill has no AI provider for {}.", feature_label(f)),
        None => "Quill found no AI provider: no API key is set and no local model server answers.".into(),
    };
    let feature_key = feature.unwrap_or(Feature::Completion).as_str();
    format!(
        "{what} Any one of these sets one up:\n\
         1. Set an API key in the environment the editor starts from, then restart the editor: \
         ANTHROPIC_API_KEY, OPENAI_API_KEY, GEMINI_API_KEY, FIREWORKS_API_KEY, or AWS credentials for \
         Bedrock (AWS_BEARER_TOKEN_BEDROCK, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).\n\
         2. Start a local server: Ollama on port 11434 (`ollama pull {OLLAMA_SUGGESTED_MODEL}`), or llama.cpp's \
         `llama-server` on port 8080. The editor finds it on a later request, without a restart.\n\
         3. Name one in {files}, e.g.\n   \
         [providers.mine]\n   kind = \"openai-compatible\"\n   base_url = \"http://localhost:8000/v1\"\n   \
         model = \"<model>\"\n   [{feature_key}]\n   provider = \"mine\"\n\
         Then run `quill check --ping` to test it.",
        files = config_files(),
    )
}

/// The effective config for `config`: the user's routing if any, else a provider found in `env`
/// or by probing `probes`.
pub async fn discover(config: &Config, env: &Env, probes: &ProbeTargets) -> Discovery {
    if let Some(d) = from_config(config, env) {
        return d;
    }
    let (found, notes) = detect(env, probes).await;
    with_found(config, found, notes)
}

/// The user's config, with unrouted features filled in; `None` if it defines no provider.
pub fn from_config(config: &Config, env: &Env) -> Option<Discovery> {
    let routed: Vec<Feature> = Feature::ALL.into_iter().filter(|f| config.route(*f).is_some()).collect();
    let mut effective = config.clone();
    let mut notes = Vec::new();
    if routed.is_empty() {
        // Providers defined but none named by a feature: the user surely meant one of them.
        let names: Vec<&String> = config.providers.keys().collect();
        let first = (*names.first()?).clone();
        for feature in Feature::ALL {
            *effective.route_mut(feature).0 = Some(first.clone());
        }
        let why = if names.len() == 1 {
            "the only one defined".to_owned()
        } else {
            let all: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
            format!("the first of {}", all.join(", "))
        };
        notes.push(format!(
            "No feature names a provider, so completion, chat and edit use `{first}`, {why}; \
             set `[completion] provider` (and chat, edit) to choose."
        ));
        fill_completion_model(&mut effective, env, &mut notes);
        return Some(Discovery { config: effective, origin: Origin::Configured, notes });
    }
    for feature in Feature::ALL {
        if routed.contains(&feature) {
            continue;
        }
        // Edit is closest to chat, and autocomplete to whatever else is there.
        let donors: [Feature; 2] = match feature {
            Feature::Completion => [Feature::Chat, Feature::Edit],
            Feature::Chat => [Feature::Edit, Feature::Completion],
            Feature::Edit => [Feature::Chat, Feature::Completion],
        };
        let Some(donor) = donors.into_iter().find(|d| routed.contains(d)) else { continue };
        let donor_cfg = config.feature(donor);
        let Some(name) = donor_cfg.provider.clone() else { continue };
        let provider_model = config.providers.get(&name).and_then(|p| p.model.clone());
        let (provider, model) = effective.route_mut(feature);
        *provider = Some(name.clone());
        if model.is_none() && provider_model.is_none() {
            *model = donor_cfg.model.clone();
        }
        notes.push(format!(
            "`[{f}] provider` is not set, so {f} uses `{name}` like {d}.",
            f = feature.as_str(),
            d = donor.as_str()
        ));
    }
    if !routed.contains(&Feature::Completion) {
        fill_completion_model(&mut effective, env, &mut notes);
    }
    Some(Discovery { config: effective, origin: Origin::Configured, notes })
}

/// Autocomplete filled in from a chat provider would run on the chat model, which is too slow
/// for it; a hosted vendor's fast default is used instead when the endpoint is the vendor's own.
fn fill_completion_model(config: &mut Config, env: &Env, notes: &mut Vec<String>) {
    if config.completion.model.is_some() {
        return;
    }
    let Some((_, p)) = config.route(Feature::Completion) else { return };
    if p.base_url.is_some() {
        return;
    }
    let model = match p.kind {
        ProviderKind::Bedrock => {
            let region = p.region.clone().or_else(|| aws_region(env));
            Some(bedrock_models(region.as_deref()).0)
        }
        kind => HOSTED.iter().find(|h| h.kind == kind).map(|h| h.completion.to_owned()),
    };
    if let Some(model) = model
        && p.model.as_deref() != Some(model.as_str())
    {
        notes.push(format!("Autocomplete uses {model}, a faster model; set `[completion] model` to change it."));
        config.completion.model = Some(model);
    }
}

/// `config` with `found` routed to every feature that has no provider.
pub fn with_found(config: &Config, found: Option<Found>, notes: Vec<String>) -> Discovery {
    let Some(found) = found else {
        return Discovery { config: config.clone(), origin: Origin::Missing, notes };
    };
    let mut effective = config.clone();
    effective.providers.insert(found.name.clone(), found.provider.clone());
    for feature in Feature::ALL {
        let (provider, _) = effective.route_mut(feature);
        if provider.is_none() {
            *provider = Some(found.name.clone());
        }
    }
    if effective.completion.model.is_none() {
        effective.completion.model = found.completion_model.clone();
    }
    let origin = Origin::Discovered { name: found.name, kind: found.provider.kind, reason: found.reason };
    Discovery { config: effective, origin, notes }
}

fn var(env: &Env, name: &str) -> Option<String> {
    env(name).filter(|v| !v.trim().is_empty())
}

fn aws_region(env: &Env) -> Option<String> {
    var(env, "AWS_REGION").or_else(|| var(env, "AWS_DEFAULT_REGION"))
}

/// Look for a provider: keys first (no network), then local servers. Also returns notes.
pub async fn detect(env: &Env, probes: &ProbeTargets) -> (Option<Found>, Vec<String>) {
    let mut notes = Vec::new();
    if let Some(found) = from_keys(env, &mut notes) {
        return (Some(found), notes);
    }
    let found = probe(probes, &mut notes).await;
    (found, notes)
}

/// A hosted vendor whose key is set, in [`HOSTED`] order, then Bedrock.
pub fn from_keys(env: &Env, notes: &mut Vec<String>) -> Option<Found> {
    let mut candidates: Vec<(Found, &'static str)> = Vec::new();
    for h in HOSTED {
        if var(env, h.env).is_some() {
            let mut provider = ProviderConfig::new(h.kind);
            provider.model = Some(h.chat.into());
            let found = Found {
                name: h.kind.as_str().into(),
                provider,
                completion_model: Some(h.completion.into()),
                reason: format!("{} is set", h.env),
            };
            candidates.push((found, h.env));
        }
    }
    let bearer = var(env, "AWS_BEARER_TOKEN_BEDROCK").is_some();
    let sigv4 = var(env, "AWS_ACCESS_KEY_ID").is_some() && var(env, "AWS_SECRET_ACCESS_KEY").is_some();
    if bearer || sigv4 {
        let region = aws_region(env);
        let (completion, chat) = bedrock_models(region.as_deref());
        let mut provider = ProviderConfig::new(ProviderKind::Bedrock);
        provider.model = Some(chat);
        let vars = if bearer {
            "AWS_BEARER_TOKEN_BEDROCK is set"
        } else {
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set"
        };
        let region = region.unwrap_or_else(|| "us-east-1".into());
        let found = Found {
            name: "bedrock".into(),
            provider,
            completion_model: Some(completion),
            reason: format!("{vars} (region {region})"),
        };
        candidates.push((found, if bearer { "AWS_BEARER_TOKEN_BEDROCK" } else { "AWS_ACCESS_KEY_ID" }));
    }
    let mut candidates = candidates.into_iter();
    let (first, _) = candidates.next()?;
    let others: Vec<&str> = candidates.map(|(_, var)| var).collect();
    if !others.is_empty() {
        notes.push(format!("Also set: {}.", others.join(", ")));
    }
    Some(first)
}

/// What a local server said to its probe.
#[derive(Debug, Clone, PartialEq)]
enum Local {
    /// Not there, or not the server we expected.
    Absent,
    /// Ollama and its models, most recent first.
    Ollama(Vec<String>),
    /// llama.cpp, with the model it serves if it said, and whether it is still loading.
    LlamaCpp { model: Option<String>, loading: bool },
}

/// A client of its own, built once: no proxy (these are loopback probes) and tight timeouts.
fn probe_client() -> Option<&'static reqwest::Client> {
    static CLIENT: std::sync::OnceLock<Option<reqwest::Client>> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(PROBE_CONNECT_TIMEOUT)
                .timeout(PROBE_TIMEOUT)
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("quill/", env!("CARGO_PKG_VERSION")))
                .build()
                .inspect_err(|e| tracing::warn!("cannot start the HTTP client for local probes: {e}"))
                .ok()
        })
        .as_ref()
}

async fn probe(targets: &ProbeTargets, notes: &mut Vec<String>) -> Option<Found> {
    if targets.ollama.is_none() && targets.llamacpp.is_none() {
        return None;
    }
    let client = probe_client()?;
    let (ollama, llamacpp) = tokio::join!(
        async {
            match &targets.ollama {
                Some(url) => probe_ollama(client, url).await,
                None => Local::Absent,
            }
        },
        async {
            match &targets.llamacpp {
                Some(url) => probe_llamacpp(client, url).await,
                None => Local::Absent,
            }
        },
    );
    if let (Local::Ollama(models), Some(url)) = (&ollama, &targets.ollama) {
        if let Some(found) = ollama_found(url, models) {
            return Some(found);
        }
        notes
            .push(format!("Ollama is running at {url} but has no models: run `ollama pull {OLLAMA_SUGGESTED_MODEL}`."));
    }
    if let (Local::LlamaCpp { model, loading }, Some(url)) = (llamacpp, &targets.llamacpp) {
        let mut provider = ProviderConfig::new(ProviderKind::Llamacpp);
        provider.base_url = Some(url.clone());
        provider.model = model;
        let mut reason = format!("a llama.cpp server answers at {url}");
        if loading {
            reason.push_str(" (still loading its model)");
        }
        return Some(Found { name: "llamacpp".into(), provider, completion_model: None, reason });
    }
    None
}

fn ollama_found(url: &str, models: &[String]) -> Option<Found> {
    let chat = pick_chat_model(models)?;
    let completion = pick_completion_model(models)?;
    let mut provider = ProviderConfig::new(ProviderKind::Ollama);
    provider.base_url = Some(url.to_owned());
    provider.model = Some(chat.to_owned());
    Some(Found {
        name: "ollama".into(),
        provider,
        completion_model: (completion != chat).then(|| completion.to_owned()),
        reason: format!("Ollama answers at {url}"),
    })
}

fn is_embedding(name: &str) -> bool {
    name.to_ascii_lowercase().contains("embed")
}

fn is_base(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("-base") || n.contains(":base") || n.contains("_base")
}

/// For autocomplete: a coder model (a base one first: FIM-trained and fast), then any code
/// model, then the first model. Embedding models cannot generate and are skipped.
pub fn pick_completion_model(models: &[String]) -> Option<&str> {
    let usable: Vec<&str> = models.iter().map(String::as_str).filter(|m| !is_embedding(m)).collect();
    let lower = |m: &&str| m.to_ascii_lowercase();
    usable
        .iter()
        .find(|m| lower(m).contains("coder") && is_base(m))
        .or_else(|| usable.iter().find(|m| lower(m).contains("coder")))
        .or_else(|| usable.iter().find(|m| lower(m).contains("code")))
        .or_else(|| usable.first())
        .copied()
}

/// For chat and edit: the first model that is not a base model (base models do not follow
/// instructions), else the first.
pub fn pick_chat_model(models: &[String]) -> Option<&str> {
    let usable: Vec<&str> = models.iter().map(String::as_str).filter(|m| !is_embedding(m)).collect();
    usable.iter().find(|m| !is_base(m)).or_else(|| usable.first()).copied()
}

async fn get_json(client: &reqwest::Client, url: &str) -> Option<(u16, Value)> {
    let resp = match client.get(url).send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(url, "probe: no answer: {e}");
            return None;
        }
    };
    let status = resp.status().as_u16();
    let body = resp.bytes().await.ok()?;
    let value = serde_json::from_slice(&body).ok();
    if value.is_none() {
        tracing::debug!(url, status, "probe: the answer is not JSON");
    }
    Some((status, value?))
}

async fn probe_ollama(client: &reqwest::Client, base: &str) -> Local {
    let Some((200, body)) = get_json(client, &format!("{base}/api/tags")).await else { return Local::Absent };
    let Some(list) = body.get("models").and_then(Value::as_array) else { return Local::Absent };
    let names = list
        .iter()
        .filter_map(|m| m.get("name").or_else(|| m.get("model")).and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    Local::Ollama(names)
}

async fn probe_llamacpp(client: &reqwest::Client, base: &str) -> Local {
    let loading = match get_json(client, &format!("{base}/health")).await {
        Some((200, body)) if body.get("status").and_then(Value::as_str) == Some("ok") => false,
        // 503 while the model loads: it will serve soon, so it still counts.
        Some((503, body)) if body.pointer("/error/message").and_then(Value::as_str).is_some() => true,
        _ => return Local::Absent,
    };
    // The model's name, for display; llama.cpp serves whatever it loaded, whatever is asked.
    let model = match get_json(client, &format!("{base}/v1/models")).await {
        Some((200, body)) => body.pointer("/data/0/id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    Local::LlamaCpp { model, loading }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::env_from;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn keys_are_taken_in_order_and_the_others_are_noted() {
        let env = env_from(&[("GEMINI_API_KEY", "g"), ("OPENAI_API_KEY", "o"), ("FIREWORKS_API_KEY", "")]);
        let mut notes = Vec::new();
        let found = from_keys(&env, &mut notes).expect("found");
        assert_eq!((found.name.as_str(), found.reason.as_str()), ("openai", "OPENAI_API_KEY is set"));
        assert_eq!(found.provider.model.as_deref(), Some("gpt-4.1"));
        assert_eq!(found.completion_model.as_deref(), Some("gpt-4.1-mini"));
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("GEMINI_API_KEY") && !notes[0].contains("FIREWORKS"), "{notes:?}");
    }

    #[test]
    fn aws_credentials_pick_bedrock_with_profiles_for_the_region() {
        let env =
            env_from(&[("AWS_ACCESS_KEY_ID", "AKID"), ("AWS_SECRET_ACCESS_KEY", "s"), ("AWS_REGION", "eu-west-1")]);
        let found = from_keys(&env, &mut Vec::new()).expect("found");
        assert_eq!(found.provider.kind, ProviderKind::Bedrock);
        assert_eq!(found.provider.model.as_deref(), Some("eu.anthropic.claude-sonnet-4-5-20250929-v1:0"));
        assert!(found.reason.contains("eu-west-1"), "{}", found.reason);
        // A key id alone is not a credential.
        assert_eq!(from_keys(&env_from(&[("AWS_ACCESS_KEY_ID", "AKID")]), &mut Vec::new()), None);
        let found = from_keys(&env_from(&[("AWS_BEARER_TOKEN_BEDROCK", "t")]), &mut Vec::new()).expect("found");
        assert_eq!(found.completion_model.as_deref(), Some("us.anthropic.claude-haiku-4-5-20251001-v1:0"));
    }

    #[test]
    fn model_picks_prefer_coder_models_for_completion_and_instruct_ones_for_chat() {
        let models = names(&["nomic-embed-text", "llama3.2:3b", "qwen2.5-coder:7b", "qwen2.5-coder:1.5b-base"]);
        assert_eq!(pick_completion_model(&models), Some("qwen2.5-coder:1.5b-base"));
        assert_eq!(pick_chat_model(&models), Some("llama3.2:3b"));
        let models = names(&["codellama:7b-code", "mistral"]);
        assert_eq!(pick_completion_model(&models), Some("codellama:7b-code"));
        let models = names(&["starcoder2:3b-base"]);
        assert_eq!(
            (pick_completion_model(&models), pick_chat_model(&models)),
            (Some("starcoder2:3b-base"), Some("starcoder2:3b-base"))
        );
        assert_eq!(pick_chat_model(&names(&["all-minilm-embed"])), None);
    }

    #[test]
    fn a_partial_config_is_filled_from_a_sibling_and_says_so() {
        let mut config = Config::default();
        let mut claude = ProviderConfig::new(ProviderKind::Anthropic);
        claude.model = Some("claude-opus-4-1".into());
        config.providers.insert("claude".into(), claude);
        config.chat.provider = Some("claude".into());
        let d = from_config(&config, &env_from(&[])).expect("configured");
        assert_eq!(d.origin, Origin::Configured);
        assert_eq!(d.config.route(Feature::Edit).map(|(n, _)| n), Some("claude"));
        assert_eq!(d.model(Feature::Edit), "claude-opus-4-1");
        // Autocomplete gets the vendor's fast model rather than the chat model.
        assert_eq!(d.model(Feature::Completion), "claude-haiku-4-5");
        assert_eq!(d.notes.len(), 3, "{:?}", d.notes);
        assert!(d.notes[1].contains("edit uses `claude` like chat"), "{:?}", d.notes);
        assert_eq!(d.announcement(), None);
    }

    #[test]
    fn defined_but_unrouted_providers_are_used() {
        let mut config = Config::default();
        let mut local = ProviderConfig::new(ProviderKind::Ollama);
        local.model = Some("qwen2.5-coder:7b".into());
        config.providers.insert("local".into(), local);
        let d = from_config(&config, &env_from(&[])).expect("configured");
        assert!(Feature::ALL.iter().all(|f| d.config.route(*f).map(|(n, _)| n) == Some("local")));
        assert!(d.notes[0].contains("the only one defined"), "{:?}", d.notes);
        assert_eq!(from_config(&Config::default(), &env_from(&[])), None);
    }

    #[tokio::test]
    async fn nothing_found_gives_advice_naming_every_way() {
        let d = discover(&Config::default(), &env_from(&[]), &ProbeTargets::none()).await;
        assert_eq!(d.origin, Origin::Missing);
        assert!(!d.is_usable());
        let text = d.announcement().expect("advice");
        for needle in [
            "ANTHROPIC_API_KEY",
            "AWS_ACCESS_KEY_ID",
            "ollama pull",
            "llama-server",
            "[providers.mine]",
            "quill check --ping",
        ] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
        assert!(setup_advice(Feature::Chat).contains("no AI provider for chat"));
    }

    #[tokio::test]
    async fn a_discovered_key_is_announced_with_its_models() {
        let env = env_from(&[("ANTHROPIC_API_KEY", "sk-ant-secret-value")]);
        let d = discover(&Config::default(), &env, &ProbeTargets::none()).await;
        assert_eq!(d.chosen(), Some(("anthropic", "ANTHROPIC_API_KEY is set")));
        assert_eq!(d.model(Feature::Completion), "claude-haiku-4-5");
        assert_eq!(d.model(Feature::Edit), "claude-sonnet-4-5");
        let text = d.announcement().expect("announcement");
        assert!(
            text.starts_with(
                "No provider configured; using anthropic because ANTHROPIC_API_KEY is set \
             (completion: claude-haiku-4-5, chat: claude-sonnet-4-5, edit: claude-sonnet-4-5)."
            ),
            "{text}"
        );
        assert!(!text.contains("sk-ant-secret-value"));
    }

    #[test]
    fn probe_targets_come_from_the_test_hooks() {
        let env = env_from(&[("QUILL_PROBE_OLLAMA", "http://127.0.0.1:1/"), ("QUILL_PROBE_LLAMACPP", "off")]);
        let t = ProbeTargets::from_env(&env);
        assert_eq!(t, ProbeTargets { ollama: Some("http://127.0.0.1:1".into()), llamacpp: None });
        assert_eq!(ProbeTargets::from_env(&env_from(&[])), ProbeTargets::default());
    }
}
