//! The EVA ViT's gradients, as the `vision` stage trains it (patch embedding, position table,
//! attention, MLP, norms), match central finite differences of a loss in f64.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use lynx::model::vision::eva_vit::{EvaVit, VisionConfig};
use lynx::model::weights::{Mount, TensorFile, WeightStore};
use lynx::train::config::TrainPart;
use lynx::train::params::TrainableParams;

fn cfg() -> VisionConfig {
    VisionConfig {
        patch_size: 4,
        embed_dim: 16,
        depth: 2,
        num_heads: 2,
        mlp_ratio: 2.0,
        qkv_bias: true,
        layer_norm_eps: 1e-6,
    }
}

#[test]
fn vision_encoder_gradients_match_finite_differences() {
    let dev = Device::Cpu;
    // The position table is read unchecked (any grid), so the store must hold one: 3x3 patches
    // of 12 px at patch size 4. Everything else starts from the trainer's initialisation.
    let pe = Tensor::randn(0f32, 0.5, (1, 10, 16), &dev).unwrap();
    let store = Arc::new(WeightStore::new(vec![Mount::new(
        "test",
        "",
        "",
        true,
        TensorFile::Map(HashMap::from([(
            "vision_encoder.pos_embed".to_string(),
            pe,
        )])),
    )]));
    let params = TrainableParams::new(store, &[TrainPart::VisionEncoder], 5, &dev, DType::F64);
    let vit = EvaVit::new(&cfg(), params.var_builder(&dev).pp("vision_encoder")).unwrap();
    let pixels = Tensor::randn(0f64, 1.0, (2, 3, 12, 12), &dev).unwrap();
    // A loss that depends on every token and dimension differently.
    let mix = Tensor::randn(0f64, 1.0, (2, 10, 16), &dev).unwrap();
    let loss = |v: &EvaVit| -> Tensor {
        let t = v.forward(&pixels).unwrap();
        (t.tanh().unwrap() * &mix).unwrap().sum_all().unwrap()
    };
    let grads = loss(&vit).backward().unwrap();
    let vars: Vec<(String, Var)> = params
        .vars()
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches("vision_encoder.").to_string(), v))
        .collect();
    let names = [
        "patch_embed.proj.weight",
        "patch_embed.proj.bias",
        "pos_embed",
        "cls_token",
        "blocks.0.attn.qkv.weight",
        "blocks.0.attn.q_bias",
        "blocks.1.attn.proj.weight",
        "blocks.0.mlp.fc1.weight",
        "blocks.1.norm2.weight",
    ];
    for name in names {
        let var = &vars
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} trains"))
            .1;
        common::assert_gradient_matches(
            name,
            var,
            &grads,
            1e-6,
            &[0.0, 1.0 / 3.0, 0.5, 1.0],
            || loss(&vit).to_scalar::<f64>().unwrap(),
        );
    }
}
