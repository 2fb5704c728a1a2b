//! `x W^T` for a handful of rows of `x` (decoding a batch or the beams of beam search), on the
//! CPU in f32. gemm's kernels pack 16–32 rows per tile and waste most of it on 2–16 rows, while
//! this product is bound by reading `W` once; here each weight row is read once and multiplied
//! with every row of `x` (AVX2/FMA, detected at run time). Results differ from gemm's only in
//! float summation order (about 1e-7 relative).

use std::sync::OnceLock;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

/// Row counts this path takes; one row stays on gemm's own vector path, more than this go to
/// gemm's tiled kernels, which are faster there.
pub const MAX_ROWS: usize = 16;

/// Whether the CPU has the instructions the kernel uses.
fn kernel_available() -> bool {
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

/// `x [m, k] · w[n, k]^T -> [m, n]`, row-major slices; `None` when the CPU lacks AVX2/FMA.
pub fn matmul_rows(x: &[f32], m: usize, k: usize, w: &[f32], n: usize) -> Option<Vec<f32>> {
    if !kernel_available() || x.len() < m * k || w.len() < n * k {
        return None;
    }
    if m == 0 || n == 0 {
        return Some(Vec::new());
    }
    // Columns per task: enough work to pay for a rayon task, a multiple of the tile width.
    const BLOCK: usize = 64;
    let mut out_t = vec![0f32; n * m];
    let threads = candle_core::utils::get_num_threads();
    let run = |(b, chunk): (usize, &mut [f32])| {
        let j0 = b * BLOCK;
        let cols = chunk.len() / m;
        // SAFETY: the kernel is only called when AVX2 and FMA were detected, and every index
        // it touches is inside x (m·k), w (rows j0..j0+cols of n·k) and chunk (cols·m).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            x86::columns(x, m, k, &w[j0 * k..(j0 + cols) * k], cols, chunk)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (x, w, j0, cols);
    };
    if threads > 1 && m * n * k >= 1 << 18 {
        out_t.par_chunks_mut(BLOCK * m).enumerate().for_each(run);
    } else {
        out_t.chunks_mut(BLOCK * m).enumerate().for_each(run);
    }
    let mut out = vec![0f32; m * n];
    for (j, col) in out_t.chunks_exact(m).enumerate() {
        for (r, &v) in col.iter().enumerate() {
            out[r * n + j] = v;
        }
    }
    Some(out)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// Rows `x[0..R]` against weight rows `w[0..nc]` (nc <= C): dot products out[c][r].
    // Index loops over the register tile read closest to the arithmetic they stand for.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    unsafe fn tile<const R: usize, const C: usize>(
        x: *const f32,
        k: usize,
        w: *const f32,
        nc: usize,
    ) -> [[f32; R]; C] {
        let mut acc = [[_mm256_setzero_ps(); R]; C];
        let k8 = k / 8 * 8;
        let mut i = 0;
        while i < k8 {
            let mut wv = [_mm256_setzero_ps(); C];
            for (c, v) in wv.iter_mut().enumerate().take(nc) {
                *v = _mm256_loadu_ps(w.add(c * k + i));
            }
            for r in 0..R {
                let xv = _mm256_loadu_ps(x.add(r * k + i));
                for c in 0..C {
                    acc[c][r] = _mm256_fmadd_ps(xv, wv[c], acc[c][r]);
                }
            }
            i += 8;
        }
        let mut out = [[0f32; R]; C];
        for c in 0..nc {
            for r in 0..R {
                let mut s = hsum(acc[c][r]);
                for j in k8..k {
                    s += *x.add(r * k + j) * *w.add(c * k + j);
                }
                out[c][r] = s;
            }
        }
        out
    }

    /// `out[j * m + r] = x[r] · w[j]` for the `cols` weight rows of `w`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn columns(
        x: &[f32],
        m: usize,
        k: usize,
        w: &[f32],
        cols: usize,
        out: &mut [f32],
    ) {
        // Up to 8 rows per pass over the weights; 4 weight rows per step for few rows, 2 for
        // more, so the accumulators stay near the 16 vector registers.
        let mut r0 = 0;
        while r0 < m {
            let rows = (m - r0).min(8);
            let xp = x.as_ptr().add(r0 * k);
            macro_rules! pass {
                ($r:literal, $c:literal) => {{
                    let mut j = 0;
                    while j < cols {
                        let nc = (cols - j).min($c);
                        let t = tile::<$r, $c>(xp, k, w.as_ptr().add(j * k), nc);
                        for (c, col) in t.iter().enumerate().take(nc) {
                            for (r, v) in col.iter().enumerate() {
                                out[(j + c) * m + r0 + r] = *v;
                            }
                        }
                        j += $c;
                    }
                }};
            }
            match rows {
                1 => pass!(1, 4),
                2 => pass!(2, 4),
                3 => pass!(3, 4),
                4 => pass!(4, 4),
                5 => pass!(5, 2),
                6 => pass!(6, 2),
                7 => pass!(7, 2),
                _ => pass!(8, 2),
            }
            r0 += rows;
        }
    }
}

/// The custom op: `x [m, k]` (contiguous) times the captured weight's transpose.
struct SmallRowsMatmul {
    weight: Tensor,
}

impl CustomOp1 for SmallRowsMatmul {
    fn name(&self) -> &'static str {
        "small-rows-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k) = l.shape().dims2()?;
        let (n, k2) = self.weight.dims2()?;
        if k != k2 {
            candle_core::bail!("small-rows matmul: input width {k} but weight is [{n}, {k2}]");
        }
        let (CpuStorage::F32(xs), Some((x0, x1))) = (s, l.contiguous_offsets()) else {
            candle_core::bail!("small-rows matmul: input must be contiguous f32");
        };
        let (ws, wl) = self.weight.storage_and_layout();
        let (Storage::Cpu(CpuStorage::F32(wv)), Some((w0, w1))) = (&*ws, wl.contiguous_offsets())
        else {
            candle_core::bail!("small-rows matmul: weight must be a contiguous f32 CPU tensor");
        };
        let out = matmul_rows(&xs[x0..x1], m, k, &wv[w0..w1], n)
            .ok_or_else(|| candle_core::Error::Msg("small-rows matmul: no AVX2/FMA".into()))?;
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }
}

/// `x2 [m, k] · weight[n, k]^T` through the small-rows kernel when it applies (CPU, f32, no
/// gradient, 2..=MAX_ROWS rows, contiguous weight, AVX2/FMA); `None` otherwise.
pub fn try_matmul_t(x2: &Tensor, weight: &Tensor) -> candle_core::Result<Option<Tensor>> {
    let (m, _) = x2.dims2()?;
    let applies = (2..=MAX_ROWS).contains(&m)
        && kernel_available()
        && x2.device().is_cpu()
        && x2.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && weight.rank() == 2
        && weight.is_contiguous()
        && !x2.track_op()
        && !weight.track_op();
    if !applies {
        return Ok(None);
    }
    let op = SmallRowsMatmul {
        weight: weight.clone(),
    };
    Ok(Some(x2.contiguous()?.apply_op1_no_bwd(&op)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_gemm_for_every_row_count_and_ragged_sizes() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        // k not a multiple of 8 and n not a multiple of the tile or block widths.
        for (k, n) in [(37, 70), (64, 129), (8, 5)] {
            let w = Tensor::randn(0f32, 1., (n, k), &dev)?;
            for m in 1..=MAX_ROWS + 1 {
                let x = Tensor::randn(0f32, 1., (m, k), &dev)?;
                let reference = x.matmul(&w.t()?)?;
                match try_matmul_t(&x, &w)? {
                    Some(y) => {
                        assert!((2..=MAX_ROWS).contains(&m), "took {m} rows");
                        assert_eq!(y.dims(), &[m, n]);
                        let d = (y - &reference)?.abs()?.max_all()?.to_scalar::<f32>()?;
                        assert!(d < 1e-4, "m {m} k {k} n {n}: differs by {d}");
                    }
                    None => assert!(!kernel_available() || m == 1 || m > MAX_ROWS),
                }
            }
        }
        Ok(())
    }

    #[test]
    fn empty_products_are_empty() {
        if kernel_available() {
            assert_eq!(matmul_rows(&[], 0, 3, &[0.0; 6], 2), Some(Vec::new()));
            assert_eq!(matmul_rows(&[1.0; 6], 2, 3, &[], 0), Some(Vec::new()));
            assert_eq!(matmul_rows(&[1.0; 2], 2, 3, &[0.0; 6], 2), None);
        }
    }

    #[test]
    fn declines_what_it_does_not_handle() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 1., (6, 4), &dev)?;
        let x = Tensor::randn(0f32, 1., (3, 4), &dev)?;
        assert!(try_matmul_t(&x.to_dtype(DType::F16)?, &w.to_dtype(DType::F16)?)?.is_none());
        assert!(try_matmul_t(&x, &w.t()?.contiguous()?.t()?)?.is_none());
        let var = candle_core::Var::from_tensor(&x)?;
        assert!(try_matmul_t(var.as_tensor(), &w)?.is_none());
        Ok(())
    }
}
