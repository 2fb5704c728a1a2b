//! Parity of `lynx::generation` with HF transformers 4.28.1 `generate(inputs_embeds=...)` on a tiny
//! random LLaMA (fixtures/generation, made by tools/fixtures_generation.py), and of every logits
//! processor / warper with HF's on random score rows.
//!
//! The LLaMA here is a test harness (plain candle ops, f32, KV cache, left padding, position ids
//! from the mask as HF's `prepare_inputs_for_generation`), standing in for the library model.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor, D};
use lynx::generation::{
    generate, generate_with, EarlyStopping, GenerationConfig, Processor, StepModel, Warper,
};
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

struct Layer {
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    gate: Tensor,
    up: Tensor,
    down: Tensor,
    ln1: Tensor,
    ln2: Tensor,
}

/// HF `LlamaForCausalLM` (4.28.1) with a KV cache, driven through `StepModel`.
struct TinyLlama {
    heads: usize,
    eps: f64,
    layers: Vec<Layer>,
    embed: Tensor,
    norm: Tensor,
    lm_head: Tensor,
    /// per layer (k, v) [B, H, S, hd] after rotary
    cache: Vec<(Tensor, Tensor)>,
    mask: Vec<Vec<u32>>,
}

impl TinyLlama {
    /// Loads the fixture model; `lm_head_rows` replaces rows of `lm_head` (the EOS / BOS boosts).
    fn load(lm_head_rows: &[(usize, Vec<f32>)]) -> Self {
        let cfg = read_json("config.json");
        let w = candle_core::safetensors::load(fixture("model.safetensors"), &Device::Cpu).unwrap();
        let get = |k: &str| w.get(k).unwrap_or_else(|| panic!("missing {k}")).clone();
        let n_layers = cfg["num_hidden_layers"].as_u64().unwrap() as usize;
        let layers = (0..n_layers)
            .map(|i| {
                let p = |s: &str| get(&format!("model.layers.{i}.{s}.weight"));
                Layer {
                    q: p("self_attn.q_proj"),
                    k: p("self_attn.k_proj"),
                    v: p("self_attn.v_proj"),
                    o: p("self_attn.o_proj"),
                    gate: p("mlp.gate_proj"),
                    up: p("mlp.up_proj"),
                    down: p("mlp.down_proj"),
                    ln1: p("input_layernorm"),
                    ln2: p("post_attention_layernorm"),
                }
            })
            .collect();
        let mut lm_head = get("lm_head.weight");
        if !lm_head_rows.is_empty() {
            let mut rows: Vec<Vec<f32>> = lm_head.to_vec2().unwrap();
            for (row, values) in lm_head_rows {
                rows[*row] = values.clone();
            }
            lm_head = Tensor::new(rows, &Device::Cpu).unwrap();
        }
        Self {
            heads: cfg["num_attention_heads"].as_u64().unwrap() as usize,
            eps: cfg["rms_norm_eps"].as_f64().unwrap(),
            layers,
            embed: get("model.embed_tokens.weight"),
            norm: get("model.norm.weight"),
            lm_head,
            cache: Vec::new(),
            mask: Vec::new(),
        }
    }

    fn rms(&self, x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
        let var = x.sqr()?.mean_keepdim(D::Minus1)?;
        let x = x.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        x.broadcast_mul(w)
    }

    fn linear(x: &Tensor, w: &Tensor) -> candle_core::Result<Tensor> {
        x.broadcast_matmul(&w.t()?)
    }

    /// cos and sin [B, 1, L, hd] for the given positions (HF's rotary tables, base 10000).
    fn rotary(positions: &[Vec<u32>], hd: usize) -> (Tensor, Tensor) {
        let half = hd / 2;
        let inv: Vec<f32> = (0..half)
            .map(|i| 1.0 / 10000f32.powf((2 * i) as f32 / hd as f32))
            .collect();
        let (b, l) = (positions.len(), positions[0].len());
        let mut cos = Vec::with_capacity(b * l * hd);
        let mut sin = Vec::with_capacity(b * l * hd);
        for row in positions {
            for &p in row {
                for j in 0..hd {
                    let f = p as f32 * inv[j % half];
                    cos.push(f.cos());
                    sin.push(f.sin());
                }
            }
        }
        let mk = |v| Tensor::from_vec(v, (b, 1, l, hd), &Device::Cpu).unwrap();
        (mk(cos), mk(sin))
    }

    fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> candle_core::Result<Tensor> {
        let hd = x.dim(3)?;
        let x1 = x.narrow(3, 0, hd / 2)?;
        let x2 = x.narrow(3, hd / 2, hd / 2)?;
        let rot = Tensor::cat(&[&x2.neg()?, &x1], 3)?;
        x.broadcast_mul(cos)? + rot.broadcast_mul(sin)?
    }

    /// Runs `x` [B, L, D] (the last L positions of `self.mask`) and returns logits at the end.
    fn forward(&mut self, x: Tensor) -> candle_core::Result<Tensor> {
        let (b, l, d) = x.dims3()?;
        let hd = d / self.heads;
        let s = self.mask[0].len();
        let past = s - l;
        let positions: Vec<Vec<u32>> = self
            .mask
            .iter()
            .map(|m| {
                let mut c = 0u32;
                let all: Vec<u32> = m
                    .iter()
                    .map(|&v| {
                        c += v;
                        if v == 0 {
                            1
                        } else {
                            c - 1
                        }
                    })
                    .collect();
                all[past..].to_vec()
            })
            .collect();
        let (cos, sin) = Self::rotary(&positions, hd);
        // allowed[b, 0, i, j]: key j is real and not in the future of query past + i
        let mut allowed = Vec::with_capacity(b * l * s);
        for m in &self.mask {
            for i in 0..l {
                for (j, &mv) in m.iter().enumerate() {
                    allowed.push(u8::from(mv == 1 && j <= past + i));
                }
            }
        }
        let allowed = Tensor::from_vec(allowed, (b, 1, l, s), &Device::Cpu)?;
        let floor = Tensor::new(f32::MIN, &Device::Cpu)?;
        let mut h = x;
        let fresh = self.cache.is_empty();
        for (i, layer) in self.layers.iter().enumerate() {
            let shape = |t: Tensor| {
                t.reshape((b, l, self.heads, hd))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let n = self.rms(&h, &layer.ln1)?;
            let q = Self::rope(&shape(Self::linear(&n, &layer.q)?)?, &cos, &sin)?;
            let mut k = Self::rope(&shape(Self::linear(&n, &layer.k)?)?, &cos, &sin)?;
            let mut v = shape(Self::linear(&n, &layer.v)?)?;
            if !fresh {
                let (pk, pv) = &self.cache[i];
                k = Tensor::cat(&[pk, &k], 2)?;
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            let att = (q.matmul(&k.t()?.contiguous()?)? / (hd as f64).sqrt())?;
            let att = allowed
                .broadcast_as(att.shape())?
                .where_cond(&att, &floor.broadcast_as(att.shape())?)?;
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let o = att.matmul(&v)?.transpose(1, 2)?.reshape((b, l, d))?;
            h = (h + Self::linear(&o, &layer.o)?)?;
            let n = self.rms(&h, &layer.ln2)?;
            let mlp = (candle_nn::ops::silu(&Self::linear(&n, &layer.gate)?)?
                * Self::linear(&n, &layer.up)?)?;
            h = (h + Self::linear(&mlp, &layer.down)?)?;
            if fresh {
                self.cache.push((k, v));
            } else {
                self.cache[i] = (k, v);
            }
        }
        let last = h.narrow(1, l - 1, 1)?.squeeze(1)?;
        Self::linear(&self.rms(&last, &self.norm)?, &self.lm_head)
    }
}

impl StepModel for TinyLlama {
    fn prefill(&mut self, inputs_embeds: &Tensor, attention_mask: &Tensor) -> lynx::Result<Tensor> {
        self.cache.clear();
        self.mask = attention_mask.to_dtype(DType::U32)?.to_vec2()?;
        Ok(self.forward(inputs_embeds.clone())?)
    }

    fn step(&mut self, tokens: &[u32]) -> lynx::Result<Tensor> {
        for m in &mut self.mask {
            m.push(1);
        }
        let ids = Tensor::new(tokens, &Device::Cpu)?;
        let x = self.embed.index_select(&ids, 0)?.unsqueeze(1)?;
        Ok(self.forward(x)?)
    }

    fn select_rows(&mut self, rows: &[usize]) -> lynx::Result<()> {
        let idx = Tensor::new(
            rows.iter().map(|&r| r as u32).collect::<Vec<_>>(),
            &Device::Cpu,
        )?;
        for (k, v) in &mut self.cache {
            *k = k.index_select(&idx, 0)?;
            *v = v.index_select(&idx, 0)?;
        }
        self.mask = rows.iter().map(|&r| self.mask[r].clone()).collect();
        Ok(())
    }
}

/// HF 4.28.1 GenerationConfig defaults for this model, overridden by the case's kwargs.
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
        let mut model = TinyLlama::load(&over);
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
    let mut model = TinyLlama::load(&[]);
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
