//! The offline Open-VQA judge: a string rule standing in for the paper's GPT-4 referee
//! (Section 3.1) when no LLM is at hand. Both texts are normalised (case, punctuation,
//! articles, number words, yes/no variants); an answer is right when one ground-truth
//! alternative appears in it as a whole-word phrase. For a yes/no ground truth the first yes/no
//! word of the answer decides, so "No, it is not, yes it looks like..." counts as "no". In the
//! same way, when the question offers both sides of a pair ("left or right", "above or below")
//! the side the answer names first decides: "to the right of it, going from left to right"
//! answers "right", not both.

use super::scoring::{Judge, JudgeOutcome, JudgeQuery};
use crate::Result;

fn number_word(w: &str) -> Option<u32> {
    crate::data::numbers::word_value(w)
}

/// Splits `text` into normalised words: lowercase; apostrophes dropped ("children's" ->
/// "childrens"); every other non-alphanumeric character is a word break; `a`/`an`/`the`
/// removed; number words (zero..nineteen, the tens, "twenty one", "none") become
/// digits; yeah/yep/yup become yes and nope/nah become no.
pub fn normalize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let cleaned: String = lower
        .chars()
        .filter(|c| !matches!(c, '\'' | '\u{2019}' | '\u{2018}' | '`'))
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    let mut out = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        i += 1;
        match w {
            "a" | "an" | "the" => continue,
            "yeah" | "yep" | "yup" => out.push("yes".to_string()),
            "nope" | "nah" => out.push("no".to_string()),
            _ => match number_word(w) {
                Some(tens) if (20..100).contains(&tens) => {
                    // "twenty one" (or "twenty-one", split above) is one number
                    match words.get(i).and_then(|n| number_word(n)) {
                        Some(unit) if (1..10).contains(&unit) => {
                            i += 1;
                            out.push((tens + unit).to_string());
                        }
                        _ => out.push(tens.to_string()),
                    }
                }
                Some(n) => out.push(n.to_string()),
                None => out.push(w.to_string()),
            },
        }
    }
    out
}

/// The ground truth's alternatives: the `answer` list's entries, each also split on " or "
/// (the release writes alternatives as "platform or tunnel").
pub fn alternatives(answers: &[String]) -> Vec<Vec<String>> {
    answers
        .iter()
        .flat_map(|a| {
            let lower = a.to_lowercase();
            lower
                .split(" or ")
                .map(normalize)
                .filter(|alt| !alt.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn contains_phrase(hay: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Pairs of opposite words that either-or questions offer.
const OPPOSITES: [(&str, &str); 4] = [
    ("left", "right"),
    ("above", "below"),
    ("up", "down"),
    ("top", "bottom"),
];

/// The first of `a` and `b` in `words`.
fn first_of<'w>(words: &'w [String], a: &str, b: &str) -> Option<&'w String> {
    words.iter().find(|w| *w == a || *w == b)
}

/// Whether `prediction` implies one of `answers` to `question` under the rules above.
pub fn rule_verdict(question: &str, prediction: &str, answers: &[String]) -> bool {
    let pred = normalize(prediction);
    let asked = normalize(question);
    let first_polar = first_of(&pred, "yes", "no");
    // The pair a one-word alternative belongs to, when the question offers both of its words.
    let offered = |w: &str| {
        OPPOSITES.iter().find(|(a, b)| {
            (w == *a || w == *b) && asked.iter().any(|q| q == a) && asked.iter().any(|q| q == b)
        })
    };
    alternatives(answers)
        .iter()
        .any(|alt| match alt.as_slice() {
            [w] if w == "yes" || w == "no" => first_polar == Some(w),
            [w] => match offered(w) {
                Some((a, b)) => first_of(&pred, a, b) == Some(w),
                None => contains_phrase(&pred, alt),
            },
            _ => contains_phrase(&pred, alt),
        })
}

/// The offline judge (`--judge rule`).
#[derive(Clone, Copy, Debug, Default)]
pub struct RuleJudge;

impl Judge for RuleJudge {
    fn kind(&self) -> &'static str {
        "rule"
    }
    fn model(&self) -> Option<String> {
        None
    }
    fn judge_all(&mut self, queries: &[JudgeQuery<'_>]) -> Result<Vec<JudgeOutcome>> {
        Ok(queries
            .iter()
            .map(|q| JudgeOutcome::Verdict {
                correct: rule_verdict(q.question, q.prediction, q.answers),
                reply: None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(pred: &str, gt: &str) -> bool {
        rule_verdict("", pred, &[gt.to_string()])
    }

    #[test]
    fn normalises_case_punctuation_articles_numbers() {
        assert_eq!(
            normalize("The Children's books, (two) twenty-one; An apple!"),
            vec!["childrens", "books", "2", "21", "apple"]
        );
        assert_eq!(normalize("Yeah. Nope"), vec!["yes", "no"]);
        assert_eq!(normalize("none 7:46 twenty"), vec!["0", "7", "46", "20"]);
        assert_eq!(normalize("waffles，bacons"), vec!["waffles", "bacons"]);
    }

    #[test]
    fn containment_on_word_boundaries() {
        assert!(v("There are two elephants.", "2"));
        assert!(v("I count 2", "two"));
        assert!(!v("There are 12 of them", "2"));
        assert!(v("It is a white horse", "white"));
        assert!(!v("The horse is whitish", "white"));
        assert!(v("This looks like a tunnel.", "platform or tunnel"));
        assert!(v("a Clothing Store", "department store or Clothing store"));
        assert!(!v("a store", "department store or Clothing store"));
        assert!(v("The time is 7:46.", "7 46"));
        assert!(!v("", "white"));
        assert!(rule_verdict("", "grey", &["white".into(), "grey".into()]));
    }

    #[test]
    fn either_or_questions_take_the_side_named_first() {
        let q = "Is the circle to the left or to the right of the star?";
        let gt = ["left".to_string(), "to the left".to_string()];
        assert!(rule_verdict(q, "Left.", &gt));
        assert!(rule_verdict(q, "It is on the left, not the right.", &gt));
        assert!(!rule_verdict(q, "Right, going from left to right.", &gt));
        assert!(!rule_verdict(q, "to the right of the star", &gt));
        // A question that offers only one side keeps plain containment.
        let q = "Which shape is on the left?";
        assert!(rule_verdict(
            q,
            "The circle, to the right of the left edge",
            &["circle".into()]
        ));
        assert!(rule_verdict(
            "Where does the star move?",
            "it moves from right to left",
            &["left".into()]
        ));
    }

    #[test]
    fn yes_no_uses_first_polar_word() {
        assert!(v("Yes, the dog is driving.", "yes"));
        assert!(v("No, the dog is not driving the bus.", "no"));
        assert!(!v("No, but yes in a way", "yes"));
        assert!(v("Yep!", "yes"));
        assert!(v("There is no dog", "no"));
        assert!(!v("The dog is not driving", "no"));
        // a phrase that merely starts with "no" is matched as a phrase
        assert!(v(
            "No parking on the side of the street.",
            "no parking on side of street"
        ));
    }
}
