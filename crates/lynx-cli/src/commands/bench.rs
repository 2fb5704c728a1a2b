//! `lynx bench infer`: vision-encoder ms/image, bridge ms, prefill and decode tokens/s,
//! end-to-end ms per answer and peak memory, for a preset with random weights or a real model;
//! `lynx bench train`: step time, tokens/s and peak memory of a training config's updates
//! (benchmarks, not tests; BENCHMARKS.md records runs beside tools/bench_reference.py).

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use lynx::bench::{
    random_model, run_infer, run_train_bench, InferOptions, Preset, TrainBenchOptions,
};
use lynx::pipeline::{parse_device, parse_dtype};
use lynx::train::stages::wants_workers;

use super::model_args::ModelArgs;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Time inference: vision encoder, bridge, prefill, greedy/beam decoding, end to end.
    Infer(InferArgs),
    /// Time training updates of a `lynx train` config (nothing is written to its output_dir).
    Train(TrainArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PresetArg {
    Tiny,
    Small,
    Base,
}

impl From<PresetArg> for Preset {
    fn from(p: PresetArg) -> Self {
        match p {
            PresetArg::Tiny => Preset::Tiny,
            PresetArg::Small => Preset::Small,
            PresetArg::Base => Preset::Base,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct InferArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Random weights in memory at a preset size instead of --config/--model (see BENCHMARKS.md).
    #[arg(long, value_enum, conflicts_with_all = ["config", "model"])]
    pub preset: Option<PresetArg>,
    /// Images and prompts per batch.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Input resolution (default: the config's image_res, or the preset's).
    #[arg(long)]
    pub image_res: Option<usize>,
    /// Text tokens per prompt (random ids), read after the bridge tokens.
    #[arg(long, default_value_t = 32)]
    pub prompt_tokens: usize,
    /// New tokens per answer (EOS is disabled so every answer has this many).
    #[arg(long, default_value_t = 32)]
    pub new_tokens: usize,
    /// Beam width for an additional beam-search run (1: greedy only).
    #[arg(long, default_value_t = 1)]
    pub num_beams: usize,
    /// Timed iterations (the report gives median, min and max).
    #[arg(long, default_value_t = 5)]
    pub iters: usize,
    /// Untimed warm-up iterations.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// CPU threads of candle's kernels (sets RAYON_NUM_THREADS; default: that variable or all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Seed of the random weights' pixels and prompt ids.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also write the full report (every iteration's times) as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// The training config (YAML), as for `lynx train`.
    #[arg(long, short = 'c')]
    pub config: PathBuf,
    /// Override a config key: `--set batch_size=8`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Timed updates (the report gives mean, median, min and max).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed updates before them.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Reuse the first update's micro-batches for every update: times the model alone
    /// (pretrain/finetune configs).
    #[arg(long)]
    pub fixed_batch: bool,
    /// Write the first update's micro-batches to this safetensors file, for
    /// `tools/bench_reference.py train` (pretrain/finetune configs).
    #[arg(long)]
    pub save_batch: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
    /// CPU threads of candle's kernels (sets RAYON_NUM_THREADS; default: that variable or all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also write the full report (every update's times) as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Infer(a) => infer(a),
        BenchCommand::Train(a) => train(a),
    }
}

/// Sets RAYON_NUM_THREADS; before any kernel runs, since candle's matmul and rayon's pool read
/// it once.
fn set_threads(threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(n) = threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    Ok(())
}

fn progress_bar(total: usize, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{msg}} [{{bar:30}}] {{pos}}/{{len}} {unit} ({{elapsed}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message("benchmarking");
    bar
}

/// Writes `--json` output (a pretty-printed report) where asked.
fn write_json(
    path: &Option<PathBuf>,
    text: impl FnOnce() -> serde_json::Result<String>,
) -> anyhow::Result<()> {
    if let Some(path) = path {
        let text = text()?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn train(args: TrainArgs) -> anyhow::Result<()> {
    set_threads(args.threads)?;
    // As `lynx train`: several micro-batch workers run candle's ops on one thread each.
    if wants_workers(&args.config, &args.sets)? {
        super::train::single_threaded_ops();
    }
    let opts = TrainBenchOptions {
        steps: args.steps,
        warmup: args.warmup,
        fixed_batch: args.fixed_batch,
        save_batch: args.save_batch.clone(),
    };
    let device = parse_device(args.device.as_deref())?;
    let bar = progress_bar(opts.steps + opts.warmup, "updates");
    let report = run_train_bench(&args.config, &args.sets, &opts, &device, &mut |i| {
        bar.set_position(i as u64)
    })
    .with_context(|| format!("benchmarking training with {}", args.config.display()))?;
    bar.finish_and_clear();
    print!("{}", report.render());
    write_json(&args.json, || serde_json::to_string_pretty(&report))
}

fn infer(args: InferArgs) -> anyhow::Result<()> {
    set_threads(args.threads)?;
    let (model, name, parameters, default_res) = match args.preset {
        Some(p) => {
            let preset = Preset::from(p);
            let device = parse_device(args.model.device.as_deref())?;
            let dtype = parse_dtype(args.model.dtype.as_deref(), &device)?;
            let res = args.image_res.unwrap_or(preset.image_res());
            eprintln!("building the {} preset with random weights", preset.name());
            let built = random_model(&preset.config(), res, dtype, &device)
                .context("building the random model")?;
            (
                built.model,
                preset.name().to_string(),
                built.parameters,
                res,
            )
        }
        None => {
            if args.model.config.is_none() && args.model.model.is_none() {
                bail!("give --preset tiny|small|base, --config C or --model DIR");
            }
            let engine = args.model.load()?;
            let name = args
                .model
                .model
                .as_ref()
                .or(args.model.config.as_ref())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let res = engine.yaml.image_res;
            (engine.model, name, Default::default(), res)
        }
    };
    let opts = InferOptions {
        batch: args.batch,
        image_res: args.image_res.unwrap_or(default_res),
        prompt_tokens: args.prompt_tokens,
        new_tokens: args.new_tokens,
        num_beams: args.num_beams,
        iters: args.iters,
        warmup: args.warmup,
        seed: args.seed,
    };
    let bar = progress_bar(opts.iters + opts.warmup, "iterations");
    let report = run_infer(&model, &name, parameters, &opts, &mut |i| {
        bar.set_position(i as u64)
    })?;
    bar.finish_and_clear();
    print!("{}", report.render());
    write_json(&args.json, || serde_json::to_string_pretty(&report))
}
