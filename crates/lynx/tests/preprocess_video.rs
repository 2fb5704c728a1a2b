//! Video sources and the release's frame sampling, on fixtures from tools/fixtures_preprocess.py.
//! Every fixture frame is one flat colour, so a test can tell which frame it received.

use std::path::{Path, PathBuf};

use image::RgbImage;
use lynx::data::video::{load_video, sample_frame_indices, FrameSampling};
use lynx::Error;
use rand::SeedableRng;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/preprocess")
}

fn meta() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
        .unwrap()
}

fn rng() -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(5)
}

/// Which fixture frame this is: the nearest frame colour, with the distance to it.
fn frame_id(img: &RgbImage) -> (usize, u32) {
    let colors = meta()["frame_colors"].as_array().unwrap().clone();
    let c = img.get_pixel(img.width() / 2, img.height() / 2).0;
    colors
        .iter()
        .enumerate()
        .map(|(i, col)| {
            let d: u32 = (0..3)
                .map(|k| (c[k] as i64 - col[k].as_i64().unwrap()).unsigned_abs() as u32)
                .sum();
            (i, d)
        })
        .min_by_key(|&(_, d)| d)
        .unwrap()
}

fn ids(frames: &[RgbImage], tolerance: u32) -> Vec<usize> {
    frames
        .iter()
        .map(|f| {
            let (i, d) = frame_id(f);
            assert!(d <= tolerance, "frame colour off by {d}");
            i
        })
        .collect()
}

fn expect_media_error(path: &Path, needle: &str) -> String {
    let err = load_video(path, 5, FrameSampling::Deterministic, &mut rng()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Media { .. }), "{msg}");
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains(needle),
        "{msg}"
    );
    msg
}

#[test]
fn deterministic_sampling_matches_release() {
    let meta = meta();
    let cases = meta["frame_sampling"].as_array().unwrap();
    assert!(cases.len() >= 10);
    for c in cases {
        let (a, n) = (
            c["num_available"].as_u64().unwrap() as usize,
            c["num_frames"].as_u64().unwrap() as usize,
        );
        let want: Vec<usize> = c["deterministic"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(
            sample_frame_indices(a, n, FrameSampling::Deterministic, &mut rng()),
            want,
            "({a}, {n})"
        );
    }
}

#[test]
fn json_base64_list() {
    let frames = load_video(
        &fixtures().join("video.json"),
        5,
        FrameSampling::Deterministic,
        &mut rng(),
    )
    .unwrap();
    assert_eq!(frames.len(), 5);
    assert_eq!(frames[0].dimensions(), (32, 24));
    // JPEG frames: colours within a few levels.
    assert_eq!(ids(&frames, 12), vec![0, 2, 4, 6, 8]);
    let mut r = rng();
    for _ in 0..20 {
        let frames = load_video(
            &fixtures().join("video.json"),
            5,
            FrameSampling::Random,
            &mut r,
        )
        .unwrap();
        let got = ids(&frames, 12);
        assert!(got.windows(2).all(|w| w[0] < w[1]) && got[4] < 9, "{got:?}");
    }
}

#[test]
fn json_data_urls_and_short_videos() {
    let frames = load_video(
        &fixtures().join("video_dataurl.json"),
        5,
        FrameSampling::Deterministic,
        &mut rng(),
    )
    .unwrap();
    assert_eq!(ids(&frames, 0), vec![0, 0, 1, 1, 2]);
}

#[test]
fn frame_folder_in_natural_order() {
    let frames = load_video(
        &fixtures().join("frames"),
        5,
        FrameSampling::Deterministic,
        &mut rng(),
    )
    .unwrap();
    // 11 frames (frame_1.png .. frame_11.png; notes.txt is ignored): segments 3,2,2,2,2.
    assert_eq!(ids(&frames, 0), vec![0, 3, 5, 7, 9]);
    let all = load_video(
        &fixtures().join("frames"),
        11,
        FrameSampling::Deterministic,
        &mut rng(),
    )
    .unwrap();
    assert_eq!(ids(&all, 0), (0..11).collect::<Vec<_>>());
}

#[test]
fn animated_gif_and_webp() {
    // GIF frames are exact. image-webp composites opaque animation frames with a blend that
    // loses one level (libwebp, which Pillow uses, copies opaque pixels), so WebP frames may be
    // off by 1 per channel.
    for (name, tolerance) in [("anim.gif", 0), ("anim.webp", 3)] {
        let path = fixtures().join("images").join(name);
        let frames = load_video(&path, 5, FrameSampling::Deterministic, &mut rng()).unwrap();
        assert_eq!(frames[0].dimensions(), (12, 10), "{name}");
        // 7 frames: segments 2,2,1,1,1.
        assert_eq!(ids(&frames, tolerance), vec![0, 2, 4, 5, 6], "{name}");
        let all = load_video(&path, 7, FrameSampling::Deterministic, &mut rng()).unwrap();
        assert_eq!(ids(&all, tolerance), (0..7).collect::<Vec<_>>(), "{name}");
    }
}

#[test]
fn still_image_is_a_one_frame_video() {
    let path = fixtures().join("images/rgb_37x23.jpg");
    let frames = load_video(&path, 3, FrameSampling::Random, &mut rng()).unwrap();
    assert_eq!(frames.len(), 3);
    let single = lynx::data::image::load_image(&path).unwrap();
    assert!(frames.iter().all(|f| f == &single));
}

#[test]
fn bad_videos_give_clear_errors() {
    expect_media_error(&fixtures().join("video_empty.json"), "empty");
    expect_media_error(
        &fixtures().join("video_badb64.json"),
        "frame 1: invalid base64",
    );
    let msg = expect_media_error(&fixtures().join("video_badframe.json"), "frame 2");
    assert!(msg.contains("not an image"), "{msg}");
    let missing = fixtures().join("no_such_video.json");
    let err = load_video(&missing, 5, FrameSampling::Deterministic, &mut rng()).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains("no_such_video.json"),
        "{err}"
    );
    let empty_dir = std::env::temp_dir().join(format!("lynx-empty-frames-{}", std::process::id()));
    std::fs::create_dir_all(&empty_dir).unwrap();
    expect_media_error(&empty_dir, "no image frames");
    std::fs::remove_dir(&empty_dir).unwrap();
    assert!(load_video(
        &fixtures().join("video.json"),
        0,
        FrameSampling::Deterministic,
        &mut rng()
    )
    .is_err());
}

#[cfg(not(feature = "ffmpeg"))]
#[test]
fn video_files_need_the_ffmpeg_feature() {
    for name in ["video.mp4", "video.webm"] {
        expect_media_error(&fixtures().join(name), "--features ffmpeg");
    }
}

#[cfg(feature = "ffmpeg")]
#[test]
fn video_files_through_ffmpeg() {
    let have_ffmpeg = std::process::Command::new("ffprobe")
        .arg("-version")
        .output()
        .is_ok();
    for name in ["video.mp4", "video.webm"] {
        let path = fixtures().join(name);
        if !have_ffmpeg {
            // Without the program the error must say so.
            expect_media_error(&path, "not found on PATH");
            continue;
        }
        // 11 frames at 10 fps, sampled deterministically: segments 3,2,2,2,2.
        let frames = load_video(&path, 5, FrameSampling::Deterministic, &mut rng()).unwrap();
        assert_eq!(frames[0].dimensions(), (32, 24), "{name}");
        assert_eq!(ids(&frames, 30), vec![0, 3, 5, 7, 9], "{name}");
        let repeated = load_video(&path, 13, FrameSampling::Deterministic, &mut rng()).unwrap();
        let want = sample_frame_indices(11, 13, FrameSampling::Deterministic, &mut rng());
        assert_eq!(ids(&repeated, 30), want, "{name}");
    }
}
