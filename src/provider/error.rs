//! Provider errors: each names the provider, says what went wrong and what to do, and never
//! carries a secret.

use std::{fmt, time::Duration};

/// What went wrong, in classes a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// No provider is configured or discoverable for a feature.
    NotConfigured,
    /// The provider's settings are incomplete or contradictory (the detail says which key).
    Config,
    /// The environment variable that should hold the key is not set.
    MissingKey { env: String },
    /// 401/403: the key (or signature, or token) was rejected.
    Auth { status: u16, env: Option<String> },
    /// 404: model or deployment not found.
    NotFound { status: u16, model: Option<String> },
    /// 429: slow down. `retry_after` on the error says how long, when the vendor said.
    RateLimited,
    /// 429 that waiting will not fix: quota or spend limit exhausted.
    QuotaExceeded,
    /// 529, 503: the vendor is overloaded; retrying later helps.
    Overloaded { status: u16 },
    /// Another 5xx.
    Server { status: u16 },
    /// Another 4xx: the request was refused as invalid.
    BadRequest { status: u16 },
    /// The endpoint cannot do what was asked (llama.cpp `/infill` without FIM tokens, say).
    Unsupported,
    /// The HTTP answer was 200, then the stream carried an error.
    InStream,
    /// The stream ended before its end marker. `received` characters of text had arrived.
    Incomplete { received: usize },
    /// Bytes that are not the vendor's protocol.
    Malformed,
    /// A deadline passed.
    Timeout { phase: TimeoutPhase, after: Duration },
    /// No connection: refused, DNS, TLS.
    Connect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    Connect,
    FirstByte,
    Idle,
    Total,
}

/// An error from a provider, ready to show a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    /// The provider's name in config, or its kind for discovered ones.
    pub provider: String,
    /// The wire protocol (`anthropic`, `openai`, ...).
    pub kind_name: &'static str,
    pub kind: ErrorKind,
    /// What the vendor said, shortened and scrubbed of secrets.
    pub detail: String,
    /// How long the vendor asked us to wait.
    pub retry_after: Option<Duration>,
    /// The vendor said a retry cannot help (Anthropic's `x-should-retry: false`).
    pub no_retry: bool,
}

impl ProviderError {
    pub fn new(provider: &str, kind_name: &'static str, kind: ErrorKind, detail: impl Into<String>) -> Self {
        ProviderError {
            provider: provider.to_owned(),
            kind_name,
            kind,
            detail: detail.into(),
            retry_after: None,
            no_retry: false,
        }
    }

    /// Worth retrying for chat and edit, before any byte streamed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::RateLimited | ErrorKind::Overloaded { .. } | ErrorKind::Server { .. } | ErrorKind::Connect
        ) || matches!(self.kind, ErrorKind::Timeout { phase: TimeoutPhase::Connect, .. })
    }

    /// A short name of the class, for logs.
    pub fn kind_label(&self) -> &'static str {
        match self.kind {
            ErrorKind::NotConfigured => "not_configured",
            ErrorKind::Config => "config",
            ErrorKind::MissingKey { .. } => "missing_key",
            ErrorKind::Auth { .. } => "auth",
            ErrorKind::NotFound { .. } => "not_found",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::Overloaded { .. } => "overloaded",
            ErrorKind::Server { .. } => "server",
            ErrorKind::BadRequest { .. } => "bad_request",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::InStream => "in_stream",
            ErrorKind::Incomplete { .. } => "incomplete",
            ErrorKind::Malformed => "malformed",
            ErrorKind::Timeout { .. } => "timeout",
            ErrorKind::Connect => "connect",
        }
    }

    fn advice(&self) -> String {
        let p = &self.provider;
        match &self.kind {
            ErrorKind::NotConfigured | ErrorKind::Config => String::new(),
            ErrorKind::MissingKey { env } => {
                format!("set ${env}, or name another variable in `providers.{p}.api_key_env`")
            }
            ErrorKind::Auth { env: Some(env), .. } => {
                format!("check that ${env} holds a current key with access to this model")
            }
            ErrorKind::Auth { env: None, .. } => "check the provider's credentials".into(),
            ErrorKind::NotFound { .. } => format!("check `providers.{p}.model` and `providers.{p}.base_url`"),
            ErrorKind::RateLimited => match self.retry_after {
                Some(d) => format!("retry in {}", human(d)),
                None => "wait a little and retry".into(),
            },
            ErrorKind::QuotaExceeded => "check the account's quota or billing; retrying will not help".into(),
            ErrorKind::Overloaded { .. } | ErrorKind::Server { .. } => "the vendor's side failed; retry later".into(),
            ErrorKind::BadRequest { .. } => {
                "this is likely a Quill bug or an unsupported setting; please report it".into()
            }
            ErrorKind::Unsupported => format!("set `providers.{p}.completion_mode` to another mode"),
            ErrorKind::InStream => "retry; if it persists, the vendor's status page may say more".into(),
            ErrorKind::Incomplete { .. } => "the text so far is kept; retry for the rest".into(),
            ErrorKind::Malformed => format!("check that `providers.{p}.kind` matches the server at its base_url"),
            ErrorKind::Timeout { phase, .. } => {
                let key = match phase {
                    TimeoutPhase::Connect => "connect_timeout_ms",
                    TimeoutPhase::FirstByte => "first_byte_timeout_ms",
                    TimeoutPhase::Idle => "idle_timeout_ms",
                    TimeoutPhase::Total => "total_timeout_ms",
                };
                format!("check the server, or raise `providers.{p}.{key}`")
            }
            ErrorKind::Connect => format!("check `providers.{p}.base_url` and that the server is running"),
        }
    }

    fn summary(&self) -> String {
        match &self.kind {
            ErrorKind::NotConfigured | ErrorKind::Config => String::new(),
            ErrorKind::MissingKey { env } => format!("needs an API key, but ${env} is not set"),
            ErrorKind::Auth { status, env: Some(env) } => format!("rejected the key from ${env} (HTTP {status})"),
            ErrorKind::Auth { status, env: None } => format!("rejected the credentials (HTTP {status})"),
            ErrorKind::NotFound { status, model: Some(m) } => {
                format!("model or deployment `{m}` was not found (HTTP {status})")
            }
            ErrorKind::NotFound { status, model: None } => format!("endpoint not found (HTTP {status})"),
            ErrorKind::RateLimited => "is rate-limiting requests (HTTP 429)".into(),
            ErrorKind::QuotaExceeded => "refused: quota or spend limit reached (HTTP 429)".into(),
            ErrorKind::Overloaded { status } => format!("is overloaded (HTTP {status})"),
            ErrorKind::Server { status } => format!("failed with HTTP {status}"),
            ErrorKind::BadRequest { status } => format!("refused the request (HTTP {status})"),
            ErrorKind::Unsupported => "cannot serve this request".into(),
            ErrorKind::InStream => "sent an error in the middle of its answer".into(),
            ErrorKind::Incomplete { received } => {
                format!("stream ended before it was complete (after {received} characters)")
            }
            ErrorKind::Malformed => "sent data that is not its protocol".into(),
            ErrorKind::Timeout { phase, after } => match phase {
                TimeoutPhase::Connect => format!("could not be reached within {}", human(*after)),
                TimeoutPhase::FirstByte => format!("did not start answering within {}", human(*after)),
                TimeoutPhase::Idle => format!("stalled: no data for {}", human(*after)),
                TimeoutPhase::Total => format!("did not finish within {}", human(*after)),
            },
            ErrorKind::Connect => "could not be reached".into(),
        }
    }
}

fn human(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else if d.as_secs() < 120 {
        format!("{:.0} s", d.as_secs_f64().ceil())
    } else {
        format!("{} min", d.as_secs().div_ceil(60))
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if matches!(self.kind, ErrorKind::NotConfigured | ErrorKind::Config) {
            return f.write_str(&self.detail);
        }
        write!(f, "provider `{}` ({}) {}", self.provider, self.kind_name, self.summary())?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail.trim_end_matches('.'))?;
        }
        let advice = self.advice();
        if !advice.is_empty() {
            write!(f, ". To fix: {advice}.")?;
        }
        Ok(())
    }
}

impl std::error::Error for ProviderError {}

/// Shorten a vendor's message for display and remove anything that looks like a secret we hold.
pub fn scrub(message: &str, secrets: &[String]) -> String {
    let mut s: String = message.chars().filter(|c| !c.is_control() || *c == ' ').collect();
    for secret in secrets {
        if secret.len() >= 4 {
            s = s.replace(secret.as_str(), "<redacted>");
        }
    }
    const MAX: usize = 400;
    if s.len() > MAX {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_provider_the_cause_and_the_fix() {
        let e = ProviderError::new(
            "claude",
            "anthropic",
            ErrorKind::Auth { status: 401, env: Some("ANTHROPIC_API_KEY".into()) },
            "invalid x-api-key",
        );
        assert_eq!(
            e.to_string(),
            "provider `claude` (anthropic) rejected the key from $ANTHROPIC_API_KEY (HTTP 401): invalid x-api-key. \
             To fix: check that $ANTHROPIC_API_KEY holds a current key with access to this model."
        );
        let mut e = ProviderError::new("gpt", "openai", ErrorKind::RateLimited, "");
        e.retry_after = Some(Duration::from_millis(2500));
        assert_eq!(
            e.to_string(),
            "provider `gpt` (openai) is rate-limiting requests (HTTP 429). To fix: retry in 3 s."
        );
    }

    #[test]
    fn scrub_removes_secrets_and_controls() {
        assert_eq!(scrub("bad key sk-12345\n\x1b[31m", &["sk-12345".into()]), "bad key <redacted>[31m");
        assert!(scrub(&"x".repeat(1000), &[]).len() < 410);
    }
}
