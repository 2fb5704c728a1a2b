//! End-to-end resume test of the training infrastructure without the model: a toy regression
//! trained from a JSONL + shard mixture with AdamW, the LR schedule, gradient accumulation and
//! clipping, checkpoints and metrics. Stopping at step 12 and resuming from the step-10
//! checkpoint must end bit-identical to an uninterrupted run, metrics.jsonl included.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use lynx::data::datasets::{DatasetSpec, Sample};
use lynx::data::mixture::{Mixture, MixtureOptions};
use lynx::train::checkpoint::{CheckpointManager, TrainState};
use lynx::train::metrics::{MetricsLog, MetricsRecord};
use lynx::train::optim::{AdamW, AdamWConfig, Gradients};
use lynx::train::rng::TrainRng;
use lynx::train::schedule::LrSchedule;
use rand::RngCore;

const MAX_STEPS: u64 = 20;
const SAVE_EVERY: u64 = 5;
const GRAD_ACCUM: usize = 2;

fn make_data(dir: &Path) -> Vec<DatasetSpec> {
    std::fs::write(dir.join("x.jpg"), b"x").unwrap();
    let lines: Vec<String> = (0..13)
        .map(|i| format!(r#"{{"image": "x.jpg", "caption": "caption {i}"}}"#))
        .collect();
    std::fs::write(dir.join("a.jsonl"), lines.join("\n")).unwrap();
    let mut b = tar::Builder::new(std::fs::File::create(dir.join("s-0.tar")).unwrap());
    for i in 0..9 {
        for (ext, data) in [
            ("json", format!(r#"{{"caption": "shard sample {i}"}}"#)),
            ("png", format!("P{i}")),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, format!("{i:03}.{ext}"), data.as_bytes())
                .unwrap();
        }
    }
    b.finish().unwrap();
    vec![
        DatasetSpec {
            path: dir.join("a.jsonl").display().to_string(),
            weight: 2.0,
            name: None,
            task: None,
        },
        DatasetSpec {
            path: format!("{}/s-{{0..0}}.tar", dir.display()),
            weight: 1.0,
            name: None,
            task: None,
        },
    ]
}

/// Features and target of a sample (from its text), plus augmentation noise from `rng`.
fn features(s: &Sample, rng: &mut TrainRng) -> (Vec<f32>, f32) {
    let text = &s.turns[0].response;
    let h = text
        .bytes()
        .fold(7u32, |a, b| a.wrapping_mul(31).wrapping_add(b as u32));
    let noise = (rng.next_u32() % 1000) as f32 / 1e4;
    let x = vec![
        (h % 97) as f32 / 97.0,
        (h % 13) as f32 / 13.0,
        text.len() as f32 / 20.0,
        1.0 + noise,
    ];
    (x, (h % 7) as f32 - 3.0)
}

/// Trains until `stop` (a simulated crash), resuming from `out` when it holds a checkpoint.
fn train(out: &Path, specs: &[DatasetSpec], stop: u64) -> Vec<u32> {
    let dev = Device::Cpu;
    let params = vec![
        (
            "head.weight".to_string(),
            Var::from_tensor(&Tensor::full(0.1f32, (4, 1), &dev).unwrap()).unwrap(),
        ),
        (
            "head.bias".to_string(),
            Var::zeros(1, DType::F32, &dev).unwrap(),
        ),
    ];
    let mut opt = AdamW::new(
        params.clone(),
        AdamWConfig {
            weight_decay: 0.1,
            ..Default::default()
        },
    )
    .unwrap();
    let sched = LrSchedule {
        lr: 0.05,
        min_lr: 0.001,
        warmup_steps: 3,
        max_steps: MAX_STEPS,
    };
    let opts = MixtureOptions {
        seed: 17,
        max_bad_fraction: 0.1,
        shuffle_buffer: 3,
    };
    let mut data = Mixture::open(specs, None, opts).unwrap();
    let mut rng = TrainRng::new(17, 9);
    let config = serde_json::json!({"toy": true, "lr": sched.lr});
    let (mgr, ckpt) = CheckpointManager::open(out, config, 2, true).unwrap();
    let mut step = 0;
    let mut metrics = match ckpt {
        Some(c) => {
            c.restore_params(&params).unwrap();
            c.restore_optimizer(&mut opt).unwrap();
            data.restore(&serde_json::from_value(c.state.data.clone()).unwrap())
                .unwrap();
            rng = TrainRng::from_state(&c.state.rng, "test").unwrap();
            step = c.state.step;
            MetricsLog::resume(out, step).unwrap()
        }
        None => MetricsLog::create(out).unwrap(),
    };
    while step < MAX_STEPS.min(stop) {
        let t = step + 1;
        let mut grads = Gradients::new();
        let mut loss_sum = 0.0;
        for _ in 0..GRAD_ACCUM {
            let batch: Vec<(Vec<f32>, f32)> = (0..3)
                .map(|_| features(&data.next_sample().unwrap(), &mut rng))
                .collect();
            let x: Vec<f32> = batch.iter().flat_map(|b| b.0.clone()).collect();
            let y: Vec<f32> = batch.iter().map(|b| b.1).collect();
            let x = Tensor::from_vec(x, (3, 4), &dev).unwrap();
            let y = Tensor::from_vec(y, (3, 1), &dev).unwrap();
            let pred = x
                .matmul(&params[0].1)
                .unwrap()
                .broadcast_add(&params[1].1)
                .unwrap();
            let loss = pred.sub(&y).unwrap().sqr().unwrap().mean_all().unwrap();
            loss_sum += loss.to_scalar::<f32>().unwrap() as f64;
            opt.accumulate(&mut grads, &loss.backward().unwrap())
                .unwrap();
        }
        grads.scale(1.0 / GRAD_ACCUM as f64).unwrap();
        let norm = grads.clip_global_norm(1.0).unwrap();
        let lr = sched.lr(t);
        opt.step(&grads, lr).unwrap();
        step = t;
        let rec =
            MetricsRecord::new(t, loss_sum / GRAD_ACCUM as f64, lr).with("grad_norm", norm as f64);
        metrics.log(&rec).unwrap();
        if t % SAVE_EVERY == 0 || t == MAX_STEPS {
            metrics.sync().unwrap();
            let state = TrainState {
                step: t,
                data: serde_json::to_value(data.state()).unwrap(),
                rng: rng.state(),
                extra: serde_json::Value::Null,
            };
            mgr.save(&params, &opt, &state).unwrap();
        }
    }
    params
        .iter()
        .flat_map(|(_, v)| v.flatten_all().unwrap().to_vec1::<f32>().unwrap())
        .map(f32::to_bits)
        .collect()
}

#[test]
fn interrupted_and_resumed_training_matches_an_uninterrupted_run() {
    let data_dir = tempfile::tempdir().unwrap();
    let specs = make_data(data_dir.path());

    let straight = tempfile::tempdir().unwrap();
    let want = train(straight.path(), &specs, u64::MAX);

    let broken = tempfile::tempdir().unwrap();
    train(broken.path(), &specs, 12); // "crashes" after step 12; newest checkpoint: step 10
    let lines = std::fs::read_to_string(broken.path().join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 12);
    let got = train(broken.path(), &specs, u64::MAX);

    assert_eq!(got, want, "parameters differ after resuming");
    let a = std::fs::read_to_string(straight.path().join("metrics.jsonl")).unwrap();
    let b = std::fs::read_to_string(broken.path().join("metrics.jsonl")).unwrap();
    assert_eq!(a.lines().count(), MAX_STEPS as usize);
    assert_eq!(a, b, "metrics.jsonl differs after resuming");
    // The toy model learned something: the loss went down.
    let first: f64 = serde_json::from_str::<serde_json::Value>(a.lines().next().unwrap()).unwrap()
        ["loss"]
        .as_f64()
        .unwrap();
    let last: f64 = serde_json::from_str::<serde_json::Value>(a.lines().last().unwrap()).unwrap()
        ["loss"]
        .as_f64()
        .unwrap();
    assert!(last < first, "loss {first} -> {last}");
}
