//! Questions about a scene, one kind per Open-VQA class (paper Section 3.1): each has a short
//! answer, accepted alternatives and a full-sentence explanation with a reason. This file holds
//! the shared machinery (referring expressions, groups) and OCR, counting, place, colour and
//! "others" questions; `relations.rs` adds reasoning, spatial and action, `video_questions.rs`
//! the video classes.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::vocab::{
    capitalize, join_and, number_alternatives, number_word, with_article, Color, Shape, Size, WORDS,
};
use super::world::{pick, Scene, TextKind};

/// The Open-VQA classes (images and videos) the world covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VqaClass {
    Ocr,
    Counting,
    Reasoning,
    Place,
    Color,
    Spatial,
    Action,
    Others,
    VideoAction,
    VideoOthers,
}

impl VqaClass {
    pub const IMAGE: [VqaClass; 8] = [
        VqaClass::Ocr,
        VqaClass::Counting,
        VqaClass::Reasoning,
        VqaClass::Place,
        VqaClass::Color,
        VqaClass::Spatial,
        VqaClass::Action,
        VqaClass::Others,
    ];
    pub const VIDEO: [VqaClass; 2] = [VqaClass::VideoAction, VqaClass::VideoOthers];

    /// The `class` value in the Open-VQA annotation files.
    pub fn open_vqa_name(self) -> &'static str {
        match self {
            VqaClass::Ocr => "OCR",
            VqaClass::Counting => "Counting",
            VqaClass::Reasoning => "Reasoning",
            VqaClass::Place => "Place",
            VqaClass::Color => "Color",
            VqaClass::Spatial => "Spatial",
            VqaClass::Action => "Action",
            VqaClass::Others | VqaClass::VideoOthers => "Others",
            VqaClass::VideoAction => "Action(Y/N)",
        }
    }

    /// The training task (and JSONL file name under train/) of this class's questions.
    pub fn task(self) -> &'static str {
        match self {
            VqaClass::Ocr => "vqa_ocr",
            VqaClass::Counting => "vqa_count",
            VqaClass::Reasoning => "vqa_reasoning",
            VqaClass::Place => "vqa_place",
            VqaClass::Color => "vqa_color",
            VqaClass::Spatial => "vqa_spatial",
            VqaClass::Action => "vqa_action",
            VqaClass::Others => "vqa_shape",
            VqaClass::VideoAction => "video_action",
            VqaClass::VideoOthers => "video_qa",
        }
    }
}

/// One question about a scene.
#[derive(Debug, Clone, PartialEq)]
pub struct Qa {
    /// The phrasing kind (see `phrasings.rs`).
    pub kind: &'static str,
    pub class: VqaClass,
    pub slots: Vec<(&'static str, String)>,
    /// Short answer (a word, a number or a short phrase).
    pub answer: String,
    /// Accepted answers for evaluation (the short answer first).
    pub alternatives: Vec<String>,
    /// A full sentence answer that gives the reason.
    pub explanation: String,
    /// False for questions whose answer has no closed set of alternatives (lists).
    pub testable: bool,
}

impl Qa {
    pub fn new(
        kind: &'static str,
        class: VqaClass,
        slots: Vec<(&'static str, String)>,
        answer: impl Into<String>,
        alternatives: Vec<String>,
        explanation: impl Into<String>,
    ) -> Qa {
        let answer = answer.into();
        let mut alts = vec![answer.clone()];
        for a in alternatives {
            if !alts.contains(&a) {
                alts.push(a);
            }
        }
        Qa {
            kind,
            class,
            slots,
            answer,
            alternatives: alts,
            explanation: explanation.into(),
            testable: true,
        }
    }

    /// The question in one of its training (or, with `heldout`, held-out) phrasings.
    pub fn phrase(&self, rng: &mut ChaCha8Rng, heldout: bool) -> String {
        match super::phrasings::phrasing(self.kind) {
            Some(p) => {
                let list = if heldout { p.heldout } else { p.train };
                super::phrasings::fill(list[rng.random_range(0..list.len())], &self.slots)
            }
            None => self.kind.to_string(),
        }
    }
}

/// A yes/no answer with its alternatives.
pub fn yes_no(b: bool) -> (String, Vec<String>) {
    let a = if b { "yes" } else { "no" };
    (a.into(), vec![a.into()])
}

/// Answer alternatives for a referring phrase ("red circle").
pub fn noun_alternatives(noun: &str) -> Vec<String> {
    vec![format!("the {noun}"), noun.to_string(), with_article(noun)]
}

/// Attributes a referring expression may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr {
    Shape,
    Color,
    Size,
}

/// The shortest phrase that picks out object `i` alone ("circle", "red circle", "large red
/// circle"; with `Attr::Shape` skipped, "red object"). `None` if no phrase is unique.
pub fn refer(scene: &Scene, i: usize, skip: &[Attr]) -> Option<String> {
    let o = scene.objects.get(i)?;
    let sets: &[&[Attr]] = if skip.contains(&Attr::Shape) {
        &[&[Attr::Color], &[Attr::Size], &[Attr::Size, Attr::Color]]
    } else {
        &[
            &[Attr::Shape],
            &[Attr::Color, Attr::Shape],
            &[Attr::Size, Attr::Shape],
            &[Attr::Size, Attr::Color, Attr::Shape],
        ]
    };
    if scene.objects.len() == 1 && skip.contains(&Attr::Shape) {
        return Some("object".into());
    }
    for set in sets {
        if set.iter().any(|a| skip.contains(a)) {
            continue;
        }
        let same = |j: usize| {
            let p = &scene.objects[j];
            set.iter().all(|a| match a {
                Attr::Shape => p.shape == o.shape,
                Attr::Color => p.color == o.color,
                Attr::Size => p.size == o.size,
            })
        };
        if (0..scene.objects.len())
            .filter(|&j| j != i)
            .all(|j| !same(j))
        {
            let mut words = Vec::new();
            if set.contains(&Attr::Size) {
                words.push(o.size.name());
            }
            if set.contains(&Attr::Color) {
                words.push(o.color.name());
            }
            words.push(if set.contains(&Attr::Shape) {
                o.shape.name()
            } else {
                "object"
            });
            return Some(words.join(" "));
        }
    }
    None
}

/// Where a point is in the picture, in words.
pub fn position_phrase(cx: f32, cy: f32, side: u32) -> &'static str {
    let s = side as f32;
    let col = ((cx / s * 3.0) as usize).min(2);
    let row = ((cy / s * 3.0) as usize).min(2);
    [
        ["at the top left", "at the top", "at the top right"],
        ["on the left", "in the center", "on the right"],
        ["at the bottom left", "at the bottom", "at the bottom right"],
    ][row][col]
}

/// A countable set of objects with its names.
#[derive(Debug, Clone)]
pub struct Group {
    pub singular: String,
    pub plural: String,
    pub members: Vec<usize>,
}

/// Groups by shape, by colour and shape, by colour, and all shapes; plus one absent shape.
pub fn groups(scene: &Scene) -> Vec<Group> {
    let objs = &scene.objects;
    let members = |f: &dyn Fn(usize) -> bool| (0..objs.len()).filter(|&i| f(i)).collect::<Vec<_>>();
    let mut out = Vec::new();
    for s in Shape::ALL {
        let m = members(&|i| objs[i].shape == s);
        if !m.is_empty() {
            out.push(Group {
                singular: s.name().into(),
                plural: s.plural().into(),
                members: m,
            });
        }
        for c in Color::ALL {
            let m = members(&|i| objs[i].shape == s && objs[i].color == c);
            if !m.is_empty() {
                let (singular, plural) = (
                    format!("{} {}", c.name(), s.name()),
                    format!("{} {}", c.name(), s.plural()),
                );
                out.push(Group {
                    singular,
                    plural,
                    members: m,
                });
            }
        }
    }
    for c in Color::ALL {
        let m = members(&|i| objs[i].color == c);
        if !m.is_empty() {
            let (singular, plural) = (
                format!("{} shape", c.name()),
                format!("{} shapes", c.name()),
            );
            out.push(Group {
                singular,
                plural,
                members: m,
            });
        }
    }
    if !objs.is_empty() {
        out.push(Group {
            singular: "shape".into(),
            plural: "shapes".into(),
            members: (0..objs.len()).collect(),
        });
    }
    if let Some(s) = Shape::ALL
        .into_iter()
        .find(|s| objs.iter().all(|o| o.shape != *s))
    {
        out.push(Group {
            singular: s.name().into(),
            plural: s.plural().into(),
            members: vec![],
        });
    }
    out
}

/// "three red circles" / "one red circle" / "no red circles".
pub fn count_phrase(n: usize, g: &Group) -> String {
    match n {
        0 => format!("no {}", g.plural),
        1 => format!("one {}", g.singular),
        _ => format!("{} {}", number_word(n as u32), g.plural),
    }
}

fn count_explanation(scene: &Scene, g: &Group) -> String {
    let n = g.members.len();
    let mut members = g.members.clone();
    members.sort_by(|&a, &b| scene.objects[a].cx.total_cmp(&scene.objects[b].cx));
    let places: Vec<String> = members
        .iter()
        .map(|&i| {
            format!(
                "one {}",
                position_phrase(scene.objects[i].cx, scene.objects[i].cy, scene.side)
            )
        })
        .collect();
    match n {
        0 => format!(
            "There are no {} in the image. I looked at every shape and none of them is a {}.",
            g.plural, g.singular
        ),
        1 => format!(
            "There is one {}, {}.",
            g.singular,
            position_phrase(
                scene.objects[members[0]].cx,
                scene.objects[members[0]].cy,
                scene.side
            )
        ),
        _ => format!(
            "There are {} {}. I can count them: {}.",
            number_word(n as u32),
            g.plural,
            join_and(&places)
        ),
    }
}

/// Every question the scene supports; video scenes get the video classes only.
pub fn scene_questions(scene: &Scene, rng: &mut ChaCha8Rng) -> Vec<Qa> {
    if scene.is_video() {
        return super::video_questions::video_questions(scene, rng);
    }
    let mut out = Vec::new();
    ocr(scene, rng, &mut out);
    counting(scene, &mut out);
    place(scene, &mut out);
    color(scene, rng, &mut out);
    others(scene, rng, &mut out);
    super::relations::reasoning(scene, rng, &mut out);
    super::relations::spatial(scene, rng, &mut out);
    super::relations::action(scene, rng, &mut out);
    out
}

fn ocr(scene: &Scene, rng: &mut ChaCha8Rng, out: &mut Vec<Qa>) {
    for t in &scene.texts {
        let item = t.kind.name().to_string();
        let lower = t.text.to_lowercase();
        let board = t.board_color.name();
        let (kind, answer, alts, expl) = match t.kind {
            TextKind::Sign => ("ocr_sign", lower.clone(), vec![t.text.clone()], format!("The sign says \"{}\". The word is written in big letters on a {board} board.", t.text)),
            TextKind::Book => ("ocr_book", lower.clone(), vec![t.text.clone()], format!("The title of the book is \"{}\". It is printed in large letters on the {board} cover.", t.text)),
            TextKind::Label => {
                let n: u32 = t.text.parse().unwrap_or(0);
                ("ocr_label", t.text.clone(), number_alternatives(n), format!("The label shows the number {} ({}).", t.text, number_word(n)))
            }
        };
        out.push(Qa::new(
            kind,
            VqaClass::Ocr,
            vec![],
            answer.clone(),
            alts.clone(),
            expl.clone(),
        ));
        if scene.texts.len() == 1 {
            out.push(Qa::new(
                "ocr_any",
                VqaClass::Ocr,
                vec![],
                answer,
                alts,
                expl,
            ));
        }
        let truth = rng.random_bool(0.5);
        let shown = if truth {
            t.text.clone()
        } else if t.kind == TextKind::Label {
            let n: u32 = t.text.parse().unwrap_or(0);
            ((n + rng.random_range(1..99)) % 100).to_string()
        } else {
            loop {
                let w = pick(rng, &WORDS);
                if w != t.text {
                    break w.to_string();
                }
            }
        };
        let (a, alts) = yes_no(truth);
        let expl = if truth {
            format!("Yes, the {item} says {}.", t.text)
        } else {
            format!("No, the {item} says {}, not {shown}.", t.text)
        };
        out.push(Qa::new(
            "ocr_yesno",
            VqaClass::Ocr,
            vec![("item", item.clone()), ("word", shown)],
            a,
            alts,
            expl,
        ));
        let expl = format!(
            "The {item} is {board}; its text is written in {} letters.",
            if t.board_color.ink()[0] > 128 {
                "white"
            } else {
                "dark"
            }
        );
        out.push(Qa::new(
            "color_of",
            VqaClass::Color,
            vec![("a", item)],
            board,
            vec![],
            expl,
        ));
    }
}

fn counting(scene: &Scene, out: &mut Vec<Qa>) {
    for g in groups(scene) {
        let n = g.members.len();
        out.push(Qa::new(
            "count",
            VqaClass::Counting,
            vec![("things", g.plural.clone())],
            n.to_string(),
            number_alternatives(n as u32),
            count_explanation(scene, &g),
        ));
    }
}

fn place(scene: &Scene, out: &mut Vec<Qa>) {
    let p = scene.place;
    let alts = p.alternatives().iter().map(|s| s.to_string()).collect();
    let expl = format!(
        "This picture was taken {}: I can see {}.",
        p.with_preposition(),
        p.description()
    );
    out.push(Qa::new(
        "place",
        VqaClass::Place,
        vec![],
        p.name(),
        alts,
        expl,
    ));
}

fn color(scene: &Scene, rng: &mut ChaCha8Rng, out: &mut Vec<Qa>) {
    for (i, o) in scene.objects.iter().enumerate() {
        let Some(a) = refer(scene, i, &[Attr::Color]) else {
            continue;
        };
        let c = o.color.name();
        let expl = format!(
            "The {a} is {c}. It is {}.",
            position_phrase(o.cx, o.cy, scene.side)
        );
        out.push(Qa::new(
            "color_of",
            VqaClass::Color,
            vec![("a", a.clone())],
            c,
            vec![],
            expl,
        ));
        let truth = rng.random_bool(0.5);
        let asked = if truth {
            o.color
        } else {
            pick(
                rng,
                &Color::ALL
                    .into_iter()
                    .filter(|&x| x != o.color)
                    .collect::<Vec<_>>(),
            )
        };
        let (ans, alts) = yes_no(truth);
        let expl = if truth {
            format!("Yes, the {a} is {c}.")
        } else {
            format!("No, the {a} is not {}; it is {c}.", asked.name())
        };
        out.push(Qa::new(
            "color_yesno",
            VqaClass::Color,
            vec![("a", a), ("color", asked.name().into())],
            ans,
            alts,
            expl,
        ));
    }
}

fn size_alternatives(s: Size) -> Vec<String> {
    match s {
        Size::Small => vec!["small".into(), "tiny".into(), "little".into()],
        Size::Medium => vec![
            "medium".into(),
            "medium-sized".into(),
            "middle-sized".into(),
        ],
        Size::Large => vec!["large".into(), "big".into()],
    }
}

fn others(scene: &Scene, rng: &mut ChaCha8Rng, out: &mut Vec<Qa>) {
    for (i, o) in scene.objects.iter().enumerate() {
        if let Some(a) = refer(scene, i, &[Attr::Shape]) {
            let s = o.shape.name();
            let expl = format!("The {a} is {}. {}", with_article(s), o.shape.definition());
            out.push(Qa::new(
                "shape_of",
                VqaClass::Others,
                vec![("a", a.clone())],
                s,
                vec![format!("a {s}"), format!("the {s}")],
                expl,
            ));
            if matches!(
                o.shape,
                Shape::Triangle | Shape::Square | Shape::Diamond | Shape::Hexagon
            ) {
                let n = o.shape.sides();
                let expl = format!(
                    "The {a} is {}, and {} has {} sides.",
                    with_article(s),
                    with_article(s),
                    number_word(n)
                );
                out.push(Qa::new(
                    "sides",
                    VqaClass::Others,
                    vec![("a", a)],
                    n.to_string(),
                    number_alternatives(n),
                    expl,
                ));
            }
        }
        if let Some(a) = refer(scene, i, &[Attr::Size]) {
            let sz = o.size.name();
            let expl = format!(
                "The {a} is {sz}. Shapes here come in three sizes: small, medium and large."
            );
            out.push(Qa::new(
                "size_of",
                VqaClass::Others,
                vec![("a", a)],
                sz,
                size_alternatives(o.size),
                expl,
            ));
        }
    }
    // Presence: one shape that is there and one that is not.
    let present: Vec<Shape> = Shape::ALL
        .into_iter()
        .filter(|s| scene.objects.iter().any(|o| o.shape == *s))
        .collect();
    let absent: Vec<Shape> = Shape::ALL
        .into_iter()
        .filter(|s| !present.contains(s))
        .collect();
    for (list, truth) in [(&present, true), (&absent, false)] {
        if list.is_empty() {
            continue;
        }
        let s = pick(rng, list);
        let thing = s.name().to_string();
        let (a, alts) = yes_no(truth);
        let expl = if truth {
            let n = scene.objects.iter().filter(|o| o.shape == s).count();
            format!(
                "Yes, there {} in the image.",
                if n == 1 {
                    format!("is one {thing}")
                } else {
                    format!("are {} {}", number_word(n as u32), s.plural())
                }
            )
        } else {
            format!("No, there is no {thing} in the image.")
        };
        out.push(Qa::new(
            "exists",
            VqaClass::Others,
            vec![("a_thing", with_article(&thing))],
            a,
            alts,
            expl,
        ));
    }
    if !scene.objects.is_empty() {
        let list = describe_groups(scene);
        let expl = format!("{} in the image.", capitalize(&format!("I can see {list}")));
        let mut q = Qa::new("what_objects", VqaClass::Others, vec![], list, vec![], expl);
        q.testable = false;
        out.push(q);
    }
}

/// "two red circles and a blue star" (kinds in order of first appearance).
pub fn describe_groups(scene: &Scene) -> String {
    let mut kinds: Vec<(Shape, Color, usize)> = Vec::new();
    for o in &scene.objects {
        match kinds.iter_mut().find(|k| k.0 == o.shape && k.1 == o.color) {
            Some(k) => k.2 += 1,
            None => kinds.push((o.shape, o.color, 1)),
        }
    }
    let parts: Vec<String> = kinds
        .iter()
        .map(|&(s, c, n)| {
            if n == 1 {
                with_article(&format!("{} {}", c.name(), s.name()))
            } else {
                format!("{} {} {}", number_word(n as u32), c.name(), s.plural())
            }
        })
        .collect();
    join_and(&parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{sample_scene, scene_rng, Split, SynthConfig};
    use std::collections::BTreeSet;

    #[test]
    fn every_question_kind_has_phrasings_and_fills_all_slots() {
        let cfg = SynthConfig {
            video_fraction: 0.3,
            ..SynthConfig::default()
        };
        let mut classes = BTreeSet::new();
        let mut kinds = BTreeSet::new();
        for i in 0..300 {
            let scene = sample_scene(&cfg, Split::Train, i);
            let mut rng = scene_rng(0, Split::Train, i, 1);
            for q in scene_questions(&scene, &mut rng) {
                assert!(
                    super::super::phrasings::phrasing(q.kind).is_some(),
                    "{}",
                    q.kind
                );
                for heldout in [false, true] {
                    let text = q.phrase(&mut rng, heldout);
                    assert!(!text.contains('{') && !text.contains('}'), "{text}");
                }
                assert_eq!(q.alternatives[0], q.answer);
                assert!(
                    !q.answer.is_empty() && q.explanation.ends_with('.'),
                    "{q:?}"
                );
                classes.insert(q.class);
                kinds.insert(q.kind);
            }
        }
        assert_eq!(classes.len(), 10);
        assert!(kinds.len() >= 40, "{kinds:?}");
    }

    #[test]
    fn referring_expressions_are_unique() {
        let cfg = SynthConfig::default();
        for i in 0..200 {
            let scene = sample_scene(&cfg, Split::Train, i);
            let names: Vec<String> = (0..scene.objects.len())
                .filter_map(|k| refer(&scene, k, &[]))
                .collect();
            let set: BTreeSet<&String> = names.iter().collect();
            assert_eq!(set.len(), names.len(), "{names:?}");
        }
    }
}
