//! Video reading and the release's frame sampling (dataset/utils.py `sample_frame_ids` and
//! dataset/eval_datasets.py `_get_frames` of bytedance/lynx-llm).
//!
//! Sources: a JSON file holding a list of base64-encoded images (the release's format; data-URL
//! prefixes are accepted), a folder of image frames (natural order of file names), an animated
//! GIF or WebP, a still image (a one-frame video), and mp4/webm/avi/mov/mkv through the `ffmpeg`
//! program when the crate is built with `--features ffmpeg`. Only the sampled frames are decoded
//! where the format allows it (JSON, folders, video files).

#[cfg(feature = "ffmpeg")]
mod ffmpeg;
mod sources;

use std::path::Path;

use image::RgbImage;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::{Error, Result};

pub use sources::{natural_cmp, FRAME_EXTENSIONS, VIDEO_EXTENSIONS};

/// How frames are picked, as the release's `sample_frame_ids(..., training)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameSampling {
    /// `training=False`: the first frame of each segment; short videos repeat frames evenly.
    Deterministic,
    /// `training=True`: a random frame of each segment (segment lengths shuffled); short videos
    /// repeat random frames. The release uses this mode at evaluation too.
    Random,
}

/// The release's frame sampling: `num_frames` indices into `num_available` frames, sorted.
///
/// With more frames than wanted, the frames are split into `num_frames` contiguous segments
/// whose lengths differ by at most one (the longer ones first, or in shuffled order in `Random`
/// mode), and one index is taken per segment (its first, or a uniform one). Otherwise every frame
/// is taken once and the rest are repeats (`i % n` in `Deterministic` mode, uniform in `Random`).
/// Returns an empty list when either count is zero.
pub fn sample_frame_indices(
    num_available: usize,
    num_frames: usize,
    mode: FrameSampling,
    rng: &mut impl Rng,
) -> Vec<usize> {
    let (nf, ns) = (num_available, num_frames);
    if nf == 0 || ns == 0 {
        return Vec::new();
    }
    if nf <= ns {
        let mut out: Vec<usize> = match mode {
            FrameSampling::Deterministic => (0..ns).map(|i| i % nf).collect(),
            FrameSampling::Random => (0..nf)
                .chain((nf..ns).map(|_| rng.random_range(0..nf)))
                .collect(),
        };
        out.sort_unstable();
        return out;
    }
    let stride = nf / ns;
    let longer = nf - ns * stride;
    let mut lengths: Vec<usize> = (0..ns).map(|i| stride + usize::from(i < longer)).collect();
    if mode == FrameSampling::Random {
        lengths.shuffle(rng);
    }
    let mut cursor = 0;
    lengths
        .iter()
        .map(|&len| {
            let pick = match mode {
                FrameSampling::Deterministic => cursor,
                FrameSampling::Random => rng.random_range(cursor..cursor + len),
            };
            cursor += len;
            pick
        })
        .collect()
}

/// Reads `num_frames` frames of the video at `path`, picked by [`sample_frame_indices`], as RGB
/// images converted like Pillow's `convert("RGB")`.
///
/// Errors name the path (and the frame index for a bad frame): a missing path, an empty list or
/// folder, bad base64, an undecodable frame, an unknown extension, a video file without the
/// `ffmpeg` feature or program.
pub fn load_video(
    path: &Path,
    num_frames: usize,
    mode: FrameSampling,
    rng: &mut impl Rng,
) -> Result<Vec<RgbImage>> {
    let name = path.display().to_string();
    if num_frames == 0 {
        return Err(Error::Invalid(format!(
            "{name}: num_frames must be at least 1"
        )));
    }
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return sources::load_folder(path, num_frames, mode, rng);
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "json" => sources::load_json(path, num_frames, mode, rng),
        e if VIDEO_EXTENSIONS.contains(&e) => load_video_file(path, num_frames, mode, rng),
        _ => sources::load_image_file(path, num_frames, mode, rng),
    }
}

#[cfg(feature = "ffmpeg")]
fn load_video_file(
    path: &Path,
    num_frames: usize,
    mode: FrameSampling,
    rng: &mut impl Rng,
) -> Result<Vec<RgbImage>> {
    ffmpeg::load(path, num_frames, mode, rng)
}

#[cfg(not(feature = "ffmpeg"))]
fn load_video_file(
    path: &Path,
    _: usize,
    _: FrameSampling,
    _: &mut impl Rng,
) -> Result<Vec<RgbImage>> {
    Err(Error::media(
        path.display().to_string(),
        "reading video files needs the `ffmpeg` feature: rebuild with `--features ffmpeg` \
         (and have the ffmpeg program installed), or give the frames as a JSON list of base64 \
         images or a folder of images",
    ))
}

/// Maps sampled indices (sorted, possibly repeated) to decoded frames, decoding each distinct
/// index once with `decode(index)`.
pub(crate) fn decode_selected(
    indices: &[usize],
    mut decode: impl FnMut(usize) -> Result<RgbImage>,
) -> Result<Vec<RgbImage>> {
    let mut out: Vec<RgbImage> = Vec::with_capacity(indices.len());
    for (k, &i) in indices.iter().enumerate() {
        if k > 0 && indices[k - 1] == i {
            let prev = out[k - 1].clone();
            out.push(prev);
        } else {
            out.push(decode(i)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand_chacha::ChaCha8Rng {
        rand_chacha::ChaCha8Rng::seed_from_u64(11)
    }

    #[test]
    fn deterministic_examples() {
        let d = |a, n| sample_frame_indices(a, n, FrameSampling::Deterministic, &mut rng());
        assert_eq!(d(2, 5), vec![0, 0, 0, 1, 1]);
        assert_eq!(d(7, 5), vec![0, 2, 4, 5, 6]);
        assert_eq!(d(100, 5), vec![0, 20, 40, 60, 80]);
        assert_eq!(d(0, 5), Vec::<usize>::new());
        assert_eq!(d(5, 0), Vec::<usize>::new());
    }

    #[test]
    fn random_mode_respects_segments() {
        let mut r = rng();
        for (nf, ns) in [
            (7usize, 5usize),
            (12, 5),
            (13, 5),
            (100, 5),
            (11, 4),
            (6, 5),
        ] {
            let stride = nf / ns;
            let mut seen = vec![false; nf];
            for _ in 0..400 {
                let ids = sample_frame_indices(nf, ns, FrameSampling::Random, &mut r);
                assert_eq!(ids.len(), ns);
                // Consecutive picks lie in consecutive segments of length stride or stride + 1.
                assert!(ids[0] <= stride);
                assert!(ids[ns - 1] + stride + 1 >= nf);
                for w in ids.windows(2) {
                    assert!(
                        w[0] < w[1] && w[1] - w[0] < 2 * (stride + 1),
                        "{nf} {ns}: {ids:?}"
                    );
                }
                for &i in &ids {
                    seen[i] = true;
                }
            }
            assert!(
                seen.iter().all(|&s| s),
                "{nf} {ns}: some frame never sampled"
            );
        }
    }

    #[test]
    fn random_short_videos_take_every_frame() {
        let mut r = rng();
        for (nf, ns) in [(1usize, 5usize), (3, 5), (5, 5), (2, 8)] {
            for _ in 0..50 {
                let ids = sample_frame_indices(nf, ns, FrameSampling::Random, &mut r);
                assert_eq!(ids.len(), ns);
                assert!(ids.windows(2).all(|w| w[0] <= w[1]));
                assert!((0..nf).all(|i| ids.contains(&i)));
                assert!(ids.iter().all(|&i| i < nf));
            }
        }
    }
}
