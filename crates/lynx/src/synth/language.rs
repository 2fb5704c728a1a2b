//! Captions (short and detailed), image-grounded dialogs and short stories for the synthetic
//! world: the captioning and "image-conditioned dialog" task categories of paper Section 2.4.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::attributes::describe_groups;
use super::paraphrase::Paraphraser;
use super::questions::{position_phrase, refer, Qa};
use super::video_questions::{event_sentence, motion_of};
use super::vocab::{capitalize, join_and, number_word, with_article, Color, Place, Shape, WORDS};
use super::world::{pick, Scene, TextItem, TextKind};

fn place_noun(p: Place) -> &'static str {
    match p {
        Place::Beach => "a beach",
        Place::Snow => "a snowy landscape",
        Place::Forest => "a forest",
        Place::CityStreet => "a city street",
        Place::Room => "a room",
        Place::Desert => "a desert",
        Place::NightSky => "the night sky",
        Place::Field => "a grassy field",
    }
}

fn text_phrase(t: &TextItem) -> String {
    match t.kind {
        TextKind::Sign => format!(
            "{} sign that says {}",
            with_article(t.board_color.name()),
            t.text
        ),
        TextKind::Label => format!("a price label with the number {}", t.text),
        TextKind::Book => format!(
            "{} book titled {}",
            with_article(t.board_color.name()),
            t.text
        ),
    }
}

/// One sentence naming what is in the scene and where.
pub fn short_caption(scene: &Scene) -> String {
    let at = scene.place.with_preposition();
    if scene.is_video() {
        let Some(ev) = scene.events.first() else {
            return format!("A video of {}.", place_noun(scene.place));
        };
        let actor = with_article(&scene.objects[ev.object].noun());
        return format!("{} {} {at}.", capitalize(&actor), motion_of(ev.kind).third);
    }
    if let Some(p) = &scene.pattern {
        let _ = p;
        return format!(
            "A row of {} with one empty spot {at}.",
            describe_groups(scene)
        );
    }
    if let Some(o) = scene.objects.iter().find(|o| o.motion.is_some()) {
        let d = o.motion.map(|d| d.phrase()).unwrap_or("");
        return format!("{} moving {d} {at}.", capitalize(&with_article(&o.noun())));
    }
    let mut parts: Vec<String> = scene.texts.iter().map(text_phrase).collect();
    if !scene.objects.is_empty() {
        parts.push(describe_groups(scene));
    }
    if parts.is_empty() {
        return format!("A picture of {}.", place_noun(scene.place));
    }
    format!("{} {at}.", capitalize(&join_and(&parts)))
}

/// Several sentences: the place, every shape with its size and position, texts, motion, pattern.
pub fn detailed_caption(scene: &Scene) -> String {
    let mut out = vec![format!(
        "This {} shows {}.",
        if scene.is_video() { "video" } else { "picture" },
        scene.place.description()
    )];
    let objs: Vec<String> = scene
        .objects
        .iter()
        .map(|o| {
            let (cx, cy) = match o.track.iter().flatten().next() {
                Some(p) => (p.cx, p.cy),
                None => (o.cx, o.cy),
            };
            format!(
                "{} {}",
                with_article(&format!(
                    "{} {} {}",
                    o.size.name(),
                    o.color.name(),
                    o.shape.name()
                )),
                position_phrase(cx, cy, scene.side)
            )
        })
        .collect();
    match objs.len() {
        0 => out.push("There are no shapes in it.".into()),
        1 => out.push(format!("There is one shape: {}.", objs[0])),
        n => out.push(format!(
            "There are {} shapes: {}.",
            number_word(n as u32),
            join_and(&objs)
        )),
    }
    for t in &scene.texts {
        let b = t.board;
        let pos = position_phrase((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0, scene.side);
        out.push(format!("{} is {pos}.", capitalize(&text_phrase(t))));
    }
    if let Some(p) = &scene.pattern {
        let seq: Vec<String> = p
            .slots
            .iter()
            .map(|s| {
                s.map(|i| scene.objects[i].noun())
                    .unwrap_or_else(|| "an empty spot".into())
            })
            .collect();
        out.push(format!(
            "The shapes form a repeating row: {}. The empty spot with a question mark should hold {}.",
            seq.join(", "),
            with_article(&format!("{} {}", p.missing_color.name(), p.missing_shape.name()))
        ));
    }
    for o in &scene.objects {
        if let Some(d) = o.motion {
            out.push(format!(
                "The {} is moving {}; the faded copies behind it show where it came from.",
                o.noun(),
                d.phrase()
            ));
        }
    }
    if let Some(ev) = scene.events.first().filter(|_| scene.is_video()) {
        let a = refer(scene, ev.object, &[]).unwrap_or_else(|| scene.objects[ev.object].noun());
        out.push(event_sentence(scene, &a));
        if scene.objects.len() > 1 {
            out.push("The other shapes stay still.".into());
        }
    }
    out.join(" ")
}

const DESCRIBE: [&str; 4] = [
    "Describe this image.",
    "What do you see in this picture?",
    "Can you tell me what is in this image?",
    "Please describe the picture in detail.",
];
const DESCRIBE_VIDEO: [&str; 3] = [
    "Describe what happens in this video.",
    "What is going on in this clip?",
    "Can you tell me what happens in the video?",
];
const FOLLOW_UP: [&str; 4] = [" Why?", " Please explain.", " How do you know?", ""];
const STORY_ASK: [&str; 3] = [
    "Write a short story about this picture.",
    "Can you make up a little story about this scene?",
    "Tell me a short story inspired by this image.",
];

/// A multi-turn dialog: maybe a description, two or three questions answered with reasons (in
/// training phrasings, paraphrased by `para`), maybe a story. Returns (from, value) turns, human
/// first.
pub fn dialog(
    scene: &Scene,
    qas: &[Qa],
    rng: &mut ChaCha8Rng,
    para: &mut Paraphraser,
) -> Vec<(&'static str, String)> {
    let mut turns = Vec::new();
    if rng.random_bool(0.5) || qas.is_empty() {
        let ask = if scene.is_video() {
            pick(rng, &DESCRIBE_VIDEO)
        } else {
            pick(rng, &DESCRIBE)
        };
        turns.push(("human", ask.to_string()));
        turns.push(("gpt", detailed_caption(scene)));
    }
    let mut used: Vec<usize> = Vec::new();
    for _ in 0..rng.random_range(2..=3) {
        if qas.is_empty() {
            break;
        }
        let k = rng.random_range(0..qas.len());
        if used.contains(&k) {
            continue;
        }
        used.push(k);
        let q = para.apply(&qas[k], qas[k].phrase(rng, false));
        let q = format!("{q}{}", pick(rng, &FOLLOW_UP));
        turns.push(("human", q));
        turns.push(("gpt", qas[k].explanation.clone()));
    }
    if rng.random_bool(0.3) {
        turns.push(("human", pick(rng, &STORY_ASK).to_string()));
        let (shape, color) = scene
            .objects
            .first()
            .map(|o| (o.shape, o.color))
            .unwrap_or((Shape::Star, Color::Yellow));
        turns.push(("gpt", story(shape, color, scene.place, rng)));
    }
    turns
}

fn place_life(p: Place) -> &'static str {
    match p {
        Place::Beach => "Every morning it watched the waves roll onto the warm sand.",
        Place::Snow => "It loved the cold air and the soft white snow.",
        Place::Forest => "It liked to rest in the shade of the tall green trees.",
        Place::CityStreet => "All day it listened to the cars and the busy people in the street.",
        Place::Room => "It sat by the window and looked at the sky outside.",
        Place::Desert => "The sun was hot, and the only friend nearby was a cactus.",
        Place::NightSky => "At night it counted the stars and talked to the moon.",
        Place::Field => "It rolled in the green grass between the flowers.",
    }
}

/// A four-sentence story about a shape in a place.
pub fn story(shape: Shape, color: Color, place: Place, rng: &mut ChaCha8Rng) -> String {
    let hero = format!("{} {}", color.name(), shape.name());
    let friend_shape = pick(
        rng,
        &Shape::ALL
            .into_iter()
            .filter(|&s| s != shape)
            .collect::<Vec<_>>(),
    );
    let friend = format!("{} {}", pick(rng, &Color::ALL).name(), friend_shape.name());
    let event = match rng.random_range(0..3) {
        0 => format!(
            "One day it met {} who wanted to play.",
            with_article(&friend)
        ),
        1 => format!("One day it found a sign that said {}.", pick(rng, &WORDS)),
        _ => format!(
            "One day it decided to count the {} around it and found {}.",
            friend_shape.plural(),
            number_word(rng.random_range(2..7))
        ),
    };
    let end = pick(
        rng,
        &[
            "In the end they became the best of friends.",
            "It was a happy day, and it smiled all the way home.",
            "From then on, it was never bored again.",
        ],
    );
    format!(
        "Once upon a time, there was {} {}. {} {event} {end}",
        with_article(&hero),
        place.with_preposition(),
        place_life(place)
    )
}
