//! Shared by the gradient tests: a central finite-difference check of one trained parameter, and
//! the batch builder of the tiny fixture.

use std::sync::Arc;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

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
