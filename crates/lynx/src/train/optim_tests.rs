//! Tests of the AdamW optimiser against torch.optim.AdamW numbers (fixtures/train/adamw_torch.json,
//! made by tools/make_train_fixtures.py).

use super::*;
use candle_core::Device;

fn fixture() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/train/adamw_torch.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn shape(v: &serde_json::Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

struct Setup {
    opt: AdamW,
    vars: Vec<(String, Var)>,
    doc: serde_json::Value,
}

fn setup() -> Setup {
    let doc = fixture();
    let dev = Device::Cpu;
    let mut vars = Vec::new();
    for (name, s) in doc["shapes"].as_object().unwrap() {
        let t = Tensor::from_vec(floats(&doc["init"][name]), shape(s), &dev).unwrap();
        vars.push((name.clone(), Var::from_tensor(&t).unwrap()));
    }
    let cfg = AdamWConfig {
        weight_decay: doc["weight_decay"].as_f64().unwrap(),
        betas: [
            doc["betas"][0].as_f64().unwrap(),
            doc["betas"][1].as_f64().unwrap(),
        ],
        eps: doc["eps"].as_f64().unwrap(),
        no_decay: doc["no_decay"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect(),
    };
    let opt = AdamW::new(vars.clone(), cfg).unwrap();
    Setup { opt, vars, doc }
}

/// Runs fixture steps `range`, checking params and norms against torch after each.
fn run_steps(s: &mut Setup, range: std::ops::Range<usize>) {
    let dev = Device::Cpu;
    let max_norm = s.doc["max_norm"].as_f64().unwrap();
    for i in range {
        let step = &s.doc["steps"][i];
        let mut grads = Gradients::new();
        for micro in step["micro_grads"].as_array().unwrap() {
            for (name, values) in micro.as_object().unwrap() {
                let var = &s.vars.iter().find(|(n, _)| n == name).unwrap().1;
                let g = Tensor::from_vec(floats(values), var.shape(), &dev).unwrap();
                grads.add(name, &g).unwrap();
            }
        }
        let n_micro = step["micro_grads"].as_array().unwrap().len();
        grads.scale(1.0 / n_micro as f64).unwrap();
        let norm = grads.clip_global_norm(max_norm).unwrap();
        let want_norm = step["grad_norm"].as_f64().unwrap() as f32;
        assert!(
            (norm - want_norm).abs() <= 1e-6 * want_norm.max(1.0),
            "step {i}: norm {norm} vs torch {want_norm}"
        );
        s.opt.step(&grads, step["lr"].as_f64().unwrap()).unwrap();
        for (name, var) in &s.vars {
            let got = var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let want = floats(&step["params"][name]);
            for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                // Same f32 operations in the same order as torch's single-tensor AdamW: bit-exact.
                assert_eq!(
                    a.to_bits(),
                    b.to_bits(),
                    "step {i} {name}[{k}]: {a} vs torch {b}"
                );
            }
        }
    }
}

#[test]
fn matches_torch_adamw_with_accumulation_clipping_and_missing_grads() {
    let mut s = setup();
    let n = s.doc["steps"].as_array().unwrap().len();
    run_steps(&mut s, 0..n);
    assert_eq!(s.opt.step_count(), n as u64);
    // The frame positions got gradients on 4 of the 6 steps only.
    assert_eq!(
        s.opt
            .params
            .iter()
            .find(|p| p.name == "absolute_frame_pos_embed")
            .unwrap()
            .step,
        4
    );
}

#[test]
fn decay_rule_follows_rank_and_names() {
    let s = setup();
    assert_eq!(s.opt.decays("bridge.layers.0.0.to_q.weight"), Some(true));
    assert_eq!(
        s.opt.decays("bridge.layers.0.0.norm_media.bias"),
        Some(false)
    );
    assert_eq!(s.opt.decays("bridge.latents"), Some(false));
    assert_eq!(
        s.opt.decays("LLM.model.layers.0.output_adapter.scaling"),
        Some(false)
    );
    assert_eq!(s.opt.decays("absolute_frame_pos_embed"), Some(true));
    assert_eq!(s.opt.decays("nope"), None);
    assert!(!decays(
        "bridge.layers.0.1.0.weight",
        1,
        &default_no_decay()
    ));
    assert!(!decays("bridge.norm.weight", 2, &default_no_decay()));
    assert!(decays("bridge.layers.0.1.1.weight", 2, &default_no_decay()));
}

#[test]
fn saved_state_resumes_bit_exactly() {
    // Reference: 6 steps without interruption.
    let mut full = setup();
    let n = full.doc["steps"].as_array().unwrap().len();
    run_steps(&mut full, 0..n);

    // Interrupted: 3 steps, save params + state, rebuild everything from the files, 3 more.
    let dir = tempfile::tempdir().unwrap();
    let mut first = setup();
    run_steps(&mut first, 0..3);
    first
        .opt
        .save(&dir.path().join("optim.safetensors"))
        .unwrap();
    let saved: Vec<(String, Tensor)> = first
        .vars
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().copy().unwrap()))
        .collect();
    let mut second = setup();
    for (name, var) in &second.vars {
        var.set(&saved.iter().find(|(n, _)| n == name).unwrap().1)
            .unwrap();
    }
    second
        .opt
        .load(&dir.path().join("optim.safetensors"))
        .unwrap();
    assert_eq!(second.opt.step_count(), 3);
    run_steps(&mut second, 3..n);
    for ((name, a), (_, b)) in full.vars.iter().zip(&second.vars) {
        let a: Vec<u32> = a
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        let b: Vec<u32> = b
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        assert_eq!(a, b, "{name} differs after resume");
    }
}

#[test]
fn state_for_other_params_is_rejected_with_the_key() {
    let s = setup();
    let bytes = s.opt.state_bytes().unwrap();
    let dev = Device::Cpu;
    let other = vec![(
        "x.weight".to_string(),
        Var::zeros((2, 2), DType::F32, &dev).unwrap(),
    )];
    let mut o = AdamW::new(other, AdamWConfig::default()).unwrap();
    let err = o
        .load_state_bytes(&bytes, "optim.safetensors")
        .unwrap_err()
        .to_string();
    assert!(err.contains("x.weight.exp_avg"), "{err}");
    let mut extra = setup();
    let dropped = extra.opt.params.pop().unwrap().name;
    let err = extra
        .opt
        .load_state_bytes(&bytes, "f")
        .unwrap_err()
        .to_string();
    assert!(err.contains(&dropped), "{err}");
}

#[test]
fn bf16_params_are_updated_through_f32() {
    let dev = Device::Cpu;
    let w = Var::from_tensor(&Tensor::ones((2, 2), DType::BF16, &dev).unwrap()).unwrap();
    let mut opt = AdamW::new(vec![("w".into(), w.clone())], AdamWConfig::default()).unwrap();
    let mut g = Gradients::new();
    g.add("w", &Tensor::ones((2, 2), DType::BF16, &dev).unwrap())
        .unwrap();
    opt.step(&g, 0.1).unwrap();
    assert_eq!(w.dtype(), DType::BF16);
    let v = w
        .to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    // First Adam step moves each weight by ~lr against the gradient sign (after decay 1 - 0.1*0.05).
    assert!(v.iter().all(|x| (x - (0.995 - 0.1)).abs() < 0.01), "{v:?}");
    let mut bad = Gradients::new();
    bad.add("nope", &Tensor::ones(1, DType::F32, &dev).unwrap())
        .unwrap();
    assert!(opt
        .step(&bad, 0.1)
        .unwrap_err()
        .to_string()
        .contains("nope"));
}

#[test]
fn unclipped_norm_leaves_gradients_alone() {
    let dev = Device::Cpu;
    let mut g = Gradients::new();
    g.add("a", &Tensor::new(&[3f32, 4.0], &dev).unwrap())
        .unwrap();
    assert_eq!(g.clip_global_norm(10.0).unwrap(), 5.0);
    assert_eq!(
        g.get("a").unwrap().to_vec1::<f32>().unwrap(),
        vec![3.0, 4.0]
    );
    let n = g.clip_global_norm(1.0).unwrap();
    assert_eq!(n, 5.0);
    let v = g.get("a").unwrap().to_vec1::<f32>().unwrap();
    assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
}

#[test]
fn lr_scale_acts_as_a_parameter_group_learning_rate() {
    // Three steps of `a` at lr 0.1 with scale 0.25 equal three steps at lr 0.025, decay included;
    // `b` keeps the scheduled rate.
    let dev = Device::Cpu;
    let init = Tensor::new(&[[0.5f32, -1.0], [2.0, 0.25]], &dev).unwrap();
    let grads = [0.3f32, -0.7, 1.1];
    let run = |scale_a: f64, lr: f64| {
        let a = Var::from_tensor(&init).unwrap();
        let b = Var::from_tensor(&init).unwrap();
        let mut opt = AdamW::new(
            vec![("a".into(), a.clone()), ("b".into(), b.clone())],
            AdamWConfig::default(),
        )
        .unwrap();
        opt.scale_lr(|n| if n == "a" { scale_a } else { 1.0 })
            .unwrap();
        for g in grads {
            let mut acc = Gradients::new();
            let t = init.affine(g as f64, 0.1).unwrap();
            acc.add("a", &t).unwrap();
            acc.add("b", &t).unwrap();
            opt.step(&acc, lr).unwrap();
        }
        let flat = |v: &Var| v.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        (flat(&a), flat(&b), opt.lr_scale("a"))
    };
    let (scaled, full, s) = run(0.25, 0.1);
    let (slow, _, _) = run(1.0, 0.025);
    let (_, reference, _) = run(1.0, 0.1);
    assert_eq!(s, Some(0.25));
    for (x, y) in scaled.iter().zip(&slow) {
        assert!((x - y).abs() < 1e-7, "{scaled:?} vs {slow:?}");
    }
    assert_eq!(full, reference);
    assert_ne!(scaled, full);

    let w = Var::from_tensor(&init).unwrap();
    let mut opt = AdamW::new(vec![("w".into(), w)], AdamWConfig::default()).unwrap();
    let err = opt.scale_lr(|_| 0.0).unwrap_err().to_string();
    assert!(err.contains("`w`") && err.contains("> 0"), "{err}");
}
