//! The embedded default model (issue 4) as a new user meets it: `lynx ask` with no
//! `--config`/`--model` answers about the README's example image, `lynx generate` answers a
//! fresh world's held-out questions well enough for the rule judge, and real photographs of any
//! size (OwlEval's cases) go through without a crash.

mod common;

use std::process::Output;

use common::{lynx_in, owleval, repo, s, text};
use serde_json::Value;

fn lynx(args: &[&str]) -> Output {
    lynx_in(&repo(), args)
}

fn ask(media: &[&str], question: &str) -> String {
    let mut args = vec!["ask"];
    args.extend_from_slice(media);
    args.push(question);
    let o = lynx(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    text(&o.stdout).trim().to_lowercase()
}

#[test]
fn ask_needs_nothing_but_an_image() {
    // The README's first command (forest, with a reason asked for) and the places of
    // examples/images (see its README). No colour or shape questions here: the default model
    // answers those right about two times in three and half the time (docs/default-model.md),
    // so one answer proves nothing; the accuracy test below measures them on 24 scenes.
    let forest = ["--image", "examples/images/forest.png"];
    let explained = ask(&forest, "What kind of place is this? Explain your answer.");
    assert!(explained.contains("forest"), "{explained}");
    assert!(explained.split_whitespace().count() >= 8, "{explained}");
    assert!(ask(&forest, "Where was this picture taken?").contains("forest"));
    let snow = ["--image", "examples/images/snow.png"];
    assert!(ask(&snow, "Where is this?").contains("snow"));
    // A video (the official JSON list of base64 frames).
    let video = ask(
        &["--video", "examples/videos/shrinking-cross.json"],
        "What happens in this video?",
    );
    assert!(!video.is_empty());
}

#[test]
fn generate_answers_a_fresh_world_without_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world");
    // A seed the default model never saw.
    let o = lynx(&[
        "data",
        "synth",
        "--out",
        s(&world),
        "--seed",
        "90210",
        "--count",
        "10",
        "--test-count",
        "24",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let test = world.join("test");
    let annotations = test.join("open_vqa_images.jsonl");
    let predictions = dir.path().join("pred.jsonl");
    let image_rdir = format!("image_rdir={}", s(&test));
    let o = lynx(&[
        "generate",
        "--input",
        s(&annotations),
        "--output",
        s(&predictions),
        "--set",
        &image_rdir,
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let report = dir.path().join("report.json");
    let o = lynx(&[
        "eval",
        "open-vqa",
        "--annotations",
        s(&annotations),
        "--predictions",
        s(&predictions),
        "--judge",
        "rule",
        "--out",
        s(&report),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["missing"].as_array().unwrap().len(), 0);
    let overall = r["overall"].as_f64().unwrap();
    // Above what the model guesses without looking (docs/default-model.md has the full
    // held-out report).
    assert!(overall >= MIN_OVERALL, "overall {overall}: {r}");
}

/// The rule-judged accuracy the test above asks of the default model on 24 fresh scenes. It
/// scores 66.9% there, and 38.7% when every image is replaced by a grey one (what the language
/// side guesses alone), so passing needs the image.
const MIN_OVERALL: f64 = 50.0;

#[test]
fn real_photographs_of_any_size_do_not_crash() {
    let shared = owleval();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("answers.jsonl");
    let o = lynx(&[
        "eval",
        "owleval",
        "--questions",
        s(&shared.join("questions.jsonl")),
        "--images",
        s(&shared.join("cases")),
        "--out",
        s(&out),
        "--set",
        "max_new_tokens=6",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let answers: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 82, "every OwlEval question answered");
    assert!(answers.iter().all(|a| a["answer"].is_string()));
}
