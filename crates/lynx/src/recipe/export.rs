//! The last step of the recipe (issue 4): the trained Lynx written as a compact model folder,
//! the one committed under `assets/default-model/` and embedded in the binary
//! (`lynx::default_model`): `config.json`, `model.safetensors` in f16 (the CPU computes in
//! f32; f16 keeps ~3 significant digits, far below what the model's answers depend on),
//! `lynx.yaml` (runtime and generation settings) and `tokenizer.json`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor};

use crate::config::LynxYaml;
use crate::data::tokenizer::{LynxTokenizer, TokenizerSource};
use crate::model::load::{self, CONVERTED_CONFIG, CONVERTED_RUNTIME, CONVERTED_WEIGHTS};
use crate::model::weights::TensorFile;
use crate::{Error, Result};

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    pub tensors: usize,
    pub parameters: usize,
    pub weight_bytes: u64,
}

/// Copies the converted model folder `src` to `dst` with the weights stored as `dtype` and the
/// runtime settings of `yaml`. The result loads with `lynx ask --model DST`.
pub fn export_model(
    src: &Path,
    dst: &Path,
    yaml: &LynxYaml,
    dtype: DType,
) -> Result<ExportSummary> {
    let cfg = load::read_converted_config(src)?;
    let weights = src.join(CONVERTED_WEIGHTS);
    let file = TensorFile::safetensors(std::slice::from_ref(&weights))?;
    let TensorFile::Safetensors(st) = &file else {
        return Err(Error::Invalid("expected a safetensors file".into()));
    };
    let mut out: HashMap<String, Tensor> = HashMap::new();
    let mut parameters = 0;
    for name in st.names() {
        let Some(t) = st.load(name)? else { continue };
        parameters += t.elem_count();
        out.insert(name.clone(), t.to_dtype(dtype)?);
    }
    std::fs::create_dir_all(dst).map_err(|e| Error::io(dst, e))?;
    let target = dst.join(CONVERTED_WEIGHTS);
    let tmp = dst.join(format!("{CONVERTED_WEIGHTS}.tmp"));
    candle_core::safetensors::save(&out, &tmp)?;
    std::fs::rename(&tmp, &target).map_err(|e| Error::io(&target, e))?;
    let cfg_json = serde_json::to_string_pretty(&cfg).map_err(|e| Error::Invalid(e.to_string()))?;
    crate::train::atomic::write_atomic(&dst.join(CONVERTED_CONFIG), cfg_json.as_bytes())?;
    let mut runtime = yaml.clone();
    runtime.llm_path = None;
    runtime.vision_encoder_path = None;
    runtime.checkpoint = None;
    runtime.test_files.clear();
    runtime.image_rdir = None;
    // Stage 2 may have made the word tokens hard (`lynx train`'s `word_token_hard`): the
    // runtime settings say what the trained model does.
    runtime.bridge_config.word_token_hard = cfg.bridge.word_token_hard;
    let text = serde_yaml::to_string(&runtime)
        .map_err(|e| Error::Invalid(format!("serialising lynx.yaml: {e}")))?;
    crate::train::atomic::write_atomic(&dst.join(CONVERTED_RUNTIME), text.as_bytes())?;
    let tok = LynxTokenizer::from_dir(src, TokenizerSource::Json)?;
    let json = tok.to_hf_json()?;
    crate::train::atomic::write_atomic(
        &dst.join(crate::data::tokenizer::JSON_FILE),
        json.as_bytes(),
    )?;
    let weight_bytes = std::fs::metadata(&target)
        .map_err(|e| Error::io(&target, e))?
        .len();
    Ok(ExportSummary {
        tensors: out.len(),
        parameters,
        weight_bytes,
    })
}
