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
            "Read the sign. What does it say?",
            "What's the word on the sign?",
            "Could you tell me what the sign says?",
            "What word does the sign show?",
            "Say the word on the sign.",
            "I want to know what the sign says.",
            "What text is on the sign in this picture?",
            "Please read the word on the sign.",
            "The sign: what does it say?"
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
            "Which title is printed on the book cover?",
            "What's the title of the book?",
            "What is the book called?",
            "Could you read the title of the book?",
            "Read the title on the book cover.",
            "What title does the book have?",
            "I'd like to know the title of this book.",
            "Please say what the book is called.",
            "What does the cover of the book say?"
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
            "What number does the label show?",
            "What's the number on the label?",
            "Tell me which number the label shows.",
            "Could you say what number is on the label?",
            "Which number can be seen on the label?",
            "I want to know the number on the label.",
            "Give me the label's number.",
            "Which number does the label have?",
            "The label shows a number. What is it?"
        ],
        [
            "Read out the digits on the label for me.",
            "What is the figure written on the tag?"
        ]
    ),
    p!(
        "ocr_yesno",
        [
            "Does the {item} say {word}?",
            "Is the word {word} written on the {item}?",
            "Is {word} written on the {item}?",
            "Does the {item} read {word}?",
            "Does the {item} have the word {word} on it?",
            "Tell me whether the {item} says {word}.",
            "Could you tell me if {word} is written on the {item}?",
            "I want to know if the {item} says {word}.",
            "Does it say {word} on the {item}?",
            "Yes or no: does the {item} show the word {word}?",
            "Is {word} what the {item} says?"
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
            "What does the writing in the image say?",
            "What's written in this picture?",
            "Tell me what is written in the image.",
            "Could you read what the image says?",
            "What words can you see in the photo?",
            "Please say what the text in the image reads.",
            "I'd like to know what the writing says.",
            "What word is shown in the image?",
            "Is there any text in the picture? What does it say?"
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
            "How many {things} can you see?",
            "Count up the {things} and tell me the total.",
            "Could you count the {things} for me?",
            "How many {things} does the picture show?",
            "How many {things} are there in the photo?",
            "Give me a count of the {things}.",
            "I want to know how many {things} there are.",
            "Please count how many {things} the scene has.",
            "How many {things} do you see in this frame?"
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
            "Does the picture have more {a} than {b}?",
            "Tell me whether there are more {a} than {b}.",
            "Could you tell me if the image shows more {a} than {b}?",
            "Yes or no: more {a} than {b}?",
            "Do you see more {a} than {b}?",
            "Are the {a} more numerous than the {b}?",
            "I want to know if there are more {a} than {b} here.",
            "Does the scene contain more {a} than {b}?",
            "Are there more {a} in the photo than {b}?"
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
            "Does the image have fewer {a} than {b}?",
            "Do you see fewer {a} than {b}?",
            "Tell me whether there are fewer {a} than {b}.",
            "Could you say if the picture shows fewer {a} than {b}?",
            "Are there fewer {a} in the photo than {b}?",
            "Yes or no: fewer {a} than {b}?",
            "Does the scene contain fewer {a} than {b}?",
            "I'd like to know if there are fewer {a} than {b}.",
            "Are {a} less numerous than {b} in this image?"
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
            "Which is more common in the image, {a} or {b}?",
            "Tell me which there are more of: {a} or {b}.",
            "Do you see more {a} or more {b}?",
            "Could you tell me whether there are more {a} or more {b}?",
            "What is there more of in the picture: {a} or {b}?",
            "I want to know if the image has more {a} or more {b}.",
            "Please say whether {a} or {b} are more numerous here.",
            "Does the scene have more {a} or more {b}?",
            "Which are there more of in the photo, {a} or {b}?"
        ],
        [
            "Which group has more members: {a} or {b}?",
            "Of {a} and {b}, which kind appears more often?"
        ]
    ),
    p!(
        "larger",
        [
            "Which is larger, the {a} or the {b}?",
            "Which one is bigger, the {a} or the {b}?",
            "Which is bigger: the {a} or the {b}?",
            "Which is the larger shape, the {a} or the {b}?",
            "Tell me which is bigger: the {a} or the {b}.",
            "Is the {a} or the {b} the bigger one?",
            "Could you say which is larger, the {a} or the {b}?",
            "Compare the {a} and the {b}: which is larger?",
            "I want to know which is bigger, the {a} or the {b}.",
            "The {a} or the {b}: which one is larger?",
            "Name the larger one: the {a} or the {b}."
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
            "Which is smaller: the {a} or the {b}?",
            "Which is the smaller shape, the {a} or the {b}?",
            "Tell me which is smaller: the {a} or the {b}.",
            "Is the {a} or the {b} the smaller one?",
            "Could you say which is smaller, the {a} or the {b}?",
            "I want to know which is smaller, the {a} or the {b}.",
            "The {a} or the {b}: which one is smaller?",
            "Compare the {a} and the {b}: which is smaller?",
            "Which shape is smaller in the image, the {a} or the {b}?"
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
            "Is the {a} bigger in size than the {b}?",
            "Tell me whether the {a} is bigger than the {b}.",
            "Could you tell me if the {a} is larger than the {b}?",
            "Yes or no: is the {a} bigger than the {b}?",
            "Is the {a} of greater size than the {b}?",
            "Compared with the {b}, is the {a} bigger?",
            "I want to know if the {a} is larger than the {b}.",
            "Does the {a} look bigger than the {b}?",
            "Is the {a} a bigger shape than the {b}?"
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
            "What belongs where the question mark is?",
            "What's missing in the pattern?",
            "Tell me which shape is missing from the pattern.",
            "Which shape should replace the question mark?",
            "Could you say what goes in the gap?",
            "Say which shape would complete the pattern.",
            "I want to know what is missing from the row.",
            "What shape is missing?",
            "Please tell me what belongs in the empty place."
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
            "How many {things} would be left after taking one away?",
            "If a {thing} is removed, how many {things} remain?",
            "Take one {thing} away. How many {things} are left?",
            "Tell me how many {things} remain if one {thing} is removed.",
            "How many {things} are left once one {thing} is taken out?",
            "Could you say how many {things} there would be with one {thing} removed?",
            "Removing one {thing} leaves how many {things}?",
            "I want to know how many {things} remain after one {thing} is taken away.",
            "What number of {things} is left if you take away one {thing}?"
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
            "How many {things} would there be after adding {k} more?",
            "Add {k} more {things}. How many {things} are there then?",
            "Tell me how many {things} there would be with {k} more added.",
            "If {k} more {things} were placed in the picture, how many {things} would there be?",
            "Could you say how many {things} there are after adding {k} more?",
            "How many {things} would there be if someone added {k} more?",
            "With {k} more {things}, how many {things} would there be in total?",
            "I want to know the number of {things} after {k} more are added.",
            "How many {things} will there be once {k} more are added?"
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
            "Is every shape the same color?",
            "Are all the shapes the same colour?",
            "Tell me whether every shape has the same color.",
            "Could you say if all the shapes are one color?",
            "Yes or no: are the shapes all the same color?",
            "Is each shape in the picture the same color?",
            "Do all the objects in the image have the same colour?",
            "I want to know if all the shapes are the same color.",
            "Are the figures all colored the same?"
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
            "Would you need a warm coat here?",
            "Is it cold here?",
            "Is the place in the picture cold?",
            "Tell me whether it is cold in this place.",
            "Could you say if this place is cold?",
            "Is the temperature low in this place?",
            "Is the weather cold in this photo?",
            "I want to know if it is cold here.",
            "Yes or no: is this a cold place?"
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
            "Is the scene indoors?",
            "Is this indoors?",
            "Was the photo taken inside?",
            "Tell me whether this scene is indoors.",
            "Could you say if this picture was taken inside a building?",
            "Is the image showing an indoor place?",
            "Yes or no: is this place indoors?",
            "I want to know if this is an indoor scene.",
            "Is the place in the photo indoors?"
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
            "Is it dark outside here?",
            "Is this a night scene?",
            "Tell me whether this photo was taken at night.",
            "Could you say if it is night here?",
            "Yes or no: was the picture taken at night?",
            "Is the sky dark in this picture?",
            "I want to know if this place is shown at night.",
            "Does the image show the place at night?",
            "Is the scene set at night?"
        ],
        [
            "Does this scene happen after sunset?",
            "Has the sun gone down in this scene?"
        ]
    ),
    p!(
        "place_swim",
        [
            "Could you swim here?",
            "Is there water to swim in here?",
            "Can people swim in this place?",
            "Can you swim in this place?",
            "Is swimming possible here?",
            "Tell me whether someone could swim here.",
            "Could you tell me if it is possible to swim in this place?",
            "Yes or no: can you swim here?",
            "Is there anywhere to swim in this picture?",
            "I want to know if people can swim here.",
            "Does this place have water for swimming?"
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
            "What place is shown in the picture?",
            "What's this place?",
            "Where is this?",
            "Tell me what kind of place this is.",
            "Could you say where this photo was taken?",
            "Name the place in the picture.",
            "What type of place is shown in this image?",
            "I want to know where this picture was taken.",
            "Where are we in this picture?"
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
            "Which color does the {a} have?",
            "What's the colour of the {a}?",
            "Tell me what color the {a} is.",
            "Say which color the {a} is.",
            "Can you say what colour the {a} is?",
            "The {a}: what color is it?",
            "I want to know the color of the {a}.",
            "Which colour is the {a} painted?",
            "What color does the {a} have in the picture?"
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
            "Does the {a} have a {color} color?",
            "Does the {a} have {color} as its colour?",
            "Tell me whether the {a} is {color}.",
            "Could you say if the {a} is {color}?",
            "Yes or no: is the {a} {color}?",
            "Does the {a} look {color}?",
            "I want to know if the {a} is {color}.",
            "Does the {a} appear {color} in the image?",
            "Is the {a} in the picture {color}?"
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
            "Is the {a} left or right of the {b}?",
            "Is the {a} on the left side or the right side of the {b}?",
            "Tell me if the {a} is to the left or right of the {b}.",
            "Could you say whether the {a} is left or right of the {b}?",
            "Left or right: where is the {a} compared with the {b}?",
            "Is the {a} placed left or right of the {b}?",
            "I want to know if the {a} is left or right of the {b}.",
            "Does the {a} lie to the left or to the right of the {b}?",
            "In the image, is the {a} to the left or the right of the {b}?"
        ],
        [
            "Looking at the {b}, does the {a} lie to its left or its right?",
            "Relative to the {b}, is the {a} further left or further right?"
        ]
    ),
    p!(
        "above_below",
        [
            "Is the {a} above or below the {b}?",
            "Is the {a} higher or lower than the {b}?",
            "Is the {a} over or under the {b}?",
            "Tell me if the {a} is above or below the {b}.",
            "Could you say whether the {a} is above or below the {b}?",
            "Above or below: where is the {a} compared with the {b}?",
            "Is the {a} located above or below the {b}?",
            "I want to know if the {a} is above or below the {b}.",
            "Where is the {a}, above or below the {b}?",
            "In the picture, is the {a} higher up or lower down than the {b}?",
            "Is the {a} placed higher or lower than the {b}?"
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
            "Is the {a} located {rel} the {b}?",
            "Tell me whether the {a} is {rel} the {b}.",
            "Please tell me: is the {a} {rel} the {b}?",
            "Yes or no: is the {a} {rel} the {b}?",
            "Does the {a} lie {rel} the {b}?",
            "Is the {a} placed {rel} the {b}?",
            "I want to know if the {a} is {rel} the {b}.",
            "Is the {a} {rel} the {b} in the picture?",
            "Does the {a} appear {rel} the {b}?"
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
            "What can you see {rel} the {b}?",
            "What's {rel} the {b}?",
            "Which shape is {rel} the {b}?",
            "What object lies {rel} the {b}?",
            "Could you tell me which shape is {rel} the {b}?",
            "I want to know what is {rel} the {b}.",
            "Say which object is {rel} the {b}.",
            "Which thing do you see {rel} the {b}?",
            "In the picture, what is {rel} the {b}?"
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
            "What lies between the {a} and the {b}?",
            "What's between the {a} and the {b}?",
            "Which shape is between the {a} and the {b}?",
            "Tell me which object is between the {a} and the {b}.",
            "Could you say what lies between the {a} and the {b}?",
            "I want to know what is between the {a} and the {b}.",
            "What object is placed between the {a} and the {b}?",
            "Which figure do you see between the {a} and the {b}?",
            "Please name what is between the {a} and the {b}."
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
            "On which side of the image is the {a}?",
            "Which side of the image is the {a} on?",
            "Tell me which side of the picture the {a} is on.",
            "Could you say on which side of the image the {a} is?",
            "On what side of the picture do you see the {a}?",
            "Left or right: which side of the image is the {a} on?",
            "I want to know which side of the frame the {a} is on.",
            "Where is the {a} in the picture, on the left or on the right?",
            "Which side is the {a} on, left or right?"
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
            "In which direction does the {a} move?",
            "Tell me which direction the {a} is moving in.",
            "Could you say where the {a} is moving to?",
            "Where is the {a} moving to?",
            "I want to know which direction the {a} moves in.",
            "Name the direction the {a} is moving.",
            "Which direction does the {a} go?",
            "Please say which direction the {a} moves.",
            "Judging by its motion trail, which direction is the {a} moving?"
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
            "Does the {a} move {dir}?",
            "Tell me whether the {a} is moving {dir}.",
            "Can you check whether the {a} moves {dir}?",
            "Yes or no: does the {a} move {dir}?",
            "I want to know if the {a} is going {dir}.",
            "Does the {a} go {dir} in the picture?",
            "Judging by its trail, is the {a} moving {dir}?",
            "Can you tell if the {a} moves {dir}?",
            "Please say whether the {a} moves {dir}."
        ],
        [
            "Is {dir} the way the {a} is headed?",
            "Would you say the {a} travels {dir}?"
        ]
    ),
    p!(
        "what_doing",
        [
            "What is the {a} doing?",
            "What is happening to the {a}?",
            "What does the {a} do in the picture?",
            "What's happening with the {a}?",
            "Tell me what the {a} is doing.",
            "Could you say what the {a} is doing?",
            "I want to know what the {a} is doing.",
            "What is the {a} doing in this image?",
            "Say what is going on with the {a}.",
            "What happens with the {a} in the picture?",
            "The {a}: what is it doing?"
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
            "What is moving in the picture?",
            "Which shape is in motion?",
            "What's moving in the image?",
            "Tell me which shape is moving.",
            "Could you say which object is moving?",
            "Which figure moves in the picture?",
            "I want to know which shape is moving.",
            "Which one of the shapes moves?",
            "Which shape leaves a motion trail?"
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
            "Does the {a} move?",
            "Tell me whether the {a} is moving.",
            "Could you say if the {a} is in motion?",
            "Yes or no: is the {a} moving?",
            "Is the {a} moving in the picture?",
            "I want to know if the {a} moves.",
            "Does the {a} have a motion trail?",
            "Can you tell if the {a} is moving?",
            "Is there any movement of the {a}?"
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
            "Which shape is the {a}?",
            "What's the shape of the {a}?",
            "Tell me what shape the {a} is.",
            "Could you say which shape the {a} has?",
            "I want to know the shape of the {a}.",
            "The {a}: what shape is it?",
            "What shape does the {a} have?",
            "Say which shape the {a} is.",
            "What geometric shape is the {a} in the image?"
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
            "Is there {a_thing} in the picture?",
            "Tell me whether there is {a_thing} in the image.",
            "Could you say if there is {a_thing} in the picture?",
            "Yes or no: is there {a_thing}?",
            "Is {a_thing} shown in this photo?",
            "I want to know if the image has {a_thing}.",
            "Is there {a_thing} anywhere in the scene?",
            "Does {a_thing} appear in the picture?",
            "Does the image have {a_thing} in it?"
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
            "Is the {a} small, medium or large?",
            "Tell me how big the {a} is.",
            "Could you say what size the {a} is?",
            "Is the {a} small, medium or large in size?",
            "I want to know how large the {a} is.",
            "How large is the {a}?",
            "The {a}: is it small, medium or large?",
            "Which size is the {a}: small, medium or large?",
            "Say whether the {a} is small, medium or large."
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
            "Count the sides of the {a}.",
            "How many sides has the {a} got?",
            "Tell me the number of sides the {a} has.",
            "Could you count the sides of the {a}?",
            "I want to know how many sides the {a} has.",
            "The {a} has how many sides?",
            "Please count the sides on the {a}.",
            "How many sides can you count on the {a}?",
            "Say how many sides the {a} has."
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
            "List the shapes in the picture.",
            "What shapes do you see in the picture?",
            "Tell me which shapes are in the image.",
            "Could you list the shapes you see?",
            "What objects are there in this image?",
            "I want to know what shapes the picture has.",
            "Which shapes does the scene contain?",
            "What are the shapes in this photo?",
            "Please list the shapes you can see in the image."
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
            "In the video, does the {a} {motion}?",
            "Tell me whether the {a} is {motion_ing}.",
            "Could you say if the {a} is {motion_ing} in the video?",
            "Yes or no: does the {a} {motion}?",
            "Does the {a} {motion} in this video?",
            "I want to know if the {a} is {motion_ing}.",
            "Is the {a} {motion_ing} in the clip?",
            "During the video, does the {a} {motion}?",
            "Watching the video, does the {a} {motion}?"
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
            "What does the {a} do in the video?",
            "Tell me what happens to the {a} in the video.",
            "Could you say what the {a} does?",
            "What happens with the {a} during the video?",
            "What does the {a} do over the course of the video?",
            "I want to know what the {a} does in the video.",
            "In the video, what does the {a} do?",
            "The {a}: what does it do in the video?",
            "What's going on with the {a} in the video?"
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
            "What {motion_s} in the video?",
            "Which shape is it that {motion_s}?",
            "Which object in the video {motion_s}?",
            "Could you say which shape {motion_s} in the video?",
            "I want to know which shape {motion_s}.",
            "In the video, which shape {motion_s}?",
            "Which of the shapes {motion_s} in this video?",
            "What shape {motion_s} in this video?",
            "The video shows a shape that {motion_s}. Which one is it?"
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
            "Where does the {a} move to?",
            "Tell me which way the {a} moves in the video.",
            "Could you say where the {a} moves to?",
            "In the video, which way does the {a} go?",
            "I want to know which direction the {a} moves.",
            "Where does the {a} go in the video?",
            "The {a} moves in which direction?",
            "Say which direction the {a} moves in over the video.",
            "Left, right, up or down: where does the {a} move?"
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
            "What color is the {a} at the end of the video?",
            "Tell me what color the {a} turns.",
            "Could you say what color the {a} becomes?",
            "Which colour does the {a} have at the end?",
            "I'd like to know the color of the {a} at the end of the video.",
            "In the last frame, what color is the {a}?",
            "What's the color of the {a} when the video ends?",
            "The {a} changes color. What color does it become?",
            "Say which colour the {a} turns in the video."
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
            "At the end of the video, how many shapes are there?",
            "Give the number of shapes in the last frame.",
            "Could you count the shapes at the end of the video?",
            "How many shapes are left when the video ends?",
            "I want to know how many shapes the last frame shows.",
            "Count the shapes in the video's last frame.",
            "How many shapes does the video show at its end?",
            "What's the number of shapes at the end of the video?",
            "By the end of the video, how many shapes can be seen?"
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
    use std::collections::BTreeSet;

    #[test]
    fn heldout_is_disjoint_and_every_kind_has_enough() {
        let mut kinds = BTreeSet::new();
        for p in PHRASINGS {
            assert!(kinds.insert(p.kind), "duplicate kind {}", p.kind);
            assert!(p.train.len() >= 3 && p.heldout.len() >= 2, "{}", p.kind);
            for h in p.heldout {
                assert!(PHRASINGS.iter().all(|q| !q.train.contains(h)), "{h}");
            }
        }
    }

    /// The slot names of a phrasing; the three verb forms of a motion count as one slot, and
    /// `{thing}` is left out because `{things}` always names the same counted thing.
    fn slots(t: &str) -> BTreeSet<&str> {
        t.split('{')
            .skip(1)
            .filter_map(|s| s.split_once('}').map(|(name, _)| name))
            .map(|name| {
                if name.starts_with("motion") {
                    "motion"
                } else {
                    name
                }
            })
            .filter(|name| *name != "thing")
            .collect()
    }

    #[test]
    fn train_phrasings_are_many_distinct_and_ask_about_the_same_slots() {
        for p in PHRASINGS {
            assert!(
                p.train.len() >= 8,
                "{} has {} train phrasings",
                p.kind,
                p.train.len()
            );
            let distinct: BTreeSet<&str> = p.train.iter().copied().collect();
            assert_eq!(distinct.len(), p.train.len(), "duplicate in {}", p.kind);
            let first = slots(p.train[0]);
            for t in p.train.iter().chain(p.heldout) {
                assert_eq!(slots(t), first, "{}: {t}", p.kind);
                assert!(t.ends_with('?') || t.ends_with('.'), "{t}");
            }
        }
    }

    /// The counting test reads the counted thing back out of a question by matching each
    /// phrasing's text around `{things}`; that must give the thing for every phrasing.
    #[test]
    fn the_counted_thing_reads_back_from_every_count_phrasing() {
        let Some(p) = phrasing("count") else {
            panic!("no count phrasings");
        };
        for list in [p.train, p.heldout] {
            for t in list {
                let q = fill(t, &[("things", "red circles".to_string())]);
                let found = list.iter().find_map(|p| {
                    let (pre, post) = p.split_once("{things}")?;
                    (q.starts_with(pre) && q.ends_with(post) && q.len() > pre.len() + post.len())
                        .then(|| &q[pre.len()..q.len() - post.len()])
                });
                assert_eq!(found, Some("red circles"), "{t}");
            }
        }
    }
}
