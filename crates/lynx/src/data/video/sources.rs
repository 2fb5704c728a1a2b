//! Frame sources that need no external program: JSON lists of base64 images (the release's
//! format), folders of frames, animated GIF/WebP and still images.

use std::cmp::Ordering;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use base64::Engine;
use image::{AnimationDecoder, RgbImage};
use rand::Rng;

use super::{decode_selected, sample_frame_indices, FrameSampling};
use crate::data::image::decode_image;
use crate::{Error, Result};

/// File extensions (lower case) taken as frames when reading a folder.
pub const FRAME_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "webp", "gif", "tif", "tiff"];
/// File extensions (lower case) read through ffmpeg.
pub const VIDEO_EXTENSIONS: &[&str] = &[
    "mp4", "webm", "avi", "mov", "mkv", "m4v", "mpg", "mpeg", "flv", "wmv",
];

/// Natural order of file names: digit runs compare by value ("frame_2" < "frame_10"), the rest
/// byte-wise; ties (such as "01" vs "1") fall back to plain comparison.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let (si, sj) = (i, j);
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let na = a[si..i].trim_start_matches('0');
            let nb = b[sj..j].trim_start_matches('0');
            let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if ord != Ordering::Equal {
                return ord;
            }
        } else {
            if ab[i] != bb[j] {
                return ab[i].cmp(&bb[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j)).then_with(|| a.cmp(b))
}

/// A folder of image frames, in natural order of their names; only the sampled ones are decoded.
pub(super) fn load_folder(
    dir: &Path,
    num_frames: usize,
    mode: FrameSampling,
    rng: &mut impl Rng,
) -> Result<Vec<RgbImage>> {
    let name = dir.display().to_string();
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let is_frame = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| FRAME_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if is_frame && path.is_file() {
            files.push((entry.file_name().to_string_lossy().into_owned(), path));
        }
    }
    if files.is_empty() {
        return Err(Error::media(
            name,
            format!("no image frames in this folder (extensions {FRAME_EXTENSIONS:?})"),
        ));
    }
    files.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    let ids = sample_frame_indices(files.len(), num_frames, mode, rng);
    decode_selected(&ids, |i| {
        let path = &files[i].1;
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        decode_image(&bytes, &path.display().to_string())
    })
}

/// Decodes one base64 frame, with or without a `data:...;base64,` prefix. Whitespace (line
/// breaks) is ignored and padding is optional, as with Python's lenient decoders.
fn decode_b64(text: &str) -> std::result::Result<Vec<u8>, String> {
    let body = match text.strip_prefix("data:") {
        Some(rest) => rest
            .split_once(',')
            .map(|(_, b)| b)
            .ok_or("a data URL without a comma")?,
        None => text,
    };
    let clean: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine
        .decode(clean.as_bytes())
        .map_err(|e| format!("invalid base64: {e}"))
}

/// The release's video format: a JSON file holding a list of base64-encoded images (a single
/// string is a one-frame video). Only the sampled frames are decoded.
pub(super) fn load_json(
    path: &Path,
    num_frames: usize,
    mode: FrameSampling,
    rng: &mut impl Rng,
) -> Result<Vec<RgbImage>> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::parse(&name, Some(e.line()), e.to_string()))?;
    let items: Vec<&serde_json::Value> = match &value {
        serde_json::Value::Array(a) => a.iter().collect(),
        serde_json::Value::String(_) => vec![&value],
        _ => {
            return Err(Error::media(
                name,
                "expected a JSON list of base64-encoded images",
            ))
        }
    };
    if items.is_empty() {
        return Err(Error::media(name, "the frame list is empty"));
    }
    let ids = sample_frame_indices(items.len(), num_frames, mode, rng);
    decode_selected(&ids, |i| {
        let text = items[i]
            .as_str()
            .ok_or_else(|| Error::media(&name, format!("frame {i}: expected a base64 string")))?;
        let bytes = decode_b64(text).map_err(|m| Error::media(&name, format!("frame {i}: {m}")))?;
        decode_image(&bytes, &format!("{name} frame {i}"))
    })
}

/// A still image (one frame, repeated) or an animated GIF/WebP (all frames composited as the
/// format's disposal rules say, alpha dropped like Pillow's `convert("RGB")`).
pub(super) fn load_image_file(
    path: &Path,
    num_frames: usize,
    mode: FrameSampling,
    rng: &mut impl Rng,
) -> Result<Vec<RgbImage>> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let format = image::guess_format(&bytes).ok();
    let bad =
        |e: &dyn std::fmt::Display| Error::media(&name, format!("cannot decode animation: {e}"));
    let count = match format {
        Some(image::ImageFormat::Gif) => gif_frame_count(&bytes).map_err(|e| bad(&e))?,
        Some(image::ImageFormat::WebP) => {
            let dec = image_webp::WebPDecoder::new(Cursor::new(&bytes)).map_err(|e| bad(&e))?;
            if dec.is_animated() {
                dec.num_frames() as usize
            } else {
                1
            }
        }
        _ => 1,
    };
    if count == 0 {
        return Err(Error::media(name, "the animation has no frames"));
    }
    let ids = sample_frame_indices(count, num_frames, mode, rng);
    if count == 1 {
        let frame = decode_image(&bytes, &name)?;
        return Ok(vec![frame; ids.len()]);
    }
    // Frames depend on the ones before them, so all are composited; only the sampled are kept.
    let frames: Box<dyn Iterator<Item = image::ImageResult<image::Frame>>> = match format {
        Some(image::ImageFormat::Gif) => Box::new(
            image::codecs::gif::GifDecoder::new(Cursor::new(&bytes))
                .map_err(|e| bad(&e))?
                .into_frames(),
        ),
        _ => Box::new(
            image::codecs::webp::WebPDecoder::new(Cursor::new(&bytes))
                .map_err(|e| bad(&e))?
                .into_frames(),
        ),
    };
    let mut kept: Vec<Option<RgbImage>> = vec![None; count];
    let last = ids.iter().copied().max().unwrap_or(0);
    for (i, frame) in frames.enumerate().take(last + 1) {
        let frame = frame.map_err(|e| Error::media(&name, format!("frame {i}: {e}")))?;
        if ids.binary_search(&i).is_ok() {
            let rgba = frame.into_buffer();
            kept[i] = Some(crate::data::image::rgba_to_rgb(&rgba));
        }
    }
    ids.iter()
        .map(|&i| {
            kept[i].clone().ok_or_else(|| {
                Error::media(&name, format!("frame {i}: missing from the animation"))
            })
        })
        .collect()
}

/// Counts GIF frames without decoding their pixels.
fn gif_frame_count(bytes: &[u8]) -> std::result::Result<usize, gif::DecodingError> {
    let mut opts = gif::DecodeOptions::new();
    opts.skip_frame_decoding(true);
    let mut dec = opts.read_info(Cursor::new(bytes))?;
    let mut n = 0;
    while dec.next_frame_info()?.is_some() {
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec![
            "frame_10.png",
            "frame_2.png",
            "frame_1.png",
            "a.png",
            "frame_02.png",
            "frame_1b.png",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            [
                "a.png",
                "frame_1.png",
                "frame_1b.png",
                "frame_02.png",
                "frame_2.png",
                "frame_10.png"
            ]
        );
    }

    #[test]
    fn base64_forms() {
        assert_eq!(decode_b64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_b64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_b64("aGVs\nbG8=\n").unwrap(), b"hello");
        assert_eq!(
            decode_b64("data:image/png;base64,aGVsbG8=").unwrap(),
            b"hello"
        );
        assert!(decode_b64("@@@").unwrap_err().contains("invalid base64"));
        assert!(decode_b64("data:image/png;base64").is_err());
    }
}
