//! The training loop on the smoke example (examples/train-smoke): the loss falls when
//! overfitting, frozen weights stay bit-identical, resuming reproduces the uninterrupted run,
//! and bad data, bad configs and a diverging loss stop with clear errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use lynx::train::checkpoint::CheckpointManager;
use lynx::train::metrics::read_metrics;
use lynx::train::trainer::{load_config, Trainer};

fn smoke() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/train-smoke")
}

fn config(out: &Path, extra: &[&str]) -> lynx::train::config::TrainConfig {
    let mut sets = vec![
        format!("output_dir={}", out.display()),
        "warmup_steps=1".to_string(),
    ];
    sets.extend(extra.iter().map(|s| s.to_string()));
    load_config(&smoke().join("stage2.yaml"), &sets).unwrap()
}

fn tensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).unwrap()
}

/// Same dtype, shape and values (f16 values compare exactly after widening).
fn same(a: &Tensor, b: &Tensor) -> bool {
    let v = |t: &Tensor| {
        t.to_dtype(candle_core::DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    a.dtype() == b.dtype() && a.dims() == b.dims() && v(a) == v(b)
}

#[test]
fn overfitting_a_tiny_set_lowers_the_loss_and_frozen_weights_do_not_move() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let cfg = config(
        &out,
        &[
            "datasets=[{path: data/train/vqa_color.jsonl, weight: 1.0}]",
            "max_steps=40",
            "lr=3e-3",
            "min_lr=3e-3",
            "warmup_steps=0",
            "weight_decay=0",
            "save_every=40",
        ],
    );
    let mut trainer = Trainer::new(cfg, false, Device::Cpu).unwrap();
    trainer.run(false).unwrap();
    let losses: Vec<f64> = read_metrics(&out.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .map(|m| m.loss)
        .collect();
    assert_eq!(losses.len(), 40);
    let first: f64 = losses[..5].iter().sum::<f64>() / 5.0;
    let last: f64 = losses[35..].iter().sum::<f64>() / 5.0;
    assert!(last < 0.6 * first, "loss went from {first} to {last}");

    let base = tensors(&smoke().join("base/model.safetensors"));
    let trained = tensors(&out.join("model/model.safetensors"));
    assert_eq!(base.len(), trained.len());
    let (mut frozen, mut moved) = (0, 0);
    for (name, t) in &trained {
        let is_trained = name.starts_with("bridge.")
            || name.contains(".output_adapter.")
            || name == "absolute_frame_pos_embed";
        if is_trained {
            moved += usize::from(!same(&base[name].to_dtype(t.dtype()).unwrap(), t));
        } else {
            assert!(same(&base[name], t), "frozen tensor {name} changed");
            frozen += 1;
        }
    }
    assert!(
        frozen > 40 && moved > 40,
        "{frozen} frozen, {moved} trained tensors changed"
    );
}

#[test]
fn resuming_after_an_interruption_reproduces_the_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    let cut = dir.path().join("cut");
    let extra = ["max_steps=14", "save_every=5", "grad_accum=2"];
    Trainer::new(config(&full, &extra), false, Device::Cpu)
        .unwrap()
        .run(false)
        .unwrap();
    {
        // Interrupted after step 12: steps 11 and 12 are lost with the process.
        let mut t = Trainer::new(config(&cut, &extra), false, Device::Cpu).unwrap();
        for _ in 0..12 {
            let s = t.train_step().unwrap();
            if s.step.is_multiple_of(5) {
                t.save_checkpoint().unwrap();
            }
        }
    }
    let mut resumed = Trainer::new(config(&cut, &extra), true, Device::Cpu).unwrap();
    assert_eq!(resumed.step(), 10);
    resumed.run(false).unwrap();
    let a = std::fs::read_to_string(full.join("metrics.jsonl")).unwrap();
    let b = std::fs::read_to_string(cut.join("metrics.jsonl")).unwrap();
    assert_eq!(a.lines().count(), 14);
    assert_eq!(a, b, "metrics of the resumed run differ");
    assert_eq!(
        std::fs::read(full.join("model/model.safetensors")).unwrap(),
        std::fs::read(cut.join("model/model.safetensors")).unwrap()
    );
}

#[test]
fn an_output_dir_of_another_run_is_refused_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    Trainer::new(
        config(&out, &["max_steps=2", "save_every=1"]),
        false,
        Device::Cpu,
    )
    .unwrap()
    .run(false)
    .unwrap();
    let err = Trainer::new(config(&out, &["max_steps=2", "lr=0.5"]), true, Device::Cpu)
        .err()
        .expect("a different config");
    assert!(err.to_string().contains("lr"), "{err}");
    let err = Trainer::new(config(&out, &["max_steps=2"]), false, Device::Cpu)
        .err()
        .expect("checkpoints exist and --resume is not given");
    assert!(err.to_string().contains("checkpoint"), "{err}");
}

#[test]
fn a_diverging_loss_stops_with_the_step_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let cfg = config(
        &out,
        &[
            "max_steps=30",
            "lr=1e12",
            "min_lr=1e12",
            "warmup_steps=0",
            "clip_grad_norm=null",
            "save_every=1",
        ],
    );
    let mut trainer = Trainer::new(cfg.clone(), false, Device::Cpu).unwrap();
    let err = trainer.run(false).expect_err("the loss diverges");
    let msg = err.to_string();
    assert!(msg.contains("at step"), "{msg}");
    let (mgr, latest) = CheckpointManager::open(&out, cfg.identity().unwrap(), 3, true).unwrap();
    let latest = latest.expect("a checkpoint survives");
    assert!(latest.state.step >= 1);
    for t in latest.params().values() {
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(
            v.iter().all(|x| x.is_finite()),
            "a saved parameter is not finite"
        );
    }
    drop(mgr);
}

#[test]
fn bad_records_are_skipped_and_counted_until_max_bad_fraction() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bad.jsonl");
    let img = smoke().join("data/images/000001.png");
    let good = format!(
        "{{\"task\":\"vqa_color\",\"image\":\"{}\",\"question\":\"What color?\",\"answer\":\"red\"}}",
        img.display()
    );
    let mut lines = vec![good.clone(); 20];
    lines.push("{not json".into());
    lines.push(format!(
        "{{\"task\":\"vqa_color\",\"image\":\"{}\",\"question\":\"q\",\"answer\":\"a\"}}",
        dir.path().join("missing.png").display()
    ));
    lines.push(good.replace("\"red\"", "\"\""));
    std::fs::write(&data, lines.join("\n")).unwrap();
    let spec = format!("datasets=[{{path: {}, weight: 1.0}}]", data.display());
    let out = dir.path().join("run");
    let mut t = Trainer::new(
        config(&out, &[&spec, "max_steps=2", "max_bad_fraction=0.2"]),
        false,
        Device::Cpu,
    )
    .unwrap();
    t.run(false).unwrap();
    let report = t.data_report();
    assert!(report.contains("20 good, 3 bad"), "{report}");
    assert!(report.contains("bad.jsonl:21"), "{report}");
    let err = Trainer::new(
        config(
            &dir.path().join("run2"),
            &[&spec, "max_steps=2", "max_bad_fraction=0.1"],
        ),
        false,
        Device::Cpu,
    )
    .err()
    .expect("13% bad records exceed 10%");
    assert!(err.to_string().contains("bad"), "{err}");
}

#[test]
fn unknown_keys_tasks_and_templates_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let err = load_config(
        &smoke().join("stage2.yaml"),
        &[
            format!("output_dir={}", out.display()),
            "learning_rate=1".into(),
        ],
    )
    .expect_err("learning_rate is not a key");
    assert!(err.to_string().contains("learning_rate"), "{err}");

    let prompts = dir.path().join("prompts.yaml");
    std::fs::write(&prompts, "vqa_color: [\"a\", \"b\", \"c\"]\n").unwrap();
    let err = Trainer::new(
        config(&out, &[&format!("prompts={}", prompts.display())]),
        false,
        Device::Cpu,
    )
    .err()
    .expect("templates without {question}");
    assert!(err.to_string().contains("{question}"), "{err}");
}

#[test]
fn word_token_keys_on_a_bridge_without_word_tokens_are_refused_naming_the_key() {
    // The smoke model's bridge is the release's: it has no word tokens to detach, teach, make
    // hard or pick answers for.
    let dir = tempfile::tempdir().unwrap();
    for (set, key) in [
        ("word_token_hard=true", "word_token_hard"),
        ("word_token_teacher=0.5", "word_token_teacher"),
        (
            "bridge_answer_loss=0.3 detach_word_tokens=true",
            "detach_word_tokens",
        ),
        (
            "bridge_answer_loss=0.3 bridge_answer_short_only=true",
            "bridge_answer_short_only",
        ),
        (
            "bridge_answer_loss=0.3 word_tokens_from_short_answers=true",
            "word_tokens_from_short_answers",
        ),
    ] {
        let out = dir.path().join(key);
        let sets: Vec<&str> = set.split(' ').collect();
        let err = Trainer::new(config(&out, &sets), false, Device::Cpu)
            .err()
            .expect("no word tokens");
        let msg = err.to_string();
        assert!(msg.contains(key) && msg.contains("no word tokens"), "{msg}");
    }
}
