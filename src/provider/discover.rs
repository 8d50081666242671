//! STUB: zero-config provider discovery (to be written).
use crate::config::Feature;
pub fn setup_advice(_feature: Feature) -> String { "no provider configured".into() }
