//! `lynx bench train`: warm-up and timed updates of a training config's stage (the Lynx stages
//! of paper 2.3/2.4, or a stage-0 run) through the library trainers, with their checkpoint and
//! metrics files in a temporary folder: step time (data drawing vs forward + backward + AdamW),
//! tokens/s and peak memory. With `fixed_batch` every update reuses the first update's
//! micro-batches, and `save_batch` writes them for tools/bench_reference.py's PyTorch step.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use super::{current_rss_bytes, mib, peak_rss_bytes, stats, stats_opt, Clock, Stats};
use crate::config::{apply_overrides, read_yaml_value};
use crate::train::batch::Batch;
use crate::train::config::Stage;
use crate::train::core::{StepStats, TrainLoop};
use crate::train::lm::LmTrainer;
use crate::train::stages::peek_stage;
use crate::train::trainer::{load_config, Trainer};
use crate::train::vision::VisionTrainer;
use crate::{Error, Result};

/// How many updates to run and on what data.
#[derive(Debug, Clone, Serialize)]
pub struct TrainBenchOptions {
    /// Timed updates.
    pub steps: usize,
    /// Untimed updates before them (allocator and cache warm-up; they do update the model).
    pub warmup: usize,
    /// Lynx stages: every update reuses the first update's micro-batches, so the times are the
    /// model's alone (data drawing is then timed once, in the first update).
    pub fixed_batch: bool,
    /// Lynx stages: write the first update's micro-batches here (safetensors, see
    /// [`save_batches`]).
    pub save_batch: Option<PathBuf>,
}

impl TrainBenchOptions {
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::config("steps", "must be at least 1"));
        }
        Ok(())
    }
}

/// One update, timed. Data/compute splits and token details exist for the Lynx stages only.
#[derive(Debug, Clone, Serialize)]
pub struct TrainStepTimes {
    pub step: u64,
    pub warmup: bool,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub image_res: usize,
    /// The whole update, wall clock.
    pub step_ms: f64,
    /// The same in process CPU time (all threads).
    pub step_cpu_ms: Option<f64>,
    /// Drawing and collating the micro-batches (0 when a fixed batch is reused).
    pub data_ms: Option<f64>,
    /// Forward, backward, clipping, AdamW and the metrics line.
    pub compute_ms: Option<f64>,
    pub compute_cpu_ms: Option<f64>,
    /// The trainer's count: real text tokens plus bridge tokens, over the micro-batches.
    pub tokens: usize,
    /// Tokens carrying the loss (reply tokens).
    pub supervised_tokens: Option<usize>,
    /// Longest LLM input of the micro-batches: bridge tokens + padded text.
    pub llm_seq_len: Option<usize>,
    pub images: Option<usize>,
    pub videos: Option<usize>,
}

/// Everything `lynx bench train` reports.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub implementation: String,
    /// The config file.
    pub config: String,
    pub stage: String,
    pub device: String,
    /// Threads of candle's CPU kernels.
    pub threads: usize,
    pub options: TrainBenchOptions,
    pub trainable_parameters: usize,
    /// The training config as loaded (its output_dir was not written; a temporary folder was).
    pub train_config: serde_json::Value,
    /// Over the timed updates:
    pub step_ms: Stats,
    pub step_cpu_ms: Option<Stats>,
    pub data_ms: Option<Stats>,
    pub compute_ms: Option<Stats>,
    pub compute_cpu_ms: Option<Stats>,
    /// `tokens` per second of step time.
    pub tokens_per_s: Stats,
    pub supervised_tokens_per_s: Option<Stats>,
    /// VmHWM after the run, MiB.
    pub peak_rss_mib: Option<f64>,
    /// VmRSS once the trainer was built, before the first update, MiB.
    pub model_rss_mib: Option<f64>,
    /// Every update, warm-up included.
    pub steps: Vec<TrainStepTimes>,
}

enum Run {
    Lynx(Box<Trainer>),
    Other(Box<dyn TrainLoop>),
}

/// Writes micro-batches as one safetensors file, tensors named `{k}.ids`, `{k}.text_mask`,
/// `{k}.labels`, `{k}.targets` ([N, 2]: row, text position), and where present
/// `{k}.image_rows`, `{k}.images` [Ni, 3, R, R], `{k}.video_rows`, `{k}.videos`
/// [Nv, F, 3, R, R] for micro-batch `k`. Integers are i64, pixels f32.
pub fn save_batches(path: &Path, batches: &[Batch]) -> Result<()> {
    let cpu = Device::Cpu;
    let ints = |t: &Tensor| -> Result<Tensor> { Ok(t.to_device(&cpu)?.to_dtype(DType::I64)?) };
    let rows = |r: &[usize]| -> Result<Tensor> {
        let v: Vec<i64> = r.iter().map(|&x| x as i64).collect();
        Ok(Tensor::from_vec(v, r.len(), &cpu)?)
    };
    let mut map = HashMap::new();
    for (k, b) in batches.iter().enumerate() {
        map.insert(format!("{k}.ids"), ints(&b.ids)?);
        map.insert(format!("{k}.text_mask"), ints(&b.text_mask)?);
        map.insert(format!("{k}.labels"), ints(&b.labels)?);
        let flat: Vec<i64> = b
            .targets
            .iter()
            .flat_map(|&(r, p)| [r as i64, p as i64])
            .collect();
        let targets = Tensor::from_vec(flat, (b.targets.len(), 2), &cpu)?;
        map.insert(format!("{k}.targets"), targets);
        for (name, media) in [("image", &b.images), ("video", &b.videos)] {
            if let Some((r, px)) = media {
                map.insert(format!("{k}.{name}_rows"), rows(r)?);
                let px = px.to_device(&cpu)?.to_dtype(DType::F32)?;
                map.insert(format!("{k}.{name}s"), px);
            }
        }
    }
    candle_core::safetensors::save(&map, path)
        .map_err(|e| Error::Invalid(format!("{}: writing the batch: {e}", path.display())))
}

fn count(vars: &[(String, candle_core::Var)]) -> usize {
    vars.iter().map(|(_, v)| v.elem_count()).sum()
}

/// The stage's trainer and its trainable parameter count.
fn open_run(
    stage: Stage,
    cfg: crate::train::config::TrainConfig,
    dev: &Device,
) -> Result<(Run, usize)> {
    Ok(match stage {
        Stage::Pretrain | Stage::Finetune => {
            let t = Trainer::new(cfg, false, dev.clone())?;
            let n = count(&t.trainable());
            (Run::Lynx(Box::new(t)), n)
        }
        Stage::Lm | Stage::LmInstruct => {
            let t = LmTrainer::new(cfg, false, dev.clone())?;
            let n = count(&t.trainable());
            (Run::Other(Box::new(t)), n)
        }
        Stage::Vision => {
            let t = VisionTrainer::new(cfg, false, dev.clone())?;
            let n = count(&t.trainable());
            (Run::Other(Box::new(t)), n)
        }
        Stage::Tokenizer => {
            return Err(Error::config(
                "stage",
                "`tokenizer` makes no gradient updates, so there is nothing to time",
            ))
        }
    })
}

/// State kept across the updates of a Lynx stage.
struct LynxState {
    fixed: Option<(usize, Vec<Batch>)>,
    first: bool,
}

fn lynx_step(
    t: &mut Trainer,
    st: &mut LynxState,
    opts: &TrainBenchOptions,
    warmup: bool,
) -> Result<TrainStepTimes> {
    let (drawn, data_ms, data_cpu) = match st.fixed {
        Some(_) => (None, 0.0, Some(0.0)),
        None => {
            let data = Clock::start();
            let drawn = t.next_update_batches()?;
            (Some(drawn), data.wall_ms(), data.cpu_ms())
        }
    };
    if st.first {
        st.first = false;
        if let (Some((_, b)), Some(path)) = (&drawn, &opts.save_batch) {
            save_batches(path, b)?;
        }
        if opts.fixed_batch {
            st.fixed = drawn;
            return lynx_update(t, st.fixed.as_ref(), warmup, data_ms, data_cpu);
        }
    }
    let batches = st.fixed.as_ref().or(drawn.as_ref());
    lynx_update(t, batches, warmup, data_ms, data_cpu)
}

fn lynx_update(
    t: &mut Trainer,
    batches: Option<&(usize, Vec<Batch>)>,
    warmup: bool,
    data_ms: f64,
    data_cpu: Option<f64>,
) -> Result<TrainStepTimes> {
    let (image_res, batches) =
        batches.ok_or_else(|| Error::Invalid("bench: no batch was drawn".into()))?;
    let compute = Clock::start();
    let s = t.update_on(*image_res, batches)?;
    let (compute_ms, compute_cpu) = (compute.wall_ms(), compute.cpu_ms());
    let bridge = t.model.config().bridge.num_bridge_tokens;
    let sum = |f: &dyn Fn(&Batch) -> usize| batches.iter().map(f).sum::<usize>();
    let mut times = step_times(&s, warmup, data_ms + compute_ms, None);
    times.step_cpu_ms = data_cpu.zip(compute_cpu).map(|(a, b)| a + b);
    times.data_ms = Some(data_ms);
    times.compute_ms = Some(compute_ms);
    times.compute_cpu_ms = compute_cpu;
    times.supervised_tokens = Some(sum(&|b| b.targets.len()));
    times.llm_seq_len = batches
        .iter()
        .map(|b| b.ids.dim(1).map(|t| bridge + t))
        .collect::<candle_core::Result<Vec<_>>>()?
        .into_iter()
        .max();
    times.images = Some(sum(&|b| b.images.as_ref().map_or(0, |(r, _)| r.len())));
    times.videos = Some(sum(&|b| b.videos.as_ref().map_or(0, |(r, _)| r.len())));
    Ok(times)
}

fn step_times(s: &StepStats, warmup: bool, ms: f64, cpu_ms: Option<f64>) -> TrainStepTimes {
    TrainStepTimes {
        step: s.step,
        warmup,
        loss: s.loss,
        lr: s.lr,
        grad_norm: s.grad_norm,
        image_res: s.image_res,
        step_ms: ms,
        step_cpu_ms: cpu_ms,
        data_ms: None,
        compute_ms: None,
        compute_cpu_ms: None,
        tokens: s.tokens,
        supervised_tokens: None,
        llm_seq_len: None,
        images: None,
        videos: None,
    }
}

/// Runs `opts.warmup + opts.steps` updates of the stage that the training config at `path`
/// (with `--set` `overrides`) describes, on `device`, from its base model (never resuming), and
/// reports their times. Checkpoints and metrics go to a temporary folder that is removed
/// afterwards: the config's `output_dir` is not touched. `progress` gets the updates done.
pub fn run_train_bench(
    path: &Path,
    overrides: &[String],
    opts: &TrainBenchOptions,
    device: &Device,
    progress: &mut dyn FnMut(usize),
) -> Result<TrainReport> {
    opts.validate()?;
    let mut value = read_yaml_value(path)?;
    apply_overrides(&mut value, overrides)?;
    let stage = peek_stage(&value)?;
    if (opts.fixed_batch || opts.save_batch.is_some()) && !stage.is_lynx() {
        return Err(Error::config(
            "stage",
            "fixed and saved batches exist for the Lynx stages (pretrain, finetune) only",
        ));
    }
    let mut cfg = load_config(path, overrides)?;
    let train_config = serde_json::to_value(&cfg).map_err(|e| Error::Invalid(e.to_string()))?;
    let tmp = tempfile::Builder::new()
        .prefix("lynx-bench-train-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    cfg.output_dir = tmp.path().join("run");
    let (mut run, trainable) = open_run(stage, cfg, device)?;
    let model_rss_mib = current_rss_bytes().map(mib);
    let mut st = LynxState {
        fixed: None,
        first: true,
    };
    let mut steps = Vec::with_capacity(opts.warmup + opts.steps);
    for i in 0..opts.warmup + opts.steps {
        let warmup = i < opts.warmup;
        let times = match &mut run {
            Run::Lynx(t) => lynx_step(t, &mut st, opts, warmup)?,
            Run::Other(t) => {
                let clock = Clock::start();
                let s = t.train_step()?;
                step_times(&s, warmup, clock.wall_ms(), clock.cpu_ms())
            }
        };
        device.synchronize()?;
        steps.push(times);
        progress(i + 1);
    }
    drop(run);
    let timed: Vec<&TrainStepTimes> = steps.iter().filter(|s| !s.warmup).collect();
    let rate = |n: usize, ms: f64| n as f64 / (ms / 1e3).max(1e-12);
    Ok(TrainReport {
        implementation: format!("lynx-rs {} (candle 0.11)", env!("CARGO_PKG_VERSION")),
        config: path.display().to_string(),
        stage: format!("{stage:?}").to_lowercase(),
        device: if device.is_cpu() {
            "cpu".into()
        } else {
            format!("{device:?}")
        },
        threads: candle_core::utils::get_num_threads(),
        options: opts.clone(),
        trainable_parameters: trainable,
        train_config,
        step_ms: stats(timed.iter().map(|s| s.step_ms), "step time")?,
        step_cpu_ms: stats_opt(timed.iter().map(|s| s.step_cpu_ms)),
        data_ms: stats_opt(timed.iter().map(|s| s.data_ms)),
        compute_ms: stats_opt(timed.iter().map(|s| s.compute_ms)),
        compute_cpu_ms: stats_opt(timed.iter().map(|s| s.compute_cpu_ms)),
        tokens_per_s: stats(timed.iter().map(|s| rate(s.tokens, s.step_ms)), "tokens/s")?,
        supervised_tokens_per_s: stats_opt(
            timed
                .iter()
                .map(|s| s.supervised_tokens.map(|n| rate(n, s.step_ms))),
        ),
        peak_rss_mib: peak_rss_bytes().map(mib),
        model_rss_mib,
        steps,
    })
}

impl TrainReport {
    /// A plain-text table: mean, then median (min–max), over the timed updates.
    pub fn render(&self) -> String {
        let o = &self.options;
        let c = &self.train_config;
        let num = |k: &str| c.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        let timed: Vec<&TrainStepTimes> = self.steps.iter().filter(|s| !s.warmup).collect();
        let n = timed.len().max(1) as f64;
        let mean = |f: &dyn Fn(&TrainStepTimes) -> Option<usize>| -> Option<f64> {
            let v: Option<Vec<usize>> = timed.iter().map(|s| f(s)).collect();
            v.map(|v| v.iter().sum::<usize>() as f64 / n)
        };
        let mut s = format!(
            "{} | {} | stage {} | {} | threads {}\n\
             batch {} × {} micro-batch(es) | image {}px | {} timed updates (+{} warm-up){} | \
             {:.3}M trainable parameters\n",
            self.implementation,
            self.config,
            self.stage,
            self.device,
            self.threads,
            num("batch_size"),
            num("grad_accum"),
            num("image_res"),
            o.steps,
            o.warmup,
            if o.fixed_batch {
                " on one fixed batch"
            } else {
                ""
            },
            self.trainable_parameters as f64 / 1e6,
        );
        s.push_str(&format!("  {:<34} {:>10}  median (min–max)\n", "", "mean"));
        let mut row = |name: &str, st: Option<&Stats>, d: usize| {
            if let Some(st) = st {
                s.push_str(&format!(
                    "  {name:<34} {:>10.d$}  {}\n",
                    st.mean,
                    st.display(d),
                    d = d
                ));
            }
        };
        row("step ms", Some(&self.step_ms), 1);
        row("  (CPU time, all threads)", self.step_cpu_ms.as_ref(), 1);
        row("data ms (draw + collate)", self.data_ms.as_ref(), 1);
        row(
            "compute ms (fwd + bwd + AdamW)",
            self.compute_ms.as_ref(),
            1,
        );
        row("  (CPU time, all threads)", self.compute_cpu_ms.as_ref(), 1);
        row("tokens/s (text + bridge)", Some(&self.tokens_per_s), 0);
        row(
            "supervised tokens/s",
            self.supervised_tokens_per_s.as_ref(),
            0,
        );
        let tokens = mean(&|t| Some(t.tokens)).unwrap_or(0.0);
        s.push_str(&format!("  {:<34} {tokens:>10.1}\n", "tokens per update"));
        if let Some(v) = mean(&|t| t.supervised_tokens) {
            s.push_str(&format!(
                "  {:<34} {v:>10.1}\n",
                "supervised tokens per update"
            ));
        }
        if let Some(v) = mean(&|t| t.llm_seq_len) {
            s.push_str(&format!("  {:<34} {v:>10.1}\n", "LLM input length"));
        }
        if let (Some(peak), Some(model)) = (self.peak_rss_mib, self.model_rss_mib) {
            s.push_str(&format!(
                "  {:<34} {peak:>10.0}  (after loading: {model:.0} MiB)\n",
                "peak RSS MiB"
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_steps_are_refused() {
        let opts = TrainBenchOptions {
            steps: 0,
            warmup: 1,
            fixed_batch: false,
            save_batch: None,
        };
        let err = opts.validate().unwrap_err().to_string();
        assert!(err.contains("steps"), "{err}");
    }
}
