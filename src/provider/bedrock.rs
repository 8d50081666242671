//! STUB: bedrock wire protocol (to be written).

use std::sync::Arc;

use super::{ChatRequest, CompletionRequest, Ctx, ErrorKind, EventStream, ProviderError, http::{Retry, Parser, Frame, Fault}, Event};

pub(crate) struct Bedrock;

impl Bedrock {
    pub fn new(_ctx: &Ctx) -> Result<Self, ProviderError> { Ok(Bedrock) }
    pub async fn complete(&self, ctx: &Arc<Ctx>, _req: &CompletionRequest) -> Result<EventStream, ProviderError> { Err(ctx.error(ErrorKind::Unsupported, "not yet")) }
    pub async fn chat(&self, ctx: &Arc<Ctx>, _req: &ChatRequest, _retry: Retry) -> Result<EventStream, ProviderError> { Err(ctx.error(ErrorKind::Unsupported, "not yet")) }
}

#[derive(Default)]
pub(crate) struct InvokeParser;
impl Parser for InvokeParser { fn frame(&mut self, _f: Frame, _out: &mut Vec<Event>) -> Result<(), Fault> { Err(Fault::malformed("stub")) } }
