//! `lynx generate`: the release's generate.py. Answers every annotation of the test files and
//! writes `{"index", "text_output", "token_ids"}` lines as they are produced.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use lynx::pipeline::{resolve_media, Engine, Media, Request};
use serde_json::Value;

use super::model_args::ModelArgs;

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Annotation file (JSONL); default: the config's test_files.
    #[arg(long)]
    pub input: Vec<PathBuf>,
    /// Where predictions go (JSONL).
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// Skip annotations whose index is already in the output file.
    #[arg(long)]
    pub resume: bool,
}

/// One annotation to answer.
struct Item {
    index: Value,
    request: Request,
}

/// A line that cannot be answered: where, and why.
struct BadLine {
    place: String,
    reason: String,
}

fn read_items(engine: &Engine, file: &Path, bad: &mut Vec<BadLine>) -> anyhow::Result<Vec<Item>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let key = engine.yaml.vision_prompt_dict.clone();
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let place = format!("{}:{}", file.display(), n + 1);
        if line.trim().is_empty() {
            continue;
        }
        let mut fail = |reason: String| {
            bad.push(BadLine {
                place: place.clone(),
                reason,
            })
        };
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                fail(format!("malformed JSON: {e}"));
                continue;
            }
        };
        let Some(index) = v.get("index").cloned() else {
            fail("no \"index\" field".into());
            continue;
        };
        let Some(question) = v.get("question").and_then(Value::as_str) else {
            fail("no \"question\" string".into());
            continue;
        };
        let Some(media) = v.get(&key).and_then(Value::as_str) else {
            fail(format!("no \"{key}\" path (vision_prompt_dict)"));
            continue;
        };
        let path = resolve_media(&engine.yaml, media);
        if !path.exists() {
            fail(format!("media file {} does not exist", path.display()));
            continue;
        }
        let media = if key == "video" {
            Media::Video(path)
        } else {
            Media::Image(path)
        };
        items.push(Item {
            index,
            request: Request {
                media: Some(media),
                history: Vec::new(),
                question: question.to_string(),
            },
        });
    }
    Ok(items)
}

/// Indices already written; a line cut short by a crash is dropped from the file.
fn done_indices(output: &Path) -> anyhow::Result<HashSet<String>> {
    let mut done = HashSet::new();
    if !output.exists() {
        return Ok(done);
    }
    let text =
        std::fs::read_to_string(output).with_context(|| format!("reading {}", output.display()))?;
    let mut keep = String::new();
    for line in text.lines() {
        if let Ok(v) = serde_json::from_str::<Value>(line) {
            if let Some(i) = v.get("index") {
                done.insert(i.to_string());
                keep.push_str(line);
                keep.push('\n');
            }
        }
    }
    if keep.len() != text.len() {
        std::fs::write(output, keep).with_context(|| format!("rewriting {}", output.display()))?;
    }
    Ok(done)
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let engine = args.model.load()?;
    let files: Vec<PathBuf> = if args.input.is_empty() {
        engine
            .yaml
            .test_files
            .iter()
            .map(|f| engine.yaml.resolve(f))
            .collect()
    } else {
        args.input.clone()
    };
    if files.is_empty() {
        bail!("no annotations: give --input or set test_files in the config");
    }
    let mut bad = Vec::new();
    let mut items = Vec::new();
    for f in &files {
        items.extend(read_items(&engine, f, &mut bad)?);
    }
    let done = if args.resume {
        done_indices(&args.output)?
    } else {
        HashSet::new()
    };
    items.retain(|it| !done.contains(&it.index.to_string()));
    if let Some(parent) = args.output.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut out = std::fs::OpenOptions::new()
        .create(true)
        .append(args.resume)
        .write(true)
        .truncate(!args.resume)
        .open(&args.output)
        .with_context(|| format!("opening {}", args.output.display()))?;

    let bar = ProgressBar::new(items.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} [{elapsed}<{eta}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let gen = engine.generation_config();
    let mut rng = engine.rng();
    for chunk in items.chunks(engine.yaml.batch_size_test) {
        // Load each medium alone first, so one corrupt file costs one line, not a batch.
        let mut batch = Vec::new();
        let mut indices = Vec::new();
        for it in chunk {
            let media = it.request.media.as_ref();
            match media.map(|m| engine.media_pixels(m, &mut rng)).transpose() {
                Ok(px) => {
                    let mut req = it.request.clone();
                    req.media = match (px, media) {
                        (Some(px), Some(Media::Video(_))) => Some(Media::VideoPixels(px)),
                        (Some(px), _) => Some(Media::ImagePixels(px)),
                        (None, _) => None,
                    };
                    batch.push(req);
                    indices.push(it.index.clone());
                }
                Err(e) => bad.push(BadLine {
                    place: format!("index {}", it.index),
                    reason: e.to_string(),
                }),
            }
        }
        let answers = engine.answer(&batch, &gen, &mut rng)?;
        for (index, ans) in indices.into_iter().zip(answers) {
            let line = serde_json::json!({"index": index, "text_output": ans.text, "token_ids": ans.token_ids});
            writeln!(out, "{line}")
                .with_context(|| format!("writing {}", args.output.display()))?;
        }
        out.flush()?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    if !bad.is_empty() {
        for b in &bad {
            eprintln!("error: {}: {}", b.place, b.reason);
        }
        bail!(
            "{} annotation(s) could not be answered (listed above); the other predictions are in {}",
            bad.len(),
            args.output.display()
        );
    }
    Ok(())
}
