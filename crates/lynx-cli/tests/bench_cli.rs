//! `lynx bench infer`: the preset and config paths run, write a JSON report with every stage,
//! and bad arguments get one clear error. No timing is asserted (a benchmark, not a test).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn lynx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lynx"))
        .args(args)
        .output()
        .unwrap()
}

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
