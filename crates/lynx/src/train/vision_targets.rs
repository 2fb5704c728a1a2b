//! Supervised targets for the `vision` stage (issue 4: "a small EVA-architecture ViT pretrained
//! on the world's images ... with a supervised objective"), read from the world's
//! `scenes.jsonl` metadata, for an image seen through a crop box.
//!
//! Lynx's resampler reads every patch token, so the targets are mostly dense: each patch
//! learns what covers it (the place, an object's shape, colour, size and motion, a sign's,
//! label's or book's kind and colour, the word or the digits of its text, a pattern's gap)
//! and how many objects share its object's kind, shape and colour (attention averages tokens;
//! it cannot count them, so the count has to be inside a token). The class token learns the
//! image-level facts: the place, the number of objects in all and per shape and colour, the
//! missing piece of a pattern, and the set of words and numbers written in the picture.

use serde::Deserialize;

use crate::synth::render::{inside_unit, unit_extent};
use crate::synth::vocab::{Color, Place, Shape, Size, WORDS};

/// The largest count the targets tell apart (the world has at most 6 objects).
pub const MAX_COUNT: usize = 6;
/// Numbers written on labels: 0..=99.
pub const NUMBERS: usize = 100;
const MOTIONS: [&str; 4] = ["left", "right", "up", "down"];
const TEXT_KINDS: [&str; 3] = ["sign", "label", "book"];

/// One group of categorical targets: `heads` independent choices among `classes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    pub name: &'static str,
    pub heads: usize,
    pub classes: usize,
}

/// Per-patch groups, in label order (class 0 is "nothing here" where it applies).
pub const PATCH_GROUPS: [Group; 13] = [
    Group {
        name: "place",
        heads: 1,
        classes: 8,
    },
    Group {
        name: "shape",
        heads: 1,
        classes: 9,
    },
    Group {
        name: "color",
        heads: 1,
        classes: 9,
    },
    Group {
        name: "size",
        heads: 1,
        classes: 4,
    },
    Group {
        name: "motion",
        heads: 1,
        classes: 5,
    },
    Group {
        name: "text_kind",
        heads: 1,
        classes: 4,
    },
    Group {
        name: "word",
        heads: 1,
        classes: 1 + WORDS.len(),
    },
    Group {
        name: "tens",
        heads: 1,
        classes: 11,
    },
    Group {
        name: "units",
        heads: 1,
        classes: 11,
    },
    Group {
        name: "kind_count",
        heads: 1,
        classes: MAX_COUNT + 1,
    },
    Group {
        name: "shape_count",
        heads: 1,
        classes: MAX_COUNT + 1,
    },
    Group {
        name: "color_count",
        heads: 1,
        classes: MAX_COUNT + 1,
    },
    Group {
        name: "gap",
        heads: 1,
        classes: 2,
    },
];

/// Class-token groups, in label order.
pub const CLS_GROUPS: [Group; 6] = [
    Group {
        name: "place",
        heads: 1,
        classes: 8,
    },
    Group {
        name: "total",
        heads: 1,
        classes: 9,
    },
    Group {
        name: "per_shape",
        heads: 8,
        classes: MAX_COUNT + 1,
    },
    Group {
        name: "per_color",
        heads: 8,
        classes: MAX_COUNT + 1,
    },
    Group {
        name: "missing_shape",
        heads: 1,
        classes: 9,
    },
    Group {
        name: "missing_color",
        heads: 1,
        classes: 9,
    },
];

/// Sub-cells per side of a patch in the silhouette target: each patch says which of its
/// `MASK_SIDE`² sub-cells an object covers.
pub const MASK_SIDE: usize = 4;
pub const MASK_CELLS: usize = MASK_SIDE * MASK_SIDE;

/// Multi-hot class-token target: which words and numbers are written in the image.
pub const TEXT_SET: usize = WORDS.len() + NUMBERS;

/// Logits a head needs for `groups`.
pub fn logits(groups: &[Group]) -> usize {
    groups.iter().map(|g| g.heads * g.classes).sum()
}

/// Labels per item for `groups` (one per head).
pub fn labels(groups: &[Group]) -> usize {
    groups.iter().map(|g| g.heads).sum()
}

#[derive(Debug, Clone, Deserialize)]
pub struct SceneObject {
    pub shape: String,
    pub color: String,
    pub size: String,
    pub bbox: [f32; 4],
    #[serde(default)]
    pub motion: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SceneText {
    pub text: String,
    pub bbox: [f32; 4],
    pub kind: String,
    pub board: [f32; 4],
    pub color: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Missing {
    pub shape: String,
    pub color: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ScenePattern {
    pub missing: Missing,
    pub gap: [f32; 4],
}

/// The fields of a `scenes.jsonl` line the targets use.
#[derive(Debug, Clone, Deserialize)]
pub struct SceneMeta {
    pub id: String,
    pub kind: String,
    pub media: String,
    pub width: f32,
    pub height: f32,
    pub place: String,
    #[serde(default)]
    pub objects: Vec<SceneObject>,
    #[serde(default)]
    pub texts: Vec<SceneText>,
    #[serde(default)]
    pub pattern: Option<ScenePattern>,
}

fn index_of(names: &[&str], v: &str) -> Option<usize> {
    names.iter().position(|n| n.eq_ignore_ascii_case(v))
}

fn shape_index(v: &str) -> Option<usize> {
    Shape::ALL.iter().position(|s| s.name() == v)
}
fn color_index(v: &str) -> Option<usize> {
    Color::ALL.iter().position(|c| c.name() == v)
}
fn size_index(v: &str) -> Option<usize> {
    Size::ALL.iter().position(|s| s.name() == v)
}
fn place_index(v: &str) -> Option<usize> {
    Place::ALL.iter().position(|p| p.name() == v)
}

impl SceneMeta {
    /// Checks that every name is one of the world's; the error says which field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        place_index(&self.place).ok_or_else(|| format!("unknown place `{}`", self.place))?;
        for (i, o) in self.objects.iter().enumerate() {
            shape_index(&o.shape).ok_or_else(|| format!("objects[{i}]: unknown shape"))?;
            color_index(&o.color).ok_or_else(|| format!("objects[{i}]: unknown color"))?;
            size_index(&o.size).ok_or_else(|| format!("objects[{i}]: unknown size"))?;
        }
        for (i, t) in self.texts.iter().enumerate() {
            index_of(&TEXT_KINDS, &t.kind).ok_or_else(|| format!("texts[{i}]: unknown kind"))?;
            color_index(&t.color).ok_or_else(|| format!("texts[{i}]: unknown color"))?;
        }
        if self.width <= 0.0 || self.height <= 0.0 {
            return Err("width and height must be > 0".into());
        }
        Ok(())
    }
}

/// A crop of the original image (left, top, width, height in original pixels) that is
/// resized to `res` x `res`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub left: f32,
    pub top: f32,
    pub width: f32,
    pub height: f32,
    pub res: usize,
    pub patch: usize,
}

impl View {
    /// The whole image.
    pub fn full(width: f32, height: f32, res: usize, patch: usize) -> Self {
        Self {
            left: 0.0,
            top: 0.0,
            width,
            height,
            res,
            patch,
        }
    }

    fn grid(&self) -> usize {
        self.res / self.patch
    }

    /// A box of the original image in the patch grid's units (may extend outside the grid).
    fn to_grid(self, b: [f32; 4]) -> [f32; 4] {
        let sx = self.res as f32 / self.width / self.patch as f32;
        let sy = self.res as f32 / self.height / self.patch as f32;
        [
            (b[0] - self.left) * sx,
            (b[1] - self.top) * sy,
            (b[2] - self.left) * sx,
            (b[3] - self.top) * sy,
        ]
    }
}

/// Fraction of patch (gx, gy) covered by a grid-space box, and whether the box centre is in it.
fn coverage(b: [f32; 4], gx: usize, gy: usize) -> (f32, bool) {
    let (x0, y0) = (gx as f32, gy as f32);
    let w = (b[2].min(x0 + 1.0) - b[0].max(x0)).max(0.0);
    let h = (b[3].min(y0 + 1.0) - b[1].max(y0)).max(0.0);
    let (cx, cy) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
    let centre = cx >= x0 && cx < x0 + 1.0 && cy >= y0 && cy < y0 + 1.0;
    (w * h, centre)
}

fn covers(b: [f32; 4], gx: usize, gy: usize, min: f32) -> Option<f32> {
    let (c, centre) = coverage(b, gx, gy);
    (c >= min || (centre && c > 0.0)).then_some(c)
}

/// The central `f` of a box in each dimension. Shapes other than squares leave their box's
/// corners empty; a patch seeing only such a corner shows background, not the shape.
fn core_of(b: [f32; 4], f: f32) -> [f32; 4] {
    let (cx, cy) = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
    let (hw, hh) = ((b[2] - b[0]) * f / 2.0, (b[3] - b[1]) * f / 2.0);
    [cx - hw, cy - hh, cx + hw, cy + hh]
}

/// The targets of one view of one scene.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// [grid² × labels(PATCH_GROUPS)], patch-major.
    pub patch: Vec<u32>,
    /// [labels(CLS_GROUPS)]
    pub cls: Vec<u32>,
    /// [TEXT_SET], 0 or 1.
    pub text_set: Vec<f32>,
    /// [grid² × MASK_CELLS], 0 or 1: the objects' silhouettes at sub-patch resolution.
    pub mask: Vec<f32>,
}

/// An object's shape, centre and half-size, recovered from its tight box (the world draws
/// each shape at a centre and half-size, and writes the box `shape_bbox` makes of them).
fn pose_of(o: &SceneObject) -> Option<(Shape, f32, f32, f32)> {
    let shape = Shape::ALL[shape_index(&o.shape)?];
    let e = unit_extent(shape);
    let r = (o.bbox[2] - o.bbox[0]) / (e[2] - e[0]);
    (r > 0.0).then(|| (shape, o.bbox[0] - e[0] * r, o.bbox[1] - e[1] * r, r))
}

/// Which sub-cells of each patch lie inside an object's silhouette. A patch inside a large
/// object looks like any other patch of its colour; only its edges tell the shape. This target
/// is decided by the pixels under the patch alone, so the patch embedding learns outlines early
/// and the shape targets, which need them put together across patches, have them to start from.
fn silhouettes(objects: &[&SceneObject], view: &View) -> Vec<f32> {
    let g = view.grid();
    let poses: Vec<_> = objects.iter().filter_map(|o| pose_of(o)).collect();
    let mut mask = vec![0f32; g * g * MASK_CELLS];
    // Grid units to original pixels.
    let (sx, sy) = (
        view.width * view.patch as f32 / view.res as f32,
        view.height * view.patch as f32 / view.res as f32,
    );
    for gy in 0..g {
        for gx in 0..g {
            let cells = &mut mask[(gy * g + gx) * MASK_CELLS..][..MASK_CELLS];
            for (k, cell) in cells.iter_mut().enumerate() {
                let u = gx as f32 + ((k % MASK_SIDE) as f32 + 0.5) / MASK_SIDE as f32;
                let v = gy as f32 + ((k / MASK_SIDE) as f32 + 0.5) / MASK_SIDE as f32;
                let (x, y) = (view.left + u * sx, view.top + v * sy);
                if poses
                    .iter()
                    .any(|&(s, cx, cy, r)| inside_unit(s, (x - cx) / r, (y - cy) / r))
                {
                    *cell = 1.0;
                }
            }
        }
    }
    mask
}

/// The targets of `scene` seen through `view`. Objects and text outside the crop still count
/// in the image-level facts only when at least part of them is visible.
pub fn scene_targets(scene: &SceneMeta, view: &View) -> Targets {
    let g = view.grid();
    let place = place_index(&scene.place).unwrap_or(0) as u32;
    let visible = |b: [f32; 4]| {
        let v = view.to_grid(b);
        v[2] > 0.0 && v[3] > 0.0 && v[0] < g as f32 && v[1] < g as f32
    };
    let objects: Vec<&SceneObject> = scene.objects.iter().filter(|o| visible(o.bbox)).collect();
    let kind_of = |o: &SceneObject| (shape_index(&o.shape), color_index(&o.color));
    let count = |f: &dyn Fn(&SceneObject) -> bool| {
        objects.iter().filter(|o| f(o)).count().min(MAX_COUNT) as u32
    };
    let per_patch = labels(&PATCH_GROUPS);
    let mut patch = vec![0u32; g * g * per_patch];
    for gy in 0..g {
        for gx in 0..g {
            let row = &mut patch[(gy * g + gx) * per_patch..][..per_patch];
            row[0] = place;
            // The object covering most of the patch, if any covers enough of it.
            let best = objects
                .iter()
                .filter_map(|o| {
                    covers(core_of(view.to_grid(o.bbox), 0.6), gx, gy, 0.1).map(|c| (c, *o))
                })
                .max_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((_, o)) = best {
                let (s, c) = kind_of(o);
                row[1] = s.map_or(0, |s| s as u32 + 1);
                row[2] = c.map_or(0, |c| c as u32 + 1);
                row[3] = size_index(&o.size).map_or(0, |s| s as u32 + 1);
                row[4] = o
                    .motion
                    .as_deref()
                    .and_then(|m| index_of(&MOTIONS, m))
                    .map_or(0, |m| m as u32 + 1);
                row[9] = count(&|x: &SceneObject| kind_of(x) == (s, c));
                row[10] = count(&|x: &SceneObject| shape_index(&x.shape) == s);
                row[11] = count(&|x: &SceneObject| color_index(&x.color) == c);
            }
            for t in &scene.texts {
                if covers(view.to_grid(t.board), gx, gy, 0.2).is_some() && best.is_none() {
                    row[2] = color_index(&t.color).map_or(0, |c| c as u32 + 1);
                    row[5] = index_of(&TEXT_KINDS, &t.kind).map_or(0, |k| k as u32 + 1);
                }
                if covers(view.to_grid(t.bbox), gx, gy, 0.15).is_some() {
                    if let Some(w) = index_of(&WORDS, &t.text) {
                        row[6] = w as u32 + 1;
                    } else if let Ok(n) = t.text.trim().parse::<u32>() {
                        if n < NUMBERS as u32 {
                            row[7] = if n >= 10 { n / 10 + 1 } else { 0 };
                            row[8] = n % 10 + 1;
                        }
                    }
                }
            }
            if let Some(p) = &scene.pattern {
                if covers(view.to_grid(p.gap), gx, gy, 0.2).is_some() {
                    row[12] = 1;
                }
            }
        }
    }
    let mut cls = vec![place, objects.len().min(8) as u32];
    for s in Shape::ALL {
        cls.push(count(&|o: &SceneObject| o.shape == s.name()));
    }
    for c in Color::ALL {
        cls.push(count(&|o: &SceneObject| o.color == c.name()));
    }
    let (ms, mc) = match &scene.pattern {
        Some(p) if visible(p.gap) => (
            shape_index(&p.missing.shape).map_or(0, |s| s as u32 + 1),
            color_index(&p.missing.color).map_or(0, |c| c as u32 + 1),
        ),
        _ => (0, 0),
    };
    cls.push(ms);
    cls.push(mc);
    let mut text_set = vec![0f32; TEXT_SET];
    for t in scene.texts.iter().filter(|t| visible(t.bbox)) {
        if let Some(w) = index_of(&WORDS, &t.text) {
            text_set[w] = 1.0;
        } else if let Ok(n) = t.text.trim().parse::<usize>() {
            if n < NUMBERS {
                text_set[WORDS.len() + n] = 1.0;
            }
        }
    }
    Targets {
        patch,
        cls,
        text_set,
        mask: silhouettes(&objects, view),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene() -> SceneMeta {
        serde_json::from_str(
            r#"{"id":"x","kind":"image","media":"a.png","width":112,"height":112,"place":"forest",
            "objects":[{"shape":"triangle","color":"pink","size":"medium","bbox":[7,10,33,33]},
                       {"shape":"triangle","color":"pink","size":"small","bbox":[80,80,97,97],"motion":"down"}],
            "texts":[{"text":"CAT","bbox":[24,74,48,84],"kind":"sign","board":[19,68,54,89],"color":"white"},
                     {"text":"47","bbox":[68,44,83,53],"kind":"label","board":[57,39,88,59],"color":"white"}],
            "events":[]}"#,
        )
        .unwrap()
    }

    #[test]
    fn dense_and_global_targets_follow_the_metadata() {
        let s = scene();
        s.validate().unwrap();
        let view = View::full(112.0, 112.0, 112, 14);
        let t = scene_targets(&s, &view);
        let per = labels(&PATCH_GROUPS);
        assert_eq!(per, 13);
        assert_eq!(t.patch.len(), 64 * per);
        let at = |gx: usize, gy: usize| &t.patch[(gy * 8 + gx) * per..][..per];
        // Patch (1, 1) (pixels 14..28) lies inside the first triangle.
        let p = at(1, 1);
        assert_eq!(p[0], 2, "forest is place 2");
        assert_eq!((p[1], p[2], p[3]), (3, 7, 2), "triangle, pink, medium");
        assert_eq!((p[9], p[10], p[11]), (2, 2, 2), "two pink triangles");
        // The moving triangle.
        assert_eq!(at(6, 6)[4], 4, "moves down");
        // The label's digits and the sign's word.
        let digits = (0..8)
            .flat_map(|x| (0..8).map(move |y| (x, y)))
            .find(|&(x, y)| at(x, y)[8] != 0)
            .unwrap();
        assert_eq!(
            (at(digits.0, digits.1)[7], at(digits.0, digits.1)[8]),
            (5, 8)
        );
        assert!(
            (0..64).any(|i| t.patch[i * per + 6] == 35),
            "CAT is word 34"
        );
        // Empty sky: only the place.
        assert_eq!(&at(7, 0)[1..], &[0; 12]);
        assert_eq!(t.cls[..2], [2, 2]);
        assert_eq!(t.cls[2 + 2], 2, "two triangles");
        assert_eq!(t.cls[10 + 6], 2, "two pink shapes");
        assert_eq!(t.text_set.iter().sum::<f32>(), 2.0);
        assert_eq!(t.text_set[WORDS.len() + 47], 1.0);
    }

    #[test]
    fn silhouettes_follow_the_shape_not_its_box() {
        let s = scene();
        let t = scene_targets(&s, &View::full(112.0, 112.0, 112, 14));
        assert_eq!(t.mask.len(), 64 * MASK_CELLS);
        let cell = |x: f32, y: f32| {
            let (gx, gy) = ((x / 14.0) as usize, (y / 14.0) as usize);
            let (cx, cy) = (
                ((x % 14.0) / 14.0 * MASK_SIDE as f32) as usize,
                ((y % 14.0) / 14.0 * MASK_SIDE as f32) as usize,
            );
            t.mask[(gy * 8 + gx) * MASK_CELLS + cy * MASK_SIDE + cx]
        };
        // The first triangle (box 7..33 x 10..33) points up: its base is filled, the top
        // corners of its box are not.
        assert_eq!(cell(20.0, 30.0), 1.0, "middle of the base");
        assert_eq!(cell(20.0, 12.0), 1.0, "the apex");
        assert_eq!(cell(9.0, 12.0), 0.0, "top-left corner of the box");
        assert_eq!(cell(31.0, 12.0), 0.0, "top-right corner of the box");
        // Empty sky.
        assert_eq!(cell(100.0, 5.0), 0.0);
        let covered: f32 = t.mask.iter().sum();
        // Two triangles of about 26x23 and 17x17 pixels fill about half their boxes.
        let cells_per_px = (MASK_SIDE as f32 / 14.0).powi(2);
        let area = 0.5 * (26.0 * 23.0 + 17.0 * 17.0) * cells_per_px;
        assert!((covered - area).abs() < 0.2 * area, "{covered} vs {area}");
        // A crop of the right half moves the second triangle left by 56 pixels, and doubles it.
        let c = scene_targets(&s, &right_half());
        // Original (88, 94), base of the second triangle: x' = (88 - 56) * 2 = 64.
        let (gx, gy) = (64 / 14, 94 / 14);
        let sub = ((64 % 14) * MASK_SIDE / 14, (94 % 14) * MASK_SIDE / 14);
        assert_eq!(
            c.mask[(gy * 8 + gx) * MASK_CELLS + sub.1 * MASK_SIDE + sub.0],
            1.0
        );
        // Only the second triangle is left, twice as wide.
        let second = 0.5 * 2.0 * 17.0 * 17.0 * cells_per_px;
        let got: f32 = c.mask.iter().sum();
        assert!((got - second).abs() < 0.25 * second, "{got} vs {second}");
    }

    /// The right half of the image, stretched to the full resolution.
    fn right_half() -> View {
        View {
            left: 56.0,
            top: 0.0,
            width: 56.0,
            height: 112.0,
            res: 112,
            patch: 14,
        }
    }

    #[test]
    fn a_crop_moves_the_targets() {
        let s = scene();
        // Keep the right half: the first triangle leaves the view.
        let t = scene_targets(&s, &right_half());
        assert_eq!(t.cls[1], 1, "one object visible");
        assert_eq!(t.cls[2 + 2], 1);
        assert_eq!(t.text_set[WORDS.len() + 47], 1.0);
        assert_eq!(t.text_set.iter().sum::<f32>(), 1.0, "CAT is cut off");
    }
}
