//! Data: preprocessing, video, tokenizer, prompts, datasets.

pub mod conversation;
pub mod datasets;
pub mod image;
pub mod mixture;
pub mod numbers;
pub mod prompts;
pub mod shards;
pub mod tokenizer;
pub mod video;
