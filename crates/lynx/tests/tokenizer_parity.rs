//! Parity of `LynxTokenizer` with sentencepiece and transformers 4.28.1 on the fixtures of
//! tools/fixtures_tokenizer.py: ids of sp_model.encode (tokenizer.model path), of the converted
//! tokenizer.json (json path), of the slow LlamaTokenizer (our own tokenizer.json), and the
//! slow tokenizer's decode.

use std::path::{Path, PathBuf};

use lynx::data::tokenizer::{LynxTokenizer, TokenizerSource};
use serde::Deserialize;

#[derive(Deserialize)]
struct Info {
    vocab_size: usize,
    bos_id: u32,
    eos_id: u32,
    unk_id: u32,
    pieces: Vec<String>,
}

#[derive(Deserialize)]
struct EncodeCase {
    text: String,
    sp_ids: Vec<u32>,
    slow_ids: Vec<u32>,
    fast_ids: Option<Vec<u32>>,
    decode: String,
}

#[derive(Deserialize)]
struct DecodeCase {
    ids: Vec<u32>,
    skip_special_tokens: bool,
    text: String,
}

#[derive(Deserialize)]
struct Cases {
    info: Info,
    encode: Vec<EncodeCase>,
    decode: Vec<DecodeCase>,
}

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tokenizer")
        .join(name)
}

fn cases(name: &str) -> Cases {
    let text = std::fs::read_to_string(dir(name).join("cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn load(name: &str, source: TokenizerSource) -> LynxTokenizer {
    LynxTokenizer::from_dir(&dir(name), source).unwrap()
}

/// A unique scratch directory under the system temp dir.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lynx-tok-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn check_info(tok: &LynxTokenizer, c: &Cases) {
    assert_eq!(tok.vocab_size(), c.info.vocab_size);
    assert_eq!(tok.pad_id() as usize, c.info.vocab_size);
    assert_eq!(
        (tok.bos_id(), tok.eos_id(), tok.unk_id()),
        (c.info.bos_id, c.info.eos_id, c.info.unk_id)
    );
    for (id, p) in c.info.pieces.iter().enumerate() {
        assert_eq!(tok.id_to_piece(id as u32), Some(p.as_str()), "piece {id}");
    }
    assert_eq!(tok.id_to_piece(tok.pad_id()), Some("[PAD]"));
    assert_eq!(tok.id_to_piece(tok.pad_id() + 1), None);
}

fn check_decode(tok: &LynxTokenizer, c: &Cases) {
    for e in &c.encode {
        assert_eq!(
            tok.decode(&e.sp_ids, true).unwrap(),
            e.decode,
            "decode of {:?}",
            e.text
        );
    }
    for d in &c.decode {
        let got = tok.decode(&d.ids, d.skip_special_tokens).unwrap();
        assert_eq!(
            got, d.text,
            "decode {:?} skip={}",
            d.ids, d.skip_special_tokens
        );
    }
}

#[test]
fn sentencepiece_path_matches_sp_model_encode() {
    for name in ["a", "b", "c", "d"] {
        let c = cases(name);
        let tok = load(name, TokenizerSource::SentencePiece);
        assert_eq!(tok.source(), TokenizerSource::SentencePiece);
        check_info(&tok, &c);
        for e in &c.encode {
            assert_eq!(
                tok.encode(&e.text).unwrap(),
                e.sp_ids,
                "model {name}, text {:?}",
                e.text
            );
        }
        check_decode(&tok, &c);
    }
}

#[test]
fn json_path_matches_converted_fast_tokenizer() {
    for name in ["a", "b", "d"] {
        let c = cases(name);
        let tok = load(name, TokenizerSource::Json);
        assert_eq!(tok.source(), TokenizerSource::Json);
        check_info(&tok, &c);
        for e in &c.encode {
            let want = e.fast_ids.as_ref().unwrap();
            assert_eq!(
                &tok.encode(&e.text).unwrap(),
                want,
                "model {name}, text {:?}",
                e.text
            );
        }
        check_decode(&tok, &c);
    }
}

#[test]
fn converter_trap_is_exercised() {
    // Model b keeps the score-0 first merge that transformers' converter drops: its
    // tokenizer.json must split some strings differently from sentencepiece, on ordinary text.
    let c = cases("b");
    let differ = c
        .encode
        .iter()
        .filter(|e| Some(&e.sp_ids) != e.fast_ids.as_ref())
        .count();
    assert!(differ >= 10, "only {differ} strings differ");
    let c = cases("a");
    for e in c
        .encode
        .iter()
        .filter(|e| !e.text.contains("<s>") && !e.text.contains("<unk>"))
    {
        assert_eq!(
            Some(&e.sp_ids),
            e.fast_ids.as_ref(),
            "model a, text {:?}",
            e.text
        );
    }
}

#[test]
fn generated_tokenizer_json_matches_slow_tokenizer() {
    for name in ["a", "b"] {
        let c = cases(name);
        let sp = load(name, TokenizerSource::SentencePiece);
        let d = scratch(&format!("hf-{name}"));
        std::fs::write(d.join("tokenizer.json"), sp.to_hf_json().unwrap()).unwrap();
        let tok = LynxTokenizer::from_file(&d.join("tokenizer.json")).unwrap();
        check_info(&tok, &c);
        for e in &c.encode {
            assert_eq!(
                tok.encode(&e.text).unwrap(),
                e.slow_ids,
                "model {name}, text {:?}",
                e.text
            );
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
    // Model c (UNUSED pieces, remove_extra_whitespaces) and model d (user-defined symbols)
    // have no equivalent tokenizer.json.
    let e = load("c", TokenizerSource::Auto)
        .to_hf_json()
        .unwrap_err()
        .to_string();
    assert!(e.contains("UNUSED"), "{e}");
    let e = load("d", TokenizerSource::Auto)
        .to_hf_json()
        .unwrap_err()
        .to_string();
    assert!(e.contains("user-defined") && e.contains("<image>"), "{e}");
}

#[test]
fn auto_prefers_tokenizer_model_and_save_carries_files() {
    let tok = load("a", TokenizerSource::Auto);
    assert_eq!(tok.source(), TokenizerSource::SentencePiece);
    let d = scratch("save");
    tok.save_to_dir(&d.join("out")).unwrap();
    for f in ["tokenizer.model", "tokenizer.json"] {
        let want = std::fs::read(dir("a").join(f)).unwrap();
        assert_eq!(std::fs::read(d.join("out").join(f)).unwrap(), want, "{f}");
    }
    // A directory with only tokenizer.json falls back to it.
    std::fs::copy(dir("a").join("tokenizer.json"), d.join("tokenizer.json")).unwrap();
    let tj = LynxTokenizer::from_dir(&d, TokenizerSource::Auto).unwrap();
    assert_eq!(tj.source(), TokenizerSource::Json);
    // from_file tells the formats apart by content when the extension says nothing.
    std::fs::copy(dir("a").join("tokenizer.model"), d.join("llama.bin")).unwrap();
    std::fs::copy(dir("a").join("tokenizer.json"), d.join("llama.txt")).unwrap();
    assert_eq!(
        LynxTokenizer::from_file(&d.join("llama.bin"))
            .unwrap()
            .source(),
        TokenizerSource::SentencePiece
    );
    assert_eq!(
        LynxTokenizer::from_file(&d.join("llama.txt"))
            .unwrap()
            .source(),
        TokenizerSource::Json
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn errors_name_the_file() {
    let d = scratch("err");
    let e = LynxTokenizer::from_dir(&d, TokenizerSource::Auto)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&d.display().to_string()) && e.contains("tokenizer.model"),
        "{e}"
    );
    let e = LynxTokenizer::from_dir(&d, TokenizerSource::Json)
        .unwrap_err()
        .to_string();
    assert!(e.contains("tokenizer.json"), "{e}");

    // A truncated protobuf.
    let bytes = std::fs::read(dir("a").join("tokenizer.model")).unwrap();
    std::fs::write(d.join("tokenizer.model"), &bytes[..bytes.len() / 2 + 3]).unwrap();
    let e = LynxTokenizer::from_dir(&d, TokenizerSource::SentencePiece)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tokenizer.model") && e.contains("protobuf"),
        "{e}"
    );
    // Not a protobuf at all.
    std::fs::write(d.join("tokenizer.model"), b"\xff\xff\xff\xff garbage").unwrap();
    let e = LynxTokenizer::from_dir(&d, TokenizerSource::SentencePiece)
        .unwrap_err()
        .to_string();
    assert!(e.contains("tokenizer.model"), "{e}");
    // A broken tokenizer.json.
    std::fs::write(d.join("tokenizer.json"), b"{\"model\": 3}").unwrap();
    let e = LynxTokenizer::from_dir(&d, TokenizerSource::Json)
        .unwrap_err()
        .to_string();
    assert!(e.contains("tokenizer.json"), "{e}");

    // A real unigram model.
    let e = LynxTokenizer::from_dir(&dir("unigram"), TokenizerSource::Auto)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("UNIGRAM") && e.contains("tokenizer.model"),
        "{e}"
    );

    // Ids past [PAD] cannot be decoded.
    let tok = load("a", TokenizerSource::SentencePiece);
    assert!(tok.decode(&[tok.pad_id() + 1], true).is_err());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn lynx_prompt_tokens() {
    // lynx-official.md, "Prompt and inputs": [BOS] + tokenize(lowercased prompt).
    let c = cases("b");
    let tok = load("b", TokenizerSource::SentencePiece);
    let e = c
        .encode
        .iter()
        .find(|e| e.text == "user: what is in the image?\nbot:")
        .unwrap();
    let mut ids = vec![tok.bos_id()];
    ids.extend(tok.encode(&e.text).unwrap());
    assert_eq!(ids[1..], e.sp_ids[..]);
    assert_eq!(tok.decode(&ids, true).unwrap().trim(), e.text);
}
