//! STUB (helper replaces): FIM templates per model family, stop-token stripping, and the chat
//! prompt that lets chat-only models autocomplete.

use crate::config::FimTemplateConfig;

use super::{
    http::DeltaFilter,
    types::{ChatRequest, CompletionRequest},
};

/// A FIM prompt template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub name: String,
    stop: Vec<String>,
}

impl Template {
    /// The template for a model, from the config override or else the model's name.
    /// `Ok(None)`: no override and the name matches no known family.
    pub fn resolve(config: Option<&FimTemplateConfig>, model: Option<&str>) -> Result<Option<Template>, String> {
        let _ = (config, model);
        Ok(None)
    }

    /// The raw prompt for `req` (context snippets included where the family has a format).
    pub fn render(&self, req: &CompletionRequest) -> String {
        format!("{}{}", req.prefix, req.suffix)
    }

    /// Tokens that end an answer in this family.
    pub fn stop_tokens(&self) -> &[String] {
        &self.stop
    }
}

/// The stop sequences to send: the request's own, then the template's, without duplicates.
pub fn stops(req: &CompletionRequest, template: Option<&Template>) -> Vec<String> {
    let mut v = req.stop.clone();
    if let Some(t) = template {
        for s in t.stop_tokens() {
            if !v.contains(s) {
                v.push(s.clone());
            }
        }
    }
    v
}

/// A filter that ends the answer at the first of `tokens` (in case the server did not stop).
pub(crate) fn strip_filter(tokens: Vec<String>) -> Box<dyn DeltaFilter> {
    let _ = tokens;
    todo_filter()
}

/// The chat request that asks a chat model to fill the gap at the cursor.
pub fn chat_prompt(req: &CompletionRequest, prefill: bool) -> ChatRequest {
    let _ = (req, prefill);
    ChatRequest::default()
}

/// The filter that extracts the fill from a chat model's answer to [`chat_prompt`].
pub(crate) fn chat_filter(prefill: bool) -> Box<dyn DeltaFilter> {
    let _ = prefill;
    todo_filter()
}

struct Pass;
impl DeltaFilter for Pass {
    fn push(&mut self, d: &str) -> (String, bool) {
        (d.to_owned(), false)
    }
    fn flush(&mut self) -> String {
        String::new()
    }
}
fn todo_filter() -> Box<dyn DeltaFilter> {
    Box::new(Pass)
}
