//! Text-only lessons on everyday words for the world's concepts (a hue is a colour, to
//! outnumber is to be more): the general-language knowledge that real LLaMA brings and the
//! world's own text lacks. They go into `text_instruct.jsonl`, so the language model, its
//! "Vicuna" copy and stage 2 all read them (paper Section 2.4, text-only instructions), and a
//! user's own wording of a question reaches a model that knows its words.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::vocab::{capitalize, number_word, Color, Place, Shape};
use super::world::pick;

/// Filled into a lesson's examples.
struct Ex {
    shape: &'static str,
    shapes: &'static str,
    other: &'static str,
    others: &'static str,
    color: &'static str,
    place: &'static str,
    at: &'static str,
    few: u32,
    many: u32,
    num: u32,
}

impl Ex {
    fn draw(rng: &mut ChaCha8Rng) -> Ex {
        let s = pick(rng, &Shape::ALL);
        let mut o = pick(rng, &Shape::ALL);
        while o == s {
            o = pick(rng, &Shape::ALL);
        }
        let few = rng.random_range(1..4u32);
        let place = pick(rng, &Place::ALL);
        Ex {
            shape: s.name(),
            shapes: s.plural(),
            other: o.name(),
            others: o.plural(),
            color: pick(rng, &Color::ALL).name(),
            place: place.name(),
            at: place.with_preposition(),
            few,
            many: few + rng.random_range(1..4u32),
            num: rng.random_range(1..100u32),
        }
    }

    fn fill(&self, t: &str) -> String {
        t.replace("{shape}", self.shape)
            .replace("{shapes}", self.shapes)
            .replace("{other}", self.other)
            .replace("{others}", self.others)
            .replace("{color}", self.color)
            .replace("{place}", self.place)
            .replace("{at}", self.at)
            .replace("{few}", &number_word(self.few))
            .replace("{many}", &number_word(self.many))
            .replace("{num}", &self.num.to_string())
    }
}

/// A word, what it means in plain words of the world, and sentences that use it.
struct Lesson {
    word: &'static str,
    meaning: &'static str,
    examples: &'static [&'static str],
}

const LESSONS: &[Lesson] = &[
    Lesson {
        word: "hue",
        meaning: "Hue means colour.",
        examples: &["The hue of the {shape} is {color}: the {shape} is {color}."],
    },
    Lesson {
        word: "shade",
        meaning: "A shade is a colour, or a darker or lighter kind of a colour.",
        examples: &["The {shape} is a shade of {color}, so its colour is {color}."],
    },
    Lesson {
        word: "tint",
        meaning: "A tint is a colour, often a light one.",
        examples: &["The {shape} has a {color} tint: it is {color}."],
    },
    Lesson {
        word: "form",
        meaning: "The form of a thing is its shape.",
        examples: &["The {shape} has the form of a {shape}; its shape is a {shape}."],
    },
    Lesson {
        word: "figure",
        meaning: "A figure is a shape, such as a circle or a star. A figure is also a number written with digits.",
        examples: &[
            "The {color} figure is a {shape}.",
            "The figure {num} is written on the label: the number is {num}.",
        ],
    },
    Lesson {
        word: "outline",
        meaning: "The outline of a thing is the line around its edge, which shows its shape.",
        examples: &["The outline of the {color} object is a {shape}."],
    },
    Lesson {
        word: "digits",
        meaning: "Digits are the signs 0 to 9 that numbers are written with.",
        examples: &["The number {num} is written with digits. The label shows the digits {num}."],
    },
    Lesson {
        word: "numeral",
        meaning: "A numeral is a number written with digits.",
        examples: &["The numeral on the label is {num}."],
    },
    Lesson {
        word: "tag",
        meaning: "A tag is a small label, like a price tag.",
        examples: &["The tag says {num}: the number on the label is {num}."],
    },
    Lesson {
        word: "lettering",
        meaning: "Lettering is the letters of written words, the text.",
        examples: &["The lettering on the sign is the word written on it."],
    },
    Lesson {
        word: "signboard",
        meaning: "A signboard is a sign.",
        examples: &["The signboard is a board with a word written on it."],
    },
    Lesson {
        word: "quantity",
        meaning: "The quantity of things is how many there are: their number.",
        examples: &["The quantity of {shapes} is {many}: there are {many} {shapes}."],
    },
    Lesson {
        word: "total",
        meaning: "The total is the number you get when you count everything together.",
        examples: &["There are {few} {shapes} and {many} {others}, so the total is the sum of both."],
    },
    Lesson {
        word: "outnumber",
        meaning: "To outnumber means to be more in number.",
        examples: &[
            "There are {many} {shapes} and {few} {others}, so the {shapes} outnumber the {others}.",
            "The {others} are outnumbered by the {shapes}: there are fewer {others}.",
        ],
    },
    Lesson {
        word: "exceed",
        meaning: "To exceed means to be more, or larger, than something else.",
        examples: &["{many} exceeds {few}, because {many} is more than {few}."],
    },
    Lesson {
        word: "greater",
        meaning: "Greater means more, or larger.",
        examples: &["The number of {shapes} is greater than the number of {others}: there are more {shapes}."],
    },
    Lesson {
        word: "lesser",
        meaning: "Lesser means less, or smaller.",
        examples: &["The small {shape} has the lesser size: it is smaller than the large {shape}."],
    },
    Lesson {
        word: "beneath",
        meaning: "Beneath means below, under.",
        examples: &["The {shape} is beneath the {other}: it is lower down in the picture."],
    },
    Lesson {
        word: "underneath",
        meaning: "Underneath means below, under.",
        examples: &["The {shape} sits underneath the {other}, so it is below it."],
    },
    Lesson {
        word: "atop",
        meaning: "Atop means on top of, above.",
        examples: &["The {shape} is atop the {other}: it is above it."],
    },
    Lesson {
        word: "setting",
        meaning: "The setting of a picture is the place where it happens.",
        examples: &["The picture was taken {at}, so its setting is the {place}."],
    },
    Lesson {
        word: "location",
        meaning: "A location is a place.",
        examples: &["The location is the {place}: the picture was taken {at}."],
    },
    Lesson {
        word: "surroundings",
        meaning: "The surroundings are the place around something.",
        examples: &["The {shape} is {at}; its surroundings are the {place}."],
    },
    Lesson {
        word: "scenery",
        meaning: "Scenery is what a place looks like, the view of a place.",
        examples: &["The scenery shows the {place}."],
    },
    Lesson {
        word: "travelling",
        meaning: "Travelling means moving from one place to another.",
        examples: &["The {shape} is travelling to the left: it moves to the left."],
    },
    Lesson {
        word: "heading",
        meaning: "Heading means moving towards a direction.",
        examples: &["The {shape} is heading to the right, so it is moving to the right."],
    },
    Lesson {
        word: "vanish",
        meaning: "To vanish means to disappear.",
        examples: &["The {shape} vanishes: it disappears from the picture."],
    },
    Lesson {
        word: "edges",
        meaning: "The edges of a shape are its straight sides.",
        examples: &["A triangle has three edges, a square has four edges and a hexagon has six edges."],
    },
    Lesson {
        word: "corners",
        meaning: "The corners of a shape are the points where two sides meet.",
        examples: &["A triangle has three corners and a square has four corners."],
    },
];

/// One text-only lesson on a word: its meaning, or a question that uses it.
pub fn word_lesson(rng: &mut ChaCha8Rng) -> (String, String) {
    let l = &LESSONS[rng.random_range(0..LESSONS.len())];
    let ex = Ex::draw(rng);
    let example = ex.fill(l.examples[rng.random_range(0..l.examples.len())]);
    let q = match rng.random_range(0..4) {
        0 => format!("What does the word \"{}\" mean?", l.word),
        1 => format!("What is the meaning of \"{}\"?", l.word),
        2 => format!("Explain the word {} with an example.", l.word),
        _ => format!("Use the word \"{}\" in a sentence.", l.word),
    };
    let a = if q.starts_with("Use") {
        capitalize(&example)
    } else {
        format!("{} For example: {}", l.meaning, example)
    };
    (q, a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn lessons_fill_every_slot_and_use_their_word() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..500 {
            let (q, a) = word_lesson(&mut rng);
            assert!(!q.contains('{') && !a.contains('{'), "{q} -> {a}");
            assert!(a.ends_with('.'), "{a}");
        }
        for l in LESSONS {
            for e in l.examples {
                let word = l.word.trim_end_matches('s');
                assert!(e.to_lowercase().contains(word), "{}: {e}", l.word);
            }
        }
    }

    #[test]
    fn comparison_examples_are_true() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..200 {
            let ex = Ex::draw(&mut rng);
            assert!(ex.many > ex.few && ex.shape != ex.other);
        }
    }
}
