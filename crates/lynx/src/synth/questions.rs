//! Questions about a scene, one kind per Open-VQA class (paper Section 3.1): each has a short
//! answer, accepted alternatives and a full-sentence explanation with a reason. This file holds
//! the shared machinery (classes, referring expressions, groups); `attributes.rs` asks OCR,
//! counting, place, colour and "others",
//! `relations.rs` reasoning and action, `spatial.rs` spatial, `video_questions.rs` the video classes.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::vocab::{join_and, number_word, with_article, Color, Shape};
use super::world::Scene;

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

pub fn count_explanation(scene: &Scene, g: &Group) -> String {
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
    super::attributes::ocr(scene, rng, &mut out);
    super::attributes::counting(scene, &mut out);
    super::attributes::place(scene, &mut out);
    super::attributes::color(scene, rng, &mut out);
    super::attributes::others(scene, rng, &mut out);
    super::relations::reasoning(scene, rng, &mut out);
    super::spatial::spatial(scene, rng, &mut out);
    super::relations::action(scene, rng, &mut out);
    out
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
