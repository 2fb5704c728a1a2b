//! `lynx eval mme --root` end to end with the tiny fixture model on a tiny MME folder
//! (fixtures/eval/mme_root: both layouts, perception and cognition): the model's answers in
//! MME's results format, the report's subtasks and counts, and resuming after a crash.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::text;
use lynx::pipeline::{Engine, EngineOptions, Media, Request};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn root() -> PathBuf {
    fixtures().join("eval/mme_root")
}

fn run(results: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lynx"))
        .args(["eval", "mme", "--root"])
        .arg(root())
        .arg("--results")
        .arg(results)
        .args(extra)
        .output()
        .unwrap()
}

/// (subtask, image file, image path, question, ground truth) in the order MME's folders give.
fn expected_items() -> Vec<(&'static str, &'static str, PathBuf, String, &'static str)> {
    let r = root();
    let q = |what: &str| format!("{what} Please answer yes or no.");
    vec![
        (
            "artwork",
            "painting.png",
            r.join("artwork/images/painting.png"),
            q("Is this artwork created by Claude Monet?"),
            "No",
        ),
        (
            "artwork",
            "painting.png",
            r.join("artwork/images/painting.png"),
            q("Is this artwork a painting of colored blocks?"),
            "Yes",
        ),
        (
            "code_reasoning",
            "snippet.jpg",
            r.join("code_reasoning/snippet.jpg"),
            q("Is the output of the code 5?"),
            "Yes",
        ),
        (
            "code_reasoning",
            "snippet.jpg",
            r.join("code_reasoning/snippet.jpg"),
            q("Is the output of the code 7?"),
            "No",
        ),
        (
            "existence",
            "img_a.jpg",
            r.join("existence/img_a.jpg"),
            q("Is there a platform in this image?"),
            "Yes",
        ),
        (
            "existence",
            "img_a.jpg",
            r.join("existence/img_a.jpg"),
            q("Is there a boat in this image?"),
            "No",
        ),
        (
            "existence",
            "img_c.png",
            r.join("existence/img_c.png"),
            q("Are there two people in this image?"),
            "Yes",
        ),
        (
            "existence",
            "img_c.png",
            r.join("existence/img_c.png"),
            q("Is there a dog in this image?"),
            "No",
        ),
    ]
}

const SETS: [&str; 2] = ["--set", "max_new_tokens=4"];

#[test]
fn answers_mme_with_the_model_scores_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let report = dir.path().join("report.json");
    let config = fixtures().join("tiny/lynx.yaml");
    let model = ["--config", config.to_str().unwrap(), SETS[0], SETS[1]];
    let mut args = model.to_vec();
    args.extend(["--out", report.to_str().unwrap()]);
    let o = run(&results, &args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("mme: 3 subtasks, 8 questions answered, 0 already in"),
        "{err}"
    );

    // every question once, in MME's results format, with the tiny model's own answer
    let engine = Engine::load(&EngineOptions {
        config: Some(config.clone()),
        sets: vec![SETS[1].to_string()],
        ..Default::default()
    })
    .unwrap();
    let gen = engine.generation_config();
    let mut read: Vec<(String, Vec<String>)> = Vec::new();
    for sub in ["artwork", "code_reasoning", "existence"] {
        let t = std::fs::read_to_string(results.join(format!("{sub}.txt"))).unwrap();
        for line in t.lines() {
            read.push((
                sub.to_string(),
                line.split('\t').map(str::to_string).collect(),
            ));
        }
    }
    let want = expected_items();
    assert_eq!(read.len(), want.len());
    for ((sub, fields), (wsub, name, path, q, gt)) in read.iter().zip(&want) {
        assert_eq!(fields.len(), 4, "{fields:?}");
        assert_eq!(
            (
                sub.as_str(),
                fields[0].as_str(),
                fields[1].as_str(),
                fields[2].as_str()
            ),
            (*wsub, *name, q.as_str(), *gt)
        );
        let req = Request {
            media: Some(Media::Image(path.clone())),
            history: Vec::new(),
            question: q.clone(),
        };
        let a = engine
            .answer(&[req], &gen, &mut engine.rng())
            .unwrap()
            .remove(0)
            .text;
        let a = a.split(['\t', '\n', '\r']).collect::<Vec<_>>().join(" ");
        assert_eq!(fields[3], a.trim(), "{q}");
    }

    // the report: the three subtasks with their question and image counts
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let s = r["subtasks"].as_object().unwrap();
    let names: Vec<&str> = s.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["artwork", "code_reasoning", "existence"]);
    for (name, questions, images) in [
        ("artwork", 2, 1),
        ("code_reasoning", 2, 1),
        ("existence", 4, 2),
    ] {
        assert_eq!(s[name]["questions"], questions, "{name}");
        assert_eq!(s[name]["images"], images, "{name}");
        let (acc, plus, score) = (
            s[name]["acc"].as_f64().unwrap(),
            s[name]["acc_plus"].as_f64().unwrap(),
            s[name]["score"].as_f64().unwrap(),
        );
        assert!((acc + plus - score).abs() < 1e-9 && (0.0..=100.0).contains(&acc));
    }
    let score = |n: &str| s[n]["score"].as_f64().unwrap();
    assert!(
        (r["perception"].as_f64().unwrap() - score("artwork") - score("existence")).abs() < 1e-9
    );
    assert!((r["cognition"].as_f64().unwrap() - score("code_reasoning")).abs() < 1e-9);
    assert_eq!(r["missing_subtasks"].as_array().unwrap().len(), 11);
    let stdout = text(&o.stdout);
    assert!(
        stdout.contains("Perception: ") && stdout.contains("  existence "),
        "{stdout}"
    );

    // run again: nothing asked, nothing changed
    let before: Vec<String> = ["artwork", "code_reasoning", "existence"]
        .iter()
        .map(|s| std::fs::read_to_string(results.join(format!("{s}.txt"))).unwrap())
        .collect();
    let o = run(&results, &model);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("0 questions answered, 8 already in"));
    // a crash in the middle of the last line: only that question is asked again, same answer
    let ex = results.join("existence.txt");
    std::fs::write(&ex, &before[2][..before[2].len() - 3]).unwrap();
    std::fs::remove_file(results.join("artwork.txt")).unwrap();
    let o = run(&results, &model);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("3 questions answered, 5 already in"),
        "{}",
        text(&o.stderr)
    );
    for (s, b) in ["artwork", "code_reasoning", "existence"]
        .iter()
        .zip(&before)
    {
        assert_eq!(
            &std::fs::read_to_string(results.join(format!("{s}.txt"))).unwrap(),
            b
        );
    }
}

#[test]
fn root_without_a_model_is_answered_by_the_default_model() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let o = run(&results, &["--set", "max_new_tokens=3"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("3 subtasks with 8 questions"),
        "{}",
        text(&o.stderr)
    );
    let lines: usize = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| {
            std::fs::read_to_string(e.unwrap().path())
                .unwrap()
                .lines()
                .count()
        })
        .sum();
    assert_eq!(lines, 8, "every question answered");
}
