//! Language model: LLaMA decoder with Lynx adapters.

pub mod adapter;
pub mod llama;
