//! `lynx ask`: answers one question about an image or a video and prints the answer.

use lynx::pipeline::Request;

use super::model_args::{MediaArgs, ModelArgs};

#[derive(Debug, clap::Args)]
pub struct AskArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub media: MediaArgs,
    /// The question.
    pub question: String,
}

pub fn run(args: AskArgs) -> anyhow::Result<()> {
    let media = args.media.media()?;
    let engine = args.model.load()?;
    let req = Request {
        media,
        history: Vec::new(),
        question: args.question.clone(),
    };
    let full = engine.prompt_ids_untruncated(&req)?;
    if full > engine.yaml.max_input_tokens {
        eprintln!(
            "warning: the prompt has {full} tokens; only the last {} are read (max_input_tokens)",
            engine.yaml.max_input_tokens
        );
    }
    let answers = engine.answer(&[req], &engine.generation_config(), &mut engine.rng())?;
    for a in answers {
        println!("{}", a.text);
    }
    Ok(())
}
