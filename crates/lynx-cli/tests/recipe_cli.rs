//! `lynx recipe default` end to end at a hundredth of the default model's budget (issue 4):
//! every stage runs (world, tokenizer, LLaMA, Vicuna, ViT, Lynx stages 1 and 2, export,
//! report), the result loads with `--model`, a second run from nothing (from the first run's
//! `plan.yaml` via `--plan`) gives the same bytes, `--resume` skips finished stages, an existing
//! run is not overwritten, a bad plan file is refused before any work, the default plan's shape
//! and word phases run and configure stage 2, and a plan with the release's bridge trains too.

mod common;

use std::path::Path;
use std::process::Output;

use common::{lynx_in, repo, text};
use lynx::model::bridge::resampler::WordTokenPlace;
use lynx::recipe::RecipePlan;
use lynx::train::config::TrainPart;
use serde_json::Value;

fn lynx(args: &[&str]) -> Output {
    lynx_in(&repo(), args)
}

fn recipe(out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "recipe",
        "default",
        "--out",
        out.to_str().unwrap(),
        "--steps-scale",
        "0.01",
        "--samples",
        "1",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    lynx(&args)
}

#[test]
fn recipe_builds_a_model_from_nothing_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let o = recipe(&a, &[]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    for stage in ["lm", "vicuna", "vision", "stage1", "stage2"] {
        assert!(a.join(stage).join("model").is_dir(), "{stage}");
        // Every stage can be rerun by hand with `lynx train --config`.
        assert!(
            a.join("configs").join(format!("{stage}.yaml")).is_file(),
            "{stage}"
        );
    }
    let model = a.join("model");
    for f in [
        "config.json",
        "lynx.yaml",
        "model.safetensors",
        "tokenizer.json",
    ] {
        assert!(model.join(f).is_file(), "{f}");
    }

    // The report: Table 1 and Table 2, seen and held-out phrasings, over every annotation.
    let md = std::fs::read_to_string(a.join("report.md")).unwrap();
    assert!(md.contains("Open-VQA images (paper Table 1)"), "{md}");
    assert!(md.contains("Open-VQA videos (paper Table 2)"), "{md}");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("report.json")).unwrap()).unwrap();
    let tables = r["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 4);
    for t in tables {
        let total: u64 = t["classes"]
            .as_object()
            .unwrap()
            .values()
            .map(|c| c["total"].as_u64().unwrap())
            .sum();
        assert!(total > 0, "{t}");
    }

    // The model answers with --model.
    let o = lynx(&[
        "ask",
        "--model",
        model.to_str().unwrap(),
        "--image",
        "examples/images/forest.png",
        "Where is this?",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!text(&o.stdout).trim().is_empty());

    // Deterministic from the seed: a second run from nothing writes the same weights. It reads
    // the first run's plan (already scaled) with --plan, so a plan file round-trips exactly.
    let plan = a.join("configs").join("plan.yaml");
    let o = lynx(&[
        "recipe",
        "default",
        "--out",
        b.to_str().unwrap(),
        "--plan",
        plan.to_str().unwrap(),
        "--samples",
        "1",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(
        std::fs::read(model.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model").join("model.safetensors")).unwrap()
    );

    // An existing run is kept; --resume skips what is done.
    let o = recipe(&a, &[]);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("already holds a recipe run"),
        "{}",
        text(&o.stderr)
    );
    let o = recipe(&a, &["--resume"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let log = text(&o.stderr);
    for stage in ["world", "tokenizer", "lm", "vicuna", "vision", "stage 2"] {
        assert!(
            log.lines()
                .any(|l| l.trim_start().starts_with(stage) && l.contains("already done")),
            "{stage}: {log}"
        );
    }

    // The default plan's phases, at this scale: the shape phase trains on the world's
    // shape-name questions alone and stage 2's mix takes them in at weight 2; the word phase
    // trains the question-reading word tokens alone (reply_loss 0); stage 2 starts from it,
    // reads them detached, as single words right before the reply, with the answers' own words
    // in their place on a fifth of the short-answer rows.
    for phase in ["stage2_shapes", "stage2_words"] {
        assert!(a.join(phase).join("model").is_dir(), "{phase}");
    }
    let names = std::fs::read_to_string(a.join("world/train/vqa_shape_names.jsonl")).unwrap();
    let shapes = [
        "circle", "square", "triangle", "star", "diamond", "hexagon", "heart", "cross",
    ];
    assert!(names.lines().count() > 0);
    for line in names.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        let answer = v["answer"].as_str().unwrap().to_lowercase();
        assert!(shapes.contains(&answer.trim_end_matches('.')), "{line}");
    }
    let shapes_cfg = std::fs::read_to_string(a.join("configs/stage2_shapes.yaml")).unwrap();
    assert!(shapes_cfg.contains("stage1/model"), "{shapes_cfg}");
    let words_cfg = std::fs::read_to_string(a.join("configs/stage2_words.yaml")).unwrap();
    for want in [
        "reply_loss: 0.0",
        "bridge_answer_loss: 1.0",
        "stage2_shapes/model",
        "vqa_color.jsonl",
        "vqa_shape_names.jsonl",
    ] {
        assert!(words_cfg.contains(want), "{want}: {words_cfg}");
    }
    for phase in [&shapes_cfg, &words_cfg] {
        assert!(!phase.contains("word_token_teacher"), "{phase}");
        assert!(!phase.contains("word_token_hard"), "{phase}");
        assert!(!phase.contains("short_answers"), "{phase}");
    }
    assert!(!words_cfg.contains("vqa_packed"), "{words_cfg}");
    let s2 = std::fs::read_to_string(a.join("configs/stage2.yaml")).unwrap();
    for want in [
        "stage2_words/model",
        "vqa_shape_names.jsonl\n  weight: 2.0",
        "bridge_answer_loss: 0.3",
        "detach_word_tokens: true",
        "word_token_teacher: 0.2",
        "word_tokens_from_short_answers: true",
        "word_token_hard: true",
    ] {
        assert!(s2.contains(want), "{want}: {s2}");
    }
    assert!(!s2.contains("reply_loss"), "{s2}");
    let s1 = std::fs::read_to_string(a.join("stage1/model/lynx.yaml")).unwrap();
    assert!(
        !s1.contains("word_token_hard"),
        "stage 1 reads mixtures: {s1}"
    );
    let exported = std::fs::read_to_string(model.join("lynx.yaml")).unwrap();
    for want in [
        "word_tokens: 4",
        "word_token_place: reply",
        "word_token_hard: true",
        "instruction_aware: true",
    ] {
        assert!(exported.contains(want), "{want}: {exported}");
    }

    // A plan with the release's bridge and a shape phase of its own, on run a's frozen parts
    // (its own stage 1: run a's has word tokens): stage 2 (only) trains the bridge at half the rate, and both parts add the
    // bridge-answer loss at the plan's weight. Written as JSON, which YAML reads.
    let c = dir.path().join("c");
    for part in ["world", "tokenizer", "lm", "vicuna", "vision"] {
        copy_dir(&a.join(part), &c.join(part));
    }
    let mut release = RecipePlan::load(&plan).unwrap();
    release.num_bridge_tokens = 16;
    release.bridge_instruction_aware = false;
    release.bridge_word_tokens = 0;
    release.bridge_word_token_place = WordTokenPlace::Prefix;
    release.stage2_detach_word_tokens = false;
    release.stage2_word_token_teacher = 0.0;
    release.stage2_word_tokens_from_short_answers = false;
    release.stage2_word_token_hard = false;
    release.stage2_words = None;
    release.stage2_bridge_answer_loss = 0.25;
    release.stage2_lr_scale.insert(TrainPart::Bridge, 0.5);
    let phase = release.stage2_shapes.as_mut().unwrap();
    phase.budget.steps = 2;
    phase.budget.warmup_steps = 1;
    phase.mix_weight = 1.5;
    let release_plan = dir.path().join("release.yaml");
    std::fs::write(&release_plan, serde_json::to_string(&release).unwrap()).unwrap();
    resume_with_plan(&c, &release_plan);
    assert!(!c.join("stage2_words").exists());
    let s2 = std::fs::read_to_string(c.join("configs/stage2.yaml")).unwrap();
    assert!(s2.contains("stage2_shapes/model"), "{s2}");
    assert!(s2.contains("vqa_shape_names.jsonl\n  weight: 1.5"), "{s2}");
    assert!(s2.contains("lr_scale:\n  bridge: 0.5"), "{s2}");
    let phase = std::fs::read_to_string(c.join("configs/stage2_shapes.yaml")).unwrap();
    assert!(!phase.contains("lr_scale"), "{phase}");
    for cfg in [&s2, &phase] {
        assert!(cfg.contains("bridge_answer_loss: 0.25"), "{cfg}");
        assert!(!cfg.contains("word_token"), "{cfg}");
    }
    let yaml = std::fs::read_to_string(c.join("model").join("lynx.yaml")).unwrap();
    assert!(!yaml.contains("word_tokens"), "{yaml}");
    assert!(c.join("model").join("model.safetensors").is_file());
}

/// Resumes the recipe in `out` with the plan file `plan` (quiet, one sample), which must succeed.
fn resume_with_plan(out: &Path, plan: &Path) {
    let o = lynx(&[
        "recipe",
        "default",
        "--out",
        out.to_str().unwrap(),
        "--plan",
        plan.to_str().unwrap(),
        "--resume",
        "--samples",
        "1",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_changed_plan_is_read_and_a_bad_one_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.yaml");
    std::fs::write(&plan, "seed: 0\nnum_bridge_token: 32\n").unwrap();
    let out = dir.path().join("run");
    let o = recipe(&out, &["--plan", plan.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("plan.yaml") && err.contains("num_bridge_token"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written for a bad plan");

    // --seed belongs to the default plan; a plan file carries its own.
    let o = recipe(&out, &["--plan", plan.to_str().unwrap(), "--seed", "3"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("--seed"), "{}", text(&o.stderr));
}
