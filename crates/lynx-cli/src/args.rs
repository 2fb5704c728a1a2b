//! Command-line arguments of `lynx`: one subcommand per file in `commands/`.

use clap::{Parser, Subcommand};

/// Lynx: run, train, evaluate and serve GPT4-style multimodal language models.
#[derive(Debug, Parser)]
#[command(name = "lynx", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// OwlEval human evaluation: serve the rating page, report the scores.
    Rate(crate::commands::rate::RateArgs),
}
