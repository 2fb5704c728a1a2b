//! `lynx data ...`: data tools. `lynx data synth` generates the synthetic visual world
//! (images, videos, training JSONL, prompt templates and an Open-VQA style test split).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use lynx::synth::{generate_world, SynthConfig};

#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    pub command: DataCommand,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Generate the synthetic world: scenes, media, training data and a held-out test split.
    Synth(SynthArgs),
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output directory (created if missing; existing files with the same names are replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// Random seed; the same seed gives byte-identical output.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of training scenes.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// Fraction of scenes that are videos.
    #[arg(long, default_value_t = 0.2)]
    pub video_fraction: f64,
    /// Image side in pixels (text needs about 96 or more to be legible).
    #[arg(long, default_value_t = 112)]
    pub size: u32,
    /// Frames per video.
    #[arg(long, default_value_t = 8)]
    pub frames: usize,
    /// Number of held-out test scenes.
    #[arg(long, default_value_t = 200)]
    pub test_count: usize,
    /// Number of text-only instruction records (default: half of --count, at least 100).
    #[arg(long)]
    pub text_count: Option<usize>,
    /// Number of reading records: a scene's description, then a question about it (default:
    /// as many as the text-only instructions).
    #[arg(long)]
    pub reading_count: Option<usize>,
    /// Training questions per Open-VQA class per scene.
    #[arg(long, default_value_t = 2)]
    pub qa_per_class: usize,
    /// Share of training questions given a surface paraphrase (synonyms, requests, lead-ins,
    /// closings; the default model uses 0.5); held-out phrasings are never produced.
    #[arg(long, default_value_t = 0.0)]
    pub paraphrase: f64,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: DataArgs) -> anyhow::Result<()> {
    match args.command {
        DataCommand::Synth(a) => synth(a),
    }
}

fn synth(a: SynthArgs) -> anyhow::Result<()> {
    let cfg = SynthConfig {
        seed: a.seed,
        count: a.count,
        video_fraction: a.video_fraction,
        size: a.size,
        frames: a.frames,
        test_count: a.test_count,
        text_count: a.text_count,
        reading_count: a.reading_count,
        qa_per_class: a.qa_per_class,
        paraphrase: a.paraphrase,
    };
    let start = Instant::now();
    let summary = generate_world(&cfg, &a.out, !a.quiet)
        .with_context(|| format!("generating the synthetic world in {}", a.out.display()))?;
    let secs = start.elapsed().as_secs_f64();
    let scenes = cfg.count + cfg.test_count;
    eprintln!(
        "wrote {} images, {} videos (+ test: {} images, {} videos) to {} in {:.1}s ({:.0} scenes/min), {:.1} MiB of media",
        summary.images,
        summary.videos,
        summary.test_images,
        summary.test_videos,
        a.out.display(),
        secs,
        scenes as f64 / secs.max(1e-9) * 60.0,
        summary.media_bytes as f64 / (1024.0 * 1024.0)
    );
    for (file, n) in &summary.records {
        eprintln!("  train/{file}: {n} records");
    }
    for (class, n) in &summary.test_questions {
        eprintln!("  test {class}: {n} questions");
    }
    Ok(())
}
