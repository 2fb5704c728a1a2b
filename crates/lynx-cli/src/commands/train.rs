//! `lynx train`: one training stage: Lynx's pretraining or instruction finetuning (paper 2.3,
//! 2.4), or a stage-0 run making a frozen part (tokenizer, language model, its instruction-tuned
//! copy, vision encoder); the config's `stage` key decides.

use std::path::PathBuf;

use anyhow::Context;
use lynx::pipeline::parse_device;
use lynx::train::stages::{run_config_file, wants_workers, RunOptions};

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// The training config (YAML). `stage:` is pretrain, finetune, tokenizer, lm, lm_instruct
    /// or vision.
    #[arg(long, short = 'c')]
    pub config: PathBuf,
    /// Override a config key: `--set lr=1e-4 --set datasets[0].weight=2`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Continue from the latest checkpoint in output_dir.
    #[arg(long)]
    pub resume: bool,
    /// cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// With several worker threads, candle's own per-op threads only fight them for the cores.
pub fn single_threaded_ops() {
    for var in ["CANDLE_NUM_THREADS", "RAYON_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            // Set before any candle op runs (the thread pools read it once).
            std::env::set_var(var, "1");
        }
    }
}

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    if wants_workers(&args.config, &args.sets)? {
        single_threaded_ops();
    }
    let opts = RunOptions {
        resume: args.resume,
        device: parse_device(args.device.as_deref())?,
        progress: !args.quiet,
        label: String::new(),
    };
    let report = run_config_file(&args.config, &args.sets, &opts)
        .with_context(|| format!("training with {}", args.config.display()))?;
    eprint!("{}", report.notes);
    if report.parameters > 0 {
        eprintln!("trained {:.2}M parameters", report.parameters as f64 / 1e6);
    }
    if let Some(s) = report.last {
        eprintln!("step {}: loss {:.4}", s.step, s.loss);
    }
    eprintln!("written to {}", report.output.display());
    Ok(())
}
