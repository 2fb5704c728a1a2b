//! Data: preprocessing, video, tokenizer, prompts, datasets.

pub mod image;
pub mod tokenizer;
pub mod video;
