//! Video files (mp4, webm, avi, mov, ...) through the `ffmpeg` and `ffprobe` programs (feature
//! `ffmpeg`): ffprobe counts the frames from the container's packets without decoding, ffmpeg's
//! `select` filter passes on only the sampled frames, which come back as binary PPM images.
//! The release itself only reads videos given as JSON lists of frames; this is an addition.

use std::io::ErrorKind;
use std::path::Path;
use std::process::{Command, Output};

use image::RgbImage;
use rand::Rng;

use super::{sample_frame_indices, FrameSampling};
use crate::{Error, Result};

fn run(program: &str, args: &[&str], name: &str) -> Result<Output> {
    let out = Command::new(program).args(args).output().map_err(|e| {
        let msg = if e.kind() == ErrorKind::NotFound {
            format!("the `{program}` program was not found on PATH: install ffmpeg (which provides ffmpeg and ffprobe) to read video files")
        } else {
            format!("cannot run `{program}`: {e}")
        };
        Error::media(name, msg)
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim();
        return Err(Error::media(
            name,
            format!("`{program}` failed ({}): {err}", out.status),
        ));
    }
    Ok(out)
}

/// Number of video frames, counted from the demuxed packets of the first video stream.
fn count_frames(path: &str, name: &str) -> Result<usize> {
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
            path,
        ],
        name,
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    first.trim_end_matches(',').parse().map_err(|_| {
        Error::media(
            name,
            format!("no video stream found (ffprobe said {:?})", text.trim()),
        )
    })
}

/// Splits a stream of binary PPM (P6, maxval 255) images.
fn parse_ppm_stream(mut data: &[u8], name: &str) -> Result<Vec<RgbImage>> {
    let bad = || Error::media(name, "ffmpeg returned malformed PPM frames");
    let mut frames = Vec::new();
    while !data.is_empty() {
        // Header: "P6" whitespace width whitespace height whitespace maxval single-whitespace.
        let mut fields = Vec::with_capacity(4);
        let mut pos = 0;
        while fields.len() < 4 {
            while pos < data.len() && data[pos].is_ascii_whitespace() {
                pos += 1;
            }
            let start = pos;
            while pos < data.len() && !data[pos].is_ascii_whitespace() {
                pos += 1;
            }
            if start == pos {
                return Err(bad());
            }
            fields.push(std::str::from_utf8(&data[start..pos]).map_err(|_| bad())?);
        }
        pos += 1;
        let parse = |s: &str| s.parse::<u32>().map_err(|_| bad());
        if fields[0] != "P6" || parse(fields[3])? != 255 {
            return Err(bad());
        }
        let (w, h) = (parse(fields[1])?, parse(fields[2])?);
        let len = w as usize * h as usize * 3;
        if data.len() < pos + len {
            return Err(bad());
        }
        frames.push(RgbImage::from_raw(w, h, data[pos..pos + len].to_vec()).ok_or_else(bad)?);
        data = &data[pos + len..];
    }
    Ok(frames)
}

pub(super) fn load(
    path: &Path,
    num_frames: usize,
    mode: FrameSampling,
    rng: &mut impl Rng,
) -> Result<Vec<RgbImage>> {
    let name = path.display().to_string();
    let arg = path
        .to_str()
        .ok_or_else(|| Error::media(&name, "the path is not valid UTF-8"))?;
    let count = count_frames(arg, &name)?;
    if count == 0 {
        return Err(Error::media(name, "the video has no frames"));
    }
    let ids = sample_frame_indices(count, num_frames, mode, rng);
    let mut unique = ids.clone();
    unique.dedup();
    let select: Vec<String> = unique.iter().map(|i| format!("eq(n\\,{i})")).collect();
    let filter = format!("select='{}'", select.join("+"));
    let out = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-nostdin",
            "-i",
            arg,
            "-map",
            "0:v:0",
            "-vf",
            &filter,
            "-vsync",
            "0",
            "-f",
            "image2pipe",
            "-c:v",
            "ppm",
            "-",
        ],
        &name,
    )?;
    let frames = parse_ppm_stream(&out.stdout, &name)?;
    if frames.len() != unique.len() {
        return Err(Error::media(
            name,
            format!(
                "ffmpeg decoded {} of the {} sampled frames (frame count {count} from ffprobe)",
                frames.len(),
                unique.len()
            ),
        ));
    }
    Ok(ids
        .iter()
        .map(|i| frames[unique.binary_search(i).unwrap_or(0)].clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::parse_ppm_stream;

    #[test]
    fn ppm_stream() {
        let mut data = b"P6\n2 1\n255\n".to_vec();
        data.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        data.extend_from_slice(b"P6 1 1 255 ");
        data.extend_from_slice(&[7, 8, 9]);
        let frames = parse_ppm_stream(&data, "x").unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].get_pixel(1, 0).0, [4, 5, 6]);
        assert_eq!(frames[1].get_pixel(0, 0).0, [7, 8, 9]);
        assert!(parse_ppm_stream(b"P6\n2 1\n255\n\x01", "x").is_err());
    }
}
