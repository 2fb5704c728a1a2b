//! Data: preprocessing, video, tokenizer, prompts, datasets.

pub mod conversation;
pub mod image;
pub mod tokenizer;
pub mod video;
