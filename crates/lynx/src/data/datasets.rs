//! Training datasets (paper 2.3 pretraining pairs, 2.4 instruction data): JSONL records in the
//! formats of docs/ARCHITECTURE.md (pairs, tasks, text-only, dialogs; image or video), indexed
//! lazily and validated (bad records are skipped and counted). The weighted mixture over
//! datasets is in data/mixture.rs.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::prompts::PromptTemplates;
use crate::train::rng::TrainRng;
use crate::{Error, Result};

/// How many bad-record reasons each dataset keeps for its error message.
const KEEP_REASONS: usize = 5;
/// A streamed dataset's bad fraction is judged only after this many records.
pub(crate) const MIN_RECORDS_FOR_FRACTION: u64 = 100;

/// One dataset of a training config: `{path, weight, name?, task?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// A `.jsonl` file, or a `.tar` shard pattern such as `shards/pairs-{000..009}.tar`.
    pub path: String,
    /// Sampling weight (> 0); datasets are drawn with probability weight / sum of weights.
    pub weight: f64,
    /// A name for logs and errors (default: the path).
    #[serde(default)]
    pub name: Option<String>,
    /// The task whose templates prompt this dataset's caption pairs (none: an empty prompt).
    #[serde(default)]
    pub task: Option<String>,
}

impl DatasetSpec {
    /// The name used in logs and errors.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.path)
    }

    /// Whether the path names webdataset `.tar` shards.
    pub fn is_shards(&self) -> bool {
        self.path.ends_with(".tar")
    }
}

/// Image or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
}

/// Where a sample's media is: a file to open, or bytes read from a shard.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaSource {
    Path(PathBuf),
    /// `name` is the shard member (`KEY.jpg`); its extension tells the format.
    Bytes {
        name: String,
        data: Vec<u8>,
    },
}

/// The visual input of a sample (loaded later by data/image.rs or data/video.rs).
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    pub kind: MediaKind,
    pub source: MediaSource,
}

/// What kind of record a sample came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleKind {
    /// Image/video-text pair (caption loss).
    Pair,
    /// Task with media (VQA, captioning, classification, ...).
    Task,
    /// Text-only instruction.
    Text,
    /// Multi-turn dialog.
    Dialog,
}

pub use super::conversation::Turn;

/// A training sample, ready to be put into the model prompt and tokenised.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub kind: SampleKind,
    pub task: Option<String>,
    pub media: Option<Media>,
    pub turns: Vec<Turn>,
    /// Index of the dataset in the config.
    pub dataset: usize,
    /// `file:line` or `shard.tar:KEY`.
    pub origin: String,
}

/// Good and bad record counts of one dataset, with the first few reasons.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DatasetStats {
    pub good: u64,
    pub bad: u64,
    /// `origin: reason` of the first bad records.
    pub first_bad: Vec<String>,
}

impl DatasetStats {
    pub(crate) fn record_bad(&mut self, origin: &str, reason: &str) {
        self.bad += 1;
        if self.first_bad.len() < KEEP_REASONS {
            self.first_bad.push(format!("{origin}: {reason}"));
        }
    }

    /// bad / (good + bad).
    pub fn bad_fraction(&self) -> f64 {
        let total = self.good + self.bad;
        if total == 0 {
            0.0
        } else {
            self.bad as f64 / total as f64
        }
    }

    /// An error when more than `max` of the records are bad.
    pub(crate) fn check(&self, name: &str, max: f64) -> Result<()> {
        if self.bad_fraction() <= max {
            return Ok(());
        }
        Err(Error::Invalid(format!(
            "dataset `{name}`: {} of {} records are bad ({:.1}% > max_bad_fraction {:.1}%); first problems:\n  {}",
            self.bad,
            self.good + self.bad,
            100.0 * self.bad_fraction(),
            100.0 * max,
            self.first_bad.join("\n  ")
        )))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawAnswer {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct RawTurn {
    from: String,
    value: String,
    short_answer: Option<String>,
}

// Records may carry other fields (ids, classes, ...): they are ignored.
#[derive(Deserialize)]
struct RawRecord {
    task: Option<String>,
    image: Option<String>,
    video: Option<String>,
    caption: Option<String>,
    question: Option<String>,
    answer: Option<RawAnswer>,
    short_answer: Option<String>,
    conversations: Option<Vec<RawTurn>>,
}

/// A validated record before its prompt is drawn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub kind: SampleKind,
    pub task: Option<String>,
    /// The media path the record names, as written.
    pub media_path: Option<(MediaKind, String)>,
    pub question: Option<String>,
    /// The caption of a pair, or the answer(s) of a task (one is drawn).
    pub answers: Vec<String>,
    /// A task's short answer, when its answer explains one ([`Turn::short_answer`]).
    pub short_answer: Option<String>,
    pub turns: Vec<Turn>,
}

/// A record with its media located, waiting to be rendered into a [`Sample`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pending {
    pub record: Record,
    pub media: Option<Media>,
    pub origin: String,
}

/// Parses and validates one record. `member_media` is the kind of a media member that comes
/// with it (shards). The error is the reason the record is skipped.
pub(crate) fn parse_record(
    text: &str,
    member_media: Option<MediaKind>,
    prompts: Option<&PromptTemplates>,
) -> std::result::Result<Record, String> {
    let raw: RawRecord = serde_json::from_str(text).map_err(|e| format!("bad JSON: {e}"))?;
    let media_path = match (raw.image, raw.video) {
        (Some(_), Some(_)) => return Err("has both `image` and `video`".into()),
        (Some(p), None) => Some((MediaKind::Image, p)),
        (None, Some(p)) => Some((MediaKind::Video, p)),
        (None, None) => None,
    };
    if media_path
        .as_ref()
        .is_some_and(|(_, p)| p.trim().is_empty())
    {
        return Err("empty media path".into());
    }
    let has_media = member_media.is_some() || media_path.is_some();
    let nonempty = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    if let Some(conv) = raw.conversations {
        let turns = parse_dialog(conv)?;
        return Ok(Record {
            kind: SampleKind::Dialog,
            task: raw.task,
            media_path,
            question: None,
            answers: Vec::new(),
            short_answer: None,
            turns,
        });
    }
    if let Some(task) = raw.task {
        let prompts = prompts.ok_or("task records need a prompts file")?;
        let t = prompts
            .task(&task)
            .ok_or_else(|| format!("unknown task `{task}` (not in {})", prompts.source()))?;
        let question = nonempty(raw.question);
        if t.has_question && question.is_none() {
            return Err(format!("task `{task}` needs a non-empty `question`"));
        }
        if !t.has_question && question.is_some() {
            return Err(format!(
                "task `{task}` takes no question (its templates have no {{question}})"
            ));
        }
        let answers: Vec<String> = match raw.answer {
            Some(RawAnswer::One(a)) => vec![a],
            Some(RawAnswer::Many(list)) => list,
            None => Vec::new(),
        }
        .into_iter()
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect();
        if answers.is_empty() {
            return Err("empty answer".into());
        }
        let short_answer = short_answer(raw.short_answer, "short_answer")?;
        return Ok(Record {
            kind: if has_media {
                SampleKind::Task
            } else {
                SampleKind::Text
            },
            task: Some(task),
            media_path,
            question,
            answers,
            short_answer,
            turns: Vec::new(),
        });
    }
    if raw.caption.is_some() {
        let caption = nonempty(raw.caption).ok_or("empty caption")?;
        if !has_media {
            return Err("caption pair without an image or video".into());
        }
        return Ok(Record {
            kind: SampleKind::Pair,
            task: None,
            media_path,
            question: None,
            answers: vec![caption],
            short_answer: None,
            turns: Vec::new(),
        });
    }
    Err("none of `caption`, `task`, `conversations`".into())
}

/// A record's optional short answer, trimmed; present but empty is an error naming `field`.
fn short_answer(raw: Option<String>, field: &str) -> std::result::Result<Option<String>, String> {
    match raw.map(|s| s.trim().to_string()) {
        Some(s) if s.is_empty() => Err(format!("empty `{field}`")),
        other => Ok(other),
    }
}

fn parse_dialog(conv: Vec<RawTurn>) -> std::result::Result<Vec<Turn>, String> {
    let mut turns = Vec::new();
    let mut pending: Option<String> = None;
    for (i, t) in conv.into_iter().enumerate() {
        // LLaVA-style data marks the image position with <image>; our image always comes first.
        let value = t.value.replace("<image>", "").trim().to_string();
        match (t.from.to_ascii_lowercase().as_str(), pending.take()) {
            ("human" | "user", None) => {
                if value.is_empty() {
                    return Err(format!("conversations[{i}]: empty human turn"));
                }
                pending = Some(value);
            }
            ("gpt" | "assistant" | "bot", Some(prompt)) => {
                if value.is_empty() {
                    return Err(format!("conversations[{i}]: empty answer"));
                }
                let field = format!("conversations[{i}].short_answer");
                turns.push(Turn {
                    prompt,
                    response: value,
                    short_answer: short_answer(t.short_answer, &field)?,
                });
            }
            (from, _) => return Err(format!("conversations[{i}]: `{from}` turn out of order")),
        }
    }
    if pending.is_some() {
        return Err("conversations end with a human turn".into());
    }
    if turns.is_empty() {
        return Err("empty conversations".into());
    }
    Ok(turns)
}

/// Draws the prompt (and answer, when there are several) of a pending record.
pub(crate) fn render(
    p: Pending,
    dataset: usize,
    pair_task: Option<&str>,
    prompts: Option<&PromptTemplates>,
    rng: &mut TrainRng,
) -> Result<Sample> {
    let r = p.record;
    let turns = match r.kind {
        SampleKind::Dialog => r.turns,
        SampleKind::Pair => {
            let prompt = match (pair_task, prompts) {
                (Some(t), Some(pr)) => pr.render(t, None, rng)?,
                _ => String::new(),
            };
            vec![Turn {
                prompt,
                response: r.answers[0].clone(),
                short_answer: None,
            }]
        }
        SampleKind::Task | SampleKind::Text => {
            let task = r.task.as_deref().unwrap_or_default();
            let pr =
                prompts.ok_or_else(|| Error::Invalid("task records need a prompts file".into()))?;
            let prompt = pr.render(task, r.question.as_deref(), rng)?;
            let response = if r.answers.len() == 1 {
                r.answers[0].clone()
            } else {
                r.answers[rng.index(r.answers.len())].clone()
            };
            vec![Turn {
                prompt,
                response,
                short_answer: r.short_answer,
            }]
        }
    };
    Ok(Sample {
        kind: r.kind,
        task: r.task,
        media: p.media,
        turns,
        dataset,
        origin: p.origin,
    })
}

/// Resolves a record's media path against `base` (the dataset's folder) and checks it exists.
pub(crate) fn locate_media(
    base: &Path,
    kind: MediaKind,
    path: &str,
) -> std::result::Result<Media, String> {
    let p = Path::new(path);
    let full = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    if !full.exists() {
        return Err(format!("missing media file {}", full.display()));
    }
    Ok(Media {
        kind,
        source: MediaSource::Path(full),
    })
}

/// A JSONL dataset: one pass indexes the byte offsets of its valid records; records are read
/// again on demand.
pub struct JsonlDataset {
    path: PathBuf,
    base: PathBuf,
    offsets: Vec<u64>,
    lines: Vec<u32>,
    reader: BufReader<File>,
    pub(crate) stats: DatasetStats,
}

impl JsonlDataset {
    /// Indexes and validates `path` (with a progress bar on stderr for large files).
    pub fn open(path: &Path, prompts: Option<&PromptTemplates>) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let base = crate::train::atomic::parent_dir(path);
        let bar =
            indicatif::ProgressBar::new(size).with_message(format!("indexing {}", path.display()));
        if size < (64 << 20) {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let mut reader = BufReader::new(file);
        let mut offsets = Vec::new();
        let mut lines = Vec::new();
        let mut stats = DatasetStats::default();
        let mut buf = Vec::new();
        let mut offset = 0u64;
        let mut line_no = 0u32;
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| Error::io(path, e))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            let start = offset;
            offset += n as u64;
            if line_no & 4095 == 0 {
                bar.set_position(offset);
            }
            if buf.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let origin = format!("{}:{line_no}", path.display());
            match check_line(&buf, &base, prompts) {
                Ok(_) => {
                    stats.good += 1;
                    offsets.push(start);
                    lines.push(line_no);
                }
                Err(reason) => stats.record_bad(&origin, &reason),
            }
        }
        bar.finish_and_clear();
        Ok(Self {
            path: path.to_path_buf(),
            base,
            offsets,
            lines,
            reader,
            stats,
        })
    }

    /// Valid records.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether no record is valid.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Counts from the indexing pass (plus records that went bad later).
    pub fn stats(&self) -> &DatasetStats {
        &self.stats
    }

    /// Reads valid record `i` again. The inner error is a reason to skip it (the file or its
    /// media changed since indexing).
    pub(crate) fn read(
        &mut self,
        i: usize,
        prompts: Option<&PromptTemplates>,
    ) -> Result<std::result::Result<Pending, (String, String)>> {
        let origin = format!("{}:{}", self.path.display(), self.lines[i]);
        self.reader
            .seek(SeekFrom::Start(self.offsets[i]))
            .map_err(|e| Error::io(&self.path, e))?;
        let mut buf = Vec::new();
        self.reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| Error::io(&self.path, e))?;
        Ok(match check_line(&buf, &self.base, prompts) {
            Ok((record, media)) => Ok(Pending {
                record,
                media,
                origin,
            }),
            Err(reason) => {
                self.stats.good = self.stats.good.saturating_sub(1);
                self.stats.record_bad(&origin, &reason);
                Err((origin, reason))
            }
        })
    }
}

fn check_line(
    bytes: &[u8],
    base: &Path,
    prompts: Option<&PromptTemplates>,
) -> std::result::Result<(Record, Option<Media>), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let record = parse_record(text, None, prompts)?;
    let media = match &record.media_path {
        Some((kind, p)) => Some(locate_media(base, *kind, p)?),
        None => None,
    };
    Ok((record, media))
}

#[cfg(test)]
#[path = "datasets_tests.rs"]
mod tests;
