//! Training batches (paper 2.3/2.4): samples of the data mixture turned into model inputs,
//! pixels with the release's training augmentation (RandomResizedCrop, scale 0.9–1.0) and token
//! ids whose loss falls on the replies only (prompt, vision tokens and padding are masked).
//! Without augmentation the same batches measure a loss (`lynx eval loss`).

use candle_core::{Device, Tensor};
use image::RgbImage;

use crate::data::conversation::{caption_ids, training_ids, PromptFormat, Tokenized};
use crate::data::datasets::{MediaKind, MediaSource, Sample, SampleKind};
use crate::data::image::{decode_image, load_image, Preprocessor};
use crate::data::tokenizer::LynxTokenizer;
use crate::data::video::{load_video, FrameSampling};
use crate::train::rng::TrainRng;
use crate::{Error, Result};

/// One sample ready to batch: pixels ([3,R,R] image or [F,3,R,R] video) and tokens.
pub struct Example {
    pub media: Option<(MediaKind, Tensor)>,
    pub tokens: Tokenized,
    /// [`Batch::short_answers`]' entry for this example.
    pub short_answer: Option<Vec<u32>>,
}

/// A collated micro-batch. Text is right-padded; `targets` index the flattened [B, T] text
/// positions whose next token is a loss target, and `labels` are those next tokens.
pub struct Batch {
    pub size: usize,
    /// Rows with an image, and their pixels [Ni, 3, R, R].
    pub images: Option<(Vec<usize>, Tensor)>,
    /// Rows with a video, and their frames [Nv, F, 3, R, R].
    pub videos: Option<(Vec<usize>, Tensor)>,
    /// [B, T] u32
    pub ids: Tensor,
    /// [B, T] u32, 0 on right padding.
    pub text_mask: Tensor,
    /// [B, T] u32, 1 on the prompt's tokens (not padding, not reply tokens): what an
    /// instruction-aware bridge reads, so that it never sees the answers it is trained on.
    pub prompt_mask: Tensor,
    /// (row, position) of each predicted token.
    pub targets: Vec<(usize, usize)>,
    /// [N] u32
    pub labels: Tensor,
    /// Real (non-pad) text tokens in the batch.
    pub text_tokens: usize,
    /// Per row, when one of its turns gives a short answer
    /// ([`crate::data::conversation::Turn::short_answer`]): the tokens of each turn's short
    /// answer (or reply, when it has none), each followed by EOS, less the last EOS, as
    /// [`Batch::reply_answers`] reads the replies.
    pub short_answers: Vec<Option<Vec<u32>>>,
}

impl Batch {
    /// The reply tokens of each row, without the last one (the end of the turn): the answer
    /// the bridge's word tokens are trained to name (`crate::train::trainer::word_answer_loss`).
    pub fn reply_answers(&self) -> Result<Vec<Vec<u32>>> {
        let labels = self.labels.to_vec1::<u32>()?;
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); self.size];
        for (&(r, _), &l) in self.targets.iter().zip(&labels) {
            if let Some(row) = rows.get_mut(r) {
                row.push(l);
            }
        }
        for row in &mut rows {
            row.pop();
        }
        Ok(rows)
    }

    /// [`Batch::reply_answers`], with a row's short answers in place of its replies when
    /// `short` is set and the row has them.
    pub fn word_answers(&self, short: bool) -> Result<Vec<Vec<u32>>> {
        let mut rows = self.reply_answers()?;
        if short {
            for (row, s) in rows.iter_mut().zip(&self.short_answers) {
                if let Some(s) = s {
                    row.clone_from(s);
                }
            }
        }
        Ok(rows)
    }
}

/// Turns samples into examples and examples into batches.
pub struct BatchBuilder {
    pub tokenizer: std::sync::Arc<LynxTokenizer>,
    pub format: PromptFormat,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub num_frames: usize,
    pub max_seq_len: usize,
    /// Training augmentation (random crops, random frames); without it the evaluation
    /// transform (resize and centre crop, each segment's first frame), for measuring a loss.
    pub augment: bool,
}

impl BatchBuilder {
    fn transform(&self, pre: &Preprocessor, img: &RgbImage, rng: &mut TrainRng) -> Result<Tensor> {
        if self.augment {
            pre.train(img, rng)
        } else {
            pre.eval(img)
        }
    }

    fn pixels(
        &self,
        sample: &Sample,
        image_res: usize,
        rng: &mut TrainRng,
    ) -> Result<Option<(MediaKind, Tensor)>> {
        let Some(media) = &sample.media else {
            return Ok(None);
        };
        let pre = Preprocessor {
            image_res,
            mean: self.mean,
            std: self.std,
        };
        let px = match (media.kind, &media.source) {
            (MediaKind::Image, MediaSource::Path(p)) => {
                self.transform(&pre, &load_image(p)?, rng)?
            }
            (MediaKind::Image, MediaSource::Bytes { name, data }) => {
                self.transform(&pre, &decode_image(data, name)?, rng)?
            }
            (MediaKind::Video, MediaSource::Path(p)) => {
                let sampling = if self.augment {
                    FrameSampling::Random
                } else {
                    FrameSampling::Deterministic
                };
                let frames = load_video(p, self.num_frames, sampling, rng)?;
                let px = frames
                    .iter()
                    .map(|f| self.transform(&pre, f, rng))
                    .collect::<Result<Vec<_>>>()?;
                Tensor::stack(&px, 0)?
            }
            (MediaKind::Video, MediaSource::Bytes { name, .. }) => {
                return Err(Error::media(
                    name.clone(),
                    "videos inside .tar shards are not supported; use a JSONL dataset",
                ))
            }
        };
        Ok(Some((media.kind, px)))
    }

    /// Loads and tokenises one sample. An error means the sample is unusable (bad media,
    /// nothing to learn): the caller counts it and draws another.
    pub fn example(
        &self,
        sample: &Sample,
        image_res: usize,
        rng: &mut TrainRng,
    ) -> Result<Example> {
        let media = self.pixels(sample, image_res, rng)?;
        let tokens = match sample.kind {
            // A caption straight after the vision tokens: the stage-1 caption loss.
            SampleKind::Pair if sample.turns.iter().all(|t| t.prompt.trim().is_empty()) => {
                let caption = sample
                    .turns
                    .first()
                    .map(|t| t.response.as_str())
                    .unwrap_or("");
                caption_ids(&self.tokenizer, caption, self.max_seq_len)?
            }
            _ => training_ids(
                &self.tokenizer,
                &self.format,
                &sample.turns,
                self.max_seq_len,
            )?,
        };
        if !tokens.is_target.iter().skip(1).any(|&t| t) {
            return Err(Error::Invalid(format!(
                "{}: no reply token is left within max_seq_len = {}",
                sample.origin, self.max_seq_len
            )));
        }
        let short_answer = self.short_answer_ids(sample)?;
        Ok(Example {
            media,
            tokens,
            short_answer,
        })
    }

    /// [`Example::short_answer`]: `None` unless a turn of `sample` gives a short answer.
    fn short_answer_ids(&self, sample: &Sample) -> Result<Option<Vec<u32>>> {
        if sample.turns.iter().all(|t| t.short_answer.is_none()) {
            return Ok(None);
        }
        let mut ids = Vec::new();
        for turn in &sample.turns {
            let words = turn.short_answer.as_deref().unwrap_or(&turn.response);
            ids.extend(self.tokenizer.encode(words.trim())?);
            ids.push(self.tokenizer.eos_id());
        }
        ids.pop();
        Ok(Some(ids))
    }

    /// Pads and stacks examples.
    pub fn collate(&self, examples: Vec<Example>, device: &Device) -> Result<Batch> {
        let b = examples.len();
        let t = examples
            .iter()
            .map(|e| e.tokens.ids.len())
            .max()
            .unwrap_or(0);
        let pad = self.tokenizer.pad_id();
        let mut ids = Vec::with_capacity(b * t);
        let mut mask = Vec::with_capacity(b * t);
        let mut prompt_mask = Vec::with_capacity(b * t);
        let mut targets = Vec::new();
        let mut labels = Vec::new();
        let mut text_tokens = 0;
        let mut short_answers = Vec::with_capacity(b);
        let (mut image_rows, mut images, mut video_rows, mut videos) =
            (vec![], vec![], vec![], vec![]);
        for (row, ex) in examples.into_iter().enumerate() {
            let n = ex.tokens.ids.len();
            text_tokens += n;
            short_answers.push(ex.short_answer);
            for p in 0..n.saturating_sub(1) {
                if ex.tokens.is_target[p + 1] {
                    targets.push((row, p));
                    labels.push(ex.tokens.ids[p + 1]);
                }
            }
            ids.extend(
                ex.tokens
                    .ids
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(pad, t - n)),
            );
            mask.extend(std::iter::repeat_n(1u32, n).chain(std::iter::repeat_n(0, t - n)));
            prompt_mask.extend(
                ex.tokens
                    .is_target
                    .iter()
                    .map(|&reply| u32::from(!reply))
                    .chain(std::iter::repeat_n(0, t - n)),
            );
            match ex.media {
                Some((MediaKind::Image, px)) => {
                    image_rows.push(row);
                    images.push(px);
                }
                Some((MediaKind::Video, px)) => {
                    video_rows.push(row);
                    videos.push(px);
                }
                None => {}
            }
        }
        let stack = |rows: Vec<usize>, px: Vec<Tensor>| -> Result<Option<(Vec<usize>, Tensor)>> {
            if rows.is_empty() {
                Ok(None)
            } else {
                Ok(Some((rows, Tensor::stack(&px, 0)?.to_device(device)?)))
            }
        };
        let n = labels.len();
        Ok(Batch {
            size: b,
            images: stack(image_rows, images)?,
            videos: stack(video_rows, videos)?,
            ids: Tensor::from_vec(ids, (b, t), device)?,
            text_mask: Tensor::from_vec(mask, (b, t), device)?,
            prompt_mask: Tensor::from_vec(prompt_mask, (b, t), device)?,
            targets,
            labels: Tensor::from_vec(labels, n, device)?,
            text_tokens,
            short_answers,
        })
    }
}
