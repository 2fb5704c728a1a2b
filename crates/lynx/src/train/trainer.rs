//! The training loop of `lynx train` (paper 2.3 pretraining, 2.4 instruction finetuning): the
//! bridge, adapters and frame positions learn next-token prediction on the replies while the
//! vision encoder and LLM stay frozen; AdamW with warmup + cosine, gradient accumulation and
//! clipping, atomic checkpoints with exact resume, and a converted model at the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, D};

use crate::config::LynxYaml;
use crate::data::conversation::PromptFormat;
use crate::data::datasets::Sample;
use crate::data::mixture::{Mixture, MixtureState};
use crate::data::tokenizer::{LynxTokenizer, TokenizerSource};
use crate::model::bridge::resampler::BridgePrompt;
use crate::model::convert::write_converted;
use crate::model::llm::llama::Llama;
use crate::model::load::{self, LoadedModel};
use crate::model::lynx::{Lynx, LynxConfig, RowBridge};
use crate::model::weights::{Mount, TensorFile, WeightStore};
use crate::train::batch::{Batch, BatchBuilder, Example};
use crate::train::checkpoint::{CheckpointManager, TrainState};
use crate::train::config::{LossReduction, Stage, TrainConfig};
pub use crate::train::core::StepStats;
use crate::train::core::{progress_bar, run_loop, MicroLoss, RunCore};
use crate::train::params::TrainableParams;
use crate::train::rng::{derive_seed, TrainRng};
use crate::train::word_teacher::teach_word_tokens;
use crate::{Error, Result};

/// Where the model of a run comes from, resolved.
struct BaseModel {
    yaml: LynxYaml,
    cfg: LynxConfig,
    tokenizer: Arc<LynxTokenizer>,
}

/// Resolves `p` against `base` when that join exists (or, for shard patterns, its folder).
pub fn resolve_path(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        return p.to_path_buf();
    }
    let joined = base.join(p);
    let pattern = p.to_string_lossy().contains('{');
    if joined.exists() || (pattern && joined.parent().is_some_and(Path::exists)) {
        joined
    } else {
        p.to_path_buf()
    }
}

/// Loads a training config and resolves its relative input paths against the config's folder
/// (when they exist there); `output_dir` stays relative to the working directory.
pub fn load_config(path: &Path, overrides: &[String]) -> Result<TrainConfig> {
    let mut cfg = TrainConfig::load(path, overrides)?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let m = &mut cfg.model;
    for p in [
        &mut m.config,
        &mut m.dir,
        &mut m.vision_encoder,
        &mut m.llm,
        &mut m.checkpoint,
        &mut m.tokenizer,
    ]
    .into_iter()
    .flatten()
    {
        *p = resolve_path(&base, p);
    }
    for p in [&mut cfg.prompts, &mut cfg.probe_scenes]
        .into_iter()
        .flatten()
    {
        *p = resolve_path(&base, p);
    }
    for d in &mut cfg.datasets {
        d.path = resolve_path(&base, Path::new(&d.path))
            .to_string_lossy()
            .into_owned();
    }
    Ok(cfg)
}

fn base_model(cfg: &TrainConfig) -> Result<BaseModel> {
    let m = &cfg.model;
    let mut yaml = match (&m.config, &m.dir) {
        (Some(c), _) => LynxYaml::load(c, &[])?,
        (None, Some(dir)) if dir.join(load::CONVERTED_RUNTIME).is_file() => {
            LynxYaml::load(&dir.join(load::CONVERTED_RUNTIME), &[])?
        }
        _ => LynxYaml::from_overrides(&[])?,
    };
    yaml.image_res = cfg.image_res;
    if let Some(dir) = &m.dir {
        let cfg = load::read_converted_config(dir)?;
        let tokenizer = Arc::new(LynxTokenizer::from_dir(dir, TokenizerSource::Auto)?);
        yaml.data.num_frames = cfg.num_frames;
        return Ok(BaseModel {
            yaml,
            cfg,
            tokenizer,
        });
    }
    let llm = m
        .llm
        .clone()
        .ok_or_else(|| Error::config("model.llm", "missing"))?;
    yaml.llm_path = Some(llm.to_string_lossy().into_owned());
    yaml.vision_encoder_path = m
        .vision_encoder
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    yaml.checkpoint = None;
    yaml.base_dir = PathBuf::from(".");
    let tokenizer = Arc::new(LynxTokenizer::from_dir(&llm, TokenizerSource::Auto)?);
    let lcfg = load::lynx_config(
        &yaml,
        load::read_llama_config(&llm)?,
        tokenizer.vocab_size(),
    )?;
    Ok(BaseModel {
        yaml,
        cfg: lcfg,
        tokenizer,
    })
}

/// The files of the base model, mounted (the optional `model.checkpoint` first).
fn base_mounts(cfg: &TrainConfig, base: &BaseModel) -> Result<Vec<Mount>> {
    let mut mounts = Vec::new();
    if let Some(ckpt) = &cfg.model.checkpoint {
        mounts.push(Mount::new(
            ckpt.display().to_string(),
            "",
            "model.",
            false,
            TensorFile::open(ckpt)?,
        ));
    }
    match &cfg.model.dir {
        Some(dir) => mounts.push(load::converted_mount(dir, false)?),
        None => {
            let mut yaml = base.yaml.clone();
            yaml.checkpoint = None;
            mounts.extend(load::release_mounts(&yaml)?.into_iter().map(|mut m| {
                m.strict = false;
                m
            }));
        }
    }
    Ok(mounts)
}

/// The next-token loss of a batch on its reply tokens (averaged as `reduction` says), with
/// optional label smoothing. Differentiable with respect to the trainable parameters.
pub fn batch_loss(
    model: &Lynx,
    batch: &Batch,
    label_smoothing: f64,
    reduction: LossReduction,
) -> Result<Tensor> {
    let objective = Objective {
        label_smoothing,
        reduction,
        ..Objective::default()
    };
    batch_loss_with(model, batch, &objective)
}

/// The label that keeps the word-token teacher's draws apart from the data's ("teacher" in
/// ASCII; the value docs/lm-lookup.md section 9's runs drew with).
const TEACHER_STREAM: u64 = 0x0074_6561_6368_6572;

/// What a Lynx training step minimises, beyond the batch itself (the [`TrainConfig`] keys of
/// the same names).
#[derive(Debug, Clone, Copy)]
pub struct Objective {
    pub label_smoothing: f64,
    pub reduction: LossReduction,
    /// Weight of [`bridge_answer_loss`] (or [`word_answer_loss`]); 0: none.
    pub bridge_answer: f64,
    /// [`word_answer_loss`] counts only rows whose answer fits in the word tokens.
    pub bridge_answer_short_only: bool,
    /// The LLM reads the word tokens but its loss does not flow back through them.
    pub detach_word_tokens: bool,
    /// Weight of the LLM's next-token loss (1: the release's); 0 skips the LLM's forward pass.
    pub reply: f64,
    /// Share of short-answer rows whose word tokens are the answer's words
    /// (`crate::train::word_teacher`); 0: none.
    pub word_token_teacher: f64,
    /// Seed of the rows [`Objective::word_token_teacher`] picks (the trainer's seed and step).
    pub teacher_seed: u64,
    /// The word-answer loss and the teacher read a row's short answers, when its record gives
    /// them, in place of its reply ([`Batch::word_answers`]).
    pub word_tokens_from_short_answers: bool,
    /// The word-answer loss and the teacher read only a reply's first word-token-many tokens
    /// ([`objective_answers`]).
    pub word_tokens_from_reply_openings: bool,
}

impl Default for Objective {
    /// The release's objective: the next-token loss alone.
    fn default() -> Self {
        Self {
            label_smoothing: 0.0,
            reduction: LossReduction::default(),
            bridge_answer: 0.0,
            bridge_answer_short_only: false,
            detach_word_tokens: false,
            reply: 1.0,
            word_token_teacher: 0.0,
            teacher_seed: 0,
            word_tokens_from_short_answers: false,
            word_tokens_from_reply_openings: false,
        }
    }
}

impl Objective {
    /// The objective a run's config asks for.
    pub fn of(cfg: &TrainConfig) -> Self {
        Self {
            label_smoothing: cfg.label_smoothing,
            reduction: cfg.loss_reduction,
            bridge_answer: cfg.bridge_answer_loss,
            bridge_answer_short_only: cfg.bridge_answer_short_only,
            detach_word_tokens: cfg.detach_word_tokens,
            reply: cfg.reply_loss,
            word_token_teacher: cfg.word_token_teacher,
            teacher_seed: cfg.seed,
            word_tokens_from_short_answers: cfg.word_tokens_from_short_answers,
            word_tokens_from_reply_openings: cfg.word_tokens_from_reply_openings,
        }
    }
}

/// `objective.reply` times [`batch_loss`] plus `objective.bridge_answer` times
/// [`bridge_answer_loss`] (each when its weight is > 0).
pub fn batch_loss_with(model: &Lynx, batch: &Batch, objective: &Objective) -> Result<Tensor> {
    let (label_smoothing, reduction) = (objective.label_smoothing, objective.reduction);
    let bridge_answer = objective.bridge_answer;
    let text = model.llm().embed(&batch.ids)?;
    let out = batch_bridge(model, batch, &text)?;
    let bridge = &out.tokens;
    if objective.reply <= 0.0 {
        // A batch without media rows has no answer loss: a zero that still reaches the
        // bridge keeps the update's shape (every bridge parameter gets a zero gradient).
        let aux = match answer_loss(model, &out, batch, objective)? {
            Some(aux) => aux,
            None => (bridge.sum_all()? * 0.0)?,
        };
        return Ok((aux * bridge_answer)?);
    }
    let detached;
    let read = if objective.detach_word_tokens {
        detached = detach_word_tokens(&out, model.config().bridge.word_tokens)?;
        &detached
    } else {
        &out
    };
    let taught;
    let read = if objective.word_token_teacher > 0.0 {
        let share = objective.word_token_teacher;
        let answers = objective_answers(model, batch, objective)?;
        taught = teach_word_tokens(model, read, &answers, share, objective.teacher_seed)?;
        &taught
    } else {
        read
    };
    let (embeds, mask) =
        model.assemble_inputs(read, &text, &batch.text_mask, &reply_positions(batch))?;
    let hidden = model.llm().forward_hidden(&embeds, &mask, None)?;
    let prefix = hidden.dim(1)? - batch.ids.dim(1)?;
    let loss = target_loss(
        model.llm(),
        &hidden,
        prefix,
        batch,
        label_smoothing,
        reduction,
    )?;
    let loss = if objective.reply == 1.0 {
        loss
    } else {
        (loss * objective.reply)?
    };
    if bridge_answer <= 0.0 {
        return Ok(loss);
    }
    match answer_loss(model, &out, batch, objective)? {
        Some(aux) => Ok((&loss + (aux.to_dtype(loss.dtype())? * bridge_answer)?)?),
        None => Ok(loss),
    }
}

/// The bridge-answer loss of `out`: [`word_answer_loss`] when the bridge has word tokens,
/// else [`bridge_answer_loss`] (`None` when no row has both media and a reply).
fn answer_loss(
    model: &Lynx,
    out: &RowBridge,
    batch: &Batch,
    objective: &Objective,
) -> Result<Option<Tensor>> {
    match &out.word_logits {
        Some(words) => {
            let answers = objective_answers(model, batch, objective)?;
            word_answer_loss_of(words, batch, &answers, objective.bridge_answer_short_only)
        }
        None => bridge_answer_loss(model.llm(), &out.tokens, batch),
    }
}

/// What the word tokens of each row of `batch` are trained to name, as `objective` says:
/// [`Batch::word_answers`], cut to the model's word-token count when
/// `word_tokens_from_reply_openings` is set.
pub fn objective_answers(
    model: &Lynx,
    batch: &Batch,
    objective: &Objective,
) -> Result<Vec<Vec<u32>>> {
    let mut answers = batch.word_answers(objective.word_tokens_from_short_answers)?;
    if objective.word_tokens_from_reply_openings {
        let k = model.config().bridge.word_tokens;
        for answer in &mut answers {
            answer.truncate(k);
        }
    }
    Ok(answers)
}

/// The bridge's outputs for each row of `batch` (`text`: its token embeddings, which an
/// instruction-aware bridge reads up to the reply).
pub fn batch_bridge(model: &Lynx, batch: &Batch, text: &Tensor) -> Result<RowBridge> {
    model.row_bridge_outputs(
        batch.size,
        batch.images.as_ref().map(|(r, t)| (r.as_slice(), t)),
        batch.videos.as_ref().map(|(r, t)| (r.as_slice(), t)),
        Some(BridgePrompt {
            embeds: text,
            mask: &batch.prompt_mask,
        }),
    )
}

/// `out` with its last `k` bridge tokens (the word tokens) cut off from the graph: the LLM
/// reads the same values, and no gradient reaches the bridge through them.
fn detach_word_tokens(out: &RowBridge, k: usize) -> Result<RowBridge> {
    let l = out.tokens.dim(1)?;
    if k == 0 || k > l {
        return Err(Error::config(
            "detach_word_tokens",
            format!("the bridge has {k} word tokens among {l} bridge tokens"),
        ));
    }
    let tokens = Tensor::cat(
        &[
            &out.tokens.narrow(1, 0, l - k)?,
            &out.tokens.narrow(1, l - k, k)?.detach(),
        ],
        1,
    )?;
    Ok(RowBridge {
        tokens,
        mask: out.mask.clone(),
        word_logits: out.word_logits.clone(),
        media_rows: out.media_rows.clone(),
    })
}

/// The bridge-answer loss: the LM head applied to the mean of a row's bridge tokens
/// (`bridge` [B, L, D]) should name that row's reply tokens, as a bag (cross-entropy averaged
/// over the reply tokens of rows that have media; `None` when no row has both). The LM only
/// turns into words what its context holds prominently (a lone object's colour, not which
/// object is on the left: docs/lm-lookup.md), so this asks the bridge to hand over the answer
/// itself. Not part of the release's objective; it trains the bridge alone (the head is frozen).
pub fn bridge_answer_loss(llm: &Llama, bridge: &Tensor, batch: &Batch) -> Result<Option<Tensor>> {
    let has_media = media_rows(batch);
    let labels = batch.labels.to_vec1::<u32>()?;
    let (rows, picked): (Vec<u32>, Vec<u32>) = batch
        .targets
        .iter()
        .zip(&labels)
        .filter(|((r, _), _)| has_media.get(*r).copied().unwrap_or(false))
        .map(|(&(r, _), &l)| (r as u32, l))
        .unzip();
    if rows.is_empty() {
        return Ok(None);
    }
    let n = rows.len();
    let dev = bridge.device();
    let mean = bridge.mean(1)?;
    let mean = mean.index_select(&Tensor::from_vec(rows, n, dev)?, 0)?;
    let logits = llm.logits(&mean.to_dtype(llm.dtype())?)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let labels = Tensor::from_vec(picked, (n, 1), dev)?;
    Ok(Some(logp.gather(&labels, 1)?.neg()?.mean_all()?))
}

/// The bridge-answer loss of a bridge with word tokens (`word_logits` [B, K, V]): the mean of
/// the K word distributions should name the row's reply tokens, as a bag, leaving out each
/// reply's last token (the end of the turn, which no answer word has to carry). Rows are
/// weighted alike, so a one-word answer counts as much as a long description; rows without
/// media are left out (`None` when no row has both). The word tokens are what the LLM reads,
/// so this hands over the answer as words the LLM knows (docs/lm-lookup.md).
pub fn word_answer_loss(word_logits: &Tensor, batch: &Batch) -> Result<Option<Tensor>> {
    word_answer_loss_of(word_logits, batch, &batch.reply_answers()?, false)
}

/// [`word_answer_loss`] over the media rows whose answer (less its last token) has at most as
/// many tokens as there are word tokens: the short answers a word token can name, the rows
/// `crate::train::word_teacher` teaches (`TrainConfig::bridge_answer_short_only`).
pub fn short_word_answer_loss(word_logits: &Tensor, batch: &Batch) -> Result<Option<Tensor>> {
    word_answer_loss_of(word_logits, batch, &batch.reply_answers()?, true)
}

/// [`word_answer_loss`] with `answers` (one per row, as [`Batch::word_answers`] gives them) in
/// place of the replies; with `short_only`, over the rows whose answer fits in the word tokens.
pub fn word_answer_loss_of(
    word_logits: &Tensor,
    batch: &Batch,
    answers: &[Vec<u32>],
    short_only: bool,
) -> Result<Option<Tensor>> {
    let k = word_logits.dim(1)?;
    let media = media_rows(batch);
    let (rows, ids): (Vec<usize>, Vec<u32>) = answers
        .iter()
        .enumerate()
        .filter(|&(r, a)| media.get(r).copied().unwrap_or(false) && (!short_only || a.len() <= k))
        .flat_map(|(r, a)| a.iter().map(move |&t| (r, t)))
        .unzip();
    if ids.is_empty() {
        return Ok(None);
    }
    let n = ids.len();
    let dev = word_logits.device();
    let (b, _, v) = word_logits.dims3()?;
    // log of the mean of the K distributions, in f32 for the softmax.
    let wide = match word_logits.dtype() {
        DType::F64 => DType::F64,
        _ => DType::F32,
    };
    let probs = candle_nn::ops::softmax(&word_logits.to_dtype(wide)?, D::Minus1)?;
    let logp = probs.mean(1)?.clamp(1e-30, 1.0)?.log()?;
    let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
    let logp = logp.index_select(&Tensor::from_vec(idx, n, dev)?, 0)?;
    if let Some(bad) = ids.iter().find(|&&t| t as usize >= v) {
        return Err(Error::Invalid(format!(
            "reply token {bad} is outside the word tokens' vocabulary of {v}"
        )));
    }
    let nll = logp
        .gather(&Tensor::from_vec(ids, (n, 1), dev)?, 1)?
        .squeeze(1)?
        .neg()?;
    let targets: Vec<(usize, usize)> = rows.iter().map(|&r| (r, 0)).collect();
    let w = Tensor::from_vec(example_weights(&targets, b), n, dev)?.to_dtype(wide)?;
    Ok(Some((nll * w)?.sum_all()?))
}

/// Where each row's first reply starts in its text: one after its first target position (the
/// last prompt token, which predicts the reply's first token); the text's end for a row
/// without targets.
fn reply_positions(batch: &Batch) -> Vec<usize> {
    let t = batch.ids.dims().get(1).copied().unwrap_or(0);
    let mut at = vec![t; batch.size];
    for &(row, p) in &batch.targets {
        if let Some(a) = at.get_mut(row) {
            *a = (*a).min(p + 1);
        }
    }
    at
}

/// Which rows of a batch hold an image or a video.
fn media_rows(batch: &Batch) -> Vec<bool> {
    let mut has_media = vec![false; batch.size];
    for rows in [&batch.images, &batch.videos].into_iter().flatten() {
        for &r in &rows.0 {
            if let Some(m) = has_media.get_mut(r) {
                *m = true;
            }
        }
    }
    has_media
}

/// The next-token loss at a batch's targets, from the LLM's final hidden states [B, S, D]
/// whose text starts at position `prefix` (after the bridge tokens, if any), averaged as
/// `reduction` says.
pub fn target_loss(
    llm: &Llama,
    hidden: &Tensor,
    prefix: usize,
    batch: &Batch,
    label_smoothing: f64,
    reduction: LossReduction,
) -> Result<Tensor> {
    let (b, s, d) = hidden.dims3()?;
    let idx: Vec<u32> = batch
        .targets
        .iter()
        .map(|&(row, p)| (row * s + prefix + p) as u32)
        .collect();
    let idx = Tensor::from_vec(idx, batch.targets.len(), hidden.device())?;
    let picked = hidden.reshape((b * s, d))?.index_select(&idx, 0)?;
    let logits = llm.logits(&picked)?;
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?;
    let nll = logp
        .gather(&batch.labels.unsqueeze(1)?, 1)?
        .squeeze(1)?
        .neg()?;
    let per_token = if label_smoothing > 0.0 {
        let smooth = logp.mean(D::Minus1)?.neg()?;
        ((nll * (1.0 - label_smoothing))? + (smooth * label_smoothing)?)?
    } else {
        nll
    };
    match reduction {
        LossReduction::Token => Ok(per_token.mean_all()?),
        LossReduction::Example => {
            let weights = example_weights(&batch.targets, b);
            let n = weights.len();
            let w = Tensor::from_vec(weights, n, hidden.device())?.to_dtype(per_token.dtype())?;
            Ok((per_token * w)?.sum_all()?)
        }
    }
}

/// Per-target weights that average each row's targets, then the rows that have any.
fn example_weights(targets: &[(usize, usize)], rows: usize) -> Vec<f32> {
    let mut per_row = vec![0usize; rows];
    for &(r, _) in targets {
        per_row[r] += 1;
    }
    let with_targets = per_row.iter().filter(|&&n| n > 0).count().max(1);
    targets
        .iter()
        .map(|&(r, _)| 1.0 / (per_row[r] * with_targets) as f32)
        .collect()
}

/// A training run.
pub struct Trainer {
    pub cfg: TrainConfig,
    base: BaseModel,
    pub model: Lynx,
    params: TrainableParams,
    core: RunCore,
    mixture: Mixture,
    builder: BatchBuilder,
    rng: TrainRng,
    drawn: u64,
    bad_media: u64,
    device: Device,
}

impl Trainer {
    /// Opens a run: checks the output folder, loads the model, data and (with `resume`) the
    /// latest checkpoint. Every config, data and file problem is reported here, before training.
    pub fn new(cfg: TrainConfig, resume: bool, device: Device) -> Result<Self> {
        if !matches!(cfg.stage, Stage::Pretrain | Stage::Finetune) {
            return Err(Error::config(
                "stage",
                "this trainer runs the Lynx stages `pretrain` and `finetune`",
            ));
        }
        let (checkpoints, latest) =
            CheckpointManager::open(&cfg.output_dir, cfg.identity()?, cfg.keep_last, resume)?;
        let mut base = base_model(&cfg)?;
        let words = base.cfg.bridge.word_tokens;
        for (key, asked) in [
            ("detach_word_tokens", cfg.detach_word_tokens),
            ("word_token_teacher", cfg.word_token_teacher > 0.0),
            ("word_token_hard", cfg.word_token_hard),
            ("bridge_answer_short_only", cfg.bridge_answer_short_only),
            (
                "word_tokens_from_short_answers",
                cfg.word_tokens_from_short_answers,
            ),
            (
                "word_tokens_from_reply_openings",
                cfg.word_tokens_from_reply_openings,
            ),
        ] {
            if asked && words == 0 {
                return Err(Error::config(
                    key,
                    "the model's bridge has no word tokens (bridge_config.word_tokens)",
                ));
            }
        }
        if cfg.word_token_hard {
            base.cfg.bridge.word_token_hard = true;
            base.yaml.bridge_config.word_token_hard = true;
        }
        let store = Arc::new(WeightStore::new(base_mounts(&cfg, &base)?));
        let params = TrainableParams::new(store, &cfg.train_parts, cfg.seed, &device, DType::F32);
        let model = Lynx::new(&base.cfg, params.var_builder(&device))?;
        let (core, state) = RunCore::with_checkpoints(&cfg, params.vars(), checkpoints, latest)?;
        let mut mixture = cfg.open_data()?;
        let mut rng = TrainRng::new(cfg.seed, 0x7a1e);
        let (mut drawn, mut bad_media) = (0, 0);
        if let Some(st) = state {
            let data: MixtureState = serde_json::from_value(st.data.clone())
                .map_err(|e| Error::Invalid(format!("checkpoint data position: {e}")))?;
            mixture.restore(&data)?;
            rng = TrainRng::from_state(&st.rng, "checkpoint rng")?;
            drawn = st.extra.get("drawn").and_then(|v| v.as_u64()).unwrap_or(0);
            bad_media = st
                .extra
                .get("bad_media")
                .and_then(|v| v.as_u64())
                .unwrap_or(0);
        }
        let builder = BatchBuilder {
            tokenizer: Arc::clone(&base.tokenizer),
            format: PromptFormat {
                template: base.yaml.prompt.clone(),
                lower_text: base.yaml.lower_text,
            },
            mean: base.yaml.image_mean,
            std: base.yaml.image_std,
            num_frames: base.cfg.num_frames,
            max_seq_len: cfg.max_seq_len,
            augment: true,
        };
        Ok(Self {
            cfg,
            base,
            model,
            params,
            core,
            mixture,
            builder,
            rng,
            drawn,
            bad_media,
            device,
        })
    }

    /// Updates done so far.
    pub fn step(&self) -> u64 {
        self.core.step
    }

    /// The trainable parameters, by name.
    pub fn trainable(&self) -> Vec<(String, candle_core::Var)> {
        self.params.vars()
    }

    fn next_example(&mut self, image_res: usize) -> Result<Example> {
        loop {
            let sample: Sample = self.mixture.next_sample()?;
            self.drawn += 1;
            match self.builder.example(&sample, image_res, &mut self.rng) {
                Ok(ex) => return Ok(ex),
                Err(e) => {
                    self.bad_media += 1;
                    let fraction = self.bad_media as f64 / self.drawn as f64;
                    if self.drawn >= 100 && fraction > self.cfg.max_bad_fraction {
                        return Err(Error::Invalid(format!(
                            "{} of {} samples could not be used ({:.1}% > max_bad_fraction {:.1}%); last: {}: {e}",
                            self.bad_media,
                            self.drawn,
                            100.0 * fraction,
                            100.0 * self.cfg.max_bad_fraction,
                            sample.origin
                        )));
                    }
                }
            }
        }
    }

    /// Draws and collates the next micro-batch.
    pub fn next_batch(&mut self, image_res: usize) -> Result<Batch> {
        let examples = (0..self.cfg.batch_size)
            .map(|_| self.next_example(image_res))
            .collect::<Result<Vec<_>>>()?;
        self.builder.collate(examples, &self.device)
    }

    /// One update: `grad_accum` micro-batches, clipping, AdamW. A non-finite loss stops the run
    /// before the update, so the last checkpoint stays the last good state.
    pub fn train_step(&mut self) -> Result<StepStats> {
        let (image_res, batches) = self.next_update_batches()?;
        self.update_on(image_res, &batches)
    }

    /// Draws the `grad_accum` micro-batches of the next update at its image resolution (the
    /// data half of [`Trainer::train_step`]; `lynx bench train` times the halves apart).
    pub fn next_update_batches(&mut self) -> Result<(usize, Vec<Batch>)> {
        let image_res = self.cfg.image_res_at(self.core.step + 1);
        let batches = (0..self.cfg.grad_accum)
            .map(|_| self.next_batch(image_res))
            .collect::<Result<Vec<_>>>()?;
        Ok((image_res, batches))
    }

    /// The compute half of [`Trainer::train_step`]: losses and gradients of `batches`,
    /// clipping, AdamW and the metrics line of the next update.
    pub fn update_on(&mut self, image_res: usize, batches: &[Batch]) -> Result<StepStats> {
        let t = self.core.step + 1;
        let bridge = self.base.cfg.bridge.num_bridge_tokens;
        let mut objective = Objective::of(&self.cfg);
        objective.teacher_seed = derive_seed(self.cfg.seed, &[TEACHER_STREAM, t]);
        let model = &self.model;
        let loss = move |b: &Batch| -> Result<MicroLoss> {
            Ok((
                batch_loss_with(model, b, &objective)?,
                b.text_tokens + b.size * bridge,
            ))
        };
        let (loss, grad_norm, lr, tokens) = self.core.update(batches, &loss)?;
        let stats = StepStats {
            step: t,
            loss,
            lr,
            grad_norm,
            tokens,
            image_res,
        };
        self.core.log(&stats)?;
        Ok(stats)
    }

    /// Writes a checkpoint of the current state.
    pub fn save_checkpoint(&mut self) -> Result<PathBuf> {
        let state = TrainState {
            step: self.core.step,
            data: serde_json::to_value(self.mixture.state())
                .map_err(|e| Error::Invalid(e.to_string()))?,
            rng: self.rng.state(),
            extra: serde_json::json!({"drawn": self.drawn, "bad_media": self.bad_media}),
        };
        self.core.save(state)
    }

    /// Runs to `max_steps`, checkpointing every `save_every` steps and at the end, then writes
    /// the trained model to `output_dir/model`. Returns the last step's statistics.
    pub fn run(&mut self, progress: bool) -> Result<Option<StepStats>> {
        let bar = progress_bar(self.cfg.max_steps, progress, "");
        run_loop(self, &bar)
    }

    /// Writes the current model (frozen parts + trained ones) as a converted directory that
    /// `lynx generate/ask --model DIR` loads.
    pub fn export(&self, dir: &Path) -> Result<()> {
        let trained = self
            .params
            .vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().detach()))
            .collect();
        let mut mounts = vec![Mount::new(
            "trained parameters",
            "",
            "",
            true,
            TensorFile::Map(trained),
        )];
        mounts.extend(base_mounts(&self.cfg, &self.base)?);
        let store = Arc::new(WeightStore::new_dry_run(mounts));
        Lynx::new(&self.base.cfg, store.var_builder(DType::F32, &Device::Cpu))?;
        store.set_dry_run(false);
        let mut yaml = self.base.yaml.clone();
        yaml.image_res = self.cfg.image_res_at(self.cfg.max_steps);
        write_converted(
            &store,
            &self.base.cfg,
            &yaml,
            &self.base.tokenizer,
            dir,
            false,
        )?;
        Ok(())
    }

    /// Per dataset: good and bad records seen so far, plus unusable samples.
    pub fn data_report(&self) -> String {
        let mut out = String::new();
        for (name, st) in self.mixture.stats() {
            out.push_str(&format!("{name}: {} good, {} bad\n", st.good, st.bad));
            for r in &st.first_bad {
                out.push_str(&format!("  {r}\n"));
            }
        }
        out.push_str(&format!(
            "samples skipped at load time (media or length): {} of {}\n",
            self.bad_media, self.drawn
        ));
        out
    }
}

crate::train::core::impl_train_loop!(Trainer);

/// Loads a converted model directory written by a run.
pub fn load_trained(dir: &Path) -> Result<(LynxConfig, LoadedModel)> {
    load::load_converted(dir, DType::F32, &Device::Cpu)
}

#[cfg(test)]
mod tests {
    use super::example_weights;

    #[test]
    fn example_weights_average_rows_then_examples() {
        // Row 0: one target, row 1: none, row 2: three.
        let w = example_weights(&[(0, 4), (2, 1), (2, 2), (2, 3)], 3);
        assert_eq!(w, vec![0.5, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0]);
        assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
}
