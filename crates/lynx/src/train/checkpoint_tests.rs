//! Tests of training checkpoints: round trip, pruning, run identity checks, damaged files.

use super::*;
use crate::train::optim::{AdamWConfig, Gradients};
use crate::train::rng::TrainRng;
use candle_core::DType;

fn params(fill: f32) -> Vec<(String, Var)> {
    let dev = Device::Cpu;
    vec![
        (
            "bridge.latents".to_string(),
            Var::from_tensor(
                &(Tensor::ones((4, 3), DType::F32, &dev).unwrap() * fill as f64).unwrap(),
            )
            .unwrap(),
        ),
        (
            "bridge.norm.bias".to_string(),
            Var::from_tensor(&Tensor::new(&[fill, -fill], &dev).unwrap()).unwrap(),
        ),
    ]
}

fn optim_after_one_step(ps: &[(String, Var)]) -> AdamW {
    let mut opt = AdamW::new(ps.to_vec(), AdamWConfig::default()).unwrap();
    let mut g = Gradients::new();
    for (n, v) in ps {
        g.add(n, &v.ones_like().unwrap()).unwrap();
    }
    opt.step(&g, 1e-3).unwrap();
    opt
}

fn state(step: u64) -> TrainState {
    TrainState {
        step,
        data: serde_json::json!({"cursor": step * 2}),
        rng: TrainRng::new(step, 1).state(),
        extra: serde_json::json!({"tokens": 10 * step}),
    }
}

fn cfg(lr: f64) -> serde_json::Value {
    serde_json::json!({"lr": lr, "datasets": [{"path": "a.jsonl", "weight": 1.0}]})
}

#[test]
fn save_load_round_trip_prunes_and_points_latest() {
    let out = tempfile::tempdir().unwrap();
    let (mgr, none) = CheckpointManager::open(out.path(), cfg(1e-4), 2, false).unwrap();
    assert!(none.is_none());
    let ps = params(1.5);
    let opt = optim_after_one_step(&ps);
    for step in [10, 20, 30] {
        mgr.save(&ps, &opt, &state(step)).unwrap();
    }
    let steps: Vec<u64> = mgr.list().unwrap().iter().map(|s| s.0).collect();
    assert_eq!(steps, vec![20, 30], "keep_last = 2");
    let latest = fs::read_to_string(out.path().join("checkpoints/latest")).unwrap();
    assert_eq!(latest.trim(), "step-000030");
    let names: Vec<String> = fs::read_dir(out.path().join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");

    // A new process resumes: same run id, same tensors, same optimiser state.
    let (mgr2, ckpt) = CheckpointManager::open(out.path(), cfg(1e-4), 2, true).unwrap();
    assert_eq!(mgr2.run().run_id, mgr.run().run_id);
    let ckpt = ckpt.unwrap();
    assert_eq!(ckpt.state, state(30));
    let fresh = params(0.0);
    ckpt.restore_params(&fresh).unwrap();
    for ((_, a), (_, b)) in ps.iter().zip(&fresh) {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a, b);
    }
    let mut opt2 = AdamW::new(fresh.clone(), AdamWConfig::default()).unwrap();
    ckpt.restore_optimizer(&mut opt2).unwrap();
    assert_eq!(opt2.step_count(), 1);
    assert_eq!(opt2.state_bytes().unwrap(), opt.state_bytes().unwrap());
}

#[test]
fn another_run_or_config_is_refused_before_training() {
    let out = tempfile::tempdir().unwrap();
    let (mgr, _) = CheckpointManager::open(out.path(), cfg(1e-4), 3, false).unwrap();
    let ps = params(1.0);
    mgr.save(&ps, &optim_after_one_step(&ps), &state(5))
        .unwrap();

    let err = CheckpointManager::open(out.path(), cfg(1e-4), 3, false)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("--resume") && err.contains(&mgr.run().run_id) && err.contains("step 5"),
        "{err}"
    );

    let err = CheckpointManager::open(out.path(), cfg(2e-4), 3, true)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("differing keys: lr"), "{err}");
    let mut other = cfg(1e-4);
    other["datasets"][0]["weight"] = serde_json::json!(2.0);
    let err = CheckpointManager::open(out.path(), other, 3, true)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("datasets[0].weight"), "{err}");
}

#[test]
fn resume_without_checkpoints_starts_fresh() {
    let out = tempfile::tempdir().unwrap();
    let (mgr, ckpt) = CheckpointManager::open(out.path(), cfg(1e-4), 3, true).unwrap();
    assert!(ckpt.is_none());
    assert!(out.path().join("run.json").exists());
    // A different config may reuse a folder that holds no checkpoint.
    let (mgr2, _) = CheckpointManager::open(out.path(), cfg(5e-4), 3, false).unwrap();
    assert_ne!(mgr2.run().config_hash, mgr.run().config_hash);
}

#[test]
fn damaged_newest_checkpoint_falls_back_to_the_previous() {
    let out = tempfile::tempdir().unwrap();
    let (mgr, _) = CheckpointManager::open(out.path(), cfg(1e-4), 5, false).unwrap();
    let ps = params(2.0);
    let opt = optim_after_one_step(&ps);
    mgr.save(&ps, &opt, &state(1)).unwrap();
    let dir2 = mgr.save(&ps, &opt, &state(2)).unwrap();
    let p = dir2.join(PARAMS);
    let mut bytes = fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x40;
    fs::write(&p, &bytes).unwrap();
    let ckpt = mgr.latest().unwrap().unwrap();
    assert_eq!(ckpt.state.step, 1);
    // A half-written temp folder and a stray trash folder are ignored, then removed at open.
    fs::create_dir(out.path().join("checkpoints/.tmp-step-000003-1")).unwrap();
    fs::write(
        out.path()
            .join("checkpoints/.tmp-step-000003-1/params.safetensors"),
        b"junk",
    )
    .unwrap();
    fs::create_dir(out.path().join("checkpoints/.trash-step-000000-9")).unwrap();
    let (_, ckpt) = CheckpointManager::open(out.path(), cfg(1e-4), 5, true).unwrap();
    assert_eq!(ckpt.unwrap().state.step, 1);
    assert!(!out.path().join("checkpoints/.tmp-step-000003-1").exists());
    assert!(!out.path().join("checkpoints/.trash-step-000000-9").exists());
}

#[test]
fn restore_names_missing_and_extra_parameters() {
    let out = tempfile::tempdir().unwrap();
    let (mgr, _) = CheckpointManager::open(out.path(), cfg(1e-4), 5, false).unwrap();
    let ps = params(2.0);
    mgr.save(&ps, &optim_after_one_step(&ps), &state(1))
        .unwrap();
    let ckpt = mgr.latest().unwrap().unwrap();
    let mut fewer = params(0.0);
    fewer.pop();
    let err = ckpt.restore_params(&fewer).unwrap_err().to_string();
    assert!(err.contains("bridge.norm.bias"), "{err}");
    let mut more = params(0.0);
    more.push((
        "absolute_frame_pos_embed".into(),
        Var::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    ));
    let err = ckpt.restore_params(&more).unwrap_err().to_string();
    assert!(err.contains("absolute_frame_pos_embed"), "{err}");
}

#[test]
fn resaving_a_step_replaces_it() {
    let out = tempfile::tempdir().unwrap();
    let (mgr, _) = CheckpointManager::open(out.path(), cfg(1e-4), 5, false).unwrap();
    let ps = params(2.0);
    let opt = optim_after_one_step(&ps);
    mgr.save(&ps, &opt, &state(7)).unwrap();
    let ps3 = params(3.0);
    mgr.save(&ps3, &opt, &state(7)).unwrap();
    let ckpt = mgr.latest().unwrap().unwrap();
    let v = ckpt.params()["bridge.norm.bias"].to_vec1::<f32>().unwrap();
    assert_eq!(v, vec![3.0, -3.0]);
    assert_eq!(mgr.list().unwrap().len(), 1);
}

#[test]
fn config_hash_ignores_key_order() {
    let a: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":{"c":[1,2],"d":"x"}}"#).unwrap();
    let b: serde_json::Value = serde_json::from_str(r#"{"b":{"d":"x","c":[1,2]},"a":1}"#).unwrap();
    assert_eq!(config_hash(&a), config_hash(&b));
    let c: serde_json::Value = serde_json::from_str(r#"{"b":{"d":"x","c":[2,1]},"a":1}"#).unwrap();
    assert_ne!(config_hash(&a), config_hash(&c));
}
