//! Open-VQA scoring (paper Section 3.1, Tables 1 and 2): pairs predictions with annotations by
//! `index`, asks a judge whether each answer implies the ground truth, and counts
//! correct/total per class. Every annotation counts in the totals, so a missing or empty
//! prediction is wrong; problems are listed by index (and file:line), never dropped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::open_vqa::{load_annotations, load_predictions, Annotation, Prediction, SampleIndex};
use crate::{Error, Result};

/// What happened to one annotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The judge gave a yes/no verdict.
    Judged,
    /// The judge's reply began with neither yes nor no (counted wrong).
    Unparseable,
    /// No prediction has this index (counted wrong).
    Missing,
    /// The prediction's text is empty (counted wrong, not sent to the judge).
    Empty,
}

/// Per-annotation outcome kept in the report so two judges can be compared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ItemVerdict {
    pub index: SampleIndex,
    pub class: String,
    pub status: Status,
    pub correct: bool,
    /// The LLM judge's raw reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
}

/// What the judge is asked about one prediction.
#[derive(Clone, Copy, Debug)]
pub struct JudgeQuery<'a> {
    pub question: &'a str,
    pub prediction: &'a str,
    pub answers: &'a [String],
}

/// A judge's answer for one query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JudgeOutcome {
    /// The answer implies the ground truth (true) or not (false); `reply` is the raw text of an
    /// LLM judge.
    Verdict {
        correct: bool,
        reply: Option<String>,
    },
    /// The reply could not be read as yes or no.
    Unparseable { reply: String },
}

/// Something that decides whether predictions imply the ground truth.
pub trait Judge {
    /// `"rule"` or `"llm"`.
    fn kind(&self) -> &'static str;
    /// The judge model's name, for LLM judges.
    fn model(&self) -> Option<String>;
    /// One outcome per query, in order.
    fn judge_all(&mut self, queries: &[JudgeQuery<'_>]) -> Result<Vec<JudgeOutcome>>;
}

/// Correct and total answers of one class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassScore {
    pub correct: usize,
    pub total: usize,
}

/// The Open-VQA report (`REPORT.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenVqaReport {
    /// Row label in tables (the model's name).
    pub name: String,
    /// `"rule"` or `"llm"`.
    pub judge: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge_model: Option<String>,
    pub annotations: String,
    pub predictions: String,
    /// FNV-1a 64 of the predictions file's bytes: tells which reports judged the same answers.
    pub predictions_digest: String,
    pub classes: BTreeMap<String, ClassScore>,
    /// 100 × correct / total over all classes.
    pub overall: f64,
    pub judged: usize,
    pub unparseable: usize,
    pub missing: Vec<SampleIndex>,
    pub extra: Vec<SampleIndex>,
    #[serde(default)]
    pub duplicates: Vec<SampleIndex>,
    #[serde(default)]
    pub empty: Vec<SampleIndex>,
    /// One entry per annotation, in annotation order.
    #[serde(default)]
    pub verdicts: Vec<ItemVerdict>,
}

impl OpenVqaReport {
    /// Correct and total over all classes.
    pub fn totals(&self) -> (usize, usize) {
        self.classes
            .values()
            .fold((0, 0), |(c, t), s| (c + s.correct, t + s.total))
    }
}

/// A report plus human-readable warnings naming file and line of each input problem.
#[derive(Clone, Debug)]
pub struct OpenVqaRun {
    pub report: OpenVqaReport,
    pub warnings: Vec<String>,
}

/// FNV-1a 64-bit, as hex: a fingerprint, not a security hash.
pub fn fnv1a_hex(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Scores `predictions_path` against `annotations_path` with `judge`; `name` labels the row.
pub fn score_files(
    annotations_path: &Path,
    predictions_path: &Path,
    judge: &mut dyn Judge,
    name: &str,
) -> Result<OpenVqaRun> {
    let annotations = load_annotations(annotations_path)?;
    let predictions = load_predictions(predictions_path)?;
    let bytes = std::fs::read(predictions_path).map_err(|e| Error::io(predictions_path, e))?;
    let mut run = score(
        &annotations,
        &predictions,
        judge,
        &predictions_path.display().to_string(),
    )?;
    run.report.name = name.to_string();
    run.report.annotations = annotations_path.display().to_string();
    run.report.predictions = predictions_path.display().to_string();
    run.report.predictions_digest = fnv1a_hex(&bytes);
    Ok(run)
}

/// Scores loaded predictions; `pred_file` names the predictions in warnings.
pub fn score(
    annotations: &[Annotation],
    predictions: &[Prediction],
    judge: &mut dyn Judge,
    pred_file: &str,
) -> Result<OpenVqaRun> {
    let mut warnings = Vec::new();
    let known: HashSet<&SampleIndex> = annotations.iter().map(|a| &a.index).collect();
    let mut by_index: HashMap<&SampleIndex, &Prediction> = HashMap::new();
    let (mut extra, mut duplicates) = (Vec::new(), Vec::new());
    for p in predictions {
        if !known.contains(&p.index) {
            warnings.push(format!(
                "{pred_file}:{}: index {} is not in the annotations",
                p.line, p.index
            ));
            extra.push(p.index.clone());
        } else if let Some(first) = by_index.get(&p.index) {
            warnings.push(format!(
                "{pred_file}:{}: duplicate index {} (line {} is used)",
                p.line, p.index, first.line
            ));
            duplicates.push(p.index.clone());
        } else {
            by_index.insert(&p.index, p);
        }
    }

    let (mut missing, mut empty) = (Vec::new(), Vec::new());
    let mut queries = Vec::new();
    // Per annotation: the judge query's position, or why there is none.
    let mut query_of: Vec<std::result::Result<usize, Status>> =
        Vec::with_capacity(annotations.len());
    for a in annotations {
        match by_index.get(&a.index) {
            None => {
                warnings.push(format!("no prediction for index {}", a.index));
                missing.push(a.index.clone());
                query_of.push(Err(Status::Missing));
            }
            Some(p) if p.text.trim().is_empty() => {
                warnings.push(format!(
                    "{pred_file}:{}: empty answer for index {}",
                    p.line, a.index
                ));
                empty.push(a.index.clone());
                query_of.push(Err(Status::Empty));
            }
            Some(p) => {
                query_of.push(Ok(queries.len()));
                queries.push(JudgeQuery {
                    question: &a.question,
                    prediction: p.text.trim(),
                    answers: &a.answers,
                });
            }
        }
    }

    let outcomes = judge.judge_all(&queries)?;
    if outcomes.len() != queries.len() {
        return Err(Error::Invalid(format!(
            "judge returned {} outcomes for {} queries",
            outcomes.len(),
            queries.len()
        )));
    }

    let mut classes: BTreeMap<String, ClassScore> = BTreeMap::new();
    let (mut judged, mut unparseable) = (0, 0);
    let mut verdicts = Vec::with_capacity(annotations.len());
    for (a, q) in annotations.iter().zip(&query_of) {
        let (status, correct, reply) = match q {
            Err(status) => (*status, false, None),
            Ok(i) => match &outcomes[*i] {
                JudgeOutcome::Verdict { correct, reply } => {
                    judged += 1;
                    (Status::Judged, *correct, reply.clone())
                }
                JudgeOutcome::Unparseable { reply } => {
                    unparseable += 1;
                    warnings.push(format!(
                        "index {}: judge reply is neither yes nor no: {reply:?}",
                        a.index
                    ));
                    (Status::Unparseable, false, Some(reply.clone()))
                }
            },
        };
        let entry = classes.entry(a.class.clone()).or_default();
        entry.total += 1;
        entry.correct += usize::from(correct);
        verdicts.push(ItemVerdict {
            index: a.index.clone(),
            class: a.class.clone(),
            status,
            correct,
            reply,
        });
    }
    let (c, t) = classes
        .values()
        .fold((0, 0), |(c, t), s| (c + s.correct, t + s.total));
    let overall = if t == 0 {
        0.0
    } else {
        100.0 * c as f64 / t as f64
    };
    Ok(OpenVqaRun {
        report: OpenVqaReport {
            name: String::new(),
            judge: judge.kind().to_string(),
            judge_model: judge.model(),
            annotations: String::new(),
            predictions: pred_file.to_string(),
            predictions_digest: String::new(),
            classes,
            overall,
            judged,
            unparseable,
            missing,
            extra,
            duplicates,
            empty,
            verdicts,
        },
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Says yes when the prediction equals the first answer; "maybe" when it is "?".
    struct Exact;
    impl Judge for Exact {
        fn kind(&self) -> &'static str {
            "exact"
        }
        fn model(&self) -> Option<String> {
            None
        }
        fn judge_all(&mut self, qs: &[JudgeQuery<'_>]) -> Result<Vec<JudgeOutcome>> {
            Ok(qs
                .iter()
                .map(|q| match q.prediction {
                    "?" => JudgeOutcome::Unparseable {
                        reply: "maybe".into(),
                    },
                    p => JudgeOutcome::Verdict {
                        correct: p == q.answers[0],
                        reply: None,
                    },
                })
                .collect())
        }
    }

    fn ann(i: i64, class: &str, answer: &str) -> Annotation {
        Annotation {
            index: SampleIndex::Int(i),
            question: format!("q{i}"),
            answers: vec![answer.into()],
            class: class.into(),
            line: i as usize,
        }
    }
    fn pred(i: i64, text: &str, line: usize) -> Prediction {
        Prediction {
            index: SampleIndex::Int(i),
            text: text.into(),
            line,
        }
    }

    #[test]
    fn counts_every_annotation_and_lists_problems() {
        let anns = vec![
            ann(1, "OCR", "a"),
            ann(2, "OCR", "b"),
            ann(3, "Color", "c"),
            ann(4, "Color", "d"),
            ann(5, "Others", "e"),
        ];
        let preds = vec![
            pred(1, "a", 1),
            pred(2, "x", 2),
            pred(3, " ", 3),
            pred(9, "z", 4),
            pred(1, "zzz", 5),
            pred(5, "?", 6),
        ];
        let run = score(&anns, &preds, &mut Exact, "p.jsonl").unwrap();
        let r = &run.report;
        assert_eq!(
            r.classes["OCR"],
            ClassScore {
                correct: 1,
                total: 2
            }
        );
        assert_eq!(
            r.classes["Color"],
            ClassScore {
                correct: 0,
                total: 2
            }
        );
        assert_eq!(
            r.classes["Others"],
            ClassScore {
                correct: 0,
                total: 1
            }
        );
        assert_eq!(r.totals(), (1, 5));
        assert!((r.overall - 20.0).abs() < 1e-12);
        assert_eq!(r.missing, vec![SampleIndex::Int(4)]);
        assert_eq!(r.extra, vec![SampleIndex::Int(9)]);
        assert_eq!(r.duplicates, vec![SampleIndex::Int(1)]);
        assert_eq!(r.empty, vec![SampleIndex::Int(3)]);
        assert_eq!((r.judged, r.unparseable), (2, 1));
        let st: Vec<Status> = r.verdicts.iter().map(|v| v.status).collect();
        use Status::*;
        assert_eq!(st, vec![Judged, Judged, Empty, Missing, Unparseable]);
        let w = run.warnings.join("\n");
        assert!(
            w.contains("p.jsonl:4: index 9 is not in the annotations"),
            "{w}"
        );
        assert!(
            w.contains("p.jsonl:5: duplicate index 1 (line 1 is used)"),
            "{w}"
        );
        assert!(w.contains("p.jsonl:3: empty answer for index 3"), "{w}");
        assert!(w.contains("no prediction for index 4"), "{w}");
    }

    #[test]
    fn fingerprint_is_fnv1a() {
        assert_eq!(fnv1a_hex(b""), "cbf29ce484222325");
        assert_eq!(fnv1a_hex(b"a"), "af63dc4c8601ec8c");
    }
}
