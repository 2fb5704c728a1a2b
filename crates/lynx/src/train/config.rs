//! The training configuration (`lynx train --config TRAIN.yaml [--set k=v]...`): what trains
//! (paper 2.2: bridge, adapters, frame positions; vision encoder and LLM frozen), the data
//! mixture (2.3/2.4), optimiser, schedules (2.3's 224 -> 420 px resolution switch), checkpoints.
//! Every struct denies unknown keys, so a key nothing reads is an error naming it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use super::optim::{default_no_decay, AdamWConfig};
use super::schedule::{image_res_at, validate_resolution_schedule, LrSchedule, ResolutionStage};
pub use crate::config::apply_override;
use crate::data::datasets::DatasetSpec;
use crate::data::mixture::{Mixture, MixtureOptions};
use crate::data::prompts::PromptTemplates;
use crate::{Error, Result};

/// The parts of Lynx that a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainPart {
    /// The Perceiver resampler (`bridge.*`).
    Bridge,
    /// The LLM's bottleneck adapters (`LLM.model.layers.{i}.output_adapter.*`).
    Adapter,
    /// The video frame position embeddings (`absolute_frame_pos_embed`).
    FramePos,
    /// The whole vision encoder (`vision_encoder.*`); frozen in the paper's recipe.
    VisionEncoder,
    /// The whole LLM except its adapters (`LLM.*`); frozen in the paper's recipe (Table 3's
    /// "w/ cross-attn & trainable LLM" ablation unfreezes it).
    Llm,
}

impl TrainPart {
    /// The part's name as configs spell it.
    pub fn name(self) -> &'static str {
        match self {
            TrainPart::Bridge => "bridge",
            TrainPart::Adapter => "adapter",
            TrainPart::FramePos => "frame_pos",
            TrainPart::VisionEncoder => "vision_encoder",
            TrainPart::Llm => "llm",
        }
    }
}

/// How the next-token losses of a batch's reply tokens are averaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossReduction {
    /// The mean over every reply token of the batch: the release's cross-entropy.
    #[default]
    Token,
    /// The mean over examples of each example's token mean, so that a one-word answer
    /// weighs as much as a long explanation or dialog.
    Example,
}

impl LossReduction {
    fn is_token(&self) -> bool {
        *self == LossReduction::Token
    }
}

/// Pretraining on pairs (paper 2.3) or instruction finetuning (2.4) of Lynx; or one of the
/// stage-0 runs that make the frozen parts themselves (issue 4): the tokenizer (its own config,
/// see `train::tokenizer_train`), LLaMA-style language-model pretraining (`lm`), its
/// instruction-tuned "Vicuna" copy (`lm_instruct`), and the vision encoder (`vision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Pretrain,
    Finetune,
    Tokenizer,
    Lm,
    LmInstruct,
    Vision,
}

impl Stage {
    /// Whether the stage trains Lynx itself (bridge, adapters, ...) on top of frozen parts.
    pub fn is_lynx(self) -> bool {
        matches!(self, Stage::Pretrain | Stage::Finetune)
    }
}

/// Where the base model comes from: a converted model folder, or the release's files.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPaths {
    /// A LYNX.yaml-style model config.
    #[serde(default)]
    pub config: Option<PathBuf>,
    /// A converted model folder (instead of the three files below).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// `eva_vit_g.pth`.
    #[serde(default)]
    pub vision_encoder: Option<PathBuf>,
    /// The Hugging Face LLaMA / Vicuna folder.
    #[serde(default)]
    pub llm: Option<PathBuf>,
    /// Weights to start the trainable parts from (e.g. `pretrain_lynx.pt` when finetuning).
    #[serde(default)]
    pub checkpoint: Option<PathBuf>,
    /// Stage `lm` from scratch: the folder (or file) of the tokenizer.json to train with.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
}

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}
fn default_train_parts() -> Vec<TrainPart> {
    vec![TrainPart::Bridge, TrainPart::Adapter, TrainPart::FramePos]
}
fn default_weight_decay() -> f64 {
    0.05
}
fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}
fn default_eps() -> f64 {
    1e-8
}
fn default_seed() -> u64 {
    42
}
fn default_save_every() -> u64 {
    1000
}
fn default_keep_last() -> usize {
    3
}
fn default_image_res() -> usize {
    420
}
fn default_max_bad_fraction() -> f64 {
    0.01
}
fn default_max_seq_len() -> usize {
    512
}
fn default_shuffle_buffer() -> usize {
    1000
}
fn default_vision_loss() -> VisionLossWeights {
    VisionLossWeights::default()
}

/// Weights of the parts of the `vision` stage's supervised objective (see `train::vision`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VisionLossWeights {
    /// Per-patch attributes (shape, colour, size, motion, text kind, word, digits, ...).
    pub patch: f64,
    /// Image-level place.
    pub place: f64,
    /// Image-level counts per shape, per colour, per (shape, colour) and in total.
    pub count: f64,
    /// Image-level set of words and numbers, and the missing piece of a pattern.
    pub global: f64,
    /// Extra factor on the per-patch shape target (on top of `patch`). Colours are read off
    /// single pixels and learnt in a few hundred steps; shapes need edges across patches and
    /// are learnt last, so the mixture can lean on them.
    pub shape: f64,
    /// Per-patch silhouettes at sub-patch resolution (`vision_targets::silhouettes`); 0, the
    /// default, leaves the head out. Not written when 0, so older runs keep their identity.
    #[serde(skip_serializing_if = "is_zero")]
    pub mask: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

fn is_one(x: &f64) -> bool {
    *x == 1.0
}

fn default_reply_loss() -> f64 {
    1.0
}

impl Default for VisionLossWeights {
    fn default() -> Self {
        Self {
            patch: 1.0,
            place: 1.0,
            count: 1.0,
            global: 1.0,
            shape: 1.0,
            mask: 0.0,
        }
    }
}

/// A training run's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelPaths,
    #[serde(default = "default_train_parts")]
    pub train_parts: Vec<TrainPart>,
    pub stage: Stage,
    pub datasets: Vec<DatasetSpec>,
    /// Prompt templates per task (needed by task records).
    #[serde(default)]
    pub prompts: Option<PathBuf>,
    /// false: only each task's first template (the paper's "w/o diverse prompts").
    #[serde(default = "yes")]
    pub diverse_prompts: bool,
    /// Samples per micro-batch.
    pub batch_size: usize,
    /// Micro-batches summed into one update.
    #[serde(default = "one")]
    pub grad_accum: usize,
    pub lr: f64,
    /// Per-part multipliers of the scheduled learning rate (`{bridge: 0.2}`: the resampler
    /// learns at a fifth of the rate of the adapters); parts not named keep 1.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lr_scale: BTreeMap<TrainPart, f64>,
    #[serde(default)]
    pub min_lr: f64,
    #[serde(default)]
    pub warmup_steps: u64,
    pub max_steps: u64,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Name substrings without weight decay (1-D tensors never decay).
    #[serde(default = "default_no_decay")]
    pub no_decay: Vec<String>,
    /// Global gradient-norm clip (none: no clipping).
    #[serde(default)]
    pub clip_grad_norm: Option<f64>,
    #[serde(default)]
    pub label_smoothing: f64,
    /// How token losses are averaged (`token`, the default, or `example`).
    #[serde(default, skip_serializing_if = "LossReduction::is_token")]
    pub loss_reduction: LossReduction,
    /// Weight of the bridge-answer loss (0: none, the release's objective): the LM head,
    /// applied to the mean of a row's bridge tokens, should name the row's reply tokens
    /// ([`crate::train::trainer::bridge_answer_loss`]). It reaches the bridge directly, so an
    /// instruction-aware bridge learns to pick out what the question asks about instead of
    /// learning it only through the frozen LM. With word tokens (`bridge_config.word_tokens`)
    /// the bag is read from their word distributions instead
    /// ([`crate::train::trainer::word_answer_loss`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bridge_answer_loss: f64,
    /// With word tokens, the bridge-answer loss counts only the media rows whose answer has at
    /// most as many tokens as there are word tokens (the rows `word_token_teacher` can teach).
    /// A long description's bag of words pulls the word tokens towards "picture" and "see",
    /// and an LLM taught to copy them then opens an explanation with a wrong word
    /// (docs/lm-lookup.md, section 10).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bridge_answer_short_only: bool,
    /// Feed the LLM the word tokens (`bridge_config.word_tokens`) without letting its loss flow
    /// back through them, so they learn only from `bridge_answer_loss` and stay the answer's
    /// words: the reply loss, reaching them before the reply, traded their colours for what
    /// the adapters found easiest to read (docs/lm-lookup.md, sections 6 and 7). The rest of
    /// the bridge still learns from the reply loss.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub detach_word_tokens: bool,
    /// Weight of the LLM's next-token loss on the replies (1, the release's objective). 0
    /// trains on `bridge_answer_loss` alone and skips the LLM's forward pass: a cheap phase
    /// that teaches an instruction-aware bridge to find the asked-for answer before the LLM
    /// learns to read it (the recipe plan's `stage2_words`).
    #[serde(default = "default_reply_loss", skip_serializing_if = "is_one")]
    pub reply_loss: f64,
    /// Share of the media rows with a short answer (at most as many tokens as the bridge has
    /// word tokens) on which the LLM reads the answer's own words in place of the word tokens
    /// (0: none, the release). The adapters then learn to say what a word token names
    /// (`crate::train::word_teacher`; docs/lm-lookup.md, section 9).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub word_token_teacher: f64,
    /// On rows whose record gives a `short_answer` (an explained answer's verdict, e.g. the
    /// world's `vqa_explain`), the word-answer loss and `word_token_teacher` read that short
    /// answer in place of the reply. The LLM then also learns to copy the word tokens into an
    /// explanation, where it used to lose the answer (docs/lm-lookup.md, section 11).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub word_tokens_from_short_answers: bool,
    /// The word-answer loss and `word_token_teacher` read only the first `word_tokens` tokens
    /// of a reply longer than that: on a story request the word tokens learn "Once upon a
    /// time", the words the reply opens with, instead of a bag of all its words. Why: an LLM
    /// that copies its word tokens then opens the reply the way it should go on, where it used
    /// to copy a place name and stop (docs/lm-lookup.md, section 12).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub word_tokens_from_reply_openings: bool,
    /// From this run on, the model reads each word token as its most likely word's embedding
    /// (sets `bridge_config.word_token_hard` of the model trained and saved; false: the model
    /// keeps its own setting). Why a training key: the recipe makes them hard in stage 2 only,
    /// after the word phase has taught them words (docs/lm-lookup.md, section 9).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub word_token_hard: bool,
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default = "default_save_every")]
    pub save_every: u64,
    #[serde(default = "default_keep_last")]
    pub keep_last: usize,
    pub output_dir: PathBuf,
    /// The image resolution when `resolution_schedule` is empty or over.
    #[serde(default = "default_image_res")]
    pub image_res: usize,
    #[serde(default)]
    pub resolution_schedule: Vec<ResolutionStage>,
    #[serde(default = "default_max_bad_fraction")]
    pub max_bad_fraction: f64,
    /// Longest token sequence (prompt + response) fed to the LLM.
    #[serde(default = "default_max_seq_len")]
    pub max_seq_len: usize,
    /// Shuffle buffer of `.tar` shard datasets, in samples.
    #[serde(default = "default_shuffle_buffer")]
    pub shuffle_buffer: usize,
    /// Threads computing the micro-batches of an update (at most `grad_accum` are used). The
    /// result does not depend on it.
    #[serde(default = "one")]
    pub workers: usize,
    /// Stage `lm` from scratch: the LLaMA architecture (`vocab_size` is the tokenizer's).
    #[serde(default)]
    pub llm_config: Option<crate::model::llm::llama::LlamaConfig>,
    /// Stage `vision` from scratch: the EVA ViT architecture.
    #[serde(default)]
    pub vision_config: Option<crate::model::vision::eva_vit::VisionConfig>,
    /// Stage `vision`: weights of the objective's parts.
    #[serde(default = "default_vision_loss")]
    pub vision_loss: VisionLossWeights,
    /// Stage `vision`: held-out scenes (scenes.jsonl) on which the heads are probed at the end.
    #[serde(default)]
    pub probe_scenes: Option<PathBuf>,
}

/// Keys that may change when resuming (they do not change what is trained).
const RESUMABLE_KEYS: [&str; 6] = [
    "probe_scenes",
    "output_dir",
    "save_every",
    "keep_last",
    "max_bad_fraction",
    "workers",
];

/// EVA ViT-g/14 patch size: image resolutions must be multiples of it.
const PATCH: usize = 14;

impl TrainConfig {
    /// Reads `path`, applies `--set key=value` overrides, deserialises and validates.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_yaml(&text, &path.display().to_string(), overrides)
    }

    /// As [`TrainConfig::load`] from text; `source` names it in errors.
    pub fn from_yaml(text: &str, source: &str, overrides: &[String]) -> Result<Self> {
        let mut value: Value = serde_yaml::from_str(text)
            .map_err(|e| Error::parse(source, e.location().map(|l| l.line()), e.to_string()))?;
        for o in overrides {
            apply_override(&mut value, o)?;
        }
        let cfg: Self = serde_path_to_error::deserialize(value).map_err(path_error)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values and their consistency; errors name the key.
    pub fn validate(&self) -> Result<()> {
        self.validate_model()?;
        if self.train_parts.is_empty() {
            return Err(Error::config("train_parts", "nothing to train"));
        }
        for (i, p) in self.train_parts.iter().enumerate() {
            if self.train_parts[..i].contains(p) {
                return Err(Error::config(
                    "train_parts",
                    format!("{p:?} is listed twice"),
                ));
            }
        }
        for (part, scale) in &self.lr_scale {
            let key = format!("lr_scale.{}", part.name());
            if !self.train_parts.contains(part) {
                return Err(Error::config(key, "this part is not in train_parts"));
            }
            if !(scale.is_finite() && *scale > 0.0) {
                return Err(Error::config(
                    key,
                    format!("must be a number > 0 (leave the part out of train_parts to freeze it), got {scale}"),
                ));
            }
        }
        let w = &self.vision_loss;
        for (name, v) in [
            ("patch", w.patch),
            ("place", w.place),
            ("count", w.count),
            ("global", w.global),
            ("shape", w.shape),
            ("mask", w.mask),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::config(
                    format!("vision_loss.{name}"),
                    format!("must be a number >= 0, got {v}"),
                ));
            }
        }
        if self.datasets.is_empty() {
            return Err(Error::config("datasets", "no dataset given"));
        }
        for (i, d) in self.datasets.iter().enumerate() {
            if d.path.trim().is_empty() {
                return Err(Error::config(format!("datasets[{i}].path"), "empty"));
            }
            if !(d.weight.is_finite() && d.weight > 0.0) {
                return Err(Error::config(
                    format!("datasets[{i}].weight"),
                    "must be a number > 0",
                ));
            }
        }
        let positive = [
            ("batch_size", self.batch_size as u64),
            ("grad_accum", self.grad_accum as u64),
            ("save_every", self.save_every),
            ("keep_last", self.keep_last as u64),
            ("max_seq_len", self.max_seq_len as u64),
            ("workers", self.workers as u64),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(Error::config(key, "must be >= 1"));
            }
        }
        self.lr_schedule().validate()?;
        for (i, b) in self.betas.iter().enumerate() {
            if !(0.0..1.0).contains(b) {
                return Err(Error::config(
                    format!("betas[{i}]"),
                    format!("must be in [0, 1), got {b}"),
                ));
            }
        }
        let in_range = |key: &str, v: f64, lo: f64, hi: f64| -> Result<()> {
            if v.is_finite() && v >= lo && v <= hi {
                Ok(())
            } else {
                Err(Error::config(
                    key,
                    format!("must be in [{lo}, {hi}], got {v}"),
                ))
            }
        };
        in_range("eps", self.eps, 0.0, 1.0)?;
        in_range("weight_decay", self.weight_decay, 0.0, 1.0)?;
        in_range("label_smoothing", self.label_smoothing, 0.0, 0.999)?;
        in_range("bridge_answer_loss", self.bridge_answer_loss, 0.0, 100.0)?;
        if self.bridge_answer_short_only && self.bridge_answer_loss == 0.0 {
            return Err(Error::config(
                "bridge_answer_short_only",
                "picks the rows of bridge_answer_loss, which is 0",
            ));
        }
        if self.detach_word_tokens && self.bridge_answer_loss == 0.0 {
            return Err(Error::config(
                "detach_word_tokens",
                "detached word tokens learn only from bridge_answer_loss, which is 0",
            ));
        }
        in_range("reply_loss", self.reply_loss, 0.0, 100.0)?;
        in_range("word_token_teacher", self.word_token_teacher, 0.0, 1.0)?;
        if self.word_token_teacher > 0.0 && self.reply_loss == 0.0 {
            return Err(Error::config(
                "word_token_teacher",
                "teaches the LLM to read the word tokens, but reply_loss is 0: the LLM does not run",
            ));
        }
        if self.word_tokens_from_short_answers
            && self.bridge_answer_loss == 0.0
            && self.word_token_teacher == 0.0
        {
            return Err(Error::config(
                "word_tokens_from_short_answers",
                "changes what bridge_answer_loss and word_token_teacher read, and both are 0",
            ));
        }
        if self.word_tokens_from_reply_openings {
            if self.bridge_answer_loss == 0.0 && self.word_token_teacher == 0.0 {
                return Err(Error::config(
                    "word_tokens_from_reply_openings",
                    "changes what bridge_answer_loss and word_token_teacher read, and both are 0",
                ));
            }
            if self.bridge_answer_short_only {
                return Err(Error::config(
                    "word_tokens_from_reply_openings",
                    "cannot go with bridge_answer_short_only: every opening fits in the word \
                     tokens, so no row would be left out",
                ));
            }
        }
        if self.reply_loss == 0.0 && self.bridge_answer_loss == 0.0 {
            return Err(Error::config(
                "reply_loss",
                "is 0 and so is bridge_answer_loss: nothing would be learnt",
            ));
        }
        in_range("max_bad_fraction", self.max_bad_fraction, 0.0, 1.0)?;
        if let Some(c) = self.clip_grad_norm {
            if !(c.is_finite() && c > 0.0) {
                return Err(Error::config(
                    "clip_grad_norm",
                    "must be > 0 (or absent for no clipping)",
                ));
            }
        }
        validate_resolution_schedule(&self.resolution_schedule)?;
        let patch = match (&self.stage, &self.vision_config) {
            (Stage::Vision, Some(v)) => v.patch_size,
            _ => PATCH,
        };
        let mut resolutions = vec![("image_res".to_string(), self.image_res)];
        for (i, s) in self.resolution_schedule.iter().enumerate() {
            resolutions.push((format!("resolution_schedule[{i}].image_res"), s.image_res));
        }
        for (key, r) in resolutions {
            if r == 0 || r % patch != 0 {
                return Err(Error::config(
                    key,
                    format!("{r} is not a positive multiple of the patch size {patch}"),
                ));
            }
        }
        Ok(())
    }

    /// Which model inputs each stage needs.
    fn validate_model(&self) -> Result<()> {
        let m = &self.model;
        match self.stage {
            Stage::Pretrain | Stage::Finetune => {
                if m.dir.is_none() && (m.vision_encoder.is_none() || m.llm.is_none()) {
                    return Err(Error::config(
                        "model",
                        "give `dir`, or both `vision_encoder` and `llm`",
                    ));
                }
            }
            Stage::Tokenizer => {
                return Err(Error::config(
                    "stage",
                    "`tokenizer` runs take their own config (see `lynx train --help`)",
                ))
            }
            Stage::Lm => match (&m.llm, &m.tokenizer, &self.llm_config) {
                (Some(_), None, None) | (None, Some(_), Some(_)) => {}
                _ => {
                    return Err(Error::config(
                        "model",
                        "stage lm: give `model.tokenizer` and `llm_config` (from scratch), or `model.llm` (continue)",
                    ))
                }
            },
            Stage::LmInstruct => {
                if m.llm.is_none() || self.llm_config.is_some() {
                    return Err(Error::config(
                        "model.llm",
                        "stage lm_instruct starts from a language model folder (and takes no llm_config)",
                    ));
                }
            }
            Stage::Vision => {
                if self.vision_config.is_none() {
                    return Err(Error::config(
                        "vision_config",
                        "stage vision needs the encoder's architecture (`model.vision_encoder` may give starting weights)",
                    ));
                }
            }
        }
        Ok(())
    }

    /// The learning-rate schedule.
    pub fn lr_schedule(&self) -> LrSchedule {
        LrSchedule {
            lr: self.lr,
            min_lr: self.min_lr,
            warmup_steps: self.warmup_steps,
            max_steps: self.max_steps,
        }
    }

    /// The optimiser's hyper-parameters.
    pub fn adamw(&self) -> AdamWConfig {
        AdamWConfig {
            weight_decay: self.weight_decay,
            betas: self.betas,
            eps: self.eps,
            no_decay: self.no_decay.clone(),
        }
    }

    /// The data sampler's settings.
    pub fn mixture_options(&self) -> MixtureOptions {
        MixtureOptions {
            seed: self.seed,
            max_bad_fraction: self.max_bad_fraction,
            shuffle_buffer: self.shuffle_buffer,
        }
    }

    /// Loads the prompt templates (with `diverse_prompts`) and opens the data mixture, indexing
    /// and validating the JSONL datasets: bad data stops here, before training starts.
    pub fn open_data(&self) -> Result<Mixture> {
        let prompts = match &self.prompts {
            Some(p) => Some(PromptTemplates::load(p)?.with_diverse(self.diverse_prompts)),
            None => None,
        };
        Mixture::open(&self.datasets, prompts, self.mixture_options())
    }

    /// The image resolution of update `t` (1-based).
    pub fn image_res_at(&self, t: u64) -> usize {
        image_res_at(&self.resolution_schedule, self.image_res, t)
    }

    /// The learning-rate multiplier of model parameter `name`: its part's `lr_scale`, or 1.
    pub fn lr_scale_of(&self, name: &str) -> f64 {
        self.lr_scale
            .iter()
            .find(|(part, _)| super::params::is_trainable(name, &[**part]))
            .map_or(1.0, |(_, s)| *s)
    }

    /// Whether `part` trains.
    pub fn trains(&self, part: TrainPart) -> bool {
        self.train_parts.contains(&part)
    }

    /// The config as JSON without the keys that may change on resume: what identifies a run
    /// (see `CheckpointManager::open`).
    pub fn identity(&self) -> Result<serde_json::Value> {
        let mut v = serde_json::to_value(self).map_err(|e| Error::Invalid(e.to_string()))?;
        if let Some(m) = v.as_object_mut() {
            for k in RESUMABLE_KEYS {
                m.remove(k);
            }
        }
        Ok(v)
    }
}

pub(crate) fn path_error(e: serde_path_to_error::Error<serde_yaml::Error>) -> Error {
    // The path already ends with the offending key, unknown ones included.
    let path = e.path().to_string();
    let key = if path == "." || path.is_empty() {
        "(root)".to_string()
    } else {
        path
    };
    Error::config(key, e.inner().to_string())
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
