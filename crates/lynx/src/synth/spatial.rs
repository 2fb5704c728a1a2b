//! Spatial questions (left, right, above, below, between, which side), the Spatial class of
//! Open-VQA (paper Section 3.1), over shapes with a unique name and text items.

use rand_chacha::ChaCha8Rng;

use super::questions::{noun_alternatives, position_phrase, refer, yes_no, Qa, VqaClass};
use super::world::{pick, Scene};

/// Something that can be named in a spatial question: a nameable object, or a unique text item.
struct Entity {
    name: String,
    cx: f32,
    cy: f32,
}

fn entities(scene: &Scene) -> Vec<Entity> {
    let mut out: Vec<Entity> = (0..scene.objects.len())
        .filter_map(|i| {
            refer(scene, i, &[]).map(|name| Entity {
                name,
                cx: scene.objects[i].cx,
                cy: scene.objects[i].cy,
            })
        })
        .collect();
    for t in &scene.texts {
        let b = t.board;
        out.push(Entity {
            name: t.kind.name().into(),
            cx: (b[0] + b[2]) / 2.0,
            cy: (b[1] + b[3]) / 2.0,
        });
    }
    out
}

fn dir_alternatives(word: &str) -> Vec<String> {
    match word {
        "left" => vec![
            "to the left".into(),
            "on the left".into(),
            "left side".into(),
        ],
        "right" => vec![
            "to the right".into(),
            "on the right".into(),
            "right side".into(),
        ],
        "above" => vec!["higher".into(), "over".into(), "on top".into()],
        _ => vec!["lower".into(), "under".into(), "beneath".into()],
    }
}

pub fn spatial(scene: &Scene, rng: &mut ChaCha8Rng, out: &mut Vec<Qa>) {
    let es = entities(scene);
    let s = scene.side as f32;
    let m = 0.12 * s;
    let pos = |e: &Entity| position_phrase(e.cx, e.cy, scene.side);
    for a in &es {
        for b in &es {
            if a.name == b.name {
                continue;
            }
            let (dx, dy) = (a.cx - b.cx, a.cy - b.cy);
            let slots = vec![("a", a.name.clone()), ("b", b.name.clone())];
            let where_ab = format!(
                "the {} is {} and the {} is {}",
                a.name,
                pos(a),
                b.name,
                pos(b)
            );
            // The reason names the axis the question is about.
            let why_h = if dx < 0.0 {
                format!(
                    "going from left to right, the {} comes before the {}",
                    a.name, b.name
                )
            } else {
                format!(
                    "going from left to right, the {} comes before the {}",
                    b.name, a.name
                )
            };
            let why_v = if dy < 0.0 {
                format!(
                    "the {} is higher up in the picture than the {}",
                    a.name, b.name
                )
            } else {
                format!(
                    "the {} is lower down in the picture than the {}",
                    a.name, b.name
                )
            };
            if dx.abs() >= m {
                let w = if dx < 0.0 { "left" } else { "right" };
                out.push(Qa::new(
                    "left_right",
                    VqaClass::Spatial,
                    slots.clone(),
                    w,
                    dir_alternatives(w),
                    format!(
                        "The {} is to the {w} of the {}: {why_h}. In the picture, {where_ab}.",
                        a.name, b.name
                    ),
                ));
            }
            if dy.abs() >= m {
                let w = if dy < 0.0 { "above" } else { "below" };
                out.push(Qa::new(
                    "above_below",
                    VqaClass::Spatial,
                    slots.clone(),
                    w,
                    dir_alternatives(w),
                    format!(
                        "The {} is {w} the {}: {why_v}. In the picture, {where_ab}.",
                        a.name, b.name
                    ),
                ));
            }
            // A yes/no relation along whichever axis is clear.
            let rels: Vec<(&str, bool, bool)> = [
                ("to the left of", dx <= -m, dx >= m, true),
                ("to the right of", dx >= m, dx <= -m, true),
                ("above", dy <= -m, dy >= m, false),
                ("below", dy >= m, dy <= -m, false),
            ]
            .into_iter()
            .filter(|r| r.1 || r.2)
            .map(|r| (r.0, r.1, r.3))
            .collect();
            if !rels.is_empty() {
                let (rel, truth, horizontal) = pick(rng, &rels);
                let (ans, alts) = yes_no(truth);
                let why = if horizontal { &why_h } else { &why_v };
                let expl = format!("{}: {why}.", if truth { "Yes" } else { "No" });
                let slots = vec![
                    ("a", a.name.clone()),
                    ("rel", rel.to_string()),
                    ("b", b.name.clone()),
                ];
                out.push(Qa::new(
                    "rel_yesno",
                    VqaClass::Spatial,
                    slots,
                    ans,
                    alts,
                    expl,
                ));
            }
        }
        // "What is to the left of B?" when exactly one entity clearly is and no other is close.
        let b = a;
        for (rel, test, near) in [
            (
                "to the left of",
                &(|e: &Entity| e.cx - b.cx <= -m) as &dyn Fn(&Entity) -> bool,
                &(|e: &Entity| e.cx - b.cx < 0.04 * s) as &dyn Fn(&Entity) -> bool,
            ),
            (
                "to the right of",
                &|e: &Entity| e.cx - b.cx >= m,
                &|e: &Entity| e.cx - b.cx > -0.04 * s,
            ),
            ("above", &|e: &Entity| e.cy - b.cy <= -m, &|e: &Entity| {
                e.cy - b.cy < 0.04 * s
            }),
            ("below", &|e: &Entity| e.cy - b.cy >= m, &|e: &Entity| {
                e.cy - b.cy > -0.04 * s
            }),
        ] {
            let others: Vec<&Entity> = es.iter().filter(|e| e.name != b.name).collect();
            let hits: Vec<&&Entity> = others.iter().filter(|e| test(e)).collect();
            let close = others.iter().filter(|e| near(e)).count();
            if hits.len() == 1 && close == 1 {
                let e = hits[0];
                let expl = format!(
                    "The {} is {rel} the {}: the {} is {} and the {} is {}.",
                    e.name,
                    b.name,
                    e.name,
                    pos(e),
                    b.name,
                    pos(b)
                );
                let slots = vec![("rel", rel.to_string()), ("b", b.name.clone())];
                out.push(Qa::new(
                    "what_rel",
                    VqaClass::Spatial,
                    slots,
                    format!("the {}", e.name),
                    noun_alternatives(&e.name),
                    expl,
                ));
            }
        }
        if a.cx < 0.38 * s || a.cx > 0.62 * s {
            let w = if a.cx < 0.38 * s { "left" } else { "right" };
            let expl = format!(
                "The {} is on the {w} side of the picture, {}.",
                a.name,
                pos(a)
            );
            out.push(Qa::new(
                "which_side",
                VqaClass::Spatial,
                vec![("a", a.name.clone())],
                w,
                vec![
                    format!("the {w}"),
                    format!("on the {w}"),
                    format!("{w} side"),
                ],
                expl,
            ));
        }
    }
    // Between: c lies horizontally between a and b, roughly in line, and nothing else does.
    for a in &es {
        for b in &es {
            if b.cx - a.cx < 2.0 * m {
                continue;
            }
            let inside: Vec<&Entity> = es
                .iter()
                .filter(|e| e.cx > a.cx + 0.02 * s && e.cx < b.cx - 0.02 * s)
                .collect();
            if inside.len() != 1 {
                continue;
            }
            let c = inside[0];
            let line = a.cy + (b.cy - a.cy) * (c.cx - a.cx) / (b.cx - a.cx);
            if c.cx - a.cx < m * 0.7 || b.cx - c.cx < m * 0.7 || (c.cy - line).abs() > 0.2 * s {
                continue;
            }
            let expl = format!(
                "The {} is between them: the {} is {}, the {} is {} and the {} is {}.",
                c.name,
                a.name,
                pos(a),
                c.name,
                pos(c),
                b.name,
                pos(b)
            );
            let slots = vec![("a", a.name.clone()), ("b", b.name.clone())];
            out.push(Qa::new(
                "between",
                VqaClass::Spatial,
                slots,
                format!("the {}", c.name),
                noun_alternatives(&c.name),
                expl,
            ));
        }
    }
}
