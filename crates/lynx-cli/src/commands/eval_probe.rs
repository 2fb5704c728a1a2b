//! `lynx eval probe`: linear probes of what a model's vision tokens and bridge tokens hold
//! about a generated world's scenes (issue 4; `lynx::eval::probe`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use lynx::eval::{probe_scenes, probe_table, ProbeOptions};

use super::eval::write_file;
use super::model_args::ModelArgs;

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// A world's scenes.jsonl (`lynx data synth`); media paths are relative to its folder.
    /// Use scenes the model was not trained on (another seed, or the world's test/scenes.jsonl).
    #[arg(long)]
    pub scenes: PathBuf,
    /// Image scenes read at most (videos are skipped).
    #[arg(long, default_value_t = 2000)]
    pub limit: usize,
    /// Share of the scenes (the last ones) on which the probes are scored.
    #[arg(long, default_value_t = 0.3)]
    pub test_fraction: f64,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Write the accuracies as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
}

pub fn run(a: ProbeArgs) -> Result<()> {
    if !a.scenes.is_file() {
        bail!("--scenes {}: no such file", a.scenes.display());
    }
    if !(a.test_fraction > 0.0 && a.test_fraction < 1.0) {
        bail!(
            "--test-fraction must be between 0 and 1 (exclusive), got {}",
            a.test_fraction
        );
    }
    if a.batch_size == 0 || a.limit == 0 {
        bail!("--batch-size and --limit must be at least 1");
    }
    let engine = a.model.load()?;
    let opts = ProbeOptions {
        limit: a.limit,
        test_fraction: a.test_fraction,
        batch_size: a.batch_size,
        progress: true,
    };
    let report = probe_scenes(&engine, &a.scenes, &opts)
        .with_context(|| format!("probing on {}", a.scenes.display()))?;
    print!("{}", probe_table(&report));
    if let Some(out) = &a.out {
        write_file(out, &serde_json::to_string_pretty(&report)?)?;
    }
    Ok(())
}
