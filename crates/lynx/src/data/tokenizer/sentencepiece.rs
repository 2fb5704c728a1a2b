//! sentencepiece BPE encoding in Rust, id-exact with `SentencePieceProcessor::Encode` (the slow
//! LLaMA tokenizer the release uses): identity normalisation (whitespace escaping to U+2581,
//! dummy prefix, optional extra-whitespace removal), user-defined symbols kept whole, the
//! highest-scoring adjacent merge first (ties: leftmost), UNUSED pieces re-split, unknown
//! characters as <unk> or as UTF-8 byte pieces (byte fallback).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::decode::{byte_of_piece, PieceKind, PieceTable, SPACE};
use super::proto::{self, ModelProto, PieceType};
use crate::{Error, Result};

/// A loaded sentencepiece BPE model.
#[derive(Debug, Clone)]
pub(crate) struct SpModel {
    pub table: PieceTable,
    pub scores: Vec<f32>,
    /// NORMAL, USER_DEFINED and UNUSED pieces: the ones merges may produce.
    normal: HashMap<String, u32>,
    /// CONTROL, UNKNOWN and BYTE pieces, looked up first (as sentencepiece's `PieceToId`).
    reserved: HashMap<String, u32>,
    /// User-defined symbols, longest first: matched whole in the input and never merged.
    user_defined: Vec<String>,
    byte_ids: Option<Box<[u32; 256]>>,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
    pub escape_whitespaces: bool,
    pub byte_fallback: bool,
    pub has_unused: bool,
    /// The model's self-test samples: (input, expected pieces joined by spaces).
    self_test: Vec<(String, String)>,
}

/// A symbol of the working segmentation: a byte range of the normalised text.
#[derive(Clone, Copy)]
struct Symbol {
    start: u32,
    len: u32,
    prev: i32,
    next: i32,
    freeze: bool,
}

/// A candidate merge of symbols `left` and `right` into a piece of `size` bytes.
struct Candidate {
    score: f32,
    left: u32,
    right: u32,
    size: u32,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    /// Max-heap order of sentencepiece's agenda: higher score first, then the leftmost pair.
    /// Scores compare as C++ floats do (-0.0 == 0.0).
    fn cmp(&self, other: &Self) -> Ordering {
        match self.score.partial_cmp(&other.score) {
            Some(Ordering::Equal) | None => other.left.cmp(&self.left),
            Some(o) => o,
        }
    }
}

impl SpModel {
    /// Builds the model from a parsed proto; `file` names it in errors.
    pub fn from_proto(m: &ModelProto, file: &str) -> Result<Self> {
        let err = |msg: String| Error::Tokenizer(format!("{file}: {msg}"));
        let trainer = m.trainer_spec.clone().unwrap_or_default();
        let norm = m.normalizer_spec.clone().unwrap_or_default();
        if trainer.model_type() != proto::MODEL_TYPE_BPE {
            return Err(err(format!(
                "sentencepiece model type {} ({}) is not supported: only BPE models (LLaMA's) are",
                proto::model_type_name(trainer.model_type()),
                trainer.model_type()
            )));
        }
        if norm.charsmap_len() > 0 {
            return Err(err(format!(
                "normalizer `{}` needs its precompiled charsmap ({} bytes), which is not \
                 implemented; only identity normalisation (LLaMA's) is supported",
                norm.name(),
                norm.charsmap_len()
            )));
        }
        if let Some(d) = &m.denormalizer_spec {
            if d.charsmap_len() > 0 {
                return Err(err(format!(
                    "denormalizer `{}` with a precompiled charsmap is not supported",
                    d.name()
                )));
            }
        }
        if trainer.treat_whitespace_as_suffix() {
            return Err(err(
                "treat_whitespace_as_suffix=true is not supported".into()
            ));
        }
        if m.pieces.is_empty() {
            return Err(err("the model has no pieces".into()));
        }
        let byte_fallback = trainer.byte_fallback();
        let n = m.pieces.len();
        let mut pieces = Vec::with_capacity(n);
        let mut kinds = Vec::with_capacity(n);
        let mut scores = Vec::with_capacity(n);
        let mut normal = HashMap::with_capacity(n);
        let mut reserved = HashMap::new();
        let mut user_defined = Vec::new();
        let mut byte_ids = [u32::MAX; 256];
        let mut unk_id = None;
        let mut has_unused = false;
        for (i, sp) in m.pieces.iter().enumerate() {
            let id = i as u32;
            let piece = sp.piece.clone().unwrap_or_default();
            if piece.is_empty() {
                return Err(err(format!("piece {id} is empty")));
            }
            let ty = PieceType::from_i32(sp.r#type()).ok_or_else(|| {
                err(format!(
                    "piece {id} `{piece}` has unknown type {}",
                    sp.r#type()
                ))
            })?;
            let kind = match ty {
                PieceType::Normal => PieceKind::Normal,
                PieceType::Unknown => {
                    if unk_id.replace(id).is_some() {
                        return Err(err(format!("a second unknown piece `{piece}` (id {id})")));
                    }
                    PieceKind::Unknown
                }
                PieceType::Control => PieceKind::Control,
                PieceType::UserDefined => {
                    user_defined.push(piece.clone());
                    PieceKind::UserDefined
                }
                PieceType::Unused => {
                    has_unused = true;
                    PieceKind::Unused
                }
                PieceType::Byte => {
                    if !byte_fallback {
                        return Err(err(format!(
                            "byte piece `{piece}` although byte_fallback is false"
                        )));
                    }
                    let b = byte_of_piece(&piece)
                        .ok_or_else(|| err(format!("invalid byte piece `{piece}`")))?;
                    byte_ids[b as usize] = id;
                    PieceKind::Byte(b)
                }
            };
            let is_normal = matches!(
                ty,
                PieceType::Normal | PieceType::UserDefined | PieceType::Unused
            );
            let map = if is_normal {
                &mut normal
            } else {
                &mut reserved
            };
            if map.insert(piece.clone(), id).is_some() {
                return Err(err(format!("piece `{piece}` (id {id}) is defined twice")));
            }
            pieces.push(piece);
            kinds.push(kind);
            scores.push(sp.score.unwrap_or(0.0));
        }
        let unk_id = unk_id.ok_or_else(|| err("the model has no unknown piece".into()))?;
        let byte_ids = if byte_fallback {
            if let Some(b) = byte_ids.iter().position(|&id| id == u32::MAX) {
                return Err(err(format!(
                    "byte_fallback is set but byte piece <0x{b:02X}> is missing"
                )));
            }
            Some(Box::new(byte_ids))
        } else {
            None
        };
        user_defined.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let find = |name: &str, fallback: Option<i32>| -> Result<u32> {
            reserved
                .get(name)
                .or_else(|| normal.get(name))
                .copied()
                .or_else(|| {
                    fallback
                        .filter(|&i| i >= 0 && (i as usize) < n)
                        .map(|i| i as u32)
                })
                .ok_or_else(|| err(format!("the model has no `{name}` piece")))
        };
        let bos_id = find(trainer.bos_piece(), trainer.bos_id)?;
        let eos_id = find(trainer.eos_piece(), trainer.eos_id)?;
        let table = PieceTable {
            added: vec![(n as u32, "[PAD]".to_string(), true)],
            pieces,
            kinds,
            bos_id,
            eos_id,
            unk_id,
            unk_surface: trainer.unk_surface().to_string(),
            strip_bos_ws: norm.add_dummy_prefix() || norm.remove_extra_whitespaces(),
            remove_extra_whitespaces: norm.remove_extra_whitespaces(),
        };
        let self_test = m
            .self_test_data
            .iter()
            .flat_map(|d| &d.samples)
            .map(|s| (s.input().to_string(), s.expected().to_string()))
            .collect();
        let model = SpModel {
            self_test,
            table,
            scores,
            normal,
            reserved,
            user_defined,
            byte_ids,
            add_dummy_prefix: norm.add_dummy_prefix(),
            remove_extra_whitespaces: norm.remove_extra_whitespaces(),
            escape_whitespaces: norm.escape_whitespaces(),
            byte_fallback,
            has_unused,
        };
        Ok(model)
    }

    /// Checks the model's embedded self-test samples (input, expected pieces joined by
    /// spaces), as sentencepiece's C++ `Load` does. Not run at load time: the Python
    /// sentencepiece release loads models whose samples went stale after editing, and so do we.
    /// Returns the number of samples checked.
    pub fn self_test(&self, file: &str) -> Result<usize> {
        for (input, want) in &self.self_test {
            let mut ids = Vec::new();
            let mut pieces = Vec::new();
            self.encode_into(input, &mut ids, Some(&mut pieces))?;
            let got = pieces.join(" ");
            if &got != want {
                return Err(Error::Tokenizer(format!(
                    "{file}: self-test sample {input:?} encodes to {got:?}, the model expects {want:?}"
                )));
            }
        }
        Ok(self.self_test.len())
    }

    /// sentencepiece's `PieceToId`: reserved pieces first, then normal ones, else <unk>.
    pub fn piece_to_id(&self, piece: &str) -> u32 {
        self.reserved
            .get(piece)
            .or_else(|| self.normal.get(piece))
            .copied()
            .unwrap_or(self.table.unk_id)
    }

    /// `normal` map lookup (pieces merges may produce).
    pub fn normal_id(&self, piece: &str) -> Option<u32> {
        self.normal.get(piece).copied()
    }

    /// The longest user-defined symbol at the start of `s`, if any.
    fn match_user_defined(&self, s: &str) -> Option<usize> {
        self.user_defined
            .iter()
            .find(|u| s.starts_with(u.as_str()))
            .map(String::len)
    }

    /// The next unit of the input: a whole user-defined symbol or one character.
    fn prefix_len(&self, s: &str) -> (usize, bool) {
        if let Some(n) = self.match_user_defined(s) {
            return (n, true);
        }
        (s.chars().next().map_or(0, char::len_utf8), false)
    }

    /// `Normalizer::Normalize` without a charsmap.
    pub fn normalize(&self, input: &str) -> String {
        let mut rest = input;
        if self.remove_extra_whitespaces {
            while let Some(tail) = rest.strip_prefix(' ') {
                // A user-defined symbol that starts with a space is kept, as sentencepiece does.
                if self.match_user_defined(rest).is_some_and(|n| n > 1) {
                    break;
                }
                rest = tail;
            }
        }
        if rest.is_empty() {
            return String::new();
        }
        let mut out = String::with_capacity(rest.len() + rest.len() / 2 + 3);
        let push_ws =
            |out: &mut String| out.push_str(if self.escape_whitespaces { SPACE } else { " " });
        if self.add_dummy_prefix {
            push_ws(&mut out);
        }
        let mut is_prev_space = self.remove_extra_whitespaces;
        while !rest.is_empty() {
            let (len, _) = self.prefix_len(rest);
            let mut unit = &rest[..len];
            if is_prev_space {
                unit = unit.trim_start_matches(' ');
            }
            if !unit.is_empty() {
                for c in unit.chars() {
                    if c == ' ' {
                        push_ws(&mut out);
                    } else {
                        out.push(c);
                    }
                }
                is_prev_space = unit.ends_with(' ');
            }
            rest = &rest[len..];
            if !self.remove_extra_whitespaces {
                is_prev_space = false;
            }
        }
        if self.remove_extra_whitespaces {
            let space = if self.escape_whitespaces { SPACE } else { " " };
            while out.ends_with(space) {
                out.truncate(out.len() - space.len());
            }
        }
        out
    }

    /// `sp_model.encode(text)`: ids without BOS/EOS.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 2);
        self.encode_into(text, &mut ids, None)?;
        Ok(ids)
    }

    /// Encodes `text` into `ids`; with `pieces`, also the piece strings sentencepiece reports.
    pub fn encode_into(
        &self,
        text: &str,
        ids: &mut Vec<u32>,
        mut pieces: Option<&mut Vec<String>>,
    ) -> Result<()> {
        let normalized = self.normalize(text);
        let mut prev_unk = false;
        for (w, id) in self.bpe(&normalized) {
            let kind = self.table.kinds[id as usize];
            let is_unk = kind == PieceKind::Unknown;
            if kind == PieceKind::Control {
                // sentencepiece fails such an input ("all normalized characters are not
                // consumed"): a control piece has no surface.
                return Err(Error::Tokenizer(format!(
                    "text {text:?} segments into control piece `{w}`, which sentencepiece refuses"
                )));
            }
            match (&self.byte_ids, is_unk) {
                (Some(bytes), true) => {
                    for b in w.bytes() {
                        let id = bytes[b as usize];
                        ids.push(id);
                        if let Some(p) = pieces.as_deref_mut() {
                            p.push(self.table.pieces[id as usize].clone());
                        }
                    }
                }
                (None, true) if prev_unk => {
                    // A run of unknown characters is one <unk>.
                    if let Some(last) = pieces.as_deref_mut().and_then(|p| p.last_mut()) {
                        last.push_str(w);
                    }
                }
                _ => {
                    ids.push(id);
                    if let Some(p) = pieces.as_deref_mut() {
                        p.push(w.to_string());
                    }
                }
            }
            prev_unk = is_unk;
        }
        Ok(())
    }

    /// `bpe::Model::Encode`: the final pieces of `normalized` with their ids.
    fn bpe<'a>(&self, normalized: &'a str) -> Vec<(&'a str, u32)> {
        if normalized.is_empty() {
            return Vec::new();
        }
        let mut symbols: Vec<Symbol> = Vec::with_capacity(normalized.len());
        let mut pos = 0;
        while pos < normalized.len() {
            let (len, freeze) = self.prefix_len(&normalized[pos..]);
            let i = symbols.len() as i32;
            symbols.push(Symbol {
                start: pos as u32,
                len: len as u32,
                prev: i - 1,
                next: if pos + len < normalized.len() {
                    i + 1
                } else {
                    -1
                },
                freeze,
            });
            pos += len;
        }
        let mut agenda = BinaryHeap::with_capacity(symbols.len());
        // Unused pieces are re-split into the pair that last formed them (sentencepiece keys
        // this map by the piece text).
        let mut rev_merge: HashMap<&'a str, (&'a str, &'a str)> = HashMap::new();
        let text = |s: &Symbol| &normalized[s.start as usize..(s.start + s.len) as usize];
        let mut add = |symbols: &[Symbol], agenda: &mut BinaryHeap<Candidate>, l: i32, r: i32| {
            if l < 0 || r < 0 {
                return;
            }
            let (ls, rs) = (&symbols[l as usize], &symbols[r as usize]);
            if ls.freeze || rs.freeze {
                return;
            }
            let end = (ls.start + ls.len + rs.len) as usize;
            let piece = &normalized[ls.start as usize..end];
            let Some(&id) = self.normal.get(piece) else {
                return;
            };
            agenda.push(Candidate {
                score: self.scores[id as usize],
                left: l as u32,
                right: r as u32,
                size: ls.len + rs.len,
            });
            if self.has_unused && self.table.kinds[id as usize] == PieceKind::Unused {
                rev_merge.insert(piece, (text(ls), text(rs)));
            }
        };
        for i in 1..symbols.len() as i32 {
            add(&symbols, &mut agenda, i - 1, i);
        }
        while let Some(top) = agenda.pop() {
            let (l, r) = (top.left as usize, top.right as usize);
            if symbols[l].len == 0
                || symbols[r].len == 0
                || symbols[l].len + symbols[r].len != top.size
            {
                continue;
            }
            symbols[l].len += symbols[r].len;
            let next = symbols[r].next;
            symbols[l].next = next;
            if next >= 0 {
                symbols[next as usize].prev = l as i32;
            }
            symbols[r].len = 0;
            let prev = symbols[l].prev;
            add(&symbols, &mut agenda, prev, l as i32);
            add(&symbols, &mut agenda, l as i32, next);
        }
        let mut out = Vec::with_capacity(symbols.len());
        let mut i = 0i32;
        while i >= 0 {
            let s = &symbols[i as usize];
            self.resegment(text(s), &rev_merge, &mut out);
            i = s.next;
        }
        out
    }

    fn resegment<'a>(
        &self,
        w: &'a str,
        rev: &HashMap<&'a str, (&'a str, &'a str)>,
        out: &mut Vec<(&'a str, u32)>,
    ) {
        let id = self.piece_to_id(w);
        if self.table.kinds[id as usize] != PieceKind::Unused {
            out.push((w, id));
            return;
        }
        match rev.get(w) {
            Some(&(a, b)) => {
                self.resegment(a, rev, out);
                self.resegment(b, rev, out);
            }
            None => out.push((w, id)),
        }
    }
}
