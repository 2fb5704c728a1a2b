//! Word tokens placed before the reply (`bridge_config.word_token_place: reply`, docs/lm-lookup.md
//! section 6): training and generation read them right after the prompt, and a row without media
//! answers as if they were not there. Checked against the LLM run on each row alone.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, D};
use lynx::config::LynxYaml;
use lynx::data::conversation::Turn;
use lynx::data::datasets::{Media as SampleMedia, MediaKind, MediaSource, Sample, SampleKind};
use lynx::data::tokenizer::{LynxTokenizer, TokenizerSource};
use lynx::model::bridge::resampler::{BridgePrompt, WordTokenPlace};
use lynx::model::load::{lynx_config, read_llama_config, release_mounts, LoadedModel};
use lynx::model::lynx::{Lynx, LynxConfig};
use lynx::model::weights::WeightStore;
use lynx::pipeline::{Engine, Media, Request};
use lynx::train::config::{LossReduction, TrainPart};
use lynx::train::params::TrainableParams;
use lynx::train::rng::TrainRng;
use lynx::train::trainer::batch_loss;

const WORDS: usize = 2;

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny")
}

/// The tiny fixture with two word tokens placed before the reply; `bridge.word_head` is in no
/// file, so it starts fresh as in a recipe's stage 1.
fn model(dtype: DType) -> (LynxYaml, LynxConfig, LynxTokenizer, TrainableParams, Lynx) {
    let mut yaml = LynxYaml::load(&tiny().join("lynx.yaml"), &[]).unwrap();
    yaml.bridge_config.word_tokens = WORDS;
    yaml.bridge_config.word_token_place = WordTokenPlace::Reply;
    let tok = LynxTokenizer::from_dir(&tiny().join("vicuna"), TokenizerSource::Auto).unwrap();
    let cfg = lynx_config(
        &yaml,
        read_llama_config(&tiny().join("vicuna")).unwrap(),
        tok.vocab_size(),
    )
    .unwrap();
    let mounts = release_mounts(&yaml).unwrap().into_iter().map(|mut m| {
        m.strict = false;
        m
    });
    let store = Arc::new(WeightStore::new(mounts.collect()));
    let parts = [TrainPart::Bridge, TrainPart::Adapter, TrainPart::FramePos];
    let dev = Device::Cpu;
    let params = TrainableParams::new(store, &parts, 1, &dev, dtype);
    let model = Lynx::new(&cfg, params.var_builder(&dev)).unwrap();
    assert_eq!(model.reply_bridge_tokens(), WORDS);
    (yaml, cfg, tok, params, model)
}

fn sample(media: Option<(MediaKind, &str)>, q: &str, a: &str) -> Sample {
    Sample {
        kind: if media.is_some() {
            SampleKind::Task
        } else {
            SampleKind::Text
        },
        task: Some("vqa".into()),
        media: media.map(|(kind, file)| SampleMedia {
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

/// The LLM on one sequence of embeddings [S, D], all attended: hidden states [S, D].
fn hidden_alone(model: &Lynx, seq: &Tensor) -> Tensor {
    let s = seq.dim(0).unwrap();
    let mask = Tensor::ones((1, s), DType::U32, seq.device()).unwrap();
    model
        .llm()
        .forward_hidden(&seq.unsqueeze(0).unwrap(), &mask, None)
        .unwrap()
        .squeeze(0)
        .unwrap()
}

#[test]
fn training_reads_the_word_tokens_right_before_the_reply() {
    let (yaml, cfg, tok, params, model) = model(DType::F64);
    let builder = common::batch_builder(&yaml, tok, cfg.num_frames, false);
    let mut rng = TrainRng::new(7, 0);
    let samples = [
        sample(
            Some((MediaKind::Image, "data/images/img_a.jpg")),
            "What is in the image?",
            "a long platform by the red train",
        ),
        sample(None, "Say hello.", "hello there"),
        sample(
            Some((MediaKind::Video, "data/videos/vid7.json")),
            "What moves?",
            "a train",
        ),
    ];
    let examples = samples
        .iter()
        .map(|s| builder.example(s, 56, &mut rng).unwrap())
        .collect();
    let mut batch = builder.collate(examples, &Device::Cpu).unwrap();
    for m in [&mut batch.images, &mut batch.videos].into_iter().flatten() {
        m.1 = m.1.to_dtype(DType::F64).unwrap();
    }
    let loss = batch_loss(&model, &batch, 0.0, LossReduction::Token).unwrap();

    // By hand, one row at a time and without padding: a row with media reads
    // [bridge tokens but the word tokens, prompt, word tokens, reply]; the text-only row reads
    // its text alone.
    let text = model.llm().embed(&batch.ids).unwrap();
    let out = model
        .row_bridge_outputs(
            batch.size,
            batch.images.as_ref().map(|(r, t)| (r.as_slice(), t)),
            batch.videos.as_ref().map(|(r, t)| (r.as_slice(), t)),
            Some(BridgePrompt {
                embeds: &text,
                mask: &batch.prompt_mask,
            }),
        )
        .unwrap();
    assert_eq!(out.media_rows, vec![true, false, true]);
    let l = cfg.bridge.num_bridge_tokens;
    let labels: Vec<u32> = batch.labels.to_vec1().unwrap();
    let lengths: Vec<u32> = batch.text_mask.sum(1).unwrap().to_vec1().unwrap();
    let mut nll = Vec::new();
    for (row, &length) in lengths.iter().enumerate() {
        let targets: Vec<(usize, u32)> = batch
            .targets
            .iter()
            .zip(&labels)
            .filter(|((r, _), _)| *r == row)
            .map(|(&(_, p), &label)| (p, label))
            .collect();
        let first = targets.iter().map(|t| t.0).min().unwrap();
        let words = text
            .get(row)
            .unwrap()
            .narrow(0, 0, length as usize)
            .unwrap();
        let (seq, offset) = if out.media_rows[row] {
            let bridge = out.tokens.get(row).unwrap();
            let n = words.dim(0).unwrap();
            let seq = Tensor::cat(
                &[
                    &bridge.narrow(0, 0, l - WORDS).unwrap(),
                    &words.narrow(0, 0, first + 1).unwrap(),
                    &bridge.narrow(0, l - WORDS, WORDS).unwrap(),
                    &words.narrow(0, first + 1, n - first - 1).unwrap(),
                ],
                0,
            )
            .unwrap();
            (seq, l)
        } else {
            (words, 0)
        };
        let hidden = hidden_alone(&model, &seq);
        for (p, label) in targets {
            let logits = model
                .llm()
                .logits(&hidden.get(offset + p).unwrap().unsqueeze(0).unwrap())
                .unwrap();
            let logp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
            let lp: Vec<f64> = logp.squeeze(0).unwrap().to_vec1().unwrap();
            nll.push(-lp[label as usize]);
        }
    }
    let expect = nll.iter().sum::<f64>() / nll.len() as f64;
    assert!(
        (value(&loss) - expect).abs() < 1e-9,
        "{} vs {expect}",
        value(&loss)
    );

    // The reply loss alone trains the word head through the word tokens, exactly.
    let grads = loss.backward().unwrap();
    let vars = params.vars();
    let head = &vars
        .iter()
        .find(|(n, _)| n == "bridge.word_head.weight")
        .unwrap()
        .1;
    let g = grads
        .get(head.as_tensor())
        .expect("the word head has a gradient");
    let largest: f64 = g.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    assert!(largest > 1e-6, "{largest}");
    common::assert_gradient_matches(
        "bridge.word_head.weight",
        head,
        &grads,
        1e-5,
        &[1.0],
        || value(&batch_loss(&model, &batch, 0.0, LossReduction::Token).unwrap()),
    );
}

#[test]
fn generation_reads_the_word_tokens_after_the_prompt() {
    let (yaml, cfg, tok, _, model) = model(DType::F32);
    let engine = Engine::from_parts(
        yaml,
        cfg,
        LoadedModel {
            model,
            unused: Vec::new(),
        },
        tok,
    )
    .unwrap();
    let image = Request {
        media: Some(Media::Image(tiny().join("data/images/img_a.jpg"))),
        history: Vec::new(),
        question: "What is in the image?".into(),
    };
    let text_only = Request {
        media: None,
        history: Vec::new(),
        question: "Say hello.".into(),
    };

    // The image request: [bridge tokens but the word tokens, prompt, word tokens].
    let mut rng = engine.rng();
    let (ids, logits) = engine.next_token_logits(&image, &mut rng).unwrap();
    let n = ids.len();
    let id_t = Tensor::from_vec(ids, (1, n), &Device::Cpu).unwrap();
    let text = engine.model.llm().embed(&id_t).unwrap();
    let ones = Tensor::ones((1, n), DType::U32, &Device::Cpu).unwrap();
    let mut rng = engine.rng();
    let px = engine
        .media_pixels(image.media.as_ref().unwrap(), &mut rng)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let out = engine
        .model
        .row_bridge_outputs(
            1,
            Some((&[0], &px)),
            None,
            Some(BridgePrompt {
                embeds: &text,
                mask: &ones,
            }),
        )
        .unwrap();
    let l = engine.model.config().bridge.num_bridge_tokens;
    let bridge = out.tokens.get(0).unwrap();
    let seq = Tensor::cat(
        &[
            &bridge.narrow(0, 0, l - WORDS).unwrap(),
            &text.get(0).unwrap(),
            &bridge.narrow(0, l - WORDS, WORDS).unwrap(),
        ],
        0,
    )
    .unwrap();
    let hidden = hidden_alone(&engine.model, &seq);
    let last = hidden.get(l + n - 1).unwrap().unsqueeze(0).unwrap();
    let expect: Vec<f32> = engine
        .model
        .llm()
        .logits(&last)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec1()
        .unwrap();
    let gap = logits
        .iter()
        .zip(&expect)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(gap < 1e-4, "{gap}");

    // A text-only request answers the same beside an image request as alone: its word tokens
    // are masked out and do not take its last position.
    let gen = {
        let mut g = engine.generation_config();
        g.max_new_tokens = 6;
        g.num_beams = 1;
        g.do_sample = false;
        g
    };
    let alone = engine
        .answer(std::slice::from_ref(&text_only), &gen, &mut engine.rng())
        .unwrap();
    let beside = engine
        .answer(&[image, text_only], &gen, &mut engine.rng())
        .unwrap();
    assert_eq!(alone[0].token_ids, beside[1].token_ids);
    assert!(!alone[0].token_ids.is_empty());
}
