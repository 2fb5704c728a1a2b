//! The OwlEval human-evaluation rules of the paper's Section 3.1, checked by the server: scores
//! 1-5, at most 2 models share a score on one question, at most 10 ties per annotator over the
//! whole set; and the anonymised, shuffled order in which an annotator sees the answers.
//!
//! What counts as a tie: on one question, every pair of answers with the same score is one tied
//! pair. With more models than score levels some pairs cannot be avoided (6 models on 5 levels
//! share at least one score), so the paper's budget of 10 ties for 82 questions could not be met
//! if those counted. A question's *ties* are therefore its tied pairs minus the fewest tied pairs
//! its number of answers forces (`forced_pairs`); with at most 5 models this is every tied pair.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Labels under which answers are shown: the page never sees a model id.
pub const LABELS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Score range and tie limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    pub min_score: u8,
    pub max_score: u8,
    /// How many answers of one question may share a score.
    pub max_tied_models: usize,
    /// How many ties (see the module doc) one annotator may use over the whole set.
    pub max_ties: usize,
}

/// A submission that breaks a rule: `code` is stable for programs, `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub code: &'static str,
    pub message: String,
}

fn pairs(n: usize) -> usize {
    n * n.saturating_sub(1) / 2
}

impl Rules {
    /// The rules of the paper: scores 1 to 5, at most 2 models equal, at most 10 ties.
    pub const PAPER: Rules = Rules {
        min_score: 1,
        max_score: 5,
        max_tied_models: 2,
        max_ties: 10,
    };

    /// Number of distinct scores.
    pub fn levels(&self) -> usize {
        usize::from(self.max_score - self.min_score) + 1
    }

    /// The most models that can be scored without breaking the shared-score limit.
    pub fn max_models(&self) -> usize {
        (self.levels() * self.max_tied_models).min(LABELS.len())
    }

    /// The fewest tied pairs `n` answers must have: scores spread as evenly as possible.
    pub fn forced_pairs(&self, n: usize) -> usize {
        let k = self.levels();
        let (q, r) = (n / k, n % k);
        r * pairs(q + 1) + (k - r) * pairs(q)
    }

    /// Pairs of answers sharing a score.
    pub fn tied_pairs(scores: &[u8]) -> usize {
        let mut counts = [0usize; 256];
        for &s in scores {
            counts[usize::from(s)] += 1;
        }
        counts.iter().map(|&c| pairs(c)).sum()
    }

    /// The ties one question's scores use up from the annotator's budget.
    pub fn ties(&self, scores: &[u8]) -> usize {
        Self::tied_pairs(scores).saturating_sub(self.forced_pairs(scores.len()))
    }

    /// Checks one question's scores, keyed by answer label, against the per-question rules and
    /// returns them in label order. The per-annotator tie budget is checked where the other
    /// questions' scores are known (the database transaction).
    pub fn check_scores(
        &self,
        n_answers: usize,
        submitted: &Map<String, Value>,
    ) -> Result<Vec<u8>, Violation> {
        let labels: Vec<String> = LABELS.chars().take(n_answers).map(String::from).collect();
        let span = format!("{}-{}", labels[0], labels[labels.len() - 1]);
        if let Some(unknown) = submitted.keys().find(|k| !labels.contains(k)) {
            return Err(Violation {
                code: "unknown_answer",
                message: format!(
                    "there is no answer `{unknown}` on this question (answers are {span})"
                ),
            });
        }
        let mut scores = Vec::with_capacity(n_answers);
        let mut missing = Vec::new();
        for label in &labels {
            let Some(value) = submitted.get(label) else {
                missing.push(label.as_str());
                continue;
            };
            let score = value
                .as_u64()
                .filter(|s| (u64::from(self.min_score)..=u64::from(self.max_score)).contains(s));
            match score {
                Some(s) => scores.push(s as u8),
                None => {
                    return Err(Violation {
                        code: "score_out_of_range",
                        message: format!(
                            "the score of answer {label} must be a whole number from {} to {}, got {value}",
                            self.min_score, self.max_score
                        ),
                    })
                }
            }
        }
        if !missing.is_empty() {
            return Err(Violation {
                code: "missing_score",
                message: format!(
                    "no score for answer{} {}: every answer of a question needs a score",
                    if missing.len() > 1 { "s" } else { "" },
                    join_and(&missing)
                ),
            });
        }
        for score in self.min_score..=self.max_score {
            let sharing: Vec<&str> = labels
                .iter()
                .zip(&scores)
                .filter(|(_, &s)| s == score)
                .map(|(l, _)| l.as_str())
                .collect();
            if sharing.len() > self.max_tied_models {
                return Err(Violation {
                    code: "shared_score",
                    message: format!(
                        "answers {} all have score {score}: at most {} answers may share a score on one question",
                        join_and(&sharing),
                        self.max_tied_models
                    ),
                });
            }
        }
        Ok(scores)
    }

    /// The budget check for a question with `n_answers` answers: `used_elsewhere` ties on the
    /// annotator's other questions plus `this` on this one.
    pub fn check_budget(
        &self,
        n_answers: usize,
        used_elsewhere: usize,
        this: usize,
    ) -> Result<(), Violation> {
        if used_elsewhere + this <= self.max_ties {
            return Ok(());
        }
        let forced = self.forced_pairs(n_answers);
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        Err(Violation {
            code: "tie_budget",
            message: format!(
                "these scores use {this} tie{} and you have used {used_elsewhere} on other questions: at most {} \
                 ties are allowed over the whole set (a tie is a pair of answers sharing a score, beyond the \
                 {forced} pair{} that {n_answers} answers on {} levels must share)",
                plural(this),
                self.max_ties,
                plural(forced),
                self.levels(),
            ),
        })
    }
}

/// "A", "A and B", "A, B and C".
fn join_and(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The order in which `annotator` sees the answers of `question_id`: position `p` on the page
/// shows model `order[p]` (an index into the sorted model ids). It depends only on the database's
/// secret, the annotator's name and the question, so a reload shows the same order, and
/// annotators cannot learn which position holds which model.
pub fn display_order(secret: u64, annotator: &str, question_id: i64, n: usize) -> Vec<usize> {
    // FNV-1a then splitmix64: fixed algorithms, so the order survives a toolchain upgrade
    // (std's DefaultHasher makes no such promise).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = secret
        .to_le_bytes()
        .into_iter()
        .chain(annotator.bytes())
        .chain([0xff])
        .chain(question_id.to_le_bytes());
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut next = move || {
        h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = h;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn submit(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn forced_pairs_spread_answers_evenly_over_the_levels() {
        let r = Rules::PAPER;
        assert_eq!(r.levels(), 5);
        assert_eq!(r.max_models(), 10);
        for (n, forced) in [(2, 0), (5, 0), (6, 1), (7, 2), (8, 3), (10, 5)] {
            assert_eq!(r.forced_pairs(n), forced, "{n} answers");
        }
    }

    #[test]
    fn ties_count_pairs_beyond_the_forced_ones() {
        let r = Rules::PAPER;
        assert_eq!(Rules::tied_pairs(&[1, 1, 2, 2, 3, 3]), 3);
        assert_eq!(r.ties(&[1, 1, 2, 2, 3, 3]), 2);
        assert_eq!(r.ties(&[1, 1, 2, 2, 3, 4]), 1);
        assert_eq!(r.ties(&[1, 2, 3, 4, 5, 5]), 0);
        // With no more answers than levels every tied pair counts, as the paper says.
        assert_eq!(r.ties(&[4, 4, 2]), 1);
        assert_eq!(r.ties(&[4, 4, 2, 2, 1]), 2);
        assert_eq!(r.ties(&[1, 2, 3]), 0);
    }

    #[test]
    fn check_scores_accepts_a_valid_question_in_label_order() {
        let got = Rules::PAPER
            .check_scores(3, &submit(json!({"C": 1, "A": 5, "B": 5})))
            .unwrap();
        assert_eq!(got, vec![5, 5, 1]);
    }

    #[test]
    fn check_scores_names_what_is_wrong() {
        let r = Rules::PAPER;
        let code = |v: Value| r.check_scores(3, &submit(v)).unwrap_err();
        let e = code(json!({"A": 1, "B": 2, "D": 3}));
        assert_eq!(e.code, "unknown_answer");
        assert!(
            e.message.contains("`D`") && e.message.contains("A-C"),
            "{}",
            e.message
        );
        for bad in [
            json!(0),
            json!(6),
            json!(3.5),
            json!("3"),
            json!(null),
            json!(-1),
        ] {
            let e = code(json!({"A": 1, "B": bad.clone(), "C": 3}));
            assert_eq!(e.code, "score_out_of_range", "{bad}");
            assert!(
                e.message.contains("answer B") && e.message.contains("from 1 to 5"),
                "{}",
                e.message
            );
        }
        let e = code(json!({"B": 2}));
        assert_eq!(
            (e.code, e.message.contains("answers A and C")),
            ("missing_score", true),
            "{}",
            e.message
        );
        let e = code(json!({"A": 4, "B": 4, "C": 4}));
        assert_eq!(e.code, "shared_score");
        assert!(
            e.message.contains("answers A, B and C all have score 4"),
            "{}",
            e.message
        );
    }

    #[test]
    fn budget_counts_other_questions_plus_this_one() {
        let r = Rules::PAPER;
        assert!(r.check_budget(6, 9, 1).is_ok());
        assert!(r.check_budget(6, 10, 0).is_ok());
        let e = r.check_budget(6, 9, 2).unwrap_err();
        assert_eq!(e.code, "tie_budget");
        assert!(
            e.message.contains("at most 10 ties") && e.message.contains("used 9"),
            "{}",
            e.message
        );
    }

    #[test]
    fn display_order_is_a_stable_permutation_that_differs_between_annotators() {
        let a = display_order(42, "ann", 7, 6);
        assert_eq!(a, display_order(42, "ann", 7, 6));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..6).collect::<Vec<_>>());
        let differs = |f: &dyn Fn(i64) -> (Vec<usize>, Vec<usize>)| {
            (1..=20)
                .filter(|&q| {
                    let (x, y) = f(q);
                    x != y
                })
                .count()
        };
        assert!(
            differs(&|q| (
                display_order(42, "ann", q, 6),
                display_order(42, "bob", q, 6)
            )) >= 15
        );
        assert!(
            differs(&|q| (
                display_order(42, "ann", q, 6),
                display_order(43, "ann", q, 6)
            )) >= 15
        );
        assert!(
            differs(&|q| (
                display_order(42, "ann", q, 6),
                display_order(42, "ann", q + 1, 6)
            )) >= 15
        );
        // Every model reaches the first position for some question.
        let firsts: std::collections::BTreeSet<usize> =
            (0..200).map(|q| display_order(1, "ann", q, 6)[0]).collect();
        assert_eq!(firsts.len(), 6);
        // Pinned, so that a change of algorithm (which would reshuffle stored databases) is seen.
        assert_eq!(display_order(0, "", 0, 6), PINNED_ORDER);
    }

    // Computed independently with a Python transcription of the same FNV-1a + splitmix64 + Fisher-Yates.
    const PINNED_ORDER: [usize; 6] = [4, 5, 3, 1, 2, 0];
}
