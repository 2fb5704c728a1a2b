//! Text-only instructions about the world's concepts (colour mixing, numbers, shapes, places,
//! opposites, spelling, stories, word meanings): the "text-only instruction following" category of paper
//! Section 2.4, which keeps the language model's generation ability while training on images.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::language::story;
use super::lexicon::word_lesson;
use super::vocab::{capitalize, number_word, with_article, Color, Place, Shape, WORDS};
use super::world::pick;

const MIXES: [(&str, &str, &str); 5] = [
    ("red", "yellow", "orange"),
    ("blue", "yellow", "green"),
    ("red", "blue", "purple"),
    ("red", "white", "pink"),
    ("black", "white", "gray"),
];
const THINGS: [(&str, &str); 8] = [
    ("the sky on a sunny day", "blue"),
    ("grass", "green"),
    ("snow", "white"),
    ("a banana", "yellow"),
    ("a strawberry", "red"),
    ("an orange", "orange"),
    ("a flamingo", "pink"),
    ("a grape", "purple"),
];
const OPPOSITES: [(&str, &str); 10] = [
    ("left", "right"),
    ("above", "below"),
    ("large", "small"),
    ("more", "fewer"),
    ("appear", "disappear"),
    ("grow", "shrink"),
    ("hot", "cold"),
    ("day", "night"),
    ("up", "down"),
    ("open", "closed"),
];
const EXPLAIN: [&str; 3] = [
    " Explain your answer.",
    " Please explain.",
    " Answer with a full sentence.",
];

/// One text-only (question, answer) pair.
pub fn text_instruction(rng: &mut ChaCha8Rng) -> (String, String) {
    // Half of the short questions ask for an explanation and get a sentence; the rest get a
    // short answer, so the model learns to match the requested length.
    let explain = rng.random_bool(0.5);
    let suffix = if explain { pick(rng, &EXPLAIN) } else { "" };
    let short_or = |short: String, long: String| if explain { long } else { short };
    match rng.random_range(0..18) {
        14..=16 => word_lesson(rng),
        0 => {
            let (a, b, c) = pick(rng, &MIXES);
            let (a, b) = if rng.random_bool(0.5) { (a, b) } else { (b, a) };
            let q = pick(
                rng,
                &[
                    "What color do you get by mixing {a} and {b}?",
                    "If you mix {a} paint with {b} paint, what color do you get?",
                    "Which color comes from mixing {a} and {b}?",
                ],
            );
            let q = q.replace("{a}", a).replace("{b}", b);
            (
                format!("{q}{suffix}"),
                short_or(
                    c.into(),
                    format!("You get {c}. Mixing {a} and {b} paint makes {c}."),
                ),
            )
        }
        1 | 2 => {
            let plus = rng.random_bool(0.5);
            let (a, b) = (rng.random_range(0..50u32), rng.random_range(0..50u32));
            let (a, b) = if plus || a >= b { (a, b) } else { (b, a) };
            let (op, r) = if plus {
                ("plus", a + b)
            } else {
                ("minus", a - b)
            };
            let q = pick(
                rng,
                &[
                    "What is {a} {op} {b}?",
                    "Calculate {a} {op} {b}.",
                    "How much is {a} {op} {b}?",
                ],
            );
            let q = q
                .replace("{a}", &a.to_string())
                .replace("{b}", &b.to_string())
                .replace("{op}", op);
            (
                format!("{q}{suffix}"),
                short_or(r.to_string(), format!("{a} {op} {b} is {r}.")),
            )
        }
        3 => {
            let (a, b) = (rng.random_range(1..10u32), rng.random_range(1..10u32));
            let q = format!("What is {a} times {b}?{suffix}");
            (
                q,
                short_or(
                    (a * b).to_string(),
                    format!(
                        "{a} times {b} is {}, because {b} added {a} times makes {}.",
                        a * b,
                        a * b
                    ),
                ),
            )
        }
        4 => {
            let (a, b) = (rng.random_range(0..100u32), rng.random_range(0..100u32));
            if a == b {
                return (format!("Is {a} equal to {b}?"), "Yes.".into());
            }
            let (hi, lo) = (a.max(b), a.min(b));
            let q = format!("Which is bigger, {a} or {b}?{suffix}");
            (
                q,
                short_or(hi.to_string(), format!("{hi} is bigger than {lo}.")),
            )
        }
        5 => {
            let n = rng.random_range(0..99u32);
            if rng.random_bool(0.5) {
                (
                    format!("What number comes after {n}?{suffix}"),
                    short_or(
                        (n + 1).to_string(),
                        format!("The number after {n} is {}.", n + 1),
                    ),
                )
            } else {
                let n = n + 1;
                (
                    format!("What number comes before {n}?{suffix}"),
                    short_or(
                        (n - 1).to_string(),
                        format!("The number before {n} is {}.", n - 1),
                    ),
                )
            }
        }
        6 => {
            let n = rng.random_range(0..100u32);
            if rng.random_bool(0.5) {
                (format!("How do you write {n} in words?"), number_word(n))
            } else {
                (
                    format!("Which number is written as \"{}\"?", number_word(n)),
                    n.to_string(),
                )
            }
        }
        7 => {
            let s = pick(rng, &Shape::ALL);
            match s.sides() {
                n @ (3 | 4 | 6) if rng.random_bool(0.5) => {
                    let q = format!(
                        "How many sides does {} have?{suffix}",
                        with_article(s.name())
                    );
                    (
                        q,
                        short_or(
                            n.to_string(),
                            format!(
                                "{} has {} sides.",
                                capitalize(&with_article(s.name())),
                                number_word(n)
                            ),
                        ),
                    )
                }
                _ => {
                    let q = if rng.random_bool(0.5) {
                        "What is {}?"
                    } else {
                        "Describe the shape called {}."
                    };
                    (
                        q.replace("{}", &with_article(s.name())),
                        s.definition().to_string(),
                    )
                }
            }
        }
        8 => {
            let p = pick(rng, &Place::ALL);
            let q = pick(
                rng,
                &[
                    "What would you see in a picture of {p}?",
                    "Describe {p}.",
                    "What does {p} look like?",
                ],
            );
            let noun = match p {
                Place::NightSky => "the night sky".to_string(),
                Place::Snow => "a snowy place".to_string(),
                _ => with_article(p.name()),
            };
            (
                q.replace("{p}", &noun),
                format!("A picture of {noun} shows {}.", p.description()),
            )
        }
        9 => {
            let (a, b) = pick(rng, &OPPOSITES);
            let (a, b) = if rng.random_bool(0.5) { (a, b) } else { (b, a) };
            (
                format!("What is the opposite of \"{a}\"?{suffix}"),
                short_or(b.into(), format!("The opposite of \"{a}\" is \"{b}\".")),
            )
        }
        10 => {
            let w = pick(rng, &WORDS);
            let spelled: Vec<String> = w.chars().map(|c| c.to_string()).collect();
            (
                format!("How do you spell the word \"{}\"?", w.to_lowercase()),
                spelled.join("-"),
            )
        }
        11 => {
            let (thing, c) = pick(rng, &THINGS);
            (
                format!("What color is {thing}?{suffix}"),
                short_or(c.into(), format!("{} is usually {c}.", capitalize(thing))),
            )
        }
        12 => {
            let a = rng.random_range(0..90u32);
            let b = a + rng.random_range(2..7u32);
            let seq: Vec<String> = (a..=b).map(|n| n.to_string()).collect();
            (
                format!("Count from {a} to {b}."),
                format!("{}.", seq.join(", ")),
            )
        }
        _ => {
            let (s, c, p) = (
                pick(rng, &Shape::ALL),
                pick(rng, &Color::ALL),
                pick(rng, &Place::ALL),
            );
            let q = format!(
                "Write a short story about {} {}.",
                with_article(&format!("{} {}", c.name(), s.name())),
                p.with_preposition()
            );
            (q, story(s, c, p, rng))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn arithmetic_answers_are_right() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut checked = 0;
        for _ in 0..2000 {
            let (q, a) = text_instruction(&mut rng);
            if let Some(rest) = q.strip_prefix("What is ") {
                let parts: Vec<&str> = rest.trim_end_matches('?').split(' ').collect();
                if parts.len() == 3 && parts[1] == "plus" && !a.contains(' ') {
                    let (x, y): (u32, u32) = (parts[0].parse().unwrap(), parts[2].parse().unwrap());
                    assert_eq!(a, (x + y).to_string());
                    checked += 1;
                }
            }
            assert!(!q.is_empty() && !a.is_empty());
        }
        assert!(checked > 10);
    }
}
