//! Beam search and beam sampling, after HF transformers 4.28.1 `beam_search` / `beam_sample` and
//! `BeamSearchScorer` / `BeamHypotheses` (`beam_search.py`).
//!
//! Per step and beam group: log-softmax of the logits, processors, plus the running beam score;
//! beam sampling then applies the warpers per beam and draws 2 x num_beams candidates without
//! replacement from the softmax over all beams' tokens (sorted by score afterwards), beam search
//! takes the 2 x num_beams best. Candidates are consumed in order: EOS among the first num_beams
//! closes a hypothesis (its length counts the placeholder, not the EOS), other tokens fill the
//! next beams. Beam search starts with only the first beam alive (others at -1e9); beam sampling
//! starts all beams at 0, so its first step can pick the same token on several beams, as HF does.

use candle_core::Tensor;

use super::config::EarlyStopping;
use super::processors::{processors, softmax, warpers};
use super::{
    repeat_interleave, sample_without_replacement, Ctx, Mode, Sequence, StepInfo, StepModel,
};
use crate::{Error, Result};

/// The finished hypotheses of one beam group (HF `BeamHypotheses`).
#[derive(Debug, Clone)]
pub(crate) struct Hypotheses {
    num_beams: usize,
    length_penalty: f64,
    early_stopping: EarlyStopping,
    max_length: usize,
    /// (length-normalised score, history with placeholder, ended with EOS), in insertion order.
    beams: Vec<(f64, Vec<u32>, bool)>,
    worst: f64,
}

impl Hypotheses {
    pub fn new(
        num_beams: usize,
        length_penalty: f64,
        early_stopping: EarlyStopping,
        max_length: usize,
    ) -> Self {
        Self {
            num_beams,
            length_penalty,
            early_stopping,
            max_length,
            beams: Vec::new(),
            worst: 1e9,
        }
    }

    /// Offers a hypothesis; the score is `sum_logprobs / len(history) ** length_penalty`.
    pub fn add(&mut self, history: Vec<u32>, sum_logprobs: f32, eos: bool) {
        let score = sum_logprobs as f64 / (history.len() as f64).powf(self.length_penalty);
        if self.beams.len() < self.num_beams || score > self.worst {
            self.beams.push((score, history, eos));
            if self.beams.len() > self.num_beams {
                // Drop the worst (the earliest on ties); the next worst becomes the bar.
                let mut order: Vec<usize> = (0..self.beams.len()).collect();
                order.sort_by(|&a, &b| self.beams[a].0.total_cmp(&self.beams[b].0).then(a.cmp(&b)));
                self.worst = self.beams[order[1]].0;
                self.beams.remove(order[0]);
            } else {
                self.worst = self.worst.min(score);
            }
        }
    }

    /// Whether no running beam can still beat the kept hypotheses (`cur_len` counts the token
    /// being added at this step).
    pub fn is_done(&self, best_sum_logprobs: f32, cur_len: usize) -> bool {
        if self.beams.len() < self.num_beams {
            return false;
        }
        let best = best_sum_logprobs as f64;
        let lp = self.length_penalty;
        match self.early_stopping {
            EarlyStopping::Enough => true,
            EarlyStopping::Heuristic => self.worst >= best / (cur_len as f64).powf(lp),
            EarlyStopping::Never => {
                let len = if lp > 0.0 { self.max_length } else { cur_len };
                self.worst >= best / (len as f64).powf(lp)
            }
        }
    }

    /// The `keep` best hypotheses, best first (on equal scores the latest added wins, as HF's
    /// stable sort followed by pops from the end).
    pub fn best(&self, keep: usize) -> Vec<&(f64, Vec<u32>, bool)> {
        let mut sorted: Vec<&(f64, Vec<u32>, bool)> = self.beams.iter().collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        sorted.into_iter().rev().take(keep).collect()
    }
}

/// A running beam.
#[derive(Debug, Clone)]
struct Beam {
    history: Vec<u32>,
    score: f32,
}

struct Group {
    hyps: Hypotheses,
    beams: Vec<Beam>,
    done: bool,
}

pub(crate) fn run<M: StepModel + ?Sized>(
    ctx: &mut Ctx<'_, '_, M>,
    inputs_embeds: &Tensor,
    attention_mask: &Tensor,
    batch: usize,
) -> Result<Vec<Sequence>> {
    let cfg = ctx.cfg;
    let nb = cfg.num_beams;
    let sampling = cfg.mode() == Mode::BeamSample;
    // Beam search keeps num_return_sequences hypotheses per row; beam sampling runs that many
    // independent groups per row and keeps one hypothesis each (HF 4.28.1).
    let (groups_per_row, keep) = if sampling {
        (cfg.num_return_sequences, 1)
    } else {
        (1, cfg.num_return_sequences)
    };
    let n_groups = batch * groups_per_row;
    let logits = ctx.model.prefill(inputs_embeds, attention_mask)?;
    let prompt_logits = ctx.rows(logits, batch, true)?;
    let rows = repeat_interleave(batch, groups_per_row * nb);
    ctx.model.select_rows(&rows)?;
    let mut logits: Vec<Vec<f32>> = rows.iter().map(|&r| prompt_logits[r].clone()).collect();

    let mut groups: Vec<Group> = (0..n_groups)
        .map(|_| Group {
            hyps: Hypotheses::new(nb, cfg.length_penalty, cfg.early_stopping, cfg.max_length()),
            beams: (0..nb)
                .map(|j| Beam {
                    history: vec![cfg.bos_token_id],
                    score: if j == 0 || sampling { 0.0 } else { -1e9 },
                })
                .collect(),
            done: false,
        })
        .collect();
    let procs = processors(cfg);
    let warps = if sampling { warpers(cfg) } else { Vec::new() };
    // Groups whose beams are in the model batch, in batch order (nb rows each).
    let mut active: Vec<usize> = (0..n_groups).collect();
    let mut cur_len = 1;
    loop {
        // (token, source beam) per next beam of each active group
        let mut chosen: Vec<Vec<(u32, usize)>> = Vec::with_capacity(active.len());
        for (slot, &g) in active.iter().enumerate() {
            let group = &mut groups[g];
            let vocab = logits[slot * nb].len();
            let mut flat = Vec::with_capacity(nb * vocab);
            for (j, beam) in group.beams.iter().enumerate() {
                // already log-probabilities (Ctx::rows)
                let row = &mut logits[slot * nb + j];
                for p in &procs {
                    p.apply(&beam.history, row);
                }
                for s in row.iter_mut() {
                    *s += beam.score;
                }
                for w in &warps {
                    w.apply(row);
                }
                flat.extend_from_slice(row);
            }
            let candidates = if sampling {
                let picks = sample_without_replacement(&softmax(&flat), 2 * nb, ctx.rng)
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "generation: beam group {g} has fewer than {} tokens with \
                                 non-zero probability at step {cur_len}",
                            2 * nb
                        ))
                    })?;
                let mut c: Vec<(f32, usize)> = picks.into_iter().map(|i| (flat[i], i)).collect();
                c.sort_by(|a, b| b.0.total_cmp(&a.0));
                c
            } else {
                top_candidates(&flat, 2 * nb)
            };
            let mut next: Vec<(u32, usize, f32)> = Vec::with_capacity(nb);
            for (rank, &(score, idx)) in candidates.iter().enumerate() {
                let (src, token) = (idx / vocab, (idx % vocab) as u32);
                if Some(token) == cfg.eos_token_id {
                    if rank < nb {
                        let history = group.beams[src].history.clone();
                        group.hyps.add(history, score, true);
                    }
                } else {
                    next.push((token, src, score));
                }
                if next.len() == nb {
                    break;
                }
            }
            if next.len() < nb {
                return Err(Error::Invalid(format!(
                    "generation: beam group {g} found only {} non-EOS candidates for {nb} beams",
                    next.len()
                )));
            }
            let best = candidates.first().map_or(f32::NEG_INFINITY, |c| c.0);
            group.done = group.done || group.hyps.is_done(best, cur_len + 1);
            let old = std::mem::take(&mut group.beams);
            group.beams = next
                .iter()
                .map(|&(token, src, score)| {
                    let mut history = old[src].history.clone();
                    history.push(token);
                    Beam { history, score }
                })
                .collect();
            chosen.push(next.iter().map(|&(t, src, _)| (t, src)).collect());
        }
        cur_len += 1;
        let finished = groups.iter().filter(|g| g.done).count();
        let go_on = ctx.report(&StepInfo {
            step: cur_len - 1,
            tokens: &[],
            finished,
            total: n_groups,
        });
        if finished == n_groups || cur_len >= cfg.max_length() || !go_on {
            break;
        }
        let mut rows = Vec::new();
        let mut tokens = Vec::new();
        let mut still = Vec::new();
        for (slot, &g) in active.iter().enumerate() {
            if groups[g].done {
                continue;
            }
            still.push(g);
            for &(token, src) in &chosen[slot] {
                rows.push(slot * nb + src);
                tokens.push(token);
            }
        }
        ctx.model.select_rows(&rows)?;
        active = still;
        let next = ctx.model.step(&tokens)?;
        logits = ctx.rows(next, tokens.len(), true)?;
    }

    // Open beams of unfinished groups compete with the finished hypotheses.
    let mut out = Vec::with_capacity(n_groups * keep);
    for group in &mut groups {
        if !group.done {
            for beam in &group.beams {
                group.hyps.add(beam.history.clone(), beam.score, false);
            }
        }
        for (score, history, eos) in group.hyps.best(keep) {
            let mut tokens = history[1..].to_vec();
            if *eos {
                tokens.extend(cfg.eos_token_id);
            }
            out.push(Sequence {
                tokens,
                score: Some(*score),
            });
        }
    }
    Ok(out)
}

/// The `k` best (score, index) pairs, best first; ties keep the lower index first (one pass,
/// the vocabulary of every beam is scanned once).
fn top_candidates(scores: &[f32], k: usize) -> Vec<(f32, usize)> {
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    if k == 0 {
        return best;
    }
    for (i, &s) in scores.iter().enumerate() {
        if best.len() == k && s.total_cmp(&best[k - 1].0).is_le() {
            continue;
        }
        // after every kept entry with a score >= s (earlier indices win ties)
        let at = best.partition_point(|&(b, _)| b.total_cmp(&s).is_ge());
        best.insert(at, (s, i));
        best.truncate(k);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypotheses_keep_the_best_and_track_the_worst() {
        let mut h = Hypotheses::new(2, 1.0, EarlyStopping::Heuristic, 10);
        h.add(vec![1, 5], -2.0, true); // -1.0
        h.add(vec![1, 5, 6, 7], -2.0, true); // -0.5
        assert_eq!(h.worst, -1.0);
        h.add(vec![1, 9], -4.0, true); // -2.0: worse than worst, rejected
        assert_eq!(h.beams.len(), 2);
        h.add(vec![1, 8], -1.5, true); // -0.75: replaces -1.0
        assert_eq!(h.worst, -0.75);
        let best = h.best(2);
        assert_eq!(best[0].1, vec![1, 5, 6, 7]);
        assert_eq!(best[1].1, vec![1, 8]);
    }

    #[test]
    fn length_penalty_uses_the_length_with_placeholder() {
        let mut h = Hypotheses::new(1, -2.0, EarlyStopping::Heuristic, 10);
        h.add(vec![1, 4, 4], -0.5, true);
        assert!((h.beams[0].0 - (-0.5 * 9.0)).abs() < 1e-9);
        let mut h = Hypotheses::new(1, 0.0, EarlyStopping::Heuristic, 10);
        h.add(vec![1, 4, 4], -0.5, true);
        assert_eq!(h.beams[0].0, -0.5);
    }

    #[test]
    fn done_rules() {
        let mut h = Hypotheses::new(1, 1.0, EarlyStopping::Heuristic, 10);
        assert!(!h.is_done(0.0, 3)); // not enough hypotheses
        h.add(vec![1, 4], -1.0, true); // -0.5
        assert!(h.is_done(-2.0, 3)); // best reachable -0.667 <= -0.5
        assert!(!h.is_done(-1.0, 3)); // -0.333 could still win
        let mut e = Hypotheses::new(1, 1.0, EarlyStopping::Enough, 10);
        e.add(vec![1, 4], -1.0, true);
        assert!(e.is_done(0.0, 3));
        let mut n = Hypotheses::new(1, 1.0, EarlyStopping::Never, 10);
        n.add(vec![1, 4], -1.0, true);
        assert!(!n.is_done(-2.0, 3)); // -2/10 = -0.2 could still win
        assert!(n.is_done(-6.0, 3));
    }

    #[test]
    fn equal_scores_prefer_the_latest_and_drop_the_earliest() {
        let mut h = Hypotheses::new(2, 0.0, EarlyStopping::Heuristic, 10);
        h.add(vec![1, 3], -1.0, true);
        h.add(vec![1, 4], -1.0, true);
        assert_eq!(h.best(1)[0].1, vec![1, 4]);
        h.add(vec![1, 5], -0.5, true);
        // the earliest of the two tied -1.0 went away
        let kept: Vec<_> = h.beams.iter().map(|b| b.1[1]).collect();
        assert_eq!(kept, vec![4, 5]);
    }

    #[test]
    fn top_candidates_sorted_with_stable_ties() {
        let s = [0.5, 2.0, f32::NEG_INFINITY, 2.0, 1.0];
        assert_eq!(top_candidates(&s, 3), vec![(2.0, 1), (2.0, 3), (1.0, 4)]);
        assert_eq!(top_candidates(&s, 9).len(), 5);
    }
}
