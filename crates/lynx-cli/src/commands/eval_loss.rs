//! `lynx eval loss`: the teacher-forced loss per reply token of a model on datasets in the
//! training formats (paper 2.3 and 2.4, forward only; `lynx::eval::loss`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use lynx::data::prompts::PromptTemplates;
use lynx::eval::{dataset_loss, loss_table, LossOptions};

use super::eval::write_file;
use super::model_args::ModelArgs;

#[derive(Debug, Args)]
pub struct LossArgs {
    /// JSONL datasets (caption pairs, task records, dialogs), each scored on its own.
    #[arg(long = "data", required = true, num_args = 1..)]
    pub data: Vec<PathBuf>,
    /// Prompt templates for task records; default `prompts.yaml` beside the first dataset
    /// when it exists (a generated world's train/prompts.yaml).
    #[arg(long)]
    pub prompts: Option<PathBuf>,
    /// Records per forward pass.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Tokens kept per record, as `max_seq_len` in training.
    #[arg(long, default_value_t = 160)]
    pub max_seq_len: usize,
    /// Score only the first N valid records of each dataset.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Seed of the prompt-template draw for task records.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the losses as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
}

pub fn run(a: LossArgs) -> Result<()> {
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    for p in &a.data {
        if !p.is_file() {
            bail!("--data {}: no such file", p.display());
        }
    }
    let prompts_path = a.prompts.clone().or_else(|| {
        a.data
            .first()
            .and_then(|d| d.parent())
            .map(|d| d.join("prompts.yaml"))
            .filter(|p| p.is_file())
    });
    let prompts = prompts_path
        .as_ref()
        .map(|p| PromptTemplates::load(p).with_context(|| format!("--prompts {}", p.display())))
        .transpose()?;
    let engine = a.model.load()?;
    let opts = LossOptions {
        batch_size: a.batch_size,
        max_seq_len: a.max_seq_len,
        limit: a.limit,
        seed: a.seed,
        progress: true,
    };
    let mut rows = Vec::new();
    for p in &a.data {
        let row = dataset_loss(&engine, p, prompts.as_ref(), &opts)
            .with_context(|| format!("scoring {}", p.display()))?;
        if let Some(reason) = &row.first_skip {
            eprintln!(
                "warning: {}: {} record(s) skipped; first: {reason}",
                p.display(),
                row.skipped
            );
        }
        rows.push(row);
    }
    print!("{}", loss_table(&rows));
    if let Some(out) = &a.out {
        write_file(out, &serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}
