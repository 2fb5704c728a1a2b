//! End-to-end parity of the engine with the release: every recorded generation case (greedy,
//! beam search, repetition penalty; single questions, left-padded batches; images and videos)
//! must give the reference's token ids and texts exactly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lynx::generation::GenerationConfig;
use lynx::pipeline::{resolve_media, Engine, EngineOptions, Media, Request};
use serde_json::Value;

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny")
}

fn engine(yaml: &str) -> Engine {
    Engine::load(&EngineOptions {
        config: Some(tiny().join(yaml)),
        ..Default::default()
    })
    .unwrap()
}

fn requests(engine: &Engine, ann: &str) -> HashMap<i64, Request> {
    let text = std::fs::read_to_string(tiny().join(ann)).unwrap();
    let key = engine.yaml.vision_prompt_dict.clone();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let path = resolve_media(&engine.yaml, v[&key].as_str().unwrap());
            let path = if path.exists() {
                path
            } else {
                tiny().join(path)
            };
            let media = if key == "video" {
                Media::Video(path)
            } else {
                Media::Image(path)
            };
            (
                v["index"].as_i64().unwrap(),
                Request {
                    media: Some(media),
                    history: Vec::new(),
                    question: v["question"].as_str().unwrap().to_string(),
                },
            )
        })
        .collect()
}

fn gen_config(engine: &Engine, kwargs: &Value) -> GenerationConfig {
    let mut g = engine.generation_config();
    g.do_sample = kwargs["do_sample"].as_bool().unwrap();
    g.num_beams = kwargs["num_beams"].as_u64().unwrap() as usize;
    g.max_new_tokens = kwargs["max_new_tokens"].as_u64().unwrap() as usize;
    g.min_length = kwargs["min_length"].as_u64().unwrap() as usize;
    g.length_penalty = kwargs["length_penalty"].as_f64().unwrap();
    g.repetition_penalty = kwargs["repetition_penalty"].as_f64().unwrap();
    g.no_repeat_ngram_size = kwargs["no_repeat_ngram_size"].as_u64().unwrap() as usize;
    g
}

#[test]
fn every_reference_generation_case_matches() {
    let cases: Value = serde_json::from_str(
        &std::fs::read_to_string(tiny().join("reference/cases.json")).unwrap(),
    )
    .unwrap();
    let images = engine("lynx.yaml");
    let videos = engine("lynx_video.yaml");
    let image_reqs = requests(&images, "data/ann_images.jsonl");
    let video_reqs = requests(&videos, "data/ann_videos.jsonl");
    let mut checked = 0;
    for case in cases["cases"].as_array().unwrap() {
        let (engine, reqs) = if case["media"] == "video" {
            (&videos, &video_reqs)
        } else {
            (&images, &image_reqs)
        };
        let batch: Vec<Request> = case["indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| reqs[&i.as_i64().unwrap()].clone())
            .collect();
        let gen = gen_config(engine, &case["generate_kwargs"]);
        let answers = engine.answer(&batch, &gen, &mut engine.rng()).unwrap();
        let want_ids: Vec<Vec<u32>> = serde_json::from_value(case["new_tokens"].clone()).unwrap();
        let want_texts: Vec<String> = serde_json::from_value(case["texts"].clone()).unwrap();
        let ids: Vec<Vec<u32>> = answers.iter().map(|a| a.token_ids.clone()).collect();
        let texts: Vec<String> = answers.iter().map(|a| a.text.clone()).collect();
        assert_eq!(ids, want_ids, "case {}", case["name"]);
        assert_eq!(texts, want_texts, "case {}", case["name"]);
        checked += 1;
    }
    assert_eq!(checked, 21);
}

#[test]
fn batched_equals_one_by_one_for_beam_search() {
    let engine = engine("lynx.yaml");
    let reqs = requests(&engine, "data/ann_images.jsonl");
    let mut keys: Vec<i64> = reqs.keys().copied().collect();
    keys.sort();
    let batch: Vec<Request> = keys.iter().map(|k| reqs[k].clone()).collect();
    let gen = engine.generation_config();
    let together = engine.answer(&batch, &gen, &mut engine.rng()).unwrap();
    for (i, r) in batch.iter().enumerate() {
        let alone = engine
            .answer(std::slice::from_ref(r), &gen, &mut engine.rng())
            .unwrap();
        assert_eq!(alone[0], together[i], "row {i}");
    }
}
