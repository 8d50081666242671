//! Self-hosted OpenAI-compatible servers (vLLM, LM Studio, llama.cpp `/v1`, Ollama `/v1`) and the
//! Quill gateway: the OpenAI wire at a configured `base_url`, `max_tokens`, key optional for the
//! former and required for the latter.

use std::sync::Arc;

use crate::config::{CompletionMode, ProviderKind};

use super::{
    ChatRequest, CompletionRequest, Ctx, EventStream, ProviderError,
    http::Retry,
    openai::{Auth, Dialect, Fim, Wire},
};

pub(crate) struct Compatible(Wire);

impl Compatible {
    pub fn new(ctx: &Ctx) -> Result<Self, ProviderError> {
        let gateway = ctx.kind == ProviderKind::QuillGateway;
        if ctx.config.base_url.is_none() {
            let example = if gateway { "https://quill-gateway.example.com/v1" } else { "http://127.0.0.1:8000/v1" };
            return Err(ctx.config_error(format!(
                "set `providers.{}.base_url` to the server's OpenAI-compatible root, e.g. {example}",
                ctx.name
            )));
        }
        if gateway {
            ctx.require_key()?;
        } else if ctx.key.is_none()
            && let Some(var) = &ctx.config.api_key_env
        {
            // Servers without `--api-key` need none, so this is not an error; but a 401 would
            // otherwise be hard to explain.
            tracing::warn!(provider = %ctx.name, "${var} is not set; sending requests without a key");
        }
        let base = ctx.base_url("");
        let modes = [CompletionMode::Suffix, CompletionMode::Template, CompletionMode::Prompt, CompletionMode::Chat];
        let fim = Fim::plan(ctx, &modes, || {
            if gateway {
                // The gateway takes prefix and suffix and translates for its upstream.
                Ok(Fim::Suffix)
            } else {
                // vLLM and LM Studio refuse or ignore `suffix`: render the template ourselves.
                Fim::template_or_chat(ctx)
            }
        })?;
        Ok(Compatible(Wire {
            chat_url: format!("{base}/chat/completions"),
            completions_url: format!("{base}/completions"),
            model: ctx.model.clone(),
            auth: Auth::Bearer,
            dialect: Dialect::COMPATIBLE,
            fim,
        }))
    }

    pub async fn complete(&self, ctx: &Arc<Ctx>, req: &CompletionRequest) -> Result<EventStream, ProviderError> {
        self.0.complete(ctx, req).await
    }

    pub async fn chat(&self, ctx: &Arc<Ctx>, req: &ChatRequest, retry: Retry) -> Result<EventStream, ProviderError> {
        self.0.chat(ctx, req, retry).await
    }
}
