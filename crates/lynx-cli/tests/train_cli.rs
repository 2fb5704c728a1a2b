//! `lynx train` as a user runs it: the smoke example trained in one go equals the same run
//! killed with SIGKILL after a checkpoint and resumed; config errors name the key.

mod common;

use common::repo;
use std::path::Path;
use std::process::Command;

fn lynx() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lynx"))
}

fn train(out: &Path, extra: &[&str]) -> Command {
    let mut cmd = lynx();
    cmd.arg("train")
        .arg("--config")
        .arg(repo().join("examples/train-smoke/stage2.yaml"))
        .arg("--set")
        .arg(format!("output_dir={}", out.display()))
        .arg("--quiet");
    for e in extra {
        cmd.arg(e);
    }
    cmd
}

#[test]
fn killed_and_resumed_run_equals_the_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let status = train(&full, &[]).status().unwrap();
    assert!(status.success());

    let cut = dir.path().join("cut");
    let mut child = train(&cut, &[]).spawn().unwrap();
    let latest = cut.join("checkpoints/latest");
    // Kill as soon as the first checkpoint is in place (or the run ended first).
    loop {
        if latest.exists() || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    let status = train(&cut, &["--resume"]).status().unwrap();
    assert!(status.success());

    let a = std::fs::read_to_string(full.join("metrics.jsonl")).unwrap();
    let b = std::fs::read_to_string(cut.join("metrics.jsonl")).unwrap();
    assert_eq!(a.lines().count(), 30);
    assert_eq!(a, b, "losses of the resumed run differ");
    assert_eq!(
        std::fs::read(full.join("model/model.safetensors")).unwrap(),
        std::fs::read(cut.join("model/model.safetensors")).unwrap()
    );
    // The exported model answers.
    let out = lynx()
        .args(["ask", "--model"])
        .arg(full.join("model"))
        .arg("--image")
        .arg(repo().join("examples/train-smoke/data/images/000001.png"))
        .args(["--set", "max_new_tokens=4", "What color is the book?"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn config_errors_name_the_key_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = train(&dir.path().join("run"), &["--set", "max_stepz=3"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max_stepz"), "{err}");
    assert!(!dir.path().join("run/checkpoints").exists());
}
