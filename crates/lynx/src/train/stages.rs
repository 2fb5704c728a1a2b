//! `lynx train --config FILE`: reads the config's `stage` and runs the matching trainer: the
//! Lynx stages (`pretrain`, `finetune`: paper 2.3/2.4) or the stage-0 runs that make the
//! frozen parts (`tokenizer`, `lm`, `lm_instruct`, `vision`: issue 4).

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::config::{apply_overrides, read_yaml_value};
use crate::train::config::{Stage, TrainConfig};
use crate::train::core::{progress_bar, run_loop, StepStats, TrainLoop};
use crate::train::lm::LmTrainer;
use crate::train::tokenizer_train::{self, TokenizerTrainConfig};
use crate::train::trainer::{load_config, Trainer};
use crate::train::vision::VisionTrainer;
use crate::{Error, Result};

/// What a stage run did.
#[derive(Debug, Clone)]
pub struct StageReport {
    pub stage: Stage,
    /// The last update (None for the tokenizer, or when nothing was left to do).
    pub last: Option<StepStats>,
    /// Trainable parameters (0 for the tokenizer).
    pub parameters: usize,
    /// Where the stage's result is (a model folder, or the tokenizer's folder).
    pub output: PathBuf,
    /// Human-readable notes (data report, tokenizer statistics).
    pub notes: String,
}

/// The `stage` key of a config file after overrides.
pub fn peek_stage(value: &serde_yaml::Value) -> Result<Stage> {
    let stage = value
        .get("stage")
        .ok_or_else(|| Error::config("stage", "missing"))?;
    serde_yaml::from_value(stage.clone()).map_err(|e| Error::config("stage", e.to_string()))
}

/// Options of a stage run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub resume: bool,
    pub device: Device,
    pub progress: bool,
    /// A prefix for the progress bar (the recipe names its steps).
    pub label: String,
}

fn run_trainer(
    t: &mut dyn TrainLoop,
    cfg: &TrainConfig,
    params: usize,
    opts: &RunOptions,
) -> Result<(Option<StepStats>, usize, PathBuf)> {
    let bar = progress_bar(cfg.max_steps, opts.progress, &opts.label);
    let last = run_loop(t, &bar)?;
    Ok((last, params, cfg.output_dir.join("model")))
}

fn count(vars: &[(String, candle_core::Var)]) -> usize {
    vars.iter().map(|(_, v)| v.elem_count()).sum()
}

/// Runs the stage a config file describes (`overrides` are `--set key=value`).
pub fn run_config_file(
    path: &Path,
    overrides: &[String],
    opts: &RunOptions,
) -> Result<StageReport> {
    let mut value = read_yaml_value(path)?;
    apply_overrides(&mut value, overrides)?;
    let stage = peek_stage(&value)?;
    if stage == Stage::Tokenizer {
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let cfg = TokenizerTrainConfig::from_value(value, &base)?;
        let s = tokenizer_train::run(&cfg)?;
        return Ok(StageReport {
            stage,
            last: None,
            parameters: 0,
            output: cfg.output_dir.clone(),
            notes: format!(
                "{} pieces learned from {} texts ({} tokens)\n",
                s.vocab_size, s.texts, s.tokens
            ),
        });
    }
    let cfg = load_config(path, overrides)?;
    let device = opts.device.clone();
    let (last, parameters, output, notes) = match stage {
        Stage::Pretrain | Stage::Finetune => {
            let mut t = Trainer::new(cfg.clone(), opts.resume, device)?;
            let n = count(&t.trainable());
            let r = run_trainer(&mut t, &cfg, n, opts);
            let notes = t.data_report();
            let (last, n, out) = r?;
            (last, n, out, notes)
        }
        Stage::Lm | Stage::LmInstruct => {
            let mut t = LmTrainer::new(cfg.clone(), opts.resume, device)?;
            let n = count(&t.trainable());
            let r = run_trainer(&mut t, &cfg, n, opts);
            let notes = t.data_report();
            let (last, n, out) = r?;
            (last, n, out, notes)
        }
        Stage::Vision => {
            let mut t = VisionTrainer::new(cfg.clone(), opts.resume, device)?;
            let n = count(&t.trainable());
            let (last, n, out) = run_trainer(&mut t, &cfg, n, opts)?;
            let mut notes = String::new();
            if let Some(scenes) = &cfg.probe_scenes {
                let probe = t.probe(scenes)?;
                notes.push_str(&format!("probe accuracy on {}:\n", scenes.display()));
                for (name, acc) in &probe {
                    notes.push_str(&format!("  {name}: {:.1}%\n", 100.0 * acc));
                }
                let json: serde_json::Map<String, serde_json::Value> =
                    probe.into_iter().map(|(k, v)| (k, v.into())).collect();
                let text = serde_json::to_string_pretty(&json)
                    .map_err(|e| Error::Invalid(e.to_string()))?;
                crate::train::atomic::write_atomic(&out.join("probe.json"), text.as_bytes())?;
            }
            (last, n, out, notes)
        }
        Stage::Tokenizer => unreachable_tokenizer()?,
    };
    Ok(StageReport {
        stage,
        last,
        parameters,
        output,
        notes,
    })
}

fn unreachable_tokenizer() -> Result<(Option<StepStats>, usize, PathBuf, String)> {
    Err(Error::config(
        "stage",
        "tokenizer configs are handled above",
    ))
}

/// Whether a stage config asks for several worker threads (then candle should run each op on
/// one thread; see `train::core`).
pub fn wants_workers(path: &Path, overrides: &[String]) -> Result<bool> {
    let mut value = read_yaml_value(path)?;
    apply_overrides(&mut value, overrides)?;
    Ok(value
        .get("workers")
        .and_then(|w| w.as_u64())
        .is_some_and(|w| w > 1))
}
