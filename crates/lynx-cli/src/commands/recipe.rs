//! `lynx recipe`: `default` rebuilds the default model from nothing (issue 4: world, tokenizer,
//! LLaMA, Vicuna, ViT, Lynx stages 1 and 2, export, report); `report` evaluates a model on a
//! world's held-out scenes and writes the report (docs/default-model.md for the default model).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use lynx::pipeline::{Engine, EngineOptions};
use lynx::recipe::{report, run_recipe, RecipeOptions, RecipePlan};
use lynx::synth::generate_world;

use super::train::single_threaded_ops;

#[derive(Debug, Args)]
pub struct RecipeArgs {
    #[command(subcommand)]
    pub command: RecipeCommand,
}

#[derive(Debug, Subcommand)]
pub enum RecipeCommand {
    /// Rebuild the default model from nothing, deterministically from the seed.
    Default(DefaultArgs),
    /// Evaluate a model on a world's held-out scenes and write the report.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct DefaultArgs {
    /// Output folder (world, configs, every stage, the model, the report).
    #[arg(long, default_value = "runs/recipe-default")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0, conflicts_with = "plan")]
    pub seed: u64,
    /// A changed plan (YAML, the layout of a run's `configs/plan.yaml`) instead of the
    /// default model's: for variants and ablations of the recipe.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Scale every stage's steps (and the world's size when below 1): 0.01 for a smoke run.
    #[arg(long, default_value_t = 1.0)]
    pub steps_scale: f64,
    /// Threads computing micro-batches (the result does not depend on it).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Continue a run in --out (finished steps are skipped).
    #[arg(long)]
    pub resume: bool,
    /// Copy the model to this folder when done (e.g. assets/default-model).
    #[arg(long)]
    pub install: Option<PathBuf>,
    /// Long-form samples in the report.
    #[arg(long, default_value_t = 3)]
    pub samples: usize,
    /// Hide progress.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The model folder (default: the embedded default model).
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// A world made by `lynx data synth` (its test/ split is used). Default: the default
    /// model's world regenerated from --seed (only the held-out split is needed).
    #[arg(long)]
    pub world: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The Markdown report (a JSON copy is written beside it).
    #[arg(long, short = 'o', default_value = "docs/default-model.md")]
    pub output: PathBuf,
    /// Long-form samples.
    #[arg(long, default_value_t = 3)]
    pub samples: usize,
    /// Hide progress.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: RecipeArgs) -> anyhow::Result<()> {
    match args.command {
        RecipeCommand::Default(a) => default(a),
        RecipeCommand::Report(a) => report_cmd(a),
    }
}

fn default(a: DefaultArgs) -> anyhow::Result<()> {
    single_threaded_ops();
    let plan = match &a.plan {
        Some(path) => RecipePlan::load(path)?,
        None => RecipePlan::default_model(a.seed),
    };
    let mut plan = plan.scaled(a.steps_scale);
    plan.workers = a.workers.max(1);
    let opts = RecipeOptions {
        out: a.out.clone(),
        plan,
        resume: a.resume,
        progress: !a.quiet,
        samples: a.samples,
    };
    let s = run_recipe(&opts).context("running the recipe")?;
    for st in &s.steps {
        let note = if st.skipped { " (already done)" } else { "" };
        eprintln!("  {:<10} {:>8.1}s{note}", st.step, st.seconds);
    }
    eprintln!(
        "recipe done in {:.1} min: {:.2}M parameters, {:.1} MB of weights in {}",
        s.total_seconds / 60.0,
        s.parameters as f64 / 1e6,
        s.weight_bytes as f64 / 1e6,
        s.model.display()
    );
    eprintln!("report: {}", a.out.join("report.md").display());
    if let Some(dst) = &a.install {
        std::fs::create_dir_all(dst).with_context(|| format!("creating {}", dst.display()))?;
        for entry in std::fs::read_dir(&s.model)? {
            let entry = entry?;
            std::fs::copy(entry.path(), dst.join(entry.file_name()))
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
        eprintln!("installed to {}", dst.display());
    }
    Ok(())
}

fn report_cmd(a: ReportArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let engine = Engine::load(&EngineOptions {
        model_dir: a.model.clone(),
        ..EngineOptions::default()
    })
    .context("loading the model")?;
    let tmp;
    let world = match &a.world {
        Some(w) => w.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            let mut cfg = RecipePlan::default_model(a.seed).world;
            cfg.count = 0;
            cfg.text_count = Some(0);
            generate_world(&cfg, tmp.path(), false).context("regenerating the test scenes")?;
            tmp.path().to_path_buf()
        }
    };
    let name = match &a.model {
        Some(m) => m.display().to_string(),
        None => "default model (embedded)".to_string(),
    };
    let bar = lynx::train::core::progress_bar(0, !a.quiet, "report ");
    let r = report::evaluate(&engine, &name, &world.join("test"), a.samples, &bar)?;
    let header = format!(
        "# The default model\n\nRegenerate with `lynx recipe report` (model: {name}; held-out \
         scenes of the world with seed {}, never seen in training). Rebuild the model itself \
         with `lynx recipe default --install assets/default-model`.\n",
        a.seed
    );
    let md = report::to_markdown(&r, &header);
    if let Some(dir) = a.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&a.output, md).with_context(|| format!("writing {}", a.output.display()))?;
    let json = a.output.with_extension("json");
    std::fs::write(&json, serde_json::to_string_pretty(&r)?)?;
    for t in &r.tables {
        eprintln!("{}: {:.2}%", t.name, t.overall);
    }
    eprintln!(
        "wrote {} and {} in {:.1}s",
        a.output.display(),
        json.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
