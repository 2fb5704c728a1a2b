//! Tests of webdataset shard streaming with tars made here.

use super::*;
use crate::data::datasets::SampleKind;
use std::collections::HashSet;

const PROMPTS: &str =
    "vqa:\n  - \"{question}\"\n  - \"Q: {question}\"\n  - \"{question} Answer:\"\n\
caption:\n  - Describe it.\n  - Caption it.\n  - What is this?\n";

fn prompts() -> PromptTemplates {
    PromptTemplates::from_yaml(PROMPTS, "prompts.yaml").unwrap()
}

fn add(b: &mut tar::Builder<File>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, data).unwrap();
}

const LONG: &str = "a/very/long/directory/name/that/goes/on/and/on/past/the/hundred/byte/limit/of/old/tar/headers/sample";

/// shard 0: 4 good samples (pair, vqa, text-only, long name) and 2 bad ones; shard 1: 5 pairs.
fn make_shards(dir: &Path) -> String {
    let mut b = tar::Builder::new(File::create(dir.join("mix-00.tar")).unwrap());
    add(&mut b, "s0_000.json", br#"{"caption": "a red car"}"#);
    add(&mut b, "s0_000.jpg", b"JPEG-0");
    add(
        &mut b,
        "s0_001.json",
        br#"{"task": "vqa", "question": "what color?", "answer": "red"}"#,
    );
    add(&mut b, "s0_001.png", b"PNG-1");
    add(&mut b, "s0_001.txt", b"ignored member");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    h.set_cksum();
    b.append_data(&mut h, "subdir/", std::io::empty()).unwrap();
    add(
        &mut b,
        "s0_002.json",
        br#"{"task": "vqa", "question": "2+2?", "answer": "4"}"#,
    );
    add(&mut b, "s0_003.jpg", b"orphan image");
    add(&mut b, "s0_004.json", b"{not json");
    add(&mut b, "s0_004.jpg", b"JPEG-4");
    add(
        &mut b,
        &format!("{LONG}.json"),
        br#"{"caption": "long name"}"#,
    );
    add(&mut b, &format!("{LONG}.webp"), b"WEBP");
    b.finish().unwrap();
    let mut b = tar::Builder::new(File::create(dir.join("mix-01.tar")).unwrap());
    for i in 0..5 {
        add(
            &mut b,
            &format!("s1_{i:03}.json"),
            format!(r#"{{"caption": "pair {i}"}}"#).as_bytes(),
        );
        add(
            &mut b,
            &format!("s1_{i:03}.jpg"),
            format!("JPEG-1-{i}").as_bytes(),
        );
    }
    b.finish().unwrap();
    format!("{}/mix-{{00..01}}.tar", dir.display())
}

const GOOD: usize = 9;

fn draw(s: &mut ShardStream, n: usize) -> Vec<Pending> {
    let p = prompts();
    (0..n)
        .map(|_| s.next(Some(&p), "mix", 1.0).unwrap())
        .collect()
}

fn origins(v: &[Pending]) -> Vec<String> {
    v.iter()
        .map(|p| p.origin.rsplit(':').next().unwrap().to_string())
        .collect()
}

#[test]
fn brace_patterns_expand() {
    assert_eq!(
        expand_pattern("a-{000..003}.tar").unwrap(),
        ["a-000.tar", "a-001.tar", "a-002.tar", "a-003.tar"]
    );
    assert_eq!(expand_pattern("a-{0..10}.tar").unwrap().len(), 11);
    assert_eq!(expand_pattern("a-{0..10}.tar").unwrap()[10], "a-10.tar");
    assert_eq!(
        expand_pattern("{x,y}-{1..2}").unwrap(),
        ["x-1", "x-2", "y-1", "y-2"]
    );
    assert_eq!(expand_pattern("plain.tar").unwrap(), ["plain.tar"]);
    for bad in ["a-{3..1}.tar", "a-{1..", "a-{{1..2}}", "a-{x..2}"] {
        let e = expand_pattern(bad).unwrap_err().to_string();
        assert!(e.contains(bad), "{e}");
    }
}

#[test]
fn streams_every_good_sample_once_per_epoch_without_a_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = make_shards(dir.path());
    let mut s = ShardStream::open(&pattern, 0, 7, 1).unwrap();
    let first = draw(&mut s, GOOD);
    let keys: HashSet<String> = origins(&first).into_iter().collect();
    assert_eq!(keys.len(), GOOD);
    assert!(keys.contains(LONG), "{keys:?}");
    assert_eq!(s.stats().good, GOOD as u64);
    assert_eq!(s.stats().bad, 2);
    let reasons = s.stats().first_bad.join("\n");
    assert!(
        reasons.contains("mix-00.tar:s0_003: no s0_003.json member"),
        "{reasons}"
    );
    assert!(reasons.contains("mix-00.tar:s0_004: bad JSON"), "{reasons}");

    let by_key = |k: &str| {
        first
            .iter()
            .find(|p| p.origin.ends_with(k))
            .unwrap()
            .clone()
    };
    let pair = by_key("s0_000");
    assert_eq!(pair.record.kind, SampleKind::Pair);
    assert_eq!(
        pair.media.unwrap(),
        Media {
            kind: MediaKind::Image,
            source: MediaSource::Bytes {
                name: "s0_000.jpg".into(),
                data: b"JPEG-0".to_vec()
            }
        }
    );
    let vqa = by_key("s0_001");
    assert_eq!(vqa.record.kind, SampleKind::Task);
    assert_eq!(vqa.record.question.as_deref(), Some("what color?"));
    let text = by_key("s0_002");
    assert_eq!(text.record.kind, SampleKind::Text);
    assert!(text.media.is_none());

    // The next epoch visits everything again, in another shard order.
    let second = draw(&mut s, GOOD);
    let keys2: HashSet<String> = origins(&second).into_iter().collect();
    assert_eq!(keys, keys2);
    assert_eq!(s.epoch(), 1);
}

#[test]
fn buffer_shuffles_within_its_reach() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = make_shards(dir.path());
    let plain = origins(&draw(
        &mut ShardStream::open(&pattern, 0, 7, 1).unwrap(),
        GOOD,
    ));
    let mut s = ShardStream::open(&pattern, 0, 7, 4).unwrap();
    let shuffled = origins(&draw(&mut s, GOOD));
    assert_ne!(plain, shuffled);
    // After G draws at most 3 (buffer - 1) samples come from the next epoch.
    let distinct: HashSet<&String> = shuffled.iter().collect();
    assert!(distinct.len() >= GOOD - 3, "{shuffled:?}");
}

#[test]
fn resume_reproduces_the_stream_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let pattern = make_shards(dir.path());
    let mut a = ShardStream::open(&pattern, 0, 11, 4).unwrap();
    draw(&mut a, 7);
    let saved = serde_json::to_string(&a.state()).unwrap();
    let reference = draw(&mut a, 20);

    let mut b = ShardStream::open(&pattern, 0, 11, 4).unwrap();
    let st: ShardState = serde_json::from_str(&saved).unwrap();
    b.restore(&st, Some(&prompts())).unwrap();
    assert_eq!(draw(&mut b, 20), reference);
    assert_eq!(b.stats(), a.stats());
}

#[test]
fn damaged_and_missing_shards() {
    let dir = tempfile::tempdir().unwrap();
    make_shards(dir.path());
    // A shard cut in the middle of a member, and one that is not a tar at all.
    let full = std::fs::read(dir.path().join("mix-01.tar")).unwrap();
    std::fs::write(dir.path().join("mix-02.tar"), &full[..1024 + 100]).unwrap();
    std::fs::write(dir.path().join("mix-03.tar"), vec![7u8; 4096]).unwrap();
    let pattern = format!("{}/mix-{{00..03}}.tar", dir.path().display());
    let mut s = ShardStream::open(&pattern, 0, 3, 1).unwrap();
    let got = draw(&mut s, GOOD + 1);
    let keys: HashSet<String> = origins(&got).into_iter().collect();
    assert!(keys.len() >= GOOD, "{keys:?}");
    let reasons = s.stats().first_bad.join("\n");
    assert!(
        reasons.contains("mix-03.tar@0: unreadable tar"),
        "{reasons}"
    );

    let e = ShardStream::open(
        &format!("{}/mix-{{00..09}}.tar", dir.path().display()),
        2,
        0,
        1,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("datasets[2].path") && e.contains("mix-04.tar"),
        "{e}"
    );
}

#[test]
fn too_many_bad_samples_stop_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(File::create(dir.path().join("bad.tar")).unwrap());
    add(&mut b, "ok.json", br#"{"caption": "fine"}"#);
    add(&mut b, "ok.jpg", b"J");
    for i in 0..150 {
        add(&mut b, &format!("k{i:03}.json"), br#"{"caption": ""}"#);
        add(&mut b, &format!("k{i:03}.jpg"), b"J");
    }
    b.finish().unwrap();
    let mut s = ShardStream::open(&format!("{}/bad.tar", dir.path().display()), 0, 0, 1).unwrap();
    let p = prompts();
    let mut err = None;
    for _ in 0..10 {
        if let Err(e) = s.next(Some(&p), "noisy", 0.2) {
            err = Some(e.to_string());
            break;
        }
    }
    let e = err.expect("the bad fraction must stop the stream");
    assert!(
        e.contains("dataset `noisy`")
            && e.contains("max_bad_fraction 20.0%")
            && e.contains("empty caption"),
        "{e}"
    );
}
