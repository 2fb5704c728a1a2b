//! `lynx bench infer`: the preset and config paths run, write a JSON report with every stage,
//! and bad arguments get one clear error. `lynx bench train` on the smoke-training config:
//! every update is reported, nothing is written to the config's output_dir, a fixed batch is
//! saved and reused. No timing is asserted (a benchmark, not a test).

mod common;

use std::path::Path;
use std::process::Command;

use common::lynx;
use serde_json::Value;

fn report(args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let mut all = vec!["bench", "infer", "--iters", "2", "--warmup", "0"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", json.to_str().unwrap()]);
    let out = lynx(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("vision encoder ms/image"), "{stdout}");
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

#[test]
fn tiny_preset_with_beams_and_threads() {
    let r = report(&[
        "--preset",
        "tiny",
        "--batch",
        "2",
        "--new-tokens",
        "3",
        "--num-beams",
        "2",
        "--threads",
        "1",
    ]);
    assert_eq!(r["model"], "tiny");
    assert_eq!(r["threads"], 1);
    assert_eq!(r["vision_tokens"], 17);
    assert_eq!(r["iterations"].as_array().unwrap().len(), 2);
    assert_eq!(r["iterations"][0]["greedy"]["decode_steps"], 2);
    assert_eq!(r["beam"]["num_beams"], 2);
    assert!(r["peak_rss_mib"].as_f64().unwrap() > 0.0);
    assert_eq!(r["parameters"]["absolute_frame_pos_embed"], 160);
}

#[test]
fn fixture_config_runs_at_its_image_res() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny/lynx.yaml");
    let r = report(&["--config", config.to_str().unwrap(), "--new-tokens", "2"]);
    assert_eq!(r["options"]["image_res"], 56);
    assert_eq!(r["llm_input_tokens"], 64);
    assert!(r["beam"].is_null());
}

#[test]
fn needs_a_model_and_a_valid_resolution() {
    let out = lynx(&["bench", "infer"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--preset"));
    let out = lynx(&["bench", "infer", "--preset", "tiny", "--image-res", "60"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("image_res") && err.contains("60"), "{err}");
}

fn smoke_config() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/train-smoke/stage2.yaml")
}

/// Runs `lynx bench train` in a fresh working folder; returns the report and that folder.
fn train_report(args: &[&str]) -> (Value, tempfile::TempDir) {
    let cwd = tempfile::tempdir().unwrap();
    let json = cwd.path().join("train.json");
    let config = smoke_config();
    let mut all = vec!["bench", "train", "--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--json", json.to_str().unwrap()]);
    let out = Command::new(env!("CARGO_BIN_EXE_lynx"))
        .args(&all)
        .current_dir(cwd.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("compute ms (fwd + bwd + AdamW)"),
        "{stdout}"
    );
    let r = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    (r, cwd)
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn train_smoke_config_reports_every_update() {
    let (r, cwd) = train_report(&["--steps", "3", "--warmup", "1"]);
    assert_eq!(r["stage"], "finetune");
    // The config's output_dir (runs/train-smoke, relative to the working folder) stays unwritten.
    assert!(!cwd.path().join("runs").exists());
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4);
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["step"], i as u64 + 1);
        assert_eq!(s["warmup"], i == 0);
        assert!(num(&s["loss"]).is_finite() && num(&s["loss"]) > 0.0, "{s}");
        for key in ["step_ms", "compute_ms", "data_ms"] {
            assert!(num(&s[key]) > 0.0, "{key}: {s}");
        }
        let (tokens, supervised) = (num(&s["tokens"]), num(&s["supervised_tokens"]));
        assert!(supervised > 0.0 && supervised < tokens, "{s}");
        // batch_size 4 rows, each with 32 bridge tokens ahead of its text.
        assert!(tokens > 4.0 * 32.0, "{s}");
        assert!(num(&s["llm_seq_len"]) > 32.0, "{s}");
    }
    assert_eq!(r["step_ms"]["n"], 3);
    assert!(num(&r["step_ms"]["mean"]) > 0.0 && num(&r["step_ms"]["median"]) > 0.0);
    assert!(num(&r["tokens_per_s"]["median"]) > num(&r["supervised_tokens_per_s"]["median"]));
    assert!(num(&r["supervised_tokens_per_s"]["min"]) > 0.0);
    assert!(num(&r["trainable_parameters"]) > 0.0);
    assert!(num(&r["peak_rss_mib"]) >= num(&r["model_rss_mib"]));
    assert_eq!(r["train_config"]["batch_size"], 4);
}

#[test]
fn fixed_batch_is_saved_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let batch = dir.path().join("batch.safetensors");
    let (r, _cwd) = train_report(&[
        "--steps",
        "2",
        "--warmup",
        "0",
        "--fixed-batch",
        "--save-batch",
        batch.to_str().unwrap(),
        "--set",
        "batch_size=2",
    ]);
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["tokens"], steps[1]["tokens"]);
    assert_eq!(steps[0]["supervised_tokens"], steps[1]["supervised_tokens"]);
    assert_eq!(num(&steps[1]["data_ms"]), 0.0, "the batch is drawn once");
    let t = candle_core::safetensors::load(&batch, &candle_core::Device::Cpu).unwrap();
    let ids = &t["0.ids"];
    assert_eq!(ids.dims()[0], 2, "--set batch_size=2");
    assert_eq!(t["0.text_mask"].dims(), ids.dims());
    assert_eq!(
        t["0.targets"].dims(),
        &[steps[0]["supervised_tokens"].as_u64().unwrap() as usize, 2]
    );
    assert_eq!(t["0.labels"].dims()[0], t["0.targets"].dims()[0]);
    assert!(t.keys().all(|k| k.starts_with("0.")), "one micro-batch");
}

#[test]
fn train_refuses_zero_steps_and_missing_configs() {
    let config = smoke_config();
    let out = lynx(&[
        "bench",
        "train",
        "--config",
        config.to_str().unwrap(),
        "--steps",
        "0",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("steps"));
    let out = lynx(&["bench", "train", "--config", "no/such/train.yaml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/train.yaml"));
}
