//! Greedy and sampling tests over the toy model.

use super::*;

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
