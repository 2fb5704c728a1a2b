//! Scene sampling for the synthetic world: a place, shapes placed without overlap, signs,
//! labels and book covers, repeating patterns with a gap, and motion trails. Everything is drawn
//! from one seeded ChaCha stream per scene so a scene depends only on (seed, split, index).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

pub use super::placer::{pick, pick_color, place_object, Placer};
use super::render::measure_text;
use super::vocab::{Color, Place, Shape, Size, WORDS};

/// x0, y0, x1, y1 in pixels.
pub type Rect = [f32; 4];

/// Direction of a motion (image trails and video moves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Left,
    Right,
    Up,
    Down,
}

impl Direction {
    pub const ALL: [Direction; 4] = [
        Direction::Left,
        Direction::Right,
        Direction::Up,
        Direction::Down,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Direction::Left => "left",
            Direction::Right => "right",
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
    /// Unit step in image coordinates (y grows downwards).
    pub fn delta(self) -> (f32, f32) {
        match self {
            Direction::Left => (-1.0, 0.0),
            Direction::Right => (1.0, 0.0),
            Direction::Up => (0.0, -1.0),
            Direction::Down => (0.0, 1.0),
        }
    }
    /// "to the left" / "up".
    pub fn phrase(self) -> &'static str {
        match self {
            Direction::Left => "to the left",
            Direction::Right => "to the right",
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
    pub fn opposite(self) -> Direction {
        match self {
            Direction::Left => Direction::Right,
            Direction::Right => Direction::Left,
            Direction::Up => Direction::Down,
            Direction::Down => Direction::Up,
        }
    }
}

/// Where an object is in one video frame; `None` in a track means invisible.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    pub cx: f32,
    pub cy: f32,
    pub r: f32,
    pub color: Color,
}

/// One shape in a scene. `r` is half the side of its square box; the outline is drawn inside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub shape: Shape,
    pub color: Color,
    pub size: Size,
    pub cx: f32,
    pub cy: f32,
    pub r: f32,
    /// Image scenes: the object is drawn with a fading trail behind it, moving this way.
    pub motion: Option<Direction>,
    /// Video scenes: the pose in every frame (empty for images).
    pub track: Vec<Option<Pose>>,
}

impl Object {
    /// Tight box of the drawn shape at the object's own pose.
    pub fn bbox(&self) -> Rect {
        shape_bbox(self.shape, self.cx, self.cy, self.r)
    }
    /// "red circle".
    pub fn noun(&self) -> String {
        format!("{} {}", self.color.name(), self.shape.name())
    }
}

/// Tight box of a shape of half-size `r` centred at (cx, cy).
pub fn shape_bbox(shape: Shape, cx: f32, cy: f32, r: f32) -> Rect {
    let [ex0, ey0, ex1, ey1] = super::render::unit_extent(shape);
    [cx + ex0 * r, cy + ey0 * r, cx + ex1 * r, cy + ey1 * r]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    Sign,
    Label,
    Book,
}

impl TextKind {
    pub fn name(self) -> &'static str {
        match self {
            TextKind::Sign => "sign",
            TextKind::Label => "label",
            TextKind::Book => "book",
        }
    }
}

/// A sign, price label or book cover with one word or number on it.
#[derive(Debug, Clone, PartialEq)]
pub struct TextItem {
    pub kind: TextKind,
    pub text: String,
    pub board: Rect,
    pub board_color: Color,
    pub font_px: f32,
    /// Left end of the baseline of the text.
    pub origin: (f32, f32),
    /// Tight box of the ink.
    pub bbox: Rect,
}

/// A row of shapes that repeats with one slot left empty ("what is missing").
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// Object index per slot; `None` marks the gap.
    pub slots: Vec<Option<usize>>,
    pub missing_shape: Shape,
    pub missing_color: Color,
    /// Box of the empty slot (drawn as a dashed frame with a question mark).
    pub gap: Rect,
}

/// What a scene was sampled to show (decides which questions are asked most).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Objects,
    Text,
    Pattern,
    Motion,
    Sparse,
    Video,
}

/// The single event of a video.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EventKind {
    Move(Direction),
    Appear,
    Disappear,
    Grow,
    Shrink,
    Recolor(Color),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub object: usize,
    pub kind: EventKind,
}

/// One sampled scene: all that is needed to render it and to ask questions about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub id: String,
    pub side: u32,
    pub place: Place,
    /// Seeds the background's own details (trees, stars, buildings).
    pub background_seed: u64,
    pub layout: Layout,
    pub objects: Vec<Object>,
    pub texts: Vec<TextItem>,
    pub pattern: Option<Pattern>,
    /// Video scenes: number of frames (0 for images).
    pub frames: usize,
    pub events: Vec<Event>,
}

impl Scene {
    pub fn is_video(&self) -> bool {
        self.frames > 0
    }
}

/// Samples an image scene with a random layout.
pub fn sample_image_scene(rng: &mut ChaCha8Rng, side: u32, id: String) -> Scene {
    let layout = match rng.random_range(0..100) {
        0..=39 => Layout::Objects,
        40..=64 => Layout::Text,
        65..=74 => Layout::Pattern,
        75..=89 => Layout::Motion,
        _ => Layout::Sparse,
    };
    sample_image_layout(rng, side, id, layout)
}

/// Samples an image scene with the given layout (`Layout::Video` is treated as `Objects`).
pub fn sample_image_layout(rng: &mut ChaCha8Rng, side: u32, id: String, layout: Layout) -> Scene {
    let place = pick(rng, &Place::ALL);
    let mut scene = Scene {
        id,
        side,
        place,
        background_seed: rng.random(),
        layout,
        objects: Vec::new(),
        texts: Vec::new(),
        pattern: None,
        frames: 0,
        events: Vec::new(),
    };
    let mut placer = Placer::new(side);
    match layout {
        Layout::Objects | Layout::Video => add_object_groups(rng, &mut scene, &mut placer),
        Layout::Text => {
            let n = if rng.random_bool(0.3) { 2 } else { 1 };
            let mut kinds = vec![TextKind::Sign, TextKind::Label, TextKind::Book];
            for _ in 0..n {
                let k = kinds.remove(rng.random_range(0..kinds.len()));
                if let Some(t) = sample_text(rng, &mut placer, k, place) {
                    scene.texts.push(t);
                }
            }
            for _ in 0..rng.random_range(0..=2) {
                let (s, c) = (pick(rng, &Shape::ALL), pick_color(rng, place, &[]));
                let size = pick(rng, &[Size::Small, Size::Medium]);
                if let Some(o) = place_object(rng, &mut placer, s, c, size) {
                    scene.objects.push(o);
                }
            }
        }
        Layout::Pattern => add_pattern(rng, &mut scene, &mut placer),
        Layout::Motion => add_motion(rng, &mut scene, &mut placer),
        Layout::Sparse => {
            if rng.random_bool(0.6) {
                let (s, c) = (pick(rng, &Shape::ALL), pick_color(rng, place, &[]));
                let size = pick(rng, &Size::ALL);
                if let Some(o) = place_object(rng, &mut placer, s, c, size) {
                    scene.objects.push(o);
                }
            }
        }
    }
    scene
}

/// 1 to 6 objects in 1 to 3 kinds (shape + colour), for counting and comparisons.
fn add_object_groups(rng: &mut ChaCha8Rng, scene: &mut Scene, placer: &mut Placer) {
    let total = pick(rng, &[1usize, 2, 2, 3, 3, 4, 4, 5, 5, 6]);
    let n_kinds = rng.random_range(1..=total.min(3));
    let mut kinds: Vec<(Shape, Color)> = Vec::new();
    while kinds.len() < n_kinds {
        let k = (pick(rng, &Shape::ALL), pick_color(rng, scene.place, &[]));
        if !kinds.contains(&k) {
            kinds.push(k);
        }
    }
    // Every kind gets at least one object; the rest are spread at random.
    let mut counts = vec![1usize; n_kinds];
    for _ in n_kinds..total {
        counts[rng.random_range(0..n_kinds)] += 1;
    }
    let sizes: &[Size] = if total >= 5 {
        &[Size::Small, Size::Small, Size::Medium]
    } else {
        &Size::ALL
    };
    for (k, &(shape, color)) in kinds.iter().enumerate() {
        for _ in 0..counts[k] {
            let size = pick(rng, sizes);
            let placed = place_object(rng, placer, shape, color, size)
                .or_else(|| place_object(rng, placer, shape, color, Size::Small));
            if let Some(o) = placed {
                scene.objects.push(o);
            }
        }
    }
}

/// A sign (word on a board with a post), a price label (number) or a book cover (title).
pub fn sample_text(
    rng: &mut ChaCha8Rng,
    placer: &mut Placer,
    kind: TextKind,
    place: Place,
) -> Option<TextItem> {
    let side = placer.side();
    let text = match kind {
        TextKind::Label => rng.random_range(0..100u32).to_string(),
        _ => pick(rng, &WORDS).to_string(),
    };
    let font_px = (side * 0.115).max(8.0).round();
    let m = measure_text(&text, font_px);
    let (tw, th) = (m[2] - m[0], m[3] - m[1]);
    let pad = (font_px * 0.35).round();
    // Books have a spine and labels a hole on the left; the text is centred right of them.
    let spine = match kind {
        TextKind::Book => (font_px * 0.3).round(),
        TextKind::Label => pad,
        TextKind::Sign => 0.0,
    };
    let (bw, bh) = match kind {
        TextKind::Sign => (tw + 2.0 * pad, th + 2.0 * pad),
        TextKind::Label => (tw + 2.0 * pad + spine, th + 2.0 * pad),
        TextKind::Book => {
            let w = tw + 2.0 * pad + spine;
            (w, (w * 1.3).max(th * 3.0))
        }
    };
    let (bw, bh) = (bw.ceil(), bh.ceil());
    // A sign stands on a post below its board; reserve room for it.
    let post = if kind == TextKind::Sign {
        (bh * 0.9).round()
    } else {
        0.0
    };
    let (x, y) = placer.place(rng, bw, bh + post)?;
    let board_color = match kind {
        TextKind::Label => Color::White,
        _ => pick_color(rng, place, &[]),
    };
    let board = [x, y, x + bw, y + bh];
    // Text centred in the board (books: in the upper part, right of the spine).
    let cx = x + spine + (bw - spine) / 2.0;
    let cy = match kind {
        TextKind::Book => y + bh * 0.38,
        _ => y + bh / 2.0,
    };
    let tx = (cx - (m[0] + m[2]) / 2.0).round();
    let ty = (cy - (m[1] + m[3]) / 2.0).round();
    let bbox = [tx + m[0], ty + m[1], tx + m[2], ty + m[3]];
    Some(TextItem {
        kind,
        text,
        board,
        board_color,
        font_px,
        origin: (tx, ty),
        bbox,
    })
}

/// A row of five small shapes repeating with period 2 or 3, one slot left empty.
fn add_pattern(rng: &mut ChaCha8Rng, scene: &mut Scene, placer: &mut Placer) {
    let side = placer.side();
    let period = if rng.random_bool(0.5) { 2 } else { 3 };
    let mut kinds: Vec<(Shape, Color)> = Vec::new();
    while kinds.len() < period {
        let k = (pick(rng, &Shape::ALL), pick_color(rng, scene.place, &[]));
        if kinds.iter().all(|(s, c)| *s != k.0 && *c != k.1) {
            kinds.push(k);
        }
    }
    let slots = 5usize;
    // With period 3 the third kind appears once in five slots: never leave that one empty.
    let gap = loop {
        let g = rng.random_range(0..slots);
        if period == 2 || g % 3 != 2 {
            break g;
        }
    };
    let r = Size::Small.radius_fraction() * side;
    let step = 2.0 * r + (side * 0.035).max(2.0);
    let rects: Vec<Rect> = (0..slots)
        .map(|i| [i as f32 * step, 0.0, i as f32 * step + 2.0 * r, 2.0 * r])
        .collect();
    let Some((x0, y0)) = placer.place_group(rng, &rects) else {
        add_object_groups(rng, scene, placer);
        scene.layout = Layout::Objects;
        return;
    };
    let mut slot_ids = Vec::new();
    for i in 0..slots {
        let (shape, color) = kinds[i % period];
        if i == gap {
            slot_ids.push(None);
            continue;
        }
        slot_ids.push(Some(scene.objects.len()));
        scene.objects.push(Object {
            shape,
            color,
            size: Size::Small,
            cx: x0 + i as f32 * step + r,
            cy: y0 + r,
            r,
            motion: None,
            track: Vec::new(),
        });
    }
    let (ms, mc) = kinds[gap % period];
    let gx = x0 + gap as f32 * step;
    scene.pattern = Some(Pattern {
        slots: slot_ids,
        missing_shape: ms,
        missing_color: mc,
        gap: [gx, y0, gx + 2.0 * r, y0 + 2.0 * r],
    });
}

/// One object moving (drawn with a fading trail behind it) and maybe one still object.
fn add_motion(rng: &mut ChaCha8Rng, scene: &mut Scene, placer: &mut Placer) {
    let side = placer.side();
    let dir = pick(rng, &Direction::ALL);
    let size = pick(rng, &[Size::Small, Size::Medium]);
    let r = size.radius_fraction() * side;
    let trail = trail_length(r);
    let (dx, dy) = dir.delta();
    // Reserve the object's box plus its trail, which lies on the side it comes from.
    let (w, h) = (2.0 * r + trail * dx.abs(), 2.0 * r + trail * dy.abs());
    let shape = pick(rng, &Shape::ALL);
    let color = pick_color(rng, scene.place, &[]);
    if let Some((x, y)) = placer.place(rng, w, h) {
        let cx = if dx > 0.0 { x + w - r } else { x + r };
        let cy = if dy > 0.0 { y + h - r } else { y + r };
        scene.objects.push(Object {
            shape,
            color,
            size,
            cx,
            cy,
            r,
            motion: Some(dir),
            track: Vec::new(),
        });
        scene.events.push(Event {
            object: 0,
            kind: EventKind::Move(dir),
        });
    }
    if rng.random_bool(0.6) {
        let other = (
            pick(rng, &Shape::ALL),
            pick_color(rng, scene.place, &[color]),
        );
        let size = pick(rng, &Size::ALL);
        if let Some(o) = place_object(rng, placer, other.0, other.1, size) {
            scene.objects.push(o);
        }
    }
}

/// Length of a motion trail behind an object of half-size `r`.
pub fn trail_length(r: f32) -> f32 {
    2.2 * r
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn layouts_place_things_inside_without_overlap() {
        for seed in 0..400u64 {
            let side = [48, 64, 112, 224][seed as usize % 4];
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let s = sample_image_scene(&mut rng, side, format!("{seed}"));
            let lim = side as f32;
            let mut boxes: Vec<Rect> = s.objects.iter().map(|o| o.bbox()).collect();
            boxes.extend(s.texts.iter().map(|t| t.board));
            for t in &s.texts {
                let (b, o) = (t.board, t.bbox);
                assert!(
                    b[0] <= o[0] && b[1] <= o[1] && o[2] <= b[2] && o[3] <= b[3],
                    "{t:?}"
                );
            }
            for (i, a) in boxes.iter().enumerate() {
                assert!(
                    a[0] >= 0.0 && a[1] >= 0.0 && a[2] <= lim && a[3] <= lim,
                    "{a:?}"
                );
                for b in &boxes[i + 1..] {
                    let overlap = a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
                    assert!(!overlap, "seed {seed}: {a:?} {b:?}");
                }
            }
            if let Some(p) = &s.pattern {
                assert_eq!(p.slots.iter().filter(|x| x.is_none()).count(), 1);
            }
        }
    }
}
