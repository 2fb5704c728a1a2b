//! Decoding an image file to RGB8 the way Pillow 13's `Image.open(p).convert("RGB")` does, with the
//! EXIF orientation applied on top.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use super::jpeg;
use crate::{Error, Result};

/// Reads and decodes the image file at `path` (see [`decode_image`]).
///
/// A missing or unreadable file gives [`Error::Io`]; a corrupt, truncated or non-image file gives
/// [`Error::Media`] naming the path.
pub fn load_image(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_image(&bytes, &path.display().to_string())
}

/// Decodes an encoded image (JPEG, PNG, GIF (first frame), WebP, BMP, TIFF) to RGB8; `name` is
/// used in errors. The format comes from the content, not from `name` (a PNG called `.jpg` works).
///
/// Colour conversion follows Pillow 13's `convert("RGB")` for each mode Pillow would open:
/// grey (L, 1-bit, 2/4-bit PNG) is replicated; alpha (LA, RGBA, PNG tRNS) is dropped without
/// compositing; palettes are looked up; CMYK JPEGs are read with Adobe's inverted polarity and
/// converted with Pillow's `cmyk2rgb`; 16-bit grey PNGs (Pillow's `I;16`) are clipped to 255
/// (not scaled!); 16-bit RGB/RGBA/grey+alpha PNGs keep the high byte.
///
/// EXIF orientation: the release does not call `ImageOps.exif_transpose`, so a phone photo with
/// orientation 6 reaches its model sideways. We apply the orientation (as `exif_transpose` would)
/// because the pixels are then the way the photograph is meant to be seen; for images without an
/// orientation tag (all of OwlEval and Open-VQA) this changes nothing.
pub fn decode_image(bytes: &[u8], name: &str) -> Result<RgbImage> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return jpeg::decode_jpeg(bytes, name);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::media(name, format!("cannot read: {e}")))?;
    let Some(format) = reader.format() else {
        return Err(Error::media(
            name,
            "not an image (unrecognised file content; expected JPEG, PNG, GIF, WebP, BMP or TIFF)",
        ));
    };
    let bad =
        |e: image::ImageError| Error::media(name, format!("cannot decode {format:?} image: {e}"));
    let mut decoder = reader.into_decoder().map_err(bad)?;
    let orientation = decoder.orientation().map_err(bad)?;
    let dynamic = DynamicImage::from_decoder(decoder).map_err(bad)?;
    let mut rgb = DynamicImage::ImageRgb8(pillow_rgb(dynamic));
    rgb.apply_orientation(orientation);
    Ok(rgb.into_rgb8())
}

/// Pillow's `convert("RGB")` for what image-rs decoded. The png crate already expands palettes and
/// low-bit grey the way Pillow's unpackers do (palette lookup; 1/2/4-bit grey scaled to 0..255).
pub(crate) fn pillow_rgb(img: DynamicImage) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let build = |px: &dyn Fn(usize) -> [u8; 3]| {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb(px(y as usize * w as usize + x as usize))
        })
    };
    match &img {
        DynamicImage::ImageRgb8(_) => img.into_rgb8(),
        DynamicImage::ImageLuma8(g) => build(&|i| [g.as_raw()[i]; 3]),
        DynamicImage::ImageLumaA8(g) => build(&|i| [g.as_raw()[2 * i]; 3]),
        DynamicImage::ImageRgba8(p) => {
            let r = p.as_raw();
            build(&|i| [r[4 * i], r[4 * i + 1], r[4 * i + 2]])
        }
        // Pillow opens 16-bit grey PNG as I;16, whose conversion to L/RGB saturates at 255.
        DynamicImage::ImageLuma16(g) => build(&|i| [g.as_raw()[i].min(255) as u8; 3]),
        // Pillow opens 16-bit LA as RGBA through the LA;16B unpacker, which keeps the high byte.
        DynamicImage::ImageLumaA16(g) => build(&|i| [(g.as_raw()[2 * i] >> 8) as u8; 3]),
        DynamicImage::ImageRgb16(p) => {
            let r = p.as_raw();
            build(&|i| {
                [
                    (r[3 * i] >> 8) as u8,
                    (r[3 * i + 1] >> 8) as u8,
                    (r[3 * i + 2] >> 8) as u8,
                ]
            })
        }
        DynamicImage::ImageRgba16(p) => {
            let r = p.as_raw();
            build(&|i| {
                [
                    (r[4 * i] >> 8) as u8,
                    (r[4 * i + 1] >> 8) as u8,
                    (r[4 * i + 2] >> 8) as u8,
                ]
            })
        }
        // Float images (TIFF) have no single Pillow equivalent; image-rs's rounding is used.
        _ => img.to_rgb8(),
    }
}

/// Drops the alpha channel (Pillow's RGBA to RGB conversion).
pub(crate) fn rgba_to_rgb(img: &image::RgbaImage) -> RgbImage {
    RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let p = img.get_pixel(x, y).0;
        image::Rgb([p[0], p[1], p[2]])
    })
}
