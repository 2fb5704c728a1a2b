//! Tests of the training config: defaults, overrides, unknown keys, validation.

use super::*;

const BASE: &str = "\
model:
  vision_encoder: weights/eva_vit_g.pth
  llm: weights/vicuna-7b
stage: finetune
datasets:
  - {path: data/vqa.jsonl, weight: 2.0}
  - {path: \"shards/pairs-{000..009}.tar\", weight: 1}
prompts: configs/prompts.yaml
batch_size: 4
lr: 1e-4
max_steps: 110000
warmup_steps: 1000
output_dir: runs/a
resolution_schedule: [{until_step: 100000, image_res: 224}, {image_res: 420}]
";

fn load(extra: &str, overrides: &[&str]) -> Result<TrainConfig> {
    let o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    TrainConfig::from_yaml(&format!("{BASE}{extra}"), "train.yaml", &o)
}

#[test]
fn loads_with_defaults() {
    let c = load("", &[]).unwrap();
    assert_eq!(c.lr, 1e-4);
    assert_eq!(
        c.train_parts,
        vec![TrainPart::Bridge, TrainPart::Adapter, TrainPart::FramePos]
    );
    assert_eq!(c.stage, Stage::Finetune);
    assert_eq!(c.datasets[1].weight, 1.0);
    assert_eq!(c.grad_accum, 1);
    assert_eq!(c.betas, [0.9, 0.999]);
    assert_eq!(c.no_decay, vec!["norm", "bias"]);
    assert!(c.diverse_prompts);
    assert_eq!(c.clip_grad_norm, None);
    assert_eq!(c.image_res_at(100000), 224);
    assert_eq!(c.image_res_at(100001), 420);
    assert_eq!(c.lr_schedule().lr(1000), 1e-4);
    assert_eq!(c.adamw().weight_decay, 0.05);
    assert_eq!(c.mixture_options().seed, 42);
    assert!(c.trains(TrainPart::FramePos));
    assert_eq!(c.bridge_answer_loss, 0.0);
    let aux = load("bridge_answer_loss: 0.3\n", &[]).unwrap();
    assert_eq!(aux.bridge_answer_loss, 0.3);
    assert!(!aux.detach_word_tokens);
    let detached = load("bridge_answer_loss: 0.3\ndetach_word_tokens: true\n", &[]).unwrap();
    assert!(detached.detach_word_tokens);
    assert!(!aux.bridge_answer_short_only);
    let short = load(
        "bridge_answer_loss: 0.3\nbridge_answer_short_only: true\n",
        &[],
    )
    .unwrap();
    assert!(short.bridge_answer_short_only);
    assert_ne!(short.identity().unwrap(), aux.identity().unwrap());
    assert_ne!(c.identity().unwrap(), aux.identity().unwrap());
    assert_ne!(aux.identity().unwrap(), detached.identity().unwrap());
    assert_eq!(c.reply_loss, 1.0);
    let words = load("bridge_answer_loss: 1.0\nreply_loss: 0\n", &[]).unwrap();
    assert_eq!(words.reply_loss, 0.0);
    assert_ne!(words.identity().unwrap(), aux.identity().unwrap());
    assert_eq!(c.word_token_teacher, 0.0);
    let taught = load("word_token_teacher: 0.5\n", &[]).unwrap();
    assert_eq!(taught.word_token_teacher, 0.5);
    assert_ne!(taught.identity().unwrap(), c.identity().unwrap());
    assert!(!c.word_token_hard);
    let hard = load("word_token_hard: true\n", &[]).unwrap();
    assert!(hard.word_token_hard);
    assert_ne!(hard.identity().unwrap(), c.identity().unwrap());
}

#[test]
fn reply_openings_change_what_the_answer_loss_or_teacher_reads() {
    let c = load("", &[]).unwrap();
    assert!(!c.word_tokens_from_reply_openings);
    for base in ["bridge_answer_loss: 0.3\n", "word_token_teacher: 0.2\n"] {
        let on = load(
            &format!("{base}word_tokens_from_reply_openings: true\n"),
            &[],
        )
        .unwrap();
        assert!(on.word_tokens_from_reply_openings);
        let off = load(base, &[]).unwrap();
        assert_ne!(on.identity().unwrap(), off.identity().unwrap());
    }
    for (yaml, why) in [
        ("word_tokens_from_reply_openings: true\n", "both are 0"),
        (
            "bridge_answer_loss: 0.3\nbridge_answer_short_only: true\n\
             word_tokens_from_reply_openings: true\n",
            "bridge_answer_short_only",
        ),
    ] {
        let err = load(yaml, &[]).unwrap_err().to_string();
        assert!(
            err.contains("word_tokens_from_reply_openings") && err.contains(why),
            "{err}"
        );
    }
}

#[test]
fn short_answers_change_what_the_answer_loss_or_teacher_reads() {
    let c = load("", &[]).unwrap();
    assert!(!c.word_tokens_from_short_answers);
    for base in ["bridge_answer_loss: 0.3\n", "word_token_teacher: 0.2\n"] {
        let on = load(
            &format!("{base}word_tokens_from_short_answers: true\n"),
            &[],
        )
        .unwrap();
        assert!(on.word_tokens_from_short_answers);
        let off = load(base, &[]).unwrap();
        assert_ne!(on.identity().unwrap(), off.identity().unwrap());
    }
    let err = load("word_tokens_from_short_answers: true\n", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("word_tokens_from_short_answers") && err.contains("both are 0"),
        "{err}"
    );
}

#[test]
fn the_word_token_teacher_is_a_share_and_needs_the_llm() {
    for bad in ["-0.1", "1.5", ".nan"] {
        let err = load(&format!("word_token_teacher: {bad}\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("word_token_teacher"), "{bad}: {err}");
    }
    let err = load(
        "word_token_teacher: 0.5\nbridge_answer_loss: 1.0\nreply_loss: 0\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("word_token_teacher") && err.contains("reply_loss"),
        "{err}"
    );
}

#[test]
fn overrides_set_nested_keys_and_lists() {
    let c = load(
        "",
        &[
            "lr=3e-5",
            "datasets[0].weight=5",
            "datasets.1.name=pairs",
            "train_parts=[bridge]",
            "clip_grad_norm=1.0",
            "model.checkpoint=weights/pretrain_lynx.pt",
            "diverse_prompts=false",
            "prompts=",
        ],
    )
    .unwrap();
    assert_eq!(c.lr, 3e-5);
    assert_eq!(c.datasets[0].weight, 5.0);
    assert_eq!(c.datasets[1].name.as_deref(), Some("pairs"));
    assert_eq!(c.train_parts, vec![TrainPart::Bridge]);
    assert_eq!(c.clip_grad_norm, Some(1.0));
    assert_eq!(
        c.model.checkpoint,
        Some(PathBuf::from("weights/pretrain_lynx.pt"))
    );
    assert!(!c.diverse_prompts);
    assert_eq!(c.prompts, None);
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let e = load("lr_warmup: 5\n", &[]).unwrap_err().to_string();
    assert!(
        e.contains("config key `lr_warmup`") && e.contains("unknown field"),
        "{e}"
    );
    let e = load("", &["model.vision=x"]).unwrap_err().to_string();
    assert!(e.contains("config key `model.vision`"), "{e}");
    let e = load("", &["datasets[1].wieght=3"]).unwrap_err().to_string();
    assert!(e.contains("datasets[1].wieght"), "{e}");
    let e = load("", &["resolution_schedule[0].until=3"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("resolution_schedule[0].until"), "{e}");
    let e = load("", &["stage=midtrain"]).unwrap_err().to_string();
    assert!(e.contains("config key `stage`"), "{e}");
    let e = load("", &["lr=fast"]).unwrap_err().to_string();
    assert!(e.contains("config key `lr`"), "{e}");
}

#[test]
fn bad_overrides_and_values_name_the_key() {
    assert!(load("", &["lr"])
        .unwrap_err()
        .to_string()
        .contains("key=value"));
    let e = load("", &["datasets[7].weight=1"]).unwrap_err().to_string();
    assert!(
        e.contains("datasets.7") && e.contains("out of range"),
        "{e}"
    );
    let e = load("", &["lr.x=1"]).unwrap_err().to_string();
    assert!(e.contains("`lr.x`") || e.contains("`lr`"), "{e}");
    for (set, key) in [
        ("min_lr=1", "min_lr"),
        ("warmup_steps=200000", "warmup_steps"),
        ("batch_size=0", "batch_size"),
        ("betas=[0.9, 1.0]", "betas[1]"),
        ("image_res=300", "image_res"),
        (
            "resolution_schedule[0].image_res=225",
            "resolution_schedule[0].image_res",
        ),
        ("datasets[1].weight=-1", "datasets[1].weight"),
        ("clip_grad_norm=0", "clip_grad_norm"),
        ("max_bad_fraction=2", "max_bad_fraction"),
        ("bridge_answer_loss=-0.5", "bridge_answer_loss"),
        ("detach_word_tokens=true", "detach_word_tokens"),
        ("bridge_answer_short_only=true", "bridge_answer_short_only"),
        ("reply_loss=0", "reply_loss"),
        ("reply_loss=-1", "reply_loss"),
        ("train_parts=[bridge, bridge]", "train_parts"),
        ("model.llm=", "model"),
    ] {
        let e = load("", &[set]).unwrap_err().to_string();
        assert!(e.contains(&format!("config key `{key}`")), "{set}: {e}");
    }
    let e = TrainConfig::from_yaml("lr: [1\n", "t.yaml", &[])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("t.yaml:"), "{e}");
}

#[test]
fn identity_ignores_keys_that_may_change_on_resume() {
    let a = load("", &[]).unwrap();
    let b = load("", &["output_dir=elsewhere", "save_every=7", "keep_last=9"]).unwrap();
    assert_eq!(a.identity().unwrap(), b.identity().unwrap());
    let c = load("", &["lr=2e-4"]).unwrap();
    assert_ne!(a.identity().unwrap(), c.identity().unwrap());
}

#[test]
fn the_file_loader_reports_missing_files() {
    let e = TrainConfig::load(Path::new("/nonexistent/train.yaml"), &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent/train.yaml"), "{e}");
}

#[test]
fn open_data_uses_the_prompts_file_and_the_diverse_switch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("p.yaml"),
        "vqa:\n  - \"A {question}\"\n  - \"B {question}\"\n  - \"C {question}\"\n",
    )
    .unwrap();
    std::fs::write(d.join("x.jpg"), b"x").unwrap();
    std::fs::write(
        d.join("v.jsonl"),
        r#"{"task": "vqa", "image": "x.jpg", "question": "q?", "answer": "a"}"#,
    )
    .unwrap();
    let sets = [
        format!("prompts={}", d.join("p.yaml").display()),
        format!(
            "datasets=[{{path: {}, weight: 1}}]",
            d.join("v.jsonl").display()
        ),
        "diverse_prompts=false".to_string(),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let mut m = load("", &sets).unwrap().open_data().unwrap();
    for _ in 0..10 {
        assert_eq!(m.next_sample().unwrap().turns[0].prompt, "A q?");
    }
    let e = load("", &["prompts=/nonexistent/p.yaml"])
        .unwrap()
        .open_data()
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("/nonexistent/p.yaml"), "{e}");
}

#[test]
fn lr_scale_names_parts_and_is_checked() {
    let c = load("lr_scale: {bridge: 0.2}\n", &[]).unwrap();
    assert_eq!(c.lr_scale.get(&TrainPart::Bridge), Some(&0.2));
    assert_eq!(c.lr_scale_of("bridge.layers.0.0.to_q.weight"), 0.2);
    assert_eq!(
        c.lr_scale_of("LLM.model.layers.3.output_adapter.adapter_up.weight"),
        1.0
    );
    assert_eq!(c.lr_scale_of("absolute_frame_pos_embed"), 1.0);
    // Round trip through the saved run config keeps it; an empty map is not written.
    let text = serde_yaml::to_string(&c).unwrap();
    assert!(text.contains("lr_scale"), "{text}");
    let again = TrainConfig::from_yaml(&text, "run.yaml", &[]).unwrap();
    assert_eq!(again.lr_scale, c.lr_scale);
    let plain = serde_yaml::to_string(&load("", &[]).unwrap()).unwrap();
    assert!(!plain.contains("lr_scale"), "{plain}");

    let e = load("lr_scale: {bridge: 0}\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("lr_scale.bridge") && e.contains("> 0"), "{e}");
    let e = load("lr_scale: {adapter: 0.5}\n", &["train_parts=[bridge]"])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lr_scale.adapter") && e.contains("train_parts"),
        "{e}"
    );
    let e = load("lr_scale: {resampler: 0.5}\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("lr_scale"), "{e}");
}

#[test]
fn vision_loss_mask_is_optional_and_checked() {
    let c = load("vision_loss: {shape: 4.0, mask: 2.0}\n", &[]).unwrap();
    assert_eq!((c.vision_loss.shape, c.vision_loss.mask), (4.0, 2.0));
    assert_eq!(
        c.vision_loss.patch, 1.0,
        "unnamed weights keep their default"
    );
    let text = serde_yaml::to_string(&c).unwrap();
    let again = TrainConfig::from_yaml(&text, "run.yaml", &[]).unwrap();
    assert_eq!(again.vision_loss, c.vision_loss);
    // Off by default, and not written then, so older runs keep their identity.
    let plain = load("", &[]).unwrap();
    assert_eq!(plain.vision_loss.mask, 0.0);
    assert!(!serde_yaml::to_string(&plain).unwrap().contains("mask"));
    for bad in [
        "vision_loss: {mask: -1.0}\n",
        "vision_loss: {shape: .nan}\n",
    ] {
        let e = load(bad, &[]).unwrap_err().to_string();
        assert!(
            e.contains("vision_loss.") && e.contains(">= 0"),
            "{bad}: {e}"
        );
    }
}
