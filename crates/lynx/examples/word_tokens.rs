//! What the word tokens of a bridge with `bridge_config.word_tokens` say, next to the gold
//! answers of an Open-VQA annotation file (image questions only): per class, how often the
//! most likely word of the mean word distribution (and any of the top 3) starts the gold
//! answer. This reads the bridge alone, before the LLM (docs/lm-lookup.md section 5).
//! Run: `cargo run --release -p lynx --example word_tokens MODEL_DIR ANNOTATIONS.jsonl
//! [ROWS.jsonl]`; the third path gets each question's top 3 words and each word token's own
//! word (`index`, `class`, `top3`, `tokens`), to set beside a model's predictions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor, D};
use lynx::model::bridge::resampler::BridgePrompt;
use lynx::pipeline::{Engine, EngineOptions, Media, Request};
use lynx::{Error, Result};

/// The mean word distribution of the bridge's word tokens for one image question ([V]), and
/// each word token's most likely word (what a hard word token hands the LLM).
fn word_probs(engine: &Engine, image: PathBuf, question: &str) -> Result<(Vec<f32>, Vec<u32>)> {
    let req = Request {
        media: Some(Media::Image(image)),
        history: vec![],
        question: question.into(),
    };
    let ids = engine.prompt_ids(&req)?;
    let (t, dev) = (ids.len(), engine.model.device());
    let ids = Tensor::from_vec(ids, (1, t), dev)?;
    let mask = Tensor::ones((1, t), DType::U32, dev)?;
    let embeds = engine.model.llm().embed(&ids)?;
    let media = req
        .media
        .as_ref()
        .ok_or_else(|| Error::Invalid("no image".into()))?;
    let px = engine
        .media_pixels(media, &mut engine.rng())?
        .unsqueeze(0)?;
    let out = engine.model.row_bridge_outputs(
        1,
        Some((&[0], &px)),
        None,
        Some(BridgePrompt {
            embeds: &embeds,
            mask: &mask,
        }),
    )?;
    let logits = out.word_logits.ok_or_else(|| {
        Error::config(
            "bridge_config.word_tokens",
            "this model's bridge has no word tokens",
        )
    })?;
    let probs = candle_nn::ops::softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?;
    let each = probs.argmax(D::Minus1)?.get(0)?.to_vec1()?;
    Ok((probs.mean(1)?.get(0)?.to_vec1()?, each))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (model, annotations, rows_path) = match args.as_slice() {
        [_, m, a] => (m, a, None),
        [_, m, a, r] => (m, a, Some(Path::new(r))),
        _ => {
            return Err(Error::Invalid(
                "usage: word_tokens MODEL_DIR ANNOTATIONS.jsonl [ROWS.jsonl]".into(),
            ))
        }
    };
    let mut rows = String::new();
    let engine = Engine::load(&EngineOptions {
        model_dir: Some(model.into()),
        ..Default::default()
    })?;
    let path = Path::new(annotations);
    let dir = path.parent().unwrap_or(Path::new("."));
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    // class -> (questions, top-1 hits, top-3 hits)
    let mut tally: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |m: &str| Error::parse(path.display().to_string(), Some(i + 1), m.to_string());
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
        let Some(image) = v["image"].as_str() else {
            continue;
        };
        let question = v["question"].as_str().ok_or_else(|| bad("no `question`"))?;
        let gold: Vec<String> = v["answer"]
            .as_array()
            .ok_or_else(|| bad("`answer` is not a list"))?
            .iter()
            .filter_map(|a| a.as_str().map(str::to_lowercase))
            .collect();
        let (probs, each) = word_probs(&engine, dir.join(image), question)?;
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        let words = order
            .iter()
            .take(3)
            .map(|&w| {
                Ok(engine
                    .tokenizer
                    .decode(&[w as u32], true)?
                    .trim()
                    .to_lowercase())
            })
            .collect::<Result<Vec<_>>>()?;
        // A word names the answer when it starts the answer's first word and is at least half
        // of it (sub-word pieces of a longer word do not count).
        let names = |w: &String| {
            !w.is_empty()
                && gold.iter().any(|g| {
                    g.split_whitespace()
                        .next()
                        .is_some_and(|f| f.starts_with(w.as_str()) && 2 * w.len() >= f.len())
                })
        };
        let class = v["class"].as_str().unwrap_or("?").to_string();
        let each = each
            .iter()
            .map(|&w| Ok(engine.tokenizer.decode(&[w], true)?.trim().to_lowercase()))
            .collect::<Result<Vec<_>>>()?;
        let row =
            serde_json::json!({"index": v["index"], "class": class, "top3": words, "tokens": each});
        rows.push_str(&format!("{row}\n"));
        let row = tally.entry(class).or_default();
        row.0 += 1;
        row.1 += usize::from(words.first().is_some_and(names));
        row.2 += usize::from(words.iter().any(names));
    }
    if let Some(r) = rows_path {
        std::fs::write(r, rows).map_err(|e| Error::io(r, e))?;
    }
    println!("| Class | Questions | Top word names the answer | In the top 3 |");
    println!("|---|---:|---:|---:|");
    for (class, (n, top1, top3)) in &tally {
        println!("| {class} | {n} | {top1} | {top3} |");
    }
    Ok(())
}
