//! Placement of shapes and boards without overlap inside the image margins, and the small
//! random-choice helpers the scene samplers share.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::vocab::{Color, Place, Shape, Size};
use super::world::{Object, Rect};

/// Keeps track of occupied rectangles and finds free spots.
pub struct Placer {
    side: f32,
    margin: f32,
    gap: f32,
    taken: Vec<Rect>,
}

impl Placer {
    pub fn new(side: u32) -> Self {
        let s = side as f32;
        Placer {
            side: s,
            margin: (s * 0.03).max(2.0),
            gap: (s * 0.035).max(2.0),
            taken: Vec::new(),
        }
    }

    pub fn side(&self) -> f32 {
        self.side
    }

    fn free(&self, r: &Rect) -> bool {
        let g = self.gap;
        r[0] >= self.margin
            && r[1] >= self.margin
            && r[2] <= self.side - self.margin
            && r[3] <= self.side - self.margin
            && self.taken.iter().all(|t| {
                r[2] + g <= t[0] || t[2] + g <= r[0] || r[3] + g <= t[1] || t[3] + g <= r[1]
            })
    }

    /// Marks a rectangle as taken without checking.
    pub fn take(&mut self, r: Rect) {
        self.taken.push(r);
    }

    /// Finds a free spot for a `w` x `h` box; returns its top-left corner.
    pub fn place(&mut self, rng: &mut ChaCha8Rng, w: f32, h: f32) -> Option<(f32, f32)> {
        let hi_x = self.side - self.margin - w;
        let hi_y = self.side - self.margin - h;
        if hi_x < self.margin || hi_y < self.margin {
            return None;
        }
        for _ in 0..200 {
            let x = rng.random_range(self.margin..=hi_x);
            let y = rng.random_range(self.margin..=hi_y);
            let r = [x, y, x + w, y + h];
            if self.free(&r) {
                self.taken.push(r);
                return Some((x, y));
            }
        }
        None
    }

    /// Places a whole group of rectangles given relative to their shared top-left corner.
    pub fn place_group(&mut self, rng: &mut ChaCha8Rng, rects: &[Rect]) -> Option<(f32, f32)> {
        let w = rects.iter().map(|r| r[2]).fold(0.0, f32::max);
        let h = rects.iter().map(|r| r[3]).fold(0.0, f32::max);
        let hi_x = self.side - self.margin - w;
        let hi_y = self.side - self.margin - h;
        if hi_x < self.margin || hi_y < self.margin {
            return None;
        }
        for _ in 0..200 {
            let x = rng.random_range(self.margin..=hi_x);
            let y = rng.random_range(self.margin..=hi_y);
            let moved: Vec<Rect> = rects
                .iter()
                .map(|r| [r[0] + x, r[1] + y, r[2] + x, r[3] + y])
                .collect();
            if moved.iter().all(|r| self.free(r)) {
                self.taken.extend(moved);
                return Some((x, y));
            }
        }
        None
    }
}

/// Picks a uniformly random element.
pub fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// A colour allowed on `place`, other than those in `avoid`.
pub fn pick_color(rng: &mut ChaCha8Rng, place: Place, avoid: &[Color]) -> Color {
    let ok: Vec<Color> = Color::ALL
        .into_iter()
        .filter(|c| !place.forbidden_colors().contains(c) && !avoid.contains(c))
        .collect();
    if ok.is_empty() {
        pick(rng, &Color::ALL)
    } else {
        pick(rng, &ok)
    }
}

/// Places one object of the given kind; `extra` widens its reserved box (for trails or paths).
pub fn place_object(
    rng: &mut ChaCha8Rng,
    placer: &mut Placer,
    shape: Shape,
    color: Color,
    size: Size,
) -> Option<Object> {
    let r = size.radius_fraction() * placer.side();
    let (x, y) = placer.place(rng, 2.0 * r, 2.0 * r)?;
    Some(Object {
        shape,
        color,
        size,
        cx: x + r,
        cy: y + r,
        r,
        motion: None,
        track: Vec::new(),
    })
}
