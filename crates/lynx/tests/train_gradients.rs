//! The trainable parts' gradients (bridge, adapters, frame positions) through the frozen LLM
//! match central finite differences of the training loss, in f64 on the tiny fixture model.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use lynx::config::LynxYaml;
use lynx::data::conversation::{PromptFormat, Turn};
use lynx::data::datasets::{Media, MediaKind, MediaSource, Sample, SampleKind};
use lynx::data::tokenizer::{LynxTokenizer, TokenizerSource};
use lynx::model::load::{lynx_config, read_llama_config, release_mounts};
use lynx::model::lynx::Lynx;
use lynx::model::weights::WeightStore;
use lynx::train::batch::BatchBuilder;
use lynx::train::config::{LossReduction, TrainPart};
use lynx::train::params::TrainableParams;
use lynx::train::rng::TrainRng;
use lynx::train::trainer::batch_loss;

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
    let builder = BatchBuilder {
        tokenizer: Arc::new(tok),
        format: PromptFormat {
            template: yaml.prompt.clone(),
            lower_text: true,
        },
        mean: yaml.image_mean,
        std: yaml.image_std,
        num_frames: cfg.num_frames,
        max_seq_len: 64,
        augment: true,
    };
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
