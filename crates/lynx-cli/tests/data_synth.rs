//! End-to-end: `lynx data synth` on a small count writes the documented layout and the same
//! bytes for the same seed.

use std::path::Path;
use std::process::Command;

fn synth(out: &Path, seed: &str) -> std::process::Output {
    let _ = std::fs::remove_dir_all(out);
    Command::new(env!("CARGO_BIN_EXE_lynx"))
        .args(["data", "synth", "--out"])
        .arg(out)
        .args([
            "--seed",
            seed,
            "--count",
            "10",
            "--test-count",
            "10",
            "--video-fraction",
            "0.3",
        ])
        .args(["--size", "96", "--text-count", "5", "--quiet"])
        .output()
        .unwrap()
}

#[test]
fn data_synth_writes_the_world() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let (a, b) = (tmp.join("cli-synth-a"), tmp.join("cli-synth-b"));
    let out = synth(&a, "5");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("wrote 7 images, 3 videos"), "{log}");
    for f in [
        "scenes.jsonl",
        "summary.json",
        "images/000000.png",
        "videos/000003.json",
        "train/prompts.yaml",
        "train/pairs.jsonl",
        "train/text_instruct.jsonl",
        "train/text_reading.jsonl",
        "train/dialog.jsonl",
        "test/open_vqa_images.jsonl",
        "test/open_vqa_images_unseen.jsonl",
        "test/open_vqa_videos.jsonl",
        "test/open_vqa_videos_unseen.jsonl",
        "test/heldout_phrasings.yaml",
    ] {
        assert!(a.join(f).is_file(), "missing {f}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["images"], 7);
    assert_eq!(summary["videos"], 3);
    assert_eq!(summary["records"]["text_instruct.jsonl"], 5);
    // As many reading records (a described scene and a question) as text instructions.
    assert_eq!(summary["records"]["text_reading.jsonl"], 5);
    assert_eq!(summary["records"]["text_reading_control.jsonl"], 5);
    let stage2 = std::fs::read_to_string(a.join("train/stage2.yaml")).unwrap();
    assert!(stage2.contains("text_reading.jsonl"), "{stage2}");
    assert!(!stage2.contains("control"), "{stage2}");
    let scenes = std::fs::read_to_string(a.join("scenes.jsonl")).unwrap();
    assert_eq!(scenes.lines().count(), 10);
    let img = std::fs::read(a.join("images/000000.png")).unwrap();
    assert_eq!(&img[1..4], b"PNG");

    assert!(synth(&b, "5").status.success());
    assert_eq!(
        scenes,
        std::fs::read_to_string(b.join("scenes.jsonl")).unwrap()
    );

    let bad = Command::new(env!("CARGO_BIN_EXE_lynx"))
        .args(["data", "synth", "--out"])
        .arg(tmp.join("cli-synth-bad"))
        .args(["--video-fraction", "1.5", "--quiet"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("video_fraction"));
    for d in [a, b] {
        std::fs::remove_dir_all(d).unwrap();
    }
}
