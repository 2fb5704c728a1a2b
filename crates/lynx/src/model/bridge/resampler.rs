//! Perceiver resampler bridge of the release (`bridge.*`): condenses any number of vision
//! tokens into `num_bridge_tokens` latents of the LLM's width (paper Eq. 2).
//!
//! Keys and values come from the normalised media tokens only; the latents are not appended to
//! them (reference note, "Bridge").

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::model::nn::{gelu_erf, softmax_last_dim_f32, LayerNorm, Linear};
use crate::Result;

/// The resampler's sizes. `media_dim` is the vision encoder's width, `latent_dim` the LLM's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    /// `bridge_depth` in LYNX.yaml.
    pub depth: usize,
    /// `num_bridge_tokens` in LYNX.yaml.
    pub num_bridge_tokens: usize,
    pub media_dim: usize,
    pub latent_dim: usize,
    #[serde(default = "default_heads")]
    pub num_heads: usize,
    #[serde(default = "default_head_dim")]
    pub head_dim: usize,
    #[serde(default = "default_ff_mult")]
    pub ff_mult: usize,
}

fn default_heads() -> usize {
    8
}
fn default_head_dim() -> usize {
    64
}
fn default_ff_mult() -> usize {
    4
}

const EPS: f64 = 1e-5;

struct PerceiverAttention {
    norm_media: LayerNorm,
    norm_latents: LayerNorm,
    to_q: Linear,
    to_kv: Linear,
    to_out: Linear,
    num_heads: usize,
    head_dim: usize,
}

impl PerceiverAttention {
    fn new(cfg: &BridgeConfig, vb: VarBuilder) -> Result<Self> {
        let inner = cfg.num_heads * cfg.head_dim;
        // The latent-side layers always see num_bridge_tokens rows per sample: input-major
        // weights suit gemm there (nn::Linear::into_input_major).
        Ok(Self {
            norm_media: LayerNorm::load(vb.pp("norm_media"), cfg.media_dim, EPS)?,
            norm_latents: LayerNorm::load(vb.pp("norm_latents"), cfg.latent_dim, EPS)?,
            to_q: Linear::load(vb.pp("to_q"), cfg.latent_dim, inner, false)?.into_input_major(),
            to_kv: Linear::load(vb.pp("to_kv"), cfg.media_dim, 2 * inner, false)?,
            to_out: Linear::load(vb.pp("to_out"), inner, cfg.latent_dim, false)?.into_input_major(),
            num_heads: cfg.num_heads,
            head_dim: cfg.head_dim,
        })
    }

    /// media [B, M, W], latents [B, L, D] -> [B, L, D] (without the residual).
    fn forward(&self, media: &Tensor, latents: &Tensor) -> Result<Tensor> {
        let (b, m, _) = media.dims3()?;
        let l = latents.dim(1)?;
        let (h, hd) = (self.num_heads, self.head_dim);
        let media = self.norm_media.forward(media)?;
        let latents = self.norm_latents.forward(latents)?;
        let heads = |x: Tensor, n: usize| -> Result<Tensor> {
            Ok(x.reshape((b, n, h, hd))?.transpose(1, 2)?.contiguous()?)
        };
        let q = heads((self.to_q.forward(&latents)? * (hd as f64).powf(-0.5))?, l)?;
        let kv = self.to_kv.forward(&media)?;
        let inner = h * hd;
        let k = heads(kv.narrow(2, 0, inner)?, m)?;
        let v = heads(kv.narrow(2, inner, inner)?, m)?;
        let attn = softmax_last_dim_f32(&q.matmul(&k.t()?)?)?;
        let out = attn.matmul(&v)?.transpose(1, 2)?.reshape((b, l, inner))?;
        Ok(self.to_out.forward(&out)?)
    }
}

struct FeedForward {
    norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl FeedForward {
    fn new(cfg: &BridgeConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.latent_dim;
        let h = d * cfg.ff_mult;
        Ok(Self {
            norm: LayerNorm::load(vb.pp("0"), d, EPS)?,
            fc1: Linear::load(vb.pp("1"), d, h, false)?.into_input_major(),
            fc2: Linear::load(vb.pp("3"), h, d, false)?.into_input_major(),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = gelu_erf(&self.fc1.forward(&self.norm.forward(x)?)?)?;
        Ok(self.fc2.forward(&h)?)
    }
}

/// The Perceiver resampler.
pub struct Resampler {
    cfg: BridgeConfig,
    latents: Tensor,
    layers: Vec<(PerceiverAttention, FeedForward)>,
    norm: LayerNorm,
}

impl Resampler {
    pub fn new(cfg: &BridgeConfig, vb: VarBuilder) -> Result<Self> {
        let layers = (0..cfg.depth)
            .map(|i| {
                let lvb = vb.pp(format!("layers.{i}"));
                Ok((
                    PerceiverAttention::new(cfg, lvb.pp("0"))?,
                    FeedForward::new(cfg, lvb.pp("1"))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            latents: vb.get((cfg.num_bridge_tokens, cfg.latent_dim), "latents")?,
            layers,
            norm: LayerNorm::load(vb.pp("norm"), cfg.latent_dim, EPS)?,
        })
    }

    pub fn config(&self) -> &BridgeConfig {
        &self.cfg
    }

    /// The dtype of the latents (and of the output).
    pub fn dtype(&self) -> candle_core::DType {
        self.latents.dtype()
    }

    /// media [B, M, media_dim] -> bridge tokens [B, num_bridge_tokens, latent_dim].
    pub fn forward(&self, media: &Tensor) -> Result<Tensor> {
        let b = media.dim(0)?;
        let media = media.to_dtype(self.latents.dtype())?;
        let mut latents = self
            .latents
            .unsqueeze(0)?
            .broadcast_as((b, self.cfg.num_bridge_tokens, self.cfg.latent_dim))?
            .contiguous()?;
        for (attn, ff) in &self.layers {
            latents = (attn.forward(&media, &latents)? + &latents)?;
            latents = (ff.forward(&latents)? + &latents)?;
        }
        Ok(self.norm.forward(&latents)?)
    }
}
