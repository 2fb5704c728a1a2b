//! `lynx train` stage `vision`: pretraining the EVA-architecture vision encoder that Lynx keeps
//! frozen (paper 2.2 uses EVA ViT-g/14; issue 4 trains a small one on the generated world).
//! The objective is supervised from the scenes' metadata (`vision_targets.rs`): small heads on
//! the patch tokens and the class token, discarded afterwards. Images get the release's
//! training crop (RandomResizedCrop, scale 0.9-1.0) with the targets moved along, so the
//! encoder sees what Lynx's training will show it.
//!
//! Datasets are `scenes.jsonl` files of `lynx data synth` (video scenes are skipped; media
//! paths are relative to the file's folder). The output, `output_dir/model/`, holds
//! `vision_encoder.safetensors` with the release's key names (`patch_embed.proj.weight`,
//! `blocks.{i}...`, loadable as `vision_encoder_path`) and `vision_config.json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Module, Tensor, D};

use crate::data::image::{load_image, resize_bicubic, Preprocessor};
use crate::model::nn::{LayerNorm, Linear};
use crate::model::vision::eva_vit::{EvaVit, VisionConfig};
use crate::model::weights::{Mount, TensorFile, WeightStore};
use crate::train::checkpoint::TrainState;
use crate::train::config::{Stage, TrainConfig, TrainPart, VisionLossWeights};
use crate::train::core::{progress_bar, run_loop, MicroLoss, RunCore, StepStats};
use crate::train::params::TrainableParams;
use crate::train::rng::TrainRng;
use crate::train::vision_targets::{
    labels, logits, scene_targets, Group, SceneMeta, View, CLS_GROUPS, MASK_CELLS, PATCH_GROUPS,
    TEXT_SET,
};
use crate::{Error, Result};

/// The heads live beside the encoder's weights (so they train) and are dropped on export.
const HEAD: &str = "vision_encoder.pretrain_head";
/// File names of the output.
pub const VISION_WEIGHTS: &str = "vision_encoder.safetensors";
pub const VISION_CONFIG: &str = "vision_config.json";

/// The image scenes of the datasets, with their media resolved.
struct SceneSet {
    scenes: Vec<(SceneMeta, PathBuf)>,
    order: Vec<usize>,
    epoch: u64,
    cursor: usize,
    seed: u64,
}

impl SceneSet {
    fn open(cfg: &TrainConfig) -> Result<Self> {
        let mut scenes = Vec::new();
        for spec in &cfg.datasets {
            let path = Path::new(&spec.path);
            let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let bad = |msg: String| Error::parse(path.display().to_string(), Some(i + 1), msg);
                let s: SceneMeta = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
                if s.kind != "image" {
                    continue;
                }
                s.validate().map_err(bad)?;
                let media = base.join(&s.media);
                scenes.push((s, media));
            }
        }
        if scenes.is_empty() {
            return Err(Error::config(
                "datasets",
                "no image scene in the scenes files",
            ));
        }
        let mut set = Self {
            order: Vec::new(),
            scenes,
            epoch: 0,
            cursor: 0,
            seed: cfg.seed,
        };
        set.shuffle();
        Ok(set)
    }

    fn shuffle(&mut self) {
        self.order = (0..self.scenes.len()).collect();
        TrainRng::new(self.seed, 0x5ce7 + self.epoch).shuffle(&mut self.order);
    }

    fn next(&mut self) -> &(SceneMeta, PathBuf) {
        if self.cursor >= self.order.len() {
            self.epoch += 1;
            self.cursor = 0;
            self.shuffle();
        }
        let i = self.order[self.cursor];
        self.cursor += 1;
        &self.scenes[i]
    }

    fn state(&self) -> serde_json::Value {
        serde_json::json!({"epoch": self.epoch, "cursor": self.cursor, "scenes": self.scenes.len()})
    }

    fn restore(&mut self, v: &serde_json::Value) -> Result<()> {
        let get = |k: &str| v.get(k).and_then(|x| x.as_u64());
        match (get("epoch"), get("cursor"), get("scenes")) {
            (Some(e), Some(c), Some(n)) if n as usize == self.scenes.len() => {
                self.epoch = e;
                self.shuffle();
                self.cursor = c as usize;
                Ok(())
            }
            _ => Err(Error::Invalid(
                "checkpoint data position does not match these scenes files".into(),
            )),
        }
    }
}

/// A 2-D sine-cosine position table [1, 1 + grid², width] (CLS row zero), the start of a
/// fresh encoder's learnt `pos_embed`. A small random table hides where patches are, and
/// shapes span patches: with it the encoder learnt colours but barely any shapes (probe
/// `patch.shape` 15% at 300 steps). Half the width codes the row, half the column, each
/// as sines and cosines of `width / 4` frequencies (the MAE encoders' table).
fn sincos_pos_embed(grid: usize, width: usize) -> Result<Tensor> {
    let quarter = width / 4;
    let mut data = vec![0f32; (1 + grid * grid) * width];
    for gy in 0..grid {
        for gx in 0..grid {
            let row = &mut data[(1 + gy * grid + gx) * width..][..width];
            for (half, pos) in [(0, gy), (1, gx)] {
                for k in 0..quarter {
                    let omega = 1.0 / 10000f64.powf(k as f64 / quarter.max(1) as f64);
                    let a = pos as f64 * omega;
                    row[half * 2 * quarter + k] = a.sin() as f32;
                    row[half * 2 * quarter + quarter + k] = a.cos() as f32;
                }
            }
        }
    }
    Ok(Tensor::from_vec(
        data,
        (1, 1 + grid * grid, width),
        &Device::Cpu,
    )?)
}

/// The pretraining heads.
struct Heads {
    norm: LayerNorm,
    patch: Linear,
    cls: Linear,
    /// The silhouette head, only when its loss has a weight (runs without it keep their
    /// parameters, initial values and checkpoints).
    mask: Option<Linear>,
}

impl Heads {
    fn new(width: usize, with_mask: bool, vb: candle_nn::VarBuilder) -> Result<Self> {
        Ok(Self {
            norm: LayerNorm::load(vb.pp("norm"), width, 1e-6)?,
            patch: Linear::load(vb.pp("patch"), width, logits(&PATCH_GROUPS), true)?,
            cls: Linear::load(vb.pp("cls"), width, logits(&CLS_GROUPS) + TEXT_SET, true)?,
            mask: if with_mask {
                Some(Linear::load(vb.pp("mask"), width, MASK_CELLS, true)?)
            } else {
                None
            },
        })
    }
}

/// A micro-batch of images and their targets.
pub struct VisionBatch {
    pixels: Tensor,
    /// [B·N, labels(PATCH_GROUPS)]
    patch: Tensor,
    patch_weight: Tensor,
    /// [B, labels(CLS_GROUPS)]
    cls: Tensor,
    cls_weight: Tensor,
    /// [B, TEXT_SET]
    text_set: Tensor,
    /// [B·N, MASK_CELLS]
    mask: Tensor,
}

/// Weight of a target that says "nothing here" (class 0) relative to a real one: most
/// patches are empty, and an unweighted loss first learns to call every patch empty.
const EMPTY_WEIGHT: f32 = 0.1;

/// Weights of labels: [EMPTY_WEIGHT] for class 0, 1 otherwise; the first group (the place,
/// whose class 0 is a place, not "nothing") is always 1.
fn label_weights(labels: &[u32], per_row: usize) -> Vec<f32> {
    labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            if i % per_row == 0 || l != 0 {
                1.0
            } else {
                EMPTY_WEIGHT
            }
        })
        .collect()
}

/// Weighted mean cross-entropy of each group over rows: logits [M, logits(groups)], labels and
/// weights [M, labels(groups)].
fn groups_loss(
    logit: &Tensor,
    label: &Tensor,
    weight: &Tensor,
    groups: &[Group],
) -> Result<Vec<Tensor>> {
    let m = logit.dim(0)?;
    let (mut off, mut lab) = (0, 0);
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let x = logit
            .narrow(1, off, g.heads * g.classes)?
            .contiguous()?
            .reshape((m * g.heads, g.classes))?;
        let y = label
            .narrow(1, lab, g.heads)?
            .contiguous()?
            .reshape((m * g.heads, 1))?;
        let w = weight
            .narrow(1, lab, g.heads)?
            .contiguous()?
            .reshape((m * g.heads, 1))?;
        let lp = candle_nn::ops::log_softmax(&x, D::Minus1)?;
        let nll = lp.gather(&y, 1)?.neg()?;
        out.push(((nll * &w)?.sum_all()? / w.sum_all()?.to_scalar::<f32>()? as f64)?);
        off += g.heads * g.classes;
        lab += g.heads;
    }
    Ok(out)
}

/// Binary cross-entropy with logits per element: softplus(x) - x·y, computed stably.
fn bce_terms(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let softplus = (x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
    Ok((softplus - (x * y)?)?)
}

/// Binary cross-entropy with logits, averaged.
fn bce(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    Ok(bce_terms(x, y)?.mean_all()?)
}

/// Binary cross-entropy for silhouettes: an empty sub-cell weighs [EMPTY_WEIGHT] of a covered
/// one. Objects cover about 5% of an image, and unweighted the head first learns to say
/// "empty" everywhere (intersection over union 0 on the smoke fixture).
fn mask_bce(x: &Tensor, y: &Tensor) -> Result<Tensor> {
    let w = y.affine(1.0 - EMPTY_WEIGHT as f64, EMPTY_WEIGHT as f64)?;
    let total = w.sum_all()?.to_scalar::<f32>()? as f64;
    Ok((bce_terms(x, y)? * &w)?
        .sum_all()?
        .affine(1.0 / total, 0.0)?)
}

fn objective(
    encoder: &EvaVit,
    heads: &Heads,
    w: &VisionLossWeights,
    b: &VisionBatch,
) -> Result<Tensor> {
    let tokens = encoder.forward(&b.pixels)?;
    let h = heads.norm.forward(&tokens)?;
    let (bs, n1, width) = h.dims3()?;
    let patches = h.narrow(1, 1, n1 - 1)?.reshape((bs * (n1 - 1), width))?;
    let patch_losses = groups_loss(
        &heads.patch.forward(&patches)?,
        &b.patch,
        &b.patch_weight,
        &PATCH_GROUPS,
    )?;
    let shape = PATCH_GROUPS.iter().position(|g| g.name == "shape");
    let patch_losses = patch_losses
        .into_iter()
        .enumerate()
        .map(|(i, l)| if Some(i) == shape { l * w.shape } else { Ok(l) })
        .collect::<candle_core::Result<Vec<_>>>()?;
    let patch = (Tensor::stack(&patch_losses, 0)?.sum_all()? * w.patch)?;
    let cls_out = heads.cls.forward(&h.narrow(1, 0, 1)?.squeeze(1)?)?;
    let n_cls = logits(&CLS_GROUPS);
    let cl = groups_loss(
        &cls_out.narrow(1, 0, n_cls)?,
        &b.cls,
        &b.cls_weight,
        &CLS_GROUPS,
    )?;
    let place = (&cl[0] * w.place)?;
    let count = ((&cl[1] + &cl[2])? + &cl[3])?.affine(w.count, 0.0)?;
    let text = bce(&cls_out.narrow(1, n_cls, TEXT_SET)?, &b.text_set)?;
    let global = (((&cl[4] + &cl[5])? + text)? * w.global)?;
    let total = (((patch + place)? + count)? + global)?;
    match &heads.mask {
        Some(m) => Ok((total + (mask_bce(&m.forward(&patches)?, &b.mask)? * w.mask)?)?),
        None => Ok(total),
    }
}

fn argmax(xs: &[f32]) -> usize {
    xs.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

/// A vision-encoder pretraining run.
pub struct VisionTrainer {
    pub cfg: TrainConfig,
    pub vision_config: VisionConfig,
    pub encoder: EvaVit,
    heads: Heads,
    params: TrainableParams,
    core: RunCore,
    scenes: SceneSet,
    pre: Preprocessor,
    rng: TrainRng,
    device: Device,
}

impl VisionTrainer {
    pub fn new(cfg: TrainConfig, resume: bool, device: Device) -> Result<Self> {
        if cfg.stage != Stage::Vision {
            return Err(Error::config("stage", "expected `vision`"));
        }
        let vc = cfg
            .vision_config
            .clone()
            .ok_or_else(|| Error::config("vision_config", "missing"))?;
        let grid = cfg.image_res / vc.patch_size;
        let mut mounts = Vec::new();
        match &cfg.model.vision_encoder {
            Some(p) => mounts.push(Mount::new(
                p.display().to_string(),
                "vision_encoder.",
                "",
                true,
                TensorFile::open(p)?,
            )),
            None => {
                // The encoder reads its position table unchecked (any grid); a fresh one is
                // made here for the training grid.
                let name = "vision_encoder.pos_embed";
                let pe = sincos_pos_embed(grid, vc.embed_dim)?;
                mounts.push(Mount::new(
                    "fresh position embedding",
                    "",
                    "",
                    true,
                    TensorFile::Map(HashMap::from([(name.to_string(), pe)])),
                ));
            }
        }
        let store = Arc::new(WeightStore::new(mounts));
        let params = TrainableParams::new(
            store,
            &[TrainPart::VisionEncoder],
            cfg.seed,
            &device,
            DType::F32,
        );
        let vb = params.var_builder(&device);
        let encoder = EvaVit::new(&vc, vb.pp("vision_encoder"))?;
        let heads = Heads::new(vc.embed_dim, cfg.vision_loss.mask > 0.0, vb.pp(HEAD))?;
        let (core, state) = RunCore::open(&cfg, params.vars(), resume)?;
        let mut scenes = SceneSet::open(&cfg)?;
        let mut rng = TrainRng::new(cfg.seed, 0x7a1e);
        if let Some(st) = state {
            scenes.restore(&st.data)?;
            rng = TrainRng::from_state(&st.rng, "checkpoint rng")?;
        }
        let pre = Preprocessor::new(cfg.image_res);
        Ok(Self {
            cfg,
            vision_config: vc,
            encoder,
            heads,
            params,
            core,
            scenes,
            pre,
            rng,
            device,
        })
    }

    /// Updates done so far.
    pub fn step(&self) -> u64 {
        self.core.step
    }

    /// The trainable parameters (encoder and heads), by name.
    pub fn trainable(&self) -> Vec<(String, candle_core::Var)> {
        self.params.vars()
    }

    /// Draws and prepares the next micro-batch.
    pub fn next_batch(&mut self) -> Result<VisionBatch> {
        let res = self.cfg.image_res;
        let patch = self.vision_config.patch_size;
        let (mut px, mut pl, mut cl, mut ts, mut mk) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..self.cfg.batch_size {
            let (scene, media) = self.scenes.next().clone();
            let img = load_image(&media)?;
            let (w, h) = img.dimensions();
            let (top, left, ch, cw) = self.pre.random_crop_box(w, h, &mut self.rng);
            let crop = image::imageops::crop_imm(&img, left, top, cw, ch).to_image();
            let crop = if (cw, ch) == (res as u32, res as u32) {
                crop
            } else {
                resize_bicubic(&crop, res as u32, res as u32)
            };
            px.push(self.pre.to_tensor(&crop)?);
            // Boxes are in the scene's pixel units; the file may have another size.
            let (sx, sy) = (scene.width / w as f32, scene.height / h as f32);
            let view = View {
                left: left as f32 * sx,
                top: top as f32 * sy,
                width: cw as f32 * sx,
                height: ch as f32 * sy,
                res,
                patch,
            };
            let t = scene_targets(&scene, &view);
            pl.extend(t.patch);
            cl.extend(t.cls);
            ts.extend(t.text_set);
            mk.extend(t.mask);
        }
        let b = self.cfg.batch_size;
        let n = (res / patch) * (res / patch);
        let dev = &self.device;
        let (np, nc) = (labels(&PATCH_GROUPS), labels(&CLS_GROUPS));
        Ok(VisionBatch {
            pixels: Tensor::stack(&px, 0)?.to_device(dev)?,
            patch_weight: Tensor::from_vec(label_weights(&pl, np), (b * n, np), dev)?,
            patch: Tensor::from_vec(pl, (b * n, np), dev)?,
            // Class-token counts of 0 are real answers ("no circles"), not "nothing here".
            cls_weight: Tensor::ones((b, nc), DType::F32, dev)?,
            cls: Tensor::from_vec(cl, (b, nc), dev)?,
            text_set: Tensor::from_vec(ts, (b, TEXT_SET), dev)?,
            mask: Tensor::from_vec(mk, (b * n, MASK_CELLS), dev)?,
        })
    }

    /// The objective of a batch: weighted per-patch, place, count and global losses.
    pub fn batch_loss(&self, b: &VisionBatch) -> Result<Tensor> {
        objective(&self.encoder, &self.heads, &self.cfg.vision_loss, b)
    }

    pub fn train_step(&mut self) -> Result<StepStats> {
        let t = self.core.step + 1;
        let batches = (0..self.cfg.grad_accum)
            .map(|_| self.next_batch())
            .collect::<Result<Vec<_>>>()?;
        let tokens_per = self.encoder.num_tokens(self.cfg.image_res) * self.cfg.batch_size;
        let (encoder, heads, w) = (&self.encoder, &self.heads, &self.cfg.vision_loss);
        let loss = move |b: &VisionBatch| -> Result<MicroLoss> {
            Ok((objective(encoder, heads, w, b)?, tokens_per))
        };
        let (loss, grad_norm, lr, tokens) = self.core.update(&batches, &loss)?;
        let stats = StepStats {
            step: t,
            loss,
            lr,
            grad_norm,
            tokens,
            image_res: self.cfg.image_res,
        };
        self.core.log(&stats)?;
        Ok(stats)
    }

    pub fn save_checkpoint(&mut self) -> Result<PathBuf> {
        let state = TrainState {
            step: self.core.step,
            data: self.scenes.state(),
            rng: self.rng.state(),
            extra: serde_json::Value::Null,
        };
        self.core.save(state)
    }

    /// The encoder's weights under the release's names (heads dropped).
    pub fn encoder_tensors(&self) -> HashMap<String, Tensor> {
        self.params
            .vars()
            .into_iter()
            .filter(|(n, _)| !n.starts_with(HEAD))
            .filter_map(|(n, v)| {
                n.strip_prefix("vision_encoder.")
                    .map(|k| (k.to_string(), v.as_tensor().detach()))
            })
            .collect()
    }

    /// Writes `vision_encoder.safetensors` and `vision_config.json` into `dir`.
    pub fn export(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(VISION_WEIGHTS);
        let tmp = dir.join(format!("{VISION_WEIGHTS}.tmp"));
        candle_core::safetensors::save(&self.encoder_tensors(), &tmp)?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        let cfg = serde_json::to_string_pretty(&self.vision_config)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        crate::train::atomic::write_atomic(&dir.join(VISION_CONFIG), cfg.as_bytes())
    }

    /// Accuracy of the pretraining heads per target group on the image scenes of `scenes`
    /// (a scenes.jsonl file), seen whole: a probe of what the encoder's tokens hold. Patch
    /// groups count only patches where the target is not "nothing" (class 0), except `place`;
    /// `patch.mask_iou` (with the silhouette head) is the intersection over union of the
    /// silhouettes.
    pub fn probe(&self, scenes: &Path) -> Result<Vec<(String, f64)>> {
        let text = std::fs::read_to_string(scenes).map_err(|e| Error::io(scenes, e))?;
        let base = scenes.parent().map(Path::to_path_buf).unwrap_or_default();
        let res = self.cfg.image_res;
        let mut hits: Vec<(usize, usize)> = vec![(0, 0); PATCH_GROUPS.len() + CLS_GROUPS.len()];
        // Silhouettes, when the head exists: intersection and union of the sub-cells predicted
        // covered (logit > 0) and those covered. Most sub-cells are empty, so plain accuracy
        // would flatter a head that says "empty" everywhere.
        let mut mask_hits = (0usize, 0usize);
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let s: SceneMeta = serde_json::from_str(line).map_err(|e| {
                Error::parse(scenes.display().to_string(), Some(i + 1), e.to_string())
            })?;
            if s.kind != "image" {
                continue;
            }
            let img = load_image(&base.join(&s.media))?;
            let px = self.pre.eval(&img)?.unsqueeze(0)?.to_device(&self.device)?;
            let view = View::full(s.width, s.height, res, self.vision_config.patch_size);
            let t = scene_targets(&s, &view);
            let h = self
                .heads
                .norm
                .forward(&self.encoder.forward(&px)?.detach())?;
            let n1 = h.dim(1)?;
            let patch = self
                .heads
                .patch
                .forward(&h.narrow(1, 1, n1 - 1)?.squeeze(0)?)?;
            let cls = self.heads.cls.forward(&h.narrow(1, 0, 1)?.squeeze(0)?)?;
            if let Some(m) = &self.heads.mask {
                let got = m
                    .forward(&h.narrow(1, 1, n1 - 1)?.squeeze(0)?)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                for (g, want) in got.iter().zip(&t.mask) {
                    let (g, w) = (*g > 0.0, *want > 0.5);
                    mask_hits.0 += usize::from(g && w);
                    mask_hits.1 += usize::from(g || w);
                }
            }
            let (patch, cls) = (patch.to_vec2::<f32>()?, cls.to_vec2::<f32>()?);
            let per = labels(&PATCH_GROUPS);
            for (p, row) in patch.iter().enumerate() {
                let (mut off, mut lab) = (0, 0);
                for (g, grp) in PATCH_GROUPS.iter().enumerate() {
                    let want = t.patch[p * per + lab];
                    if want != 0 || g == 0 {
                        let got = argmax(&row[off..off + grp.classes]);
                        hits[g].0 += usize::from(got == want as usize);
                        hits[g].1 += 1;
                    }
                    off += grp.classes;
                    lab += 1;
                }
            }
            let (mut off, mut lab) = (0, 0);
            for (g, grp) in CLS_GROUPS.iter().enumerate() {
                for k in 0..grp.heads {
                    let got = argmax(&cls[0][off + k * grp.classes..off + (k + 1) * grp.classes]);
                    hits[PATCH_GROUPS.len() + g].0 += usize::from(got == t.cls[lab + k] as usize);
                    hits[PATCH_GROUPS.len() + g].1 += 1;
                }
                off += grp.heads * grp.classes;
                lab += grp.heads;
            }
        }
        let names = PATCH_GROUPS
            .iter()
            .map(|g| format!("patch.{}", g.name))
            .chain(CLS_GROUPS.iter().map(|g| format!("cls.{}", g.name)));
        if self.heads.mask.is_some() {
            hits.push(mask_hits);
        }
        let names = names.chain(
            self.heads
                .mask
                .as_ref()
                .map(|_| "patch.mask_iou".to_string()),
        );
        Ok(names
            .zip(hits)
            .map(|(n, (h, t))| {
                (
                    n,
                    if t == 0 {
                        f64::NAN
                    } else {
                        h as f64 / t as f64
                    },
                )
            })
            .collect())
    }

    pub fn run(&mut self, progress: bool) -> Result<Option<StepStats>> {
        let bar = progress_bar(self.cfg.max_steps, progress, "");
        run_loop(self, &bar)
    }
}

crate::train::core::impl_train_loop!(VisionTrainer);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sincos_table_codes_row_and_column() {
        let pe = sincos_pos_embed(3, 8).unwrap().squeeze(0).unwrap();
        let rows = pe.to_vec2::<f32>().unwrap();
        assert_eq!(rows.len(), 10);
        assert!(
            rows[0].iter().all(|&v| v == 0.0),
            "the class token's row is zero"
        );
        // Patch (gx=2, gy=1) is row 1 + 1*3 + 2; frequencies are 1 and 1/100 for width 8.
        let r = &rows[1 + 3 + 2];
        let want = [
            1f32.sin(),
            0.01f32.sin(),
            1f32.cos(),
            0.01f32.cos(),
            2f32.sin(),
            0.02f32.sin(),
            2f32.cos(),
            0.02f32.cos(),
        ];
        for (a, b) in r.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{r:?}");
        }
        // Every patch gets its own code.
        for i in 1..10 {
            for j in i + 1..10 {
                assert_ne!(rows[i], rows[j]);
            }
        }
    }

    #[test]
    fn empty_sub_cells_weigh_less_in_the_silhouette_loss() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[0.0f32, 0.0, 2.0, -2.0], &dev).unwrap();
        let y = Tensor::new(&[1.0f32, 0.0, 1.0, 0.0], &dev).unwrap();
        let got = mask_bce(&x, &y).unwrap().to_scalar::<f32>().unwrap();
        // Per element: ln 2, ln 2, ln(1 + e^-2) twice; weights 1, 0.1, 1, 0.1.
        let (a, b) = (2f32.ln(), (1.0 + (-2f32).exp()).ln());
        let want = (a + 0.1 * a + b + 0.1 * b) / 2.2;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        let plain = bce(&x, &y).unwrap().to_scalar::<f32>().unwrap();
        assert!((plain - (2.0 * a + 2.0 * b) / 4.0).abs() < 1e-6);
    }

    #[test]
    fn empty_patches_weigh_less_but_the_place_does_not() {
        // Two rows of three labels: place, then two groups whose class 0 means "nothing".
        let w = label_weights(&[0, 0, 3, 5, 0, 0], 3);
        assert_eq!(w, [1.0, EMPTY_WEIGHT, 1.0, 1.0, EMPTY_WEIGHT, EMPTY_WEIGHT]);
    }
}
