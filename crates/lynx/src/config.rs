//! The YAML configuration: every key of the official `configs/LYNX.yaml` under its own name, plus
//! the paths of the release files, an optional ViT size, and `--set a.b=c` overrides.
//!
//! A key that nothing reads is an error naming the key, so a typo never passes silently.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::bridge::resampler::WordTokenPlace;
use crate::model::vision::eva_vit::VisionConfig;
use crate::{Error, Result};

/// `data:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    #[serde(default = "d_num_frames")]
    pub num_frames: usize,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            num_frames: d_num_frames(),
        }
    }
}

/// Optional sizes of the resampler beyond LYNX.yaml's `bridge_depth`/`num_bridge_tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeSizes {
    #[serde(default = "d_heads")]
    pub num_heads: usize,
    #[serde(default = "d_head_dim")]
    pub head_dim: usize,
    #[serde(default = "d_ff_mult")]
    pub ff_mult: usize,
    /// The resampler's locality bias (`BridgeConfig::locality`; 0, the release, when absent).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub locality: f64,
    /// The resampler also reads the prompt (`BridgeConfig::instruction_aware`; false, the
    /// release, when absent).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub instruction_aware: bool,
    /// The last bridge tokens are mixtures of the LLM's word embeddings
    /// (`BridgeConfig::word_tokens`; 0, the release, when absent).
    #[serde(default, skip_serializing_if = "is_zero_usize")]
    pub word_tokens: usize,
    /// Where the word tokens enter the LLM (`BridgeConfig::word_token_place`; before the
    /// prompt, with the other bridge tokens, when absent).
    #[serde(default, skip_serializing_if = "WordTokenPlace::is_prefix")]
    pub word_token_place: WordTokenPlace,
    /// Each word token is its most likely word's embedding (`BridgeConfig::word_token_hard`;
    /// the mixture when absent).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub word_token_hard: bool,
}

fn is_zero_usize(x: &usize) -> bool {
    *x == 0
}

fn is_zero_f64(x: &f64) -> bool {
    *x == 0.0
}

impl Default for BridgeSizes {
    fn default() -> Self {
        Self {
            num_heads: d_heads(),
            head_dim: d_head_dim(),
            ff_mult: d_ff_mult(),
            locality: 0.0,
            instruction_aware: false,
            word_tokens: 0,
            word_token_place: WordTokenPlace::Prefix,
            word_token_hard: false,
        }
    }
}

/// How video frames are picked (the release samples at random even at evaluation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FrameSamplingMode {
    #[default]
    Deterministic,
    Random,
}

/// Which tokenizer file of the LLM folder to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerChoice {
    /// tokenizer.model when present (what the release uses), else tokenizer.json.
    #[default]
    Auto,
    Model,
    Json,
}

/// The configuration of `lynx generate` / `ask` / `forward` / `convert`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LynxYaml {
    // Data.
    #[serde(default)]
    pub image_rdir: Option<String>,
    #[serde(default)]
    pub test_files: Vec<String>,
    #[serde(default = "d_prompt")]
    pub prompt: String,
    #[serde(default = "d_vision_key")]
    pub vision_prompt_dict: String,
    #[serde(default = "d_output_key")]
    pub output_prompt_dict: String,
    #[serde(default)]
    pub data: DataSection,
    // Model.
    #[serde(default = "d_vision_encoder")]
    pub vision_encoder: String,
    #[serde(default = "d_video_encoding")]
    pub video_encoding: String,
    #[serde(default = "d_true")]
    pub add_frame_pos: bool,
    #[serde(rename = "LLM", default = "d_llm")]
    pub llm: String,
    #[serde(default)]
    pub use_flash_attn: bool,
    #[serde(default = "d_true")]
    pub use_adapter: bool,
    #[serde(default = "d_adapter_freq")]
    pub adapter_freq: usize,
    /// Width of each adapter's bottleneck; absent, half the LLM's hidden size as in the
    /// release (4096 -> 2048). Not a key of the official LYNX.yaml.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter_bottleneck: Option<usize>,
    #[serde(default = "d_bridge")]
    pub bridge: String,
    #[serde(default = "d_bridge_depth")]
    pub bridge_depth: usize,
    #[serde(default = "d_num_bridge_tokens")]
    pub num_bridge_tokens: usize,
    // General.
    #[serde(default = "d_true")]
    pub use_left_pad: bool,
    #[serde(default = "d_true")]
    pub lower_text: bool,
    #[serde(default = "d_true")]
    pub freeze_vit: bool,
    #[serde(default = "d_true")]
    pub freeze_llm: bool,
    #[serde(default = "d_image_res")]
    pub image_res: usize,
    #[serde(default = "d_mean")]
    pub image_mean: [f32; 3],
    #[serde(default = "d_std")]
    pub image_std: [f32; 3],
    // Files.
    #[serde(default)]
    pub checkpoint: Option<String>,
    #[serde(default)]
    pub llm_path: Option<String>,
    #[serde(default)]
    pub vision_encoder_path: Option<String>,
    #[serde(default)]
    pub vision_config: Option<VisionConfig>,
    #[serde(default)]
    pub bridge_config: BridgeSizes,
    #[serde(default)]
    pub tokenizer: TokenizerChoice,
    // Inference.
    #[serde(default = "d_max_input_tokens")]
    pub max_input_tokens: usize,
    #[serde(default = "d_batch_size_test")]
    pub batch_size_test: usize,
    #[serde(default = "d_max_new_tokens")]
    pub max_new_tokens: usize,
    #[serde(default = "d_min_length")]
    pub min_length: usize,
    #[serde(default = "d_num_beams")]
    pub num_beams: usize,
    #[serde(default = "d_length_penalty")]
    pub length_penalty: f64,
    #[serde(default = "d_top_p")]
    pub top_p: f64,
    #[serde(default = "d_top_k")]
    pub top_k: usize,
    #[serde(default = "d_no_repeat")]
    pub no_repeat_ngram_size: usize,
    #[serde(default)]
    pub apply_lemmatizer: bool,
    #[serde(default = "d_true")]
    pub use_nucleus_sampling: bool,
    #[serde(default = "d_one")]
    pub temperature: f64,
    #[serde(default = "d_one")]
    pub repetition_penalty: f64,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub frame_sampling: FrameSamplingMode,
    /// Folder the relative paths of this config resolve against (the YAML's folder); not a key.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

fn d_num_frames() -> usize {
    5
}
fn d_heads() -> usize {
    8
}
fn d_head_dim() -> usize {
    64
}
fn d_ff_mult() -> usize {
    4
}
fn d_prompt() -> String {
    "User: {question}\nBot:".into()
}
fn d_vision_key() -> String {
    "image".into()
}
fn d_output_key() -> String {
    "answer".into()
}
fn d_vision_encoder() -> String {
    "eva_vit_1b".into()
}
fn d_video_encoding() -> String {
    "concate".into()
}
fn d_llm() -> String {
    "vicuna-7b".into()
}
fn d_true() -> bool {
    true
}
fn d_adapter_freq() -> usize {
    2
}
fn d_bridge() -> String {
    "resampler".into()
}
fn d_bridge_depth() -> usize {
    3
}
fn d_num_bridge_tokens() -> usize {
    32
}
fn d_image_res() -> usize {
    420
}
fn d_mean() -> [f32; 3] {
    [0.481_454_66, 0.457_827_5, 0.408_210_7]
}
fn d_std() -> [f32; 3] {
    [0.268_629_54, 0.261_302_6, 0.275_777_1]
}
fn d_max_input_tokens() -> usize {
    40
}
fn d_batch_size_test() -> usize {
    16
}
fn d_max_new_tokens() -> usize {
    64
}
fn d_min_length() -> usize {
    2
}
fn d_num_beams() -> usize {
    5
}
fn d_length_penalty() -> f64 {
    -2.0
}
fn d_top_p() -> f64 {
    0.9
}
fn d_top_k() -> usize {
    3
}
fn d_no_repeat() -> usize {
    2
}
fn d_one() -> f64 {
    1.0
}

impl Default for LynxYaml {
    fn default() -> Self {
        // Every field has a serde default: an empty mapping yields the official values.
        serde_yaml::from_str::<LynxYaml>("{}").unwrap_or_else(|_| unreachable_default())
    }
}

#[cold]
fn unreachable_default() -> LynxYaml {
    // Only reached if a default above stops deserialising, which the unit tests would catch.
    panic!("LynxYaml defaults do not deserialise")
}

/// Reads a YAML file into a value, naming the file (and line) on a syntax error.
pub fn read_yaml_value(path: &Path) -> Result<serde_yaml::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_yaml::from_str(&text).map_err(|e| {
        Error::parse(
            path.display().to_string(),
            e.location().map(|l| l.line()),
            e.to_string(),
        )
    })
}

/// Applies `key=value` overrides in order (see [`apply_override`]).
pub fn apply_overrides(root: &mut serde_yaml::Value, sets: &[String]) -> Result<()> {
    sets.iter().try_for_each(|s| apply_override(root, s))
}

/// Applies one `a.b.c=value` (or `datasets[0].weight=2`) override; the value is parsed as YAML
/// (`3`, `1e-4`, `true`, `[bridge]`, `null`, text).
pub fn apply_override(root: &mut serde_yaml::Value, assignment: &str) -> Result<()> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| Error::config(assignment, "an override must look like key=value"))?;
    let key = key.trim();
    let value: serde_yaml::Value = if raw.trim().is_empty() {
        serde_yaml::Value::Null
    } else {
        serde_yaml::from_str(raw)
            .map_err(|e| Error::config(key, format!("bad value `{raw}`: {e}")))?
    };
    let segments: Vec<String> = key
        .replace('[', ".")
        .replace(']', "")
        .split('.')
        .map(str::to_string)
        .collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(Error::config(key, "empty key segment"));
    }
    let mut node = root;
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        let here = segments[..=i].join(".");
        if node.is_null() {
            *node = serde_yaml::Value::Mapping(Default::default());
        }
        node = match node {
            serde_yaml::Value::Mapping(m) => {
                let k = serde_yaml::Value::String(seg.clone());
                if last {
                    m.insert(k, value);
                    return Ok(());
                }
                m.entry(k).or_insert(serde_yaml::Value::Null)
            }
            serde_yaml::Value::Sequence(s) => {
                let idx: usize = seg
                    .parse()
                    .map_err(|_| Error::config(&here, "is a list: use a number"))?;
                let len = s.len();
                let slot = s.get_mut(idx).ok_or_else(|| {
                    Error::config(&here, format!("index out of range (the list has {len})"))
                })?;
                if last {
                    *slot = value;
                    return Ok(());
                }
                slot
            }
            _ => {
                let parent = segments[..i].join(".");
                return Err(Error::config(
                    parent,
                    format!("is a plain value, so `{key}` cannot be set"),
                ));
            }
        };
    }
    Ok(())
}

/// Deserialises a value into `T`, turning serde's message into an error naming the key.
pub fn from_value<T: serde::de::DeserializeOwned>(
    value: serde_yaml::Value,
    file: &str,
) -> Result<T> {
    serde_yaml::from_value(value).map_err(|e| {
        let msg = e.to_string();
        let key = msg
            .split('`')
            .nth(1)
            .map(str::to_string)
            .unwrap_or_else(|| file.to_string());
        Error::config(key, format!("{file}: {msg}"))
    })
}

impl LynxYaml {
    /// Loads a config file with overrides.
    pub fn load(path: &Path, sets: &[String]) -> Result<Self> {
        let mut value = read_yaml_value(path)?;
        apply_overrides(&mut value, sets)?;
        let mut cfg: LynxYaml = from_value(value, &path.display().to_string())?;
        cfg.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        cfg.validate()?;
        Ok(cfg)
    }

    /// The defaults with overrides only (no file).
    pub fn from_overrides(sets: &[String]) -> Result<Self> {
        let mut value = serde_yaml::Value::Mapping(Default::default());
        apply_overrides(&mut value, sets)?;
        let mut cfg: LynxYaml = from_value(value, "--set")?;
        cfg.base_dir = PathBuf::from(".");
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values that serde cannot.
    pub fn validate(&self) -> Result<()> {
        if !self.prompt.contains("{question}") {
            return Err(Error::config("prompt", "must contain {question}"));
        }
        if self.vision_prompt_dict != "image" && self.vision_prompt_dict != "video" {
            return Err(Error::config(
                "vision_prompt_dict",
                "must be `image` or `video`",
            ));
        }
        if self.video_encoding != "concate" {
            return Err(Error::config(
                "video_encoding",
                "only `concate` (the release's) is supported",
            ));
        }
        if self.bridge != "resampler" {
            return Err(Error::config(
                "bridge",
                "only `resampler` (the release's) is supported",
            ));
        }
        if self.image_res == 0 || self.max_input_tokens == 0 || self.batch_size_test == 0 {
            return Err(Error::config(
                "image_res/max_input_tokens/batch_size_test",
                "must be positive",
            ));
        }
        if self.num_beams == 0 {
            return Err(Error::config("num_beams", "must be at least 1"));
        }
        if self.use_adapter && self.adapter_freq == 0 {
            return Err(Error::config(
                "adapter_freq",
                "must be at least 1 when use_adapter is set",
            ));
        }
        if self.adapter_bottleneck == Some(0) {
            return Err(Error::config(
                "adapter_bottleneck",
                "must be at least 1 (or absent for half the hidden size)",
            ));
        }
        if self.data.num_frames == 0 {
            return Err(Error::config("data.num_frames", "must be at least 1"));
        }
        Ok(())
    }

    /// The ViT size: `vision_config` when given, else the named encoder's.
    pub fn vision(&self) -> Result<VisionConfig> {
        if let Some(v) = &self.vision_config {
            return Ok(v.clone());
        }
        match self.vision_encoder.as_str() {
            "eva_vit_1b" | "eva_vit_g" => Ok(VisionConfig::default()),
            other => Err(Error::config(
                "vision_encoder",
                format!("unknown encoder {other:?}; give its size in vision_config"),
            )),
        }
    }

    /// Resolves a path from this config: absolute as is; relative against the config's folder
    /// when that exists, else against the working directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        let joined = self.base_dir.join(p);
        if joined.exists() {
            joined
        } else {
            p.to_path_buf()
        }
    }

    /// A required file key, resolved.
    pub fn required_path(&self, key: &str, value: &Option<String>) -> Result<PathBuf> {
        let v = value
            .as_ref()
            .ok_or_else(|| Error::config(key, "missing: set it in the config or with --set"))?;
        let p = self.resolve(v);
        if !p.exists() {
            return Err(Error::config(
                key,
                format!("{} does not exist", p.display()),
            ));
        }
        Ok(p)
    }

    /// The instruction text of the official code: prompt.format(question).strip(), lowercased
    /// when `lower_text` is set.
    pub fn render_prompt(&self, question: &str) -> String {
        let text = self.prompt.replace("{question}", question);
        let text = text.trim();
        if self.lower_text {
            text.to_lowercase()
        } else {
            text.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_config_parses_with_its_values() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/LYNX.yaml");
        let cfg = LynxYaml::load(&path, &[]).expect("official LYNX.yaml loads");
        assert_eq!(cfg.image_res, 420);
        assert_eq!(cfg.num_beams, 5);
        assert_eq!(cfg.length_penalty, -2.0);
        assert_eq!(cfg.data.num_frames, 5);
        assert_eq!(cfg.prompt, "User: {question}\nBot:");
        assert_eq!(cfg.checkpoint.as_deref(), Some("./data/finetune_lynx.pt"));
        assert_eq!(LynxYaml::default().max_input_tokens, 40);
        assert_eq!(cfg.vision().unwrap().depth, 39);
    }

    #[test]
    fn overrides_set_nested_keys_and_unknown_keys_fail() {
        let cfg = LynxYaml::from_overrides(&[
            "data.num_frames=3".into(),
            "num_beams=1".into(),
            "vision_config={patch_size: 14, embed_dim: 32, depth: 2, num_heads: 4}".into(),
        ])
        .unwrap();
        assert_eq!(cfg.data.num_frames, 3);
        assert_eq!(cfg.num_beams, 1);
        assert_eq!(cfg.vision().unwrap().embed_dim, 32);
        let err = LynxYaml::from_overrides(&["num_beam=1".into()]).unwrap_err();
        assert!(err.to_string().contains("num_beam"), "{err}");
        let err = LynxYaml::from_overrides(&["data.frames=1".into()]).unwrap_err();
        assert!(err.to_string().contains("frames"), "{err}");
        let err = LynxYaml::from_overrides(&["novalue".into()]).unwrap_err();
        assert!(err.to_string().contains("key=value"), "{err}");
    }

    #[test]
    fn prompt_is_rendered_like_the_release() {
        let cfg = LynxYaml::default();
        assert_eq!(
            cfg.render_prompt(" What Is This?"),
            "user:  what is this?\nbot:"
        );
        assert_eq!(cfg.render_prompt("Why? "), "user: why? \nbot:");
    }
}
