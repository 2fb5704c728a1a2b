//! `lynx eval probe`: what a model's vision tokens and bridge tokens hold about the scenes of a
//! generated world (issue 4), read out with linear probes. Lynx's LLM only sees the bridge
//! tokens (paper Figure 2a), so an attribute that a probe cannot read from them cannot reach
//! an answer either; comparing the vision encoder's tokens with the bridge's shows where it is
//! lost (the vision encoder never learnt it, or the resampler dropped it).
//!
//! Probes are ridge classifiers on standardised features (closed form; the penalty is chosen
//! on a held-out part of the training split), trained on the first scenes of the file and
//! scored on the last `test_fraction` of them.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use crate::data::image::load_image;
use crate::model::lynx::MediaBatch;
use crate::pipeline::Engine;
use crate::train::core::progress_bar;
use crate::train::vision_targets::SceneMeta;
use crate::{Error, Result};

/// Settings of a probe run.
#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Image scenes read at most (videos are skipped).
    pub limit: usize,
    /// Share of the scenes (the last ones) kept out of probe training.
    pub test_fraction: f64,
    /// Images per forward pass.
    pub batch_size: usize,
    pub progress: bool,
}

/// The token sets probed, in column order.
pub const FEATURES: [&str; 6] = [
    "vision.cls",
    "vision.patch_mean",
    "vision.object_patches",
    "vision.patches",
    "bridge.mean",
    "bridge.tokens",
];

/// Which scenes an attribute is asked of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Images with exactly one object: the attribute needs no binding to read.
    OneObject,
    /// Every image.
    AllImages,
}

type Label = fn(&SceneMeta) -> String;

/// The attributes probed: (name, scope, label of a scene).
pub const ATTRIBUTES: [(&str, Scope, Label); 7] = [
    ("shape", Scope::OneObject, |s| s.objects[0].shape.clone()),
    ("color", Scope::OneObject, |s| s.objects[0].color.clone()),
    ("size", Scope::OneObject, |s| s.objects[0].size.clone()),
    ("left/right", Scope::OneObject, |s| {
        let b = s.objects[0].bbox;
        side((b[0] + b[2]) / 2.0, s.width, "left", "right")
    }),
    ("top/bottom", Scope::OneObject, |s| {
        let b = s.objects[0].bbox;
        side((b[1] + b[3]) / 2.0, s.height, "top", "bottom")
    }),
    ("objects", Scope::AllImages, |s| s.objects.len().to_string()),
    ("place", Scope::AllImages, |s| s.place.clone()),
];

fn side(centre: f32, extent: f32, low: &str, high: &str) -> String {
    if centre < extent / 2.0 { low } else { high }.to_string()
}

/// One attribute's probe accuracies.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeRow {
    pub attribute: String,
    pub scope: Scope,
    pub train: usize,
    pub test: usize,
    /// Accuracy of always answering the most frequent training label.
    pub majority: f64,
    /// Test accuracy per entry of [`FEATURES`].
    pub accuracy: Vec<f64>,
}

/// A probe run.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    pub images: usize,
    pub features: Vec<String>,
    pub rows: Vec<ProbeRow>,
}

/// Reads the image scenes of `scenes` (a world's scenes.jsonl; media paths relative to it).
pub fn read_scenes(scenes: &Path, limit: usize) -> Result<Vec<SceneMeta>> {
    let text = std::fs::read_to_string(scenes).map_err(|e| Error::io(scenes, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let s: SceneMeta = serde_json::from_str(line)
            .map_err(|e| Error::parse(scenes.display().to_string(), Some(i + 1), e.to_string()))?;
        if s.width <= 0.0 || s.height <= 0.0 {
            return Err(Error::parse(
                scenes.display().to_string(),
                Some(i + 1),
                format!(
                    "width and height must be positive, got {}x{}",
                    s.width, s.height
                ),
            ));
        }
        if s.kind == "image" {
            out.push(s);
            if out.len() == limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Probes the model of `engine` on the image scenes of `scenes`.
pub fn probe_scenes(engine: &Engine, scenes: &Path, opts: &ProbeOptions) -> Result<ProbeReport> {
    if !(0.0..1.0).contains(&opts.test_fraction) || opts.test_fraction == 0.0 {
        return Err(Error::Invalid(format!(
            "test_fraction must be in (0, 1), got {}",
            opts.test_fraction
        )));
    }
    let metas = read_scenes(scenes, opts.limit)?;
    if metas.len() < 10 {
        return Err(Error::Invalid(format!(
            "{}: {} image scene(s); a probe needs at least 10",
            scenes.display(),
            metas.len()
        )));
    }
    let base = scenes.parent().unwrap_or(Path::new("."));
    let feats = extract(engine, base, &metas, opts)?;
    let n_train = ((metas.len() as f64) * (1.0 - opts.test_fraction)).round() as usize;
    let mut rows = Vec::new();
    for (name, scope, label) in ATTRIBUTES {
        let keep: Vec<usize> = (0..metas.len())
            .filter(|&i| scope == Scope::AllImages || metas[i].objects.len() == 1)
            .collect();
        let labels: Vec<String> = keep.iter().map(|&i| label(&metas[i])).collect();
        let split = keep.iter().filter(|&&i| i < n_train).count();
        let (train, test) = (split, keep.len() - split);
        if train < 5 || test == 0 {
            continue;
        }
        let mut classes: Vec<&String> = labels.iter().collect();
        classes.sort();
        classes.dedup();
        let y: Vec<usize> = labels
            .iter()
            .map(|l| classes.iter().position(|c| *c == l).unwrap_or(0))
            .collect();
        let mut counts = vec![0usize; classes.len()];
        y[..split].iter().for_each(|&c| counts[c] += 1);
        let top = (0..classes.len()).max_by_key(|&c| counts[c]).unwrap_or(0);
        let majority = y[split..].iter().filter(|&&c| c == top).count() as f64 / test as f64;
        let mut accuracy = Vec::new();
        for f in &feats {
            let x: Vec<&[f32]> = keep.iter().map(|&i| f[i].as_slice()).collect();
            let pred = fit_predict(&x[..split], &y[..split], classes.len(), &x[split..])?;
            let hits = pred.iter().zip(&y[split..]).filter(|(p, t)| p == t).count();
            accuracy.push(hits as f64 / test as f64);
        }
        rows.push(ProbeRow {
            attribute: name.to_string(),
            scope,
            train,
            test,
            majority,
            accuracy,
        });
    }
    Ok(ProbeReport {
        images: metas.len(),
        features: FEATURES.iter().map(|f| f.to_string()).collect(),
        rows,
    })
}

/// The features of every scene, one `Vec<Vec<f32>>` per entry of [`FEATURES`].
fn extract(
    engine: &Engine,
    base: &Path,
    metas: &[SceneMeta],
    opts: &ProbeOptions,
) -> Result<Vec<Vec<Vec<f32>>>> {
    let mut out: Vec<Vec<Vec<f32>>> = vec![Vec::with_capacity(metas.len()); FEATURES.len()];
    let bar = progress_bar(metas.len() as u64, opts.progress, "probe ");
    let dev = engine.model.device().clone();
    for chunk in metas.chunks(opts.batch_size.max(1)) {
        let px = chunk
            .iter()
            .map(|s| {
                let img = load_image(&base.join(&s.media))?;
                engine.preprocessor.eval(&img)
            })
            .collect::<Result<Vec<_>>>()?;
        let px = Tensor::stack(&px, 0)?.to_device(&dev)?;
        let tokens = engine
            .model
            .encode_media(&MediaBatch::Images(px.to_dtype(engine.model.dtype())?))?;
        let bridge = engine.model.bridge().forward(&tokens)?;
        let tokens = tokens.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
        let bridge = bridge.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
        let (_, n1, width) = tokens.dims3()?;
        let res = engine.preprocessor.image_res;
        for (k, s) in chunk.iter().enumerate() {
            let t = tokens.get(k)?.to_vec2::<f32>()?;
            let b = bridge.get(k)?.to_vec2::<f32>()?;
            let patches = &t[1..];
            let under = object_patches(s, n1 - 1, res);
            out[0].push(t[0].clone());
            out[1].push(mean_rows(patches.iter(), width));
            out[2].push(mean_rows(under.iter().map(|&p| &patches[p]), width));
            out[3].push(patches.concat());
            out[4].push(mean_rows(b.iter(), b.first().map_or(0, Vec::len)));
            out[5].push(b.concat());
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(out)
}

fn mean_rows<'a>(rows: impl Iterator<Item = &'a Vec<f32>>, width: usize) -> Vec<f32> {
    let mut acc = vec![0f32; width];
    let mut n = 0;
    for r in rows {
        acc.iter_mut().zip(r).for_each(|(a, v)| *a += v);
        n += 1;
    }
    if n > 0 {
        acc.iter_mut().for_each(|a| *a /= n as f32);
    }
    acc
}

/// Indices of the patches whose centre lies inside an object's box (or, for an object that
/// covers no centre, the patch under its centre), after the eval resize and centre crop.
fn object_patches(s: &SceneMeta, n: usize, res: usize) -> Vec<usize> {
    let grid = (n as f64).sqrt().round() as usize;
    if grid == 0 || grid * grid != n {
        return Vec::new();
    }
    let scale = res as f32 / s.width.min(s.height);
    let (ox, oy) = (
        (s.width * scale - res as f32) / 2.0,
        (s.height * scale - res as f32) / 2.0,
    );
    let cell = res as f32 / grid as f32;
    // A point of the original image -> its patch in the crop, if inside.
    let patch_of = |x: f32, y: f32| -> Option<usize> {
        let (cx, cy) = (x * scale - ox, y * scale - oy);
        if cx < 0.0 || cy < 0.0 || cx >= res as f32 || cy >= res as f32 {
            return None;
        }
        Some((cy / cell) as usize * grid + (cx / cell) as usize)
    };
    let mut out = Vec::new();
    for o in &s.objects {
        let [x0, y0, x1, y1] = o.bbox;
        let mut any = false;
        for p in 0..n {
            let (gx, gy) = ((p % grid) as f32 + 0.5, (p / grid) as f32 + 0.5);
            let (x, y) = ((gx * cell + ox) / scale, (gy * cell + oy) / scale);
            if x >= x0 && x <= x1 && y >= y0 && y <= y1 {
                out.push(p);
                any = true;
            }
        }
        if !any {
            out.extend(patch_of((x0 + x1) / 2.0, (y0 + y1) / 2.0));
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Ridge penalties tried, as multiples of the number of training rows.
const PENALTIES: [f64; 5] = [1e-3, 1e-2, 1e-1, 1.0, 10.0];

/// Trains a ridge classifier on `x`/`y` (penalty chosen on the last fifth of the rows) and
/// predicts the classes of `test`.
pub fn fit_predict(
    x: &[&[f32]],
    y: &[usize],
    classes: usize,
    test: &[&[f32]],
) -> Result<Vec<usize>> {
    let fit = (x.len() * 4 / 5).max(1);
    let mut best = (f64::NEG_INFINITY, PENALTIES[0]);
    if fit < x.len() {
        for lam in PENALTIES {
            let pred = ridge(&x[..fit], &y[..fit], classes, &x[fit..], lam * fit as f64)?;
            let hits = pred.iter().zip(&y[fit..]).filter(|(p, t)| p == t).count() as f64;
            if hits > best.0 {
                best = (hits, lam);
            }
        }
    }
    ridge(x, y, classes, test, best.1 * x.len() as f64)
}

fn ridge(
    x: &[&[f32]],
    y: &[usize],
    classes: usize,
    test: &[&[f32]],
    lam: f64,
) -> Result<Vec<usize>> {
    let (n, d) = (x.len(), x.first().map_or(0, |r| r.len()));
    if x.iter().chain(test).any(|r| r.len() != d) {
        return Err(Error::Invalid("probe features of unequal length".into()));
    }
    let mut mean = vec![0f64; d];
    let mut var = vec![0f64; d];
    x.iter().for_each(|r| {
        r.iter()
            .zip(&mut mean)
            .for_each(|(v, m)| *m += *v as f64 / n as f64)
    });
    x.iter().for_each(|r| {
        r.iter()
            .zip(&mean)
            .zip(&mut var)
            .for_each(|((v, m), s)| *s += (*v as f64 - m).powi(2) / n as f64)
    });
    let sd: Vec<f64> = var.iter().map(|v| v.sqrt() + 1e-6).collect();
    let standard = |rows: &[&[f32]]| -> Result<Tensor> {
        let data: Vec<f64> = rows
            .iter()
            .flat_map(|r| {
                r.iter()
                    .zip(&mean)
                    .zip(&sd)
                    .map(|((v, m), s)| (*v as f64 - m) / s)
            })
            .collect();
        Ok(Tensor::from_vec(data, (rows.len(), d), &Device::Cpu)?)
    };
    let (a, b) = (standard(x)?, standard(test)?);
    let mut prior = vec![0f64; classes];
    y.iter().for_each(|&c| prior[c] += 1.0 / n as f64);
    let targets: Vec<f64> = y
        .iter()
        .flat_map(|&c| (0..classes).map(move |k| f64::from(u8::from(k == c))))
        .zip(prior.iter().cycle())
        .map(|(t, p)| t - p)
        .collect();
    let targets = Tensor::from_vec(targets, (n, classes), &Device::Cpu)?;
    // Primal (d x d) or dual (n x n) normal equations, whichever is smaller.
    let weights = if d <= n {
        let gram = a.t()?.matmul(&a)?;
        solve_spd(&gram, lam, &a.t()?.matmul(&targets)?)?
    } else {
        let gram = a.matmul(&a.t()?)?;
        a.t()?.matmul(&solve_spd(&gram, lam, &targets)?)?
    };
    let scores = b.matmul(&weights)?.to_vec2::<f64>()?;
    Ok(scores
        .iter()
        .map(|row| {
            (0..classes)
                .max_by(|&i, &j| (row[i] + prior[i]).total_cmp(&(row[j] + prior[j])))
                .unwrap_or(0)
        })
        .collect())
}

/// Solves (gram + lam·I) X = rhs for a symmetric positive semi-definite `gram` (Cholesky).
fn solve_spd(gram: &Tensor, lam: f64, rhs: &Tensor) -> Result<Tensor> {
    let m = gram.dim(0)?;
    let mut l = gram.flatten_all()?.to_vec1::<f64>()?;
    (0..m).for_each(|i| l[i * m + i] += lam);
    for j in 0..m {
        let mut diag = l[j * m + j];
        for k in 0..j {
            diag -= l[j * m + k] * l[j * m + k];
        }
        if diag <= 0.0 {
            return Err(Error::Invalid("probe: singular normal equations".into()));
        }
        let diag = diag.sqrt();
        l[j * m + j] = diag;
        for i in j + 1..m {
            let mut v = l[i * m + j];
            for k in 0..j {
                v -= l[i * m + k] * l[j * m + k];
            }
            l[i * m + j] = v / diag;
        }
    }
    // One column of the right-hand side at a time: L y = b, then Lᵀ x = y.
    let cols = rhs.t()?.contiguous()?.to_vec2::<f64>()?;
    let mut out = Vec::with_capacity(cols.len());
    for mut x in cols {
        for i in 0..m {
            let dot: f64 = (0..i).map(|k| l[i * m + k] * x[k]).sum();
            x[i] = (x[i] - dot) / l[i * m + i];
        }
        for i in (0..m).rev() {
            let dot: f64 = (i + 1..m).map(|k| l[k * m + i] * x[k]).sum();
            x[i] = (x[i] - dot) / l[i * m + i];
        }
        out.push(Tensor::from_vec(x, m, &Device::Cpu)?);
    }
    Ok(Tensor::stack(&out, 1)?)
}

/// The report as a Markdown table (accuracy in %, majority baseline beside it).
pub fn probe_table(r: &ProbeReport) -> String {
    let mut s = format!(
        "Linear probes on {} images (test accuracy %; `one object`: images with a single object)\n\n| Attribute | Scenes | Train/test | Majority | {} |\n|---|---|---:|---:|{}\n",
        r.images,
        r.features.join(" | "),
        "---:|".repeat(r.features.len())
    );
    for row in &r.rows {
        let scope = match row.scope {
            Scope::OneObject => "one object",
            Scope::AllImages => "all",
        };
        let acc: Vec<String> = row
            .accuracy
            .iter()
            .map(|a| format!("{:.1}", 100.0 * a))
            .collect();
        s.push_str(&format!(
            "| {} | {} | {}/{} | {:.1} | {} |\n",
            row.attribute,
            scope,
            row.train,
            row.test,
            100.0 * row.majority,
            acc.join(" | ")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(width: f32, height: f32, bbox: [f32; 4]) -> SceneMeta {
        serde_json::from_value(serde_json::json!({
            "id": "s", "kind": "image", "media": "x.png", "width": width, "height": height,
            "place": "room",
            "objects": [{"shape": "star", "color": "red", "size": "small", "bbox": bbox}],
        }))
        .unwrap()
    }

    #[test]
    fn cholesky_solves_a_regularised_system() {
        // gram = [[4, 2], [2, 3]], lam 1 -> [[5, 2], [2, 4]]; x = [1, -1] gives [3, -2].
        let gram = Tensor::from_vec(vec![4f64, 2., 2., 3.], (2, 2), &Device::Cpu).unwrap();
        let rhs = Tensor::from_vec(vec![3f64, -2.], (2, 1), &Device::Cpu).unwrap();
        let x = solve_spd(&gram, 1.0, &rhs)
            .unwrap()
            .to_vec2::<f64>()
            .unwrap();
        assert!(
            (x[0][0] - 1.0).abs() < 1e-12 && (x[1][0] + 1.0).abs() < 1e-12,
            "{x:?}"
        );
        let bad = Tensor::from_vec(vec![-1f64], (1, 1), &Device::Cpu).unwrap();
        assert!(solve_spd(
            &bad,
            0.0,
            &Tensor::ones((1, 1), DType::F64, &Device::Cpu).unwrap()
        )
        .is_err());
    }

    /// Features in which the class is a direction among noise, in the primal (few
    /// dimensions) and the dual (more dimensions than rows) form.
    #[test]
    fn ridge_reads_a_linear_code_and_not_noise() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for dims in [16, 400] {
            let rows: Vec<(Vec<f32>, usize)> = (0..300)
                .map(|i| {
                    let c = i % 3;
                    let mut v: Vec<f32> = (0..dims).map(|_| rng.random_range(-1.0..1.0)).collect();
                    v[c] += 5.0;
                    (v, c)
                })
                .collect();
            let x: Vec<&[f32]> = rows.iter().map(|r| r.0.as_slice()).collect();
            let y: Vec<usize> = rows.iter().map(|r| r.1).collect();
            let pred = fit_predict(&x[..200], &y[..200], 3, &x[200..]).unwrap();
            let acc = pred.iter().zip(&y[200..]).filter(|(p, t)| p == t).count();
            assert!(acc >= 90, "{dims} dims: {acc}/100");
            // Labels unrelated to the features: no better than chance by much.
            let noise: Vec<usize> = (0..300).map(|_| rng.random_range(0..3)).collect();
            let pred = fit_predict(&x[..200], &noise[..200], 3, &x[200..]).unwrap();
            let acc = pred
                .iter()
                .zip(&noise[200..])
                .filter(|(p, t)| p == t)
                .count();
            assert!(acc <= 50, "{dims} dims, noise labels: {acc}/100");
        }
    }

    #[test]
    fn object_patches_follow_the_resize_and_crop() {
        // 112 px, 8x8 patches of 14 px: a box over x 14-41, y 0-27 covers the centres
        // (21, 7) and (35, 7), (21, 21), (35, 21): patches 1, 2, 9, 10.
        assert_eq!(
            object_patches(&scene(112., 112., [14., 0., 41., 27.]), 64, 112),
            [1, 2, 9, 10]
        );
        // A box smaller than a patch that covers no centre: the patch under its centre.
        assert_eq!(
            object_patches(&scene(112., 112., [60., 60., 62., 62.]), 64, 112),
            [36]
        );
        // 224x112 is resized to 224x112 -> scale 1, crop offset 56 in x: x 70-83 is the
        // crop's 14-27, patch column 1.
        assert_eq!(
            object_patches(&scene(224., 112., [70., 60., 83., 62.]), 64, 112),
            [33]
        );
        // Outside the crop: nothing.
        assert!(object_patches(&scene(224., 112., [0., 0., 10., 10.]), 64, 112).is_empty());
    }

    #[test]
    fn labels_of_one_object_scenes() {
        let s = scene(112., 112., [60., 0., 100., 30.]);
        let get = |name: &str| ATTRIBUTES.iter().find(|a| a.0 == name).unwrap().2(&s);
        assert_eq!(get("left/right"), "right");
        assert_eq!(get("top/bottom"), "top");
        assert_eq!(get("shape"), "star");
        assert_eq!(get("objects"), "1");
    }
}
