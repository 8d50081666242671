//! Azure OpenAI: the OpenAI wire on a customer's resource, keyed by `api-key`, on either the
//! classic surface (deployment in the path, `api-version` query) or the v1 surface (deployment
//! as the body's `model`).

use std::sync::Arc;

use crate::config::CompletionMode;

use super::{
    ChatRequest, CompletionRequest, Ctx, EventStream, ProviderError,
    http::Retry,
    openai::{Auth, Dialect, Fim, Wire},
};

pub(crate) struct Azure(Wire);

impl Azure {
    pub fn new(ctx: &Ctx) -> Result<Self, ProviderError> {
        let name = &ctx.name;
        let Some(base) = ctx.config.base_url.as_deref() else {
            return Err(ctx.config_error(format!(
                "set `providers.{name}.base_url` to the resource endpoint, https://<resource>.openai.azure.com"
            )));
        };
        let Some(deployment) = ctx.model.as_deref() else {
            return Err(ctx.config_error(format!("set `providers.{name}.model` to the deployment name")));
        };
        ctx.require_key()?;
        // Accept the endpoint as the portal shows it and with the path already on it.
        let mut base = base.trim_end_matches('/');
        for tail in ["/openai/v1", "/openai"] {
            if let Some(b) = base.strip_suffix(tail) {
                base = b;
                break;
            }
        }
        let fim = Fim::plan(
            ctx,
            &[CompletionMode::Suffix, CompletionMode::Template, CompletionMode::Prompt, CompletionMode::Chat],
            || Ok(Fim::Chat),
        )?;
        let wire = match ctx.config.api_version.as_deref() {
            Some(version) => {
                let root = format!("{base}/openai/deployments/{}", encode(deployment));
                let query = format!("?api-version={}", encode(version));
                Wire {
                    chat_url: format!("{root}/chat/completions{query}"),
                    completions_url: format!("{root}/completions{query}"),
                    model: None,
                    auth: Auth::ApiKey,
                    // Dated api-versions before 2024-09 do not know `max_completion_tokens`.
                    dialect: Dialect { max_stops: Some(4), ..Dialect::COMPATIBLE },
                    fim,
                }
            }
            None => Wire {
                chat_url: format!("{base}/openai/v1/chat/completions"),
                completions_url: format!("{base}/openai/v1/completions"),
                model: Some(deployment.to_owned()),
                auth: Auth::ApiKey,
                // The v1 surface follows OpenAI's current API, where reasoning models refuse
                // `max_tokens`.
                dialect: Dialect::OPENAI,
                fim,
            },
        };
        Ok(Azure(wire))
    }

    pub async fn complete(&self, ctx: &Arc<Ctx>, req: &CompletionRequest) -> Result<EventStream, ProviderError> {
        self.0.complete(ctx, req).await
    }

    pub async fn chat(&self, ctx: &Arc<Ctx>, req: &ChatRequest, retry: Retry) -> Result<EventStream, ProviderError> {
        self.0.chat(ctx, req, retry).await
    }
}

/// Percent-encode a path segment or query value (deployment names are usually plain already).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn encode_escapes_all_but_unreserved() {
        assert_eq!(super::encode("gpt-4o_mini.v2~"), "gpt-4o_mini.v2~");
        assert_eq!(super::encode("a b/c?é"), "a%20b%2Fc%3F%C3%A9");
    }
}
