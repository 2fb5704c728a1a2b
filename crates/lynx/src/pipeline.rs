//! The inference engine of the release's `generate.py`: loads a model (release files or a
//! converted directory), turns (media, question) requests into bridge tokens and prompt ids,
//! and generates answers with HF 4.28 semantics.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::{FrameSamplingMode, LynxYaml, TokenizerChoice};
use crate::data::conversation::{inference_ids, PromptFormat, Turn};
use crate::data::image::{load_image, Preprocessor};
use crate::data::tokenizer::{LynxTokenizer, TokenizerSource};
use crate::data::video::{load_video, FrameSampling};
use crate::generation::{generate_with, GenerationConfig};
use crate::model::bridge::resampler::BridgePrompt;
use crate::model::load::{self, LoadedModel};
use crate::model::lynx::{Lynx, LynxConfig, RowBridge};
use crate::model::session::LlmSession;
use crate::{Error, Result};

/// The image or video a question is about.
#[derive(Debug, Clone)]
pub enum Media {
    Image(PathBuf),
    Video(PathBuf),
    /// Already preprocessed: [3, R, R].
    ImagePixels(Tensor),
    /// Already preprocessed frames: [F, 3, R, R].
    VideoPixels(Tensor),
}

impl Media {
    fn is_video(&self) -> bool {
        matches!(self, Media::Video(_) | Media::VideoPixels(_))
    }
}

/// One question, optionally about a medium and after earlier turns of a dialog.
#[derive(Debug, Clone)]
pub struct Request {
    pub media: Option<Media>,
    pub history: Vec<Turn>,
    pub question: String,
}

/// A generated answer: the text (special tokens skipped, stripped) and the new token ids
/// (no BOS placeholder, no padding; EOS kept when generated).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    pub token_ids: Vec<u32>,
}

/// Where the model comes from. With neither `config` nor `model_dir`, the default model
/// embedded in the binary is used (`crate::default_model`).
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// A YAML config (LYNX.yaml keys) naming the release files, or runtime settings for `model_dir`.
    pub config: Option<PathBuf>,
    /// A directory written by `lynx convert` or by training.
    pub model_dir: Option<PathBuf>,
    /// `--set key=value` overrides.
    pub sets: Vec<String>,
    /// `cpu` (default) or `cuda[:N]`.
    pub device: Option<String>,
    /// `f32` (default on CPU), `f16` or `bf16`.
    pub dtype: Option<String>,
}

/// Parses a device name.
pub fn parse_device(name: Option<&str>) -> Result<Device> {
    match name.unwrap_or("cpu") {
        "cpu" => Ok(Device::Cpu),
        d if d.starts_with("cuda") => {
            let ordinal = d
                .strip_prefix("cuda:")
                .map(|n| n.parse::<usize>())
                .transpose()
                .map_err(|_| Error::config("device", format!("bad device {d:?}")))?
                .unwrap_or(0);
            Ok(Device::new_cuda(ordinal)?)
        }
        other => Err(Error::config(
            "device",
            format!("unknown device {other:?}; use cpu or cuda[:N]"),
        )),
    }
}

/// Parses a dtype name.
pub fn parse_dtype(name: Option<&str>, device: &Device) -> Result<DType> {
    match name {
        None => Ok(if device.is_cpu() {
            DType::F32
        } else {
            DType::BF16
        }),
        Some("f32") => Ok(DType::F32),
        Some("f16") => Ok(DType::F16),
        Some("bf16") => Ok(DType::BF16),
        Some(other) => Err(Error::config(
            "dtype",
            format!("unknown dtype {other:?}; use f32, f16 or bf16"),
        )),
    }
}

/// A loaded model with its tokenizer, preprocessing and settings.
pub struct Engine {
    pub yaml: LynxYaml,
    pub model: Lynx,
    /// Shared, so batch builders (`lynx eval loss`) can hold it too.
    pub tokenizer: Arc<LynxTokenizer>,
    pub preprocessor: Preprocessor,
    pub format: PromptFormat,
    /// Tensors of lenient files that nothing read (for a warning).
    pub unused: Vec<(String, Vec<String>)>,
}

fn tokenizer_source(choice: TokenizerChoice) -> TokenizerSource {
    match choice {
        TokenizerChoice::Auto => TokenizerSource::Auto,
        TokenizerChoice::Model => TokenizerSource::SentencePiece,
        TokenizerChoice::Json => TokenizerSource::Json,
    }
}

impl Engine {
    /// Loads from a converted directory, from the release files named by a config, or (with
    /// neither) the embedded default model.
    pub fn load(opts: &EngineOptions) -> Result<Self> {
        let device = parse_device(opts.device.as_deref())?;
        let dtype = parse_dtype(opts.dtype.as_deref(), &device)?;
        match (&opts.model_dir, &opts.config) {
            (Some(dir), config) => {
                let runtime = match config {
                    Some(c) => c.clone(),
                    None => dir.join(load::CONVERTED_RUNTIME),
                };
                let yaml = if runtime.is_file() {
                    LynxYaml::load(&runtime, &opts.sets)?
                } else {
                    LynxYaml::from_overrides(&opts.sets)?
                };
                let (cfg, loaded) = load::load_converted(dir, dtype, &device)?;
                let tokenizer = LynxTokenizer::from_dir(dir, tokenizer_source(yaml.tokenizer))?;
                Self::from_parts(yaml, cfg, loaded, tokenizer)
            }
            (None, Some(config)) => {
                let yaml = LynxYaml::load(config, &opts.sets)?;
                let llm_dir = yaml.required_path("llm_path", &yaml.llm_path)?;
                let tokenizer =
                    LynxTokenizer::from_dir(&llm_dir, tokenizer_source(yaml.tokenizer))?;
                let llm = load::read_llama_config(&llm_dir)?;
                let cfg = load::lynx_config(&yaml, llm, tokenizer.vocab_size())?;
                let loaded = load::load_release(&yaml, &cfg, dtype, &device)?;
                Self::from_parts(yaml, cfg, loaded, tokenizer)
            }
            (None, None) => {
                let yaml = crate::default_model::runtime(&opts.sets)?;
                let (cfg, loaded) = crate::default_model::load_model(dtype, &device)?;
                let tokenizer = crate::default_model::tokenizer()?;
                Self::from_parts(yaml, cfg, loaded, tokenizer)
            }
        }
    }

    /// Whether `opts` selects the embedded default model.
    pub fn uses_default_model(opts: &EngineOptions) -> bool {
        opts.config.is_none() && opts.model_dir.is_none()
    }

    /// An engine around a model already built (a trainer's, a test's), with the runtime settings
    /// of `yaml`; checks that the tokenizer and the frame count fit the model.
    pub fn from_parts(
        yaml: LynxYaml,
        cfg: LynxConfig,
        loaded: LoadedModel,
        tokenizer: LynxTokenizer,
    ) -> Result<Self> {
        if tokenizer.pad_id() as usize != cfg.vocab_size - 1 {
            return Err(Error::config(
                "tokenizer",
                format!(
                    "the tokenizer has {} tokens but the model's embedding has {} rows (tokens + [PAD])",
                    tokenizer.vocab_size(),
                    cfg.vocab_size
                ),
            ));
        }
        if cfg.num_frames != yaml.data.num_frames {
            return Err(Error::config(
                "data.num_frames",
                format!(
                    "the model was built for {} frames per video",
                    cfg.num_frames
                ),
            ));
        }
        Ok(Self {
            preprocessor: Preprocessor {
                image_res: yaml.image_res,
                mean: yaml.image_mean,
                std: yaml.image_std,
            },
            format: PromptFormat {
                template: yaml.prompt.clone(),
                lower_text: yaml.lower_text,
            },
            yaml,
            model: loaded.model,
            tokenizer: Arc::new(tokenizer),
            unused: loaded.unused,
        })
    }

    /// A warning when bridge tokens + `max_input_tokens` + `max_new_tokens` exceed the LLM's
    /// `max_position_embeddings`: like HF's LLaMA the model still runs (rotary positions have no
    /// table limit), but it was not trained on positions that far.
    pub fn context_warning(&self) -> Option<String> {
        let cfg = self.model.config();
        let longest =
            cfg.bridge.num_bridge_tokens + self.yaml.max_input_tokens + self.yaml.max_new_tokens;
        (longest > cfg.llm.max_position_embeddings).then(|| {
            format!(
                "{} bridge tokens + {} prompt tokens (max_input_tokens) + {} new tokens (max_new_tokens) exceed the LLM's context of {} positions",
                cfg.bridge.num_bridge_tokens,
                self.yaml.max_input_tokens,
                self.yaml.max_new_tokens,
                cfg.llm.max_position_embeddings
            )
        })
    }

    /// The generation settings of the config (LYNX.yaml's infer params).
    pub fn generation_config(&self) -> GenerationConfig {
        let y = &self.yaml;
        GenerationConfig {
            max_new_tokens: y.max_new_tokens,
            min_length: y.min_length,
            num_beams: y.num_beams,
            do_sample: y.use_nucleus_sampling,
            temperature: y.temperature,
            top_k: y.top_k,
            top_p: y.top_p,
            repetition_penalty: y.repetition_penalty,
            length_penalty: y.length_penalty,
            no_repeat_ngram_size: y.no_repeat_ngram_size,
            bos_token_id: self.tokenizer.bos_id(),
            eos_token_id: Some(self.tokenizer.eos_id()),
            pad_token_id: Some(self.tokenizer.pad_id()),
            seed: y.seed,
            ..GenerationConfig::default()
        }
    }

    /// The length of a request's prompt before `max_input_tokens` truncation.
    pub fn prompt_ids_untruncated(&self, req: &Request) -> Result<usize> {
        Ok(inference_ids(
            &self.tokenizer,
            &self.format,
            &req.history,
            &req.question,
            usize::MAX,
        )?
        .len())
    }

    /// The prompt ids the model reads for a request.
    pub fn prompt_ids(&self, req: &Request) -> Result<Vec<u32>> {
        inference_ids(
            &self.tokenizer,
            &self.format,
            &req.history,
            &req.question,
            self.yaml.max_input_tokens,
        )
    }

    /// Preprocessed pixels: [3, R, R] for an image, [F, 3, R, R] for a video.
    pub fn media_pixels(&self, media: &Media, rng: &mut ChaCha8Rng) -> Result<Tensor> {
        match media {
            Media::Image(p) => self.preprocessor.eval(&load_image(p)?),
            Media::Video(p) => {
                let mode = match self.yaml.frame_sampling {
                    FrameSamplingMode::Deterministic => FrameSampling::Deterministic,
                    FrameSamplingMode::Random => FrameSampling::Random,
                };
                let frames = load_video(p, self.yaml.data.num_frames, mode, rng)?;
                let px = frames
                    .iter()
                    .map(|f| self.preprocessor.eval(f))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Tensor::stack(&px, 0)?)
            }
            Media::ImagePixels(t) | Media::VideoPixels(t) => Ok(t.clone()),
        }
    }

    /// Bridge tokens [B, L, D] and their mask [B, L] (0 for rows without media); an
    /// instruction-aware bridge also reads `prompt`.
    pub fn bridge_tokens(
        &self,
        reqs: &[Request],
        rng: &mut ChaCha8Rng,
        prompt: Option<BridgePrompt>,
    ) -> Result<RowBridge> {
        let dev = self.model.device();
        let (mut image_rows, mut images, mut video_rows, mut videos) =
            (vec![], vec![], vec![], vec![]);
        for (i, r) in reqs.iter().enumerate() {
            match &r.media {
                Some(m) if m.is_video() => {
                    video_rows.push(i);
                    videos.push(self.media_pixels(m, rng)?);
                }
                Some(m) => {
                    image_rows.push(i);
                    images.push(self.media_pixels(m, rng)?);
                }
                None => {}
            }
        }
        let stack = |px: &[Tensor]| -> Result<Option<Tensor>> {
            if px.is_empty() {
                Ok(None)
            } else {
                Ok(Some(Tensor::stack(px, 0)?.to_device(dev)?))
            }
        };
        let (images, videos) = (stack(&images)?, stack(&videos)?);
        self.model.row_bridge_outputs(
            reqs.len(),
            images.as_ref().map(|t| (image_rows.as_slice(), t)),
            videos.as_ref().map(|t| (video_rows.as_slice(), t)),
            prompt,
        )
    }

    /// Input embeddings and attention mask of a batch: bridge tokens ++ left-padded prompts
    /// (with a bridge's reply-side word tokens after the prompts).
    /// Also returns each row's prompt ids.
    pub fn inputs(
        &self,
        reqs: &[Request],
        rng: &mut ChaCha8Rng,
    ) -> Result<(Tensor, Tensor, Vec<Vec<u32>>)> {
        let ids = reqs
            .iter()
            .map(|r| self.prompt_ids(r))
            .collect::<Result<Vec<_>>>()?;
        let t = ids.iter().map(Vec::len).max().unwrap_or(0);
        let pad = self.tokenizer.pad_id();
        let mut flat = Vec::with_capacity(reqs.len() * t);
        let mut text_mask = Vec::with_capacity(reqs.len() * t);
        for row in &ids {
            let n = t - row.len();
            flat.extend(std::iter::repeat_n(pad, n).chain(row.iter().copied()));
            text_mask.extend(std::iter::repeat_n(0u32, n).chain(std::iter::repeat_n(1, row.len())));
        }
        let dev = self.model.device();
        let id_t = Tensor::from_vec(flat, (reqs.len(), t), dev)?;
        let mask_t = Tensor::from_vec(text_mask, (reqs.len(), t), dev)?;
        let text = self.model.llm().embed(&id_t)?;
        let prompt = BridgePrompt {
            embeds: &text,
            mask: &mask_t,
        };
        let bridge = self.bridge_tokens(reqs, rng, Some(prompt))?;
        // Left-padded prompts all end at position t, where a reply would start.
        let reply_at = vec![t; reqs.len()];
        let (embeds, mask) = self
            .model
            .assemble_inputs(&bridge, &text, &mask_t, &reply_at)?;
        Ok((embeds, mask, ids))
    }

    /// Answers a batch of requests.
    pub fn answer(
        &self,
        reqs: &[Request],
        gen: &GenerationConfig,
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Answer>> {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        let (embeds, mask, _) = self.inputs(reqs, rng)?;
        let mut session = LlmSession::new(self.model.llm());
        let outputs = generate_with(&mut session, &embeds, &mask, gen, rng, None)?;
        outputs
            .into_iter()
            .map(|seq| {
                let token_ids = seq.tokens;
                let text = self.tokenizer.decode(&token_ids, true)?.trim().to_string();
                Ok(Answer { text, token_ids })
            })
            .collect()
    }

    /// The prompt ids and the next-token logits [V] (f32) after the prompt.
    pub fn next_token_logits(
        &self,
        req: &Request,
        rng: &mut ChaCha8Rng,
    ) -> Result<(Vec<u32>, Vec<f32>)> {
        let (embeds, mask, mut ids) = self.inputs(std::slice::from_ref(req), rng)?;
        let hidden = self.model.llm().forward_hidden(&embeds, &mask, None)?;
        let t = hidden.dim(1)?;
        let logits = self
            .model
            .llm()
            .logits(&hidden.narrow(1, t - 1, 1)?.flatten_all()?)?;
        Ok((ids.remove(0), logits.to_vec1::<f32>()?))
    }

    /// A seeded RNG for frame sampling and generation (the config's `seed`).
    pub fn rng(&self) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(self.yaml.seed)
    }
}

/// Resolves a media path of an annotation: against `image_rdir` when that join exists, else as
/// given (relative to the working directory).
pub fn resolve_media(yaml: &LynxYaml, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    if let Some(rdir) = &yaml.image_rdir {
        let joined = yaml.resolve(rdir).join(p);
        if joined.exists() {
            return joined;
        }
    }
    p.to_path_buf()
}
