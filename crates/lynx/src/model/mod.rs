//! The Lynx model (paper Section 2.2): vision encoder, bridge, language model, composition,
//! and loading the release's files.

pub mod bridge;
pub mod convert;
pub mod fused;
pub mod llm;
pub mod load;
pub mod lynx;
pub mod mmap;
pub mod nn;
pub mod session;
pub mod small_matmul;
pub mod vision;
pub mod weights;
