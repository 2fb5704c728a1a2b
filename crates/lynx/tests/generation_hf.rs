//! Parity of `lynx::generation` with HF transformers 4.28.1 `generate(inputs_embeds=...)` on a tiny
//! random LLaMA (fixtures/generation, made by tools/fixtures_generation.py), and of every logits
//! processor / warper with HF's on random score rows.
//!
//! The model is the library's LLaMA (`lynx::model::llm::llama`) driven through its decoding
//! session (KV cache, left padding, position ids from the mask as HF's
//! `prepare_inputs_for_generation`, rows selected for beams).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use lynx::generation::{
    generate, generate_with, EarlyStopping, GenerationConfig, Processor, Warper,
};
use lynx::model::llm::llama::{AdapterConfig, Llama};
use lynx::model::load::read_llama_config;
use lynx::model::session::LlmSession;
use lynx::model::weights::{Mount, TensorFile, WeightStore};
use rand::SeedableRng;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/generation")
        .join(name)
}

fn read_json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

/// The library's LLaMA on the fixture weights; `lm_head_rows` replaces rows of `lm_head`
/// (the EOS / BOS boosts of some cases).
fn load_llama(lm_head_rows: &[(usize, Vec<f32>)]) -> Llama {
    let cfg = read_llama_config(&fixture("")).unwrap();
    let mut w = candle_core::safetensors::load(fixture("model.safetensors"), &Device::Cpu).unwrap();
    if !lm_head_rows.is_empty() {
        let mut rows: Vec<Vec<f32>> = w["lm_head.weight"].to_vec2().unwrap();
        for (row, values) in lm_head_rows {
            rows[*row] = values.clone();
        }
        w.insert(
            "lm_head.weight".into(),
            Tensor::new(rows, &Device::Cpu).unwrap(),
        );
    }
    let store = Arc::new(WeightStore::new(vec![Mount::new(
        "fixture",
        "",
        "",
        true,
        TensorFile::Map(w),
    )]));
    let adapters = AdapterConfig {
        use_adapter: false,
        adapter_freq: 1,
        bottleneck: None,
    };
    Llama::new(
        &cfg,
        adapters,
        cfg.vocab_size,
        store.var_builder(DType::F32, &Device::Cpu),
    )
    .unwrap()
}

fn hf_config(params: &Value) -> GenerationConfig {
    let f = |k: &str, d: f64| params.get(k).and_then(Value::as_f64).unwrap_or(d);
    let u = |k: &str, d: usize| {
        params
            .get(k)
            .and_then(Value::as_u64)
            .map_or(d, |v| v as usize)
    };
    GenerationConfig {
        max_new_tokens: u("max_new_tokens", 20),
        min_length: u("min_length", 0),
        num_beams: u("num_beams", 1),
        length_penalty: f("length_penalty", 1.0),
        early_stopping: EarlyStopping::Heuristic,
        do_sample: params
            .get("do_sample")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        temperature: f("temperature", 1.0),
        top_k: u("top_k", 50),
        top_p: f("top_p", 1.0),
        repetition_penalty: f("repetition_penalty", 1.0),
        no_repeat_ngram_size: u("no_repeat_ngram_size", 0),
        num_return_sequences: u("num_return_sequences", 1),
        bos_token_id: 1,
        eos_token_id: Some(2),
        pad_token_id: Some(0),
        seed: 0,
    }
}

fn tensor3(v: &Value) -> Tensor {
    let rows: Vec<Vec<Vec<f32>>> = serde_json::from_value(v.clone()).unwrap();
    Tensor::new(rows, &Device::Cpu).unwrap()
}

#[test]
fn token_ids_match_hf_generate_for_every_case() {
    let cases = read_json("cases.json");
    let mut names = Vec::new();
    for case in cases["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let over: Vec<(usize, Vec<f32>)> = case
            .get("lm_head_row_overrides")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .map(|o| {
                        let row = o["row"].as_u64().unwrap() as usize;
                        (row, serde_json::from_value(o["values"].clone()).unwrap())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let llama = load_llama(&over);
        let mut model = LlmSession::new(&llama);
        let embeds = tensor3(&case["inputs_embeds"]);
        let mask: Vec<Vec<u32>> = serde_json::from_value(case["attention_mask"].clone()).unwrap();
        let mask = Tensor::new(mask, &Device::Cpu).unwrap();
        let cfg = hf_config(&case["params"]);
        let expected: Vec<Vec<u32>> = serde_json::from_value(case["expected"].clone()).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let got = generate_with(&mut model, &embeds, &mask, &cfg, &mut rng, None).unwrap();
        let tokens: Vec<Vec<u32>> = got.iter().map(|s| s.tokens.clone()).collect();
        assert_eq!(tokens, expected, "case {name}");
        if let Some(scores) = case["sequence_scores"].as_array() {
            for (s, want) in got.iter().zip(scores) {
                let (s, want) = (s.score.unwrap(), want.as_f64().unwrap());
                assert!(
                    (s - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "case {name}: sequence score {s} vs HF {want}"
                );
            }
        }
        names.push(name.to_string());
    }
    // The fixture covers what the parity must include.
    for must in [
        "greedy",
        "greedy_repetition_penalty",
        "greedy_no_repeat_ngram_min_length",
        "beam3_lp-2",
        "beam3_lp1",
        "beam3_lp0",
        "beam3_no_repeat_ngram",
        "batch_greedy",
        "batch_beam3",
        "greedy_to_max_new_tokens",
        "eos_greedy_batch",
        "eos_beam3_batch",
        "eos_greedy_min_length",
        "bos_greedy_repetition_penalty",
        "bos_beam3_no_repeat_ngram",
        "lynx_beam5",
    ] {
        assert!(names.iter().any(|n| n == must), "fixture lacks case {must}");
    }
}

#[test]
fn default_entry_point_matches_too() {
    // `generate` (seeded from the config) on the batched beam case.
    let cases = read_json("cases.json");
    let case = cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "batch_beam3")
        .unwrap();
    let llama = load_llama(&[]);
    let mut model = LlmSession::new(&llama);
    let mask: Vec<Vec<u32>> = serde_json::from_value(case["attention_mask"].clone()).unwrap();
    let got = generate(
        &mut model,
        &tensor3(&case["inputs_embeds"]),
        &Tensor::new(mask, &Device::Cpu).unwrap(),
        &hf_config(&case["params"]),
    )
    .unwrap();
    let expected: Vec<Vec<u32>> = serde_json::from_value(case["expected"].clone()).unwrap();
    assert_eq!(got, expected);
}

/// One processing step applied to (history, scores).
type StepFn = dyn Fn(&[u32], &mut [f32]);

#[test]
fn processors_and_warpers_match_hf() {
    let fx = read_json("processors.json");
    let scores: Vec<Vec<f32>> = serde_json::from_value(fx["scores"].clone()).unwrap();
    let history: Vec<Vec<u32>> = serde_json::from_value(fx["history"].clone()).unwrap();
    let eos = fx["eos"].as_u64().unwrap() as u32;
    let mut checked = HashMap::new();
    for case in fx["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let p = &case["params"];
        let keep = p.get("min_keep").and_then(Value::as_u64).unwrap_or(1) as usize;
        let mut steps: Vec<Box<StepFn>> = Vec::new();
        if name == "log_softmax" {
            steps.push(Box::new(|_, s| {
                lynx::generation::processors::log_softmax(s)
            }));
        }
        if let Some(v) = p.get("repetition_penalty").and_then(Value::as_f64) {
            let proc = Processor::RepetitionPenalty(v as f32);
            steps.push(Box::new(move |h, s| proc.apply(h, s)));
        }
        if let Some(v) = p.get("no_repeat_ngram_size").and_then(Value::as_u64) {
            let proc = Processor::NoRepeatNGram(v as usize);
            steps.push(Box::new(move |h, s| proc.apply(h, s)));
        }
        if let Some(v) = p.get("min_length").and_then(Value::as_u64) {
            let proc = Processor::MinLength {
                min_length: v as usize,
                eos,
            };
            steps.push(Box::new(move |h, s| proc.apply(h, s)));
        }
        if let Some(v) = p.get("temperature").and_then(Value::as_f64) {
            let w = Warper::Temperature(v as f32);
            steps.push(Box::new(move |_, s| w.apply(s)));
        }
        if let Some(v) = p.get("top_k").and_then(Value::as_u64) {
            let w = Warper::TopK {
                k: v as usize,
                min_keep: keep,
            };
            steps.push(Box::new(move |_, s| w.apply(s)));
        }
        if let Some(v) = p.get("top_p").and_then(Value::as_f64) {
            let w = Warper::TopP {
                p: v,
                min_keep: keep,
            };
            steps.push(Box::new(move |_, s| w.apply(s)));
        }
        assert!(!steps.is_empty(), "case {name} maps to nothing");
        let want: Vec<Vec<Option<f32>>> = serde_json::from_value(case["output"].clone()).unwrap();
        for (r, (row, hist)) in scores.iter().zip(&history).enumerate() {
            let mut s = row.clone();
            for step in &steps {
                step(hist, &mut s);
            }
            for (t, (&got, want)) in s.iter().zip(&want[r]).enumerate() {
                match want {
                    None => assert_eq!(got, f32::NEG_INFINITY, "{name} row {r} token {t}"),
                    Some(w) => assert!(
                        (got - w).abs() <= 1e-5 * w.abs().max(1.0),
                        "{name} row {r} token {t}: {got} vs HF {w}"
                    ),
                }
            }
        }
        checked.insert(name.to_string(), ());
    }
    assert!(
        checked.len() >= 15,
        "only {} processor cases",
        checked.len()
    );
}
