//! Training checkpoints (paper 2.3/2.4 runs are long; resume must be exact): trainable
//! parameters, optimiser state, data position, RNG state and step, written atomically.
//!
//! Layout of `output_dir`:
//! - `run.json`: the run id, the config hash and the config that made them;
//! - `checkpoints/step-000120/{params.safetensors, optim.safetensors, state.json}`: one
//!   checkpoint, first written into `checkpoints/.tmp-*` (files fsynced, folder fsynced) and
//!   then renamed into place, so a `step-*` folder is always complete; `state.json` also holds
//!   each file's size and CRC-32, checked when loading;
//! - `checkpoints/latest`: the name of the newest checkpoint, replaced atomically.
//!
//! A kill at any moment leaves at worst a `.tmp-*` or `.trash-*` folder, which is ignored and
//! cleaned up on the next start.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::atomic::{fsync_dir, write_atomic, write_new_synced};
use super::optim::AdamW;
use super::rng::RngState;
use super::st_io;
use crate::{Error, Result};

const RUN_FILE: &str = "run.json";
const CHECKPOINTS: &str = "checkpoints";
const LATEST: &str = "latest";
const PARAMS: &str = "params.safetensors";
const OPTIM: &str = "optim.safetensors";
const STATE: &str = "state.json";
const FORMAT: &str = "lynx-checkpoint-1";

/// Which run an output folder belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInfo {
    pub run_id: String,
    pub config_hash: String,
    /// The config whose hash is `config_hash` (used to name the keys that differ).
    pub config: serde_json::Value,
}

/// Everything besides tensors that a resumed run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainState {
    /// Updates done so far (the checkpoint is taken after update `step`).
    pub step: u64,
    /// The data position (the mixture sampler's state).
    pub data: serde_json::Value,
    /// The trainer's own RNG (augmentation).
    pub rng: RngState,
    /// Anything else the trainer wants back (running averages, token counts, ...).
    #[serde(default)]
    pub extra: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileInfo {
    bytes: u64,
    crc32: u32,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: String,
    run_id: String,
    config_hash: String,
    train: TrainState,
    files: BTreeMap<String, FileInfo>,
}

/// A loaded, verified checkpoint.
pub struct Checkpoint {
    pub dir: PathBuf,
    pub state: TrainState,
    params: HashMap<String, Tensor>,
    optim: Vec<u8>,
}

impl Checkpoint {
    /// The saved parameters (on the CPU).
    pub fn params(&self) -> &HashMap<String, Tensor> {
        &self.params
    }

    /// Copies the saved values into `params`: every one must be saved with its shape and dtype,
    /// and nothing else may be.
    pub fn restore_params(&self, params: &[(String, Var)]) -> Result<()> {
        let file = self.dir.join(PARAMS).display().to_string();
        for (name, var) in params {
            let t = self.params.get(name).ok_or_else(|| {
                Error::weights(
                    &file,
                    name,
                    "trainable parameter missing from the checkpoint",
                )
            })?;
            if t.shape() != var.shape() || t.dtype() != var.dtype() {
                return Err(Error::weights(
                    &file,
                    name,
                    format!(
                        "saved {:?} {:?}, the model has {:?} {:?}",
                        t.dtype(),
                        t.dims(),
                        var.dtype(),
                        var.dims()
                    ),
                ));
            }
        }
        let mut extra: Vec<&String> = self
            .params
            .keys()
            .filter(|k| !params.iter().any(|(n, _)| n == *k))
            .collect();
        extra.sort();
        if let Some(k) = extra.first() {
            return Err(Error::weights(
                &file,
                *k,
                "saved but not a trainable parameter of this run",
            ));
        }
        for (name, var) in params {
            var.set(&self.params[name].to_device(var.device())?)?;
        }
        Ok(())
    }

    /// Restores the optimiser's moments and step counts.
    pub fn restore_optimizer(&self, optim: &mut AdamW) -> Result<()> {
        optim.load_state_bytes(&self.optim, &self.dir.join(OPTIM).display().to_string())
    }
}

/// Writes, finds and prunes the checkpoints of one run in `output_dir`.
pub struct CheckpointManager {
    output_dir: PathBuf,
    dir: PathBuf,
    keep_last: usize,
    run: RunInfo,
}

impl CheckpointManager {
    /// Prepares `output_dir` for a run of `config` (its identity JSON, see
    /// `TrainConfig::identity`). Without `resume`, a folder that already holds checkpoints is
    /// an error (another run's, or this one's: say `--resume`). With `resume`, the stored
    /// config must be the same and the newest valid checkpoint is returned (None when there
    /// is none yet: the run starts from scratch).
    pub fn open(
        output_dir: &Path,
        config: serde_json::Value,
        keep_last: usize,
        resume: bool,
    ) -> Result<(Self, Option<Checkpoint>)> {
        if keep_last == 0 {
            return Err(Error::config("keep_last", "must be >= 1"));
        }
        let dir = output_dir.join(CHECKPOINTS);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        remove_leftovers(&dir)?;
        remove_temp_files(output_dir)?;
        let config_hash = config_hash(&config);
        let run_path = output_dir.join(RUN_FILE);
        let stored: Option<RunInfo> = match fs::read(&run_path) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
                Error::parse(
                    run_path.display().to_string(),
                    Some(e.line()),
                    e.to_string(),
                )
            })?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(&run_path, e)),
        };
        let steps = list_steps(&dir)?;
        if let Some(&(last, _)) = steps.last() {
            let who = stored.as_ref().map_or("an unknown run".to_string(), |r| {
                format!("run {}", r.run_id)
            });
            if !resume {
                return Err(Error::Invalid(format!(
                    "{} already holds checkpoints of {who} (newest: step {last}); pass --resume to \
                     continue it, or choose another output_dir",
                    output_dir.display()
                )));
            }
            let Some(stored) = stored else {
                return Err(Error::Invalid(format!(
                    "{} holds checkpoints but no {RUN_FILE}: it is not a lynx run folder this \
                     version can resume",
                    output_dir.display()
                )));
            };
            if stored.config_hash != config_hash {
                let mut keys = Vec::new();
                diff_keys(&stored.config, &config, "", &mut keys);
                return Err(Error::Invalid(format!(
                    "{} holds run {} trained with another config (differing keys: {}); resume \
                     with the same config or choose another output_dir",
                    output_dir.display(),
                    stored.run_id,
                    if keys.is_empty() {
                        "?".to_string()
                    } else {
                        keys.join(", ")
                    }
                )));
            }
            let mgr = Self {
                output_dir: output_dir.to_path_buf(),
                dir,
                keep_last,
                run: stored,
            };
            let ckpt = mgr.latest()?;
            if ckpt.is_none() {
                return Err(Error::Invalid(format!(
                    "{}: no valid checkpoint among {} step folders; move them away to start over",
                    mgr.dir.display(),
                    steps.len()
                )));
            }
            return Ok((mgr, ckpt));
        }
        // Nothing to protect: (re)start the run, keeping its id if the config is unchanged.
        let run = match stored {
            Some(r) if r.config_hash == config_hash => r,
            _ => RunInfo {
                run_id: new_run_id(&config_hash),
                config_hash,
                config,
            },
        };
        let json = serde_json::to_vec_pretty(&run).map_err(|e| Error::Invalid(e.to_string()))?;
        write_atomic(&run_path, &json)?;
        Ok((
            Self {
                output_dir: output_dir.to_path_buf(),
                dir,
                keep_last,
                run,
            },
            None,
        ))
    }

    /// The run's identity.
    pub fn run(&self) -> &RunInfo {
        &self.run
    }

    /// The output folder.
    pub fn output_dir(&self) -> &Path {
        &self.output_dir
    }

    /// The steps that have a checkpoint folder, ascending, with their folders.
    pub fn list(&self) -> Result<Vec<(u64, PathBuf)>> {
        list_steps(&self.dir)
    }

    /// Saves a checkpoint for `state.step` atomically, points `latest` at it and prunes all but
    /// the newest `keep_last`. Returns its folder.
    pub fn save(
        &self,
        params: &[(String, Var)],
        optim: &AdamW,
        state: &TrainState,
    ) -> Result<PathBuf> {
        let name = step_name(state.step);
        let tmp = self.dir.join(format!(".tmp-{name}-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;

        let tensors: Vec<(String, Tensor)> = params
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        let mut files = BTreeMap::new();
        let params_bytes = st_io::to_bytes(&tensors, HashMap::new())?;
        let crc = write_new_synced(&tmp.join(PARAMS), &params_bytes)?;
        files.insert(
            PARAMS.to_string(),
            FileInfo {
                bytes: params_bytes.len() as u64,
                crc32: crc,
            },
        );
        drop(params_bytes);
        let optim_bytes = optim.state_bytes()?;
        let crc = write_new_synced(&tmp.join(OPTIM), &optim_bytes)?;
        files.insert(
            OPTIM.to_string(),
            FileInfo {
                bytes: optim_bytes.len() as u64,
                crc32: crc,
            },
        );
        let state_file = StateFile {
            format: FORMAT.to_string(),
            run_id: self.run.run_id.clone(),
            config_hash: self.run.config_hash.clone(),
            train: state.clone(),
            files,
        };
        let json =
            serde_json::to_vec_pretty(&state_file).map_err(|e| Error::Invalid(e.to_string()))?;
        write_new_synced(&tmp.join(STATE), &json)?;
        fsync_dir(&tmp)?;

        let final_dir = self.dir.join(&name);
        if final_dir.exists() {
            // Re-saving a step (after resuming from an older one): move the old copy aside first
            // so the name only ever points at a complete folder.
            trash(&self.dir, &final_dir)?;
        }
        fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
        fsync_dir(&self.dir)?;
        write_atomic(&self.dir.join(LATEST), format!("{name}\n").as_bytes())?;
        self.prune(&name)?;
        Ok(final_dir)
    }

    /// The newest valid checkpoint: the one `latest` names if it verifies, else the highest
    /// step that does. Invalid ones are reported on stderr and skipped.
    pub fn latest(&self) -> Result<Option<Checkpoint>> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Ok(name) = fs::read_to_string(self.dir.join(LATEST)) {
            let name = name.trim();
            if parse_step_name(name).is_some() {
                candidates.push(self.dir.join(name));
            }
        }
        for (_, p) in list_steps(&self.dir)?.into_iter().rev() {
            if !candidates.contains(&p) {
                candidates.push(p);
            }
        }
        for dir in candidates {
            if !dir.exists() {
                continue;
            }
            match self.load(&dir) {
                Ok(c) => return Ok(Some(c)),
                Err(e) => eprintln!("warning: skipping checkpoint {}: {e}", dir.display()),
            }
        }
        Ok(None)
    }

    /// Loads and verifies the checkpoint in `dir` (sizes, CRCs, run id, formats).
    pub fn load(&self, dir: &Path) -> Result<Checkpoint> {
        let state_path = dir.join(STATE);
        let bytes = fs::read(&state_path).map_err(|e| Error::io(&state_path, e))?;
        let sf: StateFile = serde_json::from_slice(&bytes).map_err(|e| {
            Error::parse(
                state_path.display().to_string(),
                Some(e.line()),
                e.to_string(),
            )
        })?;
        let label = state_path.display().to_string();
        if sf.format != FORMAT {
            return Err(Error::parse(
                label,
                None,
                format!("unknown format `{}`", sf.format),
            ));
        }
        if sf.run_id != self.run.run_id {
            return Err(Error::parse(
                label,
                None,
                format!("belongs to run {}, not {}", sf.run_id, self.run.run_id),
            ));
        }
        let read_checked = |name: &str| -> Result<Vec<u8>> {
            let path = dir.join(name);
            let info = sf
                .files
                .get(name)
                .ok_or_else(|| Error::parse(&label, None, format!("does not list {name}")))?;
            let data = fs::read(&path).map_err(|e| Error::io(&path, e))?;
            if data.len() as u64 != info.bytes || crc32fast::hash(&data) != info.crc32 {
                return Err(Error::parse(
                    path.display().to_string(),
                    None,
                    "size or CRC-32 differs from state.json (damaged file)",
                ));
            }
            Ok(data)
        };
        let params_bytes = read_checked(PARAMS)?;
        let params = st_io::from_bytes(
            &params_bytes,
            &dir.join(PARAMS).display().to_string(),
            &Device::Cpu,
        )?
        .tensors;
        let optim = read_checked(OPTIM)?;
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            state: sf.train,
            params,
            optim,
        })
    }

    fn prune(&self, keep: &str) -> Result<()> {
        let steps = list_steps(&self.dir)?;
        let n_drop = steps.len().saturating_sub(self.keep_last);
        for (_, path) in steps.into_iter().take(n_drop) {
            if path.file_name().is_some_and(|n| n == keep) {
                continue;
            }
            trash(&self.dir, &path)?;
        }
        Ok(())
    }
}

/// `step-000120` (at least 6 digits; more for longer runs).
pub fn step_name(step: u64) -> String {
    format!("step-{step:06}")
}

fn parse_step_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("step-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn list_steps(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if let Some(step) = entry.file_name().to_str().and_then(parse_step_name) {
            if entry.path().is_dir() {
                out.push((step, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Renames `path` to a `.trash-*` name (atomic: it stops being a checkpoint at once), then
/// deletes it.
fn trash(dir: &Path, path: &Path) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let t = dir.join(format!(".trash-{name}-{}", std::process::id()));
    if t.exists() {
        fs::remove_dir_all(&t).map_err(|e| Error::io(&t, e))?;
    }
    fs::rename(path, &t).map_err(|e| Error::io(path, e))?;
    fsync_dir(dir)?;
    fs::remove_dir_all(&t).map_err(|e| Error::io(&t, e))
}

fn remove_leftovers(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tmp-") || name.starts_with(".trash-") {
            let p = entry.path();
            let r = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            r.map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

/// Removes temporaries of our atomic writes in `output_dir` (run.json, metrics.jsonl) left by a kill.
fn remove_temp_files(output_dir: &Path) -> Result<()> {
    for entry in fs::read_dir(output_dir).map_err(|e| Error::io(output_dir, e))? {
        let entry = entry.map_err(|e| Error::io(output_dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if (name.starts_with(".tmp-run.json-") || name.starts_with(".tmp-metrics.jsonl-"))
            && entry.path().is_file()
        {
            fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        }
    }
    Ok(())
}

/// FNV-1a 64 of the config with object keys sorted: stable across runs and versions.
pub fn config_hash(config: &serde_json::Value) -> String {
    let mut canon = String::new();
    canonical(config, &mut canon);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canon.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn canonical(v: &serde_json::Value, out: &mut String) {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                canonical(&m[k], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Dotted paths (`datasets[0].weight`) where `a` and `b` differ.
fn diff_keys(a: &serde_json::Value, b: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    use serde_json::Value::{Array, Object};
    match (a, b) {
        (Object(x), Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => diff_keys(u, v, &p, out),
                    _ => out.push(p),
                }
            }
        }
        (Array(x), Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                diff_keys(u, v, &format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push(if path.is_empty() {
            "(root)".to_string()
        } else {
            path.to_string()
        }),
        _ => {}
    }
}

fn new_run_id(hash: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("run-{now}-{}-{}", &hash[..8], std::process::id())
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
