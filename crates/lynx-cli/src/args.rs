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
    /// Answer one question about an image or video.
    Ask(crate::commands::ask::AskArgs),
    /// Answer every annotation of a test file (the release's generate.py).
    Generate(crate::commands::generate::GenerateArgs),
    /// Print the prompt ids and the largest next-token logits (parity checks).
    Forward(crate::commands::forward::ForwardArgs),
    /// Train one stage (bridge, adapters, frame positions) on a data mixture.
    Train(crate::commands::train::TrainArgs),
    /// Write the release files as one mmap-able safetensors directory.
    Convert(crate::commands::convert::ConvertArgs),
    /// Evaluate: Open-VQA (rule or LLM judge), MME.
    Eval(crate::commands::eval::EvalArgs),
    /// Data tools: `lynx data synth` generates the synthetic world.
    Data(crate::commands::data::DataArgs),
    /// OwlEval human evaluation: serve the rating page, report the scores.
    Rate(crate::commands::rate::RateArgs),
    /// Benchmarks: `lynx bench infer` times the vision encoder, prefill and decoding.
    Bench(crate::commands::bench::BenchArgs),
    /// Prompt templates per task: check a file, or expand it with an LLM (paper 2.4).
    Prompts(crate::commands::prompts::PromptsArgs),
    /// Plot loss and learning-rate curves of metrics.jsonl files.
    Plot(crate::commands::plot::PlotArgs),
    /// The default model: rebuild it from nothing (`default`), or report its accuracy.
    Recipe(crate::commands::recipe::RecipeArgs),
}
