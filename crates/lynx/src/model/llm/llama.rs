//! LLaMA decoder as HF transformers 4.28 `LlamaForCausalLM`, with Lynx's adapters in the layers
//! `i % adapter_freq == 0`, a KV cache, and left padding (positions = cumsum(mask) − 1).

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::model::llm::adapter::Adapter;
use crate::model::nn::{at_least_f32, softmax_last_dim_f32, Linear, RmsNorm};
use crate::{Error, Result};

/// The fields of a Hugging Face LLaMA `config.json` that the model reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    pub vocab_size: usize,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub tie_word_embeddings: bool,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_max_pos() -> usize {
    2048
}
fn default_theta() -> f64 {
    10000.0
}

impl LlamaConfig {
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }
}

/// Where Lynx puts adapters: every `adapter_freq`-th layer starting at 0, when enabled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdapterConfig {
    pub use_adapter: bool,
    pub adapter_freq: usize,
    /// Bottleneck width; `None` is the release's `hidden / 2` (and is left out of config.json,
    /// which keeps models of the release's layout byte-identical).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bottleneck: Option<usize>,
}

impl AdapterConfig {
    /// The bottleneck width for an LLM of width `hidden`.
    pub fn bottleneck_for(&self, hidden: usize) -> usize {
        self.bottleneck.unwrap_or(hidden / 2)
    }

    pub fn has_adapter(&self, layer: usize) -> bool {
        self.use_adapter && self.adapter_freq > 0 && layer.is_multiple_of(self.adapter_freq)
    }
}

/// Keys and values of the past positions, plus the attention mask seen so far.
#[derive(Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    /// [B, P] u32, 1 for real positions, 0 for left pads.
    mask: Option<Tensor>,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            mask: None,
        }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.mask.as_ref().and_then(|m| m.dim(1).ok()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn mask(&self) -> Option<&Tensor> {
        self.mask.as_ref()
    }

    /// Keeps batch rows `rows` (in that order, repeats allowed).
    pub fn select_rows(&mut self, rows: &Tensor) -> Result<()> {
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = k.index_select(rows, 0)?;
            *v = v.index_select(rows, 0)?;
        }
        if let Some(m) = &mut self.mask {
            *m = m.index_select(rows, 0)?;
        }
        Ok(())
    }
}

struct Attention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
}

fn rotate_half(x: &Tensor) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    Ok(Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?)
}

fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    Ok((x.broadcast_mul(cos)? + rotate_half(x)?.broadcast_mul(sin)?)?)
}

fn repeat_kv(x: Tensor, n_rep: usize) -> Result<Tensor> {
    if n_rep == 1 {
        return Ok(x);
    }
    let (b, h, t, d) = x.dims4()?;
    Ok(x.unsqueeze(2)?
        .broadcast_as((b, h, n_rep, t, d))?
        .reshape((b, h * n_rep, t, d))?)
}

impl Attention {
    fn new(cfg: &LlamaConfig, vb: VarBuilder) -> Result<Self> {
        let (d, hd) = (cfg.hidden_size, cfg.head_dim());
        let kv = cfg.kv_heads() * hd;
        Ok(Self {
            q_proj: Linear::load(vb.pp("q_proj"), d, d, false)?,
            k_proj: Linear::load(vb.pp("k_proj"), d, kv, false)?,
            v_proj: Linear::load(vb.pp("v_proj"), d, kv, false)?,
            o_proj: Linear::load(vb.pp("o_proj"), d, d, false)?,
            heads: cfg.num_attention_heads,
            kv_heads: cfg.kv_heads(),
            head_dim: hd,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        bias: &Tensor,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let shape = |y: Tensor, h: usize| -> Result<Tensor> {
            Ok(y.reshape((b, t, h, self.head_dim))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = apply_rope(
            &shape(self.q_proj.forward(x)?, self.heads)?,
            &rope.0,
            &rope.1,
        )?;
        let k = apply_rope(
            &shape(self.k_proj.forward(x)?, self.kv_heads)?,
            &rope.0,
            &rope.1,
        )?;
        let v = shape(self.v_proj.forward(x)?, self.kv_heads)?;
        let (k, v) = match cache {
            Some(slot) => {
                let (k, v) = match slot.take() {
                    Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
                    None => (k, v),
                };
                *slot = Some((k.clone(), v.clone()));
                (k, v)
            }
            None => (k, v),
        };
        let n_rep = self.heads / self.kv_heads;
        let k = repeat_kv(k, n_rep)?;
        let v = repeat_kv(v, n_rep)?;
        let scores = (q.matmul(&k.t()?)? / (self.head_dim as f64).sqrt())?;
        let scores = scores.broadcast_add(&bias.to_dtype(scores.dtype())?)?;
        let probs = softmax_last_dim_f32(&scores)?;
        let out = probs.matmul(&v.contiguous()?)?;
        let out = out
            .transpose(1, 2)?
            .reshape((b, t, self.heads * self.head_dim))?;
        Ok(self.o_proj.forward(&out)?)
    }
}

struct Layer {
    input_layernorm: RmsNorm,
    attn: Attention,
    post_attention_layernorm: RmsNorm,
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
    adapter: Option<Adapter>,
}

impl Layer {
    fn new(cfg: &LlamaConfig, adapter: Option<usize>, vb: VarBuilder) -> Result<Self> {
        let (d, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            input_layernorm: RmsNorm::load(vb.pp("input_layernorm"), d, cfg.rms_norm_eps)?,
            attn: Attention::new(cfg, vb.pp("self_attn"))?,
            post_attention_layernorm: RmsNorm::load(
                vb.pp("post_attention_layernorm"),
                d,
                cfg.rms_norm_eps,
            )?,
            gate_proj: Linear::load(vb.pp("mlp.gate_proj"), d, i, false)?,
            up_proj: Linear::load(vb.pp("mlp.up_proj"), d, i, false)?,
            down_proj: Linear::load(vb.pp("mlp.down_proj"), i, d, false)?,
            adapter: match adapter {
                Some(bottleneck) => Some(Adapter::new(d, bottleneck, vb.pp("output_adapter"))?),
                None => None,
            },
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        bias: &Tensor,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let h = self.input_layernorm.forward(x)?;
        let x = (x + self.attn.forward(&h, rope, bias, cache)?)?;
        let h = self.post_attention_layernorm.forward(&x)?;
        let h = (self.gate_proj.forward(&h)?.silu()? * self.up_proj.forward(&h)?)?;
        let x = (&x + self.down_proj.forward(&h)?)?;
        match &self.adapter {
            Some(a) => a.forward(&x),
            None => Ok(x),
        }
    }
}

/// The decoder with its embeddings and LM head (`LLM.model.*`, `LLM.lm_head.*`).
pub struct Llama {
    cfg: LlamaConfig,
    embed_tokens: Tensor,
    layers: Vec<Layer>,
    norm: RmsNorm,
    lm_head: Linear,
    inv_freq: Tensor,
}

impl Llama {
    /// Loads from `vb` rooted at the LLM (keys `model.embed_tokens.weight`, `model.layers.{i}`,
    /// `model.norm.weight`, `lm_head.weight`). `vocab_size` is the embedding row count, which
    /// includes the appended [PAD] token.
    pub fn new(
        cfg: &LlamaConfig,
        adapters: AdapterConfig,
        vocab_size: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let d = cfg.hidden_size;
        let embed_tokens = vb.pp("model.embed_tokens").get((vocab_size, d), "weight")?;
        let lm_head = if cfg.tie_word_embeddings {
            Linear::new(embed_tokens.clone(), None)
        } else {
            Linear::load(vb.pp("lm_head"), d, vocab_size, false)?
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                Layer::new(
                    cfg,
                    adapters.has_adapter(i).then(|| adapters.bottleneck_for(d)),
                    vb.pp(format!("model.layers.{i}")),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let hd = cfg.head_dim();
        let inv: Vec<f32> = (0..hd / 2)
            .map(|i| 1.0 / (cfg.rope_theta as f32).powf((2 * i) as f32 / hd as f32))
            .collect();
        Ok(Self {
            cfg: cfg.clone(),
            inv_freq: Tensor::new(inv, vb.device())?,
            embed_tokens,
            layers,
            norm: RmsNorm::load(vb.pp("model.norm"), d, cfg.rms_norm_eps)?,
            lm_head,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        self.embed_tokens.device()
    }

    pub fn dtype(&self) -> DType {
        self.embed_tokens.dtype()
    }

    /// The input embeddings [V, D] (`model.embed_tokens.weight`).
    pub fn embed_table(&self) -> &Tensor {
        &self.embed_tokens
    }

    /// Rows of the embedding matrix (the base vocabulary plus [PAD]).
    pub fn vocab_size(&self) -> usize {
        self.embed_tokens.dim(0).unwrap_or(0)
    }

    pub fn new_cache(&self) -> KvCache {
        KvCache::new(self.layers.len())
    }

    /// Token ids [B, T] (u32) -> embeddings [B, T, D].
    pub fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let vocab = self.vocab_size() as u32;
        if let Some(bad) = ids
            .flatten_all()?
            .to_vec1::<u32>()?
            .iter()
            .find(|&&i| i >= vocab)
        {
            return Err(Error::Invalid(format!(
                "token id {bad} is outside the vocabulary of {vocab}"
            )));
        }
        let e = self.embed_tokens.index_select(&ids.flatten_all()?, 0)?;
        Ok(e.reshape((b, t, self.cfg.hidden_size))?)
    }

    /// cos and sin [B, 1, T, head_dim] for position ids [B, T], computed in f32 as HF does.
    fn rope(&self, positions: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, t) = positions.dims2()?;
        let pos = positions.to_dtype(DType::F32)?.reshape((b * t, 1))?;
        let freqs = pos.broadcast_mul(&self.inv_freq.unsqueeze(0)?)?;
        let emb = Tensor::cat(&[&freqs, &freqs], 1)?.reshape((b, 1, t, ()))?;
        let dt = self.dtype();
        Ok((emb.cos()?.to_dtype(dt)?, emb.sin()?.to_dtype(dt)?))
    }

    /// Runs the decoder over `embeds` [B, T, D] whose attention mask is `mask` [B, T] (u32;
    /// 0 = left pad). With a cache, the past positions are attended too and the cache grows.
    /// Returns the final hidden states [B, T, D] (after the last norm).
    pub fn forward_hidden(
        &self,
        embeds: &Tensor,
        mask: &Tensor,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (b, t, _) = embeds.dims3()?;
        let mask = mask.to_dtype(DType::U32)?;
        let past = match cache.as_deref() {
            Some(c) => c.mask().cloned(),
            None => None,
        };
        let full = match &past {
            Some(p) => Tensor::cat(&[p, &mask], 1)?,
            None => mask.clone(),
        };
        let p = full.dim(1)? - t;
        let full_v = full.to_vec2::<u32>()?;
        // Positions: cumsum(mask) - 1, pads at 1 (HF 4.28 prepare_inputs_for_generation).
        let mut positions = Vec::with_capacity(b * t);
        let mut bias = vec![0f32; b * t * (p + t)];
        for (row, m) in full_v.iter().enumerate() {
            let mut cum = 0u32;
            let mut cums = Vec::with_capacity(m.len());
            for &v in m {
                cum += v;
                cums.push(cum);
            }
            for i in 0..t {
                let at = p + i;
                positions.push(if m[at] == 0 { 1 } else { cums[at] - 1 });
                for (j, &mj) in m.iter().enumerate() {
                    if j > at || mj == 0 {
                        bias[(row * t + i) * (p + t) + j] = f32::MIN;
                    }
                }
            }
        }
        let dev = self.device();
        let positions = Tensor::from_vec(positions, (b, t), dev)?;
        let bias = Tensor::from_vec(bias, (b, 1, t, p + t), dev)?;
        let rope = self.rope(&positions)?;
        let mut x = embeds.to_dtype(self.dtype())?;
        for (i, layer) in self.layers.iter().enumerate() {
            let slot = match cache.as_deref_mut() {
                Some(c) => Some(&mut c.layers[i]),
                None => None,
            };
            x = layer.forward(&x, &rope, &bias, slot)?;
        }
        if let Some(c) = cache {
            c.mask = Some(full);
        }
        Ok(self.norm.forward(&x)?)
    }

    /// Logits [.., V] in f32 (f64 for an f64 model) for hidden states [.., D].
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(at_least_f32(&self.lm_head.forward(hidden)?)?)
    }
}
