//! Assembling a Lynx model from the release files (eva_vit_g.pth, a Vicuna/LLaMA HF folder,
//! finetune_lynx.pt) or from a converted directory (one mmap'd safetensors file).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device};
use serde::Deserialize;

use crate::config::LynxYaml;
use crate::model::bridge::resampler::BridgeConfig;
use crate::model::llm::llama::{AdapterConfig, LlamaConfig};
use crate::model::lynx::{Lynx, LynxConfig};
use crate::model::weights::{Mount, TensorFile, WeightStore};
use crate::{Error, Result};

/// File names inside a converted model directory.
pub const CONVERTED_CONFIG: &str = "config.json";
pub const CONVERTED_WEIGHTS: &str = "model.safetensors";
pub const CONVERTED_RUNTIME: &str = "lynx.yaml";

/// A loaded model and what it was loaded from (for warnings about unused tensors).
pub struct LoadedModel {
    pub model: Lynx,
    /// Per file, tensors nothing read (only for lenient files; strict ones are errors).
    pub unused: Vec<(String, Vec<String>)>,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::parse(path.display().to_string(), Some(e.line()), e.to_string()))
}

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: std::collections::BTreeMap<String, String>,
}

/// The weight files of a Hugging Face model folder, in the order HF prefers them.
pub fn hf_weight_files(dir: &Path) -> Result<TensorFile> {
    let shards = |index: &Path| -> Result<Vec<PathBuf>> {
        let idx: ShardIndex = read_json(index)?;
        let mut files: Vec<PathBuf> = idx.weight_map.values().map(|f| dir.join(f)).collect();
        files.sort();
        files.dedup();
        Ok(files)
    };
    let st_index = dir.join("model.safetensors.index.json");
    let st_single = dir.join("model.safetensors");
    let bin_index = dir.join("pytorch_model.bin.index.json");
    let bin_single = dir.join("pytorch_model.bin");
    if st_index.is_file() {
        TensorFile::safetensors(&shards(&st_index)?)
    } else if st_single.is_file() {
        TensorFile::safetensors(&[st_single])
    } else if bin_index.is_file() {
        TensorFile::pth(&shards(&bin_index)?)
    } else if bin_single.is_file() {
        TensorFile::pth(&[bin_single])
    } else {
        Err(Error::weights(
            dir.display().to_string(),
            "*",
            "no model.safetensors[.index.json] or pytorch_model.bin[.index.json] in this folder",
        ))
    }
}

/// The LLM's `config.json`.
pub fn read_llama_config(dir: &Path) -> Result<LlamaConfig> {
    read_json(&dir.join("config.json"))
}

/// The network configuration described by a YAML config and the LLM's `config.json`.
/// `base_vocab` is the tokenizer's vocabulary; the [PAD] token is appended after it.
pub fn lynx_config(yaml: &LynxYaml, llm: LlamaConfig, base_vocab: usize) -> Result<LynxConfig> {
    if llm.vocab_size != base_vocab {
        return Err(Error::config(
            "llm_path",
            format!(
                "the LLM's config.json has vocab_size {} but its tokenizer has {base_vocab} tokens",
                llm.vocab_size
            ),
        ));
    }
    let vision = yaml.vision()?;
    Ok(LynxConfig {
        bridge: BridgeConfig {
            depth: yaml.bridge_depth,
            num_bridge_tokens: yaml.num_bridge_tokens,
            media_dim: vision.embed_dim,
            latent_dim: llm.hidden_size,
            num_heads: yaml.bridge_config.num_heads,
            head_dim: yaml.bridge_config.head_dim,
            ff_mult: yaml.bridge_config.ff_mult,
            locality: yaml.bridge_config.locality,
            media_grid: yaml.image_res / vision.patch_size.max(1),
            instruction_aware: yaml.bridge_config.instruction_aware,
            word_tokens: yaml.bridge_config.word_tokens,
            word_token_place: yaml.bridge_config.word_token_place,
            word_token_hard: yaml.bridge_config.word_token_hard,
        },
        vision,
        adapter: AdapterConfig {
            use_adapter: yaml.use_adapter,
            adapter_freq: yaml.adapter_freq,
            bottleneck: yaml.adapter_bottleneck,
        },
        add_frame_pos: yaml.add_frame_pos,
        num_frames: yaml.data.num_frames,
        vocab_size: base_vocab + 1,
        llm,
    })
}

/// The release files named by the config, mounted under the model's names: the optional
/// `checkpoint` first (its tensors take precedence), then `vision_encoder_path` and `llm_path`.
pub fn release_mounts(yaml: &LynxYaml) -> Result<Vec<Mount>> {
    let llm_dir = yaml.required_path("llm_path", &yaml.llm_path)?;
    let vit = yaml.required_path("vision_encoder_path", &yaml.vision_encoder_path)?;
    let mut mounts = Vec::new();
    if let Some(ckpt) = &yaml.checkpoint {
        let path = yaml.required_path("checkpoint", &Some(ckpt.clone()))?;
        let file = TensorFile::open(&path)?;
        mounts.push(Mount::new(
            path.display().to_string(),
            "",
            "model.",
            true,
            file,
        ));
    }
    mounts.push(Mount::new(
        vit.display().to_string(),
        "vision_encoder.",
        "",
        false,
        TensorFile::open(&vit)?,
    ));
    mounts.push(Mount::new(
        llm_dir.display().to_string(),
        "LLM.",
        "",
        false,
        hf_weight_files(&llm_dir)?,
    ));
    Ok(mounts)
}

/// Loads the release files named by the config.
pub fn load_release(
    yaml: &LynxYaml,
    cfg: &LynxConfig,
    dtype: DType,
    device: &Device,
) -> Result<LoadedModel> {
    build(
        cfg,
        Arc::new(WeightStore::new(release_mounts(yaml)?)),
        dtype,
        device,
    )
}

/// The network configuration of a converted directory.
pub fn read_converted_config(dir: &Path) -> Result<LynxConfig> {
    read_json(&dir.join(CONVERTED_CONFIG))
}

/// The weights of a converted directory, mounted under the model's names.
pub fn converted_mount(dir: &Path, strict: bool) -> Result<Mount> {
    let weights = dir.join(CONVERTED_WEIGHTS);
    Ok(Mount::new(
        weights.display().to_string(),
        "",
        "",
        strict,
        TensorFile::safetensors(&[weights])?,
    ))
}

/// Loads a converted directory (`config.json` + `model.safetensors`), memory-mapped.
pub fn load_converted(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<(LynxConfig, LoadedModel)> {
    let cfg = read_converted_config(dir)?;
    let mounts = vec![converted_mount(dir, true)?];
    let loaded = build(&cfg, Arc::new(WeightStore::new(mounts)), dtype, device)?;
    Ok((cfg, loaded))
}

/// Builds the model from a store, then rejects tensors of strict files that nothing read.
pub fn build(
    cfg: &LynxConfig,
    store: Arc<WeightStore>,
    dtype: DType,
    device: &Device,
) -> Result<LoadedModel> {
    let vb = store.var_builder(dtype, device);
    let model = Lynx::new(cfg, vb)?;
    store.check_unused()?;
    let unused = store
        .unused()
        .into_iter()
        .filter(|(_, names)| !names.is_empty())
        .collect();
    Ok(LoadedModel { model, unused })
}
