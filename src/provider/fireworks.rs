//! Fireworks: the OpenAI wire with `max_tokens`, usage always in the final chunk, and FIM done by
//! sending the model's template as a raw `prompt` (its `/completions` passes it through as is).

use std::sync::Arc;

use crate::config::CompletionMode;

use super::{
    ChatRequest, CompletionRequest, Ctx, EventStream, ProviderError,
    http::Retry,
    openai::{Auth, Dialect, Fim, Wire},
};

const DEFAULT_BASE: &str = "https://api.fireworks.ai/inference/v1";

pub(crate) struct Fireworks(Wire);

impl Fireworks {
    pub fn new(ctx: &Ctx) -> Result<Self, ProviderError> {
        ctx.require_key()?;
        let model = ctx.require_model()?.to_owned();
        let base = ctx.base_url(DEFAULT_BASE);
        // No `suffix`: the server applies no template, so FIM needs the model's own tokens.
        let fim = Fim::plan(ctx, &[CompletionMode::Template, CompletionMode::Prompt, CompletionMode::Chat], || {
            Fim::template_or_chat(ctx)
        })?;
        Ok(Fireworks(Wire {
            chat_url: format!("{base}/chat/completions"),
            completions_url: format!("{base}/completions"),
            model: Some(model),
            auth: Auth::Bearer,
            // Usage comes in the final chunk unasked.
            dialect: Dialect { include_usage: false, ..Dialect::COMPATIBLE },
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
