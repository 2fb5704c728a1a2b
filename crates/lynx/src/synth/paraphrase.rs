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
/// Besides spelling variants, each group holds the everyday synonyms a user reaches for (a
/// price label is also a tag, a colour also a hue), so the frozen language model meets them in
/// the same contexts as the words the hand-written phrasings use.
const SYNONYMS: &[&[&str]] = &[
    &["picture", "image", "photo"],
    &["pictures", "images", "photos"],
    &["color", "colour", "hue", "shade"],
    &["colors", "colours", "hues", "shades"],
    &["colored", "coloured"],
    &["thing", "object", "item"],
    &["things", "objects", "items"],
    &["shape", "form"],
    &["what's", "what is"],
    &["where's", "where is"],
    &["could you", "can you", "would you"],
    &["please say", "please tell me"],
    &["i want to know", "i'd like to know", "i wonder"],
    &["tell me", "let me know"],
    &["how many", "what number of"],
    &["are there", "do you see", "can you see"],
    &["label", "tag", "price tag"],
    &["sign", "signboard"],
    &["word", "text"],
    &["written", "printed"],
    &["bigger", "larger"],
    &["below", "beneath", "underneath"],
    &["moving", "travelling", "going"],
    &["moves", "travels"],
    &[
        "what kind of place",
        "what sort of place",
        "what type of place",
        "what kind of setting",
        "what kind of location",
    ],
];

/// Question shapes that can be turned into a request ("what color is the star?" into "tell me
/// the color of the star."): the pattern's `{x}` and `{y}` are matched, then put into one of
/// the requests (`{w}` is a single word). Users ask with imperatives as often as with questions, and a model that only
/// ever saw questions answers a request with "yes" or "no".
const REQUESTS: &[(&str, &[&str])] = &[
    (
        "what is the {x}?",
        &[
            "tell me the {x}.",
            "name the {x}.",
            "give me the {x}.",
            "say what the {x} is.",
        ],
    ),
    (
        "what {w} is the {y}?",
        &[
            "tell me the {w} of the {y}.",
            "name the {w} of the {y}.",
            "what is the {w} of the {y}?",
        ],
    ),
    (
        "how many {x} are there?",
        &[
            "count the {x}.",
            "tell me how many {x} there are.",
            "give me the number of {x}.",
        ],
    ),
    (
        "how many {x} are there in the picture?",
        &[
            "count the {x} in the picture.",
            "tell me how many {x} the picture has.",
        ],
    ),
    (
        "where is the {x}?",
        &["tell me where the {x} is.", "say where the {x} is."],
    ),
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
    if rng.random_bool(0.3) {
        if let Some(r) = as_request(&q, rng) {
            q = r;
        }
    }
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

/// `q` turned into a request by the first pattern of `REQUESTS` it matches, if any.
fn as_request(q: &str, rng: &mut ChaCha8Rng) -> Option<String> {
    for (pattern, requests) in REQUESTS {
        let Some(slots) = match_pattern(pattern, q) else {
            continue;
        };
        let mut out = requests[rng.random_range(0..requests.len())].to_string();
        for (name, value) in slots {
            out = out.replace(name, value);
        }
        return Some(out);
    }
    None
}

const SLOTS: [&str; 3] = ["{x}", "{y}", "{w}"];

/// Matches `q` against `pattern`, whose `{x}` and `{y}` stand for one or more words and `{w}`
/// for exactly one (no punctuation); returns what each slot matched.
fn match_pattern<'a>(pattern: &str, q: &'a str) -> Option<Vec<(&'static str, &'a str)>> {
    let mut slots = Vec::new();
    let mut rest = q;
    let mut pat = pattern;
    while !pat.is_empty() {
        let next = SLOTS
            .iter()
            .filter_map(|s| pat.find(s).map(|i| (i, *s)))
            .min();
        let Some((i, name)) = next else {
            return (rest == pat).then_some(slots);
        };
        rest = rest.strip_prefix(&pat[..i])?;
        pat = &pat[i + name.len()..];
        let stop = SLOTS
            .iter()
            .filter_map(|s| pat.find(s))
            .min()
            .unwrap_or(pat.len());
        let literal = &pat[..stop];
        let end = if literal.is_empty() {
            rest.len()
        } else if stop == pat.len() {
            rest.strip_suffix(literal).map(str::len)?
        } else {
            rest.find(literal)?
        };
        let value = &rest[..end];
        if value.is_empty()
            || value.contains(['?', '.', ',', ':', ';', '!'])
            || (name == "{w}" && value.contains(' '))
        {
            return None;
        }
        slots.push((name, value));
        rest = &rest[end..];
    }
    rest.is_empty().then_some(slots)
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
            assert!(
                ["colo", "hue", "shade"].iter().any(|w| o.contains(w)),
                "{o}"
            );
        }
        assert!(outs.iter().any(|o| o.contains("colour")));
        assert!(outs.iter().any(|o| o.contains("hue")));
        assert!(outs.iter().any(|o| o.starts_with("tell me the ")));
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
    fn questions_become_requests_with_their_slots() {
        assert_eq!(
            match_pattern("what {w} is the {y}?", "what color is the small star?"),
            Some(vec![("{w}", "color"), ("{y}", "small star")])
        );
        assert_eq!(
            match_pattern("what {w} is the {y}?", "what kind of shape is the star?"),
            None
        );
        assert_eq!(
            match_pattern("where is the {x}?", "where is the star? and the box?"),
            None
        );
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let outs: BTreeSet<String> = (0..100)
            .filter_map(|_| as_request("what color is the red star?", &mut rng))
            .collect();
        assert!(
            outs.contains("tell me the color of the red star."),
            "{outs:?}"
        );
        assert!(
            outs.contains("what is the color of the red star?"),
            "{outs:?}"
        );
        assert_eq!(
            as_request("how many stars are there?", &mut rng).map(|r| r.contains("stars")),
            Some(true)
        );
        assert_eq!(as_request("is the star red?", &mut rng), None);
    }

    #[test]
    fn rate_zero_changes_nothing() {
        let mut para = Paraphraser::new(0.0, ChaCha8Rng::seed_from_u64(1));
        let qa = Qa::new("shape_of", VqaClass::Others, vec![], "a", vec![], "");
        assert_eq!(para.apply(&qa, "What shape?".into()), "What shape?");
    }
}
