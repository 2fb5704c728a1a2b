//! Weight sources for the model, as users have the release on disk: safetensors (mmap, single or
//! sharded), PyTorch pickles (`eva_vit_g.pth`, `pytorch_model*.bin`, `finetune_lynx.pt`), and
//! in-memory maps. A [`WeightStore`] mounts them under the `LynxBase` names and serves them to
//! candle's `VarBuilder`, appending the [PAD] rows of the release on the fly.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::pickle::PthTensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use crate::model::mmap::MappedSafetensors;
use crate::{Error, Result};

/// One file format holding named tensors.
pub enum TensorFile {
    Safetensors(MappedSafetensors),
    Pth(Vec<PthTensors>),
    Map(HashMap<String, Tensor>),
}

impl TensorFile {
    /// Memory-maps safetensors files (one, or the shards of one model).
    pub fn safetensors(paths: &[PathBuf]) -> Result<Self> {
        for p in paths {
            if !p.is_file() {
                return Err(Error::io(
                    p,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                ));
            }
        }
        Ok(TensorFile::Safetensors(MappedSafetensors::open(paths)?))
    }

    /// Indexes PyTorch pickle files (zip format). A `{"model": state_dict}` wrapper is unwrapped.
    pub fn pth(paths: &[PathBuf]) -> Result<Self> {
        let mut out = Vec::with_capacity(paths.len());
        for p in paths {
            if !p.is_file() {
                return Err(Error::io(
                    p,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                ));
            }
            let wrapped = PthTensors::new(p, Some("model"));
            let pth = match wrapped {
                Ok(t) if !t.tensor_infos().is_empty() => t,
                _ => PthTensors::new(p, None).map_err(|e| {
                    Error::weights(
                        p.display().to_string(),
                        "*",
                        format!("not a PyTorch checkpoint (zip pickle) this loader can read: {e}"),
                    )
                })?,
            };
            if pth.tensor_infos().is_empty() {
                return Err(Error::weights(
                    p.display().to_string(),
                    "*",
                    "no tensors found (expected a state dict, or a dict whose key \"model\" holds one)",
                ));
            }
            out.push(pth);
        }
        Ok(TensorFile::Pth(out))
    }

    /// Opens a file by extension: `.safetensors` by mmap, anything else as a PyTorch pickle.
    pub fn open(path: &Path) -> Result<Self> {
        if path.extension().is_some_and(|e| e == "safetensors") {
            Self::safetensors(&[path.to_path_buf()])
        } else {
            Self::pth(&[path.to_path_buf()])
        }
    }

    /// The names of all tensors in the file(s).
    pub fn names(&self) -> Vec<String> {
        match self {
            TensorFile::Safetensors(st) => st.names().cloned().collect(),
            TensorFile::Pth(files) => files
                .iter()
                .flat_map(|f| f.tensor_infos().keys().cloned())
                .collect(),
            TensorFile::Map(m) => m.keys().cloned().collect(),
        }
    }

    /// Shape and dtype of a tensor without reading its data.
    pub fn meta(&self, name: &str) -> Option<(Vec<usize>, DType)> {
        match self {
            TensorFile::Safetensors(st) => st.meta(name),
            TensorFile::Pth(files) => files.iter().find_map(|f| {
                let info = f.tensor_infos().get(name)?;
                Some((info.layout.dims().to_vec(), info.dtype))
            }),
            TensorFile::Map(m) => m.get(name).map(|t| (t.dims().to_vec(), t.dtype())),
        }
    }

    fn load(&self, name: &str) -> candle_core::Result<Option<Tensor>> {
        match self {
            TensorFile::Safetensors(st) => st.load(name),
            TensorFile::Pth(files) => {
                for f in files {
                    if f.tensor_infos().contains_key(name) {
                        return f.get(name);
                    }
                }
                Ok(None)
            }
            TensorFile::Map(m) => Ok(m.get(name).cloned()),
        }
    }
}

/// A tensor file mounted under a prefix of the model's names.
pub struct Mount {
    /// Name used in errors (the file path).
    pub label: String,
    /// Model names starting with this prefix are looked up in `file` without it.
    pub prefix: String,
    /// Source names dropped from the file before mounting (e.g. a leading `model.`).
    pub strip: String,
    /// Whether tensors of the file that the model never reads are an error.
    pub strict: bool,
    pub file: TensorFile,
    names: HashSet<String>,
}

impl Mount {
    pub fn new(
        label: impl Into<String>,
        prefix: &str,
        strip: &str,
        strict: bool,
        file: TensorFile,
    ) -> Self {
        let names = file.names().into_iter().collect();
        Self {
            label: label.into(),
            prefix: prefix.to_string(),
            strip: strip.to_string(),
            strict,
            file,
            names,
        }
    }

    /// The source name of model name `name`, when this mount holds it.
    fn source_name(&self, name: &str) -> Option<String> {
        let rest = name.strip_prefix(&self.prefix)?;
        let candidates = [format!("{}{rest}", self.strip), rest.to_string()];
        candidates.into_iter().find(|c| self.names.contains(c))
    }
}

/// Names of the two matrices that gain the [PAD] row.
const PAD_ROW_TENSORS: [&str; 2] = ["LLM.model.embed_tokens.weight", "LLM.lm_head.weight"];

/// Buffers that HF checkpoints carry and the model recomputes.
fn ignorable(name: &str) -> bool {
    name.ends_with("rotary_emb.inv_freq")
}

/// Serves tensors from several mounts; earlier mounts take precedence.
pub struct WeightStore {
    mounts: Vec<Mount>,
    used: Mutex<HashSet<(usize, String)>>,
    /// Every model name served, with whether the [PAD] row was appended to it.
    served: Mutex<BTreeMap<String, bool>>,
    /// Serve zero-cost placeholders with the right shapes instead of reading data.
    dry_run: AtomicBool,
}

impl WeightStore {
    pub fn new(mounts: Vec<Mount>) -> Self {
        Self {
            mounts,
            used: Mutex::new(HashSet::new()),
            served: Mutex::new(BTreeMap::new()),
            dry_run: AtomicBool::new(false),
        }
    }

    /// A store that checks names and shapes but reads no tensor data (to plan a conversion).
    pub fn new_dry_run(mounts: Vec<Mount>) -> Self {
        let store = Self::new(mounts);
        store.set_dry_run(true);
        store
    }

    /// Switches between serving placeholders (names and shapes only) and real tensors.
    pub fn set_dry_run(&self, on: bool) {
        self.dry_run.store(on, Ordering::SeqCst);
    }

    /// Whether `name` is held by a mounted file.
    pub fn contains(&self, name: &str) -> bool {
        self.locate(name).is_some()
    }

    fn locate(&self, name: &str) -> Option<(usize, String)> {
        self.mounts
            .iter()
            .enumerate()
            .find_map(|(i, m)| m.source_name(name).map(|src| (i, src)))
    }

    /// Shape and dtype of model tensor `name` as stored, before any [PAD] row.
    pub fn meta(&self, name: &str) -> Option<(Vec<usize>, DType)> {
        let (i, src) = self.locate(name)?;
        self.mounts[i].file.meta(&src)
    }

    /// The model names served so far, with whether each gained the [PAD] row.
    pub fn served(&self) -> Vec<(String, bool)> {
        self.served
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }

    /// A served tensor in its stored dtype, with the [PAD] row appended (in f32 when the stored
    /// dtype is a half type, so the mean row keeps the precision the release gives it).
    pub fn export_tensor(&self, name: &str, pad_row: bool) -> Result<Tensor> {
        let (_, t) = self
            .find(name)?
            .ok_or_else(|| Error::Candle(self.missing(name)))?;
        if !pad_row {
            return Ok(t);
        }
        Ok(append_mean_row(&t.to_dtype(DType::F32)?)?)
    }

    fn find(&self, name: &str) -> candle_core::Result<Option<(usize, Tensor)>> {
        for (i, m) in self.mounts.iter().enumerate() {
            if let Some(src) = m.source_name(name) {
                if let Some(t) = m.file.load(&src)? {
                    if let Ok(mut used) = self.used.lock() {
                        used.insert((i, src));
                    }
                    return Ok(Some((i, t)));
                }
            }
        }
        Ok(None)
    }

    fn missing(&self, name: &str) -> candle_core::Error {
        let labels: Vec<&str> = self
            .mounts
            .iter()
            .filter(|m| name.starts_with(&m.prefix))
            .map(|m| m.label.as_str())
            .collect();
        candle_core::Error::Msg(format!(
            "missing tensor `{name}` (looked in: {})",
            if labels.is_empty() {
                "no file holds this part".to_string()
            } else {
                labels.join(", ")
            }
        ))
    }

    /// Tensors of strict mounts that nothing read: an error naming the file and the keys.
    pub fn check_unused(&self) -> Result<()> {
        for (label, unused) in self.unused() {
            let strict = self.mounts.iter().any(|m| m.label == label && m.strict);
            if strict && !unused.is_empty() {
                let shown: Vec<_> = unused.iter().take(8).cloned().collect();
                return Err(Error::weights(
                    label,
                    shown.join(", "),
                    format!(
                        "{} tensor(s) match no parameter of the configured model (wrong size, adapter_freq or model?)",
                        unused.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// For every mount, the tensors nothing has read (HF buffers excluded).
    pub fn unused(&self) -> Vec<(String, Vec<String>)> {
        let used = self.used.lock().map(|u| u.clone()).unwrap_or_default();
        self.mounts
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut names: Vec<String> = m
                    .names
                    .iter()
                    .filter(|n| !ignorable(n) && !used.contains(&(i, (*n).clone())))
                    .filter(|n| {
                        // A name shadowed by an earlier mount was not needed from this one.
                        let model_name =
                            format!("{}{}", m.prefix, n.strip_prefix(&m.strip).unwrap_or(n));
                        !self.mounts[..i]
                            .iter()
                            .any(|e| e.source_name(&model_name).is_some())
                    })
                    .cloned()
                    .collect();
                names.sort();
                (m.label.clone(), names)
            })
            .collect()
    }

    /// A `VarBuilder` over this store; the store stays readable for [`Self::check_unused`].
    pub fn var_builder(self: &Arc<Self>, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(Shared(self.clone())), dtype, device.clone())
    }
}

struct Shared(Arc<WeightStore>);

/// Appends one row equal to the mean of the existing rows ([PAD] of the release).
pub fn append_mean_row(t: &Tensor) -> candle_core::Result<Tensor> {
    let dtype = t.dtype();
    let f = t.to_dtype(DType::F32)?;
    let mean = f.mean_keepdim(0)?;
    Tensor::cat(&[&f, &mean], 0)?.to_dtype(dtype)
}

impl Shared {
    fn serve(
        &self,
        name: &str,
        s: Option<&Shape>,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let store = &self.0;
        let (mount, src) = store.locate(name).ok_or_else(|| store.missing(name))?;
        let label = &store.mounts[mount].label;
        let (mut dims, _) = store.mounts[mount]
            .file
            .meta(&src)
            .ok_or_else(|| store.missing(name))?;
        let mut pad = false;
        if let Some(s) = s {
            if PAD_ROW_TENSORS.contains(&name) && dims.len() == 2 && s.rank() == 2 {
                pad = s.dims()[0] == dims[0] + 1 && s.dims()[1] == dims[1];
                if pad {
                    dims[0] += 1;
                }
            }
            if dims != s.dims() {
                candle_core::bail!(
                    "{label}: tensor `{name}` has shape {dims:?} but the configured model expects {:?}",
                    s.dims()
                );
            }
        }
        if let Ok(mut served) = store.served.lock() {
            served.insert(name.to_string(), pad);
        }
        if store.dry_run.load(Ordering::SeqCst) {
            if let Ok(mut used) = store.used.lock() {
                used.insert((mount, src));
            }
            return Tensor::zeros((), dtype, dev)?.broadcast_as(dims);
        }
        let (_, t) = store.find(name)?.ok_or_else(|| store.missing(name))?;
        // Cast first: the release computes the [PAD] row in f32 and keeps it in the model's dtype.
        let t = t.to_dtype(dtype)?;
        let t = if pad { append_mean_row(&t)? } else { t };
        t.to_device(dev)
    }
}

impl SimpleBackend for Shared {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.serve(name, Some(&s), dtype, dev)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.serve(name, None, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.locate(name).is_some()
    }
}
