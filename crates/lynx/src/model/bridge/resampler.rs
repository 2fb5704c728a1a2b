//! Perceiver resampler bridge of the release (`bridge.*`): condenses any number of vision
//! tokens into `num_bridge_tokens` latents of the LLM's width (paper Eq. 2).
//!
//! Keys and values come from the normalised media tokens only; the latents are not appended to
//! them (reference note, "Bridge").
//!
//! `locality` (0 in the release) adds a fixed bias to every attention logit that ties each
//! latent to one cell of a square grid over the image, so the bridge keeps where things are
//! (see [`locality_bias`]).

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::model::nn::{gelu_erf, softmax_last_dim_f32, LayerNorm, Linear};
use crate::{Error, Result};

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
    /// Strength of the attention bias that ties latent `l` to cell `l` of a square grid over
    /// each frame (0: none, the release's resampler). Why: with free latents the default
    /// model's bridge averaged the whole image, and a lone object's side, which a linear
    /// probe reads from its patches 92-97% of the time, was read from the bridge tokens
    /// only 58-62% of the time (docs/probes.md).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub locality: f64,
    /// Patches per side of one frame (`image_res / patch_size`); only read when `locality`
    /// is above 0.
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub media_grid: usize,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

fn is_zero_usize(x: &usize) -> bool {
    *x == 0
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

    /// media [B, M, W], latents [B, L, D] -> [B, L, D] (without the residual); `bias` [L, M]
    /// is added to every head's logits.
    fn forward(&self, media: &Tensor, latents: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
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
        let logits = q.matmul(&k.t()?)?;
        let logits = match bias {
            Some(bias) => logits.broadcast_add(&bias.to_dtype(logits.dtype())?)?,
            None => logits,
        };
        let attn = softmax_last_dim_f32(&logits)?;
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
    /// [`locality_bias`] of one frame, [L, 1 + media_grid²], when `locality` is above 0.
    frame_bias: Option<Tensor>,
}

/// The locality bias of one frame, [L, 1 + grid²] for media laid out as the vision encoder
/// writes them (the class token, then the patches row by row).
///
/// Latent `l` owns cell (`l / s`, `l % s`) of an `s`×`s` grid, `s² = L`. Its logit for a patch
/// is `-locality · d²`, with `d` the distance from the patch's centre to the cell's centre in
/// cell sides; the class token gets 0, so every latent also sees the whole image's summary.
/// With 16 latents over 8×8 patches and `locality` 3, a latent's own four patches get -0.375
/// and the nearest patches of a neighbouring cell -1.9.
pub fn locality_bias(latents: usize, grid: usize, locality: f64) -> Result<Tensor> {
    let side = (latents as f64).sqrt().round() as usize;
    if side * side != latents || latents == 0 {
        return Err(Error::config(
            "bridge_config.locality",
            format!("needs num_bridge_tokens to be a square number (got {latents})"),
        ));
    }
    if grid == 0 {
        return Err(Error::config(
            "bridge_config.locality",
            "needs the media grid (image_res / patch_size) to be at least 1",
        ));
    }
    if !(locality.is_finite() && locality >= 0.0) {
        return Err(Error::config(
            "bridge_config.locality",
            format!("must be a number >= 0, got {locality}"),
        ));
    }
    let n1 = 1 + grid * grid;
    let mut data = vec![0f32; latents * n1];
    for l in 0..latents {
        let (cy, cx) = ((l / side) as f64 + 0.5, (l % side) as f64 + 0.5);
        for y in 0..grid {
            for x in 0..grid {
                // Patch centre in cell units.
                let py = (y as f64 + 0.5) * side as f64 / grid as f64;
                let px = (x as f64 + 0.5) * side as f64 / grid as f64;
                let d2 = (py - cy).powi(2) + (px - cx).powi(2);
                data[l * n1 + 1 + y * grid + x] = (-locality * d2) as f32;
            }
        }
    }
    Ok(Tensor::from_vec(
        data,
        (latents, n1),
        &candle_core::Device::Cpu,
    )?)
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
        let latents = vb.get((cfg.num_bridge_tokens, cfg.latent_dim), "latents")?;
        let frame_bias = if cfg.locality > 0.0 {
            let bias = locality_bias(cfg.num_bridge_tokens, cfg.media_grid, cfg.locality)?;
            Some(bias.to_device(latents.device())?)
        } else {
            None
        };
        Ok(Self {
            cfg: cfg.clone(),
            latents,
            layers,
            norm: LayerNorm::load(vb.pp("norm"), cfg.latent_dim, EPS)?,
            frame_bias,
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
        let bias = match &self.frame_bias {
            Some(frame) => Some(media_bias(frame, media.dim(1)?, self.cfg.media_grid)?),
            None => None,
        };
        for (attn, ff) in &self.layers {
            latents = (attn.forward(&media, &latents, bias.as_ref())? + &latents)?;
            latents = (ff.forward(&latents)? + &latents)?;
        }
        Ok(self.norm.forward(&latents)?)
    }
}

/// The frame bias [L, 1 + grid²] repeated for each frame of `m` media tokens (videos are
/// frames concatenated, `video_encoding: concate`).
fn media_bias(frame: &Tensor, m: usize, grid: usize) -> Result<Tensor> {
    let n1 = frame.dim(1)?;
    if !m.is_multiple_of(n1) {
        return Err(Error::Invalid(format!(
            "bridge_config.locality: {m} media tokens are not whole frames of {n1} \
             (1 + media_grid², media_grid {grid})"
        )));
    }
    Ok(frame.repeat((1, m / n1))?)
}

#[cfg(test)]
mod tests {
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
}
