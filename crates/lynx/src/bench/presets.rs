//! Model sizes for `lynx bench --preset` and random weights for them, built in memory: the
//! Lynx architecture (EVA ViT, Perceiver resampler, LLaMA with adapters; paper Figure 2) at
//! sizes that fit a laptop, so speed can be compared without the release's 8 B parameters.
//! tools/bench_reference.py builds the same sizes for PyTorch.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use serde::Serialize;

use crate::model::bridge::resampler::BridgeConfig;
use crate::model::llm::llama::{AdapterConfig, LlamaConfig};
use crate::model::lynx::{Lynx, LynxConfig};
use crate::model::vision::eva_vit::VisionConfig;
use crate::{Error, Result};

/// A named model size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The sizes of fixtures/tiny (tools/README.md).
    Tiny,
    /// ViT 384×6 at 224 px; LLaMA 512 wide, 8 layers.
    Small,
    /// ViT-B-like 768×12 at 224 px; LLaMA 1024 wide, 12 layers.
    Base,
}

/// The LLaMA tokenizer's vocabulary; the [PAD] row makes 32001 embedding rows.
const LLAMA_VOCAB: usize = 32000;

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Tiny, Preset::Small, Preset::Base];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Small => "small",
            Preset::Base => "base",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| {
                Error::config(
                    "preset",
                    format!("unknown preset {name:?}; use tiny, small or base"),
                )
            })
    }

    /// The resolution the preset's position embedding is stored for (its default `image_res`).
    pub fn image_res(self) -> usize {
        match self {
            Preset::Tiny => 56,
            Preset::Small | Preset::Base => 224,
        }
    }

    /// The network: vision width/depth/heads, LLaMA hidden/intermediate/layers/heads/vocab.
    /// The resampler is the release's (depth 3, 32 latents, 8 heads × 64, FF ×4) and adapters
    /// sit in every second layer, as in LYNX.yaml.
    pub fn config(self) -> LynxConfig {
        let (vit, llm) = match self {
            // (embed_dim, depth, heads), (hidden, intermediate, layers, heads, vocab, max_pos)
            Preset::Tiny => ((32, 2, 4), (64, 172, 4, 4, 400, 128)),
            Preset::Small => ((384, 6, 6), (512, 1376, 8, 8, LLAMA_VOCAB, 2048)),
            Preset::Base => ((768, 12, 12), (1024, 2752, 12, 16, LLAMA_VOCAB, 2048)),
        };
        let vision = VisionConfig {
            patch_size: 14,
            embed_dim: vit.0,
            depth: vit.1,
            num_heads: vit.2,
            mlp_ratio: 4.3637,
            qkv_bias: true,
            layer_norm_eps: 1e-6,
        };
        let llm = LlamaConfig {
            hidden_size: llm.0,
            intermediate_size: llm.1,
            num_hidden_layers: llm.2,
            num_attention_heads: llm.3,
            num_key_value_heads: None,
            vocab_size: llm.4,
            rms_norm_eps: 1e-6,
            max_position_embeddings: llm.5,
            rope_theta: 10000.0,
            tie_word_embeddings: false,
        };
        LynxConfig {
            bridge: BridgeConfig {
                depth: 3,
                num_bridge_tokens: 32,
                media_dim: vision.embed_dim,
                latent_dim: llm.hidden_size,
                num_heads: 8,
                head_dim: 64,
                ff_mult: 4,
                locality: 0.0,
                media_grid: 0,
                instruction_aware: false,
                word_tokens: 0,
                word_token_place: Default::default(),
                word_token_hard: false,
            },
            vision,
            adapter: AdapterConfig {
                use_adapter: true,
                adapter_freq: 2,
                bottleneck: None,
            },
            add_frame_pos: true,
            num_frames: 5,
            vocab_size: llm.vocab_size + 1,
            llm,
        }
    }
}

/// Random weights by name: norm scales and adapter `scaling` 1, biases 0, everything else
/// N(0, 0.02²) (the usual transformer initialisation, which keeps activations finite).
/// Counts the elements it hands out per top-level module.
struct RandomWeights {
    /// The shape of `vision_encoder.pos_embed`, the one tensor read without a shape.
    pos_embed: (usize, usize, usize),
    counts: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl RandomWeights {
    fn tensor(&self, shape: Shape, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        let leaf = name.rsplit('.').next().unwrap_or(name);
        let is_vector = shape.rank() == 1;
        let t = if leaf == "scaling" || (is_vector && leaf == "weight") {
            Tensor::ones(shape, DType::F32, dev)?
        } else if leaf.ends_with("bias") && is_vector {
            Tensor::zeros(shape, DType::F32, dev)?
        } else {
            Tensor::randn(0f32, 0.02, shape, dev)?
        };
        let module = name.split('.').next().unwrap_or(name).to_string();
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(module).or_default() += t.elem_count();
        }
        Ok(t.to_dtype(dtype)?)
    }
}

impl SimpleBackend for RandomWeights {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.tensor(s, name, dtype, dev)
            .map_err(|e| candle_core::Error::Msg(format!("random weight {name}: {e}")))
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        if name.ends_with("pos_embed") {
            self.get(self.pos_embed.into(), name, Init::Const(0.), dtype, dev)
        } else {
            candle_core::bail!("random weights: no shape known for {name}")
        }
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

/// A model with random weights and the number of parameters per top-level module
/// (`vision_encoder`, `bridge`, `LLM`, `absolute_frame_pos_embed`).
pub struct RandomModel {
    pub model: Lynx,
    pub parameters: BTreeMap<String, usize>,
}

/// A Lynx of `cfg` with random weights; the position embedding is stored for `image_res`.
pub fn random_model(
    cfg: &LynxConfig,
    image_res: usize,
    dtype: DType,
    device: &Device,
) -> Result<RandomModel> {
    let p = cfg.vision.patch_size;
    if image_res == 0 || !image_res.is_multiple_of(p) {
        return Err(Error::config(
            "image_res",
            format!("{image_res} is not a positive multiple of the patch size {p}"),
        ));
    }
    let grid = image_res / p;
    let counts = Arc::new(Mutex::new(BTreeMap::new()));
    let backend = RandomWeights {
        pos_embed: (1, 1 + grid * grid, cfg.vision.embed_dim),
        counts: counts.clone(),
    };
    let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
    let model = Lynx::new(cfg, vb)?;
    let parameters = counts
        .lock()
        .map_err(|_| Error::Invalid("random weights: parameter count poisoned".into()))?
        .clone();
    Ok(RandomModel { model, parameters })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_the_documented_sizes() {
        let tiny = Preset::Tiny.config();
        assert_eq!(
            (
                tiny.vision.embed_dim,
                tiny.vision.depth,
                tiny.vision.mlp_hidden()
            ),
            (32, 2, 139)
        );
        assert_eq!((tiny.llm.hidden_size, tiny.llm.head_dim()), (64, 16));
        assert_eq!(tiny.vocab_size, 401);
        let small = Preset::Small.config();
        assert_eq!(small.vision.mlp_hidden(), 1675);
        assert_eq!(small.llm.head_dim(), 64);
        let base = Preset::Base.config();
        assert_eq!(
            (
                base.vision.embed_dim,
                base.vision.depth,
                base.vision.num_heads
            ),
            (768, 12, 12)
        );
        assert_eq!(
            (base.llm.hidden_size, base.llm.num_hidden_layers),
            (1024, 12)
        );
        assert_eq!(base.llm.head_dim(), 64);
        assert_eq!(base.vocab_size, 32001);
        for p in Preset::ALL {
            let c = p.config();
            assert_eq!(c.bridge.media_dim, c.vision.embed_dim);
            assert_eq!(c.bridge.latent_dim, c.llm.hidden_size);
            assert_eq!(Preset::parse(p.name()).unwrap(), p);
            assert_eq!(p.image_res() % c.vision.patch_size, 0);
        }
        assert!(Preset::parse("huge").is_err());
    }

    #[test]
    fn random_tiny_model_runs_with_the_fixture_parameter_counts() {
        let cfg = Preset::Tiny.config();
        let dev = Device::Cpu;
        let RandomModel { model, parameters } = random_model(&cfg, 56, DType::F32, &dev).unwrap();
        let px = Tensor::randn(0f32, 1.0, (2, 3, 56, 56), &dev).unwrap();
        let vis = model.vision_encoder().forward(&px).unwrap();
        assert_eq!(vis.dims(), &[2, 17, 32]);
        let bridge = model.bridge().forward(&vis).unwrap();
        assert_eq!(bridge.dims(), &[2, 32, 64]);
        let values = bridge.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(values.iter().all(|x| x.is_finite()));
        // The counts of fixtures/tiny: the ViT (pos_embed for a 4×4 grid), the LLaMA with two
        // adapters and [PAD] rows, and the frame position embedding [1, 5, 1, 32].
        let block = 4 * 32 + 96 * 32 + 2 * 32 + 32 * 32 + 32 + 32 * 139 + 139 + 139 * 32 + 32;
        let vit = 2 * block + 32 * 3 * 14 * 14 + 32 + 32 + 17 * 32;
        assert_eq!(parameters["vision_encoder"], vit);
        let layer = 2 * 64 + 4 * 64 * 64 + 3 * 64 * 172;
        let adapter = 2 * 64 + 64 * 32 + 32 + 32 * 64 + 64 + 1;
        assert_eq!(
            parameters["LLM"],
            4 * layer + 2 * adapter + 2 * 401 * 64 + 64
        );
        assert_eq!(parameters["absolute_frame_pos_embed"], 5 * 32);
        let attn = 2 * 32 + 2 * 64 + 64 * 512 + 32 * 1024 + 512 * 64;
        let ff = 2 * 64 + 2 * 64 * 256;
        assert_eq!(parameters["bridge"], 3 * (attn + ff) + 32 * 64 + 2 * 64);
        assert!(random_model(&cfg, 50, DType::F32, &dev).is_err());
    }
}
