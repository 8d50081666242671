//! Claude on Google Vertex AI (`:streamRawPredict`): the Anthropic Messages wire, authorised by
//! an OAuth access token that a Google service-account key mints (RFC 7523 JWT bearer grant).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{
    Method,
    header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue},
};
use serde::Serialize;
use serde_json::Value;

use super::{
    ChatRequest, Ctx, ErrorKind, EventStream, ProviderError,
    anthropic::{self, ClaudeHost, MessagesParser, Shape},
    http::{self, Framing, Outgoing, Retry},
};
use crate::config::Secret;

const DEFAULT_REGION: &str = "us-east5";
const BODY_VERSION: &str = "vertex-2023-10-16";
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const GRANT_TYPE: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";
/// A token is replaced this long before it expires, so no request goes out with one that
/// lapses on the way.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// The longest lifetime Google grants an assertion.
const ASSERTION_LIFETIME: u64 = 3600;

pub(crate) struct Vertex {
    url: String,
    account: ServiceAccount,
    /// The current access token. An async lock held across the fetch, so that concurrent
    /// requests wait for one token instead of each minting their own.
    token: tokio::sync::Mutex<Option<Token>>,
}

/// What a service-account key file provides. No `Debug`: it holds the private key.
struct ServiceAccount {
    path: PathBuf,
    client_email: String,
    private_key_id: Option<String>,
    token_uri: String,
    project_id: Option<String>,
    key: EncodingKey,
}

struct Token {
    value: Secret,
    refresh_at: Instant,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

impl Vertex {
    pub fn new(ctx: &Ctx) -> Result<Self, ProviderError> {
        let model = ctx.require_model()?;
        anthropic::check_completion_mode(ctx)?;
        let Some(path) = ctx
            .config
            .credentials_file
            .clone()
            .or_else(|| ctx.var("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from))
        else {
            return Err(ctx.config_error(format!(
                "needs a Google service-account key: set `providers.{}.credentials_file` or \
                 $GOOGLE_APPLICATION_CREDENTIALS to the path of its JSON file",
                ctx.name
            )));
        };
        let account = ServiceAccount::load(ctx, &path)?;
        let Some(project) = ctx.config.project.clone().or_else(|| account.project_id.clone()) else {
            return Err(ctx.config_error(format!(
                "set `providers.{}.project`: the credentials file `{}` names no `project_id`",
                ctx.name,
                path.display()
            )));
        };
        let region = ctx.config.region.clone().unwrap_or_else(|| DEFAULT_REGION.to_owned());
        check_segment(ctx, "region", &region, |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')?;
        // Domain-scoped projects look like `example.com:my-project`.
        check_segment(ctx, "project", &project, |c| c.is_ascii_alphanumeric() || "-.:_".contains(c))?;
        check_segment(ctx, "model", model, |c| c.is_ascii_alphanumeric() || "-._@:~".contains(c))?;
        let url = endpoint(ctx.config.base_url.as_deref(), &region, &project, model);
        Ok(Vertex { url, account, token: tokio::sync::Mutex::new(None) })
    }
}

impl ClaudeHost for Vertex {
    async fn send(&self, ctx: &Arc<Ctx>, req: &ChatRequest, retry: Retry) -> Result<EventStream, ProviderError> {
        let token = self.access_token(ctx).await?;
        let body =
            anthropic::messages_body(req, Shape { model: None, stream: true, anthropic_version: Some(BODY_VERSION) });
        let mut out = Outgoing::post_json(self.url.clone(), &body);
        out.secret_header("authorization", &format!("Bearer {}", token.expose())).map_err(|e| ctx.config_error(e))?;
        let resp = match http::send(ctx, &out, retry).await {
            Ok(resp) => resp,
            Err(mut e) => {
                if matches!(e.kind, ErrorKind::Auth { .. }) {
                    // The token may have been revoked: the next request mints a new one.
                    self.forget(&token).await;
                    e.detail = format!("{} (service account from `{}`)", e.detail, self.account.path.display());
                }
                return Err(e);
            }
        };
        Ok(EventStream::new(ctx, resp, Framing::Sse, Box::new(MessagesParser::default())))
    }
}

impl Vertex {
    /// The cached access token, or a new one when it is missing or about to expire.
    ///
    /// The one deliberate lock across an `.await` in Quill: an async mutex held over the token
    /// fetch, so concurrent requests wait for one fetch instead of each signing and posting a JWT.
    /// The fetch is bounded by the provider's first-byte and idle timeouts.
    async fn access_token(&self, ctx: &Ctx) -> Result<Secret, ProviderError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.value.clone());
        }
        let t = self.fetch_token(ctx).await?;
        let value = t.value.clone();
        *slot = Some(t);
        Ok(value)
    }

    async fn forget(&self, used: &Secret) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|t| &t.value == used) {
            *slot = None;
        }
    }

    async fn fetch_token(&self, ctx: &Ctx) -> Result<Token, ProviderError> {
        let a = &self.account;
        let path = a.path.display();
        let iat = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let claims =
            Claims { iss: &a.client_email, scope: SCOPE, aud: &a.token_uri, iat, exp: iat + ASSERTION_LIFETIME };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = a.private_key_id.clone();
        let assertion = jsonwebtoken::encode(&header, &claims, &a.key)
            .map_err(|e| ctx.config_error(format!("cannot sign a token request with the key in `{path}`: {e}")))?;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let out = Outgoing {
            method: Method::POST,
            url: a.token_uri.clone(),
            headers,
            body: Bytes::from(format!("grant_type={GRANT_TYPE}&assertion={assertion}")),
        };
        let started = Instant::now();
        let resp = http::send_aside(ctx, &out).await.map_err(|e| self.token_error(ctx, e))?;
        let body = match tokio::time::timeout(ctx.idle_timeout(), resp.bytes()).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                return Err(ctx.error(
                    ErrorKind::Connect,
                    format!("reading the access token from `{}`: {}", a.token_uri, http::error_chain(&e)),
                ));
            }
            Err(_) => return Err(ctx.timeout(super::TimeoutPhase::Idle)),
        };
        // Never quote the answer in an error: it may hold a token.
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let Some(token) = v.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty()) else {
            return Err(ctx.error(
                ErrorKind::Malformed,
                format!("the token endpoint `{}` answered without an `access_token`", a.token_uri),
            ));
        };
        let value = Secret::new(token.to_owned());
        ctx.add_secret(&value);
        let lifetime = Duration::from_secs(v.get("expires_in").and_then(Value::as_u64).unwrap_or(3600));
        tracing::debug!(provider = %ctx.name, expires_in_s = lifetime.as_secs(), "fetched a Vertex access token");
        Ok(Token { value, refresh_at: started + lifetime.saturating_sub(REFRESH_MARGIN) })
    }

    /// Say that the failure was in fetching a token, and which key file it was for.
    fn token_error(&self, ctx: &Ctx, e: ProviderError) -> ProviderError {
        let a = &self.account;
        let said = if e.detail.is_empty() { String::new() } else { format!(": {}", e.detail.trim_end_matches('.')) };
        match e.kind {
            ErrorKind::Auth { status, .. } | ErrorKind::BadRequest { status } => ctx.error(
                ErrorKind::Auth { status, env: None },
                format!(
                    "the token endpoint refused the service-account key in `{}`{said}; \
                     check that the file is a current key of an account with Vertex AI access \
                     and that this machine's clock is right",
                    a.path.display()
                ),
            ),
            ErrorKind::NotFound { status, .. } => ctx.config_error(format!(
                "the token endpoint `{}` (`token_uri` in `{}`) answered HTTP {status}",
                a.token_uri,
                a.path.display()
            )),
            _ => ProviderError { detail: format!("while fetching an access token from `{}`{said}", a.token_uri), ..e },
        }
    }
}

impl ServiceAccount {
    /// Read a key file. Errors name the file and the field, never quote its contents.
    fn load(ctx: &Ctx, path: &Path) -> Result<ServiceAccount, ProviderError> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ctx.config_error(format!("cannot read the credentials file `{shown}`: {e}")))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            ctx.config_error(format!(
                "the credentials file `{shown}` is not JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let field = |name: &str| v.get(name).and_then(Value::as_str).filter(|s| !s.trim().is_empty());
        match field("type") {
            Some("service_account") | None => {}
            Some(other) => {
                return Err(ctx.config_error(format!(
                    "the credentials file `{shown}` holds `{other}` credentials; Vertex needs a \
                     service-account key (`\"type\": \"service_account\"`), created under IAM > Service accounts > Keys"
                )));
            }
        }
        let missing = |name: &str| {
            ctx.config_error(format!("the credentials file `{shown}` has no `{name}`; is it a service-account key?"))
        };
        let client_email = field("client_email").ok_or_else(|| missing("client_email"))?.to_owned();
        let pem = field("private_key").ok_or_else(|| missing("private_key"))?;
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| {
            ctx.config_error(format!(
                "the `private_key` in the credentials file `{shown}` is not an RSA key in PEM form"
            ))
        })?;
        Ok(ServiceAccount {
            path: path.to_owned(),
            client_email,
            private_key_id: field("private_key_id").map(str::to_owned),
            token_uri: field("token_uri").unwrap_or(DEFAULT_TOKEN_URI).to_owned(),
            project_id: field("project_id").map(str::to_owned),
            key,
        })
    }
}

/// The streaming endpoint. `base` (tests, proxies) replaces the scheme and host.
fn endpoint(base: Option<&str>, region: &str, project: &str, model: &str) -> String {
    let base = match base {
        Some(b) => b.trim_end_matches('/').to_owned(),
        None => match region {
            "global" => "https://aiplatform.googleapis.com".to_owned(),
            "us" | "eu" => format!("https://aiplatform.{region}.rep.googleapis.com"),
            r => format!("https://{r}-aiplatform.googleapis.com"),
        },
    };
    format!("{base}/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:streamRawPredict")
}

/// A setting that goes into the URL may only hold the characters its kind of name has.
fn check_segment(ctx: &Ctx, key: &str, value: &str, ok: impl Fn(char) -> bool) -> Result<(), ProviderError> {
    if !value.is_empty() && value.chars().all(ok) {
        return Ok(());
    }
    Err(ctx.config_error(format!("`providers.{}.{key}` = `{value}` is not a valid Vertex {key} name", ctx.name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_per_region() {
        let m = "claude-3-5-haiku@20241022";
        let path = |r: &str| format!("/v1/projects/p-1/locations/{r}/publishers/anthropic/models/{m}:streamRawPredict");
        assert_eq!(
            endpoint(None, "us-east5", "p-1", m),
            format!("https://us-east5-aiplatform.googleapis.com{}", path("us-east5"))
        );
        assert_eq!(endpoint(None, "global", "p-1", m), format!("https://aiplatform.googleapis.com{}", path("global")));
        assert_eq!(endpoint(None, "us", "p-1", m), format!("https://aiplatform.us.rep.googleapis.com{}", path("us")));
        assert_eq!(endpoint(None, "eu", "p-1", m), format!("https://aiplatform.eu.rep.googleapis.com{}", path("eu")));
        assert_eq!(
            endpoint(Some("http://127.0.0.1:9/"), "europe-west1", "p-1", m),
            format!("http://127.0.0.1:9{}", path("europe-west1"))
        );
    }
}
