//! Questions about what things are: OCR (signs, labels, book titles), counting, place, colour
//! and "others" (shape, size, sides, presence), the Open-VQA classes of paper Section 3.1.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::questions::{
    count_explanation, groups, position_phrase, refer, yes_no, Attr, Qa, VqaClass,
};
use super::vocab::{
    capitalize, join_and, number_alternatives, number_word, with_article, Color, Shape, Size, WORDS,
};
use super::world::{pick, Scene, TextKind};

pub fn ocr(scene: &Scene, rng: &mut ChaCha8Rng, out: &mut Vec<Qa>) {
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

pub fn counting(scene: &Scene, out: &mut Vec<Qa>) {
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

pub fn place(scene: &Scene, out: &mut Vec<Qa>) {
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

pub fn color(scene: &Scene, rng: &mut ChaCha8Rng, out: &mut Vec<Qa>) {
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

pub fn others(scene: &Scene, rng: &mut ChaCha8Rng, out: &mut Vec<Qa>) {
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
