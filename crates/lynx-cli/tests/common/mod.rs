//! Shared by the CLI tests: where the repository's fixtures are, running the `lynx` binary, and
//! reading what it printed and wrote.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `fixtures/<name>` in the repository.
pub fn fixture(name: &str) -> PathBuf {
    repo().join("fixtures").join(name)
}

/// The real OwlEval data shipped beside the repository (`../shared/data/owleval`).
pub fn owleval() -> PathBuf {
    repo().join("../shared/data/owleval")
}

/// `lynx args`, run in the test's working directory.
pub fn lynx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lynx"))
        .args(args)
        .output()
        .unwrap()
}

/// `lynx args`, run in `dir`.
pub fn lynx_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lynx"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// `lynx args` with `OPENAI_API_KEY` set to `key`, or unset.
pub fn lynx_with_key(args: &[&str], key: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lynx"));
    cmd.args(args);
    match key {
        Some(k) => cmd.env("OPENAI_API_KEY", k),
        None => cmd.env_remove("OPENAI_API_KEY"),
    };
    cmd.output().unwrap()
}

/// Printed bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A JSON file.
pub fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// A JSON-lines file, a value per line.
pub fn read_jsonl(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `lynx args` on the eval fixture's Open-VQA annotations and predictions, with
/// `OPENAI_API_KEY` set to `key`, or unset.
pub fn run_open_vqa_fixture(args: &[&str], key: Option<&str>) -> Output {
    let f = fixture("eval");
    let ann = f.join("open_vqa_ann.jsonl");
    let pred = f.join("open_vqa_pred.jsonl");
    let mut all = args.to_vec();
    all.extend(["--annotations", s(&ann), "--predictions", s(&pred)]);
    lynx_with_key(&all, key)
}

/// A report's (correct, total) for class `c`.
pub fn class_score(r: &Value, c: &str) -> (u64, u64) {
    let s = &r["classes"][c];
    (s["correct"].as_u64().unwrap(), s["total"].as_u64().unwrap())
}
