//! Lynx: a GPT4-style multimodal language model (EVA ViT + Perceiver resampler + LLaMA with
//! adapters), after "What Matters in Training a GPT4-Style Language Model with Multimodal Inputs?"
//! and the official release bytedance/lynx-llm.

pub mod bench;
pub mod config;
pub mod data;
pub mod default_model;
pub mod error;
pub mod eval;
pub mod generation;
pub mod model;
pub mod pipeline;
pub mod recipe;
pub mod synth;
pub mod train;

pub use error::{Error, Result};
