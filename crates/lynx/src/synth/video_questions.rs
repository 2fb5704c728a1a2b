//! Video questions: yes/no questions about what an object does (the Action(Y/N) video class of
//! Open-VQA, after Something-Something-v2) and open questions about the event (its Others class).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::questions::{noun_alternatives, position_phrase, refer, yes_no, Attr, Qa, VqaClass};
use super::relations::motion_alternatives;
use super::vocab::{number_alternatives, number_word, Color};
use super::world::{pick, Direction, EventKind, Scene};

/// A motion in three verb forms: "move to the left", "moves to the left", "moving to the left".
pub struct Motion {
    pub base: String,
    pub third: String,
    pub ing: String,
}

pub fn motion_of(kind: EventKind) -> Motion {
    let (base, third, ing) = match kind {
        EventKind::Move(d) => {
            let p = d.phrase();
            (
                format!("move {p}"),
                format!("moves {p}"),
                format!("moving {p}"),
            )
        }
        EventKind::Appear => ("appear".into(), "appears".into(), "appearing".into()),
        EventKind::Disappear => (
            "disappear".into(),
            "disappears".into(),
            "disappearing".into(),
        ),
        EventKind::Grow => (
            "get bigger".into(),
            "gets bigger".into(),
            "getting bigger".into(),
        ),
        EventKind::Shrink => (
            "get smaller".into(),
            "gets smaller".into(),
            "getting smaller".into(),
        ),
        EventKind::Recolor(c) => {
            let c = c.name();
            (
                format!("turn {c}"),
                format!("turns {c}"),
                format!("turning {c}"),
            )
        }
    };
    Motion { base, third, ing }
}

/// A plausible event that did not happen to the actor.
fn wrong_event(kind: EventKind, rng: &mut ChaCha8Rng) -> EventKind {
    match kind {
        EventKind::Move(d) => {
            let others: Vec<Direction> = Direction::ALL.into_iter().filter(|&x| x != d).collect();
            if rng.random_bool(0.5) {
                EventKind::Move(d.opposite())
            } else {
                EventKind::Move(pick(rng, &others))
            }
        }
        EventKind::Appear => EventKind::Disappear,
        EventKind::Disappear => EventKind::Appear,
        EventKind::Grow => EventKind::Shrink,
        EventKind::Shrink => EventKind::Grow,
        EventKind::Recolor(c) => {
            let others: Vec<Color> = Color::ALL.into_iter().filter(|&x| x != c).collect();
            EventKind::Recolor(pick(rng, &others))
        }
    }
}

fn slots(a: &str, m: &Motion) -> Vec<(&'static str, String)> {
    vec![
        ("a", a.to_string()),
        ("motion", m.base.clone()),
        ("motion_s", m.third.clone()),
        ("motion_ing", m.ing.clone()),
    ]
}

/// A sentence that tells what the actor does and how one can see it.
pub fn event_sentence(scene: &Scene, a: &str) -> String {
    let Some(ev) = scene.events.first() else {
        return String::new();
    };
    let o = &scene.objects[ev.object];
    let visible: Vec<_> = o.track.iter().flatten().collect();
    let (Some(first), Some(last)) = (visible.first(), visible.last()) else {
        return String::new();
    };
    let p0 = position_phrase(first.cx, first.cy, scene.side);
    let p1 = position_phrase(last.cx, last.cy, scene.side);
    match ev.kind {
        EventKind::Move(d) => format!("The {a} starts {p0} and moves {}, ending {p1}.", d.phrase()),
        EventKind::Appear => {
            format!("At the start there is no {a}; it appears {p0} partway through the video.")
        }
        EventKind::Disappear => format!("The {a} is {p0} at the start and then disappears."),
        EventKind::Grow => format!("The {a} starts small and grows until it is large."),
        EventKind::Shrink => format!("The {a} starts large and shrinks until it is small."),
        EventKind::Recolor(c) => format!(
            "The {a} is {} at the start and turns {} partway through the video.",
            first.color.name(),
            c.name()
        ),
    }
}

pub fn video_questions(scene: &Scene, rng: &mut ChaCha8Rng) -> Vec<Qa> {
    let mut out = Vec::new();
    let Some(ev) = scene.events.first() else {
        return out;
    };
    // Refer by attributes that do not change during the clip.
    let skip: &[Attr] = match ev.kind {
        EventKind::Recolor(_) => &[Attr::Color],
        EventKind::Grow | EventKind::Shrink => &[Attr::Size],
        _ => &[],
    };
    let Some(a) = refer(scene, ev.object, skip) else {
        return out;
    };
    let m = motion_of(ev.kind);
    let what = event_sentence(scene, &a);
    let (ans, alts) = yes_no(true);
    out.push(Qa::new(
        "v_does",
        VqaClass::VideoAction,
        slots(&a, &m),
        ans,
        alts,
        format!("Yes. {what}"),
    ));
    let wrong = motion_of(wrong_event(ev.kind, rng));
    let (ans, alts) = yes_no(false);
    out.push(Qa::new(
        "v_does",
        VqaClass::VideoAction,
        slots(&a, &wrong),
        ans,
        alts,
        format!("No, the {a} does not {}. {what}", wrong.base),
    ));
    for j in (0..scene.objects.len()).filter(|&j| j != ev.object) {
        let Some(b) = refer(scene, j, skip) else {
            continue;
        };
        let (ans, alts) = yes_no(false);
        let expl = format!(
            "No. The {b} stays still for the whole video; it is the {a} that {}.",
            m.third
        );
        out.push(Qa::new(
            "v_does",
            VqaClass::VideoAction,
            slots(&b, &m),
            ans,
            alts,
            expl,
        ));
        let still = vec![
            "nothing".into(),
            "it stays still".into(),
            "does not move".into(),
            "stays in place".into(),
        ];
        let expl = format!("The {b} stays still and does not change during the video.");
        out.push(Qa::new(
            "v_what_do",
            VqaClass::VideoOthers,
            vec![("a", b)],
            "stays still",
            still,
            expl,
        ));
    }
    let mut alts = vec![m.ing.clone(), format!("it {}", m.third), m.base.clone()];
    if let EventKind::Move(d) = ev.kind {
        alts.extend(motion_alternatives(d));
        alts.push(d.name().into());
    }
    out.push(Qa::new(
        "v_what_do",
        VqaClass::VideoOthers,
        vec![("a", a.clone())],
        m.third.clone(),
        alts,
        what.clone(),
    ));
    let mut s = slots(&a, &m);
    s.retain(|(k, _)| *k != "a");
    out.push(Qa::new(
        "v_which",
        VqaClass::VideoOthers,
        s,
        format!("the {a}"),
        noun_alternatives(&a),
        what.clone(),
    ));
    match ev.kind {
        EventKind::Move(d) => {
            out.push(Qa::new(
                "v_direction",
                VqaClass::VideoOthers,
                vec![("a", a.clone())],
                d.name(),
                motion_alternatives(d),
                what.clone(),
            ));
        }
        EventKind::Recolor(c) => {
            out.push(Qa::new(
                "v_color_end",
                VqaClass::VideoOthers,
                vec![("a", a.clone())],
                c.name(),
                vec![],
                what.clone(),
            ));
        }
        _ => {}
    }
    let last = scene.frames.saturating_sub(1);
    let n = scene
        .objects
        .iter()
        .filter(|o| matches!(o.track.get(last), Some(Some(_))))
        .count() as u32;
    let expl = format!(
        "At the end of the video there {} {} {}. {what}",
        if n == 1 { "is" } else { "are" },
        number_word(n),
        if n == 1 { "shape" } else { "shapes" }
    );
    out.push(Qa::new(
        "v_count_end",
        VqaClass::VideoOthers,
        vec![],
        n.to_string(),
        number_alternatives(n),
        expl,
    ));
    out
}
