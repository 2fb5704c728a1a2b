//! The trainable parts' gradients (bridge, adapters, frame positions) through the frozen LLM
//! match central finite differences of the training loss, in f64 on the tiny fixture model.

mod common;

use candle_core::{DType, Var};
use common::{collate, image_sample, text_sample, tiny_trainable, value, video_sample, Tiny};
use lynx::train::batch::Batch;
use lynx::train::config::LossReduction;
use lynx::train::trainer::{
    batch_loss, batch_loss_with, bridge_answer_loss, word_answer_loss, Objective,
};

#[test]
fn trainable_gradients_match_finite_differences() {
    let tiny = tiny_trainable(DType::F64, |_| {});
    let batch = collate(
        &tiny,
        &[image_sample("a platform"), video_sample()],
        3,
        true,
    );
    let Tiny { params, model, .. } = tiny;
    let loss = batch_loss(&model, &batch, 0.1, LossReduction::Token).unwrap();
    let grads = loss.backward().unwrap();

    let vars: Vec<(String, Var)> = params.vars();
    let names = [
        "bridge.latents",
        "bridge.layers.0.0.to_q.weight",
        "bridge.layers.2.1.3.weight",
        "bridge.norm.bias",
        "LLM.model.layers.0.output_adapter.adapter_down.weight",
        "LLM.model.layers.2.output_adapter.adapter_up.bias",
        "LLM.model.layers.2.output_adapter.scaling",
        "absolute_frame_pos_embed",
    ];
    for name in names {
        let var = &vars
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} trains"))
            .1;
        common::assert_gradient_matches(name, var, &grads, 1e-5, &[1.0 / 3.0, 1.0], || {
            value(&batch_loss(&model, &batch, 0.1, LossReduction::Token).unwrap())
        });
    }
    // The per-example average is differentiated exactly too.
    let grads = batch_loss(&model, &batch, 0.1, LossReduction::Example)
        .unwrap()
        .backward()
        .unwrap();
    for name in [names[0], names[4]] {
        let var = &vars.iter().find(|(n, _)| n == name).unwrap().1;
        common::assert_gradient_matches(name, var, &grads, 1e-5, &[1.0 / 3.0, 1.0], || {
            value(&batch_loss(&model, &batch, 0.1, LossReduction::Example).unwrap())
        });
    }
    // Frozen weights are plain tensors: they get no gradient at all.
    assert!(params.vars().iter().all(|(n, _)| parts_only(n)));
}

fn parts_only(name: &str) -> bool {
    name.starts_with("bridge.")
        || name.contains(".output_adapter.")
        || name == "absolute_frame_pos_embed"
}

#[test]
fn adapter_bottleneck_sets_the_trained_adapter_width() {
    let hidden = tiny_trainable(DType::F32, |_| {}).cfg.llm.hidden_size;
    for (bottleneck, width) in [(None, hidden / 2), (Some(3 * hidden), 3 * hidden)] {
        // Fresh trainable parts: the fixture's checkpoint holds adapters of the release's width.
        let tiny = tiny_trainable(DType::F32, |yaml| {
            yaml.checkpoint = None;
            yaml.adapter_bottleneck = bottleneck;
        });
        let vars = tiny.params.vars();
        let down = &vars
            .iter()
            .find(|(n, _)| n == "LLM.model.layers.0.output_adapter.adapter_down.weight")
            .unwrap()
            .1;
        assert_eq!(down.dims(), [width, hidden], "{bottleneck:?}");
    }
    let mut yaml = tiny_trainable(DType::F32, |_| {}).yaml;
    yaml.adapter_bottleneck = Some(0);
    let err = yaml.validate().unwrap_err().to_string();
    assert!(err.contains("adapter_bottleneck"), "{err}");
}

#[test]
fn an_instruction_aware_bridge_trains_on_the_prompt_alone() {
    // `bridge.text_proj` is in no file: it starts fresh, as in a recipe's stage 1.
    let tiny = tiny_trainable(DType::F64, |yaml| {
        yaml.bridge_config.instruction_aware = true
    });
    let samples = [
        image_sample("a platform"),
        image_sample("a long platform by the red train"),
    ];
    let batch = collate(&tiny, &samples, 3, false);
    let Tiny { params, model, .. } = tiny;

    // The prompt mask covers every token before the reply and nothing after.
    let prompt: Vec<Vec<u32>> = batch.prompt_mask.to_vec2().unwrap();
    let text: Vec<Vec<u32>> = batch.text_mask.to_vec2().unwrap();
    for (row, p) in batch.targets.iter().copied() {
        assert_eq!(prompt[row][p + 1], 0, "reply token {} of row {row}", p + 1);
    }
    for row in 0..2 {
        let first_reply = batch.targets.iter().find(|t| t.0 == row).unwrap().1 + 1;
        assert!(prompt[row][..first_reply].iter().all(|&m| m == 1), "{row}");
        for (p, &t) in text[row].iter().enumerate() {
            assert!(t == 1 || prompt[row][p] == 0, "padding read at {p}");
        }
    }
    // Both rows ask the same question, so the bridge gives them the same tokens: the
    // different answers (and paddings) are not read.
    let bridge = common::bridge_of(&model, &batch).tokens;
    let gap = common::largest(&(bridge.get(0).unwrap() - bridge.get(1).unwrap()).unwrap());
    assert!(gap < 1e-9, "{gap}");

    // The projection of the prompt learns, with exact gradients.
    let loss = batch_loss(&model, &batch, 0.0, LossReduction::Token).unwrap();
    let grads = loss.backward().unwrap();
    let vars = params.vars();
    let name = "bridge.text_proj.weight";
    let var = &vars
        .iter()
        .find(|(n, _)| n == name)
        .expect("text_proj trains")
        .1;
    common::assert_gradient_matches(name, var, &grads, 1e-5, &[1.0 / 3.0, 1.0], || {
        value(&batch_loss(&model, &batch, 0.0, LossReduction::Token).unwrap())
    });
}

#[test]
fn the_bridge_answer_loss_names_the_reply_from_the_bridge_tokens_alone() {
    let tiny = tiny_trainable(DType::F64, |_| {});
    let samples = [image_sample("a platform"), text_sample(), video_sample()];
    let batch = collate(&tiny, &samples, 5, false);
    let lone = collate(&tiny, &[text_sample()], 6, false);
    let Tiny { params, model, .. } = tiny;
    let bridge = |batch: &Batch| common::bridge_of(&model, batch).tokens;
    let tokens = bridge(&batch);
    let aux = bridge_answer_loss(model.llm(), &tokens, &batch)
        .unwrap()
        .expect("two rows have media");

    // By hand: the LM head on each media row's mean bridge token, the cross-entropy of every
    // reply token of that row; the text-only row (1) has no bridge and is left out.
    let labels: Vec<u32> = batch.labels.to_vec1().unwrap();
    let mut total = 0.0;
    let mut n = 0;
    for (&(row, _), &label) in batch.targets.iter().zip(&labels) {
        if row == 1 {
            continue;
        }
        let mean = tokens.get(row).unwrap().mean_keepdim(0).unwrap();
        let logits = model.llm().logits(&mean).unwrap();
        let logp = candle_nn::ops::log_softmax(&logits, 1).unwrap();
        let lp: Vec<f64> = logp.get(0).unwrap().to_vec1().unwrap();
        total -= lp[label as usize];
        n += 1;
    }
    assert!(n >= 4, "{n} reply tokens with media");
    assert!((value(&aux) - total / n as f64).abs() < 1e-9);

    // The weighted sum is what trains, and a weight of 0 is the release's loss exactly.
    let plain = value(&batch_loss(&model, &batch, 0.0, LossReduction::Token).unwrap());
    let off = batch_loss_with(&model, &batch, &answer_weight(0.0)).unwrap();
    assert_eq!(value(&off), plain);
    let with = |w: f64| batch_loss_with(&model, &batch, &answer_weight(w)).unwrap();
    assert!((value(&with(0.7)) - plain - 0.7 * value(&aux)).abs() < 1e-9);

    // Its gradients are exact, and they reach the bridge only: the LM head is frozen and
    // the adapters sit after the bridge.
    let grads = with(0.7).backward().unwrap();
    let vars = params.vars();
    let var = |name: &str| &vars.iter().find(|(n, _)| n == name).unwrap().1;
    for name in ["bridge.latents", "bridge.layers.0.0.to_q.weight"] {
        common::assert_gradient_matches(name, var(name), &grads, 1e-5, &[1.0 / 3.0, 1.0], || {
            value(&with(0.7))
        });
    }
    let aux_grads = aux.backward().unwrap();
    assert!(aux_grads.get(var("bridge.latents")).is_some());
    let adapter = var("LLM.model.layers.0.output_adapter.adapter_down.weight");
    assert!(
        aux_grads.get(adapter).is_none(),
        "the adapters get no aux gradient"
    );

    // A batch without media has nothing for the bridge to name.
    let none = bridge_answer_loss(model.llm(), &bridge(&lone), &lone).unwrap();
    assert!(none.is_none());
}

#[test]
fn word_tokens_learn_to_name_the_reply_as_words_the_llm_reads() {
    // `bridge.word_head` is in no file: it starts fresh, as in a recipe's stage 1.
    let tiny = tiny_trainable(DType::F64, |yaml| yaml.bridge_config.word_tokens = 2);
    let samples = [
        image_sample("a long platform by the red train"),
        text_sample(),
        video_sample(),
    ];
    let batch = collate(&tiny, &samples, 7, false);
    let Tiny {
        cfg, params, model, ..
    } = tiny;
    let out = common::bridge_of(&model, &batch);
    let logits = out.word_logits.expect("the bridge has word tokens");
    let v = model.llm().vocab_size();
    assert_eq!(logits.dims(), &[3, 2, v]);
    let lg: Vec<Vec<Vec<f64>>> = logits.to_vec3().unwrap();
    assert!(lg[1].iter().flatten().all(|&x| x == 0.0), "text-only row");

    // The word tokens the LLM reads are the mixtures of its own embeddings.
    let table = model.llm().embed_table();
    let probs = candle_nn::ops::softmax(&logits, 2).unwrap();
    let mixed = probs.get(0).unwrap().matmul(table).unwrap();
    let n = cfg.bridge.num_bridge_tokens;
    let words = out.tokens.get(0).unwrap().narrow(0, n - 2, 2).unwrap();
    let gap = common::largest(&(words - mixed).unwrap());
    assert!(gap < 1e-9, "{gap}");

    // By hand: for each media row, the mean of its two word distributions, the cross-entropy
    // of its reply tokens but the last; rows averaged alike; the text-only row left out.
    let aux = word_answer_loss(&logits, &batch)
        .unwrap()
        .expect("two rows have media");
    let labels: Vec<u32> = batch.labels.to_vec1().unwrap();
    let p: Vec<Vec<Vec<f64>>> = probs.to_vec3().unwrap();
    let mut per_row = Vec::new();
    for row in [0, 2] {
        let picked: Vec<u32> = batch
            .targets
            .iter()
            .zip(&labels)
            .filter(|((r, _), _)| *r == row)
            .map(|(_, &l)| l)
            .collect();
        assert!(picked.len() >= 3, "{row}: {picked:?}");
        let kept = &picked[..picked.len() - 1];
        let nll: f64 = kept
            .iter()
            .map(|&t| -((p[row][0][t as usize] + p[row][1][t as usize]) / 2.0).ln())
            .sum();
        per_row.push(nll / kept.len() as f64);
    }
    let expect = (per_row[0] + per_row[1]) / 2.0;
    // The row weights are f32.
    assert!(
        (value(&aux) - expect).abs() < 1e-6,
        "{} vs {expect}",
        value(&aux)
    );

    // With word tokens the weighted loss uses this term, and its gradients are exact.
    let plain = value(&batch_loss(&model, &batch, 0.0, LossReduction::Token).unwrap());
    let with = |w: f64| batch_loss_with(&model, &batch, &answer_weight(w)).unwrap();
    assert!((value(&with(0.5)) - plain - 0.5 * value(&aux)).abs() < 1e-9);
    let grads = with(0.5).backward().unwrap();
    let vars = params.vars();
    let var = |name: &str| &vars.iter().find(|(n, _)| n == name).unwrap().1;
    for name in ["bridge.word_head.weight", "bridge.latents"] {
        common::assert_gradient_matches(name, var(name), &grads, 1e-5, &[1.0 / 3.0, 1.0], || {
            value(&with(0.5))
        });
    }
}

/// The release's objective plus the bridge-answer loss at weight `w`.
fn answer_weight(w: f64) -> Objective {
    Objective {
        bridge_answer: w,
        ..Objective::default()
    }
}
