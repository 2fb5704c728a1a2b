//! Crash test of training checkpoints: a child process (this test binary, re-run with an
//! environment variable) saves checkpoints in a loop and is killed with SIGKILL at random
//! moments, mostly in the middle of a save; after every kill the newest checkpoint must load,
//! verify, and hold parameters, optimiser state and train state of one and the same step.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use candle_core::{DType, Device, Tensor, Var};
use lynx::train::checkpoint::{CheckpointManager, TrainState};
use lynx::train::optim::{AdamW, AdamWConfig, Gradients};
use lynx::train::rng::TrainRng;

const ENV_DIR: &str = "LYNX_CKPT_KILL_DIR";
const MARK: &str = "LYNX-CKPT saving";

fn config() -> serde_json::Value {
    serde_json::json!({"test": "kill", "lr": 1e-3})
}

/// Parameters whose every value encodes the step, so a mix of two saves is detectable. The
/// big one makes a save take long enough to be interrupted.
fn make_params() -> Vec<(String, Var)> {
    let dev = Device::Cpu;
    vec![
        (
            "bridge.big.weight".to_string(),
            Var::zeros((512, 1024), DType::F32, &dev).unwrap(),
        ),
        (
            "bridge.norm.bias".to_string(),
            Var::zeros(8, DType::F32, &dev).unwrap(),
        ),
    ]
}

fn set_params_for(params: &[(String, Var)], step: u64) {
    for (_, v) in params {
        v.set(&Tensor::full(step as f32, v.shape(), v.device()).unwrap())
            .unwrap();
    }
}

fn grads_for(params: &[(String, Var)]) -> Gradients {
    let mut g = Gradients::new();
    for (n, v) in params {
        g.add(n, &v.ones_like().unwrap()).unwrap();
    }
    g
}

/// Saves steps `from+1 ..= until` (forever if None), printing a mark before each save.
fn writer_loop(dir: &Path, until: Option<u64>) {
    let params = make_params();
    let mut opt = AdamW::new(params.clone(), AdamWConfig::default()).unwrap();
    let (mgr, ckpt) = CheckpointManager::open(dir, config(), 2, true).unwrap();
    let mut step = 0;
    if let Some(c) = ckpt {
        c.restore_params(&params).unwrap();
        c.restore_optimizer(&mut opt).unwrap();
        step = c.state.step;
    }
    while until.is_none_or(|u| step < u) {
        step += 1;
        opt.step(&grads_for(&params), 1e-3).unwrap();
        set_params_for(&params, step);
        let state = TrainState {
            step,
            data: serde_json::json!({"cursor": step}),
            rng: TrainRng::new(step, 0).state(),
            extra: serde_json::Value::Null,
        };
        println!("{MARK} {step}");
        mgr.save(&params, &opt, &state).unwrap();
    }
}

/// Loads the newest checkpoint and checks that all its parts belong to one step.
fn verify(dir: &Path) -> Option<u64> {
    let (_, ckpt) =
        CheckpointManager::open(dir, config(), 2, true).expect("resume must always work");
    let c = ckpt?;
    let step = c.state.step;
    assert_eq!(c.state.data, serde_json::json!({"cursor": step}));
    assert_eq!(c.state.rng, TrainRng::new(step, 0).state());
    let params = make_params();
    c.restore_params(&params).unwrap();
    for (name, v) in &params {
        let vals = v.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(
            vals.iter().all(|x| *x == step as f32),
            "{name} is not all {step}"
        );
    }
    let mut opt = AdamW::new(params, AdamWConfig::default()).unwrap();
    c.restore_optimizer(&mut opt).unwrap();
    assert_eq!(opt.step_count(), step, "optimiser state of another step");
    Some(step)
}

#[test]
fn kill_child_writer() {
    if let Some(dir) = std::env::var_os(ENV_DIR) {
        // Child mode: write until killed.
        writer_loop(Path::new(&dir), None);
        return;
    }
    // Plain run: a bounded loop, then the same checks the parent makes.
    let dir = tempfile::tempdir().unwrap();
    writer_loop(dir.path(), Some(3));
    assert_eq!(verify(dir.path()), Some(3));
    writer_loop(dir.path(), Some(5));
    assert_eq!(verify(dir.path()), Some(5));
}

#[test]
fn sigkill_at_random_moments_never_leaves_a_bad_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = TrainRng::new(20230705, 0);
    let mut last_step = 0;
    let mut completed_saves = 0;
    let mut interrupted = 0;
    // How long one save takes here (from the gaps between marks), so that the kill moments
    // spread over the whole save: file writes, renames, the latest pointer, pruning.
    let mut save_us: u64 = 4000;
    const ROUNDS: usize = 30;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args([
                "kill_child_writer",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let marks_wanted = 1 + rng.index(3);
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut marks = 0;
        let mut line = String::new();
        let mut prev_mark: Option<std::time::Instant> = None;
        while marks < marks_wanted {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 {
                panic!("round {round}: the writer exited early");
            }
            if line.starts_with(MARK) {
                marks += 1;
                let now = std::time::Instant::now();
                if let Some(p) = prev_mark {
                    save_us = (save_us + (now - p).as_micros() as u64) / 2;
                }
                prev_mark = Some(now);
            }
        }
        // Kill somewhere inside (or just after) the save that starts now.
        let delay = rng.index((save_us + save_us / 4) as usize + 1) as u64;
        std::thread::sleep(std::time::Duration::from_micros(delay));
        child.kill().unwrap();
        child.wait().unwrap();
        completed_saves += marks_wanted - 1;

        let leftovers = std::fs::read_dir(dir.path().join("checkpoints"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with('.')
            })
            .count();
        if leftovers > 0 {
            interrupted += 1;
        }
        let step = verify(dir.path());
        let step = step.unwrap_or(0);
        assert!(
            step >= last_step,
            "round {round}: went back from step {last_step} to {step}"
        );
        last_step = step;
    }
    assert!(
        last_step as usize >= completed_saves,
        "{last_step} < {completed_saves}"
    );
    eprintln!(
        "{ROUNDS} kills, {interrupted} of them left a half-written checkpoint; reached step \
         {last_step}; one save took ~{save_us} us"
    );
    assert!(
        interrupted > 0,
        "no kill landed inside a save; the test did not test anything"
    );
}
