//! Position-embedding interpolation, exactly as torch `F.interpolate(mode="bicubic", align_corners=False)`.
//! (Temporary lead version; replaced by the preprocessing branch.)

use candle_core::Tensor;

fn cubic_weights(t: f64) -> [f64; 4] {
    let a = -0.75;
    let w1 = |x: f64| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    let w2 = |x: f64| ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
    [w2(t + 1.0), w1(t), w1(1.0 - t), w2(2.0 - t)]
}

fn resize_1d(n_in: usize, n_out: usize) -> Vec<[(usize, f64); 4]> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let src = (o as f64 + 0.5) * scale - 0.5;
            let x0 = src.floor();
            let w = cubic_weights(src - x0);
            let mut taps = [(0usize, 0f64); 4];
            for (k, tap) in taps.iter_mut().enumerate() {
                let idx = (x0 as i64 - 1 + k as i64).clamp(0, n_in as i64 - 1) as usize;
                *tap = (idx, w[k]);
            }
            taps
        })
        .collect()
}

/// Resizes the patch part of `pos_embed` [1, 1+g², W] to an `new_grid`² grid; CLS kept.
pub fn interpolate_pos_embed(pos_embed: &Tensor, new_grid: usize) -> crate::Result<Tensor> {
    let (_, tokens, w) = pos_embed.dims3()?;
    let g = ((tokens - 1) as f64).sqrt().round() as usize;
    if g * g + 1 != tokens {
        return Err(crate::Error::Invalid(format!(
            "pos_embed has {} patch positions, not a square grid",
            tokens - 1
        )));
    }
    if g == new_grid {
        return Ok(pos_embed.clone());
    }
    let data = pos_embed.flatten_all()?.to_vec1::<f32>()?;
    let taps = resize_1d(g, new_grid);
    let n = new_grid;
    let mut out = vec![0f32; (1 + n * n) * w];
    out[..w].copy_from_slice(&data[..w]);
    for (oy, ty) in taps.iter().enumerate() {
        for (ox, tx) in taps.iter().enumerate() {
            let dst = &mut out[(1 + oy * n + ox) * w..(2 + oy * n + ox) * w];
            for &(iy, wy) in ty {
                for &(ix, wx) in tx {
                    let src = &data[(1 + iy * g + ix) * w..(2 + iy * g + ix) * w];
                    let wgt = (wy * wx) as f32;
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d += wgt * s;
                    }
                }
            }
        }
    }
    Ok(Tensor::from_vec(
        out,
        (1, 1 + n * n, w),
        pos_embed.device(),
    )?)
}
