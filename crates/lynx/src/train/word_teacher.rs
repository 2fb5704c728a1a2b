//! Teacher-forced word tokens (`TrainConfig::word_token_teacher`; not in the release): on a
//! share of the short-answer rows of a batch, the LLM reads the reply's own words in place of
//! the bridge's word tokens, so that it learns to say what a word token names
//! (docs/lm-lookup.md, section 9). With `TrainConfig::word_tokens_from_short_answers`, an
//! explained reply's rows count too: their word tokens read the short answer the explanation
//! argues for, so that the LLM learns to copy the word tokens into explanations as well
//! (section 11).
//!
//! Why: the bridge's word tokens name colours, counts and shapes more often than the model
//! says them (section 8: shapes 53/103 named, 38 said). Reading word tokens that are right
//! more often than the bridge's own makes copying the word the best the adapters can do.

use candle_core::Tensor;

use crate::model::lynx::{Lynx, RowBridge};
use crate::train::rng::derive_seed;
use crate::{Error, Result};

/// Which rows are taught, and the word ids each of their `k` word tokens reads: media rows
/// whose answer (`answers`, one per row, as [`crate::train::batch::Batch::word_answers`]
/// gives them) has 1 to `k` tokens, each picked with probability `share` from `seed` and the
/// row's own tokens (so the micro-batches of one update pick independently). Token `i` reads
/// the answer's token `i mod n`, as the bag `word_answer_loss` trains spreads the answer's
/// tokens over the word tokens.
pub fn taught_rows(
    answers: &[Vec<u32>],
    media_rows: &[bool],
    k: usize,
    share: f64,
    seed: u64,
) -> Vec<Option<Vec<u32>>> {
    answers
        .iter()
        .enumerate()
        .map(|(r, answer)| {
            let n = answer.len();
            if !media_rows.get(r).copied().unwrap_or(false) || n == 0 || n > k {
                return None;
            }
            let mut labels = vec![r as u64];
            labels.extend(answer.iter().map(|&t| u64::from(t)));
            let draw = (derive_seed(seed, &labels) >> 11) as f64 / (1u64 << 53) as f64;
            (draw < share).then(|| (0..k).map(|i| answer[i % n]).collect())
        })
        .collect()
}

/// `out` with the word tokens (its last `k` bridge tokens) of the rows [`taught_rows`] picks
/// replaced by the LLM's embeddings of their answer's words; the other rows keep theirs.
pub fn teach_word_tokens(
    model: &Lynx,
    out: &RowBridge,
    answers: &[Vec<u32>],
    share: f64,
    seed: u64,
) -> Result<RowBridge> {
    let k = model.config().bridge.word_tokens;
    let (b, l, _) = out.tokens.dims3()?;
    if k == 0 || k > l {
        return Err(Error::config(
            "word_token_teacher",
            format!("the bridge has {k} word tokens among {l} bridge tokens"),
        ));
    }
    let rows = taught_rows(answers, &out.media_rows, k, share, seed);
    if rows.iter().all(Option::is_none) {
        return Ok(out.clone());
    }
    let ids: Vec<u32> = rows
        .iter()
        .flat_map(|r| r.clone().unwrap_or_else(|| vec![0; k]))
        .collect();
    let keep: Vec<f32> = rows
        .iter()
        .map(|r| f32::from(u8::from(r.is_none())))
        .collect();
    let dev = out.tokens.device();
    let dtype = out.tokens.dtype();
    let taught = model
        .llm()
        .embed(&Tensor::from_vec(ids, (b, k), dev)?)?
        .to_dtype(dtype)?;
    let keep = Tensor::from_vec(keep, (b, 1, 1), dev)?.to_dtype(dtype)?;
    let words = out.tokens.narrow(1, l - k, k)?;
    let mixed = (words.broadcast_mul(&keep)? + taught.broadcast_mul(&keep.affine(-1.0, 1.0)?)?)?;
    let tokens = Tensor::cat(&[&out.tokens.narrow(1, 0, l - k)?, &mixed], 1)?;
    Ok(RowBridge {
        tokens,
        ..out.clone()
    })
}
