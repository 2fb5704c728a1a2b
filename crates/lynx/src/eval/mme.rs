//! MME scoring (paper Section 3.2 compares on MME): reads MME's official results format (one
//! `<subtask>.txt` per subtask, lines `image<TAB>question<TAB>ground_truth<TAB>prediction`,
//! the two questions of an image on consecutive lines) and computes what MME's official
//! `eval_tool/calculation.py` computes: the answer is the lowercased prediction if it is exactly
//! "yes"/"no", else "yes" if its first four characters contain "yes", else "no" if they contain
//! "no", else "other" (which counts as wrong); acc = 100 × correct / questions, acc+ = 100 ×
//! images with both answers right / images, score = acc + acc+; perception and cognition sum
//! their subtasks' scores (max 2000 and 800).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// MME's perception subtasks.
pub const PERCEPTION: [&str; 10] = [
    "existence",
    "count",
    "position",
    "color",
    "posters",
    "celebrity",
    "scene",
    "landmark",
    "artwork",
    "OCR",
];
/// MME's cognition subtasks.
pub const COGNITION: [&str; 4] = [
    "commonsense_reasoning",
    "numerical_calculation",
    "text_translation",
    "code_reasoning",
];

/// A prediction read the way MME's tool reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmeAnswer {
    Yes,
    No,
    Other,
}

/// MME's answer parsing: exact "yes"/"no" after lowercasing, else a "yes" or (failing that) a
/// "no" within the first four characters, else `Other`. Note the tool does not trim, so
/// "  yes" (two leading spaces) is `Other` and "not sure" is `No`.
pub fn parse_mme_answer(prediction: &str) -> MmeAnswer {
    let lower = prediction.to_lowercase();
    match lower.as_str() {
        "yes" => return MmeAnswer::Yes,
        "no" => return MmeAnswer::No,
        _ => {}
    }
    let prefix: String = lower.chars().take(4).collect();
    if prefix.contains("yes") {
        MmeAnswer::Yes
    } else if prefix.contains("no") {
        MmeAnswer::No
    } else {
        MmeAnswer::Other
    }
}

/// Scores of one subtask.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubtaskScore {
    /// 100 × correct / questions.
    pub acc: f64,
    /// 100 × images with both questions right / images.
    pub acc_plus: f64,
    /// acc + acc_plus (max 200).
    pub score: f64,
    pub questions: usize,
    pub images: usize,
    /// Predictions read as neither yes nor no.
    pub other: usize,
}

/// The MME report (`REPORT.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MmeReport {
    pub subtasks: BTreeMap<String, SubtaskScore>,
    /// Sum of the perception subtasks' scores present.
    pub perception: f64,
    /// Sum of the cognition subtasks' scores present.
    pub cognition: f64,
    /// Known subtasks without a results file (not in the sums).
    #[serde(default)]
    pub missing_subtasks: Vec<String>,
    /// `.txt` files in the results folder that are not MME subtasks (not read).
    #[serde(default)]
    pub ignored_files: Vec<String>,
}

/// One parsed results line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultLine {
    pub line: usize,
    pub image: String,
    pub question: String,
    pub ground_truth: String,
    pub prediction: String,
}

/// Splits `text` into results lines; `file` names errors. Blank lines are skipped.
pub fn parse_results(file: &str, text: &str) -> Result<Vec<ResultLine>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = raw.split('\t').collect();
        let [image, question, gt, pred] = fields.as_slice() else {
            return Err(Error::parse(
                file,
                Some(i + 1),
                format!(
                    "expected 4 tab-separated fields (image, question, ground truth, prediction), found {}",
                    fields.len()
                ),
            ));
        };
        let gt = gt.trim().to_lowercase();
        if gt != "yes" && gt != "no" {
            return Err(Error::parse(
                file,
                Some(i + 1),
                format!("ground truth must be yes or no, found {gt:?}"),
            ));
        }
        out.push(ResultLine {
            line: i + 1,
            image: image.to_string(),
            question: question.to_string(),
            ground_truth: gt,
            prediction: pred.to_string(),
        });
    }
    Ok(out)
}

/// Scores one subtask's lines: consecutive pairs are one image's two questions.
pub fn score_lines(file: &str, lines: &[ResultLine]) -> Result<SubtaskScore> {
    if lines.is_empty() {
        return Err(Error::parse(file, None, "no results lines"));
    }
    if lines.len() % 2 == 1 {
        let last = &lines[lines.len() - 1];
        return Err(Error::parse(
            file,
            Some(last.line),
            format!(
                "{} questions: MME has two per image, this one has no partner",
                lines.len()
            ),
        ));
    }
    let (mut correct, mut both, mut other) = (0, 0, 0);
    for pair in lines.chunks(2) {
        if pair[0].image != pair[1].image {
            return Err(Error::parse(
                file,
                Some(pair[1].line),
                format!(
                    "image {:?} follows {:?} (line {}): an image's two questions must be on consecutive lines",
                    pair[1].image, pair[0].image, pair[0].line
                ),
            ));
        }
        let mut right = 0;
        for l in pair {
            let expected = if l.ground_truth == "yes" {
                MmeAnswer::Yes
            } else {
                MmeAnswer::No
            };
            match parse_mme_answer(&l.prediction) {
                MmeAnswer::Other => other += 1,
                a if a == expected => right += 1,
                _ => {}
            }
        }
        correct += right;
        both += usize::from(right == 2);
    }
    let questions = lines.len();
    let images = questions / 2;
    let acc = 100.0 * correct as f64 / questions as f64;
    let acc_plus = 100.0 * both as f64 / images as f64;
    Ok(SubtaskScore {
        acc,
        acc_plus,
        score: acc + acc_plus,
        questions,
        images,
        other,
    })
}

/// Scores one `<subtask>.txt` results file.
pub fn score_results_file(path: &Path) -> Result<SubtaskScore> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let file = path.display().to_string();
    score_lines(&file, &parse_results(&file, &text)?)
}

/// Scores every MME subtask file in `dir`.
pub fn score_results_dir(dir: &Path) -> Result<MmeReport> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut ignored = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(stem) = name.strip_suffix(".txt") {
            if !PERCEPTION.contains(&stem) && !COGNITION.contains(&stem) {
                ignored.push(name.clone());
            }
        }
    }
    ignored.sort();
    let mut report = MmeReport {
        subtasks: BTreeMap::new(),
        perception: 0.0,
        cognition: 0.0,
        missing_subtasks: Vec::new(),
        ignored_files: ignored,
    };
    for (names, total) in [
        (&PERCEPTION[..], &mut report.perception),
        (&COGNITION[..], &mut report.cognition),
    ] {
        for name in names {
            let path = dir.join(format!("{name}.txt"));
            if !path.is_file() {
                report.missing_subtasks.push(name.to_string());
                continue;
            }
            let s = score_results_file(&path)?;
            *total += s.score;
            report.subtasks.insert(name.to_string(), s);
        }
    }
    if report.subtasks.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no MME results files (<subtask>.txt for {} ...)",
            dir.display(),
            PERCEPTION[..3].join(", ")
        )));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_follows_the_official_tool() {
        use MmeAnswer::*;
        for (p, a) in [
            ("yes", Yes),
            ("No", No),
            ("Yes, there is a dog.", Yes),
            ("NO.", No),
            (" yes", Yes),
            ("  yes", Other),
            ("not sure", No),
            ("none", No),
            ("I think yes", Other),
            ("", Other),
            ("nyes", Yes),
            ("Maybe", Other),
        ] {
            assert_eq!(parse_mme_answer(p), a, "{p:?}");
        }
    }

    #[test]
    fn acc_and_acc_plus() {
        let text = "a.jpg\tQ1\tYes\tYes\n\
                    a.jpg\tQ2\tNo\tNo, it is not.\n\
                    b.jpg\tQ1\tYes\tyes\n\
                    b.jpg\tQ2\tNo\tI cannot tell\n\
                    \n\
                    c.jpg\tQ1\tYes\tNo\n\
                    c.jpg\tQ2\tNo\tYes\n";
        let lines = parse_results("t.txt", text).unwrap();
        let s = score_lines("t.txt", &lines).unwrap();
        // correct: a1 a2 b1 = 3 of 6; both right: a = 1 of 3
        assert_eq!((s.questions, s.images, s.other), (6, 3, 1));
        assert!((s.acc - 50.0).abs() < 1e-12);
        assert!((s.acc_plus - 100.0 / 3.0).abs() < 1e-12);
        assert!((s.score - (50.0 + 100.0 / 3.0)).abs() < 1e-12);
    }

    #[test]
    fn malformed_lines_are_named() {
        let e = parse_results("t.txt", "a.jpg\tQ\tYes\tYes\nb.jpg\tQ\tYes\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.txt:2: expected 4 tab-separated fields"),
            "{e}"
        );
        let e = parse_results("t.txt", "a.jpg\tQ\tmaybe\tYes\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.txt:1: ground truth must be yes or no"), "{e}");
        let lines = parse_results("t.txt", "a.jpg\tQ\tyes\tYes\nb.jpg\tQ\tno\tno\n").unwrap();
        let e = score_lines("t.txt", &lines).unwrap_err().to_string();
        assert!(
            e.contains("t.txt:2: image \"b.jpg\" follows \"a.jpg\""),
            "{e}"
        );
        let e = score_lines("t.txt", &lines[..1]).unwrap_err().to_string();
        assert!(e.contains("t.txt:1: 1 questions"), "{e}");
    }
}
