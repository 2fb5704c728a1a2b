#!/usr/bin/env python3
"""Reference fixtures for the LLaMA tokenizer (crates/lynx/src/data/tokenizer).

Trains small sentencepiece BPE models with LLaMA's options, converts them with transformers
4.28.1 (LlamaTokenizerFast, tokenizers 0.13.3) and records, for a corpus of strings, the ids of
  * `sp_ids`:   sp_model.encode(text)                           (what the official code uses)
  * `slow_ids`: LlamaTokenizer.encode(text, add_special_tokens=False)  (splits special-token text)
  * `fast_ids`: the converted tokenizer.json, encode(text, add_special_tokens=False)
and the slow tokenizer's decode of `sp_ids` (skip_special_tokens=True), plus hand-made and random
id lists decoded with skip_special_tokens True and False by a slow tokenizer that has Lynx's
appended [PAD] token (id = vocab size).

Models (fixtures/tokenizer/<name>/):
  a        trained on the paper's text; scores of the merged pieces shifted by -0.5 so that no
           merge has score 0 (like LLaMA's own model: the converter then agrees with sentencepiece)
  b        trained on lowercased OwlEval/Open-VQA text; left as trained, so its first merge has
           score exactly 0: the converter drops that merge (`if piece_score:`), the trap of
           lynx-official.md
  d        as b, with a user-defined symbol <image> and a control symbol <ctrl>
  c        `a` without byte pieces and byte_fallback, with remove_extra_whitespaces=true and three
           merged pieces marked UNUSED (sentencepiece re-splits them): sp ids only, no tokenizer.json
  unigram  a tiny unigram model, only for the "unsupported model type" error test

Run from the repository root:  PYTHONPATH=<dir with protobuf 3.20.x> /work/pyenv/bin/python tools/fixtures_tokenizer.py
(transformers' converter needs the `protobuf` package; 3.20.x reads its generated module.)
"""

import io
import json
import os
import random
import shutil
import tempfile

import sentencepiece as spm
import transformers
from transformers import LlamaTokenizer, LlamaTokenizerFast
from transformers.utils import sentencepiece_model_pb2 as pb

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared")
OUT = os.path.join(ROOT, "fixtures", "tokenizer")

assert transformers.__version__ == "4.28.1", transformers.__version__

LLAMA_OPTS = dict(
    model_type="bpe",
    byte_fallback=True,
    split_digits=True,
    add_dummy_prefix=True,
    normalization_rule_name="identity",
    allow_whitespace_only_pieces=True,
    remove_extra_whitespaces=False,
    num_threads=1,
    minloglevel=2,
)


def paper_lines():
    path = os.path.join(SHARED, "paper", "lynx-2307.02469.txt")
    with open(path, encoding="utf-8") as f:
        return [l.strip() for l in f if l.strip()]


def owl_lines():
    out = []
    data = os.path.join(SHARED, "data")
    for rel in ["owleval/questions.jsonl", "open-vqa/Open_VQA_images.jsonl", "open-vqa/Open_VQA_videos.jsonl"]:
        with open(os.path.join(data, rel), encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                out.append(rec["question"].lower())
                for a in rec.get("answer", []):
                    out.append(str(a).lower())
    ans = os.path.join(data, "owleval", "answer")
    for name in sorted(os.listdir(ans)):
        with open(os.path.join(ans, name), encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                for key in ("answer", "text", "text_output"):
                    if isinstance(rec.get(key), str):
                        out.extend(l.strip().lower() for l in rec[key].split("\n") if l.strip())
    # Mark some image places with the user-defined symbol so it appears in training text.
    return [("<image> " + l) if i % 7 == 0 else l for i, l in enumerate(out) if l]


def train(lines, **opts):
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, **opts)
    return buf.getvalue()


def shift_merge_scores(model_bytes):
    """Moves every NORMAL piece's score down by 0.5: same order, so the same sentencepiece
    encoding, but no merged piece keeps the score 0 that the converter would skip."""
    m = pb.ModelProto()
    m.ParseFromString(model_bytes)
    for p in m.pieces:
        if p.type == pb.ModelProto.SentencePiece.NORMAL:
            p.score -= 0.5
    return m.SerializeToString()


def add_self_test(model_bytes, texts):
    """Embeds sentencepiece self-test samples (input, expected pieces joined by spaces), as the
    trainer's self_test_sample_size once did; LynxTokenizer::self_test checks them."""
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)
    m = pb.ModelProto()
    m.ParseFromString(model_bytes)
    for t in texts:
        sample = m.self_test_data.samples.add()
        sample.input = t
        sample.expected = " ".join(sp.encode(t, out_type=str))
    return m.SerializeToString()


def variant_c(model_bytes):
    m = pb.ModelProto()
    m.ParseFromString(model_bytes)
    keep = [p for p in m.pieces if p.type != pb.ModelProto.SentencePiece.BYTE]
    del m.pieces[:]
    m.pieces.extend(keep)
    m.trainer_spec.byte_fallback = False
    m.normalizer_spec.remove_extra_whitespaces = True
    m.ClearField("self_test_data")
    merged = [p for p in m.pieces if p.type == pb.ModelProto.SentencePiece.NORMAL and len(p.piece) >= 3]
    for p in merged[:3]:
        p.type = pb.ModelProto.SentencePiece.UNUSED
    return m.SerializeToString(), [p.piece for p in merged[:3]]


def corpus(extra):
    rng = random.Random(1234)
    base = [
        "",
        " ",
        "  ",
        "   ",
        "a",
        "A",
        "Hello world",
        "Hello, world! How's it going?",
        "the the the the",
        "multimodal large language model",
        "What Matters in Training a GPT4-Style Language Model with Multimodal Inputs?",
        "  two leading spaces",
        "trailing spaces   ",
        "many     inner      spaces",
        " leading and trailing ",
        "12345",
        "3.14159 and 2.71828",
        "in 2023 there were 1,000,000 images (0.5%)",
        "0",
        "007 agent",
        "line one\nline two",
        "\n",
        "\n\n\nx",
        "tab\tseparated\tvalues",
        "\t\tindented",
        "windows\r\nline end",
        "café",
        "naïve résumé façade",
        "Ångström Über straße",
        "e\u0301 combining accent",
        "你好，世界",
        "日本語のテキストです",
        "한국어 문장",
        "😀",
        "I ❤️ NY 👍🏽",
        "family: 👨‍👩‍👧‍👦",
        "mixed 中文 and English 123",
        "\u00a0non-breaking\u00a0space",
        "zero\u200bwidth",
        "\ufeffbom",
        "\x00nul and \x07bell",
        "▁already▁escaped",
        "a▁▁b ▁ c",
        "<s>",
        "a <s> b </s> c",
        "<unk>",
        "[PAD]",
        "x<image>y",
        "<image><image> two images",
        "<image>",
        "<ctrl> is a control symbol",
        "aaaaaaaaaaaaaaaa",
        "ooo lllll cooool hellllo",  # odd runs: equal-score pairs, leftmost first
        "!!!!!!!!",
        "-----",
        "....",
        "e-mail: test@example.com, url: https://github.com/bytedance/lynx-llm",
        'fn main() { println!("hi"); }',
        "ThE qUiCk BrOwN fOx",
        "user: what is in the image?\nbot:",
        "user: describe the video in detail.\nbot:",
        "user: 图片里有什么？\nbot:",
    ]
    base += extra
    pool = list("abcdefghijklmnopqrstuvwxyz      ETAOIN0123456789.,!?'-\n\té漢😀▁<>")
    for _ in range(30):
        n = rng.randint(1, 40)
        base.append("".join(rng.choice(pool) for _ in range(n)))
    return base


def prompts_from_data():
    out = []
    with open(os.path.join(SHARED, "data", "owleval", "questions.jsonl"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i % 8 == 0:
                q = json.loads(line)["question"]
                out.append("User: {question}\nBot:".format(question=q).strip().lower())
    lines = paper_lines()
    out.append(" ".join(lines[40:60])[:900])  # a long paragraph
    return out


def load_hf(model_bytes, tmp):
    path = os.path.join(tmp, "tokenizer.model")
    with open(path, "wb") as f:
        f.write(model_bytes)
    slow = LlamaTokenizer.from_pretrained(tmp)
    slow_pad = LlamaTokenizer.from_pretrained(tmp)
    slow_pad.add_special_tokens({"pad_token": "[PAD]"})
    assert slow_pad.pad_token_id == slow.vocab_size
    return slow, slow_pad


def decode_cases(sp, slow_pad, vocab_size, rng):
    pad = vocab_size

    def byte_id(b):
        return sp.piece_to_id("<0x%02X>" % b)

    cases = []
    texts = ["hello world", "  two spaces", "café 😀", "user: what is this?\nbot:"]
    for t in texts:
        ids = sp.encode(t)
        cases.append([1] + ids + [2])
        cases.append([1] + ids + [2, pad, pad])
        cases.append([pad, 1] + ids)
        cases.append(ids[:1] + [0] + ids[1:])
    space = sp.piece_to_id("▁")
    cases.append([space] + sp.encode("hello"))
    cases.append([space, space] + sp.encode("hello"))
    cases.append([1, space] + sp.encode("hi"))
    if byte_id(0x41) != sp.unk_id():  # the model has byte pieces
        cases.append([byte_id(0x20)] + sp.encode("hello"))
        cases.append([byte_id(b) for b in (0xE2, 0x82)])  # truncated 3-byte sequence
        cases.append([byte_id(b) for b in (0xE2, 0x82, 0x41)])
        cases.append([byte_id(0xFF), byte_id(0x80)] + sp.encode("x"))
        cases.append([byte_id(b) for b in (0xED, 0xA0, 0x80)])  # surrogate
        cases.append([byte_id(b) for b in (0xC0, 0xAF)])  # overlong
        cases.append([byte_id(b) for b in (0xF4, 0x90, 0x80, 0x80)])  # > U+10FFFF
        cases.append([byte_id(b) for b in "é€😀".encode("utf-8")] + [1, byte_id(0xC3)])
        cases.append([1, byte_id(0xC3), 2, byte_id(0xA9)])
    cases.append([0, 0, 0])
    cases.append([1, 2, 1, 2])
    cases.append([pad])
    cases.append([])
    for _ in range(20):
        n = rng.randint(1, 25)
        cases.append([rng.randrange(vocab_size + 1) for _ in range(n)])
    out = []
    for ids in cases:
        for skip in (True, False):
            out.append({"ids": ids, "skip_special_tokens": skip, "text": slow_pad.decode(ids, skip_special_tokens=skip)})
    return out


def dump_compact(doc):
    """JSON with one list element per line: small, and diffs stay readable."""

    def enc(v):
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))

    parts = []
    for key, value in doc.items():
        if isinstance(value, list) and key != "pieces":
            body = ",\n".join(enc(x) for x in value)
            parts.append(f"{enc(key)}:[\n{body}\n]")
        else:
            parts.append(f"{enc(key)}:{enc(value)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def record(name, model_bytes, with_fast, texts, rng):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.model"), "wb") as f:
        f.write(model_bytes)
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)
    tmp = tempfile.mkdtemp()
    try:
        slow, slow_pad = load_hf(model_bytes, tmp)
        fast = None
        if with_fast:
            fast = LlamaTokenizerFast.from_pretrained(tmp, from_slow=True)
            fast.backend_tokenizer.save(os.path.join(d, "tokenizer.json"))
        enc = []
        for t in texts:
            ids = sp.encode(t)
            row = {
                "text": t,
                "sp_ids": ids,
                "slow_ids": slow.encode(t, add_special_tokens=False),
                "decode": slow_pad.decode(ids, skip_special_tokens=True),
            }
            if fast is not None:
                row["fast_ids"] = fast.encode(t, add_special_tokens=False)
            enc.append(row)
        info = {
            "vocab_size": sp.get_piece_size(),
            "bos_id": sp.bos_id(),
            "eos_id": sp.eos_id(),
            "unk_id": sp.unk_id(),
            "pieces": [sp.id_to_piece(i) for i in range(sp.get_piece_size())],
        }
        dec = decode_cases(sp, slow_pad, sp.get_piece_size(), rng)
    finally:
        shutil.rmtree(tmp)
    with open(os.path.join(d, "cases.json"), "w", encoding="utf-8") as f:
        f.write(dump_compact({"info": info, "encode": enc, "decode": dec}))
    return enc


def main():
    rng = random.Random(7)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    texts = corpus(prompts_from_data())

    a_raw = train(paper_lines(), vocab_size=500, self_test_sample_size=5, **LLAMA_OPTS)
    a = shift_merge_scores(a_raw)
    a = add_self_test(a, ["Hello world", "multimodal LLMs in 2023", "naïve café 😀", "  spaces  "])
    enc_a = record("a", a, True, texts, rng)
    diff_a = sum(r["sp_ids"] != r["fast_ids"] for r in enc_a)

    b = train(owl_lines(), vocab_size=450, **LLAMA_OPTS)
    m = pb.ModelProto()
    m.ParseFromString(b)
    zero = [p.piece for p in m.pieces if p.type == pb.ModelProto.SentencePiece.NORMAL and p.score == 0.0]
    assert zero, "model b should have a merged piece of score 0"
    enc_b = record("b", b, True, texts, rng)
    diff_b = sum(r["sp_ids"] != r["fast_ids"] for r in enc_b)

    d = train(owl_lines(), vocab_size=450, user_defined_symbols=["<image>"], control_symbols=["<ctrl>"], **LLAMA_OPTS)
    record("d", d, True, texts, rng)

    c, unused = variant_c(a)
    c_texts = texts + ["".join(u.replace("▁", " ") for u in unused) + " end", unused[0].replace("▁", " ")]
    record("c", c, False, c_texts, rng)

    uni = train(
        paper_lines()[:200],
        model_type="unigram",
        vocab_size=120,
        normalization_rule_name="identity",
        num_threads=1,
        minloglevel=2,
    )
    os.makedirs(os.path.join(OUT, "unigram"), exist_ok=True)
    with open(os.path.join(OUT, "unigram", "tokenizer.model"), "wb") as f:
        f.write(uni)

    print(f"a: {len(enc_a)} strings, fast != sp on {diff_a}")
    print(f"b: {len(enc_b)} strings, fast != sp on {diff_b}; score-0 merged pieces: {zero}")
    print(f"c: unused pieces {unused}")
    total = 0
    for dirpath, _, files in os.walk(OUT):
        for fn in files:
            total += os.path.getsize(os.path.join(dirpath, fn))
    print(f"fixtures: {total} bytes")


if __name__ == "__main__":
    main()
