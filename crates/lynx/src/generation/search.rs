//! Greedy search and multinomial sampling, after HF transformers 4.28.1 `greedy_search` and
//! `sample`: processors on the raw logits, then arg-max, or warpers, softmax and one draw.
//! A sequence finishes at EOS (kept); HF pads finished rows, here they leave the model batch.

use candle_core::Tensor;

use super::processors::{argmax, processors, softmax, warpers};
use super::{repeat_interleave, sample_index, Ctx, Mode, Sequence, StepInfo, StepModel};
use crate::{Error, Result};

pub(crate) fn run<M: StepModel + ?Sized>(
    ctx: &mut Ctx<'_, '_, M>,
    inputs_embeds: &Tensor,
    attention_mask: &Tensor,
    batch: usize,
) -> Result<Vec<Sequence>> {
    let cfg = ctx.cfg;
    let sampling = cfg.mode() == Mode::Sample;
    // HF expands the batch by num_return_sequences for sampling (greedy requires 1).
    let copies = if sampling {
        cfg.num_return_sequences
    } else {
        1
    };
    let n = batch * copies;
    let logits = ctx.model.prefill(inputs_embeds, attention_mask)?;
    let mut logits = ctx.rows(logits, batch, false)?;
    if copies > 1 {
        let rows = repeat_interleave(batch, copies);
        ctx.model.select_rows(&rows)?;
        logits = rows.iter().map(|&r| logits[r].clone()).collect();
    }
    let procs = processors(cfg);
    let warps = if sampling { warpers(cfg) } else { Vec::new() };

    let mut history: Vec<Vec<u32>> = vec![vec![cfg.bos_token_id]; n];
    let mut finished = vec![false; n];
    // The output sequence held by each model row.
    let mut active: Vec<usize> = (0..n).collect();
    let mut step = 0;
    loop {
        let mut new_tokens = vec![None; n];
        for (row, &seq) in active.iter().enumerate() {
            let scores = &mut logits[row];
            for p in &procs {
                p.apply(&history[seq], scores);
            }
            let token = if sampling {
                for w in &warps {
                    w.apply(scores);
                }
                sample_index(&softmax(scores), ctx.rng).ok_or_else(|| {
                    Error::Invalid(format!(
                        "generation: sequence {seq} has no token left to sample at step {} \
                         (every score is -inf after the processors and warpers)",
                        step + 1
                    ))
                })?
            } else {
                argmax(scores)
            } as u32;
            history[seq].push(token);
            new_tokens[seq] = Some(token);
            if Some(token) == cfg.eos_token_id {
                finished[seq] = true;
            }
        }
        step += 1;
        let done = finished.iter().filter(|&&f| f).count();
        let go_on = ctx.report(&StepInfo {
            step,
            tokens: &new_tokens,
            finished: done,
            total: n,
        });
        if done == n || 1 + step >= cfg.max_length() || !go_on {
            break;
        }
        let keep: Vec<usize> = (0..active.len())
            .filter(|&row| !finished[active[row]])
            .collect();
        if keep.len() != active.len() {
            ctx.model.select_rows(&keep)?;
            active = keep.iter().map(|&row| active[row]).collect();
        }
        let tokens: Vec<u32> = active
            .iter()
            .map(|&seq| history[seq][history[seq].len() - 1])
            .collect();
        let next = ctx.model.step(&tokens)?;
        logits = ctx.rows(next, active.len(), false)?;
    }
    Ok(history
        .into_iter()
        .map(|h| Sequence {
            tokens: h[1..].to_vec(),
            score: None,
        })
        .collect())
}
