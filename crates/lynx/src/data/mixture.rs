//! The weighted mixture of training datasets (paper 2.4: "different weight combinations of the
//! instruction data have a crucial influence"): each draw picks a dataset with probability
//! weight / total, then its next record (JSONL: a new permutation per epoch; shards: the
//! buffered stream). Deterministic for a seed and resumable from a saved position.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::datasets::{render, DatasetSpec, DatasetStats, JsonlDataset, Pending, Sample};
use super::prompts::PromptTemplates;
use super::shards::{ShardState, ShardStream};
use crate::train::rng::{derive_seed, RngState, TrainRng};
use crate::{Error, Result};

/// Sampler settings from the training config.
#[derive(Debug, Clone, PartialEq)]
pub struct MixtureOptions {
    pub seed: u64,
    /// Above this fraction of bad records in a dataset, the run stops with an error.
    pub max_bad_fraction: f64,
    /// Shuffle buffer of shard datasets (samples).
    pub shuffle_buffer: usize,
}

struct JsonlSource {
    ds: JsonlDataset,
    epoch: u64,
    cursor: usize,
    perm: Vec<u32>,
    seed: u64,
}

impl JsonlSource {
    fn permutation(seed: u64, n: usize, epoch: u64) -> Vec<u32> {
        let mut perm: Vec<u32> = (0..n as u32).collect();
        TrainRng::new(derive_seed(seed, &[epoch]), 0).shuffle(&mut perm);
        perm
    }

    fn next(
        &mut self,
        prompts: Option<&PromptTemplates>,
        name: &str,
        max_bad: f64,
    ) -> Result<Pending> {
        let mut misses = 0usize;
        loop {
            if self.cursor == self.perm.len() {
                self.epoch += 1;
                self.cursor = 0;
                self.perm = Self::permutation(self.seed, self.ds.len(), self.epoch);
            }
            let i = self.perm[self.cursor] as usize;
            self.cursor += 1;
            match self.ds.read(i, prompts)? {
                Ok(p) => return Ok(p),
                Err(_) => {
                    self.ds.stats.check(name, max_bad)?;
                    misses += 1;
                    if misses > 2 * self.ds.len() {
                        return Err(Error::Invalid(format!(
                            "dataset `{name}`: no record is valid any more"
                        )));
                    }
                }
            }
        }
    }
}

enum Source {
    Jsonl(Box<JsonlSource>),
    Shards(Box<ShardStream>),
}

/// The saved position of one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceState {
    Jsonl {
        path: String,
        records: usize,
        epoch: u64,
        cursor: usize,
        stats: DatasetStats,
    },
    Shards(ShardState),
}

/// The saved position of a [`Mixture`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixtureState {
    pub rng: RngState,
    pub sources: Vec<SourceState>,
}

/// Draws samples from several datasets with probabilities proportional to their weights.
pub struct Mixture {
    specs: Vec<DatasetSpec>,
    sources: Vec<Source>,
    cumulative: Vec<f64>,
    rng: TrainRng,
    prompts: Option<PromptTemplates>,
    opts: MixtureOptions,
}

impl Mixture {
    /// Opens (and, for JSONL, indexes and validates) every dataset. Errors name the dataset:
    /// a bad weight or pair task, no valid record, or too many bad ones.
    pub fn open(
        specs: &[DatasetSpec],
        prompts: Option<PromptTemplates>,
        opts: MixtureOptions,
    ) -> Result<Self> {
        if specs.is_empty() {
            return Err(Error::config("datasets", "no dataset given"));
        }
        let mut sources = Vec::with_capacity(specs.len());
        let mut cumulative = Vec::with_capacity(specs.len());
        let mut total = 0.0;
        for (i, spec) in specs.iter().enumerate() {
            if !(spec.weight.is_finite() && spec.weight > 0.0) {
                return Err(Error::config(
                    format!("datasets[{i}].weight"),
                    "must be a number > 0",
                ));
            }
            if let Some(t) = &spec.task {
                let ok = prompts
                    .as_ref()
                    .and_then(|p| p.task(t))
                    .is_some_and(|t| !t.has_question);
                if !ok {
                    return Err(Error::config(
                        format!("datasets[{i}].task"),
                        format!("`{t}` must be a task of the prompts file whose templates take no question"),
                    ));
                }
            }
            total += spec.weight;
            cumulative.push(total);
            let seed = derive_seed(opts.seed, &[i as u64]);
            let name = spec.display_name();
            if spec.is_shards() {
                let s = ShardStream::open(&spec.path, i, seed, opts.shuffle_buffer)?;
                sources.push(Source::Shards(Box::new(s)));
            } else {
                let ds = JsonlDataset::open(Path::new(&spec.path), prompts.as_ref())?;
                if ds.is_empty() {
                    let mut msg = format!("dataset `{name}` has no valid record");
                    if !ds.stats.first_bad.is_empty() {
                        msg.push_str(&format!(
                            "; first problems:\n  {}",
                            ds.stats.first_bad.join("\n  ")
                        ));
                    }
                    return Err(Error::Invalid(msg));
                }
                ds.stats.check(name, opts.max_bad_fraction)?;
                let perm = JsonlSource::permutation(seed, ds.len(), 0);
                sources.push(Source::Jsonl(Box::new(JsonlSource {
                    ds,
                    epoch: 0,
                    cursor: 0,
                    perm,
                    seed,
                })));
            }
        }
        Ok(Self {
            specs: specs.to_vec(),
            sources,
            cumulative,
            rng: TrainRng::new(opts.seed, 1),
            prompts,
            opts,
        })
    }

    /// The next sample. Errors only on I/O failures or when a dataset's bad fraction goes
    /// over `max_bad_fraction`.
    pub fn next_sample(&mut self) -> Result<Sample> {
        let total = *self.cumulative.last().unwrap_or(&1.0);
        let u = self.rng.unit_f64() * total;
        let i = self
            .cumulative
            .iter()
            .position(|&c| u < c)
            .unwrap_or(self.sources.len() - 1);
        let name = self.specs[i].display_name().to_string();
        let max_bad = self.opts.max_bad_fraction;
        let pending = match &mut self.sources[i] {
            Source::Jsonl(s) => s.next(self.prompts.as_ref(), &name, max_bad)?,
            Source::Shards(s) => s.next(self.prompts.as_ref(), &name, max_bad)?,
        };
        render(
            pending,
            i,
            self.specs[i].task.as_deref(),
            self.prompts.as_ref(),
            &mut self.rng,
        )
    }

    /// Good/bad counts per dataset, in config order.
    pub fn stats(&self) -> Vec<(String, DatasetStats)> {
        self.specs
            .iter()
            .zip(&self.sources)
            .map(|(spec, s)| {
                let st = match s {
                    Source::Jsonl(j) => j.ds.stats.clone(),
                    Source::Shards(sh) => sh.stats().clone(),
                };
                (spec.display_name().to_string(), st)
            })
            .collect()
    }

    /// The position to save in a checkpoint.
    pub fn state(&self) -> MixtureState {
        MixtureState {
            rng: self.rng.state(),
            sources: self
                .sources
                .iter()
                .zip(&self.specs)
                .map(|(s, spec)| match s {
                    Source::Jsonl(j) => SourceState::Jsonl {
                        path: spec.path.clone(),
                        records: j.ds.len(),
                        epoch: j.epoch,
                        cursor: j.cursor,
                        stats: j.ds.stats.clone(),
                    },
                    Source::Shards(sh) => SourceState::Shards(sh.state()),
                })
                .collect(),
        }
    }

    /// Continues from a saved position; the datasets must be the ones it was saved with.
    pub fn restore(&mut self, state: &MixtureState) -> Result<()> {
        if state.sources.len() != self.sources.len() {
            return Err(Error::Invalid(format!(
                "data position has {} datasets, the config {}",
                state.sources.len(),
                self.sources.len()
            )));
        }
        for (i, (src, st)) in self.sources.iter_mut().zip(&state.sources).enumerate() {
            let spec = &self.specs[i];
            match (src, st) {
                (
                    Source::Jsonl(j),
                    SourceState::Jsonl {
                        path,
                        records,
                        epoch,
                        cursor,
                        stats,
                    },
                ) => {
                    if path != &spec.path || *records != j.ds.len() || *cursor > *records {
                        return Err(Error::Invalid(format!(
                            "dataset `{}` changed since the checkpoint ({path}: {records} valid records then, {} now)",
                            spec.display_name(),
                            j.ds.len()
                        )));
                    }
                    j.epoch = *epoch;
                    j.cursor = *cursor;
                    j.perm = JsonlSource::permutation(j.seed, j.ds.len(), *epoch);
                    j.ds.stats = stats.clone();
                }
                (Source::Shards(s), SourceState::Shards(st)) => {
                    s.restore(st, self.prompts.as_ref())?
                }
                _ => {
                    return Err(Error::Invalid(format!(
                        "dataset `{}` is of another kind than at the checkpoint",
                        spec.display_name()
                    )))
                }
            }
        }
        self.rng = TrainRng::from_state(&state.rng, "data position")?;
        Ok(())
    }
}
