//! Tests of JSONL datasets and the weighted mixture sampler (data/mixture.rs).

use super::*;
use crate::data::mixture::{Mixture, MixtureOptions, MixtureState, SourceState};
use std::collections::HashMap;
use std::fs;

const PROMPTS: &str =
    "vqa:\n  - \"{question}\"\n  - \"Q: {question}\"\n  - \"{question} Answer:\"\n\
caption:\n  - Describe it.\n  - Caption it.\n  - What is this?\n\
alpaca:\n  - \"{question}\"\n  - \"Instruction: {question}\"\n  - \"{question}\\nResponse:\"\n";

fn prompts() -> PromptTemplates {
    PromptTemplates::from_yaml(PROMPTS, "prompts.yaml").unwrap()
}

fn opts(seed: u64) -> MixtureOptions {
    MixtureOptions {
        seed,
        max_bad_fraction: 0.5,
        shuffle_buffer: 4,
    }
}

fn spec(path: &Path, weight: f64) -> DatasetSpec {
    DatasetSpec {
        path: path.display().to_string(),
        weight,
        name: None,
        task: None,
    }
}

/// A folder with media files and `all.jsonl` holding every record kind plus 4 bad lines.
fn make_dataset(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir.join("img")).unwrap();
    for name in ["img/a.jpg", "img/b.png", "clip.mp4"] {
        fs::write(dir.join(name), b"not decoded here").unwrap();
    }
    let lines = [
        r#"{"image": "img/a.jpg", "caption": "a cat on a mat"}"#,
        r#"{"task": "vqa", "image": "img/b.png", "question": "what animal?", "answer": ["cat", "kitten"]}"#,
        r#"{"task": "alpaca", "question": "Name a colour.", "answer": "Blue."}"#,
        r#"{"task": "chat", "image": "img/a.jpg", "conversations": [{"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A cat."}, {"from": "human", "value": "Colour?"}, {"from": "gpt", "value": "Grey."}]}"#,
        r#"{"video": "clip.mp4", "caption": "a dog runs"}"#,
        "",
        r#"{"image": "img/missing.jpg", "caption": "gone"}"#,
        r#"{"task": "vqa", "image": "img/a.jpg", "question": "what?", "answer": "  "}"#,
        r#"{"task": "ocr", "image": "img/a.jpg", "answer": "text"}"#,
        r#"{"image": "img/a.jpg", "caption": "unterminated"#,
    ];
    let p = dir.join("all.jsonl");
    fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

#[test]
fn jsonl_records_are_typed_and_bad_ones_counted_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let path = make_dataset(dir.path());
    let pr = prompts();
    let ds = JsonlDataset::open(&path, Some(&pr)).unwrap();
    assert_eq!(ds.len(), 5);
    assert_eq!(ds.stats().good, 5);
    assert_eq!(ds.stats().bad, 4);
    let reasons = ds.stats().first_bad.join("\n");
    let file = path.display().to_string();
    for (line, what) in [
        (7, "missing media file"),
        (8, "empty answer"),
        (9, "unknown task `ocr`"),
        (10, "bad JSON"),
    ] {
        assert!(
            reasons.contains(&format!("{file}:{line}: {what}")),
            "line {line}: {reasons}"
        );
    }

    // A mixture over it alone: one epoch gives each valid record once, rendered.
    let mut m = Mixture::open(&[spec(&path, 1.0)], Some(prompts()), opts(1)).unwrap();
    let samples: Vec<Sample> = (0..5).map(|_| m.next_sample().unwrap()).collect();
    let by_line = |l: u32| {
        samples
            .iter()
            .find(|s| s.origin == format!("{file}:{l}"))
            .unwrap()
    };
    let pair = by_line(1);
    assert_eq!(pair.kind, SampleKind::Pair);
    assert_eq!(
        pair.turns,
        vec![Turn {
            prompt: String::new(),
            response: "a cat on a mat".into(),
            short_answer: None,
        }]
    );
    assert_eq!(
        pair.media,
        Some(Media {
            kind: MediaKind::Image,
            source: MediaSource::Path(dir.path().join("img/a.jpg"))
        })
    );
    let vqa = by_line(2);
    assert_eq!(vqa.kind, SampleKind::Task);
    assert!(["what animal?", "Q: what animal?", "what animal? Answer:"]
        .contains(&vqa.turns[0].prompt.as_str()));
    assert!(["cat", "kitten"].contains(&vqa.turns[0].response.as_str()));
    let text = by_line(3);
    assert_eq!(text.kind, SampleKind::Text);
    assert!(text.media.is_none());
    let dialog = by_line(4);
    assert_eq!(dialog.kind, SampleKind::Dialog);
    assert_eq!(dialog.task.as_deref(), Some("chat"));
    assert_eq!(
        dialog.turns,
        vec![
            Turn {
                prompt: "What is it?".into(),
                response: "A cat.".into(),
                short_answer: None,
            },
            Turn {
                prompt: "Colour?".into(),
                response: "Grey.".into(),
                short_answer: None,
            }
        ]
    );
    let video = by_line(5);
    assert_eq!(video.media.as_ref().unwrap().kind, MediaKind::Video);
}

#[test]
fn record_rules() {
    let pr = prompts();
    let parse = |s: &str| parse_record(s, None, Some(&pr));
    assert!(parse(r#"{"task": "vqa", "image": "x", "answer": "a"}"#)
        .unwrap_err()
        .contains("needs a non-empty `question`"));
    assert!(
        parse(r#"{"task": "caption", "image": "x", "question": "q", "answer": "a"}"#)
            .unwrap_err()
            .contains("takes no question")
    );
    assert!(parse(r#"{"image": "x", "video": "y", "caption": "c"}"#)
        .unwrap_err()
        .contains("both"));
    assert!(parse(r#"{"caption": "no media"}"#)
        .unwrap_err()
        .contains("without an image"));
    assert!(
        parse(r#"{"conversations": [{"from": "gpt", "value": "hi"}]}"#)
            .unwrap_err()
            .contains("out of order")
    );
    assert!(
        parse(r#"{"conversations": [{"from": "human", "value": "hi"}]}"#)
            .unwrap_err()
            .contains("human turn")
    );
    assert!(parse(r#"{"id": 3}"#).unwrap_err().contains("none of"));
    assert!(parse_record(
        r#"{"task": "vqa", "question": "q", "answer": "a"}"#,
        None,
        None
    )
    .unwrap_err()
    .contains("prompts file"));
    // In a shard the media member decides that a task record has media.
    let r = parse_record(
        r#"{"task": "vqa", "question": "q", "answer": "a"}"#,
        Some(MediaKind::Image),
        Some(&pr),
    )
    .unwrap();
    assert_eq!(r.kind, SampleKind::Task);
}

#[test]
fn an_explained_answer_carries_its_short_answer_into_the_turn() {
    let pr = prompts();
    let parse = |s: &str| parse_record(s, None, Some(&pr));
    let task = parse(
        r#"{"task": "vqa", "image": "x", "question": "q", "answer": "It is red, as its paint.", "short_answer": " red "}"#,
    )
    .unwrap();
    assert_eq!(task.short_answer.as_deref(), Some("red"));
    let pending = Pending {
        record: task,
        media: None,
        origin: "f:1".into(),
    };
    let sample = render(pending, 0, None, Some(&pr), &mut TrainRng::new(1, 0)).unwrap();
    assert_eq!(sample.turns[0].response, "It is red, as its paint.");
    assert_eq!(sample.turns[0].short_answer.as_deref(), Some("red"));

    let dialog = parse(
        r#"{"image": "x", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "It is red.", "short_answer": "red"}, {"from": "human", "value": "q2"}, {"from": "gpt", "value": "Two."}]}"#,
    )
    .unwrap();
    let shorts: Vec<_> = dialog
        .turns
        .iter()
        .map(|t| t.short_answer.clone())
        .collect();
    assert_eq!(shorts, [Some("red".to_string()), None]);

    // Present but empty is an error that names the field.
    let err = parse(
        r#"{"task": "vqa", "image": "x", "question": "q", "answer": "a", "short_answer": " "}"#,
    )
    .unwrap_err();
    assert!(err.contains("empty `short_answer`"), "{err}");
    let err = parse(
        r#"{"image": "x", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a", "short_answer": ""}]}"#,
    )
    .unwrap_err();
    assert!(err.contains("conversations[1].short_answer"), "{err}");
}

#[test]
fn epochs_are_permutations_and_pairs_can_use_a_task() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("x.jpg"), b"x").unwrap();
    let lines: Vec<String> = (0..5)
        .map(|i| format!(r#"{{"image": "x.jpg", "caption": "c{i}"}}"#))
        .collect();
    let path = dir.path().join("pairs.jsonl");
    fs::write(&path, lines.join("\n")).unwrap();
    let mut s = spec(&path, 1.0);
    s.task = Some("caption".into());
    let mut m = Mixture::open(&[s.clone()], Some(prompts()), opts(4)).unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let mut epoch: Vec<String> = (0..5)
            .map(|_| m.next_sample().unwrap().turns[0].response.clone())
            .collect();
        seen.push(epoch.clone());
        epoch.sort();
        assert_eq!(epoch, ["c0", "c1", "c2", "c3", "c4"]);
    }
    assert!(
        seen[0] != seen[1] || seen[1] != seen[2],
        "epochs should be reshuffled"
    );
    let prompt = m.next_sample().unwrap().turns[0].prompt.clone();
    assert!(["Describe it.", "Caption it.", "What is this?"].contains(&prompt.as_str()));

    s.task = Some("vqa".into());
    let e = Mixture::open(&[s], Some(prompts()), opts(4))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("datasets[0].task"), "{e}");
}

#[test]
fn weights_set_the_sampling_proportions() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("x.jpg"), b"x").unwrap();
    fs::write(
        dir.path().join("a.jsonl"),
        r#"{"image": "x.jpg", "caption": "A"}"#,
    )
    .unwrap();
    fs::write(
        dir.path().join("b.jsonl"),
        r#"{"image": "x.jpg", "caption": "B"}"#,
    )
    .unwrap();
    let specs = [
        spec(&dir.path().join("a.jsonl"), 3.0),
        spec(&dir.path().join("b.jsonl"), 1.0),
    ];
    let mut m = Mixture::open(&specs, None, opts(9)).unwrap();
    let mut counts = HashMap::new();
    for _ in 0..4000 {
        *counts.entry(m.next_sample().unwrap().dataset).or_insert(0) += 1;
    }
    assert!((2850..3150).contains(&counts[&0]), "{counts:?}");
    let mut bad = specs.clone();
    bad[1].weight = 0.0;
    let e = Mixture::open(&bad, None, opts(9))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("datasets[1].weight"), "{e}");
}

fn shard_dataset(dir: &Path) -> String {
    let mut b = tar::Builder::new(fs::File::create(dir.join("p-0.tar")).unwrap());
    for i in 0..7 {
        for (ext, data) in [
            ("json", format!(r#"{{"caption": "shard {i}"}}"#)),
            ("jpg", format!("J{i}")),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, format!("{i:04}.{ext}"), data.as_bytes())
                .unwrap();
        }
    }
    b.finish().unwrap();
    format!("{}/p-{{0..0}}.tar", dir.display())
}

#[test]
fn mixture_is_deterministic_and_resumes_the_same_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let path = make_dataset(dir.path());
    let shards = DatasetSpec {
        path: shard_dataset(dir.path()),
        weight: 1.5,
        name: Some("pairs".into()),
        task: None,
    };
    let specs = [spec(&path, 1.0), shards];
    let run = |seed: u64, n: usize| {
        let mut m = Mixture::open(&specs, Some(prompts()), opts(seed)).unwrap();
        (0..n).map(|_| m.next_sample().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(run(5, 30), run(5, 30));
    assert_ne!(run(5, 30), run(6, 30));

    let mut a = Mixture::open(&specs, Some(prompts()), opts(5)).unwrap();
    for _ in 0..23 {
        a.next_sample().unwrap();
    }
    let saved = serde_json::to_value(a.state()).unwrap();
    let reference: Vec<Sample> = (0..40).map(|_| a.next_sample().unwrap()).collect();
    assert!(reference.iter().any(|s| s.dataset == 0) && reference.iter().any(|s| s.dataset == 1));

    let mut b = Mixture::open(&specs, Some(prompts()), opts(5)).unwrap();
    b.restore(&serde_json::from_value(saved.clone()).unwrap())
        .unwrap();
    let resumed: Vec<Sample> = (0..40).map(|_| b.next_sample().unwrap()).collect();
    assert_eq!(resumed, reference);
    assert_eq!(b.stats(), a.stats());

    // A dataset that changed is refused.
    let mut fewer = serde_json::from_value::<MixtureState>(saved).unwrap();
    if let SourceState::Jsonl { records, .. } = &mut fewer.sources[0] {
        *records += 1;
    }
    let e = b.restore(&fewer).unwrap_err().to_string();
    assert!(e.contains("changed since the checkpoint"), "{e}");
}

#[test]
fn too_many_bad_records_stop_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let path = make_dataset(dir.path());
    let mut o = opts(0);
    o.max_bad_fraction = 0.25;
    let e = Mixture::open(&[spec(&path, 1.0)], Some(prompts()), o)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("4 of 9 records are bad") && e.contains("max_bad_fraction 25.0%"),
        "{e}"
    );
    assert!(
        e.contains(&format!("{}:7: missing media file", path.display())),
        "{e}"
    );

    fs::write(dir.path().join("none.jsonl"), "{}\n").unwrap();
    let e = Mixture::open(&[spec(&dir.path().join("none.jsonl"), 1.0)], None, opts(0))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("no valid record") && e.contains("none.jsonl:1"),
        "{e}"
    );
}
