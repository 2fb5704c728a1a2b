//! `lynx forward`: the prompt's token ids as fed to the model and the K largest next-token
//! logits after it, as JSON (for parity checks against the reference).

use std::path::PathBuf;

use anyhow::bail;
use lynx::pipeline::{Media, Request};

use super::model_args::ModelArgs;

#[derive(Debug, clap::Args)]
pub struct ForwardArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The image the question is about.
    #[arg(long, conflicts_with = "video")]
    pub image: Option<PathBuf>,
    /// The video the question is about (JSON list of base64 frames, frame folder, GIF, WebP, ...).
    #[arg(long)]
    pub video: Option<PathBuf>,
    /// The question.
    #[arg(long, short = 'q')]
    pub question: String,
    /// How many logits to print.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    /// Print JSON (the only format; accepted for compatibility with scripts).
    #[arg(long)]
    pub json: bool,
}

pub fn media_arg(
    image: &Option<PathBuf>,
    video: &Option<PathBuf>,
) -> anyhow::Result<Option<Media>> {
    for p in [image, video].into_iter().flatten() {
        if !p.exists() {
            bail!("{}: no such file or folder", p.display());
        }
    }
    Ok(match (image, video) {
        (Some(p), _) => Some(Media::Image(p.clone())),
        (_, Some(p)) => Some(Media::Video(p.clone())),
        _ => None,
    })
}

pub fn run(args: ForwardArgs) -> anyhow::Result<()> {
    let media = media_arg(&args.image, &args.video)?;
    let engine = args.model.load()?;
    let req = Request {
        media,
        history: Vec::new(),
        question: args.question.clone(),
    };
    let (input_ids, logits) = engine.next_token_logits(&req, &mut engine.rng())?;
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    let top: Vec<(usize, f32)> = order
        .into_iter()
        .take(args.top)
        .map(|i| (i, logits[i]))
        .collect();
    println!(
        "{}",
        serde_json::json!({"input_ids": input_ids, "top": top})
    );
    Ok(())
}
