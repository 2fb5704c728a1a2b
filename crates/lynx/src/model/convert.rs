//! `lynx convert`: the model assembled from the release files (pickled ViT, HF LLM folder,
//! partial checkpoint) written as one safetensors directory that later loads by mmap.
//!
//! The model is first built in a dry run (names and shapes only, no tensor data), then each
//! tensor is read and written one at a time, so memory stays at one tensor, not the model.

use std::borrow::Cow;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};
use safetensors::tensor::{Dtype, View};

use crate::config::LynxYaml;
use crate::data::tokenizer::{LynxTokenizer, TokenizerSource};
use crate::model::load::{self, CONVERTED_CONFIG, CONVERTED_RUNTIME, CONVERTED_WEIGHTS};
use crate::model::lynx::{Lynx, LynxConfig};
use crate::model::weights::WeightStore;
use crate::{Error, Result};

/// What a conversion wrote.
#[derive(Debug, Clone)]
pub struct ConvertSummary {
    pub tensors: usize,
    pub bytes: u64,
}

fn st_dtype(d: DType) -> Result<Dtype> {
    Ok(match d {
        DType::F32 => Dtype::F32,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
        DType::F64 => Dtype::F64,
        DType::U8 => Dtype::U8,
        DType::U32 => Dtype::U32,
        DType::I64 => Dtype::I64,
        other => return Err(Error::Invalid(format!("cannot store dtype {other:?}"))),
    })
}

/// One tensor to write, read from the store only when the writer asks for its bytes.
struct LazyTensor<'a> {
    store: &'a WeightStore,
    name: String,
    pad_row: bool,
    shape: Vec<usize>,
    dtype: Dtype,
    len: usize,
    error: &'a RefCell<Option<Error>>,
    progress: &'a indicatif::ProgressBar,
}

impl View for LazyTensor<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        self.progress.inc(1);
        let bytes = self
            .store
            .export_tensor(&self.name, self.pad_row)
            .and_then(|t| Ok(t.contiguous()?))
            .map(|t| View::data(&t).into_owned());
        match bytes {
            Ok(b) if b.len() == self.len => Cow::Owned(b),
            Ok(b) => {
                self.error.borrow_mut().get_or_insert(Error::weights(
                    "conversion",
                    self.name.clone(),
                    format!("read {} bytes, expected {}", b.len(), self.len),
                ));
                Cow::Owned(vec![0; self.len])
            }
            Err(e) => {
                self.error.borrow_mut().get_or_insert(e);
                Cow::Owned(vec![0; self.len])
            }
        }
    }
    fn data_len(&self) -> usize {
        self.len
    }
}

/// The runtime settings written beside the weights: the config without the file keys.
fn runtime_yaml(yaml: &LynxYaml) -> Result<String> {
    let mut y = yaml.clone();
    y.llm_path = None;
    y.vision_encoder_path = None;
    y.checkpoint = None;
    y.test_files.clear();
    y.image_rdir = None;
    serde_yaml::to_string(&y).map_err(|e| Error::Invalid(format!("serialising the config: {e}")))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Writes a converted directory for the release files named by the config at `config`.
pub fn convert_release(
    config: &Path,
    sets: &[String],
    out: &Path,
    progress: bool,
) -> Result<ConvertSummary> {
    let yaml = LynxYaml::load(config, sets)?;
    let llm_dir = yaml.required_path("llm_path", &yaml.llm_path)?;
    let source = match yaml.tokenizer {
        crate::config::TokenizerChoice::Auto => TokenizerSource::Auto,
        crate::config::TokenizerChoice::Model => TokenizerSource::SentencePiece,
        crate::config::TokenizerChoice::Json => TokenizerSource::Json,
    };
    let tokenizer = LynxTokenizer::from_dir(&llm_dir, source)?;
    let cfg = load::lynx_config(
        &yaml,
        load::read_llama_config(&llm_dir)?,
        tokenizer.vocab_size(),
    )?;
    let store = Arc::new(WeightStore::new_dry_run(load::release_mounts(&yaml)?));
    // Building the model checks every name and shape without reading tensor data.
    Lynx::new(&cfg, store.var_builder(DType::F32, &Device::Cpu))?;
    store.check_unused()?;
    write_converted(&store, &cfg, &yaml, &tokenizer, out, progress)
}

/// Writes `config.json`, `model.safetensors`, `lynx.yaml` and the tokenizer into `out`.
pub fn write_converted(
    store: &WeightStore,
    cfg: &LynxConfig,
    yaml: &LynxYaml,
    tokenizer: &LynxTokenizer,
    out: &Path,
    progress: bool,
) -> Result<ConvertSummary> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let served = store.served();
    let bar = if progress {
        indicatif::ProgressBar::new(served.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let error = RefCell::new(None);
    let mut views = Vec::with_capacity(served.len());
    let mut bytes = 0u64;
    for (name, pad_row) in served {
        let (mut shape, dtype) = store
            .meta(&name)
            .ok_or_else(|| Error::weights("conversion", name.clone(), "vanished from its file"))?;
        let dtype = if pad_row {
            shape[0] += 1;
            DType::F32
        } else {
            dtype
        };
        let len = shape.iter().product::<usize>() * dtype.size_in_bytes();
        bytes += len as u64;
        views.push((
            name.clone(),
            LazyTensor {
                store,
                name,
                pad_row,
                shape,
                dtype: st_dtype(dtype)?,
                len,
                error: &error,
                progress: &bar,
            },
        ));
    }
    let target = out.join(CONVERTED_WEIGHTS);
    let tmp: PathBuf = out.join(format!("{CONVERTED_WEIGHTS}.tmp"));
    let written = safetensors::serialize_to_file(views, None, &tmp);
    bar.finish_and_clear();
    if let Some(e) = error.into_inner() {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    written.map_err(|e| Error::io(&tmp, std::io::Error::other(e.to_string())))?;
    std::fs::rename(&tmp, &target).map_err(|e| Error::io(&target, e))?;
    let cfg_json = serde_json::to_string_pretty(cfg).map_err(|e| Error::Invalid(e.to_string()))?;
    write_atomic(&out.join(CONVERTED_CONFIG), cfg_json.as_bytes())?;
    write_atomic(&out.join(CONVERTED_RUNTIME), runtime_yaml(yaml)?.as_bytes())?;
    tokenizer.save_to_dir(out)?;
    Ok(ConvertSummary {
        tensors: store.served().len(),
        bytes,
    })
}
