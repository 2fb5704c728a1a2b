//! HTTP serving for Lynx: the OwlEval human-rating server of the paper's Section 3.1
//! (`lynx rate serve` / `lynx rate report`).

pub mod error;
pub mod rating;

pub use error::{Error, Result};
