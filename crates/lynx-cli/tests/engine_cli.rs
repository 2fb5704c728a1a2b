//! The inference commands as a user runs them on the tiny release-layout model: `generate`
//! reproduces the official predictions, `convert` + `--model` gives the same answers,
//! `forward` prints the prompt ids and logits, and bad input gets one clear error.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{fixture, lynx_in, read_jsonl, s};
use serde_json::Value;

fn tiny() -> PathBuf {
    fixture("tiny")
}

fn lynx(args: &[&str]) -> Output {
    lynx_in(&tiny(), args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn generate_matches_the_official_predictions_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    for (yaml, reference) in [
        ("lynx.yaml", "reference/predictions_images.jsonl"),
        ("lynx_video.yaml", "reference/predictions_videos.jsonl"),
    ] {
        let out = dir.path().join(format!("{yaml}.jsonl"));
        let o = lynx(&["generate", "--config", yaml, "--output", s(&out)]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(
            read_jsonl(&out),
            read_jsonl(&tiny().join(reference)),
            "{yaml}"
        );
        // Resume after losing the last two lines (and a torn one): the same file again.
        let text = std::fs::read_to_string(&out).unwrap();
        let kept: Vec<&str> = text.lines().take(text.lines().count() - 2).collect();
        std::fs::write(&out, format!("{}\n{{\"index\": 9", kept.join("\n"))).unwrap();
        let o = lynx(&[
            "generate",
            "--config",
            yaml,
            "--output",
            s(&out),
            "--resume",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let mut got = read_jsonl(&out);
        got.sort_by_key(|v| v["index"].as_i64());
        assert_eq!(
            got,
            read_jsonl(&tiny().join(reference)),
            "{yaml} after resume"
        );
    }
}

#[test]
fn converted_model_answers_the_same_and_forward_prints_logits() {
    let dir = tempfile::tempdir().unwrap();
    let conv = dir.path().join("conv");
    let o = lynx(&["convert", "--config", "lynx.yaml", "--out", s(&conv)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = lynx(&[
        "ask",
        "--config",
        "lynx.yaml",
        "--image",
        "data/images/img_b.png",
        "What color is the car on the left?",
    ]);
    let b = lynx(&[
        "ask",
        "--model",
        s(&conv),
        "--image",
        "data/images/img_b.png",
        "What color is the car on the left?",
    ]);
    assert!(
        a.status.success() && b.status.success(),
        "{}{}",
        stderr(&a),
        stderr(&b)
    );
    assert_eq!(a.stdout, b.stdout);
    assert!(!a.stdout.is_empty());

    let o = lynx(&[
        "forward",
        "--config",
        "lynx.yaml",
        "--image",
        "data/images/img_a.jpg",
        "--question",
        "What is in the image?",
        "--top",
        "5",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let cases: Value = serde_json::from_str(
        &std::fs::read_to_string(tiny().join("reference/cases.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(v["input_ids"], cases["prompts"]["image:1"]["input_ids"]);
    let reference = candle_core::safetensors::load(
        tiny().join("reference/tensors.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let logits = reference["logits.img_q1"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let top = v["top"].as_array().unwrap();
    assert_eq!(top.len(), 5);
    for pair in top {
        let id = pair[0].as_u64().unwrap() as usize;
        let value = pair[1].as_f64().unwrap() as f32;
        assert!(
            (logits[id] - value).abs() <= 1e-3,
            "logit {id}: {value} vs {}",
            logits[id]
        );
    }
}

#[test]
fn bad_lines_are_reported_and_good_predictions_still_written() {
    let dir = tempfile::tempdir().unwrap();
    let ann = dir.path().join("ann.jsonl");
    let corrupt = dir.path().join("corrupt.jpg");
    std::fs::write(&corrupt, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let text = [
        r#"{"index": 1, "question": "What is in the image?", "image": "data/images/img_a.jpg"}"#.to_string(),
        "{broken json".to_string(),
        r#"{"index": 3, "question": "Where?", "image": "data/images/nope.jpg"}"#.to_string(),
        format!(r#"{{"index": 4, "question": "What?", "image": "{}"}}"#, corrupt.display()),
        r#"{"index": 5, "image": "data/images/img_b.png"}"#.to_string(),
        r#"{"index": 6, "question": "How many people are in the picture?", "image": "data/images/img_c.png"}"#.to_string(),
    ];
    std::fs::write(&ann, text.join("\n")).unwrap();
    let out = dir.path().join("pred.jsonl");
    let o = lynx(&[
        "generate",
        "--config",
        "lynx.yaml",
        "--input",
        s(&ann),
        "--output",
        s(&out),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("ann.jsonl:2") && err.contains("malformed JSON"),
        "{err}"
    );
    assert!(
        err.contains("ann.jsonl:3") && err.contains("nope.jpg"),
        "{err}"
    );
    assert!(
        err.contains("index 4") && err.contains("corrupt.jpg"),
        "{err}"
    );
    assert!(
        err.contains("ann.jsonl:5") && err.contains("question"),
        "{err}"
    );
    let got: Vec<i64> = read_jsonl(&out)
        .iter()
        .map(|v| v["index"].as_i64().unwrap())
        .collect();
    assert_eq!(got, vec![1, 6]);
}

#[test]
fn config_and_file_errors_name_the_key_or_file() {
    // Beyond the LLM's context the model still runs, as HF's does, with a warning.
    let o = lynx(&[
        "ask",
        "--config",
        "lynx.yaml",
        "--set",
        "max_input_tokens=200",
        "--image",
        "data/images/img_a.jpg",
        "q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning") && stderr(&o).contains("context"),
        "{}",
        stderr(&o)
    );
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "ask",
                "--config",
                "lynx.yaml",
                "--set",
                "num_beam=2",
                "--image",
                "data/images/img_a.jpg",
                "q",
            ],
            "num_beam",
        ),
        (
            &[
                "ask",
                "--config",
                "lynx.yaml",
                "--set",
                "checkpoint=missing.pt",
                "--image",
                "data/images/img_a.jpg",
                "q",
            ],
            "missing.pt",
        ),
        (
            &[
                "ask",
                "--config",
                "lynx.yaml",
                "--image",
                "data/images/none.png",
                "q",
            ],
            "none.png",
        ),
        (
            &["ask", "--config", "lynx.yaml", "--image", "lynx.yaml", "q"],
            "lynx.yaml",
        ),
        (
            &[
                "ask",
                "--config",
                "nothere.yaml",
                "--image",
                "data/images/img_a.jpg",
                "q",
            ],
            "nothere.yaml",
        ),
    ];
    for (args, needle) in cases {
        let o = lynx(args);
        assert!(!o.status.success(), "{args:?} should fail");
        let err = stderr(&o);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.matches("error:").count(), 1, "one error: {err}");
    }
}
