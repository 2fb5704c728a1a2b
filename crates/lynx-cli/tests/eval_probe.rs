//! `lynx eval probe` on the embedded default model and a fresh world: the report has a row per
//! attribute with accuracies in range, the place (which the default model always gets right)
//! is read from both the vision and the bridge tokens, and bad inputs are named.

mod common;

use common::{lynx, s, text};
use serde_json::Value;

#[test]
fn probes_report_every_attribute_and_read_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world");
    let o = lynx(&[
        "data",
        "synth",
        "--out",
        s(&world),
        "--seed",
        "4242",
        "--count",
        "260",
        "--test-count",
        "2",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = dir.path().join("probe.json");
    let scenes = world.join("scenes.jsonl");
    let o = lynx(&["eval", "probe", "--scenes", s(&scenes), "--out", s(&out)]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let table = text(&o.stdout);
    assert!(
        table.contains("| Attribute |") && table.contains("| place | all |"),
        "{table}"
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let features: Vec<&str> = r["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(features.len(), 6);
    let rows = r["rows"].as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["attribute"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "shape",
            "color",
            "size",
            "left/right",
            "top/bottom",
            "objects",
            "place"
        ]
    );
    for row in rows {
        let acc = row["accuracy"].as_array().unwrap();
        assert_eq!(acc.len(), features.len());
        assert!(
            acc.iter()
                .all(|a| (0.0..=1.0).contains(&a.as_f64().unwrap())),
            "{row}"
        );
        assert!(row["test"].as_u64().unwrap() > 0, "{row}");
    }
    let place = rows.iter().find(|r| r["attribute"] == "place").unwrap();
    let at = |name: &str| {
        let i = features.iter().position(|f| *f == name).unwrap();
        place["accuracy"][i].as_f64().unwrap()
    };
    assert!(place["majority"].as_f64().unwrap() < 0.4, "{place}");
    assert!(
        at("vision.cls") >= 0.9 && at("bridge.mean") >= 0.9,
        "{place}"
    );
}

#[test]
fn bad_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.jsonl");
    let o = lynx(&["eval", "probe", "--scenes", s(&missing)]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("nope.jsonl: no such file"),
        "{}",
        text(&o.stderr)
    );

    let bad = dir.path().join("scenes.jsonl");
    std::fs::write(&bad, "{\"id\": \"a\"}\n").unwrap();
    let o = lynx(&["eval", "probe", "--scenes", s(&bad)]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("scenes.jsonl") && err.contains("line 1"),
        "{err}"
    );

    let o = lynx(&[
        "eval",
        "probe",
        "--scenes",
        s(&bad),
        "--test-fraction",
        "1.5",
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("--test-fraction"),
        "{}",
        text(&o.stderr)
    );
}
