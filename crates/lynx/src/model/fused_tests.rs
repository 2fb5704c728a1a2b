//! Parity of the fused kernels with the same layers composed from candle's ops in f64: values
//! and the gradients of every input, for a loss `Σ y · r` with a random `r`.

use candle_core::{DType, Device, Tensor, Var, D};

use super::*;

type Grads = Vec<Tensor>;

/// Runs `f` on f32 variables (the fused path) and `reference` on f64 copies, and checks that
/// the outputs and the gradients of all inputs agree within `tol` (relative to the largest value).
fn check(
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> candle_core::Result<Tensor>,
    reference: impl Fn(&[Tensor]) -> candle_core::Result<Tensor>,
    tol: f64,
) -> candle_core::Result<()> {
    let run = |dtype: DType, g: &dyn Fn(&[Tensor]) -> candle_core::Result<Tensor>| {
        let vars = inputs
            .iter()
            .map(|t| Var::from_tensor(&t.to_dtype(dtype)?))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let y = g(&ts)?;
        // The same `r` for both runs, whatever the dtype.
        let r = Tensor::arange(0u32, y.elem_count() as u32, &Device::Cpu)?
            .to_dtype(DType::F64)?
            .affine(0.37, 0.0)?
            .sin()?
            .reshape(y.shape())?;
        let grads = (y.to_dtype(DType::F64)? * r)?.sum_all()?.backward()?;
        let gs: Grads = ts
            .iter()
            .map(|t| {
                grads
                    .get(t)
                    .cloned()
                    .ok_or_else(|| candle_core::Error::Msg("an input got no gradient".into()))
            })
            .collect::<candle_core::Result<_>>()?;
        Ok::<_, candle_core::Error>((y, gs))
    };
    let (y, gs) = run(DType::F32, &f)?;
    let (y_ref, gs_ref) = run(DType::F64, &reference)?;
    let close = |a: &Tensor, b: &Tensor, what: &str| -> candle_core::Result<()> {
        let a = a.to_dtype(DType::F64)?;
        let scale = b.abs()?.max_all()?.to_scalar::<f64>()?.max(1.0);
        let d = (a - b)?.abs()?.max_all()?.to_scalar::<f64>()? / scale;
        assert!(d < tol, "{what} differs by {d} (relative)");
        Ok(())
    };
    close(&y, &y_ref, "output")?;
    for (i, (g, g_ref)) in gs.iter().zip(&gs_ref).enumerate() {
        close(g, g_ref, &format!("gradient of input {i}"))?;
    }
    Ok(())
}

fn randn(shape: &[usize], mean: f32, std: f32) -> candle_core::Result<Tensor> {
    Tensor::randn(mean, std, shape, &Device::Cpu)
}

fn composed_norm(
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    eps: f64,
) -> candle_core::Result<Tensor> {
    let centered = match b {
        Some(_) => x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?,
        None => x.clone(),
    };
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let y = centered
        .broadcast_div(&(var + eps)?.sqrt()?)?
        .broadcast_mul(w)?;
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

#[test]
fn layer_norm_matches_the_composed_layer() -> candle_core::Result<()> {
    // 300 rows: more than one parallel block, and a partial last one.
    for shape in [vec![3, 5, 16], vec![2, 150, 24]] {
        let d = shape[2];
        let inputs = [
            randn(&shape, 0.5, 2.0)?,
            randn(&[d], 1.0, 0.2)?,
            randn(&[d], 0.0, 0.2)?,
        ];
        check(
            &inputs,
            |t| t[0].apply_op3(&t[1], &t[2], LayerNormOp { eps: 1e-6 }),
            |t| composed_norm(&t[0], &t[1], Some(&t[2]), 1e-6),
            2e-5,
        )?;
    }
    Ok(())
}

#[test]
fn rms_norm_matches_the_composed_layer() -> candle_core::Result<()> {
    for shape in [vec![4, 7, 32], vec![3, 100, 8]] {
        let d = shape[2];
        let inputs = [randn(&shape, 0.0, 1.5)?, randn(&[d], 1.0, 0.2)?];
        check(
            &inputs,
            |t| t[0].apply_op2(&t[1], RmsNormOp { eps: 1e-6 }),
            |t| composed_norm(&t[0], &t[1], None, 1e-6),
            2e-5,
        )?;
    }
    Ok(())
}

#[test]
fn softmax_matches_the_composed_op_with_masked_entries() -> candle_core::Result<()> {
    let x = randn(&[2, 4, 70, 9], 0.0, 3.0)?;
    // A causal mask's -inf entries give zero probability and zero gradient.
    let mask: Vec<f32> = (0..70 * 9)
        .map(|i| {
            if i % 9 > i / 9 % 9 {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, (70, 9), &Device::Cpu)?;
    check(
        &[x],
        |t| t[0].broadcast_add(&mask)?.apply_op1(SoftmaxOp),
        |t| candle_nn::ops::softmax(&t[0].broadcast_add(&mask.to_dtype(DType::F64)?)?, D::Minus1),
        2e-6,
    )
}

#[test]
fn gelu_matches_the_exact_erf_form_and_its_derivative() -> candle_core::Result<()> {
    // Covers the clamp of the erf fit (|x / √2| > 3.92) on both sides.
    let n = 20_001;
    let xs: Vec<f32> = (0..n)
        .map(|i| -9.0 + 18.0 * i as f32 / (n - 1) as f32)
        .collect();
    let x = Tensor::from_vec(xs, (1, n), &Device::Cpu)?;
    check(
        &[x],
        |t| t[0].apply_op1(GeluErfOp),
        |t| t[0].gelu_erf(),
        2e-6,
    )?;
    // Past one parallel chunk.
    let big = randn(&[70_000], 0.0, 3.0)?;
    check(
        &[big],
        |t| t[0].apply_op1(GeluErfOp),
        |t| t[0].gelu_erf(),
        2e-6,
    )
}

#[test]
fn norm_gradients_do_not_depend_on_the_thread_count() -> candle_core::Result<()> {
    // 1000 rows: 16 blocks, summed in block order whatever the pool's scheduling.
    let (x, w) = (randn(&[1000, 24], 0.3, 1.7)?, randn(&[24], 1.0, 0.3)?);
    let run = |threads: usize| -> candle_core::Result<Vec<Vec<f32>>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        pool.install(|| {
            let (xv, wv) = (Var::from_tensor(&x)?, Var::from_tensor(&w)?);
            let b = Var::from_tensor(&Tensor::zeros(24, DType::F32, &Device::Cpu)?)?;
            let y = xv.apply_op3(&wv, &b, LayerNormOp { eps: 1e-6 })?;
            let grads = (y.sqr()?.sum_all()? + y.sum_all()?)?.backward()?;
            [xv.as_tensor(), wv.as_tensor(), b.as_tensor()]
                .iter()
                .map(|t| match grads.get(t) {
                    Some(g) => g.flatten_all()?.to_vec1::<f32>(),
                    None => Err(candle_core::Error::Msg("no gradient".into())),
                })
                .collect()
        })
    };
    let one = run(1)?;
    for threads in [2, 3, 4] {
        assert_eq!(run(threads)?, one, "{threads} threads");
    }
    Ok(())
}
