//! Procedural backgrounds for the eight places (the Place class of Open-VQA, after Places365):
//! large flat regions in distinctive colours so each place is recognisable at 64 px.

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::render::{fill_rect, fill_region};
use super::vocab::Place;

fn lerp(a: [u8; 3], b: [u8; 3], t: f32) -> [u8; 3] {
    let t = t.clamp(0.0, 1.0);
    [0, 1, 2].map(|k| (a[k] as f32 + (b[k] as f32 - a[k] as f32) * t).round() as u8)
}

/// Vertical gradient from `top` to `bottom` over rows y0..y1.
fn gradient(img: &mut RgbImage, y0: f32, y1: f32, top: [u8; 3], bottom: [u8; 3]) {
    let (w, h) = (img.width(), img.height());
    let ya = (y0.round().max(0.0) as u32).min(h);
    let yb = (y1.round().max(0.0) as u32).min(h);
    for y in ya..yb {
        let c = lerp(top, bottom, (y as f32 - y0) / (y1 - y0).max(1.0));
        for x in 0..w {
            img.put_pixel(x, y, Rgb(c));
        }
    }
}

/// Fills everything below the curve y = f(x) (per column, anti-aliased vertically by rounding).
fn below_curve(img: &mut RgbImage, color: [u8; 3], f: impl Fn(f32) -> f32) {
    let (w, h) = (img.width(), img.height());
    for x in 0..w {
        let top = f(x as f32 + 0.5).round().max(0.0) as u32;
        for y in top.min(h)..h {
            img.put_pixel(x, y, Rgb(color));
        }
    }
}

fn dot(img: &mut RgbImage, x: f32, y: f32, r: f32, color: [u8; 3]) {
    fill_region(img, [x - r, y - r, x + r, y + r], color, 1.0, |px, py| {
        (px - x).powi(2) + (py - y).powi(2) <= r * r
    });
}

/// Paints the background of `place`; the details (trees, stars, windows) come from `seed`.
pub fn paint_background(img: &mut RgbImage, place: Place, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let s = img.width() as f32;
    let u = s / 112.0; // one "design pixel" at the reference size
    match place {
        Place::Beach => {
            let h1 = s * rng.random_range(0.28..0.38);
            let h2 = h1 + s * rng.random_range(0.16..0.22);
            gradient(img, 0.0, h1, [120, 190, 245], [190, 228, 250]);
            gradient(img, h1, h2 + 4.0 * u, [24, 110, 186], [40, 140, 200]);
            for k in 0..3 {
                let y = h1 + (h2 - h1) * (k as f32 + 0.6) / 3.5;
                let off: f32 = rng.random_range(0.0..s);
                let mut x = -off % (s * 0.3);
                while x < s {
                    fill_rect(img, [x, y, x + s * 0.12, y + u.max(1.0)], [200, 232, 248]);
                    x += s * 0.3;
                }
            }
            let ph: f32 = rng.random_range(0.0..std::f32::consts::TAU);
            below_curve(img, [236, 212, 152], |x| {
                h2 + 2.5 * u * (x / s * 9.0 + ph).sin()
            });
            for _ in 0..(12.0 * u * u) as usize {
                let (x, y) = (rng.random_range(0.0..s), rng.random_range(h2 + 4.0 * u..s));
                dot(img, x, y, 0.8 * u, [210, 182, 120]);
            }
        }
        Place::Snow => {
            gradient(img, 0.0, s, [196, 210, 228], [220, 230, 242]);
            let ph: f32 = rng.random_range(0.0..std::f32::consts::TAU);
            let h1 = s * rng.random_range(0.35..0.45);
            below_curve(img, [226, 234, 246], |x| {
                h1 + 6.0 * u * (x / s * 5.0 + ph).sin()
            });
            let h2 = h1 + s * 0.15;
            below_curve(img, [246, 249, 253], |x| {
                h2 + 5.0 * u * (x / s * 7.0 + 2.0 * ph).cos()
            });
            for _ in 0..(40.0 * u * u) as usize {
                let (x, y) = (rng.random_range(0.0..s), rng.random_range(0.0..s));
                dot(img, x, y, 1.1 * u, [255, 255, 255]);
            }
        }
        Place::Forest => {
            gradient(img, 0.0, s, [150, 190, 150], [120, 170, 120]);
            let ground = s * 0.78;
            fill_rect(img, [0.0, ground, s, s], [78, 128, 52]);
            for row in 0..2 {
                let base = ground + row as f32 * s * 0.1 - s * 0.04;
                let n = 5 + row * 2;
                for i in 0..n {
                    let x = (i as f32 + rng.random_range(0.1..0.9)) * s / n as f32;
                    let th = s * rng.random_range(0.45..0.7);
                    let hw = s * rng.random_range(0.09..0.14);
                    fill_rect(
                        img,
                        [x - 2.0 * u, base - th * 0.35, x + 2.0 * u, base],
                        [96, 66, 38],
                    );
                    let green = if (i + row) % 2 == 0 {
                        [22, 92, 40]
                    } else {
                        [36, 116, 52]
                    };
                    let pts = [
                        (x, base - th),
                        (x + hw, base - th * 0.3),
                        (x - hw, base - th * 0.3),
                    ];
                    fill_region(
                        img,
                        [x - hw, base - th, x + hw, base],
                        green,
                        1.0,
                        |px, py| super::render::in_polygon(&pts, px, py),
                    );
                }
            }
        }
        Place::CityStreet => {
            gradient(img, 0.0, s, [160, 172, 190], [196, 204, 214]);
            let road = s * 0.74;
            let mut x = -rng.random_range(0.0..s * 0.1);
            while x < s {
                let bw = s * rng.random_range(0.16..0.26);
                let bh = s * rng.random_range(0.35..0.65);
                let g = rng.random_range(85..140u8);
                let col = [g, g, g.saturating_add(12)];
                fill_rect(img, [x, road - bh, x + bw - u, road], col);
                let (ww, gap) = (3.0 * u, 6.0 * u);
                let mut wy = road - bh + gap * 0.7;
                while wy + ww < road - gap * 0.5 {
                    let mut wx = x + gap * 0.6;
                    while wx + ww < x + bw - gap * 0.5 {
                        let lit = rng.random_bool(0.6);
                        let c = if lit { [248, 236, 172] } else { [60, 64, 80] };
                        fill_rect(img, [wx, wy, wx + ww, wy + ww], c);
                        wx += gap;
                    }
                    wy += gap;
                }
                x += bw;
            }
            fill_rect(img, [0.0, road, s, road + s * 0.05], [150, 150, 146]);
            fill_rect(img, [0.0, road + s * 0.05, s, s], [66, 66, 72]);
            let ly = road + s * 0.15;
            let mut x = rng.random_range(0.0..s * 0.1);
            while x < s {
                fill_rect(img, [x, ly, x + s * 0.1, ly + 2.0 * u], [236, 236, 236]);
                x += s * 0.2;
            }
        }
        Place::Room => {
            let floor = s * rng.random_range(0.68..0.76);
            fill_rect(img, [0.0, 0.0, s, floor], [236, 222, 196]);
            let step = s / 9.0;
            for i in 0..10 {
                let x = i as f32 * step + step * 0.5;
                fill_rect(img, [x, 0.0, x + step * 0.35, floor], [224, 206, 176]);
            }
            let (wx, wy) = (s * rng.random_range(0.1..0.6), s * 0.1);
            let (ww, wh) = (s * 0.3, s * 0.3);
            fill_rect(img, [wx, wy, wx + ww, wy + wh], [112, 80, 54]);
            fill_rect(
                img,
                [
                    wx + 2.0 * u,
                    wy + 2.0 * u,
                    wx + ww - 2.0 * u,
                    wy + wh - 2.0 * u,
                ],
                [168, 212, 238],
            );
            fill_rect(
                img,
                [wx + ww / 2.0 - u, wy, wx + ww / 2.0 + u, wy + wh],
                [112, 80, 54],
            );
            fill_rect(
                img,
                [wx, wy + wh / 2.0 - u, wx + ww, wy + wh / 2.0 + u],
                [112, 80, 54],
            );
            fill_rect(img, [0.0, floor, s, s], [164, 112, 66]);
            fill_rect(img, [0.0, floor, s, floor + 2.0 * u], [120, 84, 50]);
            let mut y = floor + s * 0.07;
            while y < s {
                fill_rect(img, [0.0, y, s, y + u], [136, 92, 54]);
                y += s * 0.07;
            }
        }
        Place::Desert => {
            gradient(img, 0.0, s * 0.6, [250, 196, 116], [255, 232, 176]);
            let (sx, sy) = (s * rng.random_range(0.15..0.85), s * 0.17);
            dot(img, sx, sy, s * 0.1, [255, 246, 206]);
            let ph: f32 = rng.random_range(0.0..std::f32::consts::TAU);
            let h1 = s * rng.random_range(0.42..0.5);
            below_curve(img, [224, 172, 98], |x| {
                h1 + 6.0 * u * (x / s * 4.0 + ph).sin()
            });
            let h2 = h1 + s * 0.2;
            below_curve(img, [204, 148, 78], |x| {
                h2 + 5.0 * u * (x / s * 6.0 - ph).sin()
            });
            let cx = s * rng.random_range(0.1..0.9);
            let base = h1 + s * 0.12;
            let cw = 3.0 * u;
            let cactus = [56, 128, 64];
            fill_rect(img, [cx - cw, base - s * 0.2, cx + cw, base], cactus);
            fill_rect(
                img,
                [
                    cx - 4.0 * cw,
                    base - s * 0.1,
                    cx - cw,
                    base - s * 0.1 + 2.0 * cw,
                ],
                cactus,
            );
            fill_rect(
                img,
                [
                    cx - 4.0 * cw,
                    base - s * 0.16,
                    cx - 2.0 * cw,
                    base - s * 0.1,
                ],
                cactus,
            );
        }
        Place::NightSky => {
            gradient(img, 0.0, s, [12, 16, 52], [34, 38, 86]);
            for _ in 0..(45.0 * u * u) as usize {
                let (x, y) = (rng.random_range(0.0..s), rng.random_range(0.0..s * 0.85));
                let r = if rng.random_bool(0.2) {
                    1.2 * u
                } else {
                    0.7 * u
                };
                dot(img, x, y, r.max(0.6), [255, 252, 220]);
            }
            let (mx, my, mr) = (s * rng.random_range(0.15..0.85), s * 0.18, s * 0.09);
            fill_region(
                img,
                [mx - mr, my - mr, mx + mr, my + mr],
                [246, 240, 196],
                1.0,
                |x, y| {
                    (x - mx).powi(2) + (y - my).powi(2) <= mr * mr
                        && (x - mx - mr * 0.45).powi(2) + (y - my + mr * 0.2).powi(2)
                            > (mr * 0.8).powi(2)
                },
            );
            let ph: f32 = rng.random_range(0.0..std::f32::consts::TAU);
            below_curve(img, [8, 10, 24], |x| {
                s * 0.88 + 3.0 * u * (x / s * 5.0 + ph).sin()
            });
        }
        Place::Field => {
            let h = s * rng.random_range(0.32..0.42);
            gradient(img, 0.0, h + 2.0, [110, 180, 240], [176, 214, 246]);
            gradient(img, h, s, [120, 190, 84], [84, 160, 62]);
            for _ in 0..(60.0 * u * u) as usize {
                let (x, y) = (rng.random_range(0.0..s), rng.random_range(h + 3.0 * u..s));
                fill_rect(img, [x, y - 3.0 * u, x + u.max(1.0), y], [62, 132, 50]);
            }
            for _ in 0..(10.0 * u * u) as usize {
                let (x, y) = (rng.random_range(0.0..s), rng.random_range(h + 3.0 * u..s));
                dot(img, x, y, 1.0 * u, [250, 246, 210]);
            }
        }
    }
}
