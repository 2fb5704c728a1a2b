//! The LLaMA tokenizer of Lynx (lynx-official.md, "Tokenizer" and "Prompt and inputs"): loaded
//! from a Hugging Face LLaMA/Vicuna directory's tokenizer.model (sentencepiece BPE, encoded in
//! Rust id-exact with the slow tokenizer the release uses) or tokenizer.json (HF `tokenizers`),
//! with Lynx's [PAD] token appended at id = vocabulary size.

mod decode;
mod hf_json;
mod proto;
mod sentencepiece;

use std::path::{Path, PathBuf};

use decode::PieceTable;
use sentencepiece::SpModel;

use crate::{Error, Result};

/// The sentencepiece model file of a Hugging Face LLaMA directory.
pub const SENTENCEPIECE_FILE: &str = "tokenizer.model";
/// The Hugging Face tokenizers file of a LLaMA directory.
pub const JSON_FILE: &str = "tokenizer.json";
/// Tokenizer side files carried along by `save_to_dir` when the source directory has them.
const SIDE_FILES: [&str; 2] = ["tokenizer_config.json", "special_tokens_map.json"];

/// Which file a tokenizer is loaded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenizerSource {
    /// tokenizer.model when present (what the release uses), else tokenizer.json.
    #[default]
    Auto,
    /// tokenizer.model, encoded by this crate's sentencepiece BPE.
    SentencePiece,
    /// tokenizer.json, encoded by the HF `tokenizers` crate.
    Json,
}

enum Backend {
    SentencePiece(Box<SpModel>),
    Json {
        tok: Box<tokenizers::Tokenizer>,
        table: Box<PieceTable>,
    },
}

/// The Lynx (LLaMA) tokenizer. Cheap to share between threads (`Send + Sync`).
pub struct LynxTokenizer {
    backend: Backend,
    /// The file it was loaded from, for messages.
    path: PathBuf,
    /// Original tokenizer files (name, bytes) that `save_to_dir` writes back.
    files: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for LynxTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LynxTokenizer")
            .field("path", &self.path)
            .field("source", &self.source())
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

impl LynxTokenizer {
    /// Loads the tokenizer of a Hugging Face LLaMA directory.
    pub fn from_dir(dir: &Path, source: TokenizerSource) -> Result<Self> {
        let model = dir.join(SENTENCEPIECE_FILE);
        let json = dir.join(JSON_FILE);
        let path = match source {
            TokenizerSource::SentencePiece => model.clone(),
            TokenizerSource::Json => json.clone(),
            TokenizerSource::Auto if model.is_file() => model.clone(),
            TokenizerSource::Auto if json.is_file() => json.clone(),
            TokenizerSource::Auto => {
                return Err(Error::Tokenizer(format!(
                    "{}: neither {SENTENCEPIECE_FILE} nor {JSON_FILE} exists in this directory",
                    dir.display()
                )))
            }
        };
        let mut tok = Self::from_file(&path)?;
        // Carry every tokenizer file of the directory, not only the one used.
        let loaded = tok.files.first().map(|(n, _)| n.clone());
        for name in [SENTENCEPIECE_FILE, JSON_FILE]
            .into_iter()
            .chain(SIDE_FILES)
        {
            let p = dir.join(name);
            if Some(name) != loaded.as_deref() && p.is_file() {
                tok.files.push((name.to_string(), read(&p)?));
            }
        }
        Ok(tok)
    }

    /// Loads tokenizer.model (sentencepiece protobuf) or tokenizer.json, told apart by the
    /// extension, or by the content when the extension is neither `.model` nor `.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = read(path)?;
        let is_json = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => true,
            Some("model") => false,
            _ => bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'),
        };
        Self::from_bytes(bytes, path, is_json)
    }

    /// Loads a tokenizer.json held in memory (e.g. embedded in the binary); `label` names it in
    /// errors and is what [`LynxTokenizer::path`] returns.
    pub fn from_json_bytes(bytes: &[u8], label: &str) -> Result<Self> {
        Self::from_bytes(bytes.to_vec(), Path::new(label), true)
    }

    fn from_bytes(bytes: Vec<u8>, path: &Path, is_json: bool) -> Result<Self> {
        let file = path.display().to_string();
        let (backend, name) = if is_json {
            let tok = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| {
                Error::parse(&file, None, format!("not a tokenizers JSON file: {e}"))
            })?;
            let table = hf_json::table_from_hf(&tok, &file)?;
            let backend = Backend::Json {
                tok: Box::new(tok),
                table: Box::new(table),
            };
            (backend, JSON_FILE)
        } else {
            let proto = proto::parse_model(&bytes).map_err(|e| {
                Error::parse(
                    &file,
                    None,
                    format!("not a sentencepiece model (protobuf): {e}"),
                )
            })?;
            let model = SpModel::from_proto(&proto, &file)?;
            (Backend::SentencePiece(Box::new(model)), SENTENCEPIECE_FILE)
        };
        Ok(LynxTokenizer {
            backend,
            path: path.to_path_buf(),
            files: vec![(name.to_string(), bytes)],
        })
    }

    fn table(&self) -> &PieceTable {
        match &self.backend {
            Backend::SentencePiece(m) => &m.table,
            Backend::Json { table, .. } => table,
        }
    }

    /// Which file format this tokenizer encodes with (`SentencePiece` or `Json`).
    pub fn source(&self) -> TokenizerSource {
        match self.backend {
            Backend::SentencePiece(_) => TokenizerSource::SentencePiece,
            Backend::Json { .. } => TokenizerSource::Json,
        }
    }

    /// The file this tokenizer was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Token ids of `text` without BOS/EOS: `sp_model.encode(text)` for tokenizer.model,
    /// `encode(text, add_special_tokens=False)` for tokenizer.json.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match &self.backend {
            Backend::SentencePiece(m) => m.encode(text),
            Backend::Json { tok, .. } => tok
                .encode(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| {
                    Error::Tokenizer(format!("{}: encoding {text:?}: {e}", self.path.display()))
                }),
        }
    }

    /// Text of `ids` as transformers 4.28.1's slow LlamaTokenizer `decode` gives it (the caller
    /// strips). Invalid UTF-8 from byte pieces becomes U+FFFD; an id past [PAD] is an error.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.table().decode(ids, skip_special_tokens)
    }

    /// The base vocabulary size, without the appended [PAD].
    pub fn vocab_size(&self) -> usize {
        self.table().vocab_size()
    }

    /// `<s>`.
    pub fn bos_id(&self) -> u32 {
        self.table().bos_id
    }

    /// `</s>`.
    pub fn eos_id(&self) -> u32 {
        self.table().eos_id
    }

    /// `<unk>`.
    pub fn unk_id(&self) -> u32 {
        self.table().unk_id
    }

    /// The [PAD] token the release appends: id = vocabulary size (32000 for Vicuna).
    pub fn pad_id(&self) -> u32 {
        self.table().pad_id()
    }

    /// The piece of `id` (`[PAD]` for `pad_id`), or None past the vocabulary.
    pub fn id_to_piece(&self, id: u32) -> Option<&str> {
        self.table().piece(id)
    }

    /// The id of a piece (including `[PAD]`), or None.
    pub fn piece_to_id(&self, piece: &str) -> Option<u32> {
        let t = self.table();
        match &self.backend {
            Backend::SentencePiece(m) => {
                let id = m.piece_to_id(piece);
                (t.pieces[id as usize] == piece).then_some(id)
            }
            Backend::Json { tok, .. } => tok.token_to_id(piece),
        }
        .or_else(|| {
            t.added
                .iter()
                .find(|(_, c, _)| c == piece)
                .map(|(id, _, _)| *id)
        })
    }

    /// Encodes the self-test samples embedded in a tokenizer.model and compares them with the
    /// pieces recorded by sentencepiece; returns how many were checked (0 for tokenizer.json).
    pub fn self_test(&self) -> Result<usize> {
        match &self.backend {
            Backend::SentencePiece(m) => m.self_test(&self.path.display().to_string()),
            Backend::Json { .. } => Ok(0),
        }
    }

    /// Writes the original tokenizer file(s) into `dir` (created if missing), so that a
    /// converted model directory carries its tokenizer.
    pub fn save_to_dir(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        for (name, bytes) in &self.files {
            let p = dir.join(name);
            std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
        }
        Ok(())
    }

    /// A tokenizer.json equivalent to the slow tokenizer: for a sentencepiece model, built with
    /// every merge (the score-0 one the transformers converter drops included) ranked by the
    /// merged piece's score; for a tokenizer.json source, that file's text.
    pub fn to_hf_json(&self) -> Result<String> {
        match &self.backend {
            Backend::SentencePiece(m) => hf_json::sp_to_hf_json(m),
            Backend::Json { .. } => {
                let bytes = self
                    .files
                    .iter()
                    .find(|(n, _)| n == JSON_FILE)
                    .map(|(_, b)| b);
                match bytes.map(|b| String::from_utf8(b.clone())) {
                    Some(Ok(s)) => Ok(s),
                    _ => Err(Error::Tokenizer(format!(
                        "{}: not UTF-8 JSON",
                        self.path.display()
                    ))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
