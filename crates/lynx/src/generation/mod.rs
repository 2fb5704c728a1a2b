//! Generation with the semantics of HF transformers 4.28.1 `model.generate(inputs_embeds=...,
//! attention_mask=...)` for a decoder-only model, as the Lynx release calls it (release facts:
//! `lynx-official.md`, "Generation").
//!
//! HF starts every sequence with a BOS placeholder of length 1 that is never fed to the model (step
//! 1 reads the embeddings) but counts everywhere: max length = 1 + max_new_tokens, `min_length`
//! includes it, n-gram and repetition histories start with it, and beam search divides by the
//! hypothesis length including it. The result holds only the new tokens, EOS kept.
//!
//! Modes (HF's choice from `num_beams`/`do_sample`): greedy, multinomial sampling, beam search
//! and beam sampling; see `search.rs` and `beam.rs`. Two differences from HF that do not change
//! results: the prompt is prefilled once per input row and then copied to its beams or return
//! sequences with [`StepModel::select_rows`] (HF repeats the embeddings first), and rows that have
//! finished leave the model batch instead of being fed padding.

mod beam;
pub mod config;
pub mod processors;
mod search;

use candle_core::{DType, Device, Tensor, D};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use config::{EarlyStopping, GenerationConfig, Mode};
pub use processors::{Processor, Warper};

use crate::{Error, Result};

/// A decoder that generation drives step by step; it owns its KV cache and attention mask.
pub trait StepModel {
    /// Consumes the prompt embeddings [B, T, D] with attention mask [B, T] (u32 0/1, left padding)
    /// and returns the next-token logits at the last position, [B, V] (any float dtype, CPU or
    /// device). Starts a new generation: any previous cache is dropped.
    fn prefill(&mut self, inputs_embeds: &Tensor, attention_mask: &Tensor) -> Result<Tensor>;
    /// Feeds one token per cache row (the mask grows by one 1) and returns the next logits [B, V].
    fn step(&mut self, tokens: &[u32]) -> Result<Tensor>;
    /// Keeps cache rows `rows` (len B' <= B * repeats, may repeat), in that order: expanding a
    /// prompt to its beams, beam reordering, dropping finished rows.
    fn select_rows(&mut self, rows: &[usize]) -> Result<()>;
}

/// One returned sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    /// The new tokens: no placeholder, no padding, EOS last if it was generated.
    pub tokens: Vec<u32>,
    /// Beam modes: HF's `sequences_scores` (summed log-probabilities / length ** length_penalty).
    pub score: Option<f64>,
}

/// What the per-step hook sees after each generation step.
#[derive(Debug)]
pub struct StepInfo<'a> {
    /// New tokens produced so far per sequence (1 after the first step).
    pub step: usize,
    /// Greedy and sampling: the token each output sequence received at this step, `None` for
    /// sequences that had already finished. Empty for the beam modes, whose tokens are only
    /// known once the search ends.
    pub tokens: &'a [Option<u32>],
    /// Output sequences (greedy/sampling) or beam groups (beam modes) that have finished.
    pub finished: usize,
    /// Output sequences or beam groups in all.
    pub total: usize,
}

/// The per-step hook: return `false` to stop early (the result then holds what was generated so
/// far; beam modes finalise their open beams).
pub type StepHook<'h> = &'h mut dyn FnMut(&StepInfo<'_>) -> bool;

/// Generates for every row of `inputs_embeds` [B, T, D] (left-padded, `attention_mask` [B, T])
/// and returns, per row (times `num_return_sequences`, row-major), the new tokens. Sampling uses a
/// ChaCha8 generator seeded with `cfg.seed`.
pub fn generate<M: StepModel + ?Sized>(
    model: &mut M,
    inputs_embeds: &Tensor,
    attention_mask: &Tensor,
    cfg: &GenerationConfig,
) -> Result<Vec<Vec<u32>>> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let out = generate_with(model, inputs_embeds, attention_mask, cfg, &mut rng, None)?;
    Ok(out.into_iter().map(|s| s.tokens).collect())
}

/// [`generate`] with a caller's random generator, sequence scores and an optional per-step hook.
pub fn generate_with<M: StepModel + ?Sized>(
    model: &mut M,
    inputs_embeds: &Tensor,
    attention_mask: &Tensor,
    cfg: &GenerationConfig,
    rng: &mut dyn RngCore,
    hook: Option<StepHook<'_>>,
) -> Result<Vec<Sequence>> {
    cfg.validate()?;
    let batch = check_inputs(inputs_embeds, attention_mask)?;
    let mut ctx = Ctx {
        model,
        cfg,
        rng,
        hook,
        vocab: None,
    };
    match cfg.mode() {
        Mode::Greedy | Mode::Sample => search::run(&mut ctx, inputs_embeds, attention_mask, batch),
        Mode::BeamSearch | Mode::BeamSample => {
            beam::run(&mut ctx, inputs_embeds, attention_mask, batch)
        }
    }
}

/// What the decoding loops share.
pub(crate) struct Ctx<'a, 'h, M: StepModel + ?Sized> {
    pub model: &'a mut M,
    pub cfg: &'a GenerationConfig,
    pub rng: &'a mut dyn RngCore,
    pub hook: Option<StepHook<'h>>,
    /// Known after the first logits.
    pub vocab: Option<usize>,
}

impl<M: StepModel + ?Sized> Ctx<'_, '_, M> {
    /// Logits [rows, V] from the model as one f32 vector per row, checked against the vocabulary;
    /// with `log_probs` normalised by a log-softmax first (where the logits live, e.g. the GPU).
    pub fn rows(&mut self, logits: Tensor, rows: usize, log_probs: bool) -> Result<Vec<Vec<f32>>> {
        let (r, v) = logits.dims2().map_err(|_| {
            Error::Invalid(format!(
                "generation: the model returned logits of shape {:?}, expected [{rows}, vocab]",
                logits.dims()
            ))
        })?;
        if r != rows {
            return Err(Error::Invalid(format!(
                "generation: the model returned {r} logit rows, expected {rows}"
            )));
        }
        match self.vocab {
            Some(known) if known != v => {
                return Err(Error::Invalid(format!(
                    "generation: the model's vocabulary changed from {known} to {v} logits"
                )))
            }
            Some(_) => {}
            None => {
                let c = self.cfg;
                for (key, id) in [
                    ("bos_token_id", Some(c.bos_token_id)),
                    ("eos_token_id", c.eos_token_id),
                ] {
                    if let Some(id) = id {
                        if id as usize >= v {
                            return Err(Error::config(
                                format!("generation.{key}"),
                                format!("{id} is outside the model's vocabulary of {v} tokens"),
                            ));
                        }
                    }
                }
                self.vocab = Some(v);
            }
        }
        let mut logits = logits.to_dtype(DType::F32)?;
        // On an accelerator the log-softmax runs there; on the CPU the plain loop is faster.
        let on_device = !logits.device().is_cpu();
        if log_probs && on_device {
            logits = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
        }
        let mut rows = logits.to_device(&Device::Cpu)?.to_vec2::<f32>()?;
        if log_probs && !on_device {
            rows.iter_mut().for_each(|r| processors::log_softmax(r));
        }
        Ok(rows)
    }

    /// Calls the hook (if any); `false` means stop.
    pub fn report(&mut self, info: &StepInfo<'_>) -> bool {
        match self.hook.as_mut() {
            Some(h) => h(info),
            None => true,
        }
    }
}

/// Checks the shapes and the left padding; returns the batch size.
fn check_inputs(inputs_embeds: &Tensor, attention_mask: &Tensor) -> Result<usize> {
    let (b, t, _) = inputs_embeds.dims3().map_err(|_| {
        Error::Invalid(format!(
            "generation: inputs_embeds must be [batch, length, hidden], got {:?}",
            inputs_embeds.dims()
        ))
    })?;
    let mask_dims = attention_mask.dims();
    if mask_dims != [b, t] {
        return Err(Error::Invalid(format!(
            "generation: attention_mask must be [{b}, {t}] like inputs_embeds, got {mask_dims:?}"
        )));
    }
    if b == 0 || t == 0 {
        return Err(Error::Invalid(format!(
            "generation: empty input (inputs_embeds {:?})",
            inputs_embeds.dims()
        )));
    }
    let last = attention_mask
        .narrow(1, t - 1, 1)?
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    if let Some(row) = last.iter().position(|&m| m == 0.0) {
        return Err(Error::Invalid(format!(
            "generation: attention_mask row {row} ends with padding; generation needs left padding"
        )));
    }
    Ok(b)
}

/// Each of `0..n` repeated `times` times in a row (torch `repeat_interleave`).
pub(crate) fn repeat_interleave(n: usize, times: usize) -> Vec<usize> {
    (0..n).flat_map(|i| std::iter::repeat_n(i, times)).collect()
}

/// Draws one index with probability proportional to `weights` (torch.multinomial, 1 sample).
pub(crate) fn sample_index(weights: &[f32], rng: &mut dyn RngCore) -> Option<usize> {
    sample_without_replacement(weights, 1, rng).map(|v| v[0])
}

/// Draws `k` distinct indices, each with probability proportional to its weight among those not yet
/// drawn (torch.multinomial without replacement). `None` when fewer than `k` weights are positive.
pub(crate) fn sample_without_replacement(
    weights: &[f32],
    k: usize,
    rng: &mut dyn RngCore,
) -> Option<Vec<usize>> {
    use rand::Rng;
    // Only positive weights can be drawn; after top-k / top-p that is a handful of the
    // num_beams x vocab entries.
    let mut pool: Vec<(usize, f64)> = weights
        .iter()
        .enumerate()
        .filter(|(_, &x)| x.is_finite() && x > 0.0)
        .map(|(i, &x)| (i, x as f64))
        .collect();
    if pool.len() < k {
        return None;
    }
    let mut out = Vec::with_capacity(k);
    for _ in 0..k {
        let total: f64 = pool.iter().map(|p| p.1).sum();
        let u = rng.random::<f64>() * total;
        let mut acc = 0.0;
        let mut pick = pool.len() - 1;
        for (j, p) in pool.iter().enumerate() {
            acc += p.1;
            if u < acc {
                pick = j;
                break;
            }
        }
        out.push(pool.swap_remove(pick).0);
    }
    Some(out)
}

#[cfg(test)]
mod tests;
