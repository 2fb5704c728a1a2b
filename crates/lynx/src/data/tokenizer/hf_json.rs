//! The Hugging Face side of the LLaMA tokenizer: reading a tokenizer.json's vocabulary into the
//! decoder's piece table, and writing a tokenizer.json from a sentencepiece BPE model that
//! encodes like the slow tokenizer. Unlike transformers' converter (convert_slow_tokenizer.py,
//! `if piece_score:`), every merge is kept, score 0 included, ranked by the merged piece's
//! score as sentencepiece ranks its merges.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::json;
use tokenizers::models::ModelWrapper;
use tokenizers::Model;

use super::decode::{byte_of_piece, PieceKind, PieceTable, SPACE};
use super::sentencepiece::SpModel;
use crate::{Error, Result};

/// The decoder's view of a tokenizer.json (LLaMA layout: <unk>, <s>, </s> and byte pieces).
pub(crate) fn table_from_hf(tok: &tokenizers::Tokenizer, file: &str) -> Result<PieceTable> {
    let err = |msg: String| Error::Tokenizer(format!("{file}: {msg}"));
    let model = tok.get_model();
    let n = model.get_vocab_size();
    let (byte_fallback, unk_token) = match model {
        ModelWrapper::BPE(b) => (b.byte_fallback, b.unk_token.clone()),
        _ => (false, None),
    };
    let unk_token = unk_token.unwrap_or_else(|| "<unk>".to_string());
    let added = tok.get_added_tokens_decoder();
    let mut pieces = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    for id in 0..n as u32 {
        let piece = model.id_to_token(id).ok_or_else(|| {
            err(format!(
                "the model vocabulary has no id {id} (ids must be 0..{n})"
            ))
        })?;
        let special = added.get(&id).map(|t| t.special);
        let kind = if piece == unk_token {
            PieceKind::Unknown
        } else if special == Some(true) {
            PieceKind::Control
        } else if let Some(b) = byte_of_piece(&piece).filter(|_| byte_fallback) {
            PieceKind::Byte(b)
        } else if special == Some(false) {
            PieceKind::UserDefined
        } else {
            PieceKind::Normal
        };
        pieces.push(piece);
        kinds.push(kind);
    }
    let find = |name: &str| -> Result<u32> {
        pieces
            .iter()
            .position(|p| p == name)
            .map(|i| i as u32)
            .ok_or_else(|| err(format!("the vocabulary has no `{name}` token")))
    };
    let (bos_id, eos_id, unk_id) = (find("<s>")?, find("</s>")?, find(&unk_token)?);
    let mut extra: Vec<(u32, String, bool)> = added
        .iter()
        .filter(|(id, _)| **id as usize >= n)
        .map(|(id, t)| (*id, t.content.clone(), t.special))
        .collect();
    if !extra.iter().any(|(id, _, _)| *id as usize == n) {
        extra.push((n as u32, "[PAD]".to_string(), true));
    }
    extra.sort();
    Ok(PieceTable {
        pieces,
        kinds,
        bos_id,
        eos_id,
        unk_id,
        added: extra,
        unk_surface: " \u{2047} ".to_string(),
        strip_bos_ws: true,
        remove_extra_whitespaces: false,
    })
}

/// The vocabulary as a JSON object in id order.
struct Vocab<'a>(&'a [String]);

impl Serialize for Vocab<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (id, piece) in self.0.iter().enumerate() {
            map.serialize_entry(piece, &id)?;
        }
        map.end()
    }
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum Merges<'a> {
    /// "left right": the format every tokenizers version reads.
    Strings(Vec<String>),
    /// [left, right]: needed when a piece holds a plain space.
    Pairs(Vec<[&'a str; 2]>),
}

#[derive(serde::Serialize)]
struct Bpe<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    dropout: Option<f32>,
    unk_token: &'a str,
    continuing_subword_prefix: Option<()>,
    end_of_word_suffix: Option<()>,
    fuse_unk: bool,
    byte_fallback: bool,
    vocab: Vocab<'a>,
    merges: Merges<'a>,
}

#[derive(serde::Serialize)]
struct Added<'a> {
    id: u32,
    content: &'a str,
    single_word: bool,
    lstrip: bool,
    rstrip: bool,
    normalized: bool,
    special: bool,
}

#[derive(serde::Serialize)]
struct TokenizerJson<'a> {
    version: &'static str,
    truncation: Option<()>,
    padding: Option<()>,
    added_tokens: Vec<Added<'a>>,
    normalizer: serde_json::Value,
    pre_tokenizer: Option<()>,
    post_processor: serde_json::Value,
    decoder: serde_json::Value,
    model: Bpe<'a>,
}

/// All merges sentencepiece can perform, best first: every split of a NORMAL piece into two
/// NORMAL pieces, ranked by the merged piece's score (then its id, then the left piece's id).
fn merges(m: &SpModel) -> Vec<(u32, u32)> {
    let t = &m.table;
    let mut out: Vec<(f32, u32, u32, u32)> = Vec::new();
    for (id, piece) in t.pieces.iter().enumerate() {
        if t.kinds[id] != PieceKind::Normal {
            continue;
        }
        for (k, _) in piece.char_indices().skip(1) {
            let (l, r) = (&piece[..k], &piece[k..]);
            let normal = |p: &str| {
                m.normal_id(p)
                    .filter(|&i| t.kinds[i as usize] == PieceKind::Normal)
            };
            if let (Some(li), Some(ri)) = (normal(l), normal(r)) {
                out.push((m.scores[id], id as u32, li, ri));
            }
        }
    }
    out.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
    });
    out.into_iter().map(|(_, _, l, r)| (l, r)).collect()
}

/// A tokenizer.json equivalent to the slow tokenizer for `m` (LLaMA options).
pub(crate) fn sp_to_hf_json(m: &SpModel) -> Result<String> {
    let t = &m.table;
    let unsupported = |what: &str| {
        Err(Error::Tokenizer(format!(
            "cannot write a tokenizer.json equivalent to this sentencepiece model: {what}"
        )))
    };
    if m.has_unused {
        return unsupported("it has UNUSED pieces, which BPE merges cannot re-split");
    }
    if m.remove_extra_whitespaces {
        return unsupported("it removes extra whitespace (remove_extra_whitespaces=true)");
    }
    if let Some(id) = t.kinds.iter().position(|k| *k == PieceKind::UserDefined) {
        // sentencepiece matches them after adding the dummy prefix and does not prefix the text
        // after them; an HF added token is matched either in the raw text (the text after it
        // then gets its own prefix) or in normalised form ("\u{2581}<sym>"), never like that.
        return unsupported(&format!(
            "it has user-defined symbols (`{}`), which HF added tokens cannot match as sentencepiece does",
            t.pieces[id]
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = t.pieces.iter().find(|p| !seen.insert(p.as_str())) {
        return unsupported(&format!(
            "piece `{dup}` appears twice (as a normal and a reserved piece)"
        ));
    }
    let ws = if m.escape_whitespaces { SPACE } else { " " };
    let mut normalizers = Vec::new();
    if m.add_dummy_prefix {
        normalizers.push(json!({"type": "Prepend", "prepend": ws}));
    }
    if m.escape_whitespaces {
        normalizers.push(json!({"type": "Replace", "pattern": {"String": " "}, "content": SPACE}));
    }
    let mut decoders = Vec::new();
    if m.escape_whitespaces {
        decoders.push(json!({"type": "Replace", "pattern": {"String": SPACE}, "content": " "}));
    }
    if m.byte_fallback {
        decoders.push(json!({"type": "ByteFallback"}));
    }
    decoders.push(json!({"type": "Fuse"}));
    if m.add_dummy_prefix {
        decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
    }
    let bos = t.pieces[t.bos_id as usize].as_str();
    let post_processor = json!({
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [
            {"SpecialToken": {"id": bos, "type_id": 0}},
            {"Sequence": {"id": "A", "type_id": 0}},
            {"Sequence": {"id": "B", "type_id": 0}}
        ],
        "special_tokens": {bos: {"id": bos, "ids": [t.bos_id], "tokens": [bos]}}
    });
    // Control pieces are matched in the raw text, as the slow tokenizer splits on special
    // tokens before calling sentencepiece on each part (each part then gets a dummy prefix).
    let added_tokens = t
        .kinds
        .iter()
        .enumerate()
        .filter(|(_, k)| matches!(k, PieceKind::Control | PieceKind::Unknown))
        .map(|(id, _)| Added {
            id: id as u32,
            content: &t.pieces[id],
            single_word: false,
            lstrip: false,
            rstrip: false,
            normalized: false,
            special: true,
        })
        .collect();
    let pairs = merges(m);
    let piece = |i: u32| t.pieces[i as usize].as_str();
    let merges = if t.pieces.iter().any(|p| p.contains(' ')) {
        Merges::Pairs(pairs.iter().map(|&(l, r)| [piece(l), piece(r)]).collect())
    } else {
        Merges::Strings(
            pairs
                .iter()
                .map(|&(l, r)| format!("{} {}", piece(l), piece(r)))
                .collect(),
        )
    };
    let doc = TokenizerJson {
        version: "1.0",
        truncation: None,
        padding: None,
        added_tokens,
        normalizer: match normalizers.len() {
            0 => serde_json::Value::Null,
            _ => json!({"type": "Sequence", "normalizers": normalizers}),
        },
        pre_tokenizer: None,
        post_processor,
        decoder: json!({"type": "Sequence", "decoders": decoders}),
        model: Bpe {
            kind: "BPE",
            dropout: None,
            unk_token: &t.pieces[t.unk_id as usize],
            continuing_subword_prefix: None,
            end_of_word_suffix: None,
            fuse_unk: true,
            byte_fallback: m.byte_fallback,
            vocab: Vocab(&t.pieces),
            merges,
        },
    };
    serde_json::to_string_pretty(&doc)
        .map_err(|e| Error::Tokenizer(format!("writing tokenizer.json: {e}")))
}
