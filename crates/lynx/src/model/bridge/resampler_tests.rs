//! Tests of the resampler: the locality bias, what an instruction-aware bridge reads, and its
//! word tokens.

use std::collections::HashMap;

use candle_core::{DType, Device, IndexOp};

use super::*;

#[test]
fn locality_bias_ties_each_latent_to_its_cell() {
    // 4 latents over 4×4 patches: latent 0 owns the top-left 2×2 patches.
    let bias = locality_bias(4, 4, 3.0).unwrap();
    assert_eq!(bias.dims(), &[4, 17]);
    let b: Vec<Vec<f32>> = bias.to_vec2().unwrap();
    let at = |l: usize, y: usize, x: usize| b[l][1 + y * 4 + x];
    for row in &b {
        assert_eq!(row[0], 0.0, "the class token is seen by every latent");
    }
    // Its own patches are the four nearest (-3 · 2 · 0.25² each); the rest fall off.
    let own = at(0, 0, 0);
    assert!((own + 0.375).abs() < 1e-6, "{own}");
    for (y, x) in [(0, 1), (1, 0), (1, 1)] {
        assert_eq!(at(0, y, x), own);
    }
    assert!(at(0, 0, 2) < own && at(0, 3, 3) < at(0, 0, 2));
    // The grid is symmetric: latent 3 (bottom-right) mirrors latent 0.
    assert_eq!(at(3, 3, 3), own);
    assert_eq!(at(3, 0, 0), at(0, 3, 3));
    assert_eq!(at(1, 0, 3), own);
}

#[test]
fn locality_needs_a_square_number_of_latents_and_a_sane_strength() {
    let err = locality_bias(32, 8, 3.0).unwrap_err().to_string();
    assert!(
        err.contains("bridge_config.locality") && err.contains("32"),
        "{err}"
    );
    let err = locality_bias(16, 8, -1.0).unwrap_err().to_string();
    assert!(err.contains(">= 0"), "{err}");
    let err = locality_bias(16, 8, f64::NAN).unwrap_err().to_string();
    assert!(err.contains("NaN"), "{err}");
    assert!(locality_bias(16, 0, 3.0).is_err());
}

fn eye(n: usize) -> Tensor {
    Tensor::eye(n, DType::F32, &Device::Cpu).unwrap()
}

/// One head of width 4 whose queries are zero (every content logit 0) and whose values
/// and output are the normalised media themselves.
fn plain_attention() -> PerceiverAttention {
    let d = 4;
    let z = |shape: (usize, usize)| Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap();
    let ones = Tensor::ones(d, DType::F32, &Device::Cpu).unwrap();
    let zeros = Tensor::zeros(d, DType::F32, &Device::Cpu).unwrap();
    let mut w = HashMap::new();
    for n in ["norm_media", "norm_latents"] {
        w.insert(format!("{n}.weight"), ones.clone());
        w.insert(format!("{n}.bias"), zeros.clone());
    }
    w.insert("to_q.weight".into(), z((d, d)));
    w.insert(
        "to_kv.weight".into(),
        Tensor::cat(&[z((d, d)), eye(d)], 0).unwrap(),
    );
    w.insert("to_out.weight".into(), eye(d));
    let cfg = BridgeConfig {
        depth: 1,
        num_bridge_tokens: 4,
        media_dim: d,
        latent_dim: d,
        num_heads: 1,
        head_dim: d,
        ff_mult: 1,
        locality: 3.0,
        media_grid: 4,
        instruction_aware: false,
        word_tokens: 0,
        word_token_place: WordTokenPlace::Prefix,
        word_token_hard: false,
    };
    let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
    PerceiverAttention::new(&cfg, vb).unwrap()
}

/// Media of one 4×4 frame: every patch is background except one object patch.
fn frame_with_object_at(y: usize, x: usize) -> Tensor {
    let background = [0f32, 1.0, 0.0, -1.0];
    let object = [1f32, 0.0, -1.0, 0.0];
    let mut rows = vec![[0f32, 0.0, 0.0, 0.0]];
    for py in 0..4 {
        for px in 0..4 {
            rows.push(if (py, px) == (y, x) {
                object
            } else {
                background
            });
        }
    }
    let flat: Vec<f32> = rows.concat();
    Tensor::from_vec(flat, (1, 17, 4), &Device::Cpu).unwrap()
}

/// How much of the object each latent took in (its output along the object's direction).
fn object_share(attn: &PerceiverAttention, media: &Tensor, bias: Option<&Tensor>) -> Vec<f32> {
    let latents = Tensor::zeros((1, 4, 4), DType::F32, &Device::Cpu).unwrap();
    let out = attn.forward(media, &latents, bias).unwrap();
    (0..4)
        .map(|l| out.i((0, l, 0)).unwrap().to_scalar::<f32>().unwrap())
        .collect()
}

#[test]
fn a_local_bridge_keeps_which_side_an_object_is_on() {
    let attn = plain_attention();
    let bias = locality_bias(4, 4, 3.0).unwrap();
    let left = frame_with_object_at(0, 0);
    let right = frame_with_object_at(0, 3);

    // Free latents (the release) average the frame: every latent sees the object alike,
    // wherever it is.
    let free_left = object_share(&attn, &left, None);
    let free_right = object_share(&attn, &right, None);
    for l in 1..4 {
        assert!((free_left[l] - free_left[0]).abs() < 1e-6, "{free_left:?}");
    }
    assert!((free_left[0] - free_right[0]).abs() < 1e-6);

    // Local latents: the top-left latent takes in an object at the top left far more
    // than the top-right latent does, and the other way round.
    let l = object_share(&attn, &left, Some(&bias));
    let r = object_share(&attn, &right, Some(&bias));
    assert!(l[0] > 3.0 * l[1] && l[0] > free_left[0], "{l:?}");
    assert!(r[1] > 3.0 * r[0], "{r:?}");
}

#[test]
fn the_frame_bias_repeats_over_video_frames() {
    let attn = plain_attention();
    let frame = frame_with_object_at(2, 1);
    let bias = locality_bias(4, 4, 3.0).unwrap();
    let video = Tensor::cat(&[&frame, &frame, &frame], 1).unwrap();
    let resampler_bias = media_bias(&bias, 51, 4).unwrap();
    // Three identical frames attend exactly as one.
    let one = object_share(&attn, &frame, Some(&bias));
    let three = object_share(&attn, &video, Some(&resampler_bias));
    for (a, b) in one.iter().zip(&three) {
        assert!((a - b).abs() < 1e-5, "{one:?} {three:?}");
    }
    // Media that are not whole frames are refused, naming the key.
    let err = media_bias(&bias, 50, 4).unwrap_err().to_string();
    assert!(
        err.contains("bridge_config.locality") && err.contains("50"),
        "{err}"
    );
}

/// A depth-2 bridge with random weights (media width 4, 4 latents of width 6; media of
/// one 2×2-patch frame when local).
fn random_bridge(instruction_aware: bool, locality: f64) -> Resampler {
    let (cfg, w) = random_parts(instruction_aware, locality);
    let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
    Resampler::new(&cfg, vb).unwrap()
}

/// The config and weights of [`random_bridge`].
fn random_parts(instruction_aware: bool, locality: f64) -> (BridgeConfig, HashMap<String, Tensor>) {
    let cfg = BridgeConfig {
        depth: 2,
        num_bridge_tokens: 4,
        media_dim: 4,
        latent_dim: 6,
        num_heads: 2,
        head_dim: 3,
        ff_mult: 2,
        locality,
        media_grid: 2,
        instruction_aware,
        word_tokens: 0,
        word_token_place: WordTokenPlace::Prefix,
        word_token_hard: false,
    };
    let randn = |shape: &[usize]| Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap();
    let mut w = HashMap::new();
    w.insert("latents".to_string(), randn(&[4, 6]));
    w.insert("norm.weight".into(), randn(&[6]));
    w.insert("norm.bias".into(), randn(&[6]));
    w.insert("text_proj.weight".into(), randn(&[4, 6]));
    for i in 0..2 {
        let a = format!("layers.{i}.0");
        for (n, d) in [("norm_media", 4), ("norm_latents", 6)] {
            w.insert(format!("{a}.{n}.weight"), randn(&[d]));
            w.insert(format!("{a}.{n}.bias"), randn(&[d]));
        }
        w.insert(format!("{a}.to_q.weight"), randn(&[6, 6]));
        w.insert(format!("{a}.to_kv.weight"), randn(&[12, 4]));
        w.insert(format!("{a}.to_out.weight"), randn(&[6, 6]));
        let f = format!("layers.{i}.1");
        w.insert(format!("{f}.0.weight"), randn(&[6]));
        w.insert(format!("{f}.0.bias"), randn(&[6]));
        w.insert(format!("{f}.1.weight"), randn(&[12, 6]));
        w.insert(format!("{f}.3.weight"), randn(&[6, 12]));
    }
    (cfg, w)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn an_instruction_aware_bridge_reads_the_prompt_and_never_its_hidden_tokens() {
    for locality in [0.0, 3.0] {
        reads_the_prompt_and_never_its_hidden_tokens(locality);
    }
}

fn reads_the_prompt_and_never_its_hidden_tokens(locality: f64) {
    let bridge = random_bridge(true, locality);
    let media = Tensor::randn(0f32, 1.0, (2, 5, 4), &Device::Cpu).unwrap();
    let embeds = Tensor::randn(0f32, 1.0, (2, 3, 6), &Device::Cpu).unwrap();
    // Row 0 reads all three tokens; row 1 only its first (the rest: padding or replies).
    let mask = Tensor::new(&[[1u32, 1, 1], [1, 0, 0]], &Device::Cpu).unwrap();
    let prompt = BridgePrompt {
        embeds: &embeds,
        mask: &mask,
    };
    let out = bridge.forward_with_prompt(&media, Some(prompt)).unwrap();
    assert_eq!(out.dims(), &[2, 4, 6]);

    // Another question changes what the bridge hands the LLM.
    let other = Tensor::randn(0f32, 1.0, (2, 3, 6), &Device::Cpu).unwrap();
    let asked = bridge
        .forward_with_prompt(
            &media,
            Some(BridgePrompt {
                embeds: &other,
                mask: &mask,
            }),
        )
        .unwrap();
    assert!(max_diff(&out.get(0).unwrap(), &asked.get(0).unwrap()) > 1e-3);

    // Hidden tokens change nothing: row 1's last two tokens are replaced.
    let row1 = Tensor::cat(
        &[
            &embeds.get(1).unwrap().narrow(0, 0, 1).unwrap(),
            &(other.get(1).unwrap().narrow(0, 1, 2).unwrap() * 50.0).unwrap(),
        ],
        0,
    )
    .unwrap();
    let swapped = Tensor::stack(&[&embeds.get(0).unwrap(), &row1], 0).unwrap();
    let hidden = bridge
        .forward_with_prompt(
            &media,
            Some(BridgePrompt {
                embeds: &swapped,
                mask: &mask,
            }),
        )
        .unwrap();
    assert!(
        max_diff(&out, &hidden) < 1e-5,
        "{}",
        max_diff(&out, &hidden)
    );

    // Without a prompt it reads the media alone, which is not what it reads with one.
    let alone = bridge.forward(&media).unwrap();
    assert!(max_diff(&alone, &out) > 1e-3);

    // A prompt of the wrong shape is refused, naming the key.
    let short = Tensor::new(&[[1u32, 1]], &Device::Cpu).unwrap();
    let err = match bridge.forward_with_prompt(
        &media,
        Some(BridgePrompt {
            embeds: &embeds,
            mask: &short,
        }),
    ) {
        Ok(_) => panic!("a 1x2 mask for 2 rows of 3 tokens was taken"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("bridge_config.instruction_aware"), "{err}");
}

#[test]
fn the_release_bridge_ignores_the_prompt() {
    let bridge = random_bridge(false, 0.0);
    let media = Tensor::randn(0f32, 1.0, (1, 5, 4), &Device::Cpu).unwrap();
    let embeds = Tensor::randn(0f32, 1.0, (1, 3, 6), &Device::Cpu).unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1]], &Device::Cpu).unwrap();
    let with = bridge
        .forward_with_prompt(
            &media,
            Some(BridgePrompt {
                embeds: &embeds,
                mask: &mask,
            }),
        )
        .unwrap();
    assert_eq!(max_diff(&with, &bridge.forward(&media).unwrap()), 0.0);
}

#[test]
fn word_tokens_are_mixtures_of_the_llm_word_embeddings() {
    let (plain_cfg, mut w) = random_parts(true, 0.0);
    let table = Tensor::randn(0f32, 1.0, (5, 6), &Device::Cpu).unwrap();
    w.insert(
        "word_head.weight".into(),
        Tensor::randn(0f32, 1.0, (5, 6), &Device::Cpu).unwrap(),
    );
    let cfg = BridgeConfig {
        word_tokens: 2,
        ..plain_cfg.clone()
    };
    let vb = VarBuilder::from_tensors(w.clone(), DType::F32, &Device::Cpu);
    let bridge = Resampler::with_word_table(&cfg, vb, Some(&table)).unwrap();
    assert_eq!(bridge.word_vocab(), Some(5));
    let plain = Resampler::new(
        &plain_cfg,
        VarBuilder::from_tensors(w.clone(), DType::F32, &Device::Cpu),
    )
    .unwrap();

    let media = Tensor::randn(0f32, 1.0, (2, 5, 4), &Device::Cpu).unwrap();
    let out = bridge.forward_words(&media, None).unwrap();
    assert_eq!(out.tokens.dims(), &[2, 4, 6]);
    let logits = out.word_logits.expect("word logits");
    assert_eq!(logits.dims(), &[2, 2, 5]);
    // The free tokens are the release bridge's; the last two are softmax(logits) @ table.
    let free = plain.forward(&media).unwrap();
    assert!(
        max_diff(
            &out.tokens.narrow(1, 0, 2).unwrap(),
            &free.narrow(1, 0, 2).unwrap()
        ) < 1e-6
    );
    let probs = candle_nn::ops::softmax(&logits, 2).unwrap();
    let mixed = probs
        .reshape((4, 5))
        .unwrap()
        .matmul(&table)
        .unwrap()
        .reshape((2, 2, 6))
        .unwrap();
    assert!(max_diff(&out.tokens.narrow(1, 2, 2).unwrap(), &mixed) < 1e-5);
    // The logits come from the release bridge's (normalised) last latents.
    let head = w["word_head.weight"].clone();
    let expect = free
        .narrow(1, 2, 2)
        .unwrap()
        .broadcast_matmul(&head.t().unwrap())
        .unwrap();
    assert!(max_diff(&logits, &expect) < 1e-5);

    // A sharp head writes exactly one word's embedding.
    let mut sharp = w.clone();
    sharp.insert("word_head.weight".into(), (head * 1e4).unwrap());
    let bridge = Resampler::with_word_table(
        &cfg,
        VarBuilder::from_tensors(sharp, DType::F32, &Device::Cpu),
        Some(&table),
    )
    .unwrap();
    let tokens = bridge.forward(&media).unwrap();
    let word = tokens.i((0, 3)).unwrap();
    let nearest = (0..5)
        .map(|v| max_diff(&word, &table.get(v).unwrap()))
        .fold(f32::INFINITY, f32::min);
    assert!(nearest < 1e-4, "{nearest}");
}

#[test]
fn hard_word_tokens_are_the_embeddings_of_the_most_likely_words() {
    let (plain_cfg, mut w) = random_parts(true, 0.0);
    let table = Tensor::randn(0f32, 1.0, (5, 6), &Device::Cpu).unwrap();
    w.insert(
        "word_head.weight".into(),
        Tensor::randn(0f32, 1.0, (5, 6), &Device::Cpu).unwrap(),
    );
    let soft_cfg = BridgeConfig {
        word_tokens: 2,
        ..plain_cfg
    };
    let hard_cfg = BridgeConfig {
        word_token_hard: true,
        ..soft_cfg.clone()
    };
    let load = |cfg: &BridgeConfig| {
        let vb = VarBuilder::from_tensors(w.clone(), DType::F32, &Device::Cpu);
        Resampler::with_word_table(cfg, vb, Some(&table)).unwrap()
    };
    let media = Tensor::randn(0f32, 1.0, (3, 5, 4), &Device::Cpu).unwrap();
    let soft = load(&soft_cfg).forward_words(&media, None).unwrap();
    let hard = load(&hard_cfg).forward_words(&media, None).unwrap();
    let logits = hard.word_logits.expect("word logits");
    // The logits and the free tokens are the soft bridge's; only what the LLM reads changes.
    assert_eq!(
        max_diff(&logits, &soft.word_logits.expect("word logits")),
        0.0
    );
    assert_eq!(
        max_diff(
            &hard.tokens.narrow(1, 0, 2).unwrap(),
            &soft.tokens.narrow(1, 0, 2).unwrap()
        ),
        0.0
    );
    let best = logits.argmax(2).unwrap().to_vec2::<u32>().unwrap();
    for (b, row) in best.iter().enumerate() {
        for (k, &v) in row.iter().enumerate() {
            let token = hard.tokens.i((b, 2 + k)).unwrap();
            assert_eq!(max_diff(&token, &table.get(v as usize).unwrap()), 0.0);
        }
    }
    // No word tokens to make hard: refused, naming the key.
    let vb = VarBuilder::from_tensors(w.clone(), DType::F32, &Device::Cpu);
    let none = BridgeConfig {
        word_tokens: 0,
        ..hard_cfg
    };
    let err = match Resampler::with_word_table(&none, vb, Some(&table)) {
        Ok(_) => panic!("taken"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("bridge_config.word_token_hard") && err.contains("word_tokens is 0"),
        "{err}"
    );
}

#[test]
fn word_tokens_need_the_table_and_room_among_the_bridge_tokens() {
    let (plain_cfg, mut w) = random_parts(false, 0.0);
    w.insert(
        "word_head.weight".into(),
        Tensor::randn(0f32, 1.0, (5, 6), &Device::Cpu).unwrap(),
    );
    let vb = || VarBuilder::from_tensors(w.clone(), DType::F32, &Device::Cpu);
    let table = Tensor::randn(0f32, 1.0, (5, 6), &Device::Cpu).unwrap();
    let message = |r: Result<Resampler>| match r {
        Ok(_) => panic!("taken"),
        Err(e) => e.to_string(),
    };
    let cfg = BridgeConfig {
        word_tokens: 2,
        ..plain_cfg.clone()
    };
    let err = message(Resampler::new(&cfg, vb()));
    assert!(
        err.contains("bridge_config.word_tokens") && err.contains("embedding table"),
        "{err}"
    );
    let wide = Tensor::randn(0f32, 1.0, (5, 7), &Device::Cpu).unwrap();
    let err = message(Resampler::with_word_table(&cfg, vb(), Some(&wide)));
    assert!(
        err.contains("bridge_config.word_tokens") && err.contains('7'),
        "{err}"
    );
    let too_many = BridgeConfig {
        word_tokens: 5,
        ..plain_cfg.clone()
    };
    let err = message(Resampler::with_word_table(&too_many, vb(), Some(&table)));
    assert!(
        err.contains("bridge_config.word_tokens") && err.contains("num_bridge_tokens"),
        "{err}"
    );
    let nowhere = BridgeConfig {
        word_token_place: WordTokenPlace::Reply,
        ..plain_cfg
    };
    let err = message(Resampler::with_word_table(&nowhere, vb(), Some(&table)));
    assert!(
        err.contains("bridge_config.word_token_place") && err.contains("word_tokens is 0"),
        "{err}"
    );
}
