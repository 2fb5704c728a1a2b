//! `generate_world`: renders the synthetic world to disk (media, scenes.jsonl, training JSONL in
//! the formats of docs/ARCHITECTURE.md, prompt templates, and an Open-VQA style test split).
//! Scenes are built in parallel but every scene draws from its own seeded stream and results are
//! written in index order, so the output is byte-identical for a seed.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::language::{detailed_caption, dialog, short_caption};
use super::paraphrase::Paraphraser;
use super::questions::{scene_questions, Qa, VqaClass};
use super::reading::{reading_instruction, Reading};
use super::records::{scene_json, OpenVqaRec, Record};
use super::render::{png_bytes, render_image};
use super::templates::{phrasings_yaml, prompts_yaml};
use super::textonly::text_instruction;
use super::video::{frames_to_json, render_frames, sample_video_scene};
use super::world::{sample_image_scene, Scene};
use crate::{Error, Result};

/// What to generate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SynthConfig {
    pub seed: u64,
    /// Training scenes (images and videos).
    pub count: usize,
    /// Fraction of scenes that are videos (0..=1).
    pub video_fraction: f64,
    /// Side of the square images and frames in pixels (OCR needs about 96 or more).
    pub size: u32,
    /// Frames per video.
    pub frames: usize,
    /// Held-out test scenes (same video fraction).
    pub test_count: usize,
    /// Text-only instruction records; `None` means half of `count` (at least 100).
    pub text_count: Option<usize>,
    /// Reading records (a scene's description, then a question about it; `reading.rs`);
    /// `None` means as many as the text-only instructions.
    #[serde(default)]
    pub reading_count: Option<usize>,
    /// Training questions per class per scene.
    pub qa_per_class: usize,
    /// Share of training questions given a surface paraphrase (`paraphrase.rs`): synonyms,
    /// requests, lead-ins, closings. 0 writes the hand-written phrasings only.
    #[serde(default)]
    pub paraphrase: f64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 0,
            count: 1000,
            video_fraction: 0.2,
            size: 112,
            frames: 8,
            test_count: 200,
            text_count: None,
            reading_count: None,
            qa_per_class: 2,
            paraphrase: 0.0,
        }
    }
}

impl SynthConfig {
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.video_fraction) {
            return Err(Error::config(
                "video_fraction",
                format!("{} is not in 0..=1", self.video_fraction),
            ));
        }
        if !(32..=1024).contains(&self.size) {
            return Err(Error::config(
                "size",
                format!("{} px is not in 32..=1024", self.size),
            ));
        }
        if !(4..=64).contains(&self.frames) {
            return Err(Error::config(
                "frames",
                format!("{} is not in 4..=64", self.frames),
            ));
        }
        if !(0.0..=1.0).contains(&self.paraphrase) {
            return Err(Error::config(
                "paraphrase",
                format!("{} is not in 0..=1", self.paraphrase),
            ));
        }
        if self.qa_per_class == 0 {
            return Err(Error::config("qa_per_class", "must be at least 1"));
        }
        Ok(())
    }

    fn text_records(&self) -> usize {
        self.text_count.unwrap_or((self.count / 2).max(100))
    }

    fn reading_records(&self) -> usize {
        self.reading_count.unwrap_or_else(|| self.text_records())
    }
}

/// Counts of what was written (also saved as `summary.json`, without timings).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct WorldSummary {
    pub config: Option<SynthConfig>,
    pub images: usize,
    pub videos: usize,
    pub test_images: usize,
    pub test_videos: usize,
    /// Lines per training file (file name under train/).
    pub records: BTreeMap<String, usize>,
    /// Test questions per Open-VQA file and class ("open_vqa_images/OCR").
    pub test_questions: BTreeMap<String, usize>,
    /// Bytes of media written.
    pub media_bytes: u64,
}

/// Which part of the world a scene belongs to; each has its own seed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
    Text,
    /// Scenes that are only described in words (reading records), never rendered.
    Reading,
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The random stream for one purpose (0: scene, 1: questions) of scene `index` of a split.
pub fn scene_rng(seed: u64, split: Split, index: usize, purpose: u64) -> ChaCha8Rng {
    let tag = match split {
        Split::Train => 1u64,
        Split::Test => 2,
        Split::Text => 3,
        Split::Reading => 4,
    };
    let s = splitmix(splitmix(splitmix(seed) ^ tag) ^ index as u64);
    ChaCha8Rng::seed_from_u64(splitmix(s ^ purpose.wrapping_mul(0xA5A5_A5A5)))
}

/// Scene ids: "000042" for training, "test_000042" for the test split.
pub fn scene_id(split: Split, index: usize) -> String {
    match split {
        Split::Test => format!("test_{index:06}"),
        Split::Reading => format!("reading_{index:06}"),
        _ => format!("{index:06}"),
    }
}

/// Whether scene `index` is a video: exactly round(n * fraction) of the first n are.
pub fn is_video(fraction: f64, index: usize) -> bool {
    ((index + 1) as f64 * fraction).floor() > (index as f64 * fraction).floor()
}

/// Samples scene `index` of a split exactly as `generate_world` does.
pub fn sample_scene(cfg: &SynthConfig, split: Split, index: usize) -> Scene {
    let mut rng = scene_rng(cfg.seed, split, index, 0);
    let id = scene_id(split, index);
    if is_video(cfg.video_fraction, index) {
        sample_video_scene(&mut rng, cfg.size, cfg.frames, id)
    } else {
        sample_image_scene(&mut rng, cfg.size, id)
    }
}

/// One test question before its index is known.
struct TestItem {
    class: VqaClass,
    seen: String,
    unseen: String,
    answers: Vec<String>,
}

/// Everything one scene contributes.
struct SceneOut {
    video: bool,
    scene_line: String,
    records: Vec<(&'static str, String)>,
    tests: Vec<TestItem>,
    media: String,
    bytes: u64,
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

fn build_scene(cfg: &SynthConfig, root: &Path, split: Split, index: usize) -> Result<SceneOut> {
    let scene = sample_scene(cfg, split, index);
    let video = scene.is_video();
    let media = if video {
        format!("videos/{}.json", scene.id)
    } else {
        format!("images/{}.png", scene.id)
    };
    let bytes = if video {
        frames_to_json(&render_frames(&scene))?.into_bytes()
    } else {
        png_bytes(&render_image(&scene))?
    };
    write_file(&root.join(&media), &bytes)?;
    let scene_line = serde_json::to_string(&scene_json(&scene, &media))
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let mut qrng = scene_rng(cfg.seed, split, index, 1);
    let qas = scene_questions(&scene, &mut qrng);
    let mut by_class: BTreeMap<VqaClass, Vec<&Qa>> = BTreeMap::new();
    for q in &qas {
        by_class.entry(q.class).or_default().push(q);
    }
    let mut out = SceneOut {
        video,
        scene_line,
        records: Vec::new(),
        tests: Vec::new(),
        media: media.clone(),
        bytes: bytes.len() as u64,
    };
    match split {
        Split::Test => {
            for (class, list) in &by_class {
                let list: Vec<&&Qa> = list.iter().filter(|q| q.testable).collect();
                if list.is_empty() {
                    continue;
                }
                // Video yes/no: the true event or a false one with equal odds.
                let q = if *class == VqaClass::VideoAction && qrng.random_bool(0.5) {
                    list[0]
                } else {
                    list[qrng.random_range(0..list.len())]
                };
                out.tests.push(TestItem {
                    class: *class,
                    seen: q.phrase(&mut qrng, false),
                    unseen: q.phrase(&mut qrng, true),
                    answers: q.alternatives.clone(),
                });
            }
        }
        _ => {
            // Paraphrases draw from their own stream: the questions asked stay the same.
            let mut para = Paraphraser::new(cfg.paraphrase, scene_rng(cfg.seed, split, index, 2));
            let m = format!("../{media}");
            let rec = |task: &'static str, question: Option<String>, answer: String| {
                Record::task(task, &m, video, question, answer)
            };
            let mut push = |file: &'static str, r: Record| -> Result<()> {
                let line = serde_json::to_string(&r).map_err(|e| Error::Invalid(e.to_string()))?;
                out.records.push((file, line));
                Ok(())
            };
            let short = short_caption(&scene);
            let detailed = detailed_caption(&scene);
            push("pairs", Record::pair(&m, video, short.clone()))?;
            push("pairs", Record::pair(&m, video, detailed.clone()))?;
            if video {
                push("video_caption", rec("video_caption", None, detailed))?;
            } else {
                push("caption", rec("caption", None, short))?;
                push("caption_detailed", rec("caption_detailed", None, detailed))?;
                push("place", rec("place", None, scene.place.name().to_string()))?;
            }
            for (class, list) in &by_class {
                let mut idx: Vec<usize> = (0..list.len()).collect();
                if *class == VqaClass::VideoAction && list.len() > 1 {
                    // Keep yes and no balanced: the true event plus one false statement.
                    idx = vec![0, qrng.random_range(1..list.len())];
                }
                for _ in 0..cfg.qa_per_class.min(idx.len()) {
                    let k = idx.remove(qrng.random_range(0..idx.len()));
                    let q = list[k];
                    push(
                        class.task(),
                        rec(
                            class.task(),
                            Some(para.apply(q, q.phrase(&mut qrng, false))),
                            q.answer.clone(),
                        ),
                    )?;
                }
            }
            for _ in 0..2.min(qas.len()) {
                let q = &qas[qrng.random_range(0..qas.len())];
                let explained = rec(
                    "vqa_explain",
                    Some(para.apply(q, q.phrase(&mut qrng, false))),
                    q.explanation.clone(),
                );
                let short_answer = Some(q.answer.clone());
                push(
                    "vqa_explain",
                    Record {
                        short_answer,
                        ..explained
                    },
                )?;
            }
            let turns = dialog(&scene, &qas, &mut qrng, &mut para);
            push("dialog", Record::dialog(&m, video, turns))?;
        }
    }
    Ok(out)
}

/// Lazily opened output files, written in order.
struct Files {
    dir: PathBuf,
    open: BTreeMap<String, BufWriter<File>>,
    lines: BTreeMap<String, usize>,
}

impl Files {
    fn new(dir: PathBuf) -> Self {
        Files {
            dir,
            open: BTreeMap::new(),
            lines: BTreeMap::new(),
        }
    }
    fn line(&mut self, name: &str, line: &str) -> Result<()> {
        if !self.open.contains_key(name) {
            let path = self.dir.join(name);
            let f = File::create(&path).map_err(|e| Error::io(&path, e))?;
            self.open.insert(name.to_string(), BufWriter::new(f));
        }
        let path = self.dir.join(name);
        let w = self
            .open
            .get_mut(name)
            .ok_or_else(|| Error::Invalid(name.to_string()))?;
        writeln!(w, "{line}").map_err(|e| Error::io(&path, e))?;
        *self.lines.entry(name.to_string()).or_default() += 1;
        Ok(())
    }
    fn finish(self) -> Result<BTreeMap<String, usize>> {
        for (name, mut w) in self.open {
            w.flush().map_err(|e| Error::io(self.dir.join(&name), e))?;
        }
        Ok(self.lines)
    }
}

fn mkdir(p: &Path) -> Result<()> {
    fs::create_dir_all(p).map_err(|e| Error::io(p, e))
}

/// Generates the world under `out`; shows a progress bar on stderr when `progress` is set.
pub fn generate_world(cfg: &SynthConfig, out: &Path, progress: bool) -> Result<WorldSummary> {
    cfg.validate()?;
    let test_dir = out.join("test");
    let train_dir = out.join("train");
    for d in [
        out.join("images"),
        out.join("videos"),
        test_dir.join("images"),
        test_dir.join("videos"),
        train_dir.clone(),
    ] {
        mkdir(&d)?;
    }
    let bar = if progress {
        ProgressBar::new((cfg.count + cfg.test_count) as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>6} [{bar:40}] {pos}/{len} scenes, {per_sec}, eta {eta}",
        )
        .map_err(|e| Error::Invalid(e.to_string()))?
        .progress_chars("=> "),
    );
    let mut summary = WorldSummary {
        config: Some(cfg.clone()),
        ..Default::default()
    };

    // Training scenes.
    bar.set_message("train");
    let mut files = Files::new(out.to_path_buf());
    let mut train = Files::new(train_dir.clone());
    for chunk in (0..cfg.count).collect::<Vec<_>>().chunks(256) {
        let outs: Vec<Result<SceneOut>> = chunk
            .par_iter()
            .map(|&i| {
                let r = build_scene(cfg, out, Split::Train, i);
                bar.inc(1);
                r
            })
            .collect();
        for o in outs {
            let o = o?;
            files.line("scenes.jsonl", &o.scene_line)?;
            for (file, line) in &o.records {
                train.line(&format!("{file}.jsonl"), line)?;
            }
            summary.media_bytes += o.bytes;
            if o.video {
                summary.videos += 1
            } else {
                summary.images += 1
            }
        }
    }
    for i in 0..cfg.text_records() {
        let (question, answer) = text_instruction(&mut scene_rng(cfg.seed, Split::Text, i, 0));
        let line = serde_json::to_string(&Record::text("text_instruct", question, answer))
            .map_err(|e| Error::Invalid(e.to_string()))?;
        train.line("text_instruct.jsonl", &line)?;
    }
    // Reading records, and their control: the same questions after the next record's
    // description, so a model that reads its context scores worse on the control.
    let readings: Vec<Reading> = (0..cfg.reading_records())
        .filter_map(|i| reading_instruction(cfg, i))
        .collect();
    for (i, r) in readings.iter().enumerate() {
        let other = &readings[(i + 1) % readings.len()].description;
        for (file, description) in [
            ("text_reading.jsonl", &r.description),
            ("text_reading_control.jsonl", other),
        ] {
            let rec = Record::text(
                "text_instruct",
                r.instruction(description),
                r.answer.clone(),
            );
            let line = serde_json::to_string(&rec).map_err(|e| Error::Invalid(e.to_string()))?;
            train.line(file, &line)?;
        }
    }
    files.finish()?;
    summary.records = train.finish()?;
    write_file(&train_dir.join("prompts.yaml"), prompts_yaml().as_bytes())?;
    write_file(
        &train_dir.join("question_phrasings.yaml"),
        phrasings_yaml(false).as_bytes(),
    )?;
    write_file(
        &train_dir.join("stage1.yaml"),
        super::records::stage_yaml(&summary.records, true).as_bytes(),
    )?;
    write_file(
        &train_dir.join("stage2.yaml"),
        super::records::stage_yaml(&summary.records, false).as_bytes(),
    )?;

    // Held-out test scenes.
    bar.set_message("test");
    let mut tests = Files::new(test_dir.clone());
    let (mut n_img, mut n_vid) = (0usize, 0usize);
    for chunk in (0..cfg.test_count).collect::<Vec<_>>().chunks(256) {
        let outs: Vec<Result<SceneOut>> = chunk
            .par_iter()
            .map(|&i| {
                let r = build_scene(cfg, &test_dir, Split::Test, i);
                bar.inc(1);
                r
            })
            .collect();
        for o in outs {
            let o = o?;
            tests.line("scenes.jsonl", &o.scene_line)?;
            summary.media_bytes += o.bytes;
            if o.video {
                summary.test_videos += 1
            } else {
                summary.test_images += 1
            }
            let (name, counter) = if o.video {
                ("open_vqa_videos", &mut n_vid)
            } else {
                ("open_vqa_images", &mut n_img)
            };
            for t in o.tests {
                *counter += 1;
                for (file, question) in [
                    (name.to_string(), t.seen),
                    (format!("{name}_unseen"), t.unseen),
                ] {
                    let rec = OpenVqaRec::new(
                        &file,
                        question,
                        t.answers.clone(),
                        *counter,
                        &o.media,
                        o.video,
                        t.class,
                    );
                    let line =
                        serde_json::to_string(&rec).map_err(|e| Error::Invalid(e.to_string()))?;
                    tests.line(&format!("{file}.jsonl"), &line)?;
                }
                *summary
                    .test_questions
                    .entry(format!("{name}/{}", t.class.open_vqa_name()))
                    .or_default() += 1;
            }
        }
    }
    tests.finish()?;
    write_file(
        &test_dir.join("heldout_phrasings.yaml"),
        phrasings_yaml(true).as_bytes(),
    )?;
    bar.finish_and_clear();
    let json = serde_json::to_string_pretty(&summary).map_err(|e| Error::Invalid(e.to_string()))?;
    write_file(&out.join("summary.json"), json.as_bytes())?;
    write_file(&out.join("README.md"), super::records::README.as_bytes())?;
    Ok(summary)
}
