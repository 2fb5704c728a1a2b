//! Perceiver resampler bridge of the release (`bridge.*`): condenses any number of vision
//! tokens into `num_bridge_tokens` latents of the LLM's width (paper Eq. 2).
//!
//! Keys and values come from the normalised media tokens only; the latents are not appended to
//! them (reference note, "Bridge").
//!
//! `locality` (0 in the release) adds a fixed bias to every attention logit that ties each
//! latent to one cell of a square grid over the image, so the bridge keeps where things are
//! (see [`locality_bias`]).
//!
//! `instruction_aware` (off in the release) also lets the latents attend to the prompt's token
//! embeddings, projected by `bridge.text_proj`, as InstructBLIP's Q-Former reads the
//! instruction: the bridge can then pick out what the question asks about, instead of leaving
//! that lookup to the frozen LLM.
//!
//! `word_tokens` (0 in the release) writes the last bridge tokens as mixtures of the frozen
//! LLM's word embeddings (`bridge.word_head`): such a token is, when its distribution is sharp,
//! exactly a word the LLM already reads, so an answer the bridge found reaches the LLM as that
//! word (see [`Resampler::with_word_table`]).

use candle_core::{Module, Tensor, D};
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
    /// Keys and values also hold the prompt's token embeddings (`bridge.text_proj`; false: the
    /// release's resampler). Why: the default model's frozen LLM does not look up, in its
    /// context, which bridge token holds the object a question names (docs/lm-lookup.md), so
    /// the bridge is given the question and can hand over the answer's features directly.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub instruction_aware: bool,
    /// How many of the `num_bridge_tokens` (the last ones) are word tokens: `softmax(word_head(
    /// latent)) @ embed_tokens`, a mixture of the LLM's input embeddings (0: none, the
    /// release). Why: the default model's frozen LLM answers with a word of the asked kind
    /// that its context holds, but cannot tell which one goes with the object named
    /// (docs/lm-lookup.md); a bridge that reads the question can put the answer itself into
    /// the context, as the one such word.
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub word_tokens: usize,
    /// Where the word tokens go in the LLM's input: with the other bridge tokens before the
    /// prompt (the default), or after the prompt, right before the reply. Why: with them
    /// prepended the frozen LLM did not pass on the answers they held (docs/lm-lookup.md,
    /// section 5); a word at the last position before the reply needs no lookup across the
    /// context, only the adapters turning the word read into the word said.
    #[serde(default, skip_serializing_if = "WordTokenPlace::is_prefix")]
    pub word_token_place: WordTokenPlace,
    /// Each word token is the embedding of its most likely word, not the mixture (false: the
    /// mixture). Why: the LLM copies a word token into its reply when it reads as one word
    /// (colours), and passes over a hedged mixture (shapes: docs/lm-lookup.md, section 9). No
    /// gradient reaches the bridge through a hard token; its logits still train on
    /// `bridge_answer_loss`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub word_token_hard: bool,
}

/// Where a bridge's word tokens enter the LLM ([`BridgeConfig::word_token_place`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WordTokenPlace {
    /// Among the bridge tokens, before the prompt.
    #[default]
    Prefix,
    /// After the prompt, right before the reply.
    Reply,
}

impl WordTokenPlace {
    pub fn is_prefix(&self) -> bool {
        *self == Self::Prefix
    }
}

/// The additive logit of a padded prompt token: far below any real logit, and finite so that
/// f16 and bf16 hold it.
const MASKED: f64 = -1e4;

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

    /// media [B, M, W], latents [B, L, D] -> [B, L, D] (without the residual); `bias`
    /// ([L, M], or [B, 1, L or 1, M]) is added to every head's logits.
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
    /// Prompt embeddings (LLM width) -> media width, when `instruction_aware`.
    text_proj: Option<Linear>,
    /// `bridge.word_head` (LLM width -> vocabulary) and the LLM's frozen input embeddings
    /// [V, D], when `word_tokens` is above 0.
    words: Option<(Linear, Tensor)>,
}

/// The bridge's output: the tokens prepended to the prompt, and the logits of its word tokens.
pub struct BridgeOutput {
    /// [B, num_bridge_tokens, latent_dim]
    pub tokens: Tensor,
    /// [B, word_tokens, V], when the bridge has word tokens.
    pub word_logits: Option<Tensor>,
}

/// The prompt an instruction-aware bridge reads: token embeddings [B, T, latent_dim] and a mask
/// [B, T] (u32, 1 on the prompt's tokens, 0 on padding and on reply tokens).
#[derive(Clone, Copy)]
pub struct BridgePrompt<'a> {
    pub embeds: &'a Tensor,
    pub mask: &'a Tensor,
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
    /// The release's resampler (no word tokens; see [`Resampler::with_word_table`]).
    pub fn new(cfg: &BridgeConfig, vb: VarBuilder) -> Result<Self> {
        Self::with_word_table(cfg, vb, None)
    }

    /// A resampler whose `word_tokens` are written with `word_table`, the LLM's input
    /// embeddings [V, latent_dim] (frozen: they are the words the LLM reads). The table is
    /// needed exactly when `word_tokens` is above 0.
    pub fn with_word_table(
        cfg: &BridgeConfig,
        vb: VarBuilder,
        word_table: Option<&Tensor>,
    ) -> Result<Self> {
        if cfg.word_tokens > cfg.num_bridge_tokens {
            return Err(Error::config(
                "bridge_config.word_tokens",
                format!(
                    "{} word tokens but only {} bridge tokens (num_bridge_tokens)",
                    cfg.word_tokens, cfg.num_bridge_tokens
                ),
            ));
        }
        if cfg.word_token_place == WordTokenPlace::Reply && cfg.word_tokens == 0 {
            return Err(Error::config(
                "bridge_config.word_token_place",
                "word tokens are placed before the reply, but word_tokens is 0",
            ));
        }
        if cfg.word_token_hard && cfg.word_tokens == 0 {
            return Err(Error::config(
                "bridge_config.word_token_hard",
                "hard word tokens are asked for, but word_tokens is 0",
            ));
        }
        let words = match (cfg.word_tokens, word_table) {
            (0, _) => None,
            (_, None) => {
                return Err(Error::config(
                    "bridge_config.word_tokens",
                    "word tokens need the LLM's embedding table",
                ))
            }
            (_, Some(table)) => {
                let (v, d) = table.dims2()?;
                if d != cfg.latent_dim {
                    return Err(Error::config(
                        "bridge_config.word_tokens",
                        format!("the word table is {d} wide, the bridge {}", cfg.latent_dim),
                    ));
                }
                let head = Linear::load(vb.pp("word_head"), cfg.latent_dim, v, false)?;
                Some((head, table.detach()))
            }
        };
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
        let text_proj = if cfg.instruction_aware {
            Some(Linear::load(
                vb.pp("text_proj"),
                cfg.latent_dim,
                cfg.media_dim,
                false,
            )?)
        } else {
            None
        };
        Ok(Self {
            cfg: cfg.clone(),
            latents,
            layers,
            norm: LayerNorm::load(vb.pp("norm"), cfg.latent_dim, EPS)?,
            frame_bias,
            text_proj,
            words,
        })
    }

    pub fn config(&self) -> &BridgeConfig {
        &self.cfg
    }

    /// The vocabulary of the word tokens, when the bridge has them.
    pub fn word_vocab(&self) -> Option<usize> {
        self.words.as_ref().map(|(_, t)| t.dim(0).unwrap_or(0))
    }

    /// The dtype of the latents (and of the output).
    pub fn dtype(&self) -> candle_core::DType {
        self.latents.dtype()
    }

    /// media [B, M, media_dim] -> bridge tokens [B, num_bridge_tokens, latent_dim].
    pub fn forward(&self, media: &Tensor) -> Result<Tensor> {
        self.forward_with_prompt(media, None)
    }

    /// As [`Resampler::forward`]; an instruction-aware bridge also reads `prompt` (rows as in
    /// `media`). Without a prompt it reads the media alone; a bridge that is not
    /// instruction-aware ignores the prompt.
    pub fn forward_with_prompt(
        &self,
        media: &Tensor,
        prompt: Option<BridgePrompt>,
    ) -> Result<Tensor> {
        Ok(self.forward_words(media, prompt)?.tokens)
    }

    /// As [`Resampler::forward_with_prompt`], with the logits of the word tokens as well.
    pub fn forward_words(
        &self,
        media: &Tensor,
        prompt: Option<BridgePrompt>,
    ) -> Result<BridgeOutput> {
        let b = media.dim(0)?;
        let media = media.to_dtype(self.latents.dtype())?;
        let m = media.dim(1)?;
        let (keys, prompt_bias) = match (&self.text_proj, prompt) {
            (Some(proj), Some(p)) => self.with_prompt(proj, &media, p)?,
            _ => (media, None),
        };
        let k = keys.dim(1)?;
        let locality = match &self.frame_bias {
            Some(frame) => {
                let bias = media_bias(frame, m, self.cfg.media_grid)?;
                // Every latent sees the whole prompt: no locality on its tokens.
                Some(bias.pad_with_zeros(1, 0, k - m)?)
            }
            None => None,
        };
        let bias = match (locality, prompt_bias) {
            (Some(l), Some(p)) => Some(p.broadcast_add(&l)?),
            (l, p) => l.or(p),
        };
        let mut latents = self
            .latents
            .unsqueeze(0)?
            .broadcast_as((b, self.cfg.num_bridge_tokens, self.cfg.latent_dim))?
            .contiguous()?;
        for (attn, ff) in &self.layers {
            latents = (attn.forward(&keys, &latents, bias.as_ref())? + &latents)?;
            latents = (ff.forward(&latents)? + &latents)?;
        }
        let latents = self.norm.forward(&latents)?;
        let Some((head, table)) = &self.words else {
            return Ok(BridgeOutput {
                tokens: latents,
                word_logits: None,
            });
        };
        let n = self.cfg.num_bridge_tokens;
        let k = self.cfg.word_tokens;
        let free = latents.narrow(1, 0, n - k)?;
        let logits = head.forward(&latents.narrow(1, n - k, k)?.contiguous()?)?;
        let (v, d) = table.dims2()?;
        let words = if self.cfg.word_token_hard {
            let best = logits.argmax(D::Minus1)?.flatten_all()?;
            table.index_select(&best, 0)?.reshape((b, k, d))?
        } else {
            let probs = softmax_last_dim_f32(&logits)?;
            probs
                .reshape((b * k, v))?
                .matmul(&table.to_dtype(probs.dtype())?)?
                .reshape((b, k, d))?
        }
        .to_dtype(latents.dtype())?;
        Ok(BridgeOutput {
            tokens: Tensor::cat(&[&free, &words], 1)?,
            word_logits: Some(logits),
        })
    }

    /// Media [B, M, W] ++ projected prompt [B, T, W], and the logit bias [B, 1, 1, M + T] that
    /// hides the prompt's padding and reply tokens.
    fn with_prompt(
        &self,
        proj: &Linear,
        media: &Tensor,
        prompt: BridgePrompt,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let (b, m, _) = media.dims3()?;
        let (pb, t, d) = prompt.embeds.dims3()?;
        let mask_dims = prompt.mask.dims2()?;
        if pb != b || d != self.cfg.latent_dim || mask_dims != (b, t) {
            return Err(Error::Invalid(format!(
                "bridge_config.instruction_aware: the prompt is {pb}x{t}x{d} with a {}x{} mask, \
                 expected {b} rows of width {} (one per media)",
                mask_dims.0, mask_dims.1, self.cfg.latent_dim
            )));
        }
        let dtype = media.dtype();
        let text = proj.forward(&prompt.embeds.to_dtype(dtype)?)?;
        let keys = Tensor::cat(&[media, &text], 1)?;
        let hidden = ((prompt.mask.to_dtype(dtype)? - 1.0)? * -MASKED)?;
        let bias = Tensor::zeros((b, m), dtype, media.device())?;
        let bias = Tensor::cat(&[&bias, &hidden], 1)?.reshape((b, 1, 1, m + t))?;
        Ok((keys, Some(bias)))
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
#[path = "resampler_tests.rs"]
mod tests;
