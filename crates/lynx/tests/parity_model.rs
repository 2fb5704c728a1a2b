//! Parity of every layer of the model with the PyTorch reference (fixtures/tiny, made by
//! tools/make_fixtures.py and checked against the official release code).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use lynx::config::LynxYaml;
use lynx::model::llm::llama::{AdapterConfig, Llama};
use lynx::model::load::{load_release, lynx_config, read_llama_config};
use lynx::model::lynx::{Lynx, MediaBatch};
use lynx::model::vision::pos_embed::interpolate_pos_embed;
use lynx::model::weights::{Mount, TensorFile, WeightStore};
use serde_json::Value;

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny")
}

fn reference() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(tiny().join("reference/tensors.safetensors"), &Device::Cpu)
        .unwrap()
}

fn cases() -> Value {
    let text = std::fs::read_to_string(tiny().join("reference/cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn load(yaml: &str, sets: &[&str]) -> Lynx {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let cfg = LynxYaml::load(&tiny().join(yaml), &sets).unwrap();
    let llm = read_llama_config(&tiny().join("vicuna")).unwrap();
    let vocab = llm.vocab_size;
    let lcfg = lynx_config(&cfg, llm, vocab).unwrap();
    load_release(&cfg, &lcfg, DType::F32, &Device::Cpu)
        .unwrap()
        .model
}

fn ids_tensor(rows: &Value) -> (Tensor, Tensor) {
    let ids: Vec<Vec<u32>> = serde_json::from_value(rows.clone()).unwrap();
    let (b, t) = (ids.len(), ids[0].len());
    let flat: Vec<u32> = ids.into_iter().flatten().collect();
    (
        Tensor::from_vec(flat, (b, t), &Device::Cpu).unwrap(),
        Tensor::ones((b, t), DType::U32, &Device::Cpu).unwrap(),
    )
}

fn last_logits(model: &Lynx, bridge: &Tensor, ids: &Tensor, mask: &Tensor) -> Tensor {
    let (embeds, full_mask) = model.input_embeds(bridge, ids, mask).unwrap();
    let hidden = model
        .llm()
        .forward_hidden(&embeds, &full_mask, None)
        .unwrap();
    let t = hidden.dim(1).unwrap();
    model
        .llm()
        .logits(&hidden.narrow(1, t - 1, 1).unwrap().squeeze(1).unwrap())
        .unwrap()
}

#[test]
fn position_embedding_interpolation_matches_torch_bicubic() {
    let r = reference();
    for (grid, key) in [(4, "interp.grid4"), (5, "interp.grid5")] {
        let out = interpolate_pos_embed(&r["interp.src"], grid).unwrap();
        let d = max_diff(&out, &r[key]);
        assert!(d <= 1e-5, "{key}: max diff {d}");
    }
}

#[test]
fn vision_encoder_and_bridge_match_reference() {
    let r = reference();
    let model = load("lynx.yaml", &[]);
    let pe = model.vision_encoder().pos_embed_for_grid(4).unwrap();
    assert!(max_diff(&pe, &r["vit.pos_embed"]) <= 1e-5);
    let px = r["pixels.img_a"].unsqueeze(0).unwrap();
    let vit = model.vision_encoder().forward(&px).unwrap();
    let d = max_diff(&vit, &r["vit.out.img_a"]);
    assert!(d <= 1e-4, "vit: {d}");
    let bridge = model.bridge().forward(&vit).unwrap();
    let d = max_diff(&bridge, &r["bridge.out.img_a"]);
    assert!(d <= 1e-4, "bridge: {d}");

    let frames = r["pixels.vid7"].unsqueeze(0).unwrap();
    let media = model
        .encode_media(&MediaBatch::Videos(frames.clone()))
        .unwrap();
    let d = max_diff(&media, &r["media.vid7"]);
    assert!(d <= 1e-4, "video media: {d}");
    let d = max_diff(
        &model.bridge_tokens(&MediaBatch::Videos(frames)).unwrap(),
        &r["bridge.out.vid7"],
    );
    assert!(d <= 1e-4, "video bridge: {d}");
}

#[test]
fn pad_rows_are_the_mean_rows() {
    let r = reference();
    let model = load("lynx.yaml", &[]);
    let pad = Tensor::new(&[[400u32]], &Device::Cpu).unwrap();
    let row = model.llm().embed(&pad).unwrap().flatten_all().unwrap();
    assert!(max_diff(&row, &r["llm.embed_pad_row"]) <= 1e-6);
}

#[test]
fn language_model_logits_match_hf_llama_with_and_without_adapters() {
    let r = reference();
    let ids = r["llm.text_ids"]
        .to_dtype(DType::U32)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let mask = ids.ones_like().unwrap();
    let model = load("lynx.yaml", &[]);
    let emb = model.llm().embed(&ids).unwrap();
    let h = model.llm().forward_hidden(&emb, &mask, None).unwrap();
    let logits = model.llm().logits(&h).unwrap().squeeze(0).unwrap();
    let d = max_diff(&logits, &r["llm.text_logits"]);
    assert!(d <= 1e-3, "with adapters: {d}");

    let dir = tiny().join("vicuna");
    let cfg = read_llama_config(&dir).unwrap();
    let store = Arc::new(WeightStore::new(vec![Mount::new(
        "vicuna",
        "",
        "",
        false,
        lynx::model::load::hf_weight_files(&dir).unwrap(),
    )]));
    let plain = Llama::new(
        &cfg,
        AdapterConfig {
            use_adapter: false,
            adapter_freq: 2,
            bottleneck: None,
        },
        cfg.vocab_size,
        store.var_builder(DType::F32, &Device::Cpu),
    )
    .unwrap();
    let h = plain
        .forward_hidden(&plain.embed(&ids).unwrap(), &mask, None)
        .unwrap();
    let logits = plain.logits(&h).unwrap().squeeze(0).unwrap();
    let d = max_diff(
        &logits,
        &r["llm.text_logits_no_adapter"].narrow(1, 0, 400).unwrap(),
    );
    assert!(d <= 1e-3, "without adapters: {d}");
}

#[test]
fn prompt_logits_match_for_single_and_left_padded_batches() {
    let r = reference();
    let c = cases();
    let model = load("lynx.yaml", &[]);
    let images = ["img_a", "img_b", "img_c", "img_d"];
    let pixels: Vec<Tensor> = images
        .iter()
        .map(|k| r[&format!("pixels.{k}")].clone())
        .collect();
    let bridge = model
        .bridge_tokens(&MediaBatch::Images(Tensor::stack(&pixels, 0).unwrap()))
        .unwrap();
    for q in 1..=4usize {
        let p = &c["prompts"][format!("image:{q}")];
        let (ids, mask) = ids_tensor(&Value::Array(vec![p["input_ids"].clone()]));
        let logits = last_logits(&model, &bridge.narrow(0, q - 1, 1).unwrap(), &ids, &mask);
        let d = max_diff(&logits, &r[&format!("logits.img_q{q}")]);
        assert!(d <= 1e-3, "image question {q}: {d}");
    }
    let batch = c["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "img_batch_greedy")
        .unwrap();
    let (ids, _) = ids_tensor(&batch["input_ids"]);
    let mask: Vec<Vec<u32>> = serde_json::from_value(batch["text_attention_mask"].clone()).unwrap();
    let (b, t) = (mask.len(), mask[0].len());
    let mask = Tensor::from_vec(
        mask.into_iter().flatten().collect::<Vec<_>>(),
        (b, t),
        &Device::Cpu,
    )
    .unwrap();
    let logits = last_logits(&model, &bridge, &ids, &mask);
    let d = max_diff(&logits, &r["logits.img_batch"]);
    assert!(d <= 1e-3, "left-padded batch: {d}");
}

#[test]
fn video_prompt_logits_match() {
    let r = reference();
    let c = cases();
    let model = load("lynx_video.yaml", &[]);
    for (q, key) in [(1usize, "vid7"), (2, "vid3")] {
        let frames = r[&format!("pixels.{key}")].unsqueeze(0).unwrap();
        let bridge = model.bridge_tokens(&MediaBatch::Videos(frames)).unwrap();
        let p = &c["prompts"][format!("video:{q}")];
        let (ids, mask) = ids_tensor(&Value::Array(vec![p["input_ids"].clone()]));
        let d = max_diff(
            &last_logits(&model, &bridge, &ids, &mask),
            &r[&format!("logits.vid_q{q}")],
        );
        assert!(d <= 1e-3, "video question {q}: {d}");
    }
}

#[test]
fn prefixed_checkpoint_without_wrapper_loads_the_same_weights() {
    let r = reference();
    let a = load("lynx.yaml", &[]);
    let b = load("lynx.yaml", &["checkpoint=finetune_lynx_prefixed.pt"]);
    let px = r["pixels.img_a"].unsqueeze(0).unwrap();
    let ta = a.bridge_tokens(&MediaBatch::Images(px.clone())).unwrap();
    let tb = b.bridge_tokens(&MediaBatch::Images(px)).unwrap();
    assert_eq!(max_diff(&ta, &tb), 0.0);
}

#[test]
fn checkpoint_of_another_size_names_the_tensor() {
    let cfg = LynxYaml::load(&tiny().join("lynx.yaml"), &["adapter_freq=1".to_string()]).unwrap();
    let llm = read_llama_config(&tiny().join("vicuna")).unwrap();
    let lcfg = lynx_config(&cfg, llm, 400).unwrap();
    let err = load_release(&cfg, &lcfg, DType::F32, &Device::Cpu)
        .err()
        .expect("adapters at every layer are missing from the checkpoint");
    let msg = err.to_string();
    assert!(msg.contains("layers.1.output_adapter"), "{msg}");

    let cfg = LynxYaml::load(
        &tiny().join("lynx.yaml"),
        &["num_bridge_tokens=16".to_string()],
    )
    .unwrap();
    let llm = read_llama_config(&tiny().join("vicuna")).unwrap();
    let lcfg = lynx_config(&cfg, llm, 400).unwrap();
    let msg = load_release(&cfg, &lcfg, DType::F32, &Device::Cpu)
        .err()
        .expect("latents have 32 rows")
        .to_string();
    assert!(
        msg.contains("bridge.latents") && msg.contains("finetune_lynx.pt"),
        "{msg}"
    );
}

#[test]
fn missing_files_are_named() {
    let cfg = LynxYaml::load(&tiny().join("lynx.yaml"), &["llm_path=nowhere".to_string()]).unwrap();
    let llm = read_llama_config(&tiny().join("vicuna")).unwrap();
    let lcfg = lynx_config(&cfg, llm, 400).unwrap();
    let msg = load_release(&cfg, &lcfg, DType::F32, &Device::Cpu)
        .err()
        .expect("llm_path does not exist")
        .to_string();
    assert!(msg.contains("llm_path") && msg.contains("nowhere"), "{msg}");
    let err = TensorFile::open(&tiny().join("lynx.yaml"))
        .err()
        .expect("not a pickle");
    assert!(err.to_string().contains("lynx.yaml"), "{err}");
}
