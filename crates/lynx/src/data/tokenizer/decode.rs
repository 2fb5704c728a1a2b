//! Ids to text as transformers 4.28.1's slow `LlamaTokenizer.decode` does it (the release's
//! output path): special tokens skipped or written verbatim, added tokens ([PAD]) joined with
//! spaces, and everything else through sentencepiece's `DecodePieces` (U+2581 to space, the
//! leading dummy-prefix space dropped, byte pieces reassembled into UTF-8 with one U+FFFD per
//! invalid byte, control pieces invisible).

use crate::{Error, Result};

/// The sentencepiece space symbol U+2581.
pub(crate) const SPACE: &str = "\u{2581}";

/// What a vocabulary entry is, as far as encoding and decoding care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PieceKind {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte(u8),
}

/// Parses sentencepiece's byte piece names `<0x00>` .. `<0xFF>` (upper-case hex only).
pub(crate) fn byte_of_piece(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// The vocabulary seen by the decoder, shared by the tokenizer.model and tokenizer.json paths.
#[derive(Debug, Clone)]
pub(crate) struct PieceTable {
    pub pieces: Vec<String>,
    pub kinds: Vec<PieceKind>,
    pub bos_id: u32,
    pub eos_id: u32,
    pub unk_id: u32,
    /// Tokens past the base vocabulary: (id, content, special). Always holds Lynx's [PAD].
    pub added: Vec<(u32, String, bool)>,
    pub unk_surface: String,
    /// sentencepiece strips the first piece's leading U+2581 when the model adds a dummy prefix
    /// or removes extra whitespace.
    pub strip_bos_ws: bool,
    pub remove_extra_whitespaces: bool,
}

impl PieceTable {
    pub fn vocab_size(&self) -> usize {
        self.pieces.len()
    }

    pub fn pad_id(&self) -> u32 {
        self.pieces.len() as u32
    }

    pub fn piece(&self, id: u32) -> Option<&str> {
        match self.pieces.get(id as usize) {
            Some(p) => Some(p),
            None => self.added(id).map(|(c, _)| c),
        }
    }

    fn added(&self, id: u32) -> Option<(&str, bool)> {
        self.added
            .iter()
            .find(|(i, _, _)| *i == id)
            .map(|(_, c, s)| (c.as_str(), *s))
    }

    /// transformers' `all_special_ids` of the Lynx tokenizer: BOS, EOS, UNK and the added
    /// special tokens ([PAD]).
    fn is_special(&self, id: u32) -> bool {
        id == self.bos_id
            || id == self.eos_id
            || id == self.unk_id
            || self.added(id).is_some_and(|(_, s)| s)
    }

    /// `PreTrainedTokenizer._decode` with `clean_up_tokenization_spaces=False` (LLaMA's
    /// default in 4.28.1) and `spaces_between_special_tokens=True`.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        let mut out = String::new();
        let mut first = true;
        let mut run: Vec<u32> = Vec::new();
        let push_sub = |out: &mut String, first: &mut bool, f: &dyn Fn(&mut String)| {
            if !*first {
                out.push(' ');
            }
            *first = false;
            f(out);
        };
        for &id in ids {
            if skip_special_tokens && self.is_special(id) {
                continue;
            }
            if (id as usize) < self.pieces.len() {
                run.push(id);
                continue;
            }
            let (content, _) = self.added(id).ok_or_else(|| {
                Error::Tokenizer(format!(
                    "cannot decode id {id}: the vocabulary has {} pieces (+ [PAD] = {})",
                    self.pieces.len(),
                    self.pad_id()
                ))
            })?;
            if !run.is_empty() {
                push_sub(&mut out, &mut first, &|o| self.tokens_to_string(&run, o));
                run.clear();
            }
            push_sub(&mut out, &mut first, &|o| o.push_str(content));
        }
        if !run.is_empty() {
            push_sub(&mut out, &mut first, &|o| self.tokens_to_string(&run, o));
        }
        Ok(out)
    }

    /// `LlamaTokenizer.convert_tokens_to_string`: special tokens verbatim (a space before one
    /// that follows ordinary text), the runs between them through sentencepiece.
    fn tokens_to_string(&self, ids: &[u32], out: &mut String) {
        let mut start = 0;
        let mut prev_special = false;
        for (i, &id) in ids.iter().enumerate() {
            if id == self.bos_id || id == self.eos_id || id == self.unk_id {
                if !prev_special && i != 0 {
                    out.push(' ');
                }
                self.sp_decode(&ids[start..i], out);
                out.push_str(&self.pieces[id as usize]);
                prev_special = true;
                start = i + 1;
            } else {
                prev_special = false;
            }
        }
        self.sp_decode(&ids[start..], out);
    }

    /// sentencepiece's `DecodePieces` for ids inside the base vocabulary.
    pub fn sp_decode(&self, ids: &[u32], out: &mut String) {
        let start_len = out.len();
        let mut bytes: Vec<u8> = Vec::new();
        let mut is_bos_ws = true;
        let mut bos_ws_seen = false;
        for &id in ids {
            let kind = self.kinds[id as usize];
            if let PieceKind::Byte(b) = kind {
                bytes.push(b);
                continue;
            }
            flush_bytes(&mut bytes, out);
            if bos_ws_seen || out.len() > start_len {
                is_bos_ws = false;
            }
            bos_ws_seen = self.decode_piece(id, kind, is_bos_ws, out);
        }
        flush_bytes(&mut bytes, out);
    }

    /// Appends one non-byte piece; returns whether it consumed the dummy-prefix space.
    fn decode_piece(&self, id: u32, kind: PieceKind, is_bos_ws: bool, out: &mut String) -> bool {
        let mut piece = self.pieces[id as usize].as_str();
        match kind {
            PieceKind::Control => return false,
            PieceKind::Unknown => {
                out.push_str(&self.unk_surface);
                return false;
            }
            _ => {}
        }
        let mut consumed = false;
        if is_bos_ws && self.strip_bos_ws {
            if let Some(rest) = piece.strip_prefix(SPACE) {
                piece = rest;
                consumed = !self.remove_extra_whitespaces;
            }
        }
        for (i, part) in piece.split(SPACE).enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(part);
        }
        consumed
    }
}

/// Byte pieces to text: each valid UTF-8 character as is, each byte that does not start one
/// as U+FFFD (sentencepiece consumes a single byte per invalid position).
fn flush_bytes(bytes: &mut Vec<u8>, out: &mut String) {
    let mut rest: &[u8] = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let good = e.valid_up_to();
                // The prefix up to `good` is valid UTF-8 by the contract of `valid_up_to`.
                out.push_str(std::str::from_utf8(&rest[..good]).unwrap_or_default());
                out.push('\u{FFFD}');
                rest = &rest[good + 1..];
            }
        }
    }
    bytes.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PieceTable {
        let mut pieces: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
        let mut kinds = vec![PieceKind::Unknown, PieceKind::Control, PieceKind::Control];
        for b in 0..=255u8 {
            pieces.push(format!("<0x{b:02X}>"));
            kinds.push(PieceKind::Byte(b));
        }
        for p in ["\u{2581}", "\u{2581}hi", "a"] {
            pieces.push(p.into());
            kinds.push(PieceKind::Normal);
        }
        PieceTable {
            added: vec![(pieces.len() as u32, "[PAD]".into(), true)],
            pieces,
            kinds,
            bos_id: 1,
            eos_id: 2,
            unk_id: 0,
            unk_surface: " \u{2047} ".into(),
            strip_bos_ws: true,
            remove_extra_whitespaces: false,
        }
    }

    #[test]
    fn byte_piece_names() {
        assert_eq!(byte_of_piece("<0x0A>"), Some(10));
        assert_eq!(byte_of_piece("<0xff>"), None);
        assert_eq!(byte_of_piece("<0x1>"), None);
        assert_eq!(byte_of_piece("a"), None);
    }

    #[test]
    fn invalid_bytes_become_one_replacement_each() {
        let mut out = String::new();
        let mut b = vec![0xE2, 0x82, b'A', 0xC3, 0xA9, 0xFF];
        flush_bytes(&mut b, &mut out);
        assert_eq!(out, "\u{FFFD}\u{FFFD}A\u{e9}\u{FFFD}");
    }

    #[test]
    fn leading_space_and_specials() {
        let t = table();
        let (sp, hi, pad) = (259, 260, 262);
        assert_eq!(t.decode(&[1, hi, 2], true).unwrap(), "hi");
        assert_eq!(t.decode(&[1, hi, 2], false).unwrap(), "<s> hi</s>");
        assert_eq!(t.decode(&[sp, hi], true).unwrap(), " hi");
        assert_eq!(t.decode(&[hi, pad, pad], false).unwrap(), "hi [PAD] [PAD]");
        assert!(t.decode(&[pad + 1], true).is_err());
    }
}
