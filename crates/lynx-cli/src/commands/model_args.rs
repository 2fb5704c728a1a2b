//! Options shared by the commands that load a model: `--config`, `--model`, `--set`, device.

use std::path::PathBuf;

use anyhow::Context;
use lynx::pipeline::{Engine, EngineOptions, Media};

/// Which model to load and how. With neither `--config` nor `--model`, the default model
/// embedded in the binary answers (a small Lynx trained on the generated world; see
/// docs/default-model.md).
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
    /// YAML config with the official LYNX.yaml keys plus llm_path, vision_encoder_path, checkpoint.
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// A converted model directory (from `lynx convert` or `lynx train`). Default (with no
    /// --config either): the embedded default model.
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// Override a config key: `--set num_beams=1 --set data.num_frames=5`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
    /// f32, f16 or bf16 (default: f32 on CPU, bf16 on GPU).
    #[arg(long)]
    pub dtype: Option<String>,
}

impl ModelArgs {
    pub fn options(&self) -> EngineOptions {
        EngineOptions {
            config: self.config.clone(),
            model_dir: self.model.clone(),
            sets: self.sets.clone(),
            device: self.device.clone(),
            dtype: self.dtype.clone(),
        }
    }

    /// Loads the engine and warns about tensors that nothing read.
    pub fn load(&self) -> anyhow::Result<Engine> {
        let engine = Engine::load(&self.options()).context("loading the model")?;
        for (file, names) in &engine.unused {
            eprintln!(
                "warning: {file}: {} tensor(s) not used by the model, e.g. {}",
                names.len(),
                names.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
            );
        }
        if let Some(w) = engine.context_warning() {
            eprintln!("warning: {w}");
        }
        Ok(engine)
    }
}

/// The image or video a question is about.
#[derive(Debug, Clone, clap::Args)]
pub struct MediaArgs {
    /// The image the question is about.
    #[arg(long, conflicts_with = "video")]
    pub image: Option<PathBuf>,
    /// The video the question is about (JSON list of base64 frames, frame folder, GIF, WebP, ...).
    #[arg(long)]
    pub video: Option<PathBuf>,
}

impl MediaArgs {
    /// The medium, checked to exist before any model is loaded.
    pub fn media(&self) -> anyhow::Result<Option<Media>> {
        for p in [&self.image, &self.video].into_iter().flatten() {
            if !p.exists() {
                anyhow::bail!("{}: no such file or folder", p.display());
            }
        }
        Ok(match (&self.image, &self.video) {
            (Some(p), _) => Some(Media::Image(p.clone())),
            (_, Some(p)) => Some(Media::Video(p.clone())),
            _ => None,
        })
    }
}
