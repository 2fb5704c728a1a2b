//! The Lynx model (paper Section 2.2): vision encoder, bridge, language model, composition.

pub mod bridge;
pub mod llm;
pub mod nn;
pub mod vision;
