//! Position-embedding interpolation to another patch grid, exactly as torch
//! `F.interpolate(x, size=(n, n), mode="bicubic", align_corners=False)` (cubic convolution with
//! A = -0.75, source coordinate (i + 0.5) * g / n - 0.5, border indices clamped, no antialias),
//! which is how EVA ViT-g/14 trained at 224 px (16 x 16 patches) runs at 420 px (30 x 30).

use candle_core::{DType, Device, Tensor};

use crate::{Error, Result};

/// torch's cubic convolution kernel with A = -0.75: weights of the four samples around a point
/// at fraction `t` past the second one.
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let near = |x: f64| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let far = |x: f64| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// The [n, g] matrix M with out = M · in along one axis.
fn interpolation_matrix(g: usize, n: usize) -> Vec<f32> {
    // torch computes the scale and source coordinates in f32 (opmath of float).
    let scale = g as f32 / n as f32;
    let mut m = vec![0f32; n * g];
    for i in 0..n {
        let src = scale * (i as f32 + 0.5) - 0.5;
        let base = src.floor();
        let t = (src - base) as f64;
        let weights = cubic_weights(t);
        for (j, w) in weights.iter().enumerate() {
            let idx = (base as i64 + j as i64 - 1).clamp(0, g as i64 - 1) as usize;
            m[i * g + idx] += *w as f32;
        }
    }
    m
}

/// Resizes the patch part of `pos_embed` [1, 1 + g*g, W] (CLS first) to an `new_grid` x
/// `new_grid` grid, giving [1, 1 + n*n, W]; the CLS row is kept. Returns the input unchanged when
/// the grid already has that size. Computed in f32 and returned in the input's dtype and device.
pub fn interpolate_pos_embed(pos_embed: &Tensor, new_grid: usize) -> Result<Tensor> {
    let (b, tokens, width) = pos_embed.dims3().map_err(|_| {
        Error::Invalid(format!(
            "pos_embed: expected shape [1, 1 + g*g, W], got {:?}",
            pos_embed.dims()
        ))
    })?;
    if b != 1 || tokens < 2 {
        return Err(Error::Invalid(format!(
            "pos_embed: expected shape [1, 1 + g*g, W], got {:?}",
            pos_embed.dims()
        )));
    }
    let patches = tokens - 1;
    let g = (patches as f64).sqrt().round() as usize;
    if g * g != patches {
        return Err(Error::Invalid(format!(
            "pos_embed: {patches} patch positions (after the CLS token) do not form a square grid"
        )));
    }
    if new_grid == 0 {
        return Err(Error::Invalid(
            "pos_embed: the new grid must have at least one patch".into(),
        ));
    }
    if new_grid == g {
        return Ok(pos_embed.clone());
    }
    let n = new_grid;
    let dtype = pos_embed.dtype();
    let device = pos_embed.device();
    let x = pos_embed.to_dtype(DType::F32)?;
    let cls = x.narrow(1, 0, 1)?;
    let grid = x.narrow(1, 1, patches)?.reshape((g, g * width))?;
    let m =
        Tensor::from_vec(interpolation_matrix(g, n), (n, g), &Device::Cpu)?.to_device(device)?;
    // Rows: [n, g] x [g, g*W] -> [n, g*W]; then columns within each row: [n, g] x [g, W] per row.
    let rows = m.matmul(&grid)?.reshape((n, g, width))?;
    let cols = m
        .unsqueeze(0)?
        .broadcast_as((n, n, g))?
        .contiguous()?
        .matmul(&rows)?;
    let patches = cols.reshape((1, n * n, width))?;
    Ok(Tensor::cat(&[&cls, &patches], 1)?.to_dtype(dtype)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one() {
        for t in [0.0, 0.1, 0.25, 0.5, 0.9] {
            let w = cubic_weights(t);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{t}");
        }
        assert_eq!(cubic_weights(0.0), [0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn same_grid_is_identity_and_bad_shapes_fail() {
        let pe = Tensor::arange(0f32, 5.0 * 3.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 5, 3))
            .unwrap();
        let same = interpolate_pos_embed(&pe, 2).unwrap();
        assert_eq!(same.to_vec3::<f32>().unwrap(), pe.to_vec3::<f32>().unwrap());
        let bad = Tensor::zeros((1, 6, 3), DType::F32, &Device::Cpu).unwrap();
        let err = interpolate_pos_embed(&bad, 3).unwrap_err().to_string();
        assert!(err.contains("5 patch positions"), "{err}");
        let bad = Tensor::zeros((2, 5, 3), DType::F32, &Device::Cpu).unwrap();
        assert!(interpolate_pos_embed(&bad, 3).is_err());
    }

    #[test]
    fn constant_grid_stays_constant_and_cls_is_kept() {
        let mut v = vec![7f32; 2];
        v.extend(std::iter::repeat_n(1.5f32, 9 * 2));
        let pe = Tensor::from_vec(v, (1, 10, 2), &Device::Cpu).unwrap();
        let out = interpolate_pos_embed(&pe, 5).unwrap();
        assert_eq!(out.dims(), &[1, 26, 2]);
        let out = out.to_vec3::<f32>().unwrap();
        assert_eq!(out[0][0], vec![7.0, 7.0]);
        for row in &out[0][1..] {
            for v in row {
                assert!((v - 1.5).abs() < 1e-6);
            }
        }
    }
}
