//! The trainable parts' gradients (bridge, adapters, frame positions) through the frozen LLM
//! match central finite differences of the training loss, in f64 on the tiny fixture model.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use lynx::config::LynxYaml;
use lynx::data::conversation::Turn;
use lynx::data::datasets::{Media, MediaKind, MediaSource, Sample, SampleKind};
use lynx::data::tokenizer::{LynxTokenizer, TokenizerSource};
use lynx::model::bridge::resampler::BridgePrompt;
use lynx::model::load::{lynx_config, read_llama_config, release_mounts};
use lynx::model::lynx::Lynx;
use lynx::model::weights::WeightStore;
use lynx::train::config::{LossReduction, TrainPart};
use lynx::train::params::TrainableParams;
use lynx::train::rng::TrainRng;
use lynx::train::trainer::{batch_loss, batch_loss_with, bridge_answer_loss, word_answer_loss};

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny")
}

fn sample(kind: MediaKind, file: &str, q: &str, a: &str) -> Sample {
    Sample {
        kind: SampleKind::Task,
        task: Some("vqa".into()),
        media: Some(Media {
            kind,
            source: MediaSource::Path(tiny().join(file)),
        }),
        turns: vec![Turn {
            prompt: q.into(),
            response: a.into(),
        }],
        dataset: 0,
        origin: "test".into(),
    }
}

fn value(t: &Tensor) -> f64 {
    t.to_scalar::<f64>().unwrap()
}

#[test]
fn trainable_gradients_match_finite_differences() {
    let yaml = LynxYaml::load(&tiny().join("lynx.yaml"), &[]).unwrap();
    let tok = LynxTokenizer::from_dir(&tiny().join("vicuna"), TokenizerSource::Auto).unwrap();
    let cfg = lynx_config(
        &yaml,
        read_llama_config(&tiny().join("vicuna")).unwrap(),
        tok.vocab_size(),
    )
    .unwrap();
    let store = Arc::new(WeightStore::new(release_mounts(&yaml).unwrap()));
    let parts = [TrainPart::Bridge, TrainPart::Adapter, TrainPart::FramePos];
    let dev = Device::Cpu;
    let params = TrainableParams::new(store, &parts, 1, &dev, DType::F64);
    let model = Lynx::new(&cfg, params.var_builder(&dev)).unwrap();
    let builder = common::batch_builder(&yaml, tok, cfg.num_frames, true);
    let mut rng = TrainRng::new(3, 0);
    let samples = [
        sample(
            MediaKind::Image,
            "data/images/img_a.jpg",
            "What is in the image?",
            "a platform",
        ),
        sample(
            MediaKind::Video,
            "data/videos/vid7.json",
            "What moves?",
            "a train",
        ),
    ];
    let examples = samples
        .iter()
        .map(|s| builder.example(s, 56, &mut rng).unwrap())
        .collect();
    let mut batch = builder.collate(examples, &dev).unwrap();
    // The builder makes f32 pixels; the f64 check needs them in f64.
    for m in [&mut batch.images, &mut batch.videos].into_iter().flatten() {
        m.1 = m.1.to_dtype(DType::F64).unwrap();
    }
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
    let mut yaml = LynxYaml::load(&tiny().join("lynx.yaml"), &[]).unwrap();
    // Fresh trainable parts: the fixture's checkpoint holds adapters of the release's width.
    yaml.checkpoint = None;
    let parts = [TrainPart::Bridge, TrainPart::Adapter, TrainPart::FramePos];
    let tok = LynxTokenizer::from_dir(&tiny().join("vicuna"), TokenizerSource::Auto).unwrap();
    let llm = read_llama_config(&tiny().join("vicuna")).unwrap();
    let hidden = llm.hidden_size;
    for (bottleneck, width) in [(None, hidden / 2), (Some(3 * hidden), 3 * hidden)] {
        yaml.adapter_bottleneck = bottleneck;
        let cfg = lynx_config(&yaml, llm.clone(), tok.vocab_size()).unwrap();
        // As the trainer mounts a base model: parts that no file holds start fresh.
        let mounts = release_mounts(&yaml).unwrap().into_iter().map(|mut m| {
            m.strict = false;
            m
        });
        let store = Arc::new(WeightStore::new(mounts.collect()));
        let params = TrainableParams::new(store, &parts, 1, &Device::Cpu, DType::F32);
        Lynx::new(&cfg, params.var_builder(&Device::Cpu)).unwrap();
        let vars = params.vars();
        let down = &vars
            .iter()
            .find(|(n, _)| n == "LLM.model.layers.0.output_adapter.adapter_down.weight")
            .unwrap()
            .1;
        assert_eq!(down.dims(), [width, hidden], "{bottleneck:?}");
    }
    yaml.adapter_bottleneck = Some(0);
    let err = yaml.validate().unwrap_err().to_string();
    assert!(err.contains("adapter_bottleneck"), "{err}");
}

#[test]
fn an_instruction_aware_bridge_trains_on_the_prompt_alone() {
    let mut yaml = LynxYaml::load(&tiny().join("lynx.yaml"), &[]).unwrap();
    yaml.bridge_config.instruction_aware = true;
    let tok = LynxTokenizer::from_dir(&tiny().join("vicuna"), TokenizerSource::Auto).unwrap();
    let cfg = lynx_config(
        &yaml,
        read_llama_config(&tiny().join("vicuna")).unwrap(),
        tok.vocab_size(),
    )
    .unwrap();
    // `bridge.text_proj` is in no file: it starts fresh, as in a recipe's stage 1.
    let mounts = release_mounts(&yaml).unwrap().into_iter().map(|mut m| {
        m.strict = false;
        m
    });
    let store = Arc::new(WeightStore::new(mounts.collect()));
    let parts = [TrainPart::Bridge, TrainPart::Adapter, TrainPart::FramePos];
    let dev = Device::Cpu;
    let params = TrainableParams::new(store, &parts, 1, &dev, DType::F64);
    let model = Lynx::new(&cfg, params.var_builder(&dev)).unwrap();
    let builder = common::batch_builder(&yaml, tok, cfg.num_frames, false);
    let mut rng = TrainRng::new(3, 0);
    let question = "What is in the image?";
    let example = |answer: &str, rng: &mut TrainRng| {
        let s = sample(MediaKind::Image, "data/images/img_a.jpg", question, answer);
        builder.example(&s, 56, rng).unwrap()
    };
    let short = example("a platform", &mut rng);
    let long = example("a long platform by the red train", &mut rng);
    let mut batch = builder.collate(vec![short, long], &dev).unwrap();
    if let Some(m) = batch.images.as_mut() {
        m.1 = m.1.to_dtype(DType::F64).unwrap();
    }

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
    let ids = batch.images.as_ref().unwrap();
    let embeds = model.llm().embed(&batch.ids).unwrap();
    let (bridge, _) = model
        .row_bridge_tokens(
            2,
            Some((ids.0.as_slice(), &ids.1)),
            None,
            Some(BridgePrompt {
                embeds: &embeds,
                mask: &batch.prompt_mask,
            }),
        )
        .unwrap();
    let gap: f64 = (bridge.get(0).unwrap() - bridge.get(1).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
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
    let yaml = LynxYaml::load(&tiny().join("lynx.yaml"), &[]).unwrap();
    let tok = LynxTokenizer::from_dir(&tiny().join("vicuna"), TokenizerSource::Auto).unwrap();
    let cfg = lynx_config(
        &yaml,
        read_llama_config(&tiny().join("vicuna")).unwrap(),
        tok.vocab_size(),
    )
    .unwrap();
    let store = Arc::new(WeightStore::new(release_mounts(&yaml).unwrap()));
    let parts = [TrainPart::Bridge, TrainPart::Adapter, TrainPart::FramePos];
    let dev = Device::Cpu;
    let params = TrainableParams::new(store, &parts, 1, &dev, DType::F64);
    let model = Lynx::new(&cfg, params.var_builder(&dev)).unwrap();
    let builder = common::batch_builder(&yaml, tok, cfg.num_frames, false);
    let mut rng = TrainRng::new(5, 0);
    let mut text_only = sample(MediaKind::Image, "unused", "Say hello.", "hello there");
    text_only.kind = SampleKind::Text;
    text_only.media = None;
    let samples = [
        sample(
            MediaKind::Image,
            "data/images/img_a.jpg",
            "What is in the image?",
            "a platform",
        ),
        text_only.clone(),
        sample(
            MediaKind::Video,
            "data/videos/vid7.json",
            "What moves?",
            "a train",
        ),
    ];
    let examples = samples
        .iter()
        .map(|s| builder.example(s, 56, &mut rng).unwrap())
        .collect();
    let mut batch = builder.collate(examples, &dev).unwrap();
    for m in [&mut batch.images, &mut batch.videos].into_iter().flatten() {
        m.1 = m.1.to_dtype(DType::F64).unwrap();
    }
    let bridge = |batch: &lynx::train::batch::Batch| {
        let embeds = model.llm().embed(&batch.ids).unwrap();
        model
            .row_bridge_tokens(
                batch.size,
                batch.images.as_ref().map(|(r, t)| (r.as_slice(), t)),
                batch.videos.as_ref().map(|(r, t)| (r.as_slice(), t)),
                Some(BridgePrompt {
                    embeds: &embeds,
                    mask: &batch.prompt_mask,
                }),
            )
            .unwrap()
            .0
    };
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
    let off = batch_loss_with(&model, &batch, 0.0, LossReduction::Token, 0.0).unwrap();
    assert_eq!(value(&off), plain);
    let with = |w: f64| batch_loss_with(&model, &batch, 0.0, LossReduction::Token, w).unwrap();
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
    let lone = builder
        .collate(
            vec![builder.example(&text_only, 56, &mut rng).unwrap()],
            &dev,
        )
        .unwrap();
    let none = bridge_answer_loss(model.llm(), &bridge(&lone), &lone).unwrap();
    assert!(none.is_none());
}

#[test]
fn word_tokens_learn_to_name_the_reply_as_words_the_llm_reads() {
    let mut yaml = LynxYaml::load(&tiny().join("lynx.yaml"), &[]).unwrap();
    yaml.bridge_config.word_tokens = 2;
    let tok = LynxTokenizer::from_dir(&tiny().join("vicuna"), TokenizerSource::Auto).unwrap();
    let cfg = lynx_config(
        &yaml,
        read_llama_config(&tiny().join("vicuna")).unwrap(),
        tok.vocab_size(),
    )
    .unwrap();
    // `bridge.word_head` is in no file: it starts fresh, as in a recipe's stage 1.
    let mounts = release_mounts(&yaml).unwrap().into_iter().map(|mut m| {
        m.strict = false;
        m
    });
    let store = Arc::new(WeightStore::new(mounts.collect()));
    let parts = [TrainPart::Bridge, TrainPart::Adapter, TrainPart::FramePos];
    let dev = Device::Cpu;
    let params = TrainableParams::new(store, &parts, 1, &dev, DType::F64);
    let model = Lynx::new(&cfg, params.var_builder(&dev)).unwrap();
    let builder = common::batch_builder(&yaml, tok, cfg.num_frames, false);
    let mut rng = TrainRng::new(7, 0);
    let mut text_only = sample(MediaKind::Image, "unused", "Say hello.", "hello there");
    text_only.kind = SampleKind::Text;
    text_only.media = None;
    let samples = [
        sample(
            MediaKind::Image,
            "data/images/img_a.jpg",
            "What is in the image?",
            "a long platform by the red train",
        ),
        text_only,
        sample(
            MediaKind::Video,
            "data/videos/vid7.json",
            "What moves?",
            "a train",
        ),
    ];
    let examples = samples
        .iter()
        .map(|s| builder.example(s, 56, &mut rng).unwrap())
        .collect();
    let mut batch = builder.collate(examples, &dev).unwrap();
    for m in [&mut batch.images, &mut batch.videos].into_iter().flatten() {
        m.1 = m.1.to_dtype(DType::F64).unwrap();
    }
    let embeds = model.llm().embed(&batch.ids).unwrap();
    let out = model
        .row_bridge_outputs(
            batch.size,
            batch.images.as_ref().map(|(r, t)| (r.as_slice(), t)),
            batch.videos.as_ref().map(|(r, t)| (r.as_slice(), t)),
            Some(BridgePrompt {
                embeds: &embeds,
                mask: &batch.prompt_mask,
            }),
        )
        .unwrap();
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
    let gap: f64 = (words - mixed)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap();
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
    let with = |w: f64| batch_loss_with(&model, &batch, 0.0, LossReduction::Token, w).unwrap();
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
