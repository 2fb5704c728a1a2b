//! EVA ViT vision encoder: the release's EVA01-CLIP ViT-g/14 (`vision_encoder.*`), any size.
//!
//! Pre-norm blocks without layer scale or relative position bias and no final norm; the fused
//! `attn.qkv` projection has biases for q and v only. The output is all 1+N tokens of the last
//! block, CLS first (reference note, "Vision encoder").

use std::collections::HashMap;
use std::sync::Mutex;

use candle_core::{DType, Module, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::model::nn::{gelu_erf, softmax_last_dim_f32, LayerNorm, Linear};
use crate::model::vision::pos_embed::interpolate_pos_embed;
use crate::Result;

/// The size of an EVA ViT; the defaults are the release's ViT-g/14.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisionConfig {
    pub patch_size: usize,
    pub embed_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    pub mlp_ratio: f64,
    pub qkv_bias: bool,
    pub layer_norm_eps: f64,
}

impl Default for VisionConfig {
    fn default() -> Self {
        Self {
            patch_size: 14,
            embed_dim: 1408,
            depth: 39,
            num_heads: 16,
            mlp_ratio: 4.3637,
            qkv_bias: true,
            layer_norm_eps: 1e-6,
        }
    }
}

impl VisionConfig {
    /// The MLP hidden width, `int(embed_dim * mlp_ratio)` as the release computes it.
    pub fn mlp_hidden(&self) -> usize {
        (self.embed_dim as f64 * self.mlp_ratio) as usize
    }
}

struct Attention {
    qkv: Linear,
    /// `q_bias` and `v_bias` while they train (otherwise they are inside `qkv`).
    trained_bias: Option<(Tensor, Tensor)>,
    proj: Linear,
    num_heads: usize,
    scale: f64,
}

impl Attention {
    fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let w = cfg.embed_dim;
        let weight = vb.pp("qkv").get((3 * w, w), "weight")?;
        // The key projection has no bias: the release stores q_bias and v_bias only.
        let (bias, trained_bias) = if cfg.qkv_bias {
            let q = vb.get(w, "q_bias")?;
            let v = vb.get(w, "v_bias")?;
            if q.track_op() || v.track_op() {
                // Trained biases change in place every step: a concatenated copy made here
                // would keep their first values, so `forward` concatenates them each time.
                (None, Some((q, v)))
            } else {
                (Some(Tensor::cat(&[&q, &q.zeros_like()?, &v], 0)?), None)
            }
        } else {
            (None, None)
        };
        Ok(Self {
            qkv: Linear::new(weight, bias).into_input_major(),
            trained_bias,
            proj: Linear::load(vb.pp("proj"), w, w, true)?.into_input_major(),
            num_heads: cfg.num_heads,
            scale: ((w / cfg.num_heads) as f64).powf(-0.5),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, c) = x.dims3()?;
        let hd = c / self.num_heads;
        let mut qkv = self.qkv.forward(x)?;
        if let Some((q, v)) = &self.trained_bias {
            qkv = qkv.broadcast_add(&Tensor::cat(&[q, &q.zeros_like()?, v], 0)?)?;
        }
        let qkv = qkv
            .reshape((b, n, 3, self.num_heads, hd))?
            .permute((2, 0, 3, 1, 4))?;
        let q = (qkv.get(0)?.contiguous()? * self.scale)?;
        let k = qkv.get(1)?.contiguous()?;
        let v = qkv.get(2)?.contiguous()?;
        let attn = softmax_last_dim_f32(&q.matmul(&k.t()?)?)?;
        let out = attn.matmul(&v)?.transpose(1, 2)?.reshape((b, n, c))?;
        Ok(self.proj.forward(&out)?)
    }
}

struct Block {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Block {
    fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let w = cfg.embed_dim;
        let h = cfg.mlp_hidden();
        // Every ViT layer sees 1+N rows per image (257 at 224 px): input-major weights suit
        // gemm there (nn::Linear::into_input_major); the same holds for `Attention::new`.
        Ok(Self {
            norm1: LayerNorm::load(vb.pp("norm1"), w, cfg.layer_norm_eps)?,
            attn: Attention::new(cfg, vb.pp("attn"))?,
            norm2: LayerNorm::load(vb.pp("norm2"), w, cfg.layer_norm_eps)?,
            fc1: Linear::load(vb.pp("mlp.fc1"), w, h, true)?.into_input_major(),
            fc2: Linear::load(vb.pp("mlp.fc2"), h, w, true)?.into_input_major(),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.norm1.forward(x)?)?)?;
        let h = gelu_erf(&self.fc1.forward(&self.norm2.forward(&x)?)?)?;
        Ok((&x + self.fc2.forward(&h)?)?)
    }
}

/// The EVA ViT. `forward` accepts any square resolution that is a multiple of the patch size;
/// the stored position embedding is resized to the input's grid (and cached per grid).
pub struct EvaVit {
    cfg: VisionConfig,
    patch_weight: Tensor,
    patch_bias: Tensor,
    cls_token: Tensor,
    pos_embed: Tensor,
    pos_cache: Mutex<HashMap<usize, Tensor>>,
    blocks: Vec<Block>,
}

impl EvaVit {
    /// Loads the encoder from `vb` (the release's key names: `patch_embed.proj`, `cls_token`,
    /// `pos_embed`, `blocks.{i}`). The stored position embedding may have any square grid.
    pub fn new(cfg: &VisionConfig, vb: VarBuilder) -> Result<Self> {
        let w = cfg.embed_dim;
        let p = cfg.patch_size;
        let pos_embed = vb.get_unchecked("pos_embed")?;
        let (one, tokens, width) = pos_embed.dims3()?;
        if one != 1 || width != w {
            return Err(crate::Error::weights(
                "vision encoder",
                "pos_embed",
                format!("expected [1, 1+N, {w}], found {:?}", pos_embed.dims()),
            ));
        }
        let grid = ((tokens - 1) as f64).sqrt().round() as usize;
        if grid * grid + 1 != tokens {
            return Err(crate::Error::weights(
                "vision encoder",
                "pos_embed",
                format!("{} patch positions do not form a square grid", tokens - 1),
            ));
        }
        let blocks = (0..cfg.depth)
            .map(|i| Block::new(cfg, vb.pp(format!("blocks.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            cfg: cfg.clone(),
            patch_weight: vb.pp("patch_embed.proj").get((w, 3, p, p), "weight")?,
            patch_bias: vb.pp("patch_embed.proj").get(w, "bias")?,
            cls_token: vb.get((1, 1, w), "cls_token")?,
            pos_embed,
            pos_cache: Mutex::new(HashMap::new()),
            blocks,
        })
    }

    pub fn config(&self) -> &VisionConfig {
        &self.cfg
    }

    /// Number of output tokens (1 + grid²) at a given square resolution.
    pub fn num_tokens(&self, image_res: usize) -> usize {
        let g = image_res / self.cfg.patch_size;
        g * g + 1
    }

    /// The position embedding for a `grid`×`grid` patch layout.
    pub fn pos_embed_for_grid(&self, grid: usize) -> Result<Tensor> {
        if (grid * grid + 1) == self.pos_embed.dim(1)? {
            return Ok(self.pos_embed.clone());
        }
        if self.pos_embed.track_op() {
            // A table being trained changes every step: a cached resize would go stale.
            let pe = interpolate_pos_embed(&self.pos_embed.to_dtype(DType::F32)?, grid)?;
            return Ok(pe.to_dtype(self.pos_embed.dtype())?);
        }
        let mut cache = self
            .pos_cache
            .lock()
            .map_err(|_| crate::Error::Invalid("position-embedding cache poisoned".into()))?;
        if let Some(t) = cache.get(&grid) {
            return Ok(t.clone());
        }
        let pe = interpolate_pos_embed(&self.pos_embed.to_dtype(DType::F32)?, grid)?
            .to_dtype(self.pos_embed.dtype())?;
        cache.insert(grid, pe.clone());
        Ok(pe)
    }

    /// `pixels` [B, 3, H, W] (normalised) -> tokens [B, 1 + (H/p)(W/p), embed_dim].
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = pixels.dims4()?;
        let p = self.cfg.patch_size;
        if c != 3 || h != w || h % p != 0 {
            return Err(crate::Error::Invalid(format!(
                "vision encoder: expected square images of 3 channels with a side divisible by {p}, got [{b}, {c}, {h}, {w}]"
            )));
        }
        let pixels = pixels.to_dtype(self.patch_weight.dtype())?;
        let x = pixels
            .conv2d(&self.patch_weight, 0, p, 1, 1)?
            .broadcast_add(&self.patch_bias.reshape((1, (), 1, 1))?)?;
        let x = x.flatten_from(2)?.transpose(1, 2)?;
        let cls = self.cls_token.broadcast_as((b, 1, self.cfg.embed_dim))?;
        let x = Tensor::cat(&[&cls.contiguous()?, &x.contiguous()?], 1)?;
        let mut x = x.broadcast_add(&self.pos_embed_for_grid(h / p)?)?;
        for block in &self.blocks {
            x = block.forward(&x)?;
        }
        Ok(x)
    }

    /// The width of the output tokens.
    pub fn embed_dim(&self) -> usize {
        self.cfg.embed_dim
    }
}
