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
    /// Prompt templates per task: check a file, or expand it with an LLM (paper 2.4).
    Prompts(crate::commands::prompts::PromptsArgs),
    /// Plot loss and learning-rate curves of metrics.jsonl files.
    Plot(crate::commands::plot::PlotArgs),
}
