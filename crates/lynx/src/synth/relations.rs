//! Reasoning (comparisons, arithmetic on counts, missing pattern pieces, facts about places),
//! spatial (left, right, above, below, between) and image action (motion trail) questions, the
//! Reasoning, Spatial and Action classes of Open-VQA (paper Section 3.1).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::questions::{groups, noun_alternatives, refer, yes_no, Qa, VqaClass};
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
