"""Build the tiny random Lynx fixtures (official file layout) and record reference outputs.

Run from the repository root:  /work/pyenv/bin/python tools/make_fixtures.py
Needs torch, torchvision, transformers==4.28.1, sentencepiece, safetensors, Pillow, numpy, PyYAML.
Everything is written to fixtures/tiny/ (wiped first) and is deterministic for a given
seed and library versions. tools/README.md documents every file, tensor and JSON field.
"""

import argparse
import json
import os
import random
import shutil
import sys

import numpy as np
import torch
import yaml
from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer, LlamaTokenizerFast
from transformers.generation import LogitsProcessor, LogitsProcessorList

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_assets as A  # noqa: E402
import fixture_records as F  # noqa: E402
import lynx_ref as R  # noqa: E402
from fixture_config import (BATCH_SIZE_TEST, BOS, EOS, IMAGE_RES, LLM, MAX_INPUT_TOKENS, MEAN,  # noqa: E402
                            MIN_MARGIN, NOISE, PROMPT, SEED, SETTINGS, STD, TRAINED, VARIANTS, VIT, VOCAB)

def build_tokenizers(out):
    vic, vjs = os.path.join(out, "vicuna"), os.path.join(out, "vicuna-json")
    os.makedirs(vic)
    os.makedirs(vjs)
    model_path = os.path.join(vic, "tokenizer.model")
    with open(model_path, "wb") as f:
        f.write(A.train_sentencepiece(A.tokenizer_corpus(A.SHARED_DATA), VOCAB))
    LlamaTokenizer(vocab_file=model_path).save_pretrained(vic)
    fast = LlamaTokenizerFast.from_pretrained(vic, from_slow=True)
    fast.save_pretrained(vjs, legacy_format=False)
    for extra in ("tokenizer_config.json", "special_tokens_map.json"):
        os.remove(os.path.join(vjs, extra))  # keep only config.json + tokenizer.json there
    return fast


def build_weights(out, variant, seed):
    eos_shift, head_std = VARIANTS[variant]
    g = torch.Generator().manual_seed(seed + 1000 * variant)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_act="silu", initializer_range=0.02, **LLM)
    llm = LlamaForCausalLM(cfg)
    A.fill_llama(llm, g, head_std, eos_shift)
    llm = llm.half()  # stored as float16 like released Vicuna weights; loaded back as f32
    vic = os.path.join(out, "vicuna")
    for name in os.listdir(vic):
        if name.endswith(".safetensors") or name.endswith(".index.json") or name == "config.json":
            os.remove(os.path.join(vic, name))
    llm.save_pretrained(vic, safe_serialization=True, max_shard_size="200KB")
    shutil.copy(os.path.join(vic, "config.json"), os.path.join(out, "vicuna-json", "config.json"))
    vit_sd = {k: v.half().clone() for k, v in A.fill_vit(VIT, g).items()}
    torch.save(vit_sd, os.path.join(out, "eva_vit.pth"))
    trained = A.fill_trained_parts(TRAINED, g)
    torch.save({"model": trained}, os.path.join(out, "finetune_lynx.pt"))
    torch.save({"model." + k: v.clone() for k, v in trained.items()}, os.path.join(out, "finetune_lynx_prefixed.pt"))


def load_checkpoint(path):
    obj = torch.load(path, map_location="cpu")
    sd = obj["model"] if "model" in obj else obj
    return {(k[len("model."):] if k.startswith("model.") else k): v for k, v in sd.items()}


def load_reference(out):
    """Load the fixture files back the way the release does and assemble the reference model."""
    vic = os.path.join(out, "vicuna")
    tok = LlamaTokenizer.from_pretrained(vic)
    assert tok.pad_token is None
    tok.add_special_tokens({"pad_token": "[PAD]"})
    llm = LlamaForCausalLM.from_pretrained(vic)  # f32
    old_vocab = R.add_pad_token(llm)
    assert tok.pad_token_id == old_vocab == len(tok) - 1
    trained = load_checkpoint(os.path.join(out, "finetune_lynx.pt"))
    other = load_checkpoint(os.path.join(out, "finetune_lynx_prefixed.pt"))
    assert other.keys() == trained.keys() and all(torch.equal(other[k], trained[k]) for k in trained)
    adapters = {}
    for i in range(0, LLM["num_hidden_layers"], TRAINED["adapter_freq"]):
        prefix = f"LLM.model.layers.{i}.output_adapter."
        adapter = R.Adapter(LLM["hidden_size"])
        adapter.load_state_dict({k[len(prefix):]: v for k, v in trained.items() if k.startswith(prefix)})
        adapters[i] = adapter
    R.install_adapters(llm, adapters)
    vit = R.EvaVit(IMAGE_RES, **{k: v for k, v in VIT.items() if k != "pretrain_grid"})
    vit.load_release_state_dict(torch.load(os.path.join(out, "eva_vit.pth"), map_location="cpu"))
    bridge = R.PerceiverResampler(TRAINED["vision_width"], TRAINED["text_width"], TRAINED["bridge_depth"],
                                  TRAINED["num_bridge_tokens"])
    bridge.load_state_dict({k[len("bridge."):]: v for k, v in trained.items() if k.startswith("bridge.")})
    model = R.TinyLynx(vit, bridge, llm, trained["absolute_frame_pos_embed"]).eval()
    return model, tok


class LogitNoise(LogitsProcessor):
    def __init__(self, seed, amplitude):
        self.g = torch.Generator().manual_seed(seed)
        self.amplitude = amplitude

    def __call__(self, input_ids, scores):
        return scores + (torch.rand(scores.shape, generator=self.g) * 2 - 1) * self.amplitude


def generate(model, pixels, ids, mask, settings, pad_id, processors=()):
    embeds, full_mask = model.inputs(pixels, ids, mask)
    return model.LLM.generate(inputs_embeds=embeds, attention_mask=full_mask, pad_token_id=pad_id,
                              eos_token_id=EOS, logits_processor=LogitsProcessorList(list(processors)),
                              output_scores=True, return_dict_in_generate=True, **settings)


def strip_output(seq, pad_id):
    new = list(seq[1:])  # drop the BOS placeholder
    while new and new[-1] == pad_id:
        new.pop()
    return new


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def run_cases(model, tok, paths, out, problems):
    """All generation cases; each is also rerun under logit noise to prove it has no near ties."""
    pad = tok.pad_token_id
    sp = tok.sp_model
    cases, tensors, prompts = [], {}, {}
    groups = {"image": read_jsonl(os.path.join(out, "data", "ann_images.jsonl")),
              "video": read_jsonl(os.path.join(out, "data", "ann_videos.jsonl"))}
    frame_ids = {}
    for key, anns in groups.items():
        for ann in anns:
            text = R.prompt_text(PROMPT, ann["question"], lower=True)
            ids = R.prompt_ids(sp, text, BOS, MAX_INPUT_TOKENS)
            hf_ids = tok.convert_tokens_to_ids([tok.bos_token] + tok.tokenize(text))[-MAX_INPUT_TOKENS:]
            assert ids == hf_ids, (ids, hf_ids)
            prompts[f"{key}:{ann['index']}"] = dict(
                media=key, index=ann["index"], question=ann["question"], text=text,
                full_ids=[BOS] + sp.encode(text), input_ids=ids,
                truncated=len(sp.encode(text)) + 1 > MAX_INPUT_TOKENS)
        tag = "img" if key == "image" else "vid"
        units = [[a] for a in anns] + [anns]
        for unit in units:
            pixels, fids = R.load_media(paths, unit, key, IMAGE_RES, MEAN, STD, TRAINED["num_frames"])
            for ann, f in zip(unit, fids):
                frame_ids[os.path.basename(ann[key])] = f
            ids, mask = R.left_pad([prompts[f"{key}:{a['index']}"]["input_ids"] for a in unit], pad)
            label = f"{tag}_q{unit[0]['index']}" if len(unit) == 1 else f"{tag}_batch"
            with torch.no_grad():
                tensors[f"logits.{label}"] = model.last_logits(pixels, ids, mask).contiguous()
            names = ["greedy", "beam", "greedy_rep"] if key == "image" else ["greedy", "beam"]
            for setting in names:
                kwargs = SETTINGS[setting]
                res = generate(model, pixels, ids, mask, kwargs, pad)
                seqs = res.sequences.tolist()
                new = [strip_output(s, pad) for s in seqs]
                for trial in range(3):
                    noisy = generate(model, pixels, ids, mask, kwargs, pad, [LogitNoise(SEED + trial, NOISE)])
                    if noisy.sequences.tolist() != seqs:
                        problems.append(f"{label}/{setting}: not robust to logit noise")
                case = dict(name=f"{label}_{setting}", media=key, indices=[a["index"] for a in unit],
                            setting=setting, input_ids=ids.tolist(), text_attention_mask=mask.tolist(),
                            generate_kwargs=dict(kwargs, pad_token_id=pad, eos_token_id=EOS),
                            sequences=seqs, new_tokens=new,
                            texts=[t.strip() for t in tok.batch_decode(res.sequences, skip_special_tokens=True)],
                            ends_with_eos=[bool(n and n[-1] == EOS) for n in new])
                if setting != "beam":
                    margins = []
                    for step, sc in enumerate(res.scores):
                        top = sc.topk(2, dim=-1).values
                        for row in range(sc.shape[0]):
                            if step < len(new[row]):
                                margins.append((top[row, 0] - top[row, 1]).item())
                    case["min_top2_margin"] = min(margins)
                cases.append(case)
    return cases, tensors, prompts, frame_ids


def check_cases(cases, problems):
    by_name = {c["name"]: c for c in cases}
    for c in cases:
        if "_batch_" not in c["name"]:
            continue
        tag = c["name"].split("_batch_")[0]
        for row, idx in enumerate(c["indices"]):
            single = by_name[f"{tag}_q{idx}_{c['setting']}"]
            if single["new_tokens"][0] != c["new_tokens"][row]:
                problems.append(f"{c['name']}: row {row} differs from the single run")
    for setting in ("greedy", "beam"):
        runs = [c for c in cases if c["setting"] == setting]
        if not any(any(c["ends_with_eos"]) for c in runs):
            problems.append(f"no {setting} generation ends with EOS")
        if not any(any(len(n) == 16 for n in c["new_tokens"]) for c in runs):
            problems.append(f"no {setting} generation runs to max_new_tokens")
    for c in cases:
        pad = c["generate_kwargs"]["pad_token_id"]
        if any(pad in n for n in c["new_tokens"]):
            problems.append(f"{c['name']}: generated the pad id")
        if c.get("min_top2_margin", 1.0) < MIN_MARGIN:
            problems.append(f"{c['name']}: greedy top-2 margin {c['min_top2_margin']:.4f}")
    texts = {t for c in cases for t in c["texts"]}
    if len(texts) < len(cases) // 2:
        problems.append(f"only {len(texts)} distinct texts over {len(cases)} cases")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--out", default=os.path.join(root, "fixtures", "tiny"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)
    out = args.out
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    fast = build_tokenizers(out)
    paths = A.write_media(os.path.join(out, "data"), SEED)
    for variant in range(len(VARIANTS)):
        build_weights(out, variant, SEED)
        model, tok = load_reference(out)
        problems = []
        with torch.no_grad():
            cases, gen_tensors, prompts, frame_ids = run_cases(model, tok, paths, out, problems)
        check_cases(cases, problems)
        print(f"variant {variant} {VARIANTS[variant]}: {problems or 'ok'}", flush=True)
        if not problems:
            break
    else:
        raise SystemExit("no weight variant passed the sanity checks")
    F.write_records(out, model, tok, fast, paths, cases, gen_tensors, prompts, frame_ids,
                    dict(seed=SEED, variant=variant, eos_shift=VARIANTS[variant][0],
                         lm_head_std=VARIANTS[variant][1], noise=NOISE))
    values = dict(test_file="data/ann_images.jsonl", vision_key="image", num_frames=TRAINED["num_frames"],
                  adapter_freq=TRAINED["adapter_freq"], bridge_depth=TRAINED["bridge_depth"],
                  num_bridge_tokens=TRAINED["num_bridge_tokens"], image_res=IMAGE_RES,
                  max_input_tokens=MAX_INPUT_TOKENS, batch_size_test=BATCH_SIZE_TEST,
                  **{k: SETTINGS["beam"][k] for k in ("max_new_tokens", "min_length", "num_beams",
                                                      "length_penalty", "no_repeat_ngram_size")},
                  **{k: VIT[k] for k in ("patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio")})
    A.write_yaml(os.path.join(out, "lynx.yaml"), values)
    A.write_yaml(os.path.join(out, "lynx_video.yaml"),
                 dict(values, test_file="data/ann_videos.jsonl", vision_key="video"))
    for name in ("lynx.yaml", "lynx_video.yaml"):
        with open(os.path.join(out, name)) as f:
            cfg = yaml.safe_load(f)
        assert cfg["prompt"] == PROMPT and cfg["image_res"] == IMAGE_RES
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    print(f"wrote {out}: {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
