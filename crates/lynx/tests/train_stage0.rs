//! The stage-0 modes of `lynx train` (issue 4) on the smoke world (examples/train-smoke/data):
//! the tokenizer, LLaMA pretraining, the instruction-tuned copy and the vision encoder each
//! learn (the loss falls) and write outputs that the next stage and Lynx load.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use lynx::data::tokenizer::{LynxTokenizer, TokenizerSource};
use lynx::model::load;
use lynx::model::weights::TensorFile;
use lynx::train::metrics::read_metrics;
use lynx::train::stages::{run_config_file, RunOptions};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/train-smoke/data")
}

fn opts() -> RunOptions {
    RunOptions {
        resume: false,
        device: Device::Cpu,
        progress: false,
        label: String::new(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn text_datasets() -> String {
    [
        "caption",
        "vqa_color",
        "vqa_count",
        "text_instruct",
        "dialog",
    ]
    .iter()
    .map(|f| {
        format!(
            "  - {{path: {}/train/{f}.jsonl, weight: 1.0}}\n",
            data().display()
        )
    })
    .collect()
}

/// Mean loss of the first and last `k` updates.
fn first_last(run: &Path, k: usize) -> (f64, f64) {
    let m = read_metrics(&run.join("metrics.jsonl")).unwrap();
    let mean = |xs: &[lynx::train::metrics::MetricsRecord]| {
        xs.iter().map(|r| r.loss).sum::<f64>() / xs.len() as f64
    };
    (mean(&m[..k]), mean(&m[m.len() - k..]))
}

fn tokenizer(dir: &Path) -> PathBuf {
    let cfg = format!(
        "stage: tokenizer\ndatasets:\n{}prompts: {}/train/prompts.yaml\nvocab_size: 400\noutput_dir: {}\n",
        text_datasets(),
        data().display(),
        dir.join("tok").display()
    );
    let path = write(dir, "tok.yaml", &cfg);
    let r = run_config_file(&path, &[], &opts()).unwrap();
    assert!(r.notes.contains("pieces"), "{}", r.notes);
    dir.join("tok")
}

#[test]
fn tokenizer_then_language_model_then_instruction_tuning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tok_dir = tokenizer(dir);
    let tok = LynxTokenizer::from_dir(&tok_dir, TokenizerSource::Json).unwrap();
    let ids = tok.encode("There are two red circles.").unwrap();
    assert_eq!(
        tok.decode(&ids, true).unwrap(),
        "There are two red circles."
    );

    let lm = format!(
        "stage: lm\nmodel: {{tokenizer: {}}}\nllm_config: {{hidden_size: 32, intermediate_size: 64, \
         num_hidden_layers: 2, num_attention_heads: 2, vocab_size: 0}}\ndatasets:\n{}prompts: {}/train/prompts.yaml\n\
         batch_size: 4\ngrad_accum: 2\nworkers: 2\nlr: 3.0e-3\nwarmup_steps: 2\nmax_steps: 30\nmax_seq_len: 48\n\
         save_every: 30\noutput_dir: {}\n",
        tok_dir.display(),
        text_datasets(),
        data().display(),
        dir.join("lm").display()
    );
    let path = write(dir, "lm.yaml", &lm);
    let r = run_config_file(&path, &[], &opts()).unwrap();
    let (first, last) = first_last(&dir.join("lm"), 3);
    assert!(last < first - 0.5, "LM loss {first} -> {last}");
    let model = r.output;
    // An HF-style LLaMA folder: what `llm_path` / `model.llm` read.
    let cfg = load::read_llama_config(&model).unwrap();
    assert_eq!(cfg.vocab_size, tok.vocab_size());
    let weights = load::hf_weight_files(&model).unwrap();
    let names = weights.names();
    assert!(names.contains(&"model.embed_tokens.weight".to_string()));
    assert!(names.contains(&"lm_head.weight".to_string()));
    assert!(names.iter().all(|n| !n.starts_with("LLM.")));
    assert_eq!(
        LynxTokenizer::from_dir(&model, TokenizerSource::Auto)
            .unwrap()
            .vocab_size(),
        tok.vocab_size()
    );

    let instruct = format!(
        "stage: lm_instruct\nmodel: {{llm: {}}}\ndatasets:\n  - {{path: {}/train/text_instruct.jsonl, weight: 1.0}}\n\
         prompts: {}/train/prompts.yaml\nbatch_size: 4\nlr: 3.0e-3\nwarmup_steps: 1\nmax_steps: 12\nmax_seq_len: 64\n\
         save_every: 12\noutput_dir: {}\n",
        model.display(),
        data().display(),
        data().display(),
        dir.join("vicuna").display()
    );
    let path = write(dir, "instruct.yaml", &instruct);
    let r = run_config_file(&path, &[], &opts()).unwrap();
    let (first, last) = first_last(&dir.join("vicuna"), 3);
    assert!(last < first, "instruction loss {first} -> {last}");
    let tuned = hf(&r.output);
    let base = hf(&model);
    assert_eq!(
        tuned.len(),
        base.len(),
        "same tensors as the LM it started from"
    );
    let moved = base.iter().any(|(n, t)| {
        let d = (t - &tuned[n]).unwrap().abs().unwrap().max_all().unwrap();
        d.to_scalar::<f32>().unwrap() > 0.0
    });
    assert!(moved, "instruction tuning changed the weights");
}

fn hf(dir: &Path) -> std::collections::HashMap<String, candle_core::Tensor> {
    candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap()
}

#[test]
fn vision_pretraining_learns_and_writes_release_names() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cfg = format!(
        "stage: vision\nmodel: {{}}\nvision_config: {{patch_size: 14, embed_dim: 32, depth: 1, num_heads: 2, mlp_ratio: 2.0}}\n\
         datasets:\n  - {{path: {}/scenes.jsonl, weight: 1.0}}\nprobe_scenes: {}/scenes.jsonl\nimage_res: 56\n\
         batch_size: 8\ngrad_accum: 2\nworkers: 2\nlr: 3.0e-3\nwarmup_steps: 2\nmax_steps: 40\nsave_every: 40\noutput_dir: {}\n",
        data().display(),
        data().display(),
        dir.join("vit").display()
    );
    let path = write(dir, "vit.yaml", &cfg);
    let r = run_config_file(&path, &[], &opts()).unwrap();
    let (first, last) = first_last(&dir.join("vit"), 4);
    assert!(last < first - 1.0, "vision loss {first} -> {last}");
    assert!(r.notes.contains("cls.place"), "{}", r.notes);
    let probe: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.output.join("probe.json")).unwrap())
            .unwrap();
    assert!(probe["patch.place"].as_f64().unwrap() > 0.3, "{probe}");
    let file = TensorFile::open(&r.output.join("vision_encoder.safetensors")).unwrap();
    let mut names = file.names();
    names.sort();
    for want in [
        "patch_embed.proj.weight",
        "cls_token",
        "pos_embed",
        "blocks.0.attn.qkv.weight",
    ] {
        assert!(names.contains(&want.to_string()), "{want} in {names:?}");
    }
    assert!(
        names.iter().all(|n| !n.contains("pretrain_head")),
        "heads are dropped"
    );
    // The file is a vision encoder Lynx can load (as `vision_encoder_path`).
    let vc: lynx::model::vision::eva_vit::VisionConfig = serde_json::from_str(
        &std::fs::read_to_string(r.output.join("vision_config.json")).unwrap(),
    )
    .unwrap();
    let t =
        candle_core::safetensors::load(r.output.join("vision_encoder.safetensors"), &Device::Cpu)
            .unwrap();
    let vb = candle_nn::VarBuilder::from_tensors(t, DType::F32, &Device::Cpu);
    let vit = lynx::model::vision::eva_vit::EvaVit::new(&vc, vb).unwrap();
    let px = candle_core::Tensor::zeros((1, 3, 56, 56), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(vit.forward(&px).unwrap().dims(), &[1, 17, 32]);
}

#[test]
fn vision_pretraining_learns_silhouettes_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cfg = |mask: &str| {
        format!(
            "stage: vision\nmodel: {{}}\nvision_config: {{patch_size: 14, embed_dim: 32, depth: 1, num_heads: 2, mlp_ratio: 2.0}}\n\
             datasets:\n  - {{path: {}/scenes.jsonl, weight: 1.0}}\nprobe_scenes: {}/scenes.jsonl\nimage_res: 56\n\
             batch_size: 8\ngrad_accum: 1\nworkers: 2\nlr: 1.0e-2\nwarmup_steps: 2\nmax_steps: 100\nsave_every: 100\n\
             vision_loss: {{patch: 0.0, place: 0.0, count: 0.0, global: 0.0, mask: {mask}}}\noutput_dir: {}\n",
            data().display(),
            data().display(),
            dir.join(format!("vit{mask}")).display()
        )
    };
    let path = write(dir, "vit.yaml", &cfg("2.0"));
    let r = run_config_file(&path, &[], &opts()).unwrap();
    let probe: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.output.join("probe.json")).unwrap())
            .unwrap();
    let iou = probe["patch.mask_iou"].as_f64().unwrap();
    assert!(iou > IOU_LEARNT, "silhouette IoU {iou}: {probe}");
    // The head is dropped with the others.
    let names = TensorFile::open(&r.output.join("vision_encoder.safetensors"))
        .unwrap()
        .names();
    assert!(names.iter().all(|n| !n.contains("pretrain_head")));
    // A negative weight is refused, naming the key.
    let bad = write(dir, "bad.yaml", &cfg("-1.0"));
    let err = run_config_file(&bad, &[], &opts()).unwrap_err().to_string();
    assert!(err.contains("vision_loss.mask"), "{err}");
}

/// Far above what a head that says "empty" (0) or "covered" (about 0.05, the covered share)
/// everywhere scores; 100 updates of the one-block encoder reach 0.28.
const IOU_LEARNT: f64 = 0.15;

#[test]
fn stage_configs_name_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let bad = write(
        dir,
        "bad.yaml",
        "stage: lm\nmodel: {}\ndatasets: [{path: x.jsonl, weight: 1}]\nbatch_size: 1\nlr: 1.0e-3\nmax_steps: 1\noutput_dir: o\n",
    );
    let err = run_config_file(&bad, &[], &opts()).unwrap_err().to_string();
    assert!(err.contains("model") && err.contains("llm_config"), "{err}");
    let bad = write(
        dir,
        "bad2.yaml",
        "stage: vision\nmodel: {}\ndatasets: [{path: x.jsonl, weight: 1}]\nbatch_size: 1\nlr: 1.0e-3\nmax_steps: 1\noutput_dir: o\n",
    );
    let err = run_config_file(&bad, &[], &opts()).unwrap_err().to_string();
    assert!(err.contains("vision_config"), "{err}");
    let bad = write(
        dir,
        "bad3.yaml",
        "stage: tokenizer\ndatasets: []\noutput_dir: o\n",
    );
    let err = run_config_file(&bad, &[], &opts()).unwrap_err().to_string();
    assert!(err.contains("datasets"), "{err}");
}
