//! `lynx eval open-vqa --judge rule` end to end: exact scores on crafted predictions, the real
//! Open-VQA annotations (../shared/data), input problems reported by index and file:line.

mod common;

use std::path::{Path, PathBuf};

use common::{class_score, fixture, lynx_with_key, read_json, run_open_vqa_fixture, text};
use serde_json::{json, Value};

#[test]
fn rule_judge_on_the_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rule.json");
    let md = dir.path().join("rule.md");
    let o = run_open_vqa_fixture(
        &[
            "eval",
            "open-vqa",
            "--judge",
            "rule",
            "--name",
            "fixture",
            "--out",
            out.to_str().unwrap(),
            "--markdown",
            md.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let r = read_json(&out);
    // 1 2 3 5 6 10 right; 4 (13 cats), 9 (skating), 11 (strawberries) wrong; 7 empty; 8 missing
    assert_eq!(class_score(&r, "OCR"), (2, 2));
    assert_eq!(class_score(&r, "Counting"), (1, 2));
    assert_eq!(class_score(&r, "Reasoning"), (1, 1));
    assert_eq!(class_score(&r, "Place"), (1, 1));
    assert_eq!(class_score(&r, "Color"), (0, 1));
    assert_eq!(class_score(&r, "Spatial"), (0, 1));
    assert_eq!(class_score(&r, "Action"), (0, 1));
    assert_eq!(class_score(&r, "Others"), (1, 2));
    assert!((r["overall"].as_f64().unwrap() - 600.0 / 11.0).abs() < 1e-9);
    assert_eq!(r["judged"], 9);
    assert_eq!(r["unparseable"], 0);
    assert_eq!(r["missing"], json!([8]));
    assert_eq!(r["extra"], json!([99]));
    assert_eq!(r["duplicates"], json!([1]));
    assert_eq!(r["empty"], json!([7]));
    assert_eq!(r["verdicts"].as_array().unwrap().len(), 11);
    let err = text(&o.stderr);
    assert!(
        err.contains("open_vqa_pred.jsonl:9: index 99 is not in the annotations"),
        "{err}"
    );
    assert!(
        err.contains("open_vqa_pred.jsonl:10: duplicate index 1 (line 1 is used)"),
        "{err}"
    );
    assert!(
        err.contains("open_vqa_pred.jsonl:7: empty answer for index 7"),
        "{err}"
    );
    assert!(err.contains("no prediction for index 8"), "{err}");
    let row = "| fixture | 2/2 | 1/2 | 1/1 | 1/1 | 0/1 | 0/1 | 0/1 | 1/2 | 54.55 |";
    assert!(text(&o.stdout).contains(row), "{}", text(&o.stdout));
    assert!(std::fs::read_to_string(&md).unwrap().contains(row));
}

fn gt_predictions(ann: &Path, dir: &Path, flip_yes_no: bool) -> (PathBuf, u64, u64) {
    let mut lines = String::new();
    let (mut total, mut polar) = (0, 0);
    for l in std::fs::read_to_string(ann).unwrap().lines() {
        let a: Value = serde_json::from_str(l).unwrap();
        let gt = a["answer"][0].as_str().unwrap();
        let is_polar = gt == "yes" || gt == "no";
        let text = match (flip_yes_no, gt) {
            (true, "yes") => "No, it is not.".to_string(),
            (true, "no") => "Yes, it is.".to_string(),
            _ => format!("I believe the answer is {gt}."),
        };
        total += 1;
        polar += u64::from(is_polar);
        lines += &json!({"index": a["index"], "text_output": text}).to_string();
        lines.push('\n');
    }
    let p = dir.join(format!("pred_{flip_yes_no}.jsonl"));
    std::fs::write(&p, lines).unwrap();
    (p, total, polar)
}

#[test]
fn rule_judge_on_the_real_annotations() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/open-vqa");
    let dir = tempfile::tempdir().unwrap();
    for (file, classes) in [("Open_VQA_images.jsonl", 8), ("Open_VQA_videos.jsonl", 2)] {
        let ann = data.join(file);
        for flip in [false, true] {
            let (pred, total, polar) = gt_predictions(&ann, dir.path(), flip);
            let out = dir.path().join("r.json");
            let o = lynx_with_key(
                &[
                    "eval",
                    "open-vqa",
                    "--judge",
                    "rule",
                    "--annotations",
                    ann.to_str().unwrap(),
                    "--predictions",
                    pred.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                ],
                None,
            );
            assert!(o.status.success(), "{}", text(&o.stderr));
            let r = read_json(&out);
            let cs = r["classes"].as_object().unwrap();
            assert_eq!(cs.len(), classes);
            let correct: u64 = cs.values().map(|c| c["correct"].as_u64().unwrap()).sum();
            let t: u64 = cs.values().map(|c| c["total"].as_u64().unwrap()).sum();
            assert_eq!(t, total);
            // ground truth inside a sentence is right; the opposite yes/no answer is wrong
            let expected = if flip { total - polar } else { total };
            assert_eq!(correct, expected, "{file} flip={flip}");
            assert!(polar > 0 && r["missing"] == json!([]) && r["extra"] == json!([]));
        }
    }
    // the image set is the paper's Table 1 (302 questions): 100 % when every answer is right
    let (pred, total, _) = gt_predictions(&data.join("Open_VQA_images.jsonl"), dir.path(), false);
    assert_eq!(total, 302);
    let o = lynx_with_key(
        &[
            "eval",
            "open-vqa",
            "--judge",
            "rule",
            "--annotations",
            data.join("Open_VQA_images.jsonl").to_str().unwrap(),
            "--predictions",
            pred.to_str().unwrap(),
            "--name",
            "truth",
        ],
        None,
    );
    let out = text(&o.stdout);
    assert!(
        out.contains(
            "| truth | 53/53 | 37/37 | 31/31 | 22/22 | 30/30 | 15/15 | 20/20 | 94/94 | 100.00 |"
        ),
        "{out}"
    );
}

#[test]
fn malformed_predictions_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let pred = dir.path().join("bad.jsonl");
    std::fs::write(
        &pred,
        "{\"index\": 1, \"text_output\": \"a\"}\n{\"index\": 2, \"text_output\": \n",
    )
    .unwrap();
    let ann = fixture("eval").join("open_vqa_ann.jsonl");
    let res = lynx_with_key(
        &[
            "eval",
            "open-vqa",
            "--judge",
            "rule",
            "--annotations",
            ann.to_str().unwrap(),
            "--predictions",
            pred.to_str().unwrap(),
        ],
        None,
    );
    assert!(!res.status.success());
    let err = text(&res.stderr);
    assert!(err.contains("bad.jsonl:2: invalid JSON"), "{err}");
}
