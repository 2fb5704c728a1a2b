//! OwlEval answer files (one `{image, question_id, question, answer, model_id}` object a line, as
//! in mPLUG-Owl's `OwlEval/answer/*.jsonl`) and the optional questions file, checked against each
//! other before anyone rates anything (paper Section 3.1: every annotator scores every model).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, Result};

/// Extensions tried when an image named in a file is not in the image folder under that name:
/// the published OwlEval answer files say `1.png` where the images are `cases/1.jpg`.
const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "gif", "webp", "bmp"];

/// One question with every model's answer.
#[derive(Debug, Clone)]
pub struct Question {
    pub id: i64,
    /// The text shown to annotators: from the questions file, else from the first answer file.
    pub text: String,
    /// The image name as the files give it.
    pub image_name: String,
    /// The image file found in the image folder (None when no folder was given).
    pub image_path: Option<PathBuf>,
    /// Answers indexed like [`AnswerSet::models`].
    pub answers: Vec<String>,
    /// The earlier turns of a multi-turn question: the texts of the questions just before it,
    /// with consecutive ids, on the same image (how OwlEval lays out its conversations).
    pub earlier: Vec<String>,
}

/// All questions and answers of one rating run.
#[derive(Debug, Clone)]
pub struct AnswerSet {
    /// Model ids, sorted; a model's index here is its index in every `Question::answers`.
    pub models: Vec<String>,
    /// Questions sorted by id: the order annotators go through them.
    pub questions: Vec<Question>,
}

#[derive(Deserialize)]
struct RawAnswer {
    image: String,
    question_id: i64,
    question: String,
    answer: String,
    model_id: String,
}

#[derive(Deserialize)]
struct RawQuestion {
    image: String,
    question_id: i64,
    question: String,
}

#[derive(Debug, Clone)]
struct Loc {
    file: String,
    line: usize,
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

struct Entry {
    text: String,
    image: String,
    answer: String,
    loc: Loc,
}

impl AnswerSet {
    /// Reads the answer files (a file may hold several models, a model may span files), the
    /// optional questions file and resolves images in `images`.
    ///
    /// Question texts are not compared between files: the published OwlEval answer files carry
    /// texts re-typed from a PDF (missing spaces, full-width question marks, two questions merged
    /// into one line), so only question ids and image names (up to the extension) must agree.
    pub fn load(
        answer_files: &[PathBuf],
        questions_file: Option<&Path>,
        images: Option<&Path>,
    ) -> Result<AnswerSet> {
        if answer_files.is_empty() {
            return Err(Error::Invalid("no answer files given".into()));
        }
        let mut by_model: BTreeMap<String, BTreeMap<i64, Entry>> = BTreeMap::new();
        let mut first_model: Option<String> = None;
        let mut model_file: BTreeMap<String, String> = BTreeMap::new();
        for path in answer_files {
            let file = path.display().to_string();
            let mut any = false;
            for (line, text) in read_lines(path)? {
                let raw: RawAnswer = serde_json::from_str(&text)
                    .map_err(|e| Error::input(&file, Some(line), format!("bad answer: {e}")))?;
                let model = raw.model_id.trim().to_string();
                if model.is_empty() {
                    return Err(Error::input(&file, Some(line), "empty `model_id`"));
                }
                any = true;
                first_model.get_or_insert_with(|| model.clone());
                model_file
                    .entry(model.clone())
                    .or_insert_with(|| file.clone());
                let loc = Loc {
                    file: file.clone(),
                    line,
                };
                let answers = by_model.entry(model.clone()).or_default();
                if let Some(first) = answers.get(&raw.question_id) {
                    return Err(Error::input(
                        &file,
                        Some(line),
                        format!(
                            "duplicate answer of model `{model}` to question_id {} (first at {})",
                            raw.question_id, first.loc
                        ),
                    ));
                }
                answers.insert(
                    raw.question_id,
                    Entry {
                        text: raw.question,
                        image: raw.image,
                        answer: raw.answer,
                        loc,
                    },
                );
            }
            if !any {
                return Err(Error::input(&file, None, "no answers in this file"));
            }
        }
        let first_model = first_model.unwrap_or_default();

        // The reference every model is checked against: the questions file, else the first model.
        let (reference, ref_name): (BTreeMap<i64, (String, String, Loc)>, String) =
            match questions_file {
                Some(q) => (
                    read_questions(q)?,
                    format!("the questions file {}", q.display()),
                ),
                None => {
                    let entries = &by_model[&first_model];
                    let map = entries
                        .iter()
                        .map(|(id, e)| (*id, (e.text.clone(), e.image.clone(), e.loc.clone())))
                        .collect();
                    let file = &model_file[&first_model];
                    (
                        map,
                        format!("the answers of model `{first_model}` in {file}"),
                    )
                }
            };

        for (model, answers) in &by_model {
            for (id, entry) in answers {
                let Some((_, ref_image, ref_loc)) = reference.get(id) else {
                    return Err(Error::input(
                        &entry.loc.file,
                        Some(entry.loc.line),
                        format!("question_id {id} of model `{model}` is not in {ref_name}"),
                    ));
                };
                if stem(&entry.image) != stem(ref_image) {
                    return Err(Error::input(
                        &entry.loc.file,
                        Some(entry.loc.line),
                        format!(
                            "question_id {id} is about image `{}`, but {ref_loc} says `{ref_image}`",
                            entry.image
                        ),
                    ));
                }
            }
            if let Some((id, (_, _, ref_loc))) =
                reference.iter().find(|(id, _)| !answers.contains_key(id))
            {
                return Err(Error::input(
                    &model_file[model],
                    None,
                    format!(
                        "model `{model}` has no answer to question_id {id} ({ref_name}, {ref_loc})"
                    ),
                ));
            }
        }
        if by_model.len() < 2 {
            return Err(Error::Invalid(format!(
                "the answer files hold only model `{first_model}`; rating compares at least 2 models"
            )));
        }

        let models: Vec<String> = by_model.keys().cloned().collect();
        let mut questions: Vec<Question> = Vec::with_capacity(reference.len());
        for (id, (text, image, loc)) in reference {
            let image_path = match images {
                Some(dir) => Some(resolve_image(dir, &image).ok_or_else(|| {
                    Error::input(
                        &loc.file,
                        Some(loc.line),
                        format!(
                            "image `{image}` is not in {} (also tried the extensions {})",
                            dir.display(),
                            IMAGE_EXTENSIONS.join(", ")
                        ),
                    )
                })?),
                None => None,
            };
            let answers = models
                .iter()
                .map(|m| by_model[m][&id].answer.clone())
                .collect();
            let earlier = match questions.last() {
                Some(prev) if prev.id + 1 == id && stem(&prev.image_name) == stem(&image) => {
                    let mut e = prev.earlier.clone();
                    e.push(prev.text.clone());
                    e
                }
                _ => Vec::new(),
            };
            questions.push(Question {
                id,
                text,
                image_name: image,
                image_path,
                answers,
                earlier,
            });
        }
        Ok(AnswerSet { models, questions })
    }

    /// The position of question `id` in [`AnswerSet::questions`].
    pub fn position(&self, id: i64) -> Option<usize> {
        self.questions.binary_search_by_key(&id, |q| q.id).ok()
    }

    /// Question `id`, if the files have it.
    pub fn question(&self, id: i64) -> Option<&Question> {
        self.position(id).map(|i| &self.questions[i])
    }

    /// The question ids in rating order.
    pub fn question_ids(&self) -> Vec<i64> {
        self.questions.iter().map(|q| q.id).collect()
    }
}

/// Non-blank lines of a JSONL file with their 1-based numbers.
fn read_lines(path: &Path) -> Result<Vec<(usize, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect())
}

fn read_questions(path: &Path) -> Result<BTreeMap<i64, (String, String, Loc)>> {
    let file = path.display().to_string();
    let mut out: BTreeMap<i64, (String, String, Loc)> = BTreeMap::new();
    for (line, text) in read_lines(path)? {
        let raw: RawQuestion = serde_json::from_str(&text)
            .map_err(|e| Error::input(&file, Some(line), format!("bad question: {e}")))?;
        let loc = Loc {
            file: file.clone(),
            line,
        };
        if let Some((_, _, first)) = out.get(&raw.question_id) {
            return Err(Error::input(
                &file,
                Some(line),
                format!(
                    "duplicate question_id {} (first at {first})",
                    raw.question_id
                ),
            ));
        }
        out.insert(raw.question_id, (raw.question, raw.image, loc));
    }
    if out.is_empty() {
        return Err(Error::input(&file, None, "no questions in this file"));
    }
    Ok(out)
}

fn stem(name: &str) -> &str {
    Path::new(name)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(name)
}

/// Finds `name` in `dir`, or a file with the same stem and a common image extension.
fn resolve_image(dir: &Path, name: &str) -> Option<PathBuf> {
    let exact = dir.join(name);
    if exact.is_file() {
        return Some(exact);
    }
    let stem = stem(name);
    IMAGE_EXTENSIONS
        .iter()
        .map(|ext| dir.join(format!("{stem}.{ext}")))
        .find(|p| p.is_file())
}
