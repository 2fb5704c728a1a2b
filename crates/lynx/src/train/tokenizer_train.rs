//! `lynx train` stage `tokenizer`: a LLaMA-like BPE tokenizer learned from the text of the
//! training data with the `tokenizers` crate (the first frozen part of the default model, issue 4;
//! LLaMA's own is a sentencepiece BPE with byte fallback, split digits and `<unk>`, `<s>`, `</s>`
//! at ids 0, 1, 2).
//!
//! The corpus is every string a model will read or write: captions, questions, answers, dialog
//! turns, the prompt templates and the instructions wrapped in the model prompt (lowercased
//! when `lower_text` is set, as the model sees them). Pieces mark a leading space with `▁`,
//! digits are single tokens, punctuation and newlines are pieces of their own, and the 256 byte
//! pieces `<0x00>`..`<0xFF>` spell anything else, so every text encodes and decodes back.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokenizers::models::bpe::BpeTrainer;
use tokenizers::models::TrainerWrapper;
use tokenizers::AddedToken;

use crate::data::conversation::PromptFormat;
use crate::data::prompts::{render_template, PromptTemplates};
use crate::data::tokenizer::{LynxTokenizer, JSON_FILE};
use crate::train::config::path_error;
use crate::{Error, Result};

/// `<unk>`, `<s>`, `</s>`: ids 0, 1, 2 as in LLaMA.
pub const SPECIAL: [&str; 3] = ["<unk>", "<s>", "</s>"];
/// Ids before the learned pieces: the specials and the 256 byte pieces.
pub const RESERVED: usize = SPECIAL.len() + 256;

fn default_vocab() -> usize {
    2000
}
fn default_min_frequency() -> u64 {
    2
}
fn default_prompt() -> String {
    "User: {question}\nBot:".into()
}
fn yes() -> bool {
    true
}

/// The config of a `stage: tokenizer` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizerTrainConfig {
    pub stage: String,
    /// JSONL datasets whose text is the corpus (weights are ignored: every record counts once).
    pub datasets: Vec<crate::data::datasets::DatasetSpec>,
    /// Prompt templates whose text joins the corpus.
    #[serde(default)]
    pub prompts: Option<PathBuf>,
    /// The model prompt the instructions are wrapped in.
    #[serde(default = "default_prompt")]
    pub prompt: String,
    /// Whether the model lowercases its prompts (LYNX.yaml `lower_text`).
    #[serde(default = "yes")]
    pub lower_text: bool,
    /// Total vocabulary, specials and byte pieces included (the model appends [PAD] after it).
    #[serde(default = "default_vocab")]
    pub vocab_size: usize,
    /// Pairs seen fewer times are not merged.
    #[serde(default = "default_min_frequency")]
    pub min_frequency: u64,
    /// The tokenizer is written to `output_dir/tokenizer.json`.
    pub output_dir: PathBuf,
}

impl TokenizerTrainConfig {
    /// Parses the YAML text of a config (after `--set` overrides); relative input paths are
    /// resolved against `base`.
    pub fn from_value(value: serde_yaml::Value, base: &Path) -> Result<Self> {
        let mut cfg: Self = serde_path_to_error::deserialize(value).map_err(path_error)?;
        if cfg.stage != "tokenizer" {
            return Err(Error::config("stage", "expected `tokenizer`"));
        }
        if cfg.datasets.is_empty() {
            return Err(Error::config("datasets", "no dataset given"));
        }
        if cfg.vocab_size < RESERVED + 16 {
            return Err(Error::config(
                "vocab_size",
                format!(
                    "must be at least {} (3 specials, 256 bytes, 16 pieces)",
                    RESERVED + 16
                ),
            ));
        }
        for d in &mut cfg.datasets {
            d.path = crate::train::trainer::resolve_path(base, Path::new(&d.path))
                .to_string_lossy()
                .into_owned();
        }
        if let Some(p) = &mut cfg.prompts {
            *p = crate::train::trainer::resolve_path(base, p);
        }
        Ok(cfg)
    }
}

/// Every string under the keys that hold text in the training formats.
fn record_texts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("caption" | "question" | "answer" | "value", Value::String(s)) => {
                        out.push(s.clone())
                    }
                    ("answer", Value::Array(a)) => {
                        out.extend(a.iter().filter_map(|s| s.as_str().map(String::from)))
                    }
                    ("conversations", x) => record_texts(x, out),
                    _ => {}
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| record_texts(x, out)),
        _ => {}
    }
}

/// The corpus of a config: texts of the records, the prompt templates, and the questions as
/// the model prompt renders them. Errors name the file and line.
pub fn corpus(cfg: &TokenizerTrainConfig) -> Result<Vec<String>> {
    let fmt = PromptFormat {
        template: cfg.prompt.clone(),
        lower_text: cfg.lower_text,
    };
    let mut out = Vec::new();
    let templates = match &cfg.prompts {
        Some(p) => {
            let t = PromptTemplates::load(p)?;
            let all: Vec<String> = t
                .tasks()
                .iter()
                .flat_map(|task| task.templates.iter().cloned())
                .collect();
            for tpl in &all {
                out.push(fmt.render(&render_template(tpl, Some(""))));
            }
            all
        }
        None => Vec::new(),
    };
    for spec in &cfg.datasets {
        let path = Path::new(&spec.path);
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line).map_err(|e| {
                Error::parse(path.display().to_string(), Some(i + 1), e.to_string())
            })?;
            let mut texts = Vec::new();
            record_texts(&v, &mut texts);
            let question = v.get("question").and_then(Value::as_str);
            if let Some(q) = question {
                // The instruction as the model reads it, with one of the templates (chosen by
                // line number, so the corpus does not depend on any RNG).
                let tpl = templates
                    .get(i % templates.len().max(1))
                    .map(String::as_str)
                    .unwrap_or("{question}");
                out.push(fmt.render(&render_template(tpl, Some(q))));
            }
            out.extend(texts);
        }
    }
    Ok(out)
}

/// The pre-tokenizer: punctuation and newlines isolated, digits split, then `▁` for spaces with
/// a `▁` before the first piece (sentencepiece's dummy prefix).
fn pre_tokenizer() -> Value {
    json!({
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "[^\\w\\s]|\\n"}, "behavior": "Isolated", "invert": false},
            {"type": "Digits", "individual_digits": true},
            {"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "first", "split": true}
        ]
    })
}

fn tokenizer_json(vocab: &Value, merges: &Value) -> Value {
    let added: Vec<Value> = SPECIAL
        .iter()
        .enumerate()
        .map(|(id, t)| {
            json!({"id": id, "content": t, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer(),
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "\u{2581}"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}
        ]},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": "<unk>",
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
            "vocab": vocab, "merges": merges
        }
    })
}

/// Learns the BPE merges of `texts` and returns the tokenizer.json text. Deterministic: the
/// same texts give the same file.
pub fn train_bpe(texts: &[String], vocab_size: usize, min_frequency: u64) -> Result<String> {
    let err = |e: tokenizers::Error| Error::Tokenizer(format!("training the BPE tokenizer: {e}"));
    let empty = tokenizer_json(&json!({}), &json!([]));
    let mut tok = tokenizers::Tokenizer::from_bytes(empty.to_string().as_bytes()).map_err(err)?;
    let mut specials: Vec<AddedToken> = SPECIAL
        .iter()
        .map(|s| AddedToken::from(s.to_string(), true))
        .collect();
    specials.extend((0..=255u8).map(|b| AddedToken::from(format!("<0x{b:02X}>"), true)));
    let trainer = BpeTrainer::builder()
        .vocab_size(vocab_size)
        .min_frequency(min_frequency)
        .special_tokens(specials)
        .show_progress(false)
        .build();
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);
    tok.train(&mut trainer, texts.iter()).map_err(err)?;
    let model = serde_json::to_value(tok.get_model())
        .map_err(|e| Error::Tokenizer(format!("reading the trained model: {e}")))?;
    let doc = tokenizer_json(&model["vocab"], &model["merges"]);
    serde_json::to_string_pretty(&doc)
        .map_err(|e| Error::Tokenizer(format!("writing tokenizer.json: {e}")))
}

/// What a tokenizer run wrote.
#[derive(Debug, Clone)]
pub struct TokenizerSummary {
    pub path: PathBuf,
    pub vocab_size: usize,
    pub texts: usize,
    /// Tokens of the whole corpus with the new tokenizer.
    pub tokens: usize,
}

/// Runs a `stage: tokenizer` config: trains, writes `output_dir/tokenizer.json`, reloads it
/// through [`LynxTokenizer`] and checks that the corpus round-trips.
pub fn run(cfg: &TokenizerTrainConfig) -> Result<TokenizerSummary> {
    let texts = corpus(cfg)?;
    if texts.is_empty() {
        return Err(Error::config("datasets", "the datasets hold no text"));
    }
    let json = train_bpe(&texts, cfg.vocab_size, cfg.min_frequency)?;
    std::fs::create_dir_all(&cfg.output_dir).map_err(|e| Error::io(&cfg.output_dir, e))?;
    let path = cfg.output_dir.join(JSON_FILE);
    crate::train::atomic::write_atomic(&path, json.as_bytes())?;
    let tok = LynxTokenizer::from_file(&path)?;
    let mut tokens = 0;
    for t in &texts {
        let ids = tok.encode(t)?;
        tokens += ids.len();
        let back = tok.decode(&ids, true)?;
        if back.trim() != t.trim() {
            return Err(Error::Tokenizer(format!(
                "{}: {t:?} decodes back as {back:?}",
                path.display()
            )));
        }
    }
    Ok(TokenizerSummary {
        path,
        vocab_size: tok.vocab_size(),
        texts: texts.len(),
        tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts() -> Vec<String> {
        let mut v = Vec::new();
        for i in 0..40 {
            v.push(format!(
                "There are {i} red circles and a blue square in the field."
            ));
            v.push(format!("user: how many circles are there?\nbot: {}", i % 7));
            v.push("The sign says PIZZA, not CAT.".to_string());
        }
        v
    }

    #[test]
    fn trained_tokenizer_is_llama_like_deterministic_and_round_trips() {
        let a = train_bpe(&texts(), 400, 2).unwrap();
        let b = train_bpe(&texts(), 400, 2).unwrap();
        assert_eq!(a, b, "training is deterministic");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(JSON_FILE), &a).unwrap();
        let tok = LynxTokenizer::from_dir(dir.path(), Default::default()).unwrap();
        assert_eq!((tok.unk_id(), tok.bos_id(), tok.eos_id()), (0, 1, 2));
        assert_eq!(tok.pad_id() as usize, tok.vocab_size());
        // The trainer stops at the target or when no pair is frequent enough.
        assert!(
            (RESERVED + 40..=400).contains(&tok.vocab_size()),
            "{}",
            tok.vocab_size()
        );
        for s in [
            "There are 12 red circles.",
            "user: what? \nbot: Ünïcode ☃ 42",
            "  spaced  out ",
        ] {
            let ids = tok.encode(s).unwrap();
            // As sentencepiece: the first leading space is the dummy prefix and is dropped.
            let want = s.strip_prefix(' ').unwrap_or(s);
            assert_eq!(tok.decode(&ids, true).unwrap(), want, "{s:?}");
        }
        // Digits are single pieces and frequent words become one token.
        let ids = tok.encode("12").unwrap();
        let pieces: Vec<&str> = ids.iter().map(|&i| tok.id_to_piece(i).unwrap()).collect();
        assert_eq!(pieces, vec!["\u{2581}", "1", "2"]);
        assert_eq!(tok.encode(" circles").unwrap().len(), 1);
        // Unknown characters fall back to bytes.
        let snow = tok.encode("☃").unwrap();
        assert!(snow
            .iter()
            .all(|&i| (3..259).contains(&i) || i == tok.piece_to_id("\u{2581}").unwrap()));
    }
}
