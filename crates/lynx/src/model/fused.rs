//! One-pass CPU kernels, forward and backward, for the element-wise layers of training (issue 4's
//! "under about an hour on a 2-core CPU"): layer norm (EVA ViT, resampler), LLaMA's RMS norm,
//! softmax over the last dimension and exact GELU.
//!
//! Composed from candle's tensor ops these are 5 to 9 kernels forward and about twice that
//! backward, each a full pass over memory with its own allocation; on two cores they took
//! nearly half of the vision stage (a `perf` profile: unary maps 16%, binary maps 16%, erf 6%,
//! memset 5%, against 15% in matrix products). Each op here is one pass each way. They apply to
//! contiguous f32 CPU tensors; `nn.rs` keeps the composed path for everything else (f64
//! gradient checks, CUDA).

use std::sync::OnceLock;

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape, Storage, Tensor,
};
use rayon::prelude::*;

/// Rows per parallel task: small enough to split a ViT batch, large enough to amortise.
const ROWS_PER_TASK: usize = 64;

/// True when the fused kernels can run on these tensors.
pub fn applies(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

fn slice<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("{op}: expected a contiguous f32 tensor"),
    }
}

/// A tensor's values as one contiguous f32 vector.
fn values(t: &Tensor, op: &str) -> candle_core::Result<Vec<f32>> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => Ok(slice(s, layout, op)?.to_vec()),
        _ => candle_core::bail!("{op}: expected a CPU tensor"),
    }
}

fn last_dim(l: &Layout, op: &str) -> candle_core::Result<usize> {
    match l.dims().last() {
        Some(&d) if d > 0 => Ok(d),
        _ => candle_core::bail!("{op}: empty last dimension"),
    }
}

/// Runs `f(out_rows, in_rows)` over blocks of rows, in parallel when there are several blocks.
fn rows_mut<F>(out: &mut [f32], input: &[f32], d: usize, f: F)
where
    F: Fn(&mut [f32], &[f32]) + Sync + Send,
{
    let block = ROWS_PER_TASK * d;
    if input.len() > block {
        out.par_chunks_mut(block)
            .zip(input.par_chunks(block))
            .for_each(|(o, i)| f(o, i));
    } else {
        f(out, input);
    }
}

/// Per-row statistics of a norm: the mean (zero for RMS norm) and 1 / sqrt(var + eps).
#[inline]
fn row_stats(x: &[f32], eps: f32, centre: bool) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = if centre {
        x.iter().sum::<f32>() / n
    } else {
        0.0
    };
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// The backward pass of a norm over rows: `dx` written, `(dw, db)` summed over rows.
/// With `x̂ = (x - mean)·r` and `gw = g·w`: `dx = r·(gw - mean(gw)·c - x̂·mean(gw·x̂))`, where
/// `c` is 1 for layer norm and 0 for RMS norm; `dw = Σ g·x̂`, `db = Σ g`.
fn norm_backward(
    x: &[f32],
    w: &[f32],
    g: &[f32],
    eps: f32,
    centre: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = w.len();
    let mut dx = vec![0f32; x.len()];
    let block = ROWS_PER_TASK * d;
    let part = |dx: &mut [f32], x: &[f32], g: &[f32]| {
        let (mut dw, mut db) = (vec![0f32; d], vec![0f32; d]);
        for ((dxr, xr), gr) in dx.chunks_mut(d).zip(x.chunks(d)).zip(g.chunks(d)) {
            let (mean, r) = row_stats(xr, eps, centre);
            let (mut sum_gw, mut sum_gwx) = (0f32, 0f32);
            for j in 0..d {
                let xh = (xr[j] - mean) * r;
                let gw = gr[j] * w[j];
                sum_gw += gw;
                sum_gwx += gw * xh;
                dw[j] += gr[j] * xh;
                db[j] += gr[j];
            }
            let m_gw = if centre { sum_gw / d as f32 } else { 0.0 };
            let m_gwx = sum_gwx / d as f32;
            for j in 0..d {
                let xh = (xr[j] - mean) * r;
                dxr[j] = r * (gr[j] * w[j] - m_gw - xh * m_gwx);
            }
        }
        (dw, db)
    };
    // The blocks' sums are added in block order, not in rayon's (which depends on scheduling):
    // float addition is not associative, and the recipe must give the same weights every run.
    let parts: Vec<(Vec<f32>, Vec<f32>)> = if x.len() > block {
        dx.par_chunks_mut(block)
            .zip(x.par_chunks(block))
            .zip(g.par_chunks(block))
            .map(|((dx, x), g)| part(dx, x, g))
            .collect()
    } else {
        dx.chunks_mut(block)
            .zip(x.chunks(block))
            .zip(g.chunks(block))
            .map(|((dx, x), g)| part(dx, x, g))
            .collect()
    };
    let (mut dw, mut db) = (vec![0f32; d], vec![0f32; d]);
    for (pw, pb) in parts {
        dw.iter_mut().zip(&pw).for_each(|(a, b)| *a += b);
        db.iter_mut().zip(&pb).for_each(|(a, b)| *a += b);
    }
    (dx, dw, db)
}

/// Layer norm over the last dimension: `(x - mean) / sqrt(var + eps) · w + b`.
pub struct LayerNormOp {
    pub eps: f32,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let op = self.name();
        let (x, w, b) = (slice(s1, l1, op)?, slice(s2, l2, op)?, slice(s3, l3, op)?);
        let d = last_dim(l1, op)?;
        if w.len() != d || b.len() != d {
            candle_core::bail!("{op}: weight and bias must have {d} values");
        }
        let mut y = vec![0f32; x.len()];
        rows_mut(&mut y, x, d, |y, x| {
            for (yr, xr) in y.chunks_mut(d).zip(x.chunks(d)) {
                let (mean, r) = row_stats(xr, self.eps, true);
                for j in 0..d {
                    yr[j] = (xr[j] - mean) * r * w[j] + b[j];
                }
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = self.name();
        let (xs, ws, gs) = (values(x, op)?, values(w, op)?, values(grad, op)?);
        let (dx, dw, db) = norm_backward(&xs, &ws, &gs, self.eps, true);
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), x.device())?),
            Some(Tensor::from_vec(dw, w.shape(), w.device())?),
            Some(Tensor::from_vec(db, b.shape(), b.device())?),
        ))
    }
}

/// LLaMA's RMS norm over the last dimension: `x / sqrt(mean(x²) + eps) · w`.
pub struct RmsNormOp {
    pub eps: f32,
}

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let op = self.name();
        let (x, w) = (slice(s1, l1, op)?, slice(s2, l2, op)?);
        let d = last_dim(l1, op)?;
        if w.len() != d {
            candle_core::bail!("{op}: weight must have {d} values");
        }
        let mut y = vec![0f32; x.len()];
        rows_mut(&mut y, x, d, |y, x| {
            for (yr, xr) in y.chunks_mut(d).zip(x.chunks(d)) {
                let (_, r) = row_stats(xr, self.eps, false);
                for j in 0..d {
                    yr[j] = xr[j] * r * w[j];
                }
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let op = self.name();
        let (xs, ws, gs) = (values(x, op)?, values(w, op)?, values(grad, op)?);
        let (dx, dw, _) = norm_backward(&xs, &ws, &gs, self.eps, false);
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), x.device())?),
            Some(Tensor::from_vec(dw, w.shape(), w.device())?),
        ))
    }
}

/// Softmax over the last dimension; the backward pass reads the output:
/// `dx = y · (g - Σ g·y)`.
pub struct SoftmaxOp;

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let op = self.name();
        let x = slice(s, l, op)?;
        let d = last_dim(l, op)?;
        let mut y = vec![0f32; x.len()];
        rows_mut(&mut y, x, d, |y, x| {
            for (yr, xr) in y.chunks_mut(d).zip(x.chunks(d)) {
                let max = xr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for (o, &v) in yr.iter_mut().zip(xr) {
                    *o = (v - max).exp();
                    sum += *o;
                }
                let inv = 1.0 / sum;
                yr.iter_mut().for_each(|o| *o *= inv);
            }
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let op = self.name();
        let (ys, gs) = (values(res, op)?, values(grad, op)?);
        let d = *res.dims().last().unwrap_or(&1);
        let mut dx = gs.clone();
        rows_mut(&mut dx, &ys, d, |dx, y| {
            for (gr, yr) in dx.chunks_mut(d).zip(y.chunks(d)) {
                let dot: f32 = gr.iter().zip(yr).map(|(g, y)| g * y).sum();
                gr.iter_mut().zip(yr).for_each(|(g, y)| *g = y * (*g - dot));
            }
        });
        Ok(Some(Tensor::from_vec(dx, res.shape(), res.device())?))
    }
}

/// erf(x) = x · P(x²) / Q(x²) on |x| <= CLAMP, lowest degree first (tools/fit_erf.py).
const P: [f32; 7] = [
    1.128_379_2e0,
    1.845_643e-1,
    5.435_293e-2,
    3.838_943_3e-3,
    3.843_171_2e-4,
    4.825_823_6e-6,
    -1.388_347_6e-8,
];
const Q: [f32; 6] = [
    1.0,
    4.968_994e-1,
    1.138_011_3e-1,
    1.545_768e-2,
    1.311_689_2e-3,
    6.444_452_3e-5,
];
/// Beyond this erf is ±1 to f32 precision.
const CLAMP: f32 = 3.92;

/// True when the vectorised GELU loop can run (AVX2 and FMA).
pub fn simd_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// erf of `z`, within 4e-7 of the exact value.
#[inline(always)]
fn erf(z: f32) -> f32 {
    let z = z.clamp(-CLAMP, CLAMP);
    let t = z * z;
    let mut num = P[6];
    for c in P[..6].iter().rev() {
        num = num.mul_add(t, *c);
    }
    let mut den = Q[5];
    for c in Q[..5].iter().rev() {
        den = den.mul_add(t, *c);
    }
    z * num / den
}

#[inline(always)]
fn gelu_one(v: f32) -> f32 {
    0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2))
}

/// d gelu / dx = Φ(x) + x·φ(x).
#[inline(always)]
fn gelu_grad_one(v: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let cdf = 0.5 * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
    cdf + v * INV_SQRT_2PI * (-0.5 * v * v).exp()
}

/// `ys[i] = f(xs[i], gs[i])`, compiled with AVX2 and FMA so the loop vectorises.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn map_simd(xs: &[f32], ys: &mut [f32], grad: bool) {
    map_plain(xs, ys, grad)
}

#[inline(always)]
fn map_plain(xs: &[f32], ys: &mut [f32], grad: bool) {
    if grad {
        // `ys` holds the incoming gradient.
        for (y, &v) in ys.iter_mut().zip(xs) {
            *y *= gelu_grad_one(v);
        }
    } else {
        for (y, &v) in ys.iter_mut().zip(xs) {
            *y = gelu_one(v);
        }
    }
}

fn gelu_map(xs: &[f32], ys: &mut [f32], grad: bool) {
    const CHUNK: usize = 1 << 14;
    let run = |(y, x): (&mut [f32], &[f32])| {
        #[cfg(target_arch = "x86_64")]
        if simd_available() {
            // SAFETY: AVX2 and FMA were detected.
            return unsafe { map_simd(x, y, grad) };
        }
        map_plain(x, y, grad)
    };
    if candle_core::utils::get_num_threads() > 1 && xs.len() > 4 * CHUNK {
        ys.par_chunks_mut(CHUNK)
            .zip(xs.par_chunks(CHUNK))
            .for_each(run);
    } else {
        run((ys, xs));
    }
}

/// Exact GELU, `0.5 · x · (1 + erf(x / √2))`, with its erf from a rational fit.
pub struct GeluErfOp;

impl CustomOp1 for GeluErfOp {
    fn name(&self) -> &'static str {
        "fused-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let xs = slice(s, l, self.name())?;
        let mut ys = vec![0f32; xs.len()];
        gelu_map(xs, &mut ys, false);
        Ok((CpuStorage::F32(ys), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let op = self.name();
        let xs = values(x, op)?;
        let mut gs = values(grad, op)?;
        gelu_map(&xs, &mut gs, true);
        Ok(Some(Tensor::from_vec(gs, x.shape(), x.device())?))
    }
}

#[cfg(test)]
#[path = "fused_tests.rs"]
mod tests;
