//! `lynx train` stages `lm` and `lm_instruct`: the language model Lynx is built on, made here
//! the way LLaMA and Vicuna were (issue 4): next-token pretraining of a LLaMA-architecture
//! decoder on text (`lm`: every token of a document is a target), then an instruction-tuned
//! copy trained on instructions in the model prompt `User: ...\nBot:` with the loss on the
//! replies (`lm_instruct`). All LLM parameters train; there is no vision input (records with
//! media are used for their text). The result is a Hugging Face style LLaMA folder
//! (`config.json`, `model.safetensors`, `tokenizer.json`) that `llm_path` / `model.llm` read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use crate::config::LynxYaml;
use crate::data::conversation::{caption_ids, training_ids, PromptFormat, Tokenized};
use crate::data::datasets::{Sample, SampleKind};
use crate::data::mixture::{Mixture, MixtureState};
use crate::data::tokenizer::{LynxTokenizer, TokenizerSource};
use crate::model::llm::llama::{AdapterConfig, Llama, LlamaConfig};
use crate::model::load;
use crate::model::weights::{Mount, WeightStore};
use crate::train::batch::{Batch, BatchBuilder, Example};
use crate::train::checkpoint::TrainState;
use crate::train::config::{Stage, TrainConfig, TrainPart};
use crate::train::core::{progress_bar, run_loop, MicroLoss, RunCore, StepStats};
use crate::train::params::TrainableParams;
use crate::train::rng::TrainRng;
use crate::train::trainer::target_loss;
use crate::{Error, Result};

/// The prefix of the LLM's parameters inside Lynx (and while training it here).
const LLM: &str = "LLM.";

/// A pretraining document: the texts of a sample one after the other (an instruction and its
/// reply on one line), `[BOS] text [EOS]`, every token after BOS a target.
pub fn document_ids(tok: &LynxTokenizer, sample: &Sample, max_len: usize) -> Result<Tokenized> {
    let text = sample
        .turns
        .iter()
        .map(|t| {
            let p = t.prompt.trim();
            let r = t.response.trim();
            if p.is_empty() {
                r.to_string()
            } else {
                format!("{p} {r}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut ids = vec![tok.bos_id()];
    ids.extend(tok.encode(&text)?);
    ids.push(tok.eos_id());
    ids.truncate(max_len);
    let mut is_target = vec![true; ids.len()];
    is_target[0] = false;
    Ok(Tokenized { ids, is_target })
}

fn carry_from_json(v: &serde_json::Value) -> Result<Option<Tokenized>> {
    if v.is_null() {
        return Ok(None);
    }
    let bad = || Error::Invalid("checkpoint: bad packed-row carry".to_string());
    let ids: Vec<u32> = serde_json::from_value(v["carry_ids"].clone()).map_err(|_| bad())?;
    let is_target: Vec<bool> =
        serde_json::from_value(v["carry_targets"].clone()).map_err(|_| bad())?;
    if ids.len() != is_target.len() {
        return Err(bad());
    }
    Ok(Some(Tokenized { ids, is_target }))
}

/// Reads a tokenizer from a folder holding tokenizer.json/.model, or from the file itself.
fn open_tokenizer(path: &Path) -> Result<LynxTokenizer> {
    if path.is_dir() {
        LynxTokenizer::from_dir(path, TokenizerSource::Auto)
    } else {
        LynxTokenizer::from_file(path)
    }
}

/// Writes an HF-style LLaMA folder: `config.json` (the architecture plus the fields HF
/// expects), `model.safetensors` (HF names, without the `LLM.` prefix) and the tokenizer.
pub fn write_llama_folder(
    dir: &Path,
    cfg: &LlamaConfig,
    tokenizer: &LynxTokenizer,
    tensors: &HashMap<String, Tensor>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut json = serde_json::to_value(cfg).map_err(|e| Error::Invalid(e.to_string()))?;
    if let Some(m) = json.as_object_mut() {
        m.insert(
            "architectures".into(),
            serde_json::json!(["LlamaForCausalLM"]),
        );
        m.insert("model_type".into(), "llama".into());
        m.insert("hidden_act".into(), "silu".into());
        m.insert("bos_token_id".into(), tokenizer.bos_id().into());
        m.insert("eos_token_id".into(), tokenizer.eos_id().into());
        m.insert("torch_dtype".into(), "float32".into());
    }
    let text = serde_json::to_string_pretty(&json).map_err(|e| Error::Invalid(e.to_string()))?;
    crate::train::atomic::write_atomic(&dir.join("config.json"), text.as_bytes())?;
    let stripped: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(n, t)| (n.strip_prefix(LLM).unwrap_or(n).to_string(), t.clone()))
        .collect();
    let path = dir.join(load::CONVERTED_WEIGHTS);
    let tmp = dir.join("model.safetensors.tmp");
    candle_core::safetensors::save(&stripped, &tmp)?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    tokenizer.save_to_dir(dir)
}

/// A language-model training run (stage `lm` or `lm_instruct`).
pub struct LmTrainer {
    pub cfg: TrainConfig,
    pub llm_config: LlamaConfig,
    pub model: Llama,
    tokenizer: Arc<LynxTokenizer>,
    params: TrainableParams,
    core: RunCore,
    mixture: Mixture,
    builder: BatchBuilder,
    /// The unplaced rest of the last example (see `next_row`).
    carry: Option<Tokenized>,
    device: Device,
}

impl LmTrainer {
    /// Opens a run: the output folder, the tokenizer and model (fresh or from `model.llm`),
    /// the data, and with `resume` the latest checkpoint.
    pub fn new(cfg: TrainConfig, resume: bool, device: Device) -> Result<Self> {
        if !matches!(cfg.stage, Stage::Lm | Stage::LmInstruct) {
            return Err(Error::config("stage", "expected `lm` or `lm_instruct`"));
        }
        let (tokenizer, llm_config, mounts) = match (&cfg.model.llm, &cfg.llm_config) {
            (Some(dir), _) => {
                let tok = LynxTokenizer::from_dir(dir, TokenizerSource::Auto)?;
                let lc = load::read_llama_config(dir)?;
                let m = Mount::new(
                    dir.display().to_string(),
                    LLM,
                    "",
                    true,
                    load::hf_weight_files(dir)?,
                );
                (tok, lc, vec![m])
            }
            (None, Some(lc)) => {
                let path = cfg
                    .model
                    .tokenizer
                    .as_ref()
                    .ok_or_else(|| Error::config("model.tokenizer", "missing"))?;
                let tok = open_tokenizer(path)?;
                let mut lc = lc.clone();
                lc.vocab_size = tok.vocab_size();
                (tok, lc, Vec::new())
            }
            (None, None) => return Err(Error::config("model.llm", "missing")),
        };
        if llm_config.vocab_size != tokenizer.vocab_size() {
            return Err(Error::config(
                "model.llm",
                format!(
                    "config.json has vocab_size {} but the tokenizer has {} tokens",
                    llm_config.vocab_size,
                    tokenizer.vocab_size()
                ),
            ));
        }
        if llm_config.hidden_size % llm_config.num_attention_heads != 0 {
            return Err(Error::config(
                "llm_config.num_attention_heads",
                "must divide hidden_size",
            ));
        }
        let store = Arc::new(WeightStore::new(mounts));
        let params = TrainableParams::new(
            Arc::clone(&store),
            &[TrainPart::Llm],
            cfg.seed,
            &device,
            DType::F32,
        );
        let no_adapters = AdapterConfig {
            use_adapter: false,
            adapter_freq: 1,
            bottleneck: None,
        };
        let model = Llama::new(
            &llm_config,
            no_adapters,
            llm_config.vocab_size,
            params.var_builder(&device).pp("LLM"),
        )?;
        store.check_unused()?;
        let (core, state) = RunCore::open(&cfg, params.vars(), resume)?;
        let mut mixture = cfg.open_data()?;
        let mut carry = None;
        if let Some(st) = state {
            let data: MixtureState = serde_json::from_value(st.data)
                .map_err(|e| Error::Invalid(format!("checkpoint data position: {e}")))?;
            mixture.restore(&data)?;
            carry = carry_from_json(&st.extra)?;
        }
        let tokenizer = Arc::new(tokenizer);
        // The instruction prompt of `lm_instruct`: LYNX.yaml's `prompt` and `lower_text` from
        // `model.config` when given, else the release's.
        let yaml = match &cfg.model.config {
            Some(c) => LynxYaml::load(c, &[])?,
            None => LynxYaml::default(),
        };
        let builder = BatchBuilder {
            tokenizer: Arc::clone(&tokenizer),
            format: PromptFormat {
                template: yaml.prompt.clone(),
                lower_text: yaml.lower_text,
            },
            mean: [0.0; 3],
            std: [1.0; 3],
            num_frames: 1,
            max_seq_len: cfg.max_seq_len,
            augment: true,
        };
        Ok(Self {
            cfg,
            llm_config,
            model,
            tokenizer,
            params,
            core,
            mixture,
            builder,
            carry,
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

    fn tokens(&self, sample: &Sample) -> Result<Tokenized> {
        let max = self.cfg.max_seq_len;
        match self.cfg.stage {
            Stage::Lm => document_ids(&self.tokenizer, sample, max),
            _ if sample.kind == SampleKind::Pair
                && sample.turns.iter().all(|t| t.prompt.trim().is_empty()) =>
            {
                let caption = sample.turns.first().map(|t| t.response.as_str());
                caption_ids(&self.tokenizer, caption.unwrap_or(""), max)
            }
            _ => training_ids(&self.tokenizer, &self.builder.format, &sample.turns, max),
        }
    }

    /// The next example with something to learn.
    fn next_tokens(&mut self) -> Result<Tokenized> {
        loop {
            let sample = self.mixture.next_sample()?;
            let tokens = self.tokens(&sample)?;
            if tokens.is_target.iter().skip(1).any(|&t| t) {
                return Ok(tokens);
            }
        }
    }

    /// One row of `max_seq_len` tokens packed with whole examples, as LLaMA's pretraining packs
    /// documents: pretraining documents run on into the next row when they do not fit; an
    /// instruction example that does not fit starts the next row instead (a reply is never
    /// separated from its instruction), and the row is padded.
    fn next_row(&mut self) -> Result<Tokenized> {
        let max = self.cfg.max_seq_len;
        let split = self.cfg.stage == Stage::Lm;
        let mut row = Tokenized {
            ids: Vec::with_capacity(max),
            is_target: Vec::with_capacity(max),
        };
        while row.ids.len() < max {
            let mut next = match self.carry.take() {
                Some(c) => c,
                None => self.next_tokens()?,
            };
            let room = max - row.ids.len();
            if next.ids.len() > room {
                if !split && !row.ids.is_empty() {
                    self.carry = Some(next);
                    break;
                }
                let rest = Tokenized {
                    ids: next.ids.split_off(room),
                    is_target: next.is_target.split_off(room),
                };
                if split {
                    self.carry = Some(rest);
                }
            }
            row.ids.extend(next.ids);
            row.is_target.extend(next.is_target);
        }
        Ok(row)
    }

    /// Draws and collates the next micro-batch (text only, packed rows).
    pub fn next_batch(&mut self) -> Result<Batch> {
        let examples = (0..self.cfg.batch_size)
            .map(|_| {
                Ok(Example {
                    media: None,
                    tokens: self.next_row()?,
                    short_answer: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.builder.collate(examples, &self.device)
    }

    /// One update over `grad_accum` micro-batches.
    pub fn train_step(&mut self) -> Result<StepStats> {
        let t = self.core.step + 1;
        let batches = (0..self.cfg.grad_accum)
            .map(|_| self.next_batch())
            .collect::<Result<Vec<_>>>()?;
        let (model, smoothing) = (&self.model, self.cfg.label_smoothing);
        let reduction = self.cfg.loss_reduction;
        let last = (self.llm_config.vocab_size - 1) as u32;
        let loss = move |b: &Batch| -> Result<MicroLoss> {
            // Right padding uses [PAD] (= vocab size), which this LLM has no row for; padded
            // positions are masked and never targets, so any id in range stands in for it.
            let ids = b.ids.clamp(0u32, last)?;
            let embeds = model.embed(&ids)?;
            let hidden = model.forward_hidden(&embeds, &b.text_mask, None)?;
            Ok((
                target_loss(model, &hidden, 0, b, smoothing, reduction)?,
                b.text_tokens,
            ))
        };
        let (loss, grad_norm, lr, tokens) = self.core.update(&batches, &loss)?;
        let stats = StepStats {
            step: t,
            loss,
            lr,
            grad_norm,
            tokens,
            image_res: 0,
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
            rng: TrainRng::new(self.cfg.seed, 0).state(),
            extra: match &self.carry {
                Some(c) => serde_json::json!({"carry_ids": c.ids, "carry_targets": c.is_target}),
                None => serde_json::Value::Null,
            },
        };
        self.core.save(state)
    }

    /// Writes the current model as an HF LLaMA folder.
    pub fn export(&self, dir: &Path) -> Result<()> {
        let tensors = self
            .params
            .vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().detach()))
            .collect();
        write_llama_folder(dir, &self.llm_config, &self.tokenizer, &tensors)
    }

    /// Runs to `max_steps` and writes `output_dir/model`.
    pub fn run(&mut self, progress: bool) -> Result<Option<StepStats>> {
        let bar = progress_bar(self.cfg.max_steps, progress, "");
        run_loop(self, &bar)
    }

    /// Per dataset: good and bad records seen so far.
    pub fn data_report(&self) -> String {
        self.mixture
            .stats()
            .into_iter()
            .map(|(name, st)| format!("{name}: {} good, {} bad\n", st.good, st.bad))
            .collect()
    }
}

crate::train::core::impl_train_loop!(LmTrainer);
