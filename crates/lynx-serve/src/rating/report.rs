//! The numbers of `lynx rate report`: average score per model as in the paper's Figure 4
//! ("scores are averaged over the number of questions"), per-annotator summaries, and
//! inter-annotator agreement (Krippendorff's alpha, interval and ordinal, and the mean pairwise
//! Spearman correlation) when several people rated.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::rules::Rules;
use crate::{Error, Result};

/// One model's average.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelScore {
    pub model: String,
    /// Mean over rated questions of the question's mean score across annotators.
    pub mean: f64,
    /// Questions rated by at least one annotator.
    pub questions: usize,
    /// Scores given to this model in all.
    pub ratings: usize,
    /// The model's mean score from each annotator (in [`Report::annotators`] order).
    pub per_annotator: Vec<Option<f64>>,
}

/// One annotator's work.
#[derive(Debug, Clone, PartialEq)]
pub struct AnnotatorSummary {
    pub name: String,
    pub questions: usize,
    /// Ties used, as the server counts them (see `rules.rs`).
    pub ties: usize,
}

/// Spearman's rho between two annotators over the (question, model) scores both gave.
#[derive(Debug, Clone, PartialEq)]
pub struct PairSpearman {
    pub a: String,
    pub b: String,
    pub units: usize,
    /// None when fewer than 2 common scores or one side is constant.
    pub rho: Option<f64>,
}

/// Agreement between annotators; a unit is one (question, model) pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// Units scored by at least 2 annotators.
    pub units: usize,
    pub alpha_interval: Option<f64>,
    pub alpha_ordinal: Option<f64>,
    pub spearman_mean: Option<f64>,
    pub pairs: Vec<PairSpearman>,
}

/// Everything `lynx rate report` prints and plots.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub total_questions: usize,
    /// Sorted by mean, best first.
    pub models: Vec<ModelScore>,
    pub annotators: Vec<AnnotatorSummary>,
    /// Present when at least 2 annotators rated something.
    pub agreement: Option<Agreement>,
}

/// Distance between scores for Krippendorff's alpha.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Squared difference of the scores.
    Interval,
    /// Squared count of values between the two ranks (Krippendorff's ordinal metric).
    Ordinal,
}

/// One stored score: (annotator index, question id, model id, score).
pub type Rating = (usize, i64, String, u8);

impl Report {
    /// Reads a ratings database written by `lynx rate serve`.
    pub fn load(path: &Path) -> Result<Report> {
        let name = path.display().to_string();
        if !path.is_file() {
            return Err(Error::db(&name, "no such ratings database"));
        }
        let err = |e: rusqlite::Error| Error::db(&name, e);
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(err)?;
        let meta = |key: &str| -> Result<String> {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
                .map_err(err)?
                .ok_or_else(|| {
                    Error::db(
                        &name,
                        format!("no meta `{key}`: not a database of `lynx rate serve`"),
                    )
                })
        };
        let bad = |key: &str, e: serde_json::Error| Error::db(&name, format!("meta `{key}`: {e}"));
        let models: Vec<String> =
            serde_json::from_str(&meta("models")?).map_err(|e| bad("models", e))?;
        let questions: Vec<i64> =
            serde_json::from_str(&meta("questions")?).map_err(|e| bad("questions", e))?;
        let rules: Rules = serde_json::from_str(&meta("rules")?).map_err(|e| bad("rules", e))?;

        let mut stmt = conn
            .prepare(
                "SELECT a.name, r.question_id, r.model_id, r.score FROM ratings r
                 JOIN annotators a ON a.id = r.annotator_id ORDER BY a.name",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, u8>(3)?,
                ))
            })
            .map_err(err)?;
        let mut annotators: Vec<String> = Vec::new();
        let mut ratings = Vec::new();
        for row in rows {
            let (who, q, m, s) = row.map_err(err)?;
            if annotators.last() != Some(&who) {
                annotators.push(who);
            }
            ratings.push((annotators.len() - 1, q, m, s));
        }
        if ratings.is_empty() {
            return Err(Error::db(&name, "no ratings yet"));
        }
        Ok(Report::from_ratings(
            &models,
            questions.len(),
            &rules,
            &annotators,
            &ratings,
        ))
    }

    /// Computes the report from raw scores; `models` lists every model, rated or not.
    pub fn from_ratings(
        models: &[String],
        total_questions: usize,
        rules: &Rules,
        annotators: &[String],
        ratings: &[Rating],
    ) -> Report {
        // question -> model -> scores of all annotators; annotator -> model -> scores.
        let mut by_question: BTreeMap<i64, HashMap<&str, Vec<f64>>> = BTreeMap::new();
        let mut by_annotator: Vec<HashMap<&str, Vec<f64>>> = vec![HashMap::new(); annotators.len()];
        let mut per_annotator_question: Vec<BTreeMap<i64, Vec<u8>>> =
            vec![BTreeMap::new(); annotators.len()];
        for (a, q, m, s) in ratings {
            by_question
                .entry(*q)
                .or_default()
                .entry(m)
                .or_default()
                .push(f64::from(*s));
            by_annotator[*a].entry(m).or_default().push(f64::from(*s));
            per_annotator_question[*a].entry(*q).or_default().push(*s);
        }
        let mut scores: Vec<ModelScore> = models
            .iter()
            .map(|m| {
                let per_q: Vec<f64> = by_question
                    .values()
                    .filter_map(|qm| qm.get(m.as_str()).map(|v| mean(v)))
                    .collect();
                ModelScore {
                    model: m.clone(),
                    mean: if per_q.is_empty() {
                        f64::NAN
                    } else {
                        mean(&per_q)
                    },
                    questions: per_q.len(),
                    ratings: by_question
                        .values()
                        .filter_map(|qm| qm.get(m.as_str()))
                        .map(Vec::len)
                        .sum(),
                    per_annotator: by_annotator
                        .iter()
                        .map(|am| am.get(m.as_str()).map(|v| mean(v)))
                        .collect(),
                }
            })
            .collect();
        scores.sort_by(|a, b| {
            b.mean
                .total_cmp(&a.mean)
                .then_with(|| a.model.cmp(&b.model))
        });
        let summaries = annotators
            .iter()
            .zip(&per_annotator_question)
            .map(|(name, qs)| AnnotatorSummary {
                name: name.clone(),
                questions: qs.len(),
                ties: qs.values().map(|s| rules.ties(s)).sum(),
            })
            .collect();
        let agreement = (annotators.len() >= 2).then(|| agreement(annotators, ratings));
        Report {
            total_questions,
            models: scores,
            annotators: summaries,
            agreement,
        }
    }
}

fn agreement(annotators: &[String], ratings: &[Rating]) -> Agreement {
    let mut units: BTreeMap<(i64, &str), BTreeMap<usize, f64>> = BTreeMap::new();
    for (a, q, m, s) in ratings {
        units
            .entry((*q, m.as_str()))
            .or_default()
            .insert(*a, f64::from(*s));
    }
    let values: Vec<Vec<f64>> = units
        .values()
        .map(|u| u.values().copied().collect())
        .collect();
    let mut pairs = Vec::new();
    for a in 0..annotators.len() {
        for b in a + 1..annotators.len() {
            let (x, y): (Vec<f64>, Vec<f64>) = units
                .values()
                .filter_map(|u| Some((*u.get(&a)?, *u.get(&b)?)))
                .unzip();
            pairs.push(PairSpearman {
                a: annotators[a].clone(),
                b: annotators[b].clone(),
                units: x.len(),
                rho: spearman(&x, &y),
            });
        }
    }
    let rhos: Vec<f64> = pairs.iter().filter_map(|p| p.rho).collect();
    Agreement {
        units: values.iter().filter(|v| v.len() >= 2).count(),
        alpha_interval: krippendorff_alpha(&values, Metric::Interval),
        alpha_ordinal: krippendorff_alpha(&values, Metric::Ordinal),
        spearman_mean: (!rhos.is_empty()).then(|| mean(&rhos)),
        pairs,
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Krippendorff's alpha over `units` (each the values the coders gave one unit; units with
/// fewer than 2 values are not pairable and are left out). None when there is no pairable
/// value or no variation at all.
pub fn krippendorff_alpha(units: &[Vec<f64>], metric: Metric) -> Option<f64> {
    let mut levels: Vec<f64> = units
        .iter()
        .filter(|u| u.len() >= 2)
        .flatten()
        .copied()
        .collect();
    levels.sort_by(f64::total_cmp);
    levels.dedup();
    let k = levels.len();
    let index = |v: f64| levels.partition_point(|&l| l < v);
    // The coincidence matrix: each ordered pair of values within a unit adds 1/(m_u - 1).
    let mut o = vec![vec![0.0; k]; k];
    for u in units.iter().filter(|u| u.len() >= 2) {
        let w = 1.0 / (u.len() - 1) as f64;
        for (i, &x) in u.iter().enumerate() {
            for (j, &y) in u.iter().enumerate() {
                if i != j {
                    o[index(x)][index(y)] += w;
                }
            }
        }
    }
    let n_c: Vec<f64> = o.iter().map(|row| row.iter().sum()).collect();
    let n: f64 = n_c.iter().sum();
    if n < 2.0 {
        return None;
    }
    let delta = |c: usize, d: usize| -> f64 {
        match metric {
            Metric::Interval => (levels[c] - levels[d]).powi(2),
            Metric::Ordinal => {
                let (lo, hi) = (c.min(d), c.max(d));
                let between: f64 = n_c[lo..=hi].iter().sum();
                (between - (n_c[lo] + n_c[hi]) / 2.0).powi(2)
            }
        }
    };
    let (mut observed, mut expected) = (0.0, 0.0);
    for c in 0..k {
        for d in 0..k {
            let dd = delta(c, d);
            observed += o[c][d] * dd;
            expected += n_c[c] * n_c[d] * dd;
        }
    }
    if expected == 0.0 {
        return None;
    }
    Some(1.0 - (n - 1.0) * observed / expected)
}

/// Spearman's rho: Pearson's correlation of the ranks, tied values getting their mean rank.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 {
        return None;
    }
    let (rx, ry) = (ranks(x), ranks(y));
    let (mx, my) = (mean(&rx), mean(&ry));
    let cov: f64 = rx.iter().zip(&ry).map(|(a, b)| (a - mx) * (b - my)).sum();
    let vx: f64 = rx.iter().map(|a| (a - mx).powi(2)).sum();
    let vy: f64 = ry.iter().map(|b| (b - my).powi(2)).sum();
    (vx > 0.0 && vy > 0.0).then(|| cov / (vx * vy).sqrt())
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut out = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            out[k] = rank;
        }
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Krippendorff's worked example (4 observers, 12 units, values 1-5, some missing) from
    /// "Computing Krippendorff's Alpha-Reliability" (2011); `None` is a missing value.
    pub(crate) const TEXTBOOK: [[Option<u8>; 12]; 4] = {
        const N: Option<u8> = None;
        [
            [
                Some(1),
                Some(2),
                Some(3),
                Some(3),
                Some(2),
                Some(1),
                Some(4),
                Some(1),
                Some(2),
                N,
                N,
                N,
            ],
            [
                Some(1),
                Some(2),
                Some(3),
                Some(3),
                Some(2),
                Some(2),
                Some(4),
                Some(1),
                Some(2),
                Some(5),
                N,
                Some(3),
            ],
            [
                N,
                Some(3),
                Some(3),
                Some(3),
                Some(2),
                Some(3),
                Some(4),
                Some(2),
                Some(2),
                Some(5),
                Some(1),
                N,
            ],
            [
                Some(1),
                Some(2),
                Some(3),
                Some(3),
                Some(2),
                Some(4),
                Some(4),
                Some(1),
                Some(2),
                Some(5),
                Some(1),
                N,
            ],
        ]
    };

    fn textbook_units() -> Vec<Vec<f64>> {
        (0..12)
            .map(|u| {
                TEXTBOOK
                    .iter()
                    .filter_map(|c| c[u].map(f64::from))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn krippendorff_alpha_matches_the_published_example() {
        // Published: interval 0.849, ordinal 0.815 (the `krippendorff` Python package gives
        // 0.8491071428571428 and 0.8153875037548814).
        let units = textbook_units();
        let interval = krippendorff_alpha(&units, Metric::Interval).unwrap();
        let ordinal = krippendorff_alpha(&units, Metric::Ordinal).unwrap();
        assert!(
            (interval - 0.849_107_142_857_142_8).abs() < 1e-12,
            "{interval}"
        );
        assert!(
            (ordinal - 0.815_387_503_754_881_4).abs() < 1e-12,
            "{ordinal}"
        );
    }

    #[test]
    fn krippendorff_alpha_edge_cases() {
        // Perfect agreement with variation: 1; no variation at all: undefined.
        let perfect = vec![vec![1.0, 1.0], vec![3.0, 3.0], vec![5.0, 5.0, 5.0]];
        assert_eq!(krippendorff_alpha(&perfect, Metric::Interval), Some(1.0));
        assert_eq!(krippendorff_alpha(&perfect, Metric::Ordinal), Some(1.0));
        assert_eq!(
            krippendorff_alpha(&[vec![2.0, 2.0], vec![2.0, 2.0]], Metric::Interval),
            None
        );
        assert_eq!(
            krippendorff_alpha(&[vec![2.0], vec![4.0]], Metric::Interval),
            None
        );
    }

    #[test]
    fn spearman_uses_mean_ranks_for_ties() {
        // scipy.stats.spearmanr: observers A and B of the textbook example over their 9 common units.
        let (a, b): (Vec<f64>, Vec<f64>) = (0..12)
            .filter_map(|u| Some((f64::from(TEXTBOOK[0][u]?), f64::from(TEXTBOOK[1][u]?))))
            .unzip();
        assert_eq!(a.len(), 9);
        let rho = spearman(&a, &b).unwrap();
        assert!((rho - 0.931_594_261_397_024_7).abs() < 1e-12, "{rho}");
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[30.0, 20.0, 10.0]), Some(-1.0));
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[1.0], &[1.0]), None);
    }

    #[test]
    fn model_means_average_questions_not_ratings() {
        let models = ["m1".to_string(), "m2".to_string()];
        let annotators = ["ann".to_string(), "bob".to_string()];
        let r = |a: usize, q: i64, m: &str, s: u8| (a, q, m.to_string(), s);
        // Question 1 rated by both, question 2 by ann only.
        let ratings = vec![
            r(0, 1, "m1", 5),
            r(0, 1, "m2", 1),
            r(1, 1, "m1", 3),
            r(1, 1, "m2", 2),
            r(0, 2, "m1", 2),
            r(0, 2, "m2", 4),
        ];
        let rep = Report::from_ratings(&models, 82, &Rules::PAPER, &annotators, &ratings);
        // m1: question means 4 and 2 -> 3 (the mean of the 3 ratings would be 3.33).
        assert_eq!(rep.models[0].model, "m1");
        assert_eq!(rep.models[0].mean, 3.0);
        assert_eq!(rep.models[0].questions, 2);
        assert_eq!(rep.models[0].ratings, 3);
        assert_eq!(rep.models[0].per_annotator, vec![Some(3.5), Some(3.0)]);
        // m2: question means 1.5 and 4 -> 2.75.
        assert_eq!(rep.models[1].mean, 2.75);
        assert_eq!(rep.annotators[0].questions, 2);
        assert_eq!(rep.annotators[1].questions, 1);
        let ag = rep.agreement.unwrap();
        assert_eq!(ag.units, 2);
        assert_eq!(ag.pairs.len(), 1);
        assert_eq!(ag.pairs[0].units, 2);
        assert_eq!(ag.pairs[0].rho, Some(1.0));
    }
}
