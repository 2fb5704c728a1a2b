//! Question phrasings per question kind: the ones used for training and a disjoint held-out set
//! used only by the `*_unseen` test files, to measure how well a model follows phrasings it never
//! saw (the paper's "diverse prompts" ablation, Section 3.3).

/// Phrasings of one question kind; `{name}` marks a slot filled from the scene.
pub struct Phrasing {
    pub kind: &'static str,
    pub train: &'static [&'static str],
    pub heldout: &'static [&'static str],
}

macro_rules! p {
    ($kind:expr, [$($t:expr),+ $(,)?], [$($h:expr),+ $(,)?]) => {
        Phrasing { kind: $kind, train: &[$($t),+], heldout: &[$($h),+] }
    };
}

/// Every question kind the world asks.
pub static PHRASINGS: &[Phrasing] = &[
    // OCR
    p!(
        "ocr_sign",
        [
            "What does the sign say?",
            "What word is written on the sign?",
            "What is written on the sign?",
            "Read the sign. What does it say?"
        ],
        [
            "Which word can you read on the sign?",
            "Tell me the text shown on the sign."
        ]
    ),
    p!(
        "ocr_book",
        [
            "What is the title of this book?",
            "What is the title of the book?",
            "Which title is printed on the book cover?"
        ],
        [
            "What is the name of the book shown here?",
            "Tell me the book's title."
        ]
    ),
    p!(
        "ocr_label",
        [
            "What number is on the label?",
            "Which number is written on the label?",
            "What number does the label show?"
        ],
        [
            "Read the number printed on the label.",
            "What is the figure written on the tag?"
        ]
    ),
    p!(
        "ocr_yesno",
        [
            "Does the {item} say {word}?",
            "Is the word {word} written on the {item}?",
            "Is {word} written on the {item}?"
        ],
        [
            "Can you read {word} on the {item}?",
            "Is the text on the {item} {word}?"
        ]
    ),
    p!(
        "ocr_any",
        [
            "What is written in the image?",
            "What text is in the picture?",
            "What does the writing in the image say?"
        ],
        [
            "Which text appears in this photo?",
            "Read out the writing you can see."
        ]
    ),
    // Counting
    p!(
        "count",
        [
            "How many {things} are there?",
            "How many {things} are in the image?",
            "Count the {things}.",
            "How many {things} can you see?"
        ],
        [
            "What is the number of {things} in this picture?",
            "Tell me how many {things} are visible."
        ]
    ),
    // Reasoning
    p!(
        "more_than",
        [
            "Are there more {a} than {b}?",
            "Are there more {a} than {b} in the image?",
            "Does the picture have more {a} than {b}?"
        ],
        [
            "Do the {a} outnumber the {b}?",
            "Is the number of {a} greater than the number of {b}?"
        ]
    ),
    p!(
        "fewer_than",
        [
            "Are there fewer {a} than {b}?",
            "Are there fewer {a} than {b} in the picture?",
            "Does the image have fewer {a} than {b}?"
        ],
        [
            "Is the number of {a} smaller than the number of {b}?",
            "Do the {a} number less than the {b}?"
        ]
    ),
    p!(
        "which_more",
        [
            "Are there more {a} or more {b}?",
            "Which are there more of, {a} or {b}?",
            "Which is more common in the image, {a} or {b}?"
        ],
        [
            "Which group is bigger, the {a} or the {b}?",
            "Of {a} and {b}, which kind appears more often?"
        ]
    ),
    p!(
        "larger",
        [
            "Which is larger, the {a} or the {b}?",
            "Which one is bigger, the {a} or the {b}?",
            "Which is bigger: the {a} or the {b}?"
        ],
        [
            "Of the {a} and the {b}, which has the greater size?",
            "Between the {a} and the {b}, which takes up more space?"
        ]
    ),
    p!(
        "smaller",
        [
            "Which is smaller, the {a} or the {b}?",
            "Which one is smaller, the {a} or the {b}?",
            "Which is smaller: the {a} or the {b}?"
        ],
        [
            "Of the {a} and the {b}, which has the lesser size?",
            "Between the {a} and the {b}, which takes up less space?"
        ]
    ),
    p!(
        "is_bigger",
        [
            "Is the {a} bigger than the {b}?",
            "Is the {a} larger than the {b}?",
            "Is the {a} bigger in size than the {b}?"
        ],
        [
            "Does the {a} exceed the {b} in size?",
            "Would you say the {a} is the larger of it and the {b}?"
        ]
    ),
    p!(
        "missing",
        [
            "What is missing from the pattern?",
            "What should go in the empty spot?",
            "Which shape completes the row?",
            "What belongs where the question mark is?"
        ],
        [
            "What fills the blank in this sequence?",
            "Which piece is absent from the repeating row?"
        ]
    ),
    p!(
        "remove_one",
        [
            "If one {thing} is taken away, how many {things} are left?",
            "If you remove one {thing}, how many {things} remain?",
            "How many {things} would be left after taking one away?"
        ],
        [
            "Suppose a single {thing} disappears; how many {things} stay?",
            "After one {thing} is gone, what is the count of {things}?"
        ]
    ),
    p!(
        "add_more",
        [
            "If {k} more {things} are added, how many {things} will there be?",
            "If you add {k} more {things}, how many {things} are there?",
            "How many {things} would there be after adding {k} more?"
        ],
        [
            "Imagine {k} extra {things} join; what is the new number of {things}?",
            "Were {k} more {things} put in, what would the total of {things} be?"
        ]
    ),
    p!(
        "same_color",
        [
            "Are all the shapes the same color?",
            "Do all the shapes have the same color?",
            "Is every shape the same color?"
        ],
        [
            "Do the shapes all share one color?",
            "Is there only one color among the shapes?"
        ]
    ),
    p!(
        "place_cold",
        [
            "Is it cold in this place?",
            "Is this a cold place?",
            "Would you need a warm coat here?"
        ],
        [
            "Is the weather here likely to be freezing?",
            "Does this place look chilly?"
        ]
    ),
    p!(
        "place_indoors",
        [
            "Is this picture taken indoors?",
            "Is this place inside a building?",
            "Is the scene indoors?"
        ],
        [
            "Are we inside a house in this picture?",
            "Does this scene take place under a roof?"
        ]
    ),
    p!(
        "place_night",
        [
            "Is it night time in this picture?",
            "Was this picture taken at night?",
            "Is it dark outside here?"
        ],
        [
            "Does this scene happen after sunset?",
            "Is it nighttime in the image?"
        ]
    ),
    p!(
        "place_swim",
        [
            "Could you swim here?",
            "Is there water to swim in here?",
            "Can people swim in this place?"
        ],
        [
            "Is this a good spot for a swim?",
            "Would a swimmer find water here?"
        ]
    ),
    // Place
    p!(
        "place",
        [
            "What is in the image?",
            "Where was this picture taken?",
            "What kind of place is this?",
            "What place is shown in the picture?"
        ],
        [
            "In what sort of location is this scene set?",
            "Which setting does this picture show?"
        ]
    ),
    // Color
    p!(
        "color_of",
        [
            "What color is the {a}?",
            "What is the color of the {a}?",
            "Which color does the {a} have?"
        ],
        [
            "What colour would you say the {a} is?",
            "Tell me the hue of the {a}."
        ]
    ),
    p!(
        "color_yesno",
        [
            "Is the {a} {color}?",
            "Is the {a} colored {color}?",
            "Does the {a} have a {color} color?"
        ],
        [
            "Would you describe the {a} as {color}?",
            "Is {color} the color of the {a}?"
        ]
    ),
    // Spatial
    p!(
        "left_right",
        [
            "Is the {a} to the left or to the right of the {b}?",
            "Is the {a} on the left or the right of the {b}?",
            "Is the {a} left or right of the {b}?"
        ],
        [
            "On which side of the {b} is the {a}?",
            "Relative to the {b}, is the {a} further left or further right?"
        ]
    ),
    p!(
        "above_below",
        [
            "Is the {a} above or below the {b}?",
            "Is the {a} higher or lower than the {b}?",
            "Is the {a} over or under the {b}?"
        ],
        [
            "Relative to the {b}, where is the {a} vertically?",
            "Does the {a} sit above the {b} or beneath it?"
        ]
    ),
    p!(
        "rel_yesno",
        [
            "Is the {a} {rel} the {b}?",
            "Is the {a} positioned {rel} the {b}?",
            "Is the {a} located {rel} the {b}?"
        ],
        [
            "Would you say the {a} is {rel} the {b}?",
            "Can the {a} be found {rel} the {b}?"
        ]
    ),
    p!(
        "what_rel",
        [
            "What is {rel} the {b}?",
            "Which item is {rel} the {b}?",
            "What can you see {rel} the {b}?"
        ],
        [
            "Name the thing located {rel} the {b}.",
            "Tell me what sits {rel} the {b}."
        ]
    ),
    p!(
        "between",
        [
            "What is between the {a} and the {b}?",
            "Which item is between the {a} and the {b}?",
            "What lies between the {a} and the {b}?"
        ],
        [
            "Name the shape located in the middle of the {a} and the {b}.",
            "What sits in the gap separating the {a} from the {b}?"
        ]
    ),
    p!(
        "which_side",
        [
            "Which side of the picture is the {a} on?",
            "Is the {a} on the left or the right side of the image?",
            "On which side of the image is the {a}?"
        ],
        [
            "Is the {a} in the left or the right half of the picture?",
            "Toward which edge of the image does the {a} sit?"
        ]
    ),
    // Action (images with motion trails)
    p!(
        "move_dir",
        [
            "Which direction is the {a} moving?",
            "Where is the {a} going?",
            "In which direction does the {a} move?"
        ],
        [
            "Toward which side is the {a} heading?",
            "What way is the {a} travelling?"
        ]
    ),
    p!(
        "move_yesno",
        [
            "Is the {a} moving {dir}?",
            "Is the {a} going {dir}?",
            "Does the {a} move {dir}?"
        ],
        [
            "Is the {a} heading {dir}?",
            "Would you say the {a} travels {dir}?"
        ]
    ),
    p!(
        "what_doing",
        [
            "What is the {a} doing?",
            "What is happening to the {a}?",
            "What does the {a} do in the picture?"
        ],
        [
            "Describe the action of the {a} in a few words.",
            "What activity is the {a} engaged in?"
        ]
    ),
    p!(
        "which_moving",
        [
            "Which shape is moving?",
            "Which object is in motion?",
            "What is moving in the picture?"
        ],
        [
            "Which of the shapes is not standing still?",
            "Name the shape that travels."
        ]
    ),
    p!(
        "is_moving",
        [
            "Is the {a} moving?",
            "Is the {a} in motion?",
            "Does the {a} move?"
        ],
        [
            "Is the {a} travelling anywhere?",
            "Would you say the {a} is not still?"
        ]
    ),
    // Others
    p!(
        "shape_of",
        [
            "What shape is the {a}?",
            "What is the shape of the {a}?",
            "Which shape is the {a}?"
        ],
        [
            "What kind of figure is the {a}?",
            "Tell me the form of the {a}."
        ]
    ),
    p!(
        "exists",
        [
            "Is there {a_thing} in the image?",
            "Can you see {a_thing}?",
            "Is there {a_thing} in the picture?"
        ],
        [
            "Does the picture contain {a_thing}?",
            "Would you find {a_thing} somewhere in this photo?"
        ]
    ),
    p!(
        "size_of",
        [
            "What size is the {a}?",
            "How big is the {a}?",
            "Is the {a} small, medium or large?"
        ],
        [
            "How would you describe the size of the {a}?",
            "What is the {a}'s size?"
        ]
    ),
    p!(
        "sides",
        [
            "How many sides does the {a} have?",
            "How many straight sides does the {a} have?",
            "Count the sides of the {a}."
        ],
        [
            "What is the number of edges on the {a}?",
            "How many edges make up the {a}?"
        ]
    ),
    p!(
        "what_objects",
        [
            "What shapes are in the image?",
            "Which shapes can you see?",
            "List the shapes in the picture."
        ],
        [
            "Name every shape shown.",
            "Which figures appear in this picture?"
        ]
    ),
    // Video: Action(Y/N)
    p!(
        "v_does",
        [
            "Does the {a} {motion}?",
            "Is the {a} {motion_ing}?",
            "In the video, does the {a} {motion}?"
        ],
        [
            "Is it true that the {a} {motion_s}?",
            "Can you see the {a} {motion} in this clip?"
        ]
    ),
    // Video: Others
    p!(
        "v_what_do",
        [
            "What does the {a} do?",
            "What happens to the {a} in the video?",
            "What does the {a} do in the video?"
        ],
        [
            "Describe what the {a} does during the clip.",
            "How does the {a} behave over the clip?"
        ]
    ),
    p!(
        "v_which",
        [
            "Which shape {motion_s}?",
            "Which object {motion_s} in the video?",
            "What {motion_s} in the video?"
        ],
        [
            "Name the shape that {motion_s} during the clip.",
            "Tell me which figure {motion_s}."
        ]
    ),
    p!(
        "v_direction",
        [
            "In which direction does the {a} move?",
            "Which way does the {a} move?",
            "Where does the {a} move to?"
        ],
        [
            "Toward which side does the {a} travel in the clip?",
            "What direction is the {a} heading in the video?"
        ]
    ),
    p!(
        "v_color_end",
        [
            "What color does the {a} turn?",
            "What color does the {a} become?",
            "What color is the {a} at the end of the video?"
        ],
        [
            "Into which colour does the {a} change?",
            "What is the {a}'s final color?"
        ]
    ),
    p!(
        "v_count_end",
        [
            "How many shapes are there at the end of the video?",
            "How many shapes can you see in the last frame?",
            "At the end of the video, how many shapes are there?"
        ],
        [
            "When the clip finishes, how many shapes remain visible?",
            "What is the shape count in the final frame?"
        ]
    ),
];

/// The phrasings of `kind`, if it exists.
pub fn phrasing(kind: &str) -> Option<&'static Phrasing> {
    PHRASINGS.iter().find(|p| p.kind == kind)
}

/// Fills `{name}` slots of a phrasing.
pub fn fill(template: &str, slots: &[(&'static str, String)]) -> String {
    let mut out = template.to_string();
    for (k, v) in slots {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heldout_is_disjoint_and_every_kind_has_enough() {
        let mut kinds = std::collections::BTreeSet::new();
        for p in PHRASINGS {
            assert!(kinds.insert(p.kind), "duplicate kind {}", p.kind);
            assert!(p.train.len() >= 3 && p.heldout.len() >= 2, "{}", p.kind);
            for h in p.heldout {
                assert!(PHRASINGS.iter().all(|q| !q.train.contains(h)), "{h}");
            }
        }
    }
}
