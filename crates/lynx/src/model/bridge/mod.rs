//! Bridges between the vision encoder and the language model.

pub mod resampler;
