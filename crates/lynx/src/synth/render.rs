//! Rasterising the synthetic world: anti-aliased outlined shapes, motion trails, signs, labels,
//! book covers and text drawn with the embedded DejaVu Sans Bold font (ab_glyph).

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use image::{Rgb, RgbImage};

use super::places::paint_background;
use super::vocab::Shape;
use super::world::{Object, Pose, Scene, TextItem, TextKind};

static FONT_BYTES: &[u8] = include_bytes!("../../../../assets/fonts/DejaVuSans-Bold.ttf");
static FONT: OnceLock<FontRef<'static>> = OnceLock::new();

/// The embedded font (parsed once). The bytes are compiled in, so parsing cannot fail at run
/// time unless the build itself is broken, which the unit tests catch.
pub fn font() -> &'static FontRef<'static> {
    FONT.get_or_init(|| {
        // ok: compiled-in bytes, checked by the unit tests.
        FontRef::try_from_slice(FONT_BYTES).expect("embedded DejaVuSans-Bold.ttf parses")
        // ok: see above
    })
}

/// Lays out `text` at `px` with its baseline starting at `origin`; calls `f` per glyph pixel.
fn layout_text(text: &str, px: f32, origin: (f32, f32), mut f: impl FnMut(i32, i32, f32)) {
    let font = font();
    let scaled = font.as_scaled(PxScale::from(px));
    let mut caret = 0.0f32;
    let mut prev = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = prev {
            caret += scaled.kern(p, id);
        }
        let glyph = id.with_scale_and_position(px, point(origin.0 + caret, origin.1));
        caret += scaled.h_advance(id);
        prev = Some(id);
        if let Some(og) = font.outline_glyph(glyph) {
            let b = og.px_bounds();
            og.draw(|x, y, cov| f(b.min.x as i32 + x as i32, b.min.y as i32 + y as i32, cov));
        }
    }
}

/// Ink extents [x0, y0, x1, y1] of `text` at `px`, relative to the left end of its baseline
/// (y0 is negative: above the baseline). Only pixels with visible coverage count.
pub fn measure_text(text: &str, px: f32) -> [f32; 4] {
    let mut e = [f32::MAX, f32::MAX, f32::MIN, f32::MIN];
    layout_text(text, px, (0.0, 0.0), |x, y, cov| {
        if cov > 0.05 {
            e = [
                e[0].min(x as f32),
                e[1].min(y as f32),
                e[2].max(x as f32 + 1.0),
                e[3].max(y as f32 + 1.0),
            ];
        }
    });
    if e[0] > e[2] {
        return [0.0, -px * 0.7, px * 0.5, 0.0];
    }
    e
}

/// Draws `text` with coverage blending.
pub fn draw_text(img: &mut RgbImage, text: &str, px: f32, origin: (f32, f32), ink: [u8; 3]) {
    layout_text(text, px, origin, |x, y, cov| {
        blend(img, x, y, ink, cov.min(1.0));
    });
}

/// Blends `color` over pixel (x, y) with weight `a`; ignores pixels outside the image.
pub fn blend(img: &mut RgbImage, x: i32, y: i32, color: [u8; 3], a: f32) {
    if x < 0 || y < 0 || x >= img.width() as i32 || y >= img.height() as i32 || a <= 0.0 {
        return;
    }
    let p = img.get_pixel_mut(x as u32, y as u32);
    for (v, c) in p.0.iter_mut().zip(color) {
        *v = (*v as f32 * (1.0 - a) + c as f32 * a)
            .round()
            .clamp(0.0, 255.0) as u8;
    }
}

/// Fills an axis-aligned rectangle (pixel centres inside it), without anti-aliasing.
pub fn fill_rect(img: &mut RgbImage, r: [f32; 4], color: [u8; 3]) {
    let (w, h) = (img.width() as i32, img.height() as i32);
    let x0 = (r[0].round() as i32).clamp(0, w);
    let x1 = (r[2].round() as i32).clamp(0, w);
    let y0 = (r[1].round() as i32).clamp(0, h);
    let y1 = (r[3].round() as i32).clamp(0, h);
    for y in y0..y1 {
        for x in x0..x1 {
            img.put_pixel(x as u32, y as u32, Rgb(color));
        }
    }
}

/// Draws a rectangle outline `t` pixels thick, inside `r`.
pub fn stroke_rect(img: &mut RgbImage, r: [f32; 4], t: f32, color: [u8; 3]) {
    fill_rect(img, [r[0], r[1], r[2], r[1] + t], color);
    fill_rect(img, [r[0], r[3] - t, r[2], r[3]], color);
    fill_rect(img, [r[0], r[1], r[0] + t, r[3]], color);
    fill_rect(img, [r[2] - t, r[1], r[2], r[3]], color);
}

/// Fills any region given by an inside test, anti-aliased with 4x4 samples per pixel.
pub fn fill_region(
    img: &mut RgbImage,
    bbox: [f32; 4],
    color: [u8; 3],
    alpha: f32,
    inside: impl Fn(f32, f32) -> bool,
) {
    let (w, h) = (img.width() as i32, img.height() as i32);
    let x0 = (bbox[0].floor() as i32).max(0);
    let y0 = (bbox[1].floor() as i32).max(0);
    let x1 = (bbox[2].ceil() as i32).min(w);
    let y1 = (bbox[3].ceil() as i32).min(h);
    for py in y0..y1 {
        for px in x0..x1 {
            let mut hits = 0;
            for sy in 0..4 {
                for sx in 0..4 {
                    let x = px as f32 + (sx as f32 + 0.5) / 4.0;
                    let y = py as f32 + (sy as f32 + 0.5) / 4.0;
                    if inside(x, y) {
                        hits += 1;
                    }
                }
            }
            if hits > 0 {
                blend(img, px, py, color, alpha * hits as f32 / 16.0);
            }
        }
    }
}

/// Even-odd point-in-polygon test.
pub fn in_polygon(pts: &[(f32, f32)], x: f32, y: f32) -> bool {
    let mut inside = false;
    let mut j = pts.len() - 1;
    for i in 0..pts.len() {
        let (xi, yi) = pts[i];
        let (xj, yj) = pts[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

fn star_points() -> Vec<(f32, f32)> {
    (0..10)
        .map(|k| {
            let a = (-90.0f32 + 36.0 * k as f32).to_radians();
            let rad = if k % 2 == 0 { 1.0 } else { 0.5 };
            (rad * a.cos(), rad * a.sin())
        })
        .collect()
}

const TRIANGLE: [(f32, f32); 3] = [(0.0, -0.95), (1.0, 0.8), (-1.0, 0.8)];
const DIAMOND: [(f32, f32); 4] = [(0.0, -1.0), (0.8, 0.0), (0.0, 1.0), (-0.8, 0.0)];
const HEXAGON: [(f32, f32); 6] = [
    (1.0, 0.0),
    (0.5, 0.866),
    (-0.5, 0.866),
    (-1.0, 0.0),
    (-0.5, -0.866),
    (0.5, -0.866),
];
const HEART_TRI: [(f32, f32); 3] = [(-0.95, -0.2), (0.95, -0.2), (0.0, 0.95)];

/// Is the unit-scale point (x, y) (centre at 0, y down, half-size 1) inside `shape`?
pub fn inside_unit(shape: Shape, x: f32, y: f32) -> bool {
    match shape {
        Shape::Circle => x * x + y * y <= 1.0,
        Shape::Square => x.abs() <= 0.82 && y.abs() <= 0.82,
        Shape::Triangle => in_polygon(&TRIANGLE, x, y),
        Shape::Star => in_polygon(&star_points(), x, y),
        Shape::Diamond => in_polygon(&DIAMOND, x, y),
        Shape::Hexagon => in_polygon(&HEXAGON, x, y),
        Shape::Heart => {
            let c = |cx: f32| (x - cx).powi(2) + (y + 0.4).powi(2) <= 0.25;
            c(-0.5) || c(0.5) || in_polygon(&HEART_TRI, x, y)
        }
        Shape::Cross => {
            (x.abs() <= 0.32 && y.abs() <= 0.95) || (y.abs() <= 0.32 && x.abs() <= 0.95)
        }
    }
}

/// Tight unit-scale extents [x0, y0, x1, y1] of a shape.
pub fn unit_extent(shape: Shape) -> [f32; 4] {
    match shape {
        Shape::Circle => [-1.0, -1.0, 1.0, 1.0],
        Shape::Square => [-0.82, -0.82, 0.82, 0.82],
        Shape::Triangle => [-1.0, -0.95, 1.0, 0.8],
        Shape::Star => [-0.951, -1.0, 0.951, 0.809],
        Shape::Diamond => [-0.8, -1.0, 0.8, 1.0],
        Shape::Hexagon => [-1.0, -0.866, 1.0, 0.866],
        Shape::Heart => [-1.0, -0.9, 1.0, 0.95],
        Shape::Cross => [-0.95, -0.95, 0.95, 0.95],
    }
}

/// Outline colour and thickness of shapes.
pub const OUTLINE: [u8; 3] = [28, 28, 34];
pub fn outline_width(side: u32) -> f32 {
    (side as f32 / 75.0).max(1.0)
}

/// Draws one outlined shape at a pose; `alpha` < 1 draws a faint ghost without outline.
pub fn draw_shape(img: &mut RgbImage, shape: Shape, pose: Pose, alpha: f32) {
    let Pose { cx, cy, r, color } = pose;
    if r <= 0.5 {
        return;
    }
    let e = unit_extent(shape);
    let bbox = [cx + e[0] * r, cy + e[1] * r, cx + e[2] * r, cy + e[3] * r];
    let ow = outline_width(img.width());
    let inner = (r - ow).max(r * 0.5);
    if alpha >= 1.0 {
        fill_region(img, bbox, OUTLINE, 1.0, |x, y| {
            inside_unit(shape, (x - cx) / r, (y - cy) / r)
        });
    }
    // The fill is the same shape shrunk about its centre, leaving the outline around it.
    let ib = [
        cx + e[0] * inner,
        cy + e[1] * inner,
        cx + e[2] * inner,
        cy + e[3] * inner,
    ];
    fill_region(img, ib, color.rgb(), alpha, |x, y| {
        inside_unit(shape, (x - cx) / inner, (y - cy) / inner)
    });
}

/// Draws an image object: its motion trail (three fading ghosts behind it) and the shape.
pub fn draw_object(img: &mut RgbImage, o: &Object) {
    let pose = Pose {
        cx: o.cx,
        cy: o.cy,
        r: o.r,
        color: o.color,
    };
    if let Some(dir) = o.motion {
        let (dx, dy) = dir.delta();
        let trail = super::world::trail_length(o.r);
        for (k, a) in [(3.0, 0.22), (2.0, 0.38), (1.0, 0.55)] {
            let d = trail * k / 3.0;
            let ghost = Pose {
                cx: o.cx - dx * d,
                cy: o.cy - dy * d,
                ..pose
            };
            draw_shape(img, o.shape, ghost, a);
        }
    }
    draw_shape(img, o.shape, pose, 1.0);
}

/// Draws a sign (board on a post), a price label (white tag with a hole) or a book cover.
pub fn draw_text_item(img: &mut RgbImage, t: &TextItem) {
    let b = t.board;
    let side = img.width() as f32;
    let edge = (side / 110.0).max(1.0).round();
    match t.kind {
        TextKind::Sign => {
            let pw = (side * 0.03).max(2.0).round();
            let mx = ((b[0] + b[2]) / 2.0).round();
            let post_h = ((b[3] - b[1]) * 0.9).round();
            fill_rect(
                img,
                [mx - pw / 2.0, b[3], mx + pw / 2.0, b[3] + post_h],
                [95, 70, 50],
            );
            fill_rect(img, b, OUTLINE);
            fill_rect(
                img,
                [b[0] + edge, b[1] + edge, b[2] - edge, b[3] - edge],
                t.board_color.rgb(),
            );
        }
        TextKind::Label => {
            fill_rect(img, b, OUTLINE);
            fill_rect(
                img,
                [b[0] + edge, b[1] + edge, b[2] - edge, b[3] - edge],
                t.board_color.rgb(),
            );
            let hr = ((b[3] - b[1]) * 0.1).max(1.0);
            let (hx, hy) = (b[0] + edge + hr * 1.8, (b[1] + b[3]) / 2.0);
            fill_region(
                img,
                [hx - hr, hy - hr, hx + hr, hy + hr],
                OUTLINE,
                1.0,
                |x, y| (x - hx).powi(2) + (y - hy).powi(2) <= hr * hr,
            );
        }
        TextKind::Book => {
            let spine = (t.font_px * 0.3).round();
            fill_rect(img, b, OUTLINE);
            fill_rect(
                img,
                [b[0] + edge, b[1] + edge, b[2] - edge, b[3] - edge],
                t.board_color.rgb(),
            );
            fill_rect(
                img,
                [b[0] + edge, b[1] + edge, b[0] + spine, b[3] - edge],
                darker(t.board_color.rgb()),
            );
            // A decorative band under the title, as on many covers.
            let yb = (b[1] + (b[3] - b[1]) * 0.72).round();
            fill_rect(
                img,
                [b[0] + spine + 2.0 * edge, yb, b[2] - 2.0 * edge, yb + edge],
                t.board_color.ink(),
            );
        }
    }
    draw_text(img, &t.text, t.font_px, t.origin, t.board_color.ink());
}

fn darker(c: [u8; 3]) -> [u8; 3] {
    [c[0] / 3 * 2, c[1] / 3 * 2, c[2] / 3 * 2]
}

/// Draws the empty slot of a pattern: a dashed frame with a question mark.
fn draw_gap(img: &mut RgbImage, gap: [f32; 4]) {
    let t = (img.width() as f32 / 90.0).max(1.0).round();
    let (x0, y0, x1, y1) = (gap[0], gap[1], gap[2], gap[3]);
    let dash = ((x1 - x0) / 5.0).max(2.0);
    let mut s = 0.0;
    while s < x1 - x0 {
        let e = (s + dash * 0.6).min(x1 - x0);
        fill_rect(img, [x0 + s, y0, x0 + e, y0 + t], OUTLINE);
        fill_rect(img, [x0 + s, y1 - t, x0 + e, y1], OUTLINE);
        fill_rect(img, [x0, y0 + s, x0 + t, y0 + e], OUTLINE);
        fill_rect(img, [x1 - t, y0 + s, x1, y0 + e], OUTLINE);
        s += dash;
    }
    let px = ((y1 - y0) * 0.8).round();
    let m = measure_text("?", px);
    let tx = ((x0 + x1) / 2.0 - (m[0] + m[2]) / 2.0).round();
    let ty = ((y0 + y1) / 2.0 - (m[1] + m[3]) / 2.0).round();
    draw_text(img, "?", px, (tx, ty), OUTLINE);
}

/// Renders an image scene (or frame 0 of a video scene).
pub fn render_image(scene: &Scene) -> RgbImage {
    let mut img = background(scene);
    draw_static(&mut img, scene);
    for o in &scene.objects {
        match o.track.first() {
            Some(Some(p)) => draw_shape(&mut img, o.shape, *p, 1.0),
            Some(None) => {}
            None => draw_object(&mut img, o),
        }
    }
    img
}

/// The scene's background alone.
pub fn background(scene: &Scene) -> RgbImage {
    let mut img = RgbImage::new(scene.side, scene.side);
    paint_background(&mut img, scene.place, scene.background_seed);
    img
}

/// Draws what does not move: texts and the pattern gap.
pub fn draw_static(img: &mut RgbImage, scene: &Scene) {
    for t in &scene.texts {
        draw_text_item(img, t);
    }
    if let Some(p) = &scene.pattern {
        draw_gap(img, p.gap);
    }
}

/// Encodes an image as PNG bytes (deterministic for the same pixels).
pub fn png_bytes(img: &RgbImage) -> crate::Result<Vec<u8>> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;
    let mut buf = Vec::new();
    PngEncoder::new_with_quality(&mut buf, CompressionType::Default, FilterType::Adaptive)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| crate::Error::media("<png encoder>", e.to_string()))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn font_parses_and_measures() {
        let m = measure_text("STOP", 12.0);
        assert!(m[1] < 0.0 && m[3] <= 1.0, "{m:?}");
        assert!(m[2] - m[0] > 20.0 && m[2] - m[0] < 45.0, "{m:?}");
        let mut img = RgbImage::new(60, 20);
        draw_text(&mut img, "STOP", 12.0, (2.0, 15.0), [255, 255, 255]);
        let lit = img.pixels().filter(|p| p.0[0] > 128).count();
        assert!(lit > 40, "{lit}");
    }

    #[test]
    fn every_shape_fills_its_extent() {
        for s in Shape::ALL {
            let e = unit_extent(s);
            assert!(
                inside_unit(s, (e[0] + e[2]) / 2.0 * 0.1, (e[1] + e[3]) / 2.0 + 0.05),
                "{s:?}"
            );
            assert!(!inside_unit(s, e[2] + 0.01, 0.0) && !inside_unit(s, 0.0, e[3] + 0.01));
        }
    }
}
