//! Shared by the gradient tests: a central finite-difference check of one trained parameter, and
//! the tiny fixture's model, samples and batches as a stage-2 run trains them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use lynx::config::LynxYaml;
use lynx::data::conversation::Turn;
use lynx::data::datasets::{Media, MediaKind, MediaSource, Sample, SampleKind};
use lynx::data::tokenizer::{LynxTokenizer, TokenizerSource};
use lynx::model::load::{lynx_config, read_llama_config, release_mounts};
use lynx::model::lynx::{Lynx, LynxConfig, RowBridge};
use lynx::model::weights::WeightStore;
use lynx::train::batch::Batch;
use lynx::train::config::TrainPart;
use lynx::train::params::TrainableParams;
use lynx::train::rng::TrainRng;
use lynx::train::trainer::batch_bridge;

/// Checks the analytic gradient of `loss` with respect to `var` (named `name`) against central
/// differences of step `h` at the entry with the largest gradient and at `extra` positions
/// (fractions of the length), then restores the parameter.
pub fn assert_gradient_matches(
    name: &str,
    var: &Var,
    grads: &GradStore,
    h: f64,
    extra: &[f64],
    loss: impl Fn() -> f64,
) {
    let g = grads
        .get(var.as_tensor())
        .unwrap_or_else(|| panic!("{name} has a gradient"))
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let base = var
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let shape = var.as_tensor().shape().clone();
    let dev = var.as_tensor().device().clone();
    let top = (0..g.len())
        .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
        .unwrap();
    let at_fraction = extra
        .iter()
        .map(|f| ((g.len() as f64 * f) as usize).min(g.len() - 1));
    for i in std::iter::once(top).chain(at_fraction) {
        let probe = |delta: f64| {
            let mut v = base.clone();
            v[i] += delta;
            var.set(&Tensor::from_vec(v, shape.clone(), &dev).unwrap())
                .unwrap();
            loss()
        };
        let numeric = (probe(h) - probe(-h)) / (2.0 * h);
        var.set(&Tensor::from_vec(base.clone(), shape.clone(), &dev).unwrap())
            .unwrap();
        let err = (numeric - g[i]).abs();
        assert!(
            err <= 1e-6 + 1e-4 * numeric.abs().max(g[i].abs()),
            "{name}[{i}]: analytic {} numeric {numeric}",
            g[i]
        );
    }
}

/// Batches of the tiny fixture's samples, up to 64 tokens, lowercased as in training, with the
/// training augmentation when `augment` (else the evaluation transform).
#[allow(dead_code)]
pub fn batch_builder(
    yaml: &lynx::config::LynxYaml,
    tok: lynx::data::tokenizer::LynxTokenizer,
    num_frames: usize,
    augment: bool,
) -> lynx::train::batch::BatchBuilder {
    lynx::train::batch::BatchBuilder {
        tokenizer: Arc::new(tok),
        format: lynx::data::conversation::PromptFormat {
            template: yaml.prompt.clone(),
            lower_text: true,
        },
        mean: yaml.image_mean,
        std: yaml.image_std,
        num_frames,
        max_seq_len: 64,
        augment,
    }
}

/// The tiny fixture's folder.
#[allow(dead_code)]
pub fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny")
}

/// The tiny fixture's tokenizer.
#[allow(dead_code)]
pub fn tokenizer() -> LynxTokenizer {
    LynxTokenizer::from_dir(&tiny().join("vicuna"), TokenizerSource::Auto).unwrap()
}

/// The tiny fixture's model with stage 2's parts (bridge, adapters, frame positions) trainable.
#[allow(dead_code)]
pub struct Tiny {
    pub yaml: LynxYaml,
    pub cfg: LynxConfig,
    pub params: TrainableParams,
    pub model: Lynx,
}

/// The tiny fixture with `edit` applied to its LYNX.yaml, in `dtype`. Weights in no file (a
/// head the edit adds) start fresh, as in a recipe's stage 1.
#[allow(dead_code)]
pub fn tiny_trainable(dtype: DType, edit: impl FnOnce(&mut LynxYaml)) -> Tiny {
    let mut yaml = LynxYaml::load(&tiny().join("lynx.yaml"), &[]).unwrap();
    edit(&mut yaml);
    let cfg = lynx_config(
        &yaml,
        read_llama_config(&tiny().join("vicuna")).unwrap(),
        tokenizer().vocab_size(),
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
    Tiny {
        yaml,
        cfg,
        params,
        model,
    }
}

/// A one-turn sample about a fixture file (`media`: its kind and path), or text-only.
#[allow(dead_code)]
pub fn sample(media: Option<(MediaKind, &str)>, q: &str, a: &str) -> Sample {
    Sample {
        kind: if media.is_some() {
            SampleKind::Task
        } else {
            SampleKind::Text
        },
        task: Some("vqa".into()),
        media: media.map(|(kind, file)| Media {
            kind,
            source: MediaSource::Path(tiny().join(file)),
        }),
        turns: vec![Turn {
            prompt: q.into(),
            response: a.into(),
            short_answer: None,
        }],
        dataset: 0,
        origin: "test".into(),
    }
}

/// The fixture image's question, answered with `answer`.
#[allow(dead_code)]
pub fn image_sample(answer: &str) -> Sample {
    sample(
        Some((MediaKind::Image, "data/images/img_a.jpg")),
        "What is in the image?",
        answer,
    )
}

/// A text-only sample.
#[allow(dead_code)]
pub fn text_sample() -> Sample {
    sample(None, "Say hello.", "hello there")
}

/// The fixture video's question.
#[allow(dead_code)]
pub fn video_sample() -> Sample {
    sample(
        Some((MediaKind::Video, "data/videos/vid7.json")),
        "What moves?",
        "a train",
    )
}

/// `samples` collated at 56 pixels (the training augmentation when `augment`), drawn with
/// `seed`, with the media in f64 when the model is (the builder makes f32 pixels).
#[allow(dead_code)]
pub fn collate(tiny: &Tiny, samples: &[Sample], seed: u64, augment: bool) -> Batch {
    let builder = batch_builder(&tiny.yaml, tokenizer(), tiny.cfg.num_frames, augment);
    let mut rng = TrainRng::new(seed, 0);
    let examples = samples
        .iter()
        .map(|s| builder.example(s, 56, &mut rng).unwrap())
        .collect();
    let mut batch = builder.collate(examples, &Device::Cpu).unwrap();
    let dtype = tiny.model.llm().dtype();
    for m in [&mut batch.images, &mut batch.videos].into_iter().flatten() {
        m.1 = m.1.to_dtype(dtype).unwrap();
    }
    batch
}

/// A scalar loss as f64.
#[allow(dead_code)]
pub fn value(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

/// The largest absolute entry of `t`.
#[allow(dead_code)]
pub fn largest(t: &Tensor) -> f64 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// The bridge's outputs for `batch`'s rows, as training computes them.
#[allow(dead_code)]
pub fn bridge_of(model: &Lynx, batch: &Batch) -> RowBridge {
    let text = model.llm().embed(&batch.ids).unwrap();
    batch_bridge(model, batch, &text).unwrap()
}
