//! `lynx convert`: writes the model assembled from the release files as one safetensors
//! directory (config.json, model.safetensors, lynx.yaml, tokenizer) that loads by mmap.

use std::path::PathBuf;

use anyhow::Context;
use lynx::model::convert::convert_release;

#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    /// YAML config naming the release files (llm_path, vision_encoder_path, checkpoint).
    #[arg(long, short = 'c')]
    pub config: PathBuf,
    /// Override a config key.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Output directory.
    #[arg(long, short = 'o')]
    pub out: PathBuf,
}

pub fn run(args: ConvertArgs) -> anyhow::Result<()> {
    let summary = convert_release(&args.config, &args.sets, &args.out, true)
        .with_context(|| format!("converting {}", args.config.display()))?;
    eprintln!(
        "wrote {} tensors ({:.1} MB) to {}",
        summary.tensors,
        summary.bytes as f64 / 1e6,
        args.out.display()
    );
    Ok(())
}
