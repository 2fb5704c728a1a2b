//! Logits processors and warpers of HF transformers 4.28.1 (`logits_process.py`), applied to one
//! row of scores with that row's token history (the BOS placeholder first).
//!
//! Processors (always, in HF's order): repetition penalty, no-repeat n-gram, min length.
//! Warpers (sampling only, in HF's order): temperature, top-k, top-p.

use super::config::GenerationConfig;

/// A score-changing step that generation applies before choosing tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum Processor {
    /// Scores of tokens already in the history: negative ones are multiplied by the penalty,
    /// others divided (CTRL's penalty, HF `RepetitionPenaltyLogitsProcessor`).
    RepetitionPenalty(f32),
    /// Bans every token that would complete an n-gram already present in the history.
    NoRepeatNGram(usize),
    /// Bans EOS while the history (placeholder included) is shorter than `min_length`.
    MinLength { min_length: usize, eos: u32 },
}

/// A sampling-only reshaping of the scores.
#[derive(Debug, Clone, PartialEq)]
pub enum Warper {
    Temperature(f32),
    /// Keeps the `max(k, min_keep)` best scores (and any tied with the last of them).
    TopK {
        k: usize,
        min_keep: usize,
    },
    /// Keeps the smallest set of best tokens whose probability reaches `p`.
    TopP {
        p: f64,
        min_keep: usize,
    },
}

/// The processors HF `_get_logits_processor` builds for `cfg`, in its order.
pub fn processors(cfg: &GenerationConfig) -> Vec<Processor> {
    let mut out = Vec::new();
    if cfg.repetition_penalty != 1.0 {
        out.push(Processor::RepetitionPenalty(cfg.repetition_penalty as f32));
    }
    if cfg.no_repeat_ngram_size > 0 {
        out.push(Processor::NoRepeatNGram(cfg.no_repeat_ngram_size));
    }
    if let Some(eos) = cfg.eos_token_id {
        if cfg.min_length > 0 {
            out.push(Processor::MinLength {
                min_length: cfg.min_length,
                eos,
            });
        }
    }
    out
}

/// The warpers HF `_get_logits_warper` builds for `cfg`, in its order. Beam sampling keeps at
/// least 2 tokens per beam, plain sampling at least 1.
pub fn warpers(cfg: &GenerationConfig) -> Vec<Warper> {
    let min_keep = if cfg.num_beams > 1 { 2 } else { 1 };
    let mut out = Vec::new();
    if cfg.temperature != 1.0 {
        out.push(Warper::Temperature(cfg.temperature as f32));
    }
    if cfg.top_k != 0 {
        out.push(Warper::TopK {
            k: cfg.top_k,
            min_keep,
        });
    }
    if cfg.top_p < 1.0 {
        out.push(Warper::TopP {
            p: cfg.top_p,
            min_keep,
        });
    }
    out
}

impl Processor {
    /// Applies the processor to `scores` (one row, vocabulary wide) given the row's history.
    pub fn apply(&self, history: &[u32], scores: &mut [f32]) {
        match *self {
            Processor::RepetitionPenalty(penalty) => {
                let mut seen = vec![false; scores.len()];
                for &t in history {
                    let t = t as usize;
                    if t < scores.len() && !seen[t] {
                        seen[t] = true;
                        let s = scores[t];
                        scores[t] = if s < 0.0 { s * penalty } else { s / penalty };
                    }
                }
            }
            Processor::NoRepeatNGram(n) => {
                for t in banned_ngram_tokens(history, n) {
                    if let Some(s) = scores.get_mut(t as usize) {
                        *s = f32::NEG_INFINITY;
                    }
                }
            }
            Processor::MinLength { min_length, eos } => {
                if history.len() < min_length {
                    if let Some(s) = scores.get_mut(eos as usize) {
                        *s = f32::NEG_INFINITY;
                    }
                }
            }
        }
    }
}

/// Tokens that would repeat an n-gram of `history` (fairseq's rule as HF implements it: the last
/// n-1 tokens are matched against every earlier n-gram's first n-1 tokens).
pub fn banned_ngram_tokens(history: &[u32], n: usize) -> Vec<u32> {
    let len = history.len();
    if n == 0 || len + 1 < n {
        return Vec::new();
    }
    let prefix = &history[len + 1 - n..];
    history
        .windows(n)
        .filter(|w| &w[..n - 1] == prefix)
        .map(|w| w[n - 1])
        .collect()
}

impl Warper {
    /// Applies the warper to one row of scores.
    pub fn apply(&self, scores: &mut [f32]) {
        match *self {
            Warper::Temperature(t) => scores.iter_mut().for_each(|s| *s /= t),
            Warper::TopK { k, min_keep } => top_k(scores, k.max(min_keep)),
            Warper::TopP { p, min_keep } => top_p(scores, p, min_keep),
        }
    }
}

fn top_k(scores: &mut [f32], k: usize) {
    let k = k.min(scores.len());
    if k == 0 {
        return;
    }
    let threshold = kth_largest(scores, k);
    for s in scores.iter_mut() {
        if *s < threshold {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// The k-th largest score (1-based k <= len): one pass with a small sorted buffer for the usual
/// small k, a selection otherwise.
fn kth_largest(scores: &[f32], k: usize) -> f32 {
    if k > 64 {
        let mut sorted = scores.to_vec();
        let (_, &mut kth, _) = sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        return kth;
    }
    let mut best: Vec<f32> = Vec::with_capacity(k + 1);
    for &s in scores {
        if best.len() == k && s.total_cmp(&best[k - 1]).is_le() {
            continue;
        }
        let at = best.partition_point(|b| b.total_cmp(&s).is_ge());
        best.insert(at, s);
        best.truncate(k);
    }
    best[k - 1]
}

fn top_p(scores: &mut [f32], p: f64, min_keep: usize) {
    // Tokens at -inf have probability 0: HF sorts them first and "removes" them again, so only
    // the finite ones need sorting (after top-k that is a handful, not the vocabulary).
    let mut order: Vec<usize> = (0..scores.len())
        .filter(|&i| scores[i] > f32::NEG_INFINITY)
        .collect();
    let n = order.len();
    if n == 0 {
        return;
    }
    // Ascending order (ties by index), as HF sorts before its cumulative sum.
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    let sorted: Vec<f32> = order.iter().map(|&i| scores[i]).collect();
    let probs = softmax(&sorted);
    // HF compares an f32 cumulative sum with 1 - top_p rounded to f32.
    let cut = (1.0 - p) as f32;
    // Always keep the best token: HF relies on the cumulative sum reaching 1, which rounding can
    // miss for a tiny top_p; keeping it avoids an all -inf row.
    let keep_from_end = min_keep.max(1);
    let mut cum = 0f32;
    for (rank, &i) in order.iter().enumerate() {
        cum += probs[rank];
        if cum <= cut && rank + keep_from_end < n {
            scores[i] = f32::NEG_INFINITY;
        }
    }
}

/// Sum of exp(s - max) over a row: eight f32 lanes (no long dependency chain), added in f64.
/// Entries at -inf contribute 0 without an exponential.
fn sum_exp(scores: &[f32], max: f32) -> f64 {
    let mut lanes = [0f32; 8];
    for chunk in scores.chunks(8) {
        for (lane, &s) in lanes.iter_mut().zip(chunk) {
            if s > f32::NEG_INFINITY {
                *lane += (s - max).exp();
            }
        }
    }
    lanes.iter().map(|&l| l as f64).sum()
}

/// Softmax of one row in f32; -inf entries get probability 0.
pub fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return vec![0.0; scores.len()];
    }
    let inv = (1.0 / sum_exp(scores, max)) as f32;
    scores
        .iter()
        .map(|&s| {
            if s > f32::NEG_INFINITY {
                (s - max).exp() * inv
            } else {
                0.0
            }
        })
        .collect()
}

/// Log-softmax of one row in place, as beam search normalises logits.
pub fn log_softmax(scores: &mut [f32]) {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return;
    }
    let log_sum = sum_exp(scores, max).ln() as f32;
    for s in scores.iter_mut() {
        *s = *s - max - log_sum;
    }
}

/// Index of the first maximum (torch.argmax's tie rule).
pub fn argmax(scores: &[f32]) -> usize {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const NINF: f32 = f32::NEG_INFINITY;

    #[test]
    fn repetition_penalty_counts_each_token_once_and_the_placeholder() {
        let mut s = vec![1.0, -1.0, 2.0, 0.0, 3.0];
        Processor::RepetitionPenalty(2.0).apply(&[1, 2, 2, 3], &mut s);
        assert_eq!(s, vec![1.0, -2.0, 1.0, 0.0, 3.0]);
    }

    #[test]
    fn ngram_bans_follow_fairseq() {
        // history (placeholder 1 first): 1 5 6 5 -> bigram prefix (5) seen followed by 6
        assert_eq!(banned_ngram_tokens(&[1, 5, 6, 5], 2), vec![6]);
        // the placeholder takes part: 1 7 1 -> (1) was followed by 7
        assert_eq!(banned_ngram_tokens(&[1, 7, 1], 2), vec![7]);
        // n = 1 bans the whole history
        assert_eq!(banned_ngram_tokens(&[1, 4, 4], 1), vec![1, 4, 4]);
        // too short for any n-gram
        assert!(banned_ngram_tokens(&[1, 4], 4).is_empty());
        // len + 1 == n: the prefix is the whole history, no earlier n-gram exists
        assert!(banned_ngram_tokens(&[1, 4, 5], 4).is_empty());
        let mut s = vec![0.0; 8];
        Processor::NoRepeatNGram(2).apply(&[1, 5, 6, 5], &mut s);
        assert_eq!(s[6], NINF);
        assert_eq!(s.iter().filter(|v| v.is_infinite()).count(), 1);
    }

    #[test]
    fn min_length_counts_the_placeholder() {
        let p = Processor::MinLength {
            min_length: 2,
            eos: 2,
        };
        let mut s = vec![0.5; 4];
        p.apply(&[1], &mut s); // first new token: EOS banned
        assert_eq!(s[2], NINF);
        let mut s = vec![0.5; 4];
        p.apply(&[1, 3], &mut s); // second new token: allowed
        assert_eq!(s[2], 0.5);
    }

    #[test]
    fn top_k_larger_than_vocab_keeps_everything_and_keeps_ties() {
        let mut s = vec![1.0, 3.0, 2.0];
        Warper::TopK { k: 10, min_keep: 1 }.apply(&mut s);
        assert_eq!(s, vec![1.0, 3.0, 2.0]);
        let mut s = vec![1.0, 3.0, 3.0, 0.0];
        Warper::TopK { k: 1, min_keep: 1 }.apply(&mut s);
        assert_eq!(s, vec![NINF, 3.0, 3.0, NINF]);
        // min_keep raises k
        let mut s = vec![1.0, 3.0, 2.0, 0.0];
        Warper::TopK { k: 1, min_keep: 2 }.apply(&mut s);
        assert_eq!(s, vec![NINF, 3.0, 2.0, NINF]);
    }

    #[test]
    fn kth_largest_agrees_with_sorting() {
        let row: Vec<f32> = (0..300)
            .map(|i| ((i * 7919) % 101) as f32 * 0.5 - 20.0)
            .collect();
        let mut sorted = row.clone();
        sorted.sort_by(|a, b| b.total_cmp(a));
        for k in [1, 2, 3, 50, 64, 65, 200, 300] {
            assert_eq!(kth_largest(&row, k), sorted[k - 1], "k {k}");
        }
    }

    #[test]
    fn top_p_keeps_at_least_one_token_and_min_keep() {
        let mut s = vec![0.0, 5.0, 1.0, -1.0];
        Warper::TopP {
            p: 1e-9,
            min_keep: 1,
        }
        .apply(&mut s);
        assert_eq!(s, vec![NINF, 5.0, NINF, NINF]);
        let mut s = vec![0.0, 5.0, 1.0, -1.0];
        Warper::TopP {
            p: 1e-9,
            min_keep: 2,
        }
        .apply(&mut s);
        assert_eq!(s, vec![NINF, 5.0, 1.0, NINF]);
        // p = 1 removes nothing
        let mut s = vec![0.0, 5.0, 1.0, -1.0];
        Warper::TopP {
            p: 1.0,
            min_keep: 1,
        }
        .apply(&mut s);
        assert_eq!(s, vec![0.0, 5.0, 1.0, -1.0]);
    }

    #[test]
    fn pipelines_follow_hf_order_and_switches() {
        let cfg = GenerationConfig {
            repetition_penalty: 1.2,
            temperature: 0.5,
            ..Default::default()
        };
        assert_eq!(
            processors(&cfg),
            vec![
                Processor::RepetitionPenalty(1.2),
                Processor::NoRepeatNGram(2),
                Processor::MinLength {
                    min_length: 2,
                    eos: 2
                }
            ]
        );
        assert_eq!(
            warpers(&cfg),
            vec![
                Warper::Temperature(0.5),
                Warper::TopK { k: 3, min_keep: 2 },
                Warper::TopP {
                    p: 0.9,
                    min_keep: 2
                }
            ]
        );
        let plain = GenerationConfig {
            num_beams: 1,
            top_k: 0,
            top_p: 1.0,
            no_repeat_ngram_size: 0,
            min_length: 0,
            ..Default::default()
        };
        assert!(processors(&plain).is_empty());
        assert!(warpers(&plain).is_empty());
        let no_eos = GenerationConfig {
            eos_token_id: None,
            no_repeat_ngram_size: 0,
            ..Default::default()
        };
        assert!(processors(&no_eos).is_empty());
    }

    #[test]
    fn softmax_helpers() {
        let mut s = vec![0.0, (2f32).ln(), NINF];
        log_softmax(&mut s);
        assert!((s[0] - (1.0f32 / 3.0).ln()).abs() < 1e-6);
        assert!((s[1] - (2.0f32 / 3.0).ln()).abs() < 1e-6);
        assert_eq!(s[2], NINF);
        let p = softmax(&[0.0, (2f32).ln(), NINF]);
        assert!((p[0] - 1.0 / 3.0).abs() < 1e-6 && p[2] == 0.0);
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[NINF, NINF]), 0);
    }
}
