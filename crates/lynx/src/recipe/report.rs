//! The default model's report (issue 4, paper Section 3.1): Open-VQA style accuracy on the
//! world's held-out scenes, per class, in the layout of the paper's Table 1 (images) and
//! Table 2 (videos), once with the question phrasings used in training and once with the
//! held-out phrasings, judged by the rule judge; the length of answers to instructions that ask
//! for a short answer and for a reason (the paper's balance between correctness and
//! generation); and sample answers to long-form instructions.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::eval::open_vqa::read_jsonl;
use crate::eval::{
    load_annotations, markdown, score, Annotation, OpenVqaReport, Prediction, RuleJudge,
};
use crate::pipeline::{Engine, Media, Request};
use crate::{Error, Result};

/// The annotation files of a world's test split: (file, row label).
pub const TEST_FILES: [(&str, &str); 4] = [
    ("open_vqa_images.jsonl", "seen phrasings"),
    ("open_vqa_images_unseen.jsonl", "unseen phrasings"),
    ("open_vqa_videos.jsonl", "seen phrasings"),
    ("open_vqa_videos_unseen.jsonl", "unseen phrasings"),
];

/// Long-form instructions answered for the samples (images; the last one for videos).
pub const LONG_FORM: [&str; 3] = [
    "Describe this image in detail.",
    "Write a short story about this picture.",
    "Describe what happens in this video.",
];

/// Instructions whose answers' lengths are compared: (label, instruction suffix).
const LENGTH_PROBES: [(&str, &str); 2] = [
    ("short answer", " Give a short answer."),
    ("explained", " Explain your answer."),
];

/// One long-form answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LongAnswer {
    pub media: String,
    pub instruction: String,
    pub answer: String,
}

/// Mean answer length in words for a kind of instruction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LengthStat {
    pub instruction: String,
    pub answers: usize,
    pub mean_words: f64,
    /// Share of answers that still contain a correct short answer (rule judge).
    pub correct: f64,
}

/// Everything the report holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelReport {
    pub model: String,
    pub tables: Vec<OpenVqaReport>,
    pub lengths: Vec<LengthStat>,
    pub samples: Vec<LongAnswer>,
}

/// A test item: its annotation and the request that asks it.
struct Item {
    annotation: Annotation,
    media: Media,
}

fn read_items(file: &Path) -> Result<Vec<Item>> {
    let base = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let annotations = load_annotations(file)?;
    let raw = read_jsonl(file)?;
    annotations
        .into_iter()
        .zip(raw)
        .map(|(annotation, (line, obj))| {
            let media = match (obj.get("image"), obj.get("video")) {
                (Some(Value::String(p)), _) => Media::Image(base.join(p)),
                (_, Some(Value::String(p))) => Media::Video(base.join(p)),
                _ => {
                    return Err(Error::parse(
                        file.display().to_string(),
                        Some(line),
                        "no `image` or `video`",
                    ))
                }
            };
            Ok(Item { annotation, media })
        })
        .collect()
}

/// Answers requests in batches of the config's `batch_size_test`.
pub fn answer_all(
    engine: &Engine,
    reqs: Vec<Request>,
    bar: &indicatif::ProgressBar,
) -> Result<Vec<String>> {
    let gen = engine.generation_config();
    let mut rng = engine.rng();
    let mut out = Vec::with_capacity(reqs.len());
    for chunk in reqs.chunks(engine.yaml.batch_size_test.max(1)) {
        for a in engine.answer(chunk, &gen, &mut rng)? {
            out.push(a.text);
        }
        bar.inc(chunk.len() as u64);
    }
    Ok(out)
}

fn request(media: &Media, question: &str) -> Request {
    Request {
        media: Some(media.clone()),
        history: Vec::new(),
        question: question.to_string(),
    }
}

/// Evaluates `engine` on the test split in `test_dir` (a world's `test/`). `samples` images
/// (and one video) get the long-form instructions.
pub fn evaluate(
    engine: &Engine,
    model_name: &str,
    test_dir: &Path,
    samples: usize,
    bar: &indicatif::ProgressBar,
) -> Result<ModelReport> {
    let mut files = Vec::new();
    for (name, label) in TEST_FILES {
        let path = test_dir.join(name);
        if path.is_file() {
            files.push((read_items(&path)?, label, path));
        }
    }
    if files.is_empty() {
        return Err(Error::config(
            "world",
            format!("{} has no open_vqa_*.jsonl files", test_dir.display()),
        ));
    }
    let images: Vec<&Item> = files[0]
        .0
        .iter()
        .filter(|i| matches!(i.media, Media::Image(_)))
        .collect();
    let total: usize = files.iter().map(|(items, _, _)| items.len()).sum::<usize>()
        + 2 * images.len()
        + samples * LONG_FORM.len();
    bar.set_length(total as u64);
    let mut tables = Vec::new();
    for (items, label, path) in &files {
        let reqs = items
            .iter()
            .map(|i| request(&i.media, &i.annotation.question))
            .collect();
        let answers = answer_all(engine, reqs, bar)?;
        let predictions: Vec<Prediction> = items
            .iter()
            .zip(answers)
            .enumerate()
            .map(|(k, (i, text))| Prediction {
                index: i.annotation.index.clone(),
                text,
                line: k + 1,
            })
            .collect();
        let anns: Vec<Annotation> = items.iter().map(|i| i.annotation.clone()).collect();
        let mut run = score(
            &anns,
            &predictions,
            &mut RuleJudge,
            &path.display().to_string(),
        )?;
        run.report.name = format!("{model_name}, {label}");
        run.report.annotations = path.display().to_string();
        tables.push(run.report);
    }
    let mut lengths = Vec::new();
    for (label, suffix) in LENGTH_PROBES {
        let reqs = images
            .iter()
            .map(|i| request(&i.media, &format!("{}{suffix}", i.annotation.question)))
            .collect();
        let answers = answer_all(engine, reqs, bar)?;
        let words: usize = answers.iter().map(|a| a.split_whitespace().count()).sum();
        let correct = images
            .iter()
            .zip(&answers)
            .filter(|(i, a)| {
                crate::eval::rule_judge::rule_verdict(
                    &i.annotation.question,
                    a,
                    &i.annotation.answers,
                )
            })
            .count();
        lengths.push(LengthStat {
            instruction: format!("question +{suffix:?} ({label})"),
            answers: answers.len(),
            mean_words: words as f64 / answers.len().max(1) as f64,
            correct: correct as f64 / answers.len().max(1) as f64,
        });
    }
    let mut picked: Vec<&Media> = Vec::new();
    for i in &images {
        if picked.len() >= samples {
            break;
        }
        if !picked.iter().any(|m| media_name(m) == media_name(&i.media)) {
            picked.push(&i.media);
        }
    }
    let video = files
        .iter()
        .flat_map(|(items, _, _)| items.iter())
        .find(|i| matches!(i.media, Media::Video(_)))
        .map(|i| &i.media);
    let mut asks: Vec<(Media, &str)> = Vec::new();
    for m in &picked {
        asks.push(((*m).clone(), LONG_FORM[0]));
        asks.push(((*m).clone(), LONG_FORM[1]));
    }
    if let Some(v) = video {
        asks.push((v.clone(), LONG_FORM[2]));
    }
    let reqs = asks.iter().map(|(m, q)| request(m, q)).collect();
    let answers = answer_all(engine, reqs, bar)?;
    let samples = asks
        .iter()
        .zip(answers)
        .map(|((m, q), a)| LongAnswer {
            media: media_name(m),
            instruction: q.to_string(),
            answer: a,
        })
        .collect();
    bar.finish_and_clear();
    Ok(ModelReport {
        model: model_name.to_string(),
        tables,
        lengths,
        samples,
    })
}

fn media_name(m: &Media) -> String {
    let p: PathBuf = match m {
        Media::Image(p) | Media::Video(p) => p.clone(),
        _ => PathBuf::new(),
    };
    let mut parts: Vec<String> = p
        .components()
        .rev()
        .take(2)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.reverse();
    parts.join("/")
}

/// The report as Markdown (`docs/default-model.md`); `header` comes first.
pub fn to_markdown(r: &ModelReport, header: &str) -> String {
    let mut out = String::new();
    out.push_str(header);
    out.push_str("\n## Accuracy on held-out scenes\n\n");
    out.push_str(
        "Rule judge (normalised containment; `lynx eval open-vqa --judge rule`). Rows: the \
         question phrasings used in training, and phrasings kept out of training.\n\n",
    );
    out.push_str(&markdown(&r.tables));
    out.push_str(
        "## Answer length\n\nThe same image questions with an instruction appended \
                  (paper 3.2: correct answers, with a reason when one is asked for).\n\n",
    );
    out.push_str("| Instruction | Answers | Mean words | Correct |\n|---|---:|---:|---:|\n");
    for l in &r.lengths {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {:.1}% |",
            l.instruction.replace('|', "\\|"),
            l.answers,
            l.mean_words,
            100.0 * l.correct
        );
    }
    out.push_str("\n## Long-form samples\n\n");
    for s in &r.samples {
        let _ = writeln!(
            out,
            "**{}** — *{}*\n\n> {}\n",
            s.media,
            s.instruction,
            s.answer.replace('\n', " ")
        );
    }
    out
}
