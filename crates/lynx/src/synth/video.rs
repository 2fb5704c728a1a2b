//! Short synthetic videos for the Action(Y/N) and Others video classes of Open-VQA: one object
//! moves, appears, disappears, grows, shrinks or changes colour over a few frames. Videos are
//! written in the release's format: a JSON list of base64-encoded PNG frames.

use base64::Engine;
use image::RgbImage;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::render::{background, draw_shape, draw_static, png_bytes};
use super::vocab::{Place, Shape, Size};
use super::world::{
    pick, pick_color, place_object, Direction, Event, EventKind, Layout, Object, Placer, Pose,
    Scene,
};
use crate::Result;

/// Distance a moving object travels over the whole clip, as a fraction of the image side.
pub const MOVE_FRACTION: f32 = 0.4;

fn still_track(o: &Object, frames: usize) -> Vec<Option<Pose>> {
    let p = Pose {
        cx: o.cx,
        cy: o.cy,
        r: o.r,
        color: o.color,
    };
    vec![Some(p); frames]
}

/// Samples a video scene of `frames` frames (at least 4) with exactly one event.
pub fn sample_video_scene(rng: &mut ChaCha8Rng, side: u32, frames: usize, id: String) -> Scene {
    let frames = frames.max(4);
    let place = pick(rng, &Place::ALL);
    let mut scene = Scene {
        id,
        side,
        place,
        background_seed: rng.random(),
        layout: Layout::Video,
        objects: Vec::new(),
        texts: Vec::new(),
        pattern: None,
        frames,
        events: Vec::new(),
    };
    let mut placer = Placer::new(side);
    let s = side as f32;
    let shape = pick(rng, &Shape::ALL);
    let color = pick_color(rng, place, &[]);
    let kind = match rng.random_range(0..100) {
        0..=39 => EventKind::Move(pick(rng, &Direction::ALL)),
        40..=51 => EventKind::Appear,
        52..=63 => EventKind::Disappear,
        64..=75 => EventKind::Grow,
        76..=87 => EventKind::Shrink,
        _ => EventKind::Recolor(pick_color(rng, place, &[color])),
    };
    let last = (frames - 1) as f32;
    let actor = match kind {
        EventKind::Move(dir) => {
            let size = pick(rng, &[Size::Small, Size::Medium]);
            let r = size.radius_fraction() * s;
            let dist = MOVE_FRACTION * s;
            let (dx, dy) = dir.delta();
            let (w, h) = (2.0 * r + dist * dx.abs(), 2.0 * r + dist * dy.abs());
            placer.place(rng, w, h).map(|(x, y)| {
                // Start on the side the object comes from.
                let sx = if dx < 0.0 { x + w - r } else { x + r };
                let sy = if dy < 0.0 { y + h - r } else { y + r };
                let track = (0..frames)
                    .map(|f| {
                        let t = f as f32 / last * dist;
                        Some(Pose {
                            cx: sx + dx * t,
                            cy: sy + dy * t,
                            r,
                            color,
                        })
                    })
                    .collect();
                Object {
                    shape,
                    color,
                    size,
                    cx: sx,
                    cy: sy,
                    r,
                    motion: None,
                    track,
                }
            })
        }
        EventKind::Grow | EventKind::Shrink => {
            // Reserve the large box; the object changes between small and large.
            let big = Size::Large.radius_fraction() * s;
            let small = Size::Small.radius_fraction() * s;
            let grow = kind == EventKind::Grow;
            placer.place(rng, 2.0 * big, 2.0 * big).map(|(x, y)| {
                let (cx, cy) = (x + big, y + big);
                let track = (0..frames)
                    .map(|f| {
                        let t = f as f32 / last;
                        let t = if grow { t } else { 1.0 - t };
                        Some(Pose {
                            cx,
                            cy,
                            r: small + (big - small) * t,
                            color,
                        })
                    })
                    .collect();
                let (size, r) = if grow {
                    (Size::Small, small)
                } else {
                    (Size::Large, big)
                };
                Object {
                    shape,
                    color,
                    size,
                    cx,
                    cy,
                    r,
                    motion: None,
                    track,
                }
            })
        }
        EventKind::Appear | EventKind::Disappear | EventKind::Recolor(_) => {
            let size = pick(rng, &Size::ALL);
            place_object(rng, &mut placer, shape, color, size).map(|mut o| {
                // The change happens strictly inside the clip: at least one frame before and after.
                let q = (frames / 4).max(1);
                let k = rng.random_range(q..=frames - q);
                let base = still_track(&o, frames);
                o.track = base
                    .into_iter()
                    .enumerate()
                    .map(|(f, p)| match kind {
                        EventKind::Appear => p.filter(|_| f >= k),
                        EventKind::Disappear => p.filter(|_| f < k),
                        EventKind::Recolor(c) if f >= k => p.map(|p| Pose { color: c, ..p }),
                        _ => p,
                    })
                    .collect();
                o
            })
        }
    };
    let Some(actor) = actor else {
        return scene;
    };
    scene.objects.push(actor);
    scene.events.push(Event { object: 0, kind });
    // Zero to two still objects that differ from the actor in shape or colour.
    for _ in 0..rng.random_range(0..=2) {
        let other = pick(rng, &Shape::ALL);
        let c = pick_color(rng, place, &[]);
        if other == shape && c == color {
            continue;
        }
        let size = pick(rng, &Size::ALL);
        if let Some(mut o) = place_object(rng, &mut placer, other, c, size) {
            o.track = still_track(&o, frames);
            scene.objects.push(o);
        }
    }
    scene
}

/// Renders every frame of a video scene.
pub fn render_frames(scene: &Scene) -> Vec<RgbImage> {
    let mut base = background(scene);
    draw_static(&mut base, scene);
    (0..scene.frames)
        .map(|f| {
            let mut img = base.clone();
            for o in &scene.objects {
                if let Some(Some(p)) = o.track.get(f) {
                    draw_shape(&mut img, o.shape, *p, 1.0);
                }
            }
            img
        })
        .collect()
}

/// Encodes frames as the release's video format: a JSON list of base64 PNG strings.
pub fn frames_to_json(frames: &[RgbImage]) -> Result<String> {
    let enc = base64::engine::general_purpose::STANDARD;
    let list = frames
        .iter()
        .map(|f| png_bytes(f).map(|b| enc.encode(b)))
        .collect::<Result<Vec<String>>>()?;
    serde_json::to_string(&list).map_err(|e| crate::Error::Invalid(format!("video json: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_video_has_one_consistent_event() {
        for seed in 0..100u64 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let s = sample_video_scene(&mut rng, 112, 8, "v".into());
            assert_eq!(s.events.len(), 1, "seed {seed}");
            let o = &s.objects[s.events[0].object];
            assert_eq!(o.track.len(), 8);
            let first = o.track.iter().flatten().next().unwrap();
            let last = o.track.iter().flatten().last().unwrap();
            match s.events[0].kind {
                EventKind::Move(d) => {
                    let (dx, dy) = d.delta();
                    let moved = (last.cx - first.cx) * dx + (last.cy - first.cy) * dy;
                    assert!((moved - MOVE_FRACTION * 112.0).abs() < 1e-3);
                }
                EventKind::Grow => assert!(last.r > first.r * 1.5),
                EventKind::Shrink => assert!(last.r < first.r / 1.5),
                EventKind::Appear => assert!(o.track[0].is_none() && o.track[7].is_some()),
                EventKind::Disappear => assert!(o.track[0].is_some() && o.track[7].is_none()),
                EventKind::Recolor(c) => assert!(first.color != c && last.color == c),
            }
            for other in &s.objects[1..] {
                assert!(other.track.windows(2).all(|w| w[0] == w[1]));
            }
        }
    }
}
