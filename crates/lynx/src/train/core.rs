//! What every `lynx train` stage shares (paper 2.3/2.4 and the stage-0 parts of issue 4):
//! AdamW over the stage's variables with the warmup + cosine schedule, gradient accumulation
//! (micro-batches optionally computed on several threads), clipping, metrics, atomic
//! checkpoints with exact resume, and the loop with its progress bar.
//!
//! Micro-batches are always drawn in order on the calling thread and their gradients summed in
//! micro-batch order, so `workers` changes the speed, never the numbers. With `workers > 1`,
//! candle itself should run single-threaded (`CANDLE_NUM_THREADS=1 RAYON_NUM_THREADS=1`, which
//! `lynx train` and `lynx recipe` set when they are unset): one thread per micro-batch keeps
//! every core busy without candle's spinning barrier between them.

use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Tensor, Var};

use crate::train::checkpoint::{CheckpointManager, TrainState};
use crate::train::config::TrainConfig;
use crate::train::metrics::{MetricsLog, MetricsRecord};
use crate::train::optim::{AdamW, Gradients};
use crate::train::schedule::LrSchedule;
use crate::{Error, Result};

/// What one update did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    pub step: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens: usize,
    pub image_res: usize,
}

/// The optimisation state of a run.
pub struct RunCore {
    pub optim: AdamW,
    pub checkpoints: CheckpointManager,
    pub metrics: MetricsLog,
    /// Updates done so far.
    pub step: u64,
    schedule: LrSchedule,
    clip: Option<f64>,
    workers: usize,
}

/// A micro-batch's loss (a scalar that tracks the trainable variables) and its token count.
pub type MicroLoss = (Tensor, usize);

impl RunCore {
    /// Opens the output folder of `cfg` (refusing another run's folder), creates the
    /// optimiser over `vars` and, with `resume`, restores the latest checkpoint's parameters
    /// and optimiser state; its saved state (data position, RNG) is returned for the caller.
    pub fn open(
        cfg: &TrainConfig,
        vars: Vec<(String, Var)>,
        resume: bool,
    ) -> Result<(Self, Option<TrainState>)> {
        let (checkpoints, latest) =
            CheckpointManager::open(&cfg.output_dir, cfg.identity()?, cfg.keep_last, resume)?;
        Self::with_checkpoints(cfg, vars, checkpoints, latest)
    }

    /// As [`RunCore::open`] with the output folder already opened (so a caller can report a
    /// bad folder before loading anything).
    pub fn with_checkpoints(
        cfg: &TrainConfig,
        vars: Vec<(String, Var)>,
        checkpoints: CheckpointManager,
        latest: Option<crate::train::checkpoint::Checkpoint>,
    ) -> Result<(Self, Option<TrainState>)> {
        if vars.is_empty() {
            return Err(Error::config(
                "train_parts",
                "no parameter of the model belongs to these parts",
            ));
        }
        let mut optim = AdamW::new(vars.clone(), cfg.adamw())?;
        optim.scale_lr(|name| cfg.lr_scale_of(name))?;
        let (step, state, metrics) = match latest {
            Some(ck) => {
                ck.restore_params(&vars)?;
                ck.restore_optimizer(&mut optim)?;
                let st = ck.state.clone();
                (
                    st.step,
                    Some(st.clone()),
                    MetricsLog::resume(&cfg.output_dir, st.step)?,
                )
            }
            None => (0, None, MetricsLog::create(&cfg.output_dir)?),
        };
        Ok((
            Self {
                optim,
                checkpoints,
                metrics,
                step,
                schedule: cfg.lr_schedule(),
                clip: cfg.clip_grad_norm,
                workers: cfg.workers.max(1),
            },
            state,
        ))
    }

    /// The learning rate of the next update.
    pub fn next_lr(&self) -> f64 {
        self.schedule.lr(self.step + 1)
    }

    /// One update from already drawn micro-batches: each one's loss and gradients (on up to
    /// `workers` threads), summed in order and averaged, clipped, then AdamW. A non-finite loss
    /// or gradient norm stops the run before the update, so the last checkpoint stays good.
    /// Returns (mean loss, gradient norm before clipping, learning rate, tokens).
    pub fn update<B: Sync>(
        &mut self,
        batches: &[B],
        loss: &(dyn Fn(&B) -> Result<MicroLoss> + Sync),
    ) -> Result<(f64, f64, f64, usize)> {
        let t = self.step + 1;
        let lr = self.schedule.lr(t);
        let per_batch = micro_gradients(&self.optim, batches, loss, self.workers)?;
        let mut grads = Gradients::new();
        let (mut loss_sum, mut tokens) = (0.0, 0);
        for (value, n, g) in per_batch {
            if !value.is_finite() {
                return Err(Error::Invalid(format!(
                    "the loss is {value} at step {t}; stopping (the last checkpoint is intact)"
                )));
            }
            loss_sum += value;
            tokens += n;
            for (name, grad) in g {
                grads.add(&name, &grad)?;
            }
        }
        if batches.len() > 1 {
            grads.scale(1.0 / batches.len() as f64)?;
        }
        let grad_norm = match self.clip {
            Some(max) => grads.clip_global_norm(max)?,
            None => grads.global_norm()?,
        } as f64;
        if !grad_norm.is_finite() {
            return Err(Error::Invalid(format!(
                "the gradient norm is {grad_norm} at step {t}; stopping (the last checkpoint is intact)"
            )));
        }
        self.optim.step(&grads, lr)?;
        self.step = t;
        Ok((
            loss_sum / batches.len().max(1) as f64,
            grad_norm,
            lr,
            tokens,
        ))
    }

    /// Appends the metrics line of an update.
    pub fn log(&mut self, stats: &StepStats) -> Result<()> {
        self.metrics.log(
            &MetricsRecord::new(stats.step, stats.loss, stats.lr)
                .with("grad_norm", stats.grad_norm)
                .with("tokens", stats.tokens as u64)
                .with("image_res", stats.image_res as u64),
        )
    }

    /// Writes a checkpoint of the variables, the optimiser and `state` (step filled in).
    pub fn save(&mut self, mut state: TrainState) -> Result<PathBuf> {
        self.metrics.sync()?;
        state.step = self.step;
        self.checkpoints
            .save(&self.optim.params(), &self.optim, &state)
    }
}

/// One micro-batch's loss, tokens and gradients by name.
type MicroGrads = (f64, usize, Vec<(String, Tensor)>);

/// Each micro-batch's [`MicroGrads`], in micro-batch order. With more than one worker,
/// micro-batch `i` runs on thread `i % workers`.
type PerBatch = Vec<MicroGrads>;

fn micro_gradients<B: Sync>(
    optim: &AdamW,
    batches: &[B],
    loss: &(dyn Fn(&B) -> Result<MicroLoss> + Sync),
    workers: usize,
) -> Result<PerBatch> {
    let params = optim.params();
    let one = |b: &B| -> Result<MicroGrads> {
        let (l, n) = loss(b)?;
        let value = l.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let store = l.backward()?;
        let g = params
            .iter()
            .filter_map(|(name, v)| store.get(v.as_tensor()).map(|g| (name.clone(), g.clone())))
            .collect();
        Ok((value, n, g))
    };
    let workers = workers.min(batches.len()).max(1);
    if workers == 1 {
        return batches.iter().map(one).collect();
    }
    let mut slots: Vec<Option<Result<MicroGrads>>> = (0..batches.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let one = &one;
                s.spawn(move || {
                    batches
                        .iter()
                        .enumerate()
                        .skip(w)
                        .step_by(workers)
                        .map(|(i, b)| (i, one(b)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(results) => {
                    for (i, r) in results {
                        slots[i] = Some(r);
                    }
                }
                Err(_) => {
                    return Err(Error::Invalid(
                        "a training worker thread panicked".to_string(),
                    ))
                }
            }
        }
        Ok(())
    })?;
    slots
        .into_iter()
        .map(|s| s.unwrap_or_else(|| Err(Error::Invalid("a micro-batch was not computed".into()))))
        .collect()
}

/// A training stage driven by [`run_loop`].
pub trait TrainLoop {
    /// Updates done so far.
    fn done(&self) -> u64;
    /// The last update.
    fn max_steps(&self) -> u64;
    /// Checkpoint every this many updates.
    fn save_every(&self) -> u64;
    fn train_step(&mut self) -> Result<StepStats>;
    fn save_checkpoint(&mut self) -> Result<PathBuf>;
    /// Writes the stage's output once all updates are done.
    fn finish(&mut self) -> Result<()>;
}

/// Implements [`TrainLoop`] for a trainer with a `core: RunCore`, a `cfg` holding `max_steps`,
/// `save_every` and `output_dir`, and inherent `train_step`, `save_checkpoint` and `export`
/// methods: every stage's trainer has that shape and finishes by exporting to `output_dir/model`.
macro_rules! impl_train_loop {
    ($trainer:ty) => {
        impl $crate::train::core::TrainLoop for $trainer {
            fn done(&self) -> u64 {
                self.core.step
            }
            fn max_steps(&self) -> u64 {
                self.cfg.max_steps
            }
            fn save_every(&self) -> u64 {
                self.cfg.save_every
            }
            fn train_step(&mut self) -> $crate::Result<$crate::train::core::StepStats> {
                <$trainer>::train_step(self)
            }
            fn save_checkpoint(&mut self) -> $crate::Result<std::path::PathBuf> {
                <$trainer>::save_checkpoint(self)
            }
            fn finish(&mut self) -> $crate::Result<()> {
                self.export(&self.cfg.output_dir.join("model"))
            }
        }
    };
}
pub(crate) use impl_train_loop;

/// A progress bar on stderr (hidden when `show` is false).
pub fn progress_bar(total: u64, show: bool, prefix: &str) -> indicatif::ProgressBar {
    let bar = if show {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix}{bar:30} {pos}/{len} [{elapsed}<{eta}] {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_prefix(prefix.to_string());
    bar
}

/// Runs `stage` to its last update, checkpointing every `save_every` updates and at the end,
/// then calls `finish`. Returns the last update's statistics (None when nothing was left).
pub fn run_loop(
    stage: &mut dyn TrainLoop,
    bar: &indicatif::ProgressBar,
) -> Result<Option<StepStats>> {
    let total = stage.max_steps();
    bar.set_length(total);
    bar.set_position(stage.done());
    let mut last = None;
    while stage.done() < total {
        let start = Instant::now();
        let s = stage.train_step()?;
        let rate = s.tokens as f64 / start.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!(
            "loss {:.4} lr {:.2e} {:.0} tok/s",
            s.loss, s.lr, rate
        ));
        bar.inc(1);
        if s.step % stage.save_every() == 0 || s.step == total {
            stage.save_checkpoint()?;
        }
        last = Some(s);
    }
    bar.finish();
    stage.finish()?;
    Ok(last)
}
