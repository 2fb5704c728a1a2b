//! Reasoning (comparisons, arithmetic on counts, missing pattern pieces, facts about places),
//! spatial (left, right, above, below, between) and image action (motion trail) questions, the
//! Reasoning, Spatial and Action classes of Open-VQA (paper Section 3.1).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::questions::{groups, noun_alternatives, position_phrase, refer, yes_no, Qa, VqaClass};
use super::vocab::{number_alternatives, number_word, with_article, Place};
use super::world::{pick, Direction, Scene};

pub fn reasoning(scene: &Scene, rng: &mut ChaCha8Rng, out: &mut Vec<Qa>) {
    let gs = groups(scene);
    // Compare shape groups (and colour groups) pairwise.
    let simple: Vec<_> = gs
        .iter()
        .filter(|g| !g.plural.contains(' ') || g.plural.ends_with(" shapes"))
        .filter(|g| g.plural != "shapes")
        .collect();
    for (ia, a) in simple.iter().enumerate() {
        for b in simple.iter().skip(ia + 1) {
            if a.plural.ends_with(" shapes") != b.plural.ends_with(" shapes") {
                continue;
            }
            let (na, nb) = (a.members.len(), b.members.len());
            let counts = format!(
                "There {} {} {} and {} {}",
                if na == 1 { "is" } else { "are" },
                number_word(na as u32),
                if na == 1 { &a.singular } else { &a.plural },
                number_word(nb as u32),
                if nb == 1 { &b.singular } else { &b.plural }
            );
            let slots = vec![("a", a.plural.clone()), ("b", b.plural.clone())];
            let (ans, alts) = yes_no(na > nb);
            let expl = format!(
                "{}. {counts}, so there {} more {} than {}.",
                if na > nb { "Yes" } else { "No" },
                if na > nb { "are" } else { "are not" },
                a.plural,
                b.plural
            );
            out.push(Qa::new(
                "more_than",
                VqaClass::Reasoning,
                slots.clone(),
                ans,
                alts,
                expl,
            ));
            let (ans, alts) = yes_no(na < nb);
            let expl = format!(
                "{}. {counts}, so there {} fewer {} than {}.",
                if na < nb { "Yes" } else { "No" },
                if na < nb { "are" } else { "are not" },
                a.plural,
                b.plural
            );
            out.push(Qa::new(
                "fewer_than",
                VqaClass::Reasoning,
                slots.clone(),
                ans,
                alts,
                expl,
            ));
            if na != nb {
                let w = if na > nb { a } else { b };
                let expl = format!("There are more {}. {counts}.", w.plural);
                let alts = vec![format!("the {}", w.plural), format!("more {}", w.plural)];
                out.push(Qa::new(
                    "which_more",
                    VqaClass::Reasoning,
                    slots,
                    w.plural.clone(),
                    alts,
                    expl,
                ));
            }
        }
    }
    // Arithmetic on counts.
    for g in gs
        .iter()
        .filter(|g| !g.members.is_empty() && g.plural != "shapes")
    {
        let n = g.members.len() as u32;
        let slots = vec![("thing", g.singular.clone()), ("things", g.plural.clone())];
        let expl = format!(
            "There {} {} {} now; taking one away leaves {}.",
            if n == 1 { "is" } else { "are" },
            number_word(n),
            if n == 1 { &g.singular } else { &g.plural },
            number_word(n - 1)
        );
        out.push(Qa::new(
            "remove_one",
            VqaClass::Reasoning,
            slots.clone(),
            (n - 1).to_string(),
            number_alternatives(n - 1),
            expl,
        ));
        let k = rng.random_range(2..=3u32);
        let mut slots = slots;
        slots.push(("k", number_word(k)));
        let expl = format!(
            "There {} {} {} now; adding {} more makes {} + {} = {}.",
            if n == 1 { "is" } else { "are" },
            number_word(n),
            if n == 1 { &g.singular } else { &g.plural },
            number_word(k),
            n,
            k,
            n + k
        );
        out.push(Qa::new(
            "add_more",
            VqaClass::Reasoning,
            slots,
            (n + k).to_string(),
            number_alternatives(n + k),
            expl,
        ));
    }
    // Sizes of two nameable objects.
    let named: Vec<(usize, String)> = (0..scene.objects.len())
        .filter_map(|i| refer(scene, i, &[]).map(|r| (i, r)))
        .collect();
    for (x, (i, ra)) in named.iter().enumerate() {
        for (j, rb) in named.iter().skip(x + 1) {
            let (sa, sb) = (scene.objects[*i].size, scene.objects[*j].size);
            let slots = vec![("a", ra.clone()), ("b", rb.clone())];
            if sa != sb {
                let (big, small) = if sa > sb { (ra, rb) } else { (rb, ra) };
                let (bs, ss) = if sa > sb { (sa, sb) } else { (sb, sa) };
                let why = format!(
                    "the {big} is {} and the {small} is {}",
                    bs.name(),
                    ss.name()
                );
                out.push(Qa::new(
                    "larger",
                    VqaClass::Reasoning,
                    slots.clone(),
                    format!("the {big}"),
                    noun_alternatives(big),
                    format!("The {big} is larger: {why}."),
                ));
                out.push(Qa::new(
                    "smaller",
                    VqaClass::Reasoning,
                    slots.clone(),
                    format!("the {small}"),
                    noun_alternatives(small),
                    format!("The {small} is smaller: {why}."),
                ));
            }
            let (ans, alts) = yes_no(sa > sb);
            let expl = if sa > sb {
                format!(
                    "Yes. The {ra} is {} and the {rb} is {}, so the {ra} is bigger.",
                    sa.name(),
                    sb.name()
                )
            } else if sa == sb {
                format!(
                    "No. Both are {}, so the {ra} is not bigger than the {rb}.",
                    sa.name()
                )
            } else {
                format!(
                    "No. The {ra} is {} and the {rb} is {}, so the {ra} is smaller.",
                    sa.name(),
                    sb.name()
                )
            };
            out.push(Qa::new(
                "is_bigger",
                VqaClass::Reasoning,
                slots,
                ans,
                alts,
                expl,
            ));
        }
    }
    if scene.objects.len() >= 2 {
        let same = scene
            .objects
            .iter()
            .all(|o| o.color == scene.objects[0].color);
        let (ans, alts) = yes_no(same);
        let expl = if same {
            format!("Yes, all the shapes are {}.", scene.objects[0].color.name())
        } else {
            let mut cs: Vec<&str> = scene.objects.iter().map(|o| o.color.name()).collect();
            cs.dedup();
            cs.sort();
            cs.dedup();
            format!("No, the shapes have different colors: {}.", cs.join(", "))
        };
        out.push(Qa::new(
            "same_color",
            VqaClass::Reasoning,
            vec![],
            ans,
            alts,
            expl,
        ));
    }
    if let Some(p) = &scene.pattern {
        let noun = format!("{} {}", p.missing_color.name(), p.missing_shape.name());
        let seq: Vec<String> = p
            .slots
            .iter()
            .map(|s| match s {
                Some(i) => scene.objects[*i].noun(),
                None => "?".to_string(),
            })
            .collect();
        let expl = format!(
            "The row goes {}. The shapes repeat in order, so the empty spot needs {}.",
            seq.join(", "),
            with_article(&noun)
        );
        out.push(Qa::new(
            "missing",
            VqaClass::Reasoning,
            vec![],
            with_article(&noun),
            noun_alternatives(&noun),
            expl,
        ));
    }
    place_facts(scene, rng, out);
}

fn place_facts(scene: &Scene, rng: &mut ChaCha8Rng, out: &mut Vec<Qa>) {
    let p = scene.place;
    let facts: [(&'static str, bool, &str); 4] = [
        (
            "place_cold",
            p.is_cold(),
            if p.is_cold() {
                "the ground is covered with snow"
            } else if p.is_hot() {
                "it looks warm and sunny here"
            } else {
                "there is no snow or ice"
            },
        ),
        (
            "place_indoors",
            p.is_indoors(),
            if p.is_indoors() {
                "there are walls, a window and a wooden floor"
            } else {
                "the picture shows the open sky or the outdoors"
            },
        ),
        (
            "place_night",
            p.is_night(),
            if p.is_night() {
                "the sky is dark with a moon and stars"
            } else if p == Place::Room {
                "daylight comes through the window"
            } else {
                "it is light here, not dark"
            },
        ),
        (
            "place_swim",
            p.has_water(),
            if p.has_water() {
                "there is a sea next to the sandy beach"
            } else {
                "there is no sea, lake or river"
            },
        ),
    ];
    // Every true fact and one false one, so yes and no answers stay balanced.
    let false_facts: Vec<usize> = (0..facts.len()).filter(|&k| !facts[k].1).collect();
    let chosen = pick(rng, &false_facts);
    for (k, (kind, truth, why)) in facts.into_iter().enumerate() {
        if !truth && k != chosen {
            continue;
        }
        let (ans, alts) = yes_no(truth);
        let expl = format!(
            "{}, because {why}. This is {}.",
            if truth { "Yes" } else { "No" },
            with_article(p.name())
        );
        out.push(Qa::new(kind, VqaClass::Reasoning, vec![], ans, alts, expl));
    }
}

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

/// Answer alternatives for a direction of motion.
pub fn motion_alternatives(d: Direction) -> Vec<String> {
    match d {
        Direction::Left => vec![
            "to the left".into(),
            "leftward".into(),
            "moving left".into(),
        ],
        Direction::Right => vec![
            "to the right".into(),
            "rightward".into(),
            "moving right".into(),
        ],
        Direction::Up => vec![
            "upward".into(),
            "upwards".into(),
            "moving up".into(),
            "rising".into(),
        ],
        Direction::Down => vec![
            "downward".into(),
            "downwards".into(),
            "moving down".into(),
            "falling".into(),
        ],
    }
}

pub fn action(scene: &Scene, rng: &mut ChaCha8Rng, out: &mut Vec<Qa>) {
    let movers: Vec<usize> = (0..scene.objects.len())
        .filter(|&i| scene.objects[i].motion.is_some())
        .collect();
    if movers.is_empty() {
        return;
    }
    for (i, o) in scene.objects.iter().enumerate() {
        let Some(a) = refer(scene, i, &[]) else {
            continue;
        };
        let trail = "the faded copies behind it show where it came from";
        match o.motion {
            Some(d) => {
                let dn = d.name();
                let expl = format!("The {a} is moving {}; {trail}.", d.phrase());
                out.push(Qa::new(
                    "move_dir",
                    VqaClass::Action,
                    vec![("a", a.clone())],
                    dn,
                    motion_alternatives(d),
                    expl.clone(),
                ));
                let doing = format!("moving {}", d.phrase());
                let mut alts = motion_alternatives(d);
                alts.push(format!("it is moving {}", d.phrase()));
                out.push(Qa::new(
                    "what_doing",
                    VqaClass::Action,
                    vec![("a", a.clone())],
                    doing,
                    alts,
                    expl.clone(),
                ));
                let asked = if rng.random_bool(0.5) {
                    d
                } else {
                    pick(
                        rng,
                        &Direction::ALL
                            .into_iter()
                            .filter(|&x| x != d)
                            .collect::<Vec<_>>(),
                    )
                };
                let (ans, alts) = yes_no(asked == d);
                let expl2 = if asked == d {
                    format!("Yes. {expl}")
                } else {
                    format!(
                        "No. The {a} is moving {}, not {}; {trail}.",
                        d.phrase(),
                        asked.phrase()
                    )
                };
                out.push(Qa::new(
                    "move_yesno",
                    VqaClass::Action,
                    vec![("a", a.clone()), ("dir", asked.phrase().into())],
                    ans,
                    alts,
                    expl2,
                ));
                let (ans, alts) = yes_no(true);
                out.push(Qa::new(
                    "is_moving",
                    VqaClass::Action,
                    vec![("a", a.clone())],
                    ans,
                    alts,
                    format!("Yes. {expl}"),
                ));
            }
            None => {
                let (ans, alts) = yes_no(false);
                let expl = format!("No, the {a} is standing still; it has no trail behind it.");
                out.push(Qa::new(
                    "is_moving",
                    VqaClass::Action,
                    vec![("a", a)],
                    ans,
                    alts,
                    expl,
                ));
            }
        }
    }
    if movers.len() == 1 && scene.objects.len() >= 2 {
        if let Some(a) = refer(scene, movers[0], &[]) {
            let expl = format!(
                "The {a} is the one moving; the other shapes have no trail and stand still."
            );
            out.push(Qa::new(
                "which_moving",
                VqaClass::Action,
                vec![],
                format!("the {a}"),
                noun_alternatives(&a),
                expl,
            ));
        }
    }
}
