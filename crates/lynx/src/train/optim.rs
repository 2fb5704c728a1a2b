//! AdamW with decoupled weight decay over named parameters, computed like PyTorch 2.2's
//! `torch.optim.AdamW` (single-tensor path, per-parameter step counts), plus gradient
//! accumulation and `clip_grad_norm_`; trains Lynx's bridge, adapters and frame positions.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};

use super::{atomic, st_io};
use crate::{Error, Result};

const STATE_FORMAT: &str = "lynx-adamw-1";
const META_KEY: &str = "lynx_adamw";

/// Hyper-parameters of [`AdamW`] other than the learning rate (which the schedule gives per step).
#[derive(Debug, Clone, PartialEq)]
pub struct AdamWConfig {
    /// Decoupled weight decay applied to the parameters that [`decays`] selects.
    pub weight_decay: f64,
    /// (beta1, beta2) of the moment averages.
    pub betas: [f64; 2],
    /// Added to the bias-corrected second-moment square root.
    pub eps: f64,
    /// Name substrings that exempt a parameter from weight decay (besides 1-D tensors).
    pub no_decay: Vec<String>,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            weight_decay: 0.05,
            betas: [0.9, 0.999],
            eps: 1e-8,
            no_decay: default_no_decay(),
        }
    }
}

/// The default no-decay name patterns: norms and biases.
pub fn default_no_decay() -> Vec<String> {
    vec!["norm".to_string(), "bias".to_string()]
}

/// Whether a parameter gets weight decay: tensors of rank >= 2 whose name contains none of
/// the `no_decay` substrings. 1-D tensors (norm weights, biases, adapter `scaling`) never decay.
pub fn decays(name: &str, rank: usize, no_decay: &[String]) -> bool {
    rank >= 2 && !no_decay.iter().any(|p| name.contains(p.as_str()))
}

/// Gradients of the trainable parameters by name, in f32, summed over micro-batches.
#[derive(Debug, Clone, Default)]
pub struct Gradients {
    grads: BTreeMap<String, Tensor>,
}

impl Gradients {
    /// No gradients yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `grad` to the gradient of `name` (the first one is stored as f32).
    pub fn add(&mut self, name: &str, grad: &Tensor) -> Result<()> {
        let grad = grad.to_dtype(DType::F32)?;
        let sum = match self.grads.get(name) {
            Some(prev) => prev.add(&grad)?,
            None => grad.copy()?,
        };
        self.grads.insert(name.to_string(), sum);
        Ok(())
    }

    /// The gradient of `name`, if it got one.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.grads.get(name)
    }

    /// How many parameters have a gradient.
    pub fn len(&self) -> usize {
        self.grads.len()
    }

    /// Whether no parameter has a gradient.
    pub fn is_empty(&self) -> bool {
        self.grads.is_empty()
    }

    /// Multiplies every gradient by `factor` (1 / grad_accum after summing micro-batches).
    pub fn scale(&mut self, factor: f64) -> Result<()> {
        for g in self.grads.values_mut() {
            *g = g.affine(factor, 0.0)?;
        }
        Ok(())
    }

    /// The global L2 norm: the norm of the per-parameter norms, as `clip_grad_norm_` computes it.
    pub fn global_norm(&self) -> Result<f32> {
        let mut sum_sq = 0f32;
        for g in self.grads.values() {
            let n = g.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
            sum_sq += n * n;
        }
        Ok(sum_sq.sqrt())
    }

    /// `torch.nn.utils.clip_grad_norm_(max_norm)`: scales all gradients by
    /// min(1, max_norm / (norm + 1e-6)) and returns the norm before clipping. A non-finite
    /// norm is returned without touching the gradients, so the caller can skip that step.
    pub fn clip_global_norm(&mut self, max_norm: f64) -> Result<f32> {
        let total = self.global_norm()?;
        if !total.is_finite() {
            return Ok(total);
        }
        let coef = (max_norm as f32 / (total + 1e-6)).min(1.0);
        if coef < 1.0 {
            for g in self.grads.values_mut() {
                let c = Tensor::new(coef, g.device())?;
                *g = g.broadcast_mul(&c)?;
            }
        }
        Ok(total)
    }
}

struct ParamState {
    name: String,
    var: Var,
    decay: bool,
    /// Multiplier of the scheduled learning rate (PyTorch: a parameter group with its own lr).
    lr_scale: f64,
    step: u64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

/// AdamW over named candle `Var`s; moments are f32 whatever the parameter dtype.
pub struct AdamW {
    cfg: AdamWConfig,
    params: Vec<ParamState>,
    step_count: u64,
}

impl AdamW {
    /// An optimiser for `params` (unique names). Decay follows [`decays`] with `cfg.no_decay`.
    pub fn new(params: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<Self> {
        let [b1, b2] = cfg.betas;
        if !(0.0..1.0).contains(&b1) || !(0.0..1.0).contains(&b2) {
            return Err(Error::config(
                "betas",
                format!("must be in [0, 1), got [{b1}, {b2}]"),
            ));
        }
        if cfg.eps.is_nan() || cfg.eps < 0.0 {
            return Err(Error::config("eps", "must be >= 0"));
        }
        let mut seen = std::collections::HashSet::new();
        let mut states = Vec::with_capacity(params.len());
        for (name, var) in params {
            if !seen.insert(name.clone()) {
                return Err(Error::Invalid(format!("parameter `{name}` is given twice")));
            }
            let shape = var.shape().clone();
            let dev = var.device().clone();
            states.push(ParamState {
                decay: decays(&name, shape.rank(), &cfg.no_decay),
                lr_scale: 1.0,
                exp_avg: Tensor::zeros(&shape, DType::F32, &dev)?,
                exp_avg_sq: Tensor::zeros(&shape, DType::F32, &dev)?,
                step: 0,
                name,
                var,
            });
        }
        Ok(Self {
            cfg,
            params: states,
            step_count: 0,
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.cfg
    }

    /// How many times [`AdamW::step`] ran.
    pub fn step_count(&self) -> u64 {
        self.step_count
    }

    /// The parameters with their names, in the order given to [`AdamW::new`].
    pub fn params(&self) -> Vec<(String, Var)> {
        self.params
            .iter()
            .map(|p| (p.name.clone(), p.var.clone()))
            .collect()
    }

    /// Whether `name` gets weight decay (None if it is not a parameter here).
    pub fn decays(&self, name: &str) -> Option<bool> {
        self.params.iter().find(|p| p.name == name).map(|p| p.decay)
    }

    /// Gives each parameter the learning rate `scale(name)` times the scheduled one, for the
    /// update and the weight decay alike, as a PyTorch parameter group with its own `lr` would.
    pub fn scale_lr(&mut self, scale: impl Fn(&str) -> f64) -> Result<()> {
        for p in self.params.iter_mut() {
            let s = scale(&p.name);
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::Invalid(format!(
                    "learning-rate scale of `{}` must be a number > 0, got {s}",
                    p.name
                )));
            }
            p.lr_scale = s;
        }
        Ok(())
    }

    /// The learning-rate multiplier of `name` (None if it is not a parameter here).
    pub fn lr_scale(&self, name: &str) -> Option<f64> {
        self.params
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.lr_scale)
    }

    /// Adds this backward pass's gradients of our parameters to `acc`.
    pub fn accumulate(&self, acc: &mut Gradients, store: &GradStore) -> Result<()> {
        for p in &self.params {
            if let Some(g) = store.get(p.var.as_tensor()) {
                acc.add(&p.name, g)?;
            }
        }
        Ok(())
    }

    /// One update with learning rate `lr`. Parameters without a gradient are left untouched
    /// (no decay, no moment update, their own step count unchanged), as in PyTorch.
    pub fn step(&mut self, grads: &Gradients, lr: f64) -> Result<()> {
        for name in grads.grads.keys() {
            if !self.params.iter().any(|p| &p.name == name) {
                return Err(Error::Invalid(format!(
                    "gradient for unknown parameter `{name}`"
                )));
            }
        }
        let cfg = self.cfg.clone();
        for p in self.params.iter_mut() {
            if let Some(g) = grads.get(&p.name) {
                let lr = lr * p.lr_scale;
                update(p, g, lr, &cfg)?;
            }
        }
        self.step_count += 1;
        Ok(())
    }

    /// The moments and step counts as safetensors bytes (`NAME.exp_avg`, `NAME.exp_avg_sq`;
    /// step counts in the metadata).
    pub fn state_bytes(&self) -> Result<Vec<u8>> {
        let mut tensors = Vec::with_capacity(2 * self.params.len());
        let mut steps = BTreeMap::new();
        for p in &self.params {
            tensors.push((format!("{}.exp_avg", p.name), p.exp_avg.clone()));
            tensors.push((format!("{}.exp_avg_sq", p.name), p.exp_avg_sq.clone()));
            steps.insert(p.name.clone(), p.step);
        }
        // One metadata key holding sorted JSON, so the file's bytes are deterministic (a map
        // with several keys would be written in hash order).
        let info = serde_json::json!({
            "format": STATE_FORMAT,
            "step_count": self.step_count,
            "param_steps": steps,
        });
        let meta = HashMap::from([(META_KEY.to_string(), info.to_string())]);
        st_io::to_bytes(&tensors, meta)
    }

    /// Restores [`AdamW::state_bytes`]; every parameter must be there with its shape, and
    /// nothing else. `file` names the source in errors.
    pub fn load_state_bytes(&mut self, bytes: &[u8], file: &str) -> Result<()> {
        let loaded = st_io::from_bytes(bytes, file, &Device::Cpu)?;
        let bad = |msg: &str| Error::parse(file, None, format!("optimiser state: {msg}"));
        let info: serde_json::Value = loaded
            .metadata
            .get(META_KEY)
            .and_then(|m| serde_json::from_str(m).ok())
            .ok_or_else(|| bad("not a lynx AdamW state (no metadata)"))?;
        if info["format"] != STATE_FORMAT {
            return Err(bad("not a lynx AdamW state (format)"));
        }
        let step_count = info["step_count"]
            .as_u64()
            .ok_or_else(|| bad("bad step_count"))?;
        let steps: BTreeMap<String, u64> = serde_json::from_value(info["param_steps"].clone())
            .map_err(|e| bad(&format!("param_steps: {e}")))?;
        let mut tensors = loaded.tensors;
        let mut restored = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let mut take = |suffix: &str| -> Result<Tensor> {
                let key = format!("{}.{suffix}", p.name);
                let t = tensors.remove(&key).ok_or_else(|| {
                    Error::weights(file, &key, "missing from the optimiser state")
                })?;
                if t.shape() != p.var.shape() || t.dtype() != DType::F32 {
                    return Err(Error::weights(
                        file,
                        &key,
                        format!(
                            "expected f32 {:?}, found {:?} {:?}",
                            p.var.dims(),
                            t.dtype(),
                            t.dims()
                        ),
                    ));
                }
                Ok(t.to_device(p.var.device())?)
            };
            let m = take("exp_avg")?;
            let v = take("exp_avg_sq")?;
            let step = *steps
                .get(&p.name)
                .ok_or_else(|| Error::weights(file, &p.name, "no step count"))?;
            restored.push((m, v, step));
        }
        let mut extra: Vec<&String> = tensors.keys().collect();
        extra.sort();
        if let Some(first) = extra.first() {
            return Err(Error::weights(
                file,
                *first,
                format!(
                    "is not a trainable parameter's state ({} such tensors)",
                    extra.len()
                ),
            ));
        }
        for (p, (m, v, step)) in self.params.iter_mut().zip(restored) {
            p.exp_avg = m;
            p.exp_avg_sq = v;
            p.step = step;
        }
        self.step_count = step_count;
        Ok(())
    }

    /// Writes the state to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        atomic::write_atomic(path, &self.state_bytes()?)
    }

    /// Reads the state written by [`AdamW::save`].
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        self.load_state_bytes(&bytes, &path.display().to_string())
    }
}

fn scalar(v: f64, dev: &Device) -> Result<Tensor> {
    Ok(Tensor::new(v as f32, dev)?)
}

/// One AdamW update of one parameter, in PyTorch's operation order, in f32.
fn update(p: &mut ParamState, grad: &Tensor, lr: f64, cfg: &AdamWConfig) -> Result<()> {
    let [b1, b2] = cfg.betas;
    let dev = p.var.device().clone();
    let g = grad.to_dtype(DType::F32)?;
    if g.shape() != p.var.shape() {
        return Err(Error::Invalid(format!(
            "gradient of `{}` has shape {:?}, the parameter {:?}",
            p.name,
            g.dims(),
            p.var.dims()
        )));
    }
    p.step += 1;
    let mut theta = p.var.as_tensor().to_dtype(DType::F32)?;
    if p.decay && cfg.weight_decay != 0.0 {
        theta = theta.affine(1.0 - lr * cfg.weight_decay, 0.0)?;
    }
    // exp_avg.lerp_(grad, 1 - beta1), with torch's two formulas either side of weight 0.5.
    let w = 1.0 - b1;
    let diff = g.sub(&p.exp_avg)?;
    p.exp_avg = if w < 0.5 {
        p.exp_avg.add(&diff.affine(w, 0.0)?)?
    } else {
        g.sub(&diff.affine(1.0 - w, 0.0)?)?
    };
    // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    p.exp_avg_sq = p
        .exp_avg_sq
        .affine(b2, 0.0)?
        .add(&g.affine(1.0 - b2, 0.0)?.mul(&g)?)?;
    let step = p.step as f64;
    let bias_correction1 = 1.0 - b1.powf(step);
    let bias_correction2 = 1.0 - b2.powf(step);
    let step_size = lr / bias_correction1;
    let denom = p
        .exp_avg_sq
        .sqrt()?
        .broadcast_div(&scalar(bias_correction2.sqrt(), &dev)?)?
        .affine(1.0, cfg.eps)?;
    let delta = p.exp_avg.affine(-step_size, 0.0)?.div(&denom)?;
    let theta = theta.add(&delta)?;
    p.var.set(&theta.to_dtype(p.var.dtype())?)?;
    Ok(())
}

#[cfg(test)]
#[path = "optim_tests.rs"]
mod tests;
