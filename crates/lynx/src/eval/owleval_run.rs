//! Answering OwlEval with a Lynx engine (paper Section 3.1): every image padded as the paper
//! does, each dialogue's questions asked in order with the model's own earlier answers in the
//! prompt, answers appended to an OwlEval answer file as they come, resumable, and one failing
//! question (a missing image, say) costing only that question and the rest of its dialogue.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use indicatif::{ProgressBar, ProgressStyle};

use super::owleval::{
    dialogue_request, dialogues, load_padded, load_questions, Dialogue, OwlAnswer, DEFAULT_PAD,
    DEFAULT_PAD_COLOR,
};
use crate::generation::GenerationConfig;
use crate::pipeline::{Engine, Media, Request};
use crate::{Error, Result};

/// What to answer, where to write, and how.
#[derive(Clone, Debug)]
pub struct OwlEvalOptions {
    /// `questions.jsonl`.
    pub questions: PathBuf,
    /// The folder of the images the questions name (`cases/`).
    pub images: PathBuf,
    /// The answer file (JSONL).
    pub out: PathBuf,
    /// `model_id` of every answer line.
    pub model_id: String,
    /// Border in pixels on each side; 0 leaves the images as they are.
    pub pad: u32,
    pub pad_color: [u8; 3],
    /// Keep the answers already in `out` and ask only the other questions.
    pub resume: bool,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

impl OwlEvalOptions {
    /// The paper's settings: model id "lynx", 8 white pixels, no resume, no progress bar.
    pub fn new(questions: &Path, images: &Path, out: &Path) -> Self {
        Self {
            questions: questions.to_path_buf(),
            images: images.to_path_buf(),
            out: out.to_path_buf(),
            model_id: "lynx".into(),
            pad: DEFAULT_PAD,
            pad_color: DEFAULT_PAD_COLOR,
            resume: false,
            progress: false,
        }
    }
}

/// A question that got no answer, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuestionError {
    pub question_id: i64,
    pub image: String,
    pub reason: String,
}

impl std::fmt::Display for QuestionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "question_id {} ({}): {}",
            self.question_id, self.image, self.reason
        )
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwlEvalSummary {
    /// Questions in the questions file.
    pub questions: usize,
    /// Answered in this run.
    pub answered: usize,
    /// Already in the answer file (with `resume`).
    pub skipped: usize,
    pub failed: Vec<QuestionError>,
    /// Questions whose prompt (dialogue so far included) was longer than `max_input_tokens`
    /// and lost its beginning, as the release truncates.
    pub truncated: Vec<i64>,
}

/// Reads an answer file; a malformed line is an error naming the file and line.
pub fn read_answers(path: &Path) -> Result<Vec<OwlAnswer>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_answers(&path.display().to_string(), &text)
}

fn parse_answers(file: &str, text: &str) -> Result<Vec<OwlAnswer>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(line)
                .map_err(|e| Error::parse(file, Some(i + 1), format!("bad answer: {e}")))?,
        );
    }
    Ok(out)
}

/// The answers to keep when resuming. A last line without its newline was cut short by a
/// crash unless it parses; a cut line is removed from the file, a whole one gets its newline.
fn resume_answers(path: &Path) -> Result<Vec<OwlAnswer>> {
    let mut text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        let start = text.rfind('\n').map_or(0, |i| i + 1);
        if serde_json::from_str::<OwlAnswer>(&text[start..]).is_ok() {
            text.push('\n');
        } else {
            text.truncate(start);
        }
        std::fs::write(path, &text).map_err(|e| Error::io(path, e))?;
    }
    parse_answers(&path.display().to_string(), &text)
}

fn progress_bar(len: usize, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) =
        ProgressStyle::with_template("owleval {bar:40} {pos}/{len} [{elapsed} < {eta}] {msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// Answers a batch; when the batch fails, each request alone, so that an error is put on the
/// question that caused it.
fn answer_batch(
    engine: &Engine,
    reqs: &[Request],
    gen: &GenerationConfig,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Vec<std::result::Result<String, String>> {
    match engine.answer(reqs, gen, rng) {
        Ok(answers) => answers.into_iter().map(|a| Ok(a.text)).collect(),
        Err(e) if reqs.len() == 1 => vec![Err(e.to_string())],
        Err(_) => reqs
            .iter()
            .map(|r| match engine.answer(std::slice::from_ref(r), gen, rng) {
                Ok(a) => a
                    .into_iter()
                    .next()
                    .map(|a| a.text)
                    .ok_or_else(|| "no answer generated".to_string()),
                Err(e) => Err(e.to_string()),
            })
            .collect(),
    }
}

/// Where each dialogue stands during a run.
struct Progress {
    /// Decoded, padded and preprocessed image; dropped when the dialogue is done.
    pixels: Option<Tensor>,
    /// Set when a turn failed: the later turns are not asked.
    dead: bool,
}

/// Answers every question of `opts.questions` not yet answered, appending one line per answer
/// to `opts.out` (flushed), then rewrites the file sorted by question id. Questions are asked in
/// waves: the first open turn of every dialogue, in batches of `batch_size_test`, so single-turn
/// questions and first turns share batches and a follow-up waits only for its own dialogue.
///
/// Errors of one question are collected in the summary; an error of the questions file, of the
/// answer file or of writing stops the run (what was written stays).
pub fn run_owleval(
    engine: &Engine,
    gen: &GenerationConfig,
    opts: &OwlEvalOptions,
) -> Result<OwlEvalSummary> {
    let questions = load_questions(&opts.questions)?;
    let dialogues: Vec<Dialogue> = dialogues(&questions, &opts.questions.display().to_string())?;
    let mut summary = OwlEvalSummary {
        questions: questions.len(),
        ..Default::default()
    };
    let out_name = opts.out.display().to_string();
    let mut answers: HashMap<i64, String> = HashMap::new();
    if opts.resume {
        for (i, a) in resume_answers(&opts.out)?.into_iter().enumerate() {
            if a.model_id != opts.model_id {
                return Err(Error::parse(
                    &out_name,
                    Some(i + 1),
                    format!(
                        "holds answers of model_id `{}`, not `{}`: resume with the same model id, \
                         or write to another file",
                        a.model_id, opts.model_id
                    ),
                ));
            }
            answers.insert(a.question_id, a.answer);
        }
    }
    summary.skipped = questions
        .iter()
        .filter(|q| answers.contains_key(&q.question_id))
        .count();
    if let Some(dir) = opts.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(opts.resume)
        .truncate(!opts.resume)
        .open(&opts.out)
        .map_err(|e| Error::io(&opts.out, e))?;

    let bar = progress_bar(questions.len() - summary.skipped, opts.progress);
    let mut state: Vec<Progress> = dialogues
        .iter()
        .map(|_| Progress {
            pixels: None,
            dead: false,
        })
        .collect();
    let mut rng = engine.rng();
    let batch_size = engine.yaml.batch_size_test.max(1);
    let max_input = engine.yaml.max_input_tokens;

    loop {
        let wave: Vec<(usize, usize)> = dialogues
            .iter()
            .enumerate()
            .filter(|(di, _)| !state[*di].dead)
            .filter_map(|(di, d)| {
                d.turns
                    .iter()
                    .position(|q| !answers.contains_key(&q.question_id))
                    .map(|k| (di, k))
            })
            .collect();
        if wave.is_empty() {
            break;
        }
        for chunk in wave.chunks(batch_size) {
            let mut reqs = Vec::new();
            let mut asked = Vec::new();
            for &(di, k) in chunk {
                let d = &dialogues[di];
                let req = image_pixels(engine, opts, d, &mut state[di]).and_then(|px| {
                    dialogue_request(d, k, &answers, Some(Media::ImagePixels(px)))
                        .map_err(|e| e.to_string())
                });
                match req {
                    Ok(req) => {
                        if engine.prompt_ids_untruncated(&req).unwrap_or(0) > max_input {
                            summary.truncated.push(d.turns[k].question_id);
                        }
                        reqs.push(req);
                        asked.push((di, k));
                    }
                    Err(reason) => {
                        give_up(d, k, reason, &mut state[di], &mut summary, &bar);
                    }
                }
            }
            let results = answer_batch(engine, &reqs, gen, &mut rng);
            for ((di, k), result) in asked.into_iter().zip(results) {
                let d = &dialogues[di];
                let q = &d.turns[k];
                match result {
                    Ok(text) => {
                        let line = serde_json::to_string(&OwlAnswer {
                            image: q.image.clone(),
                            question_id: q.question_id,
                            question: q.question.clone(),
                            answer: text.clone(),
                            model_id: opts.model_id.clone(),
                        })
                        .map_err(|e| Error::Invalid(format!("{out_name}: {e}")))?;
                        writeln!(file, "{line}")
                            .and_then(|()| file.flush())
                            .map_err(|e| Error::io(&opts.out, e))?;
                        answers.insert(q.question_id, text);
                        summary.answered += 1;
                        bar.inc(1);
                        if k + 1 == d.turns.len() {
                            state[di].pixels = None;
                        }
                    }
                    Err(reason) => give_up(d, k, reason, &mut state[di], &mut summary, &bar),
                }
            }
        }
    }
    bar.finish_and_clear();
    drop(file);
    sort_answer_file(&opts.out)?;
    Ok(summary)
}

/// The dialogue's image, padded and preprocessed once for all its turns.
fn image_pixels(
    engine: &Engine,
    opts: &OwlEvalOptions,
    d: &Dialogue,
    st: &mut Progress,
) -> std::result::Result<Tensor, String> {
    if let Some(px) = &st.pixels {
        return Ok(px.clone());
    }
    let path = opts.images.join(&d.image);
    let px = load_padded(&path, opts.pad, opts.pad_color)
        .and_then(|img| engine.preprocessor.eval(&img))
        .map_err(|e| e.to_string())?;
    st.pixels = Some(px.clone());
    Ok(px)
}

/// Records the failure of turn `k` and marks the dialogue's later open turns as not asked.
fn give_up(
    d: &Dialogue,
    k: usize,
    reason: String,
    st: &mut Progress,
    summary: &mut OwlEvalSummary,
    bar: &ProgressBar,
) {
    st.dead = true;
    st.pixels = None;
    let failed = d.turns[k].question_id;
    summary.failed.push(QuestionError {
        question_id: failed,
        image: d.image.clone(),
        reason,
    });
    for q in &d.turns[k + 1..] {
        summary.failed.push(QuestionError {
            question_id: q.question_id,
            image: d.image.clone(),
            reason: format!("not asked: the earlier turn question_id {failed} failed"),
        });
    }
    bar.inc((d.turns.len() - k) as u64);
}

/// Rewrites an answer file in question-id order (through a temporary file and a rename, so a
/// crash leaves either the old or the new file).
fn sort_answer_file(path: &Path) -> Result<()> {
    let mut all = read_answers(path)?;
    if all.windows(2).all(|w| w[0].question_id <= w[1].question_id) {
        return Ok(());
    }
    all.sort_by_key(|a| a.question_id);
    let mut text = String::new();
    for a in &all {
        let line = serde_json::to_string(a)
            .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
        text.push_str(&line);
        text.push('\n');
    }
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(id: i64, text: &str) -> String {
        serde_json::to_string(&OwlAnswer {
            image: "1.jpg".into(),
            question_id: id,
            question: "Q?".into(),
            answer: text.into(),
            model_id: "m".into(),
        })
        .unwrap()
    }

    #[test]
    fn resume_repairs_the_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        assert!(resume_answers(&p).unwrap().is_empty());
        // cut mid-line: removed
        let whole = format!("{}\n{}\n", answer(2, "two"), answer(1, "one"));
        std::fs::write(&p, format!("{whole}{}", &answer(3, "x")[..20])).unwrap();
        assert_eq!(resume_answers(&p).unwrap().len(), 2);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), whole);
        // whole but without its newline: kept
        std::fs::write(&p, format!("{whole}{}", answer(3, "three"))).unwrap();
        assert_eq!(resume_answers(&p).unwrap().len(), 3);
        assert!(std::fs::read_to_string(&p).unwrap().ends_with("}\n"));
        // sorted by id afterwards
        sort_answer_file(&p).unwrap();
        let ids: Vec<i64> = read_answers(&p)
            .unwrap()
            .iter()
            .map(|a| a.question_id)
            .collect();
        assert_eq!(ids, [1, 2, 3]);
        // a bad line in the middle is not silently dropped
        std::fs::write(
            &p,
            format!("{}\nnot json\n{}\n", answer(1, "a"), answer(2, "b")),
        )
        .unwrap();
        let e = resume_answers(&p).unwrap_err().to_string();
        assert!(e.contains("a.jsonl:2: bad answer"), "{e}");
    }
}
