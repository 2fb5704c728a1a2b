//! `lynx train`: one training stage (paper 2.3 pretraining or 2.4 instruction finetuning).

use std::path::PathBuf;

use anyhow::Context;
use lynx::pipeline::parse_device;
use lynx::train::trainer::{load_config, Trainer};

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// The training config (YAML).
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

pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let cfg = load_config(&args.config, &args.sets)
        .with_context(|| format!("reading {}", args.config.display()))?;
    let device = parse_device(args.device.as_deref())?;
    let mut trainer = Trainer::new(cfg, args.resume, device)?;
    let vars = trainer.trainable();
    let count: usize = vars.iter().map(|(_, v)| v.elem_count()).sum();
    eprintln!(
        "training {} tensors ({:.2}M parameters) from step {} to {}",
        vars.len(),
        count as f64 / 1e6,
        trainer.step(),
        trainer.cfg.max_steps
    );
    let result = trainer.run(!args.quiet);
    eprint!("{}", trainer.data_report());
    let last = result?;
    if let Some(s) = last {
        eprintln!("step {}: loss {:.4}", s.step, s.loss);
    }
    eprintln!(
        "model written to {}",
        trainer.cfg.output_dir.join("model").display()
    );
    Ok(())
}
