//! `lynx eval mme` end to end on handcrafted MME results files (fixtures/eval/mme_results,
//! expected scores worked out by hand with the official tool's rules) and bad inputs.

mod common;

use std::path::Path;

use common::{fixture, lynx, text};
use serde_json::Value;

fn close(v: &Value, x: f64) -> bool {
    (v.as_f64().unwrap() - x).abs() < 1e-9
}

#[test]
fn scores_the_handcrafted_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mme.json");
    let res = fixture("eval").join("mme_results");
    let o = lynx(&[
        "eval",
        "mme",
        "--results",
        res.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let s = &r["subtasks"];
    // existence: 5 of 8 right ("  yes" is "other", "not really" is "no"), 1 of 4 images both
    assert!(close(&s["existence"]["acc"], 62.5));
    assert!(close(&s["existence"]["acc_plus"], 25.0));
    assert!(close(&s["existence"]["score"], 87.5));
    assert_eq!(s["existence"]["other"], 1);
    // count (CRLF lines): all right
    assert!(close(&s["count"]["score"], 200.0));
    // OCR: "I think so" is "other": 1 of 2, no image with both
    assert!(close(&s["OCR"]["acc"], 50.0));
    assert!(close(&s["OCR"]["acc_plus"], 0.0));
    // code_reasoning: 2 of 4, 1 of 2 images
    assert!(close(&s["code_reasoning"]["acc"], 50.0));
    assert!(close(&s["code_reasoning"]["acc_plus"], 50.0));
    assert_eq!(s.as_object().unwrap().len(), 4);
    assert!(close(&r["perception"], 87.5 + 200.0 + 50.0));
    assert!(close(&r["cognition"], 100.0));
    assert_eq!(r["missing_subtasks"].as_array().unwrap().len(), 10);
    assert_eq!(r["ignored_files"], serde_json::json!(["notes.txt"]));
    let err = text(&o.stderr);
    assert!(
        err.contains("no scene.txt, subtask left out of the sums"),
        "{err}"
    );
    assert!(err.contains("notes.txt is not an MME subtask"), "{err}");
    let stdout = text(&o.stdout);
    assert!(stdout.contains("Perception: 337.50 / 2000"), "{stdout}");
    assert!(stdout.contains("Cognition: 100.00 / 800"), "{stdout}");
}

#[test]
fn malformed_results_name_file_and_line() {
    let o = lynx(&[
        "eval",
        "mme",
        "--results",
        fixture("eval").join("mme_bad").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("existence.txt:3: expected 4 tab-separated fields"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let o = lynx(&["eval", "mme", "--results", dir.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("no MME results files"));
}

#[test]
fn root_layout_errors_come_first_then_the_default_model_answers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("MME");
    std::fs::create_dir_all(root.join("scene/images")).unwrap();
    std::fs::create_dir_all(root.join("scene/questions_answers_YN")).unwrap();
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/images/snow.png");
    std::fs::copy(&image, root.join("scene/images/s1.png")).unwrap();
    std::fs::write(
        root.join("scene/questions_answers_YN/s1.txt"),
        "Is this a beach?\tPerhaps\n",
    )
    .unwrap();
    let results = dir.path().join("results");
    let run = || {
        lynx(&[
            "eval",
            "mme",
            "--root",
            root.to_str().unwrap(),
            "--results",
            results.to_str().unwrap(),
            "--set",
            "max_new_tokens=4",
        ])
    };
    let o = run();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("s1.txt:1: answer must be yes or no"),
        "{}",
        text(&o.stderr)
    );
    assert!(!results.exists(), "a layout error writes nothing");

    // With no --config/--model, the embedded default model answers both questions.
    std::fs::write(
        root.join("scene/questions_answers_YN/s1.txt"),
        "Is this a beach?\tNo\nIs there snow in this picture?\tYes\n",
    )
    .unwrap();
    let o = run();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("1 subtasks with 2 questions"),
        "{}",
        text(&o.stderr)
    );
    let written = std::fs::read_to_string(results.join("scene.txt")).unwrap();
    let rows: Vec<Vec<&str>> = written.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "{written}");
    for (row, truth) in rows.iter().zip(["No", "Yes"]) {
        assert_eq!(row.len(), 4, "{written}");
        assert_eq!(row[0], "s1.png");
        assert_eq!(row[2], truth);
        assert!(!row[3].trim().is_empty(), "an answer: {written}");
    }
}
