//! Data: preprocessing, video, tokenizer, prompts, datasets.

pub mod image;
pub mod prompts;
pub mod tokenizer;
pub mod video;
