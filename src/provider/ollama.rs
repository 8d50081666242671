//! STUB: ollama wire protocol (to be written).

use std::sync::Arc;

use super::{ChatRequest, CompletionRequest, Ctx, ErrorKind, EventStream, ProviderError, http::{Retry, Parser, Frame, Fault}, Event};

pub(crate) struct Ollama;

impl Ollama {
    pub fn new(_ctx: &Ctx) -> Result<Self, ProviderError> { Ok(Ollama) }
    pub async fn complete(&self, ctx: &Arc<Ctx>, _req: &CompletionRequest) -> Result<EventStream, ProviderError> { Err(ctx.error(ErrorKind::Unsupported, "not yet")) }
    pub async fn chat(&self, ctx: &Arc<Ctx>, _req: &ChatRequest, _retry: Retry) -> Result<EventStream, ProviderError> { Err(ctx.error(ErrorKind::Unsupported, "not yet")) }
}

#[derive(Default)]
pub(crate) struct GenerateParser;
impl Parser for GenerateParser { fn frame(&mut self, _f: Frame, _out: &mut Vec<Event>) -> Result<(), Fault> { Err(Fault::malformed("stub")) } }

#[derive(Default)]
pub(crate) struct ChatParser;
impl Parser for ChatParser { fn frame(&mut self, _f: Frame, _out: &mut Vec<Event>) -> Result<(), Fault> { Err(Fault::malformed("stub")) } }
