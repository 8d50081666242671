//! What goes into a provider and what streams out of it, the same for every vendor.

use std::fmt;

/// A fill-in-the-middle (autocomplete) request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CompletionRequest {
    /// Text before the cursor.
    pub prefix: String,
    /// Text after the cursor.
    pub suffix: String,
    /// The document's path relative to the workspace, when known (some templates name the file).
    pub path: Option<String>,
    /// The document's language id, when known.
    pub language: Option<String>,
    /// Other code worth showing the model (open files, definitions), most relevant first.
    pub snippets: Vec<Snippet>,
    /// Sequences that end the answer (the template's own stop tokens are added).
    pub stop: Vec<String>,
    pub max_tokens: u32,
    pub temperature: f32,
}

/// A piece of context from another file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    pub path: String,
    pub text: String,
}

/// A chat request: the conversation so far.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// In order. `System` messages are gathered into the vendor's system field.
    pub messages: Vec<Message>,
    /// Text the answer must start with. Vendors that continue an assistant turn (Anthropic,
    /// Bedrock, Vertex, Gemini, Ollama) are given it as the last turn and stream what follows;
    /// for the others it is dropped (see [`crate::provider::Provider::supports_prefill`]).
    pub prefill: Option<String>,
    pub stop: Vec<String>,
    pub max_tokens: u32,
    pub temperature: f32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message { role, content: content.into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

/// One item of a provider's answer stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// More text. Never empty.
    Delta(String),
    /// The end: always the last event of a stream that completed.
    Done(Finish),
}

/// How a stream ended.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Finish {
    pub stop_reason: StopReason,
    pub usage: Usage,
}

/// Why the model stopped, in one vocabulary for all vendors.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StopReason {
    /// The model finished its answer (`stop`, `end_turn`, `STOP`, `eos`).
    #[default]
    EndTurn,
    /// A stop sequence matched.
    StopSequence,
    /// The token limit was reached.
    MaxTokens,
    /// The vendor's safety filter cut the answer.
    ContentFilter,
    /// Anything else, as the vendor spelled it.
    Other(String),
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::EndTurn => f.write_str("end_turn"),
            StopReason::StopSequence => f.write_str("stop_sequence"),
            StopReason::MaxTokens => f.write_str("max_tokens"),
            StopReason::ContentFilter => f.write_str("content_filter"),
            StopReason::Other(s) => f.write_str(s),
        }
    }
}

/// Token counts, when the vendor reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}
