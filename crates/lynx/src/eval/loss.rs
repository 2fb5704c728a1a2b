//! `lynx eval loss`: a model's teacher-forced next-token loss on the replies of a dataset (the
//! objective of paper 2.3 and 2.4, forward only), one pass over every record with the
//! evaluation transform. It measures held-out loss, and it is the probe that tells whether an
//! image detail reaches the language model: the loss of captions with the right images against
//! captions whose colour or shape words were swapped (issue 4).

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::data::datasets::{render, JsonlDataset};
use crate::data::prompts::PromptTemplates;
use crate::pipeline::Engine;
use crate::train::batch::{BatchBuilder, Example};
use crate::train::config::LossReduction;
use crate::train::core::progress_bar;
use crate::train::rng::TrainRng;
use crate::train::trainer::batch_loss;
use crate::{Error, Result};

/// How a loss pass runs.
#[derive(Debug, Clone)]
pub struct LossOptions {
    /// Records per forward pass.
    pub batch_size: usize,
    /// Tokens kept per record (prompt and reply); longer records are cut as in training.
    pub max_seq_len: usize,
    /// Only the first `limit` valid records of each file.
    pub limit: Option<usize>,
    /// Draws the prompt template of task records (and an answer where a record has several).
    pub seed: u64,
    pub progress: bool,
}

/// The loss of one dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetLoss {
    pub dataset: String,
    /// Records whose loss is counted.
    pub records: usize,
    /// Records left out, with the first reason (bad JSON, missing media, no reply token).
    pub skipped: usize,
    pub first_skip: Option<String>,
    /// Reply tokens scored.
    pub tokens: usize,
    /// Mean negative log-likelihood per reply token, in nats.
    pub loss: f64,
}

impl DatasetLoss {
    pub fn perplexity(&self) -> f64 {
        self.loss.exp()
    }
}

/// The markdown table of several losses.
pub fn loss_table(rows: &[DatasetLoss]) -> String {
    let mut out = String::from(
        "| Dataset | Records | Skipped | Reply tokens | Loss (nats/token) | Perplexity |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.4} | {:.3} |\n",
            r.dataset,
            r.records,
            r.skipped,
            r.tokens,
            r.loss,
            r.perplexity()
        ));
    }
    out
}

/// Mean reply-token loss of `engine`'s model over the records of the JSONL file `path`
/// (caption pairs, task records, dialogs: the training formats). Task records need `prompts`.
pub fn dataset_loss(
    engine: &Engine,
    path: &Path,
    prompts: Option<&PromptTemplates>,
    opts: &LossOptions,
) -> Result<DatasetLoss> {
    if opts.batch_size == 0 {
        return Err(Error::config("batch_size", "must be at least 1"));
    }
    let mut ds = JsonlDataset::open(path, prompts)?;
    // Records that failed indexing (bad JSON, missing media) count as skipped, limit or not.
    let indexed_bad = ds.stats().bad as usize;
    let mut first_skip = ds.stats().first_bad.first().cloned();
    let builder = BatchBuilder {
        tokenizer: Arc::clone(&engine.tokenizer),
        format: engine.format.clone(),
        mean: engine.yaml.image_mean,
        std: engine.yaml.image_std,
        num_frames: engine.yaml.data.num_frames,
        max_seq_len: opts.max_seq_len,
        augment: false,
    };
    let n = opts.limit.map_or(ds.len(), |l| l.min(ds.len()));
    let bar = progress_bar(n as u64, opts.progress, "loss ");
    let mut rng = TrainRng::new(opts.seed, 0x1055);
    let (mut records, mut skipped, mut tokens, mut sum) = (0usize, indexed_bad, 0usize, 0f64);
    let mut pending: Vec<Example> = Vec::with_capacity(opts.batch_size);
    let mut flush = |examples: Vec<Example>| -> Result<()> {
        if examples.is_empty() {
            return Ok(());
        }
        let count = examples.len();
        let batch = builder.collate(examples, engine.model.device())?;
        let targets = batch.targets.len();
        let mean = batch_loss(&engine.model, &batch, 0.0, LossReduction::Token)?
            .to_scalar::<f32>()? as f64;
        sum += mean * targets as f64;
        tokens += targets;
        records += count;
        Ok(())
    };
    for i in 0..n {
        bar.inc(1);
        let example = ds.read(i, prompts)?.map_err(|(o, r)| format!("{o}: {r}"));
        let example = example.and_then(|p| {
            let sample =
                render(p, 0, None, prompts, &mut rng).map_err(|e| format!("line {i}: {e}"))?;
            builder
                .example(&sample, engine.yaml.image_res, &mut rng)
                .map_err(|e| format!("{}: {e}", sample.origin))
        });
        match example {
            Ok(ex) => {
                pending.push(ex);
                if pending.len() == opts.batch_size {
                    flush(std::mem::take(&mut pending))?;
                }
            }
            Err(reason) => {
                skipped += 1;
                first_skip.get_or_insert(reason);
            }
        }
    }
    flush(pending)?;
    bar.finish_and_clear();
    if tokens == 0 {
        return Err(Error::Invalid(format!(
            "{}: no record could be scored{}",
            path.display(),
            first_skip
                .map(|r| format!(" (first: {r})"))
                .unwrap_or_default()
        )));
    }
    Ok(DatasetLoss {
        dataset: path.display().to_string(),
        records,
        skipped,
        first_skip,
        tokens,
        loss: sum / tokens as f64,
    })
}
