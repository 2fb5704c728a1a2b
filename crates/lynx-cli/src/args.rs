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
    /// Evaluate: Open-VQA (rule or LLM judge), MME.
    Eval(crate::commands::eval::EvalArgs),
    /// Data tools: `lynx data synth` generates the synthetic world.
    Data(crate::commands::data::DataArgs),
}
