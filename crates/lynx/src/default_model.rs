//! The default model (issue 4): a small Lynx trained by `lynx recipe default` on the generated
//! world, committed under `assets/default-model/` and embedded in the binary, so that
//! `lynx ask --image IMG "question"` works with no files on a fresh machine. `Engine::load`
//! uses it when neither a config nor a model folder is given.
//!
//! The weights are stored in f16 and served in the dtype asked for (f32 on the CPU).

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};

use crate::config::{apply_overrides, from_value, LynxYaml};
use crate::data::tokenizer::LynxTokenizer;
use crate::model::load::{self, LoadedModel};
use crate::model::lynx::LynxConfig;
use crate::model::weights::{Mount, TensorFile, WeightStore};
use crate::{Error, Result};

/// `assets/default-model/config.json`: the network's sizes.
pub const CONFIG: &str = include_str!("../../../assets/default-model/config.json");
/// `assets/default-model/lynx.yaml`: prompt, preprocessing and generation settings.
pub const RUNTIME: &str = include_str!("../../../assets/default-model/lynx.yaml");
/// `assets/default-model/tokenizer.json`.
pub const TOKENIZER: &[u8] = include_bytes!("../../../assets/default-model/tokenizer.json");
/// `assets/default-model/model.safetensors` (f16).
pub const WEIGHTS: &[u8] = include_bytes!("../../../assets/default-model/model.safetensors");

/// How the embedded files are named in messages.
pub const LABEL: &str = "embedded default model";

/// The network configuration.
pub fn config() -> Result<LynxConfig> {
    serde_json::from_str(CONFIG).map_err(|e| {
        Error::parse(
            format!("{LABEL}: config.json"),
            Some(e.line()),
            e.to_string(),
        )
    })
}

/// The runtime settings with `--set` overrides applied.
pub fn runtime(sets: &[String]) -> Result<LynxYaml> {
    let mut value: serde_yaml::Value = serde_yaml::from_str(RUNTIME).map_err(|e| {
        Error::parse(
            format!("{LABEL}: lynx.yaml"),
            e.location().map(|l| l.line()),
            e.to_string(),
        )
    })?;
    apply_overrides(&mut value, sets)?;
    let yaml: LynxYaml = from_value(value, &format!("{LABEL}: lynx.yaml"))?;
    yaml.validate()?;
    Ok(yaml)
}

/// The tokenizer.
pub fn tokenizer() -> Result<LynxTokenizer> {
    LynxTokenizer::from_json_bytes(TOKENIZER, &format!("{LABEL}: tokenizer.json"))
}

/// The weights, decoded from the embedded safetensors bytes (on the CPU, as stored).
pub fn tensors() -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load_buffer(WEIGHTS, &Device::Cpu)
        .map_err(|e| Error::weights(LABEL, "*", format!("embedded model.safetensors: {e}")))
}

/// Builds the model in `dtype` on `device`.
pub fn load_model(dtype: DType, device: &Device) -> Result<(LynxConfig, LoadedModel)> {
    let cfg = config()?;
    let file = TensorFile::Map(tensors()?);
    let store = Arc::new(WeightStore::new(vec![Mount::new(
        LABEL, "", "", true, file,
    )]));
    let loaded = load::build(&cfg, store, dtype, device)?;
    Ok((cfg, loaded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_files_agree() {
        let cfg = config().unwrap();
        let tok = tokenizer().unwrap();
        assert_eq!(
            tok.vocab_size() + 1,
            cfg.vocab_size,
            "tokenizer + [PAD] = embedding rows"
        );
        let yaml = runtime(&[]).unwrap();
        assert_eq!(yaml.data.num_frames, cfg.num_frames);
        let t = tensors().unwrap();
        assert!(t.values().all(|t| t.dtype() == DType::F16), "stored in f16");
        let (_, loaded) = load_model(DType::F32, &Device::Cpu).unwrap();
        assert!(loaded.unused.is_empty());
        assert_eq!(loaded.model.dtype(), DType::F32);
    }
}
