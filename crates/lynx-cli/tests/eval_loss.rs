//! `lynx eval loss` on the embedded default model and a fresh world: the loss of captions is
//! lower with their own images than with other scenes' images or with wrong colour words, it
//! does not depend on the batch size, task records use the world's prompts, and bad records
//! and files are named.

mod common;

use std::path::{Path, PathBuf};

use common::{lynx, read_jsonl, s, text};
use serde_json::Value;

fn write_jsonl(p: &Path, rows: &[Value]) {
    let body: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
    std::fs::write(p, body.join("\n") + "\n").unwrap();
}

/// Runs `lynx eval loss` and returns its JSON rows.
fn losses(dir: &Path, data: &[&Path], extra: &[&str]) -> Vec<Value> {
    let out = dir.join("losses.json");
    let mut args = vec!["eval", "loss", "--out", s(&out), "--data"];
    args.extend(data.iter().map(|p| s(p)));
    args.extend_from_slice(extra);
    let o = lynx(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).contains("| Dataset |"),
        "{}",
        text(&o.stdout)
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    v.as_array().unwrap().clone()
}

fn loss(row: &Value) -> f64 {
    row["loss"].as_f64().unwrap()
}

const COLORS: [&str; 8] = [
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "white",
];

/// Every colour word replaced by the next colour of the list.
fn swap_colors(caption: &str) -> String {
    caption
        .split(' ')
        .map(|w| match COLORS.iter().position(|c| *c == w) {
            Some(i) => COLORS[(i + 1) % COLORS.len()].to_string(),
            None => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn world(dir: &Path) -> PathBuf {
    let world = dir.join("world");
    let o = lynx(&[
        "data",
        "synth",
        "--out",
        s(&world),
        "--seed",
        "31337",
        "--count",
        "24",
        "--test-count",
        "2",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    world.join("train")
}

#[test]
fn caption_loss_tells_right_images_from_wrong_ones() {
    let dir = tempfile::tempdir().unwrap();
    let train = world(dir.path());
    // The detailed image captions, their images rotated by one scene, and their colours swapped.
    let right: Vec<Value> = read_jsonl(&train.join("pairs.jsonl"))
        .into_iter()
        .filter(|r| r["image"].is_string() && r["caption"].as_str().unwrap().starts_with("This"))
        .collect();
    assert!(right.len() >= 10, "{}", right.len());
    let n = right.len();
    let shuffled: Vec<Value> = (0..n)
        .map(|i| {
            let mut r = right[i].clone();
            r["image"] = right[(i + 1) % n]["image"].clone();
            r
        })
        .collect();
    let recolored: Vec<Value> = right
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r["caption"] = Value::from(swap_colors(r["caption"].as_str().unwrap()));
            r
        })
        .collect();
    let paths = ["right", "shuffled", "recolored"].map(|n| train.join(format!("{n}.jsonl")));
    write_jsonl(&paths[0], &right);
    write_jsonl(&paths[1], &shuffled);
    write_jsonl(&paths[2], &recolored);
    let rows = losses(dir.path(), &[&paths[0], &paths[1], &paths[2]], &[]);
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!(r["records"].as_u64().unwrap() as usize, n, "{r}");
        assert_eq!(r["skipped"], 0, "{r}");
        assert!(r["tokens"].as_u64().unwrap() as usize > 10 * n, "{r}");
        assert!(loss(r).is_finite() && loss(r) > 0.0, "{r}");
    }
    // The default model reads the image: the right one explains its caption best (on its own
    // world the gaps are about 0.4 nats per token for shuffled images and 0.3 for colours).
    assert!(loss(&rows[0]) + 0.1 < loss(&rows[1]), "{rows:?}");
    assert!(loss(&rows[0]) + 0.05 < loss(&rows[2]), "{rows:?}");

    // Padding is masked, so the batch size changes nothing but rounding.
    let one = losses(dir.path(), &[&paths[0]], &["--batch-size", "1"]);
    assert!(
        (loss(&one[0]) - loss(&rows[0])).abs() < 1e-3,
        "{one:?} {rows:?}"
    );
    // --limit scores the first records only.
    let few = losses(dir.path(), &[&paths[0]], &["--limit", "3"]);
    assert_eq!(few[0]["records"], 3);
}

#[test]
fn task_records_use_the_worlds_prompts_and_bad_records_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let train = world(dir.path());
    // prompts.yaml beside the data is found without --prompts.
    let rows = losses(dir.path(), &[&train.join("vqa_color.jsonl")], &[]);
    assert!(rows[0]["records"].as_u64().unwrap() > 0);
    assert!(loss(&rows[0]).is_finite());

    // A broken line and a missing image are skipped and the first is named; the rest count.
    let mut recs = read_jsonl(&train.join("pairs.jsonl"));
    recs.truncate(4);
    recs[1]["image"] = Value::from("../images/none.png");
    let mut body: Vec<String> = recs.iter().map(|r| r.to_string()).collect();
    body.insert(2, "{not json".into());
    let mixed = train.join("mixed.jsonl");
    std::fs::write(&mixed, body.join("\n") + "\n").unwrap();
    let o = lynx(&["eval", "loss", "--data", s(&mixed)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("mixed.jsonl:2"), "{err}");
    assert!(err.contains("2 record(s) skipped"), "{err}");
    assert!(text(&o.stdout).contains("| 3 | 2 |"), "{}", text(&o.stdout));

    // Nothing scorable, and a missing file: a clear error and a non-zero exit.
    let bad = train.join("bad.jsonl");
    std::fs::write(&bad, "{not json\n").unwrap();
    let o = lynx(&["eval", "loss", "--data", s(&bad)]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("bad.jsonl"), "{}", text(&o.stderr));
    let o = lynx(&["eval", "loss", "--data", s(&train.join("absent.jsonl"))]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("absent.jsonl"),
        "{}",
        text(&o.stderr)
    );
}
