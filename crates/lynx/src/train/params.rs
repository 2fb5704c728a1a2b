//! Which parameters a run trains (paper 2.2: bridge, adapters, frame positions; the vision
//! encoder and LLM frozen), their starting values (read from the given files, or freshly
//! initialised), and a `VarBuilder` that serves them as candle `Var`s beside the frozen rest.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use rand::RngCore;

use crate::model::weights::WeightStore;
use crate::train::config::TrainPart;
use crate::train::rng::TrainRng;

/// Whether the model parameter `name` belongs to one of `parts`.
pub fn is_trainable(name: &str, parts: &[TrainPart]) -> bool {
    parts.iter().any(|p| match p {
        TrainPart::Bridge => name.starts_with("bridge."),
        TrainPart::Adapter => name.contains(".output_adapter."),
        TrainPart::FramePos => name == "absolute_frame_pos_embed",
        TrainPart::VisionEncoder => name.starts_with("vision_encoder."),
        TrainPart::Llm => name.starts_with("LLM.") && !name.contains(".output_adapter."),
    })
}

fn normal(rng: &mut TrainRng, n: usize, std: f64) -> Vec<f32> {
    // Box-Muller: two uniforms give two independent standard normals.
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1 = ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = ((rng.next_u64() >> 11) as f64) / (1u64 << 53) as f64;
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        out.push((std * r * t.cos()) as f32);
        out.push((std * r * t.sin()) as f32);
    }
    out.truncate(n);
    out
}

fn uniform(rng: &mut TrainRng, n: usize, bound: f64) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let u = ((rng.next_u64() >> 11) as f64) / (1u64 << 53) as f64;
            ((2.0 * u - 1.0) * bound) as f32
        })
        .collect()
}

/// The starting value of a parameter that no file holds. Norm weights and adapter scalings
/// start at one, biases at zero, the adapter's up-projection at zero (so a fresh adapter leaves
/// the frozen LLM unchanged), the resampler latents ~ N(0, 1) as in Flamingo, position tables
/// ~ N(0, 0.02), LLM matrices ~ N(0, 0.02) as HF LLaMA, other matrices as PyTorch's
/// `nn.Linear`/`nn.Conv2d` default (uniform, bound 1/sqrt(fan_in)).
pub fn init_value(
    name: &str,
    shape: &[usize],
    rng: &mut TrainRng,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let n: usize = shape.iter().product();
    let last = name.rsplit('.').next().unwrap_or(name);
    let data = if shape.len() <= 1 && name != "bridge.latents" {
        let one = (last == "weight" && name.contains("norm")) || last == "scaling";
        vec![if one { 1.0 } else { 0.0 }; n]
    } else if name == "bridge.latents" {
        normal(rng, n, 1.0)
    } else if name == "absolute_frame_pos_embed" || last == "cls_token" || last == "pos_embed" {
        normal(rng, n, 0.02)
    } else if name.contains("adapter_up") {
        vec![0.0; n]
    } else if name.starts_with("LLM.") {
        normal(rng, n, 0.02)
    } else {
        let fan_in: usize = shape[1..].iter().product();
        uniform(rng, n, 1.0 / (fan_in.max(1) as f64).sqrt())
    };
    Tensor::from_vec(data, shape, device)
}

struct Inner {
    store: Arc<WeightStore>,
    parts: Vec<TrainPart>,
    vars: Mutex<BTreeMap<String, Var>>,
    rng: Mutex<TrainRng>,
    frozen: VarBuilder<'static>,
    dtype: DType,
}

/// Serves trainable parameters as `Var`s (f32) and the rest, frozen, from a weight store.
#[derive(Clone)]
pub struct TrainableParams(Arc<Inner>);

impl TrainableParams {
    /// `seed` drives the initialisation of parameters that no file holds; parameters are kept
    /// in `dtype` (f32 for training, f64 for gradient checks).
    pub fn new(
        store: Arc<WeightStore>,
        parts: &[TrainPart],
        seed: u64,
        device: &Device,
        dtype: DType,
    ) -> Self {
        let frozen = store.var_builder(dtype, device);
        Self(Arc::new(Inner {
            store,
            parts: parts.to_vec(),
            vars: Mutex::new(BTreeMap::new()),
            rng: Mutex::new(TrainRng::new(seed, 0x1417)),
            frozen,
            dtype,
        }))
    }

    /// A `VarBuilder` for building the model.
    pub fn var_builder(&self, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), self.0.dtype, device.clone())
    }

    /// The trainable parameters created so far, by name (sorted).
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.0
            .vars
            .lock()
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Names of trainable parameters that started from files (the rest were initialised).
    pub fn loaded_names(&self) -> Vec<String> {
        self.vars()
            .into_iter()
            .filter(|(n, _)| self.0.store.contains(n))
            .map(|(n, _)| n)
            .collect()
    }

    pub fn store(&self) -> &Arc<WeightStore> {
        &self.0.store
    }
}

impl SimpleBackend for TrainableParams {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let inner = &self.0;
        if !is_trainable(name, &inner.parts) {
            return inner.frozen.get(s, name)?.to_dtype(dtype);
        }
        let mut vars = inner
            .vars
            .lock()
            .map_err(|_| candle_core::Error::Msg("parameter table poisoned".into()))?;
        if let Some(v) = vars.get(name) {
            return Ok(v.as_tensor().clone());
        }
        let value = if inner.store.contains(name) {
            inner.frozen.get(s.clone(), name)?
        } else {
            let mut rng = inner
                .rng
                .lock()
                .map_err(|_| candle_core::Error::Msg("init rng poisoned".into()))?;
            init_value(name, s.dims(), &mut rng, dev)?
        };
        let var = Var::from_tensor(&value.to_dtype(inner.dtype)?.to_device(dev)?)?;
        vars.insert(name.to_string(), var.clone());
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        if is_trainable(name, &self.0.parts) {
            if let Some(v) = self.0.vars.lock().ok().and_then(|v| v.get(name).cloned()) {
                return Ok(v.as_tensor().clone());
            }
            let t = self.0.frozen.get_unchecked(name)?;
            let var = Var::from_tensor(&t.to_dtype(self.0.dtype)?.to_device(dev)?)?;
            if let Ok(mut vars) = self.0.vars.lock() {
                vars.insert(name.to_string(), var.clone());
            }
            return Ok(var.as_tensor().clone());
        }
        self.0.frozen.get_unchecked(name)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        is_trainable(name, &self.0.parts) || self.0.store.contains(name)
    }
}
