//! Beam search and beam sampling tests over the toy model.

use super::*;

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
