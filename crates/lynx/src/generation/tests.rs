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

#[test]
fn greedy_matches_the_table_and_processors() {
    for cfg in [
        greedy_cfg(12),
        GenerationConfig {
            repetition_penalty: 1.5,
            no_repeat_ngram_size: 2,
            min_length: 4,
            ..greedy_cfg(12)
        },
        GenerationConfig {
            no_repeat_ngram_size: 1,
            ..greedy_cfg(7)
        },
    ] {
        for key in [3, 17, 40] {
            let got = tokens(&run(&mut Toy::new(9), &[key], &cfg));
            assert_eq!(
                got[0],
                reference_greedy(9, key, &cfg, None),
                "key {key} cfg {cfg:?}"
            );
        }
    }
}

#[test]
fn no_repeat_ngram_one_never_repeats_a_token_nor_the_placeholder() {
    let cfg = GenerationConfig {
        no_repeat_ngram_size: 1,
        eos_token_id: None,
        ..greedy_cfg(7)
    };
    let got = tokens(&run(&mut Toy::new(8), &[5], &cfg))[0].clone();
    assert_eq!(got.len(), 7);
    let mut seen = vec![cfg.bos_token_id];
    for t in got {
        assert!(!seen.contains(&t), "{t} repeated");
        seen.push(t);
    }
}

/// EOS (token 2) always has the best logit.
fn eos_first(_: u64, _: &[u32], row: &mut [f32]) {
    row[2] = 10.0;
}

#[test]
fn eos_at_step_one_and_min_length() {
    let cfg = greedy_cfg(5);
    let got = tokens(&run(&mut Toy::new(6).with(eos_first), &[1], &cfg));
    assert_eq!(got, vec![vec![2]]);
    // min_length 2 (counts the placeholder) bans EOS for the first new token only
    let cfg = GenerationConfig {
        min_length: 2,
        ..greedy_cfg(5)
    };
    let got = tokens(&run(&mut Toy::new(6).with(eos_first), &[1], &cfg));
    assert_eq!(got[0].len(), 2);
    assert_ne!(got[0][0], 2);
    assert_eq!(got[0][1], 2);
    let cfg = GenerationConfig {
        min_length: 4,
        ..greedy_cfg(5)
    };
    let got = tokens(&run(&mut Toy::new(6).with(eos_first), &[1], &cfg));
    assert_eq!(got[0].len(), 4);
    assert_eq!(got[0].iter().filter(|&&t| t == 2).count(), 1);
}

/// Row keys decide when EOS comes: key k ends after k tokens.
fn eos_after_key(key: u64, tokens: &[u32], row: &mut [f32]) {
    row[2] = if tokens.len() + 1 >= key as usize {
        10.0
    } else {
        -10.0
    };
}

#[test]
fn batch_rows_finish_at_different_times_and_leave_the_batch() {
    let cfg = greedy_cfg(8);
    let mut toy = Toy::new(7).with(eos_after_key);
    let log = toy.log.clone();
    let got = tokens(&run(&mut toy, &[3, 1, 5], &cfg));
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 1, 5]);
    for (row, key) in got.iter().zip([3u64, 1, 5]) {
        assert_eq!(*row, reference_greedy(7, key, &cfg, Some(&eos_after_key)));
        assert_eq!(row.last(), Some(&2));
    }
    let log = log.borrow();
    // row 1 leaves after step 1, row 0 after step 3; the last step feeds only row 2
    assert_eq!(log[1], "select [0, 2]");
    assert!(log.contains(&"select [1]".to_string()), "{log:?}");
    assert_eq!(log.iter().filter(|l| l.starts_with("step")).count(), 4);
    // the first step feeds the first generated tokens (never the placeholder) of the rows left
    assert_eq!(log[2], format!("step [{}, {}]", got[0][0], got[2][0]));
}

#[test]
fn runs_to_max_new_tokens_without_eos() {
    let cfg = GenerationConfig {
        eos_token_id: None,
        ..greedy_cfg(6)
    };
    let mut toy = Toy::new(5).with(eos_first);
    let log = toy.log.clone();
    let got = tokens(&run(&mut toy, &[2, 9], &cfg));
    assert!(got.iter().all(|r| r.len() == 6));
    // 1 prefill + 5 steps: the 6th token comes from the 5th step's logits
    assert_eq!(
        log.borrow()
            .iter()
            .filter(|l| l.starts_with("step"))
            .count(),
        5
    );
}

#[test]
fn batch_rows_are_independent_in_greedy_and_beam() {
    let keys = [4u64, 11, 23];
    for cfg in [
        greedy_cfg(9),
        beam_cfg(3, 9, 1.0),
        beam_cfg(4, 7, -2.0),
        GenerationConfig {
            no_repeat_ngram_size: 2,
            min_length: 3,
            ..beam_cfg(3, 8, 0.0)
        },
    ] {
        let over = |key: u64, tokens: &[u32], row: &mut [f32]| {
            // EOS more likely the longer the row runs, at a per-row pace
            row[2] += (tokens.len() as f32) * (key % 5) as f32 * 0.4 - 2.0;
        };
        let batch = run(&mut Toy::new(10).with(over), &keys, &cfg);
        for (i, &key) in keys.iter().enumerate() {
            let alone = run(&mut Toy::new(10).with(over), &[key], &cfg);
            assert_eq!(batch[i], alone[0], "row {i} cfg {cfg:?}");
        }
    }
}

/// Exhaustive reference: the best finished sequence by HF's hypothesis score (EOS-terminated
/// sequences, length without EOS and with the placeholder; or full-length sequences).
fn exhaustive_best(vocab: usize, key: u64, cfg: &GenerationConfig) -> (Vec<u32>, f64) {
    let mut best: (Vec<u32>, f64) = (Vec::new(), f64::NEG_INFINITY);
    let mut stack: Vec<(Vec<u32>, f32)> = vec![(Vec::new(), 0.0)];
    while let Some((toks, sum)) = stack.pop() {
        let mut row = toy_row(vocab, key, &toks, None);
        processors::log_softmax(&mut row);
        for (t, &lp) in row.iter().enumerate() {
            let t = t as u32;
            let s = sum + lp;
            let mut next = toks.clone();
            next.push(t);
            let len = if Some(t) == cfg.eos_token_id {
                toks.len() + 1
            } else if next.len() == cfg.max_new_tokens {
                next.len() + 1
            } else {
                stack.push((next, s));
                continue;
            };
            let score = s as f64 / (len as f64).powf(cfg.length_penalty);
            if score > best.1 {
                best = (next, score);
            }
        }
    }
    best
}

#[test]
fn wide_beam_search_finds_the_exhaustive_optimum() {
    for lp in [-2.0, 0.0, 1.0] {
        for key in [1u64, 8, 30] {
            let cfg = beam_cfg(40, 3, lp);
            let got = run(&mut Toy::new(4), &[key], &cfg);
            let (want, score) = exhaustive_best(4, key, &cfg);
            assert_eq!(got[0].tokens, want, "lp {lp} key {key}");
            assert!((got[0].score.unwrap() - score).abs() < 1e-4);
        }
    }
}

#[test]
fn beam_search_returns_sorted_hypotheses() {
    let cfg = GenerationConfig {
        num_return_sequences: 3,
        ..beam_cfg(4, 6, 1.0)
    };
    let got = run(&mut Toy::new(8), &[6, 7], &cfg);
    assert_eq!(got.len(), 6);
    for row in got.chunks(3) {
        let s: Vec<f64> = row.iter().map(|s| s.score.unwrap()).collect();
        assert!(s[0] >= s[1] && s[1] >= s[2], "{s:?}");
        assert_ne!(row[0].tokens, row[1].tokens);
    }
}

#[test]
fn all_beams_finishing_stops_the_search_early() {
    // EOS best everywhere: each step closes hypotheses (one at step 1, then one per beam) until
    // no open beam can beat the kept ones. With length penalty 0 that is after step 3.
    for (lp, max_steps) in [(0.0, 2), (1.0, 5), (-2.0, 2)] {
        let cfg = beam_cfg(3, 20, lp);
        let mut toy = Toy::new(6).with(eos_first);
        let log = toy.log.clone();
        let got = run(&mut toy, &[5], &cfg);
        assert_eq!(got[0].tokens, vec![2]);
        let steps = log
            .borrow()
            .iter()
            .filter(|l| l.starts_with("step"))
            .count();
        assert!(
            steps <= max_steps,
            "lp {lp}: should be done early, ran {steps} steps"
        );
    }
    let cfg = beam_cfg(3, 20, 1.0);
    // min_length 3 delays EOS to the third token
    let cfg = GenerationConfig {
        min_length: 3,
        ..cfg
    };
    let got = run(&mut Toy::new(6).with(eos_first), &[5], &cfg);
    assert_eq!(got[0].tokens.len(), 3);
    assert_eq!(got[0].tokens[2], 2);
}

/// One token per state gets +50: every mode must follow that chain.
fn peaked(key: u64, tokens: &[u32], row: &mut [f32]) {
    let t = (key as usize * 7 + tokens.len() * 3 + 1) % row.len();
    row[if t == 2 { 3 } else { t }] = 50.0;
}

#[test]
fn sampling_modes_follow_a_peaked_model() {
    let want = tokens(&run(
        &mut Toy::new(11).with(peaked),
        &[3, 8],
        &greedy_cfg(6),
    ));
    for cfg in [
        GenerationConfig {
            do_sample: true,
            top_k: 0,
            top_p: 1.0,
            ..greedy_cfg(6)
        },
        GenerationConfig {
            do_sample: true,
            top_k: 100, // larger than the vocabulary
            top_p: 0.5,
            temperature: 0.7,
            ..greedy_cfg(6)
        },
        GenerationConfig {
            do_sample: true,
            num_return_sequences: 2,
            ..beam_cfg(3, 6, -2.0)
        },
        GenerationConfig {
            do_sample: true,
            ..beam_cfg(5, 6, 1.0)
        },
    ] {
        let got = tokens(&run(&mut Toy::new(11).with(peaked), &[3, 8], &cfg));
        let per = cfg.num_return_sequences;
        assert_eq!(got.len(), 2 * per);
        for (i, row) in got.iter().enumerate() {
            assert_eq!(*row, want[i / per], "cfg {cfg:?}");
        }
    }
}

#[test]
fn sampling_draws_from_the_warped_distribution() {
    // step-1 logits [2, 1, 0, -1, -2]; EOS id 9 outside this test's interest
    let fixed = |_: u64, _: &[u32], row: &mut [f32]| {
        row.copy_from_slice(&[2.0, 1.0, 0.0, -1.0, -2.0]);
    };
    let n = 6000;
    let cfg = GenerationConfig {
        do_sample: true,
        num_return_sequences: n,
        top_k: 4,
        top_p: 0.8,
        temperature: 0.8,
        eos_token_id: None,
        ..greedy_cfg(1)
    };
    let got = tokens(&run(&mut Toy::new(5).with(fixed), &[1], &cfg));
    let mut counts = [0usize; 5];
    for r in &got {
        counts[r[0] as usize] += 1;
    }
    // temperature 0.8 -> softmax([2.5, 1.25, 0, -1.25, -2.5]); top-k 4 drops token 4; top-p 0.8
    // then keeps {0, 1} (cumulative mass from the bottom: .017 .076 .28 1.0, removed while <= 0.2)
    let z = (2.5f64).exp() + (1.25f64).exp();
    let want = [(2.5f64).exp() / z, (1.25f64).exp() / z, 0.0, 0.0, 0.0];
    for t in 0..5 {
        let f = counts[t] as f64 / n as f64;
        assert!((f - want[t]).abs() < 0.03, "token {t}: {f} vs {}", want[t]);
    }
}

#[test]
fn same_seed_same_result_and_seeds_differ() {
    let cfg = GenerationConfig {
        max_new_tokens: 10,
        ..Default::default()
    };
    let (e, m) = inputs(&[3, 5], &[1, 0]);
    let a = generate(&mut Toy::new(30), &e, &m, &cfg).unwrap();
    let b = generate(&mut Toy::new(30), &e, &m, &cfg).unwrap();
    assert_eq!(a, b);
    let differs = (1..6).any(|s| {
        let c = GenerationConfig {
            seed: s,
            ..cfg.clone()
        };
        generate(&mut Toy::new(30), &e, &m, &c).unwrap() != a
    });
    assert!(differs);
    let sample = GenerationConfig {
        num_beams: 1,
        ..cfg.clone()
    };
    let a = generate(&mut Toy::new(30), &e, &m, &sample).unwrap();
    assert_eq!(a, generate(&mut Toy::new(30), &e, &m, &sample).unwrap());
    assert!(a.iter().all(|r| !r.is_empty() && r.len() <= 10));
}

#[test]
fn hook_sees_every_step_and_can_stop() {
    let (e, m) = inputs(&[5, 1], &[]);
    let cfg = greedy_cfg(6);
    let mut seen = Vec::new();
    let mut hook = |info: &StepInfo<'_>| {
        seen.push((info.step, info.tokens.to_vec(), info.finished));
        info.step < 4
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut toy = Toy::new(7).with(eos_after_key);
    let out = generate_with(&mut toy, &e, &m, &cfg, &mut rng, Some(&mut hook)).unwrap();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0].1[1], Some(2)); // row 1 ends at once
    assert_eq!(seen[1].1[1], None);
    assert!(seen.iter().all(|s| s.2 == 1));
    assert_eq!(out[0].tokens.len(), 4);
    assert!(!out[0].tokens.contains(&2));
    assert_eq!(out[1].tokens, vec![2]);
    // beam hook: stopping early finalises the open beams
    let mut steps = 0;
    let mut hook = |info: &StepInfo<'_>| {
        steps += 1;
        assert!(info.tokens.is_empty());
        info.step < 2
    };
    let out = generate_with(
        &mut Toy::new(7),
        &e,
        &m,
        &GenerationConfig {
            eos_token_id: None,
            ..beam_cfg(2, 6, 1.0)
        },
        &mut rng,
        Some(&mut hook),
    )
    .unwrap();
    assert_eq!(steps, 2);
    assert!(out.iter().all(|s| s.tokens.len() == 2));
}

#[test]
fn bad_inputs_get_clear_errors() {
    let cfg = greedy_cfg(3);
    let (e, _) = inputs(&[1, 2], &[]);
    let right_pad =
        Tensor::from_vec(vec![1u32, 1, 1, 0, 1, 1, 1, 1], (2, 4), &Device::Cpu).unwrap();
    let err = generate(&mut Toy::new(5), &e, &right_pad, &cfg)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("row 0") && err.contains("left padding"),
        "{err}"
    );
    let short = Tensor::ones((2, 3), candle_core::DType::U32, &Device::Cpu).unwrap();
    let err = generate(&mut Toy::new(5), &e, &short, &cfg)
        .unwrap_err()
        .to_string();
    assert!(err.contains("attention_mask"), "{err}");
    let (e, m) = inputs(&[1], &[]);
    let err = generate(&mut Toy::new(2), &e, &m, &cfg)
        .unwrap_err()
        .to_string();
    assert!(err.contains("generation.eos_token_id"), "{err}");
    let bad = GenerationConfig {
        min_length: 9,
        ..cfg
    };
    let err = generate(&mut Toy::new(5), &e, &m, &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("generation.min_length"), "{err}");
    let (e, m) = inputs(&[1], &[]);
    let mut no_tokens =
        Toy::new(5).with(|_: u64, _: &[u32], row: &mut [f32]| row.fill(f32::NEG_INFINITY));
    let sample = GenerationConfig {
        do_sample: true,
        ..greedy_cfg(3)
    };
    let err = generate(&mut no_tokens, &e, &m, &sample)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no token left"), "{err}");
}

#[test]
fn left_padding_is_accepted() {
    let (e, m) = inputs(&[1, 2, 3], &[2, 0, 3]);
    let got = generate(&mut Toy::new(6), &e, &m, &greedy_cfg(3)).unwrap();
    assert_eq!(got.len(), 3);
}

#[test]
fn eos_ranked_below_num_beams_is_not_a_hypothesis() {
    // 2 beams, length penalty 0, two hypotheses returned. Step 1: A (3) and B (4). Step 2
    // candidates: A-EOS -1.20 (closes [A]), A-0 -1.56, B-EOS -1.61 (rank 2: HF drops it), A-1.
    // Later EOS always ranks below two other tokens, so the second hypothesis is an open beam.
    let over = |_: u64, tokens: &[u32], row: &mut [f32]| {
        let ln = |p: f32| p.ln();
        let v = match tokens {
            [] => [-20.0, -20.0, -20.0, ln(0.6), ln(0.4)],
            [3] => [ln(0.35), ln(0.15), ln(0.5), -20.0, -20.0],
            [4] => [ln(0.25), ln(0.25), ln(0.5), -20.0, -20.0],
            _ => [ln(0.12), ln(0.08), ln(0.2), ln(0.35), ln(0.25)],
        };
        row.copy_from_slice(&v);
    };
    let cfg = GenerationConfig {
        num_return_sequences: 2,
        ..beam_cfg(2, 4, 0.0)
    };
    let got = run(&mut Toy::new(5).with(over), &[1], &cfg);
    assert_eq!(got[0].tokens, vec![3, 2]);
    assert!((got[0].score.unwrap() - (0.6f64 * 0.5).ln()).abs() < 1e-5);
    assert_eq!(got[1].tokens, vec![3, 0, 3, 3]);
}
