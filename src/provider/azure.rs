//! STUB: azure wire protocol (to be written).

use std::sync::Arc;

use super::{ChatRequest, CompletionRequest, Ctx, ErrorKind, EventStream, ProviderError, http::{Retry, Parser, Frame, Fault}, Event};

pub(crate) struct Azure;

impl Azure {
    pub fn new(_ctx: &Ctx) -> Result<Self, ProviderError> { Ok(Azure) }
    pub async fn complete(&self, ctx: &Arc<Ctx>, _req: &CompletionRequest) -> Result<EventStream, ProviderError> { Err(ctx.error(ErrorKind::Unsupported, "not yet")) }
    pub async fn chat(&self, ctx: &Arc<Ctx>, _req: &ChatRequest, _retry: Retry) -> Result<EventStream, ProviderError> { Err(ctx.error(ErrorKind::Unsupported, "not yet")) }
}
