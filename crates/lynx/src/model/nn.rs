//! Shared layers of the model files: a linear layer whose frozen weight costs no gradient, and
//! norms/softmax/GELU that take candle's fused kernels at inference and differentiable ones in
//! training.
//!
//! candle's fused `softmax_last_dim`, `rms_norm` and `layer_norm` have no backward pass, and its
//! matmul backward always computes the right-hand operand's gradient. Training Lynx (paper 2.3)
//! sends gradients through the frozen LLM to the bridge, so both matter here. In training, f32 on
//! the CPU takes the one-pass kernels of `fused.rs`; other dtypes and devices take candle's ops.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Module, Shape, Storage, Tensor, D};
use candle_nn::VarBuilder;

use super::fused;

/// `x` in f32, or as is when it is already f64 (gradient checks run the model in f64).
pub fn at_least_f32(x: &Tensor) -> candle_core::Result<Tensor> {
    match x.dtype() {
        DType::F64 | DType::F32 => Ok(x.clone()),
        _ => x.to_dtype(DType::F32),
    }
}

/// True when gradients must flow through an op on these tensors.
fn tracks(ts: &[&Tensor]) -> bool {
    ts.iter().any(|t| t.track_op())
}

/// `x @ w^T` whose backward pass yields the gradient of `x` only: `w` is frozen.
struct FrozenMatmul {
    weight: Tensor,
}

impl FrozenMatmul {
    fn bmnk(&self, layout: &Layout) -> candle_core::Result<(usize, usize, usize, usize)> {
        let (m, k) = layout.shape().dims2()?;
        let (n, k2) = self.weight.dims2()?;
        if k != k2 {
            candle_core::bail!("frozen linear: input width {k} but weight is [{n}, {k2}]");
        }
        Ok((1, m, n, k))
    }
}

impl CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let bmnk = self.bmnk(l)?;
        let (ws, wl) = self.weight.storage_and_layout();
        let Storage::Cpu(ws) = &*ws else {
            candle_core::bail!("frozen linear: weight is not on the CPU");
        };
        let out = s.matmul(ws, bmnk, l, &wl.transpose(0, 1)?)?;
        Ok((out, Shape::from((bmnk.1, bmnk.2))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s: &candle_core::CudaStorage,
        l: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let bmnk = self.bmnk(l)?;
        let (ws, wl) = self.weight.storage_and_layout();
        let Storage::Cuda(ws) = &*ws else {
            candle_core::bail!("frozen linear: weight is not on the GPU");
        };
        let out = s.matmul(ws, bmnk, l, &wl.transpose(0, 1)?)?;
        Ok((out, Shape::from((bmnk.1, bmnk.2))))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad_res.matmul(&self.weight)?))
    }
}

/// A linear layer `y = x W^T + b` with the checkpoint's `weight` [out, in] and optional `bias`.
///
/// When `W` is not a trainable variable but the input carries gradients, the product goes
/// through [`FrozenMatmul`] so backward does not compute a weight gradient nobody uses.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl std::fmt::Debug for FrozenMatmul {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FrozenMatmul({:?})", self.weight.shape())
    }
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// Loads `weight` [out, in] (and `bias` [out] when `bias` is set) under `vb`.
    pub fn load(vb: VarBuilder, in_dim: usize, out_dim: usize, bias: bool) -> crate::Result<Self> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = if bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Stores a frozen CPU weight input-major (`[in, out]` in memory; [`weight`](Self::weight)
    /// becomes a transposed view of it, same values and shape). For layers that always see
    /// 32 to a few hundred rows, such as the resampler's latents, gemm then reads the weight
    /// without transposing it while packing, about 1.3–2× faster on the CPU. Not for layers
    /// that decode one row at a time from weights larger than the cache: those read the
    /// `[out, in]` layout faster. Trainable weights (variables) are left as they are, since a
    /// copy would not see the optimiser's updates.
    pub fn into_input_major(self) -> Self {
        let w = &self.weight;
        let applies = w.device().is_cpu() && !w.is_variable() && w.rank() == 2 && w.is_contiguous();
        match w.t().and_then(|t| t.contiguous()).and_then(|t| t.t()) {
            Ok(view) if applies => Self {
                weight: view,
                bias: self.bias,
            },
            _ => self,
        }
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = dims.last().copied().unwrap_or(0);
        let rows = x.elem_count() / in_dim.max(1);
        let x2 = x.reshape((rows, in_dim))?;
        let y = if x2.track_op() && !self.weight.track_op() {
            x2.contiguous()?
                .apply_op1_arc(std::sync::Arc::new(Box::new(FrozenMatmul {
                    weight: self.weight.contiguous()?,
                })))?
        } else if let Some(y) = crate::model::small_matmul::try_matmul_t(&x2, &self.weight)? {
            y
        } else {
            x2.matmul(&self.weight.t()?)?
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims;
        if let Some(last) = out_dims.last_mut() {
            *last = self.weight.dim(0)?;
        }
        y.reshape(out_dims)
    }
}

/// LayerNorm over the last dimension with `weight` and `bias`.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn load(vb: VarBuilder, dim: usize, eps: f64) -> crate::Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            bias: vb.get(dim, "bias")?,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        // candle's fused kernel has no backward pass and no f64 version.
        if fused::applies(&[x, &self.weight, &self.bias]) && tracks(&[x, &self.weight, &self.bias])
        {
            let op = fused::LayerNormOp {
                eps: self.eps as f32,
            };
            x.contiguous()?
                .apply_op3(&self.weight.contiguous()?, &self.bias.contiguous()?, op)
        } else if tracks(&[x, &self.weight, &self.bias]) || x.dtype() == DType::F64 {
            let dtype = x.dtype();
            let x = at_least_f32(x)?;
            let mean = x.mean_keepdim(D::Minus1)?;
            let centered = x.broadcast_sub(&mean)?;
            let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
            let normed = centered.broadcast_div(&(var + self.eps)?.sqrt()?)?;
            normed
                .to_dtype(dtype)?
                .broadcast_mul(&self.weight)?
                .broadcast_add(&self.bias)
        } else {
            candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps as f32)
        }
    }
}

/// LLaMA's RMSNorm, computed in f32 as HF transformers does.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub fn load(vb: VarBuilder, dim: usize, eps: f64) -> crate::Result<Self> {
        Ok(Self {
            weight: vb.get(dim, "weight")?,
            eps,
        })
    }
}

impl Module for RmsNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if fused::applies(&[x, &self.weight]) && tracks(&[x, &self.weight]) {
            let op = fused::RmsNormOp {
                eps: self.eps as f32,
            };
            x.contiguous()?.apply_op2(&self.weight.contiguous()?, op)
        } else if tracks(&[x, &self.weight]) || x.dtype() == DType::F64 {
            let dtype = x.dtype();
            let xf = at_least_f32(x)?;
            let var = xf.sqr()?.mean_keepdim(D::Minus1)?;
            let normed = xf.broadcast_div(&(var + self.eps)?.sqrt()?)?;
            normed.to_dtype(dtype)?.broadcast_mul(&self.weight)
        } else {
            candle_nn::ops::rms_norm(x, &self.weight, self.eps as f32)
        }
    }
}

/// Softmax over the last dimension in f32, differentiable when its input tracks gradients.
pub fn softmax_last_dim_f32(x: &Tensor) -> candle_core::Result<Tensor> {
    let dtype = x.dtype();
    let xf = at_least_f32(x)?;
    let y = if xf.track_op() && fused::applies(&[&xf]) {
        xf.contiguous()?.apply_op1(fused::SoftmaxOp)?
    } else if xf.track_op() || xf.dtype() == DType::F64 {
        candle_nn::ops::softmax(&xf, D::Minus1)?
    } else {
        candle_nn::ops::softmax_last_dim(&xf)?
    };
    y.to_dtype(dtype)
}

/// GELU, exact (erf) form: `0.5 · x · (1 + erf(x / √2))`, as torch's `nn.GELU()` (the release's
/// ViT and resampler). Differentiable when `x` tracks gradients; otherwise, for contiguous f32 on
/// a CPU with AVX2/FMA, a vectorised kernel replaces candle's, which calls the scalar libm `erff`
/// per element (an eighth of the ViT's time). Its erf is a rational fit within 4e-7 of the
/// exact value (tools/fit_erf.py); libm's is within 5e-8, torch's vectorised one is also a fit.
pub fn gelu_erf(x: &Tensor) -> candle_core::Result<Tensor> {
    if !fused::applies(&[x]) {
        return x.gelu_erf();
    }
    if x.track_op() {
        x.contiguous()?.apply_op1(fused::GeluErfOp)
    } else if fused::simd_available() {
        x.contiguous()?.apply_op1_no_bwd(&fused::GeluErfOp)
    } else {
        x.gelu_erf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn frozen_linear_gradient_matches_plain_matmul() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1., (5, 3), &dev)?;
        let b = Tensor::randn(0f32, 1., 5, &dev)?;
        let x = Var::from_tensor(&Tensor::randn(0f32, 1., (2, 4, 3), &dev)?)?;
        let frozen = Linear::new(w.clone(), Some(b.clone()));
        let y = frozen.forward(x.as_tensor())?;
        let reference = x.as_tensor().broadcast_matmul(&w.t()?)?.broadcast_add(&b)?;
        let diff = (&y - &reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "forward differs by {diff}");
        let grads = (y.sqr()?.sum_all()?).backward()?;
        let g = grads.get(x.as_tensor()).expect("x has a gradient");
        let g_ref = (reference * 2.0)?.broadcast_matmul(&w)?;
        let diff = (g - g_ref)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-4, "gradient differs by {diff}");
        assert!(grads.get(&w).is_none(), "a frozen weight got a gradient");
        Ok(())
    }

    #[test]
    fn differentiable_norms_match_fused_kernels() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 2., (3, 7, 16), &dev)?;
        let w = Tensor::randn(1f32, 0.1, 16, &dev)?;
        let b = Tensor::randn(0f32, 0.1, 16, &dev)?;
        let xv = Var::from_tensor(&x)?;
        let ln = LayerNorm {
            weight: w.clone(),
            bias: b,
            eps: 1e-5,
        };
        let d = (ln.forward(&x)? - ln.forward(xv.as_tensor())?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(d < 1e-5, "layer norm paths differ by {d}");
        let rms = RmsNorm {
            weight: w,
            eps: 1e-6,
        };
        let d = (rms.forward(&x)? - rms.forward(xv.as_tensor())?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(d < 1e-5, "rms norm paths differ by {d}");
        let s1 = softmax_last_dim_f32(&x)?;
        let s2 = softmax_last_dim_f32(xv.as_tensor())?;
        let d = (s1 - s2)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(d < 1e-6, "softmax paths differ by {d}");
        Ok(())
    }

    #[test]
    fn input_major_weights_give_the_same_products() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1., (40, 24), &dev)?;
        let b = Tensor::randn(0f32, 1., 40, &dev)?;
        let plain = Linear::new(w.clone(), Some(b.clone()));
        let moved = Linear::new(w.clone(), Some(b)).into_input_major();
        assert!(!moved.weight().is_contiguous() && moved.weight().t()?.is_contiguous());
        assert_eq!(moved.weight().to_vec2::<f32>()?, w.to_vec2::<f32>()?);
        for rows in [1, 3, 33] {
            let x = Tensor::randn(0f32, 1., (2, rows, 24), &dev)?;
            let d = (plain.forward(&x)? - moved.forward(&x)?)?
                .abs()?
                .max_all()?
                .to_scalar::<f32>()?;
            assert!(d < 1e-5, "{rows} rows differ by {d}");
        }
        // A trainable weight keeps its storage, so optimiser updates stay visible.
        let var = Var::from_tensor(&w)?;
        let trained = Linear::new(var.as_tensor().clone(), None).into_input_major();
        assert!(trained.weight().is_contiguous() && trained.weight().is_variable());
        Ok(())
    }

    #[test]
    fn fast_gelu_matches_candles_erf_gelu() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let n = 200_001;
        let xs: Vec<f32> = (0..n)
            .map(|i| -12.0 + 24.0 * i as f32 / (n - 1) as f32)
            .collect();
        let x = Tensor::from_vec(xs, n, &dev)?;
        let fast = gelu_erf(&x)?.to_vec1::<f32>()?;
        let exact = x.gelu_erf()?.to_vec1::<f32>()?;
        let xv = x.to_vec1::<f32>()?;
        for ((f, e), v) in fast.iter().zip(&exact).zip(&xv) {
            // 4e-7 from the erf fit, times |x| / 2, plus float rounding.
            let tol = 3e-7 * v.abs().max(1.0);
            assert!((f - e).abs() <= tol, "gelu({v}): {f} vs {e}");
        }
        assert!(gelu_erf(&Tensor::new(&[f32::NAN], &dev)?)?.to_vec1::<f32>()?[0].is_nan());
        // Strided input and the differentiable path give the same values.
        let m = Tensor::randn(0f32, 2., (6, 5), &dev)?.t()?;
        let d = (gelu_erf(&m)? - m.gelu_erf()?)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(d < 3e-6, "strided input differs by {d}");
        let v = Var::from_tensor(&m)?;
        let g = gelu_erf(v.as_tensor())?;
        assert!(g.track_op());
        Ok(())
    }
}
