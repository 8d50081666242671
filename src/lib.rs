//! Quill: an AI pair-programmer served over the Language Server Protocol.
//!
//! The binary (`src/main.rs`) is a thin CLI over this library; see `docs/ARCHITECTURE.md` for the
//! code map and the invariants each module keeps.

pub mod chat;
pub mod cli;
pub mod complete;
pub mod config;
pub mod document;
pub mod edit;
pub mod error;
pub mod lsp;
pub mod position;
pub mod provider;
pub mod store;
pub mod syntax;
