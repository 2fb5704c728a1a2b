//! Unit tests of the sentencepiece BPE rules on small hand-built models (the parity tests
//! against the Python tokenizers are in crates/lynx/tests/tokenizer_parity.rs).

use prost::Message;

use super::proto::{
    ModelProto, NormalizerSpec, PieceType, SentencePiece, TrainerSpec, MODEL_TYPE_BPE,
};
use super::sentencepiece::SpModel;
use super::*;

fn piece(p: &str, score: f32, ty: PieceType) -> SentencePiece {
    SentencePiece {
        piece: Some(p.to_string()),
        score: Some(score),
        r#type: Some(ty as i32),
    }
}

/// <unk> <s> </s>, then the given normal pieces with their scores.
fn model(
    normal: &[(&str, f32)],
    extra: &[(&str, PieceType)],
    byte_fallback: bool,
    remove_ws: bool,
) -> ModelProto {
    let mut pieces = vec![
        piece("<unk>", 0.0, PieceType::Unknown),
        piece("<s>", 0.0, PieceType::Control),
        piece("</s>", 0.0, PieceType::Control),
    ];
    for (p, ty) in extra {
        pieces.push(piece(p, 0.0, *ty));
    }
    if byte_fallback {
        for b in 0..=255u8 {
            pieces.push(piece(&format!("<0x{b:02X}>"), 0.0, PieceType::Byte));
        }
    }
    for (p, s) in normal {
        pieces.push(piece(p, *s, PieceType::Normal));
    }
    ModelProto {
        pieces,
        trainer_spec: Some(TrainerSpec {
            model_type: Some(MODEL_TYPE_BPE),
            byte_fallback: Some(byte_fallback),
            ..Default::default()
        }),
        normalizer_spec: Some(NormalizerSpec {
            name: Some("identity".into()),
            remove_extra_whitespaces: Some(remove_ws),
            ..Default::default()
        }),
        self_test_data: None,
        denormalizer_spec: None,
    }
}

fn sp(m: &ModelProto) -> SpModel {
    SpModel::from_proto(m, "test.model").unwrap()
}

fn pieces(m: &SpModel, text: &str) -> Vec<String> {
    let (mut ids, mut ps) = (Vec::new(), Vec::new());
    m.encode_into(text, &mut ids, Some(&mut ps)).unwrap();
    ps
}

const CHARS: [(&str, f32); 5] = [
    ("\u{2581}", -10.0),
    ("a", -11.0),
    ("b", -12.0),
    ("c", -13.0),
    ("x", -14.0),
];

#[test]
fn normalization_escapes_and_prefixes() {
    let m = sp(&model(&CHARS, &[], false, false));
    assert_eq!(m.normalize(""), "");
    assert_eq!(
        m.normalize(" a  b "),
        "\u{2581}\u{2581}a\u{2581}\u{2581}b\u{2581}"
    );
    let r = sp(&model(&CHARS, &[], false, true));
    assert_eq!(r.normalize("  a   b  "), "\u{2581}a\u{2581}b");
    assert_eq!(r.normalize("   "), "");
}

#[test]
fn highest_score_merges_first_and_ties_go_left() {
    let mut normal = CHARS.to_vec();
    normal.extend([("ab", -1.0), ("bc", -0.5), ("\u{2581}ab", -2.0)]);
    let m = sp(&model(&normal, &[], false, false));
    // bc (-0.5) beats ab (-1.0).
    assert_eq!(pieces(&m, "abc"), ["\u{2581}", "a", "bc"]);
    // Equal pairs: the leftmost merges first.
    let mut normal = CHARS.to_vec();
    normal.extend([("aa", -1.0), ("\u{2581}aa", -3.0)]);
    let m = sp(&model(&normal, &[], false, false));
    assert_eq!(pieces(&m, "aaa"), ["\u{2581}aa", "a"]);
    // -0.0 and 0.0 are one score: position decides.
    let mut normal = CHARS.to_vec();
    normal.extend([("ab", -0.0), ("bc", 0.0)]);
    let m = sp(&model(&normal, &[], false, false));
    assert_eq!(pieces(&m, "abc"), ["\u{2581}", "ab", "c"]);
}

#[test]
fn unknown_characters_bytes_or_one_unk_per_run() {
    let m = sp(&model(&CHARS, &[], false, false));
    let ids = m.encode("a\u{e9}\u{4f60}b").unwrap();
    assert_eq!(ids.iter().filter(|&&i| i == m.table.unk_id).count(), 1);
    assert_eq!(
        pieces(&m, "a\u{e9}\u{4f60}b"),
        ["\u{2581}", "a", "\u{e9}\u{4f60}", "b"]
    );
    let m = sp(&model(&CHARS, &[], true, false));
    assert_eq!(pieces(&m, "\u{e9}"), ["\u{2581}", "<0xC3>", "<0xA9>"]);
}

#[test]
fn user_defined_symbols_stay_whole() {
    let mut normal = CHARS.to_vec();
    normal.extend([("ab", -1.0), ("\u{2581}a", -2.0)]);
    let m = sp(&model(
        &normal,
        &[
            ("<img>", PieceType::UserDefined),
            ("b<", PieceType::UserDefined),
        ],
        false,
        false,
    ));
    assert_eq!(pieces(&m, "a<img>b"), ["\u{2581}a", "<img>", "b"]);
    // The longest user-defined symbol wins; it never merges with its neighbours. The unknown
    // characters after it form one <unk>.
    assert_eq!(pieces(&m, "ab<img>"), ["\u{2581}a", "b<", "img>"]);
    assert_eq!(m.encode("ab<img>").unwrap()[2], m.table.unk_id);
}

#[test]
fn unused_pieces_are_resplit() {
    let mut normal = CHARS.to_vec();
    normal.extend([("ab", -1.0), ("abc", -2.0)]);
    let mut m = model(&normal, &[], false, false);
    let last = m.pieces.len() - 1;
    m.pieces[last].r#type = Some(PieceType::Unused as i32);
    let m = sp(&m);
    assert_eq!(pieces(&m, "abc"), ["\u{2581}", "ab", "c"]);
}

#[test]
fn control_piece_in_text_is_refused() {
    let m = sp(&model(&CHARS, &[("|", PieceType::Control)], false, false));
    assert!(m.encode("a|b").is_err());
}

#[test]
fn invalid_models_are_refused() {
    let check = |m: ModelProto, needle: &str| {
        let e = SpModel::from_proto(&m, "bad.model")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.model") && e.contains(needle), "{e}");
    };
    let mut m = model(&CHARS, &[], false, false);
    m.trainer_spec.as_mut().unwrap().model_type = Some(1);
    check(m, "UNIGRAM");
    let mut m = model(&CHARS, &[], false, false);
    m.normalizer_spec.as_mut().unwrap().precompiled_charsmap = Some(vec![1, 2, 3]);
    m.normalizer_spec.as_mut().unwrap().name = Some("nmt_nfkc".into());
    check(m, "nmt_nfkc");
    let mut m = model(&CHARS, &[], false, false);
    m.pieces.push(piece("a", 0.0, PieceType::Normal));
    check(m, "defined twice");
    let mut m = model(&CHARS, &[], true, false);
    m.pieces.remove(3 + 0x41);
    check(m, "<0x41>");
    let mut m = model(&CHARS, &[], false, false);
    m.pieces.remove(0);
    check(m, "no unknown piece");
    let mut m = model(&CHARS, &[], false, false);
    m.pieces[4].r#type = Some(9);
    check(m, "unknown type 9");
    let mut m = model(&CHARS, &[], false, false);
    m.pieces[4].piece = Some(String::new());
    check(m, "empty");
}

#[test]
fn self_test_data_is_checked() {
    use super::proto::{SelfTestData, SelfTestSample};
    let mut normal = CHARS.to_vec();
    normal.push(("ab", -1.0));
    let mut m = model(&normal, &[], false, false);
    let sample = |e: &str| SelfTestSample {
        input: Some("ab".into()),
        expected: Some(e.into()),
    };
    m.self_test_data = Some(SelfTestData {
        samples: vec![sample("\u{2581} ab")],
    });
    assert_eq!(sp(&m).self_test("t.model").unwrap(), 1);
    m.self_test_data = Some(SelfTestData {
        samples: vec![sample("\u{2581}ab")],
    });
    let e = sp(&m).self_test("t.model").unwrap_err().to_string();
    assert!(e.contains("self-test") && e.contains("t.model"), "{e}");
}

#[test]
fn file_round_trip_and_hf_json() {
    let mut normal = CHARS.to_vec();
    normal.extend([("ab", 0.0), ("\u{2581}ab", -1.0)]);
    let bytes = model(&normal, &[], true, false).encode_to_vec();
    let dir = std::env::temp_dir().join(format!("lynx-tok-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tokenizer.model"), &bytes).unwrap();
    let tok = LynxTokenizer::from_dir(&dir, TokenizerSource::Auto).unwrap();
    assert_eq!(tok.source(), TokenizerSource::SentencePiece);
    assert_eq!(tok.pad_id() as usize, tok.vocab_size());
    assert_eq!(tok.id_to_piece(tok.pad_id()), Some("[PAD]"));
    assert_eq!(tok.piece_to_id("[PAD]"), Some(tok.pad_id()));
    let ab = tok.piece_to_id("\u{2581}ab").unwrap();
    assert_eq!(tok.encode("ab").unwrap(), [ab]);
    // The score-0 merge "ab" is kept in the generated tokenizer.json.
    let json = tok.to_hf_json().unwrap();
    std::fs::write(dir.join("tokenizer.json"), &json).unwrap();
    let tj = LynxTokenizer::from_dir(&dir, TokenizerSource::Json).unwrap();
    assert_eq!(tj.encode("ab ab").unwrap(), tok.encode("ab ab").unwrap());
    assert_eq!(tj.decode(&[1, ab, 2], true).unwrap(), "ab");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tokenizer_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<LynxTokenizer>();
}

#[test]
fn fixture_model_passes_its_embedded_self_test() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/tokenizer/a/tokenizer.model");
    let m = super::proto::parse_model(&std::fs::read(path).unwrap()).unwrap();
    let samples = &m.self_test_data.as_ref().unwrap().samples;
    assert!(samples.len() >= 3);
    // Every sample encodes to the pieces sentencepiece recorded (bytes, accents, spaces).
    assert_eq!(sp(&m).self_test("a").unwrap(), samples.len());
}
