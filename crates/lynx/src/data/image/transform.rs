//! The release's image transforms (dataset/__init__.py `get_image_transform`): evaluation =
//! torchvision `Resize(image_res, BICUBIC)` + `CenterCrop(image_res)` + `ToTensor` + `Normalize`;
//! training = `RandomResizedCrop(image_res, scale=(0.9, 1.0), ratio=(0.75, 1.3333), BICUBIC)` +
//! `ToTensor` + `Normalize`. Resizing is Pillow's (torchvision hands PIL images to Pillow).

use candle_core::{Device, Tensor};
use image::RgbImage;
use rand::Rng;

use super::resize::resize_bicubic;
use crate::{Error, Result};

/// `image_mean` of configs/LYNX.yaml (the CLIP mean).
pub const IMAGE_MEAN: [f32; 3] = [0.48145466, 0.4578275, 0.40821073];
/// `image_std` of configs/LYNX.yaml (the CLIP std), written as the config writes it.
#[allow(clippy::excessive_precision)]
pub const IMAGE_STD: [f32; 3] = [0.26862954, 0.26130258, 0.27577711];
/// RandomResizedCrop's area range in the release.
pub const TRAIN_SCALE: (f64, f64) = (0.9, 1.0);
/// RandomResizedCrop's aspect-ratio range in the release: it writes 1.3333, not 4/3.
pub const TRAIN_RATIO: (f64, f64) = (0.75, 1.3333);

/// Turns an RGB image into the vision encoder's input.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessor {
    /// Side of the square input (`image_res`, 420 in the release, 224 for the ViT's pretraining).
    pub image_res: usize,
    /// Per-channel mean subtracted after scaling to [0, 1].
    pub mean: [f32; 3],
    /// Per-channel std divided by after subtracting the mean.
    pub std: [f32; 3],
}

/// Python's `round()` on a non-negative float: halves go to the even neighbour.
fn round_half_even(x: f64) -> i64 {
    let r = x.round_ties_even();
    r as i64
}

/// Crops `height` x `width` starting at row `top`, column `left` (which must fit inside `img`).
fn crop(img: &RgbImage, left: u32, top: u32, width: u32, height: u32) -> RgbImage {
    image::imageops::crop_imm(img, left, top, width, height).to_image()
}

/// torchvision's `CenterCrop(size)` on a PIL image at least `size` x `size` large: offsets
/// `int(round((dim - size) / 2))` with Python's half-to-even rounding. Smaller images are padded
/// with black first, as torchvision does.
pub fn center_crop(img: &RgbImage, size: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if w < size || h < size {
        // torchvision pads (size - dim) // 2 before and the rest after, with zeros.
        let (pw, ph) = (w.max(size), h.max(size));
        let mut padded = RgbImage::new(pw, ph);
        let (ox, oy) = ((pw - w) / 2, (ph - h) / 2);
        image::imageops::replace(&mut padded, img, ox as i64, oy as i64);
        return center_crop(&padded, size);
    }
    let top = round_half_even((h - size) as f64 / 2.0) as u32;
    let left = round_half_even((w - size) as f64 / 2.0) as u32;
    if (w, h) == (size, size) {
        return img.clone();
    }
    crop(img, left, top, size, size)
}

impl Preprocessor {
    /// The release's normalisation (CLIP mean/std) at resolution `image_res`.
    pub fn new(image_res: usize) -> Self {
        Self {
            image_res,
            mean: IMAGE_MEAN,
            std: IMAGE_STD,
        }
    }

    fn res(&self) -> Result<u32> {
        if self.image_res == 0 || self.image_res > 16384 {
            return Err(Error::config(
                "image_res",
                format!("{} is not a usable resolution", self.image_res),
            ));
        }
        Ok(self.image_res as u32)
    }

    /// The evaluation transform up to the crop: bicubic resize so that the shorter side is
    /// `image_res` and the longer `int(image_res * long / short)`, then the centre crop.
    pub fn eval_crop(&self, img: &RgbImage) -> Result<RgbImage> {
        let res = self.res()?;
        let (w, h) = img.dimensions();
        if w == 0 || h == 0 {
            return Err(Error::Invalid(format!(
                "cannot preprocess an empty {w}x{h} image"
            )));
        }
        let (short, long) = (w.min(h) as u64, w.max(h) as u64);
        // Python: int(size * long / short), a true division then truncation.
        let new_long = ((res as u64 * long) as f64 / short as f64) as u32;
        let (nw, nh) = if w <= h {
            (res, new_long)
        } else {
            (new_long, res)
        };
        if (nw, nh) == (w, h) {
            return Ok(center_crop(img, res));
        }
        Ok(center_crop(&resize_bicubic(img, nw, nh), res))
    }

    /// `ToTensor` + `Normalize`: [3, H, W] f32 on the CPU, (v / 255 - mean) / std, computed in f32
    /// in the same order as torchvision so the values are identical.
    pub fn to_tensor(&self, img: &RgbImage) -> Result<Tensor> {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let mut data = vec![0f32; 3 * w * h];
        let (plane0, rest) = data.split_at_mut(w * h);
        let (plane1, plane2) = rest.split_at_mut(w * h);
        let planes = [plane0, plane1, plane2];
        for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
            for c in 0..3 {
                planes[c][i] = (px[c] as f32 / 255.0 - self.mean[c]) / self.std[c];
            }
        }
        Ok(Tensor::from_vec(data, (3, h, w), &Device::Cpu)?)
    }

    /// The release's evaluation transform: [3, image_res, image_res] f32 on the CPU.
    pub fn eval(&self, img: &RgbImage) -> Result<Tensor> {
        self.to_tensor(&self.eval_crop(img)?)
    }

    /// [`Self::eval`] for a batch: [B, 3, image_res, image_res].
    pub fn eval_batch(&self, imgs: &[RgbImage]) -> Result<Tensor> {
        if imgs.is_empty() {
            return Err(Error::Invalid("eval_batch: no images".into()));
        }
        let items = imgs
            .iter()
            .map(|i| self.eval(i))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::stack(&items, 0)?)
    }

    /// torchvision `RandomResizedCrop.get_params` with the release's scale and ratio: up to ten
    /// tries of a uniform area fraction and a log-uniform aspect ratio, then the centre-crop
    /// fallback. Returns (top, left, height, width).
    pub fn random_crop_box(
        &self,
        width: u32,
        height: u32,
        rng: &mut impl Rng,
    ) -> (u32, u32, u32, u32) {
        let area = width as f64 * height as f64;
        let (log_lo, log_hi) = (TRAIN_RATIO.0.ln(), TRAIN_RATIO.1.ln());
        for _ in 0..10 {
            let target = area * rng.random_range(TRAIN_SCALE.0..TRAIN_SCALE.1);
            let aspect = rng.random_range(log_lo..log_hi).exp();
            let w = round_half_even((target * aspect).sqrt());
            let h = round_half_even((target / aspect).sqrt());
            if 0 < w && w <= width as i64 && 0 < h && h <= height as i64 {
                let top = rng.random_range(0..=height - h as u32);
                let left = rng.random_range(0..=width - w as u32);
                return (top, left, h as u32, w as u32);
            }
        }
        let in_ratio = width as f64 / height as f64;
        let (w, h) = if in_ratio < TRAIN_RATIO.0 {
            (width, round_half_even(width as f64 / TRAIN_RATIO.0) as u32)
        } else if in_ratio > TRAIN_RATIO.1 {
            (
                round_half_even(height as f64 * TRAIN_RATIO.1) as u32,
                height,
            )
        } else {
            (width, height)
        };
        ((height - h) / 2, (width - w) / 2, h, w)
    }

    /// The release's training transform: a random crop (see [`Self::random_crop_box`]) resized
    /// to image_res x image_res with Pillow's bicubic filter, then normalised. Seed `rng` for
    /// reproducible crops.
    pub fn train(&self, img: &RgbImage, rng: &mut impl Rng) -> Result<Tensor> {
        let res = self.res()?;
        let (w, h) = img.dimensions();
        if w == 0 || h == 0 {
            return Err(Error::Invalid(format!(
                "cannot preprocess an empty {w}x{h} image"
            )));
        }
        let (top, left, ch, cw) = self.random_crop_box(w, h, rng);
        let cropped = crop(img, left, top, cw, ch);
        let resized = if (cw, ch) == (res, res) {
            cropped
        } else {
            resize_bicubic(&cropped, res, res)
        };
        self.to_tensor(&resized)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn python_rounding() {
        assert_eq!(round_half_even(9.5), 10);
        assert_eq!(round_half_even(10.5), 10);
        assert_eq!(round_half_even(0.5), 0);
        assert_eq!(round_half_even(1.5), 2);
        assert_eq!(round_half_even(2.4999), 2);
    }

    #[test]
    fn centre_crop_offsets_round_half_to_even() {
        // 77 - 56 = 21: offset round(10.5) = 10, not 11.
        let img = RgbImage::from_fn(56, 77, |_, y| image::Rgb([y as u8, 0, 0]));
        assert_eq!(center_crop(&img, 56).get_pixel(0, 0).0[0], 10);
        // 75 - 56 = 19: offset round(9.5) = 10.
        let img = RgbImage::from_fn(56, 75, |_, y| image::Rgb([y as u8, 0, 0]));
        assert_eq!(center_crop(&img, 56).get_pixel(0, 0).0[0], 10);
    }

    #[test]
    fn centre_crop_pads_small_images() {
        let img = RgbImage::from_pixel(3, 5, image::Rgb([9, 9, 9]));
        let c = center_crop(&img, 6);
        assert_eq!(c.dimensions(), (6, 6));
        // torchvision pads left (6-3)//2 = 1 and top (6-5)//2 = 0 here.
        assert_eq!(c.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(c.get_pixel(1, 0).0, [9, 9, 9]);
        assert_eq!(c.get_pixel(1, 5).0, [0, 0, 0]);
    }

    #[test]
    fn random_crop_box_stays_inside_and_in_range() {
        let p = Preprocessor::new(32);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut fallbacks = 0;
        for (w, h) in [(100, 100), (300, 40), (40, 300), (64, 48), (1, 1), (7, 3)] {
            for _ in 0..200 {
                let (top, left, ch, cw) = p.random_crop_box(w, h, &mut rng);
                assert!(
                    ch >= 1 && cw >= 1 && top + ch <= h && left + cw <= w,
                    "{w}x{h}: {top} {left} {ch} {cw}"
                );
                let frac = (ch * cw) as f64 / (w * h) as f64;
                let ratio = cw as f64 / ch as f64;
                let sampled = (0.85..=1.0).contains(&frac) && (0.7..=1.4).contains(&ratio);
                if !sampled {
                    fallbacks += 1;
                    // The fallback is a centred crop clamped to the ratio range.
                    assert_eq!(top, (h - ch) / 2);
                    assert_eq!(left, (w - cw) / 2);
                }
            }
        }
        // Very elongated images never satisfy the ratio and use the fallback.
        assert!(fallbacks >= 400);
    }

    #[test]
    fn train_is_seedable_and_shaped() {
        let img = RgbImage::from_fn(50, 40, |x, y| image::Rgb([x as u8 * 5, y as u8 * 6, 128]));
        let p = Preprocessor::new(24);
        let run = |seed| {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            p.train(&img, &mut rng)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        let t = p
            .train(&img, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0))
            .unwrap();
        assert_eq!(t.dims(), &[3, 24, 24]);
    }
}
