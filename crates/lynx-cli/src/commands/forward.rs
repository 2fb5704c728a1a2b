//! `lynx forward`: the prompt's token ids as fed to the model and the K largest next-token
//! logits after it, as JSON (for parity checks against the reference).

use lynx::pipeline::Request;

use super::model_args::{MediaArgs, ModelArgs};

#[derive(Debug, clap::Args)]
pub struct ForwardArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub media: MediaArgs,
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

pub fn run(args: ForwardArgs) -> anyhow::Result<()> {
    let media = args.media.media()?;
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
