//! The Lynx composition (`LynxBase` of the release, paper Figure 2a): vision encoder, bridge and
//! LLM; the 32 bridge tokens are prepended to the prompt's token embeddings (a bridge with
//! `word_token_place: reply`, not in the release, puts its word tokens after the prompt).

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use crate::model::bridge::resampler::{BridgeConfig, BridgePrompt, Resampler, WordTokenPlace};
use crate::model::llm::llama::{AdapterConfig, Llama, LlamaConfig};
use crate::model::vision::eva_vit::{EvaVit, VisionConfig};
use crate::{Error, Result};

/// Everything needed to build the network; stored as `config.json` in a converted model
/// directory. Runtime settings (prompt, resolution, generation) live in the YAML config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LynxConfig {
    pub vision: VisionConfig,
    pub bridge: BridgeConfig,
    pub llm: LlamaConfig,
    pub adapter: AdapterConfig,
    /// `add_frame_pos`: learned per-frame position embeddings for videos.
    pub add_frame_pos: bool,
    /// `data.num_frames`: frames per video.
    pub num_frames: usize,
    /// Rows of the LLM's embedding and head: the tokenizer's vocabulary plus the [PAD] token.
    pub vocab_size: usize,
}

impl LynxConfig {
    /// The id of the appended [PAD] token (the base vocabulary size).
    pub fn pad_token_id(&self) -> u32 {
        (self.vocab_size - 1) as u32
    }
}

/// Pixels of a batch of media, already preprocessed.
pub enum MediaBatch {
    /// [B, 3, H, W]
    Images(Tensor),
    /// [B, F, 3, H, W]
    Videos(Tensor),
}

/// The bridge tokens of a batch's rows ([`Lynx::row_bridge_outputs`]).
#[derive(Clone)]
pub struct RowBridge {
    /// [B, L, D]; zeros on rows without media.
    pub tokens: Tensor,
    /// [B, L] (u32): 1 on rows with media.
    pub mask: Tensor,
    /// [B, word_tokens, V] when the bridge has word tokens; zeros on rows without media.
    pub word_logits: Option<Tensor>,
    /// Which rows hold an image or a video.
    pub media_rows: Vec<bool>,
}

/// The Lynx model.
pub struct Lynx {
    cfg: LynxConfig,
    vision_encoder: EvaVit,
    bridge: Resampler,
    llm: Llama,
    absolute_frame_pos_embed: Option<Tensor>,
}

impl Lynx {
    /// Builds the model from `vb` rooted at the release's `LynxBase` names (`vision_encoder.*`,
    /// `bridge.*`, `LLM.*`, `absolute_frame_pos_embed`).
    pub fn new(cfg: &LynxConfig, vb: VarBuilder) -> Result<Self> {
        if cfg.bridge.media_dim != cfg.vision.embed_dim
            || cfg.bridge.latent_dim != cfg.llm.hidden_size
        {
            return Err(Error::config(
                "bridge",
                format!(
                    "bridge maps {} -> {} but the vision encoder is {} wide and the LLM {}",
                    cfg.bridge.media_dim,
                    cfg.bridge.latent_dim,
                    cfg.vision.embed_dim,
                    cfg.llm.hidden_size
                ),
            ));
        }
        let absolute_frame_pos_embed = if cfg.add_frame_pos {
            Some(vb.get(
                (1, cfg.num_frames, 1, cfg.vision.embed_dim),
                "absolute_frame_pos_embed",
            )?)
        } else {
            None
        };
        let llm = Llama::new(&cfg.llm, cfg.adapter, cfg.vocab_size, vb.pp("LLM"))?;
        let word_table = (cfg.bridge.word_tokens > 0).then(|| llm.embed_table());
        Ok(Self {
            vision_encoder: EvaVit::new(&cfg.vision, vb.pp("vision_encoder"))?,
            bridge: Resampler::with_word_table(&cfg.bridge, vb.pp("bridge"), word_table)?,
            llm,
            absolute_frame_pos_embed,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &LynxConfig {
        &self.cfg
    }

    pub fn vision_encoder(&self) -> &EvaVit {
        &self.vision_encoder
    }

    pub fn bridge(&self) -> &Resampler {
        &self.bridge
    }

    pub fn llm(&self) -> &Llama {
        &self.llm
    }

    pub fn device(&self) -> &Device {
        self.llm.device()
    }

    pub fn dtype(&self) -> DType {
        self.llm.dtype()
    }

    /// Vision tokens of a batch of images [B, 3, H, W] -> [B, 1+N, W]; frames [B, F, 3, H, W]
    /// -> [B, F·(1+N), W] with the frame position embeddings added (`video_encoding: concate`).
    pub fn encode_media(&self, media: &MediaBatch) -> Result<Tensor> {
        match media {
            MediaBatch::Images(px) => self.vision_encoder.forward(px),
            MediaBatch::Videos(px) => {
                let (b, f, c, h, w) = px.dims5()?;
                let tokens = self
                    .vision_encoder
                    .forward(&px.reshape((b * f, c, h, w))?)?;
                let (_, n, width) = tokens.dims3()?;
                let tokens = tokens.reshape((b, f, n, width))?;
                let tokens = match &self.absolute_frame_pos_embed {
                    Some(pe) => {
                        if f != self.cfg.num_frames {
                            return Err(Error::Invalid(format!(
                                "videos have {f} frames but the model was built for num_frames = {}",
                                self.cfg.num_frames
                            )));
                        }
                        tokens.broadcast_add(&pe.to_dtype(tokens.dtype())?)?
                    }
                    None => tokens,
                };
                Ok(tokens.reshape((b, f * n, width))?)
            }
        }
    }

    /// The `num_bridge_tokens` tokens per sample that are prepended to the prompt: [B, L, D].
    pub fn bridge_tokens(&self, media: &MediaBatch) -> Result<Tensor> {
        self.bridge.forward(&self.encode_media(media)?)
    }

    /// Bridge tokens [B, L, D] for a batch whose rows hold an image, a video or nothing, and
    /// their mask [B, L]: rows without media get zeros that the mask hides from the LLM.
    /// `images`/`videos` give the rows that have them and their pixels. `prompt` (all `batch`
    /// rows) is read by an instruction-aware bridge and ignored by the release's.
    pub fn row_bridge_tokens(
        &self,
        batch: usize,
        images: Option<(&[usize], &Tensor)>,
        videos: Option<(&[usize], &Tensor)>,
        prompt: Option<BridgePrompt>,
    ) -> Result<(Tensor, Tensor)> {
        let out = self.row_bridge_outputs(batch, images, videos, prompt)?;
        Ok((out.tokens, out.mask))
    }

    /// As [`Lynx::row_bridge_tokens`], with the logits of the bridge's word tokens
    /// ([B, word_tokens, V], zeros on rows without media) when it has them.
    pub fn row_bridge_outputs(
        &self,
        batch: usize,
        images: Option<(&[usize], &Tensor)>,
        videos: Option<(&[usize], &Tensor)>,
        prompt: Option<BridgePrompt>,
    ) -> Result<RowBridge> {
        let (l, d) = (self.cfg.bridge.num_bridge_tokens, self.cfg.llm.hidden_size);
        let mut rows: Vec<Option<(Tensor, Option<Tensor>)>> = vec![None; batch];
        let groups = [
            images.map(|(r, px)| (r, MediaBatch::Images(px.clone()))),
            videos.map(|(r, px)| (r, MediaBatch::Videos(px.clone()))),
        ];
        let prompt = prompt.filter(|_| self.cfg.bridge.instruction_aware);
        for (idx, media) in groups.into_iter().flatten() {
            let picked = match prompt {
                Some(p) => {
                    let ids: Vec<u32> = idx.iter().map(|&r| r as u32).collect();
                    let ids = Tensor::from_vec(ids, idx.len(), p.embeds.device())?;
                    Some((
                        p.embeds.index_select(&ids, 0)?,
                        p.mask.index_select(&ids, 0)?,
                    ))
                }
                None => None,
            };
            let out = self.bridge.forward_words(
                &self.encode_media(&media)?,
                picked
                    .as_ref()
                    .map(|(embeds, mask)| BridgePrompt { embeds, mask }),
            )?;
            for (k, &row) in idx.iter().enumerate() {
                let slot = rows.get_mut(row).ok_or_else(|| {
                    Error::Invalid(format!("media row {row} outside a batch of {batch}"))
                })?;
                let logits = match &out.word_logits {
                    Some(w) => Some(w.get(k)?),
                    None => None,
                };
                *slot = Some((out.tokens.get(k)?, logits));
            }
        }
        let dev = self.device();
        let mask: Vec<u32> = rows
            .iter()
            .flat_map(|r| std::iter::repeat_n(u32::from(r.is_some()), l))
            .collect();
        let zeros = Tensor::zeros((l, d), self.bridge_dtype(), dev)?;
        let tokens: Vec<Tensor> = rows
            .iter()
            .map(|r| r.as_ref().map_or_else(|| zeros.clone(), |(t, _)| t.clone()))
            .collect();
        let word_logits = match self.bridge.word_vocab() {
            Some(v) => {
                let k = self.cfg.bridge.word_tokens;
                let zeros = Tensor::zeros((k, v), self.bridge_dtype(), dev)?;
                let logits: Vec<Tensor> = rows
                    .iter()
                    .map(|r| match r {
                        Some((_, Some(w))) => w.clone(),
                        _ => zeros.clone(),
                    })
                    .collect();
                Some(Tensor::stack(&logits, 0)?)
            }
            None => None,
        };
        Ok(RowBridge {
            tokens: Tensor::stack(&tokens, 0)?,
            mask: Tensor::from_vec(mask, (batch, l), dev)?,
            word_logits,
            media_rows: rows.iter().map(Option::is_some).collect(),
        })
    }

    /// How many bridge tokens go after the prompt, right before the reply (the word tokens
    /// when `word_token_place` is `reply`; else 0).
    pub fn reply_bridge_tokens(&self) -> usize {
        match self.cfg.bridge.word_token_place {
            WordTokenPlace::Reply => self.cfg.bridge.word_tokens,
            WordTokenPlace::Prefix => 0,
        }
    }

    /// The LLM's input embeddings [B, L + T, D] and attention mask [B, L + T] for a batch's
    /// bridge tokens and its text (`text` [B, T, D], `text_mask` [B, T]). The bridge tokens are
    /// prepended, except the word tokens of a bridge that places them before the reply: on a
    /// row with media those go right after text position `reply_at[row] - 1` (the last prompt
    /// token); on a row without media, where they are masked out, they go first, so that the
    /// last position of a prompt is still a token the LLM reads. Either way the text's
    /// position `p` is at `L + p` from the reply on, so the targets read the same positions.
    pub fn assemble_inputs(
        &self,
        bridge: &RowBridge,
        text: &Tensor,
        text_mask: &Tensor,
        reply_at: &[usize],
    ) -> Result<(Tensor, Tensor)> {
        let tokens = bridge.tokens.to_dtype(text.dtype())?;
        let mask = bridge.mask.to_dtype(DType::U32)?;
        let text_mask = text_mask.to_dtype(DType::U32)?;
        let k = self.reply_bridge_tokens();
        if k == 0 {
            return Ok((
                Tensor::cat(&[&tokens, text], 1)?,
                Tensor::cat(&[&mask, &text_mask], 1)?,
            ));
        }
        let (b, l, _) = tokens.dims3()?;
        let t = text.dim(1)?;
        if reply_at.len() != b || bridge.media_rows.len() != b {
            return Err(Error::Invalid(format!(
                "{} reply positions and {} media flags for a batch of {b}",
                reply_at.len(),
                bridge.media_rows.len()
            )));
        }
        let (mut embeds, mut masks) = (Vec::with_capacity(b), Vec::with_capacity(b));
        for (row, (&at, &media)) in reply_at.iter().zip(&bridge.media_rows).enumerate() {
            if at > t {
                return Err(Error::Invalid(format!(
                    "row {row}: reply position {at} after a text of {t} tokens"
                )));
            }
            let split = if media { at } else { 0 };
            // [prefix bridge tokens, prompt, word tokens, reply and padding]
            let pieces = |bridge: &Tensor, text: &Tensor| -> Result<Tensor> {
                let parts: Vec<Tensor> = [
                    bridge.narrow(0, 0, l - k)?,
                    text.narrow(0, 0, split)?,
                    bridge.narrow(0, l - k, k)?,
                    text.narrow(0, split, t - split)?,
                ]
                .into_iter()
                .filter(|x| x.dims().first().is_some_and(|&n| n > 0))
                .collect();
                Ok(Tensor::cat(&parts, 0)?)
            };
            embeds.push(pieces(&tokens.get(row)?, &text.get(row)?)?);
            masks.push(pieces(&mask.get(row)?, &text_mask.get(row)?)?);
        }
        Ok((Tensor::stack(&embeds, 0)?, Tensor::stack(&masks, 0)?))
    }

    /// The dtype of the bridge's outputs.
    pub fn bridge_dtype(&self) -> DType {
        self.bridge.dtype()
    }

    /// Input embeddings and attention mask: [bridge tokens] ++ [token embeddings]. `ids` [B, T]
    /// are left padded where `text_mask` [B, T] is 0; bridge tokens are always attended.
    pub fn input_embeds(
        &self,
        bridge_tokens: &Tensor,
        ids: &Tensor,
        text_mask: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let (b, l, _) = bridge_tokens.dims3()?;
        let text = self.llm.embed(ids)?;
        let embeds = Tensor::cat(&[&bridge_tokens.to_dtype(text.dtype())?, &text], 1)?;
        let ones = Tensor::ones((b, l), DType::U32, ids.device())?;
        let mask = Tensor::cat(&[&ones, &text_mask.to_dtype(DType::U32)?], 1)?;
        Ok((embeds, mask))
    }
}
