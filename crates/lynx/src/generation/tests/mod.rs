//! Generation tests over a toy `StepModel` whose logits come from a fixed pseudo-random table
//! indexed by the row's key, its last token and the step, with optional per-test overrides.

use std::cell::RefCell;
use std::rc::Rc;

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

type OverrideFn = dyn Fn(u64, &[u32], &mut [f32]);
type Override = Box<OverrideFn>;

/// Logits for (key, tokens fed so far): uniform in [-3, 3) from a ChaCha stream seeded by the key,
/// the last token and the step, then the test's override.
struct Toy {
    vocab: usize,
    rows: Vec<(u64, Vec<u32>)>,
    over: Option<Override>,
    /// Every call: "prefill B", "step [tokens]", "select [rows]".
    log: Rc<RefCell<Vec<String>>>,
}

impl Toy {
    fn new(vocab: usize) -> Self {
        Self {
            vocab,
            rows: Vec::new(),
            over: None,
            log: Rc::new(RefCell::new(Vec::new())),
        }
    }

    fn with(mut self, f: impl Fn(u64, &[u32], &mut [f32]) + 'static) -> Self {
        self.over = Some(Box::new(f));
        self
    }

    fn logits(&self) -> Tensor {
        let mut data = Vec::with_capacity(self.rows.len() * self.vocab);
        for (key, tokens) in &self.rows {
            data.extend(toy_row(self.vocab, *key, tokens, self.over.as_deref()));
        }
        Tensor::from_vec(data, (self.rows.len(), self.vocab), &Device::Cpu).unwrap()
    }
}

fn toy_row(vocab: usize, key: u64, tokens: &[u32], over: Option<&OverrideFn>) -> Vec<f32> {
    let last = tokens.last().map_or(u64::MAX, |&t| t as u64);
    let seed = key
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(last.wrapping_mul(0xD1B5_4A32_D192_ED03))
        .wrapping_add((tokens.len() as u64).wrapping_mul(0x94D0_49BB_1331_11EB));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut row: Vec<f32> = (0..vocab).map(|_| rng.random_range(-3.0f32..3.0)).collect();
    if let Some(f) = over {
        f(key, tokens, &mut row);
    }
    row
}

impl StepModel for Toy {
    fn prefill(&mut self, inputs_embeds: &Tensor, _mask: &Tensor) -> Result<Tensor> {
        let first: Vec<Vec<Vec<f32>>> = inputs_embeds.to_vec3()?;
        self.rows = first
            .iter()
            .map(|r| (r[r.len() - 1][0] as u64, Vec::new()))
            .collect();
        self.log
            .borrow_mut()
            .push(format!("prefill {}", self.rows.len()));
        Ok(self.logits())
    }

    fn step(&mut self, tokens: &[u32]) -> Result<Tensor> {
        assert_eq!(tokens.len(), self.rows.len(), "one token per cache row");
        for (row, &t) in self.rows.iter_mut().zip(tokens) {
            row.1.push(t);
        }
        self.log.borrow_mut().push(format!("step {tokens:?}"));
        Ok(self.logits())
    }

    fn select_rows(&mut self, rows: &[usize]) -> Result<()> {
        self.rows = rows.iter().map(|&r| self.rows[r].clone()).collect();
        self.log.borrow_mut().push(format!("select {rows:?}"));
        Ok(())
    }
}

/// Embeddings whose last position carries each row's key; left padding of `pads[i]` positions.
fn inputs(keys: &[u64], pads: &[usize]) -> (Tensor, Tensor) {
    let t = 4;
    let mut e = Vec::new();
    let mut m = Vec::new();
    for (i, &k) in keys.iter().enumerate() {
        for p in 0..t {
            e.extend([k as f32, 0.5]);
            m.push(u32::from(p >= pads.get(i).copied().unwrap_or(0)));
        }
    }
    let n = keys.len();
    (
        Tensor::from_vec(e, (n, t, 2), &Device::Cpu).unwrap(),
        Tensor::from_vec(m, (n, t), &Device::Cpu).unwrap(),
    )
}

fn greedy_cfg(max_new: usize) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: max_new,
        num_beams: 1,
        do_sample: false,
        min_length: 0,
        no_repeat_ngram_size: 0,
        ..Default::default()
    }
}

fn beam_cfg(nb: usize, max_new: usize, lp: f64) -> GenerationConfig {
    GenerationConfig {
        num_beams: nb,
        length_penalty: lp,
        ..greedy_cfg(max_new)
    }
}

fn run(model: &mut Toy, keys: &[u64], cfg: &GenerationConfig) -> Vec<Sequence> {
    let (e, m) = inputs(keys, &[]);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    generate_with(model, &e, &m, cfg, &mut rng, None).unwrap()
}

fn tokens(seqs: &[Sequence]) -> Vec<Vec<u32>> {
    seqs.iter().map(|s| s.tokens.clone()).collect()
}

/// Reference greedy decoding straight from the table with the processors applied by hand.
fn reference_greedy(
    vocab: usize,
    key: u64,
    cfg: &GenerationConfig,
    over: Option<&OverrideFn>,
) -> Vec<u32> {
    let mut out: Vec<u32> = Vec::new();
    while out.len() < cfg.max_new_tokens {
        let mut row = toy_row(vocab, key, &out, over);
        let mut history = vec![cfg.bos_token_id];
        history.extend(&out);
        for p in processors::processors(cfg) {
            p.apply(&history, &mut row);
        }
        let t = processors::argmax(&row) as u32;
        out.push(t);
        if Some(t) == cfg.eos_token_id {
            break;
        }
    }
    out
}

/// EOS (token 2) always has the best logit.
fn eos_first(_: u64, _: &[u32], row: &mut [f32]) {
    row[2] = 10.0;
}

/// Row keys decide when EOS comes: key k ends after k tokens.
fn eos_after_key(key: u64, tokens: &[u32], row: &mut [f32]) {
    row[2] = if tokens.len() + 1 >= key as usize {
        10.0
    } else {
        -10.0
    };
}

/// One token per state gets +50: every mode must follow that chain.
fn peaked(key: u64, tokens: &[u32], row: &mut [f32]) {
    let t = (key as usize * 7 + tokens.len() * 3 + 1) % row.len();
    row[if t == 2 { 3 } else { t }] = 50.0;
}

mod beam;
mod search;
