//! Surface paraphrases of training questions, for the paper's finding that diverse instructions
//! matter (Section 3.3): lead-ins, closings, synonym swaps and a dropped question mark multiply
//! each hand-written phrasing, so a model has to key on what is asked rather than on the exact
//! words. Applied to `train/` only. A paraphrase that contains a held-out phrasing of its question
//! is thrown away, so the unseen-phrasing test stays unseen.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::phrasings::{fill, phrasing};
use super::questions::Qa;

/// Words that can stand for one another in any question of the world. Whole words only, so
/// "colored" or "imagine" are never touched; the world's answers never depend on which is used.
const SYNONYMS: &[&[&str]] = &[
    &["picture", "image", "photo"],
    &["pictures", "images", "photos"],
    &["color", "colour"],
    &["colors", "colours"],
    &["colored", "coloured"],
    &["thing", "object", "item"],
    &["things", "objects", "items"],
    &["what's", "what is"],
    &["where's", "where is"],
    &["could you", "can you", "would you"],
    &["please say", "please tell me"],
    &["i want to know", "i'd like to know", "i wonder"],
];

/// Openings that leave the question itself intact; the prompt is lower-cased by the model
/// (`lower_text`), so case does not matter.
const LEAD_INS: &[&str] = &[
    "quick question: ",
    "question: ",
    "here is my question: ",
    "one more thing: ",
    "i have a question. ",
    "hi! ",
    "hello. ",
    "help me with this: ",
    "let me ask you something. ",
    "okay, ",
    "so, ",
    "now, ",
];

/// Closings that ask for nothing new (no "short answer" or "explain", which change the reply).
const CLOSINGS: &[&str] = &[
    " thanks!",
    " thank you.",
    " thanks a lot.",
    " i am curious.",
];

/// Draws the paraphrases of one scene's training questions from its own random stream, so that
/// turning paraphrasing on or off leaves every other choice of the world unchanged.
pub struct Paraphraser {
    /// Probability that a training question is paraphrased at all (0 turns it off).
    pub rate: f64,
    rng: ChaCha8Rng,
}

impl Paraphraser {
    pub fn new(rate: f64, rng: ChaCha8Rng) -> Self {
        Paraphraser { rate, rng }
    }

    /// `question` (a training phrasing of `qa`, filled) or a paraphrase of it.
    pub fn apply(&mut self, qa: &Qa, question: String) -> String {
        if self.rate <= 0.0 || !self.rng.random_bool(self.rate.min(1.0)) {
            return question;
        }
        let out = paraphrase(&question, &mut self.rng);
        let held_out: Vec<String> = phrasing(qa.kind)
            .map(|p| p.heldout.iter().map(|t| fill(t, &qa.slots)).collect())
            .unwrap_or_default();
        if contains_any(&out, &held_out) {
            question
        } else {
            out
        }
    }
}

/// One random paraphrase of `question`: every synonym group found is swapped with even odds,
/// then maybe a lead-in, a closing, and the question mark dropped. The result is lower case.
pub fn paraphrase(question: &str, rng: &mut ChaCha8Rng) -> String {
    let mut q = question.trim().to_lowercase();
    for group in SYNONYMS {
        let Some(found) = group.iter().find(|w| find_word(&q, w).is_some()) else {
            continue;
        };
        if rng.random_bool(0.5) {
            let others: Vec<&&str> = group.iter().filter(|w| *w != found).collect();
            let to = others[rng.random_range(0..others.len())];
            q = replace_words(&q, found, to);
        }
    }
    if rng.random_bool(0.4) {
        q = format!("{}{q}", LEAD_INS[rng.random_range(0..LEAD_INS.len())]);
    }
    if rng.random_bool(0.15) && q.ends_with('?') {
        q.pop();
    } else if rng.random_bool(0.25) {
        q.push_str(CLOSINGS[rng.random_range(0..CLOSINGS.len())]);
    }
    q
}

/// Whether `text` holds any of `phrases`, compared in lower case without end punctuation.
fn contains_any(text: &str, phrases: &[String]) -> bool {
    let text = text.to_lowercase();
    phrases.iter().any(|p| {
        let p = p.to_lowercase();
        let p = p.trim_end_matches(['?', '.', '!']);
        !p.is_empty() && text.contains(p)
    })
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'\'' || b == b'_'
}

/// Byte offset of `word` in `text` as a whole word (or phrase).
fn find_word(text: &str, word: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find(word).map(|i| i + from) {
        let end = i + word.len();
        let left_ok = i == 0 || !is_word_byte(bytes[i - 1]);
        let right_ok = end == bytes.len() || !is_word_byte(bytes[end]);
        if left_ok && right_ok {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// `text` with every whole-word `from` replaced by `to`.
fn replace_words(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = find_word(rest, from) {
        out.push_str(&rest[..i]);
        out.push_str(to);
        rest = &rest[i + from.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::phrasings::PHRASINGS;
    use crate::synth::questions::VqaClass;
    use rand::SeedableRng;
    use std::collections::BTreeSet;

    #[test]
    fn swaps_whole_words_only() {
        assert_eq!(
            replace_words("the image of an imagined thing", "image", "photo"),
            "the photo of an imagined thing"
        );
        assert_eq!(find_word("colored shapes", "color"), None);
        assert_eq!(find_word("what's the color?", "color"), Some(11));
        assert_eq!(
            replace_words("could you say it, could you?", "could you", "can you"),
            "can you say it, can you?"
        );
    }

    #[test]
    fn paraphrases_vary_and_keep_the_slots() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let q = "What color is the small red circle in the picture?";
        let outs: BTreeSet<String> = (0..200).map(|_| paraphrase(q, &mut rng)).collect();
        assert!(outs.len() > 20, "only {} distinct paraphrases", outs.len());
        for o in &outs {
            assert!(o.contains("small red circle"), "{o}");
            assert!(o.contains("colo"), "{o}");
        }
        assert!(outs.iter().any(|o| o.contains("colour")));
        assert!(outs
            .iter()
            .any(|o| o.contains("photo") || o.contains("image")));
    }

    /// No paraphrase of any training phrasing may contain one of its kind's held-out ones.
    #[test]
    fn never_produces_a_heldout_phrasing() {
        let mut para = Paraphraser::new(1.0, ChaCha8Rng::seed_from_u64(3));
        let slots = [
            "a", "b", "item", "word", "things", "thing", "k", "color", "rel", "dir", "motion",
            "motion_s", "a_thing",
        ];
        for p in PHRASINGS {
            let qa = Qa::new(
                p.kind,
                VqaClass::Others,
                slots.iter().map(|s| (*s, format!("x{s}"))).collect(),
                "a",
                vec![],
                "",
            );
            let held: Vec<String> = p.heldout.iter().map(|t| fill(t, &qa.slots)).collect();
            for t in p.train {
                for _ in 0..50 {
                    let out = para.apply(&qa, fill(t, &qa.slots));
                    assert!(!contains_any(&out, &held), "{}: {out}", p.kind);
                }
            }
        }
    }

    #[test]
    fn rate_zero_changes_nothing() {
        let mut para = Paraphraser::new(0.0, ChaCha8Rng::seed_from_u64(1));
        let qa = Qa::new("shape_of", VqaClass::Others, vec![], "a", vec![], "");
        assert_eq!(para.apply(&qa, "What shape?".into()), "What shape?");
    }
}
