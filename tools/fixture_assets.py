"""Builders for the tiny Lynx fixture files in the official release layout.

Tokenizer (LLaMA-style sentencepiece BPE), synthetic images and videos with Open-VQA style
annotations, random weights for the EVA ViT / LLaMA / resampler / adapters, and the YAML
config with the keys of the release's configs/LYNX.yaml. See tools/README.md.
"""

import base64
import glob
import io
import json
import os

import numpy as np
import sentencepiece as spm
import torch
from PIL import Image

SHARED_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")

# ---------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------


def tokenizer_corpus(data_dir):
    """Questions and answers of Open-VQA and OwlEval, raw and as lowercased prompts."""
    files = sorted(glob.glob(os.path.join(data_dir, "open-vqa", "*.jsonl")))
    files.append(os.path.join(data_dir, "owleval", "questions.jsonl"))
    texts = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                texts.append(rec["question"])
                answers = rec.get("answer")
                if isinstance(answers, list):
                    texts.extend(a for a in answers if isinstance(a, str))
    corpus = []
    for t in texts:
        corpus.append(t)
        corpus.append(("User: %s\nBot:" % t).lower())
    return corpus


def train_sentencepiece(corpus, vocab_size):
    """A LLaMA-like sentencepiece BPE model (bytes of the serialized ModelProto)."""
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=buf,
        model_type="bpe",
        vocab_size=vocab_size,
        byte_fallback=True,
        add_dummy_prefix=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        character_coverage=0.9995,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        num_threads=1,
        minloglevel=2,
    )
    return buf.getvalue()


# ---------------------------------------------------------------------------------------
# Media
# ---------------------------------------------------------------------------------------


def synth_rgb(rng, width, height):
    """Smooth colour waves, a few flat rectangles and mild noise (uint8 [H, W, 3])."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.zeros((height, width, 3))
    for c in range(3):
        fx, fy = rng.uniform(0.03, 0.25, size=2)
        img[..., c] = 128 + 90 * np.sin(fx * x + fy * y + rng.uniform(0, 2 * np.pi))
    for _ in range(3):
        x0, y0 = rng.integers(0, width - 4), rng.integers(0, height - 4)
        x1 = min(width, x0 + rng.integers(3, max(4, width // 2)))
        y1 = min(height, y0 + rng.integers(3, max(4, height // 2)))
        img[y0:y1, x0:x1] = rng.integers(0, 256, size=3)
    img += rng.normal(0, 5, size=img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def video_frames(rng, count, width, height):
    """A square moving over a fixed background, count frames (uint8 [H, W, 3] each)."""
    bg = synth_rgb(rng, width, height)
    colour = rng.integers(0, 256, size=3)
    side = max(6, min(width, height) // 3)
    frames = []
    for i in range(count):
        frame = bg.copy()
        x0 = int((width - side) * i / max(1, count - 1))
        y0 = int((height - side) * (0.5 + 0.4 * np.sin(i)))
        y0 = max(0, min(height - side, y0))
        frame[y0 : y0 + side, x0 : x0 + side] = colour
        frames.append(frame)
    return frames


def encode_image(img, fmt, **kwargs):
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


# (file name, width, height, PIL mode, format, save kwargs)
IMAGE_SPECS = [
    ("img_a.jpg", 96, 64, "RGB", "JPEG", {"quality": 90}),  # 4:2:0 chroma
    ("img_b.png", 50, 77, "RGBA", "PNG", {}),  # alpha is dropped by convert("RGB")
    ("img_c.png", 70, 59, "L", "PNG", {}),  # greyscale
    ("img_d.jpg", 100, 109, "RGB", "JPEG", {"quality": 95, "subsampling": 0}),  # 4:4:4
]

# (file name, frame count, width, height, frame format)
VIDEO_SPECS = [
    ("vid7.json", 7, 48, 40, "JPEG"),
    ("vid3.json", 3, 44, 60, "PNG"),
]

IMAGE_QUESTIONS = [
    (1, "img_a.jpg", "What is in the image?", ["platform"], "Place"),
    (2, "img_b.png", "What color is the car on the left?", ["red"], "Color"),
    (3, "img_c.png", "How many people are in the picture?", ["2"], "Counting"),
    (
        4,
        "img_d.jpg",
        "Describe this picture in great detail, including every object, its colour, its position "
        "relative to the other objects, and what the people in the scene might be doing right now?",
        ["a street"],
        "Others",
    ),
]

VIDEO_QUESTIONS = [
    (1, "vid7.json", "Does the toy train roll down a slanted surface?", ["yes"], "Action(Y/N)"),
    (2, "vid3.json", "What is the person doing with the box?", ["opening it"], "Others"),
]


def write_media(data_dir, seed):
    """Write images, videos and both annotation files; return {name: path}."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(data_dir, "images"), exist_ok=True)
    os.makedirs(os.path.join(data_dir, "videos"), exist_ok=True)
    paths = {}
    for name, w, h, mode, fmt, kwargs in IMAGE_SPECS:
        rgb = Image.fromarray(synth_rgb(rng, w, h))
        if mode == "RGBA":
            alpha = Image.fromarray(rng.integers(0, 256, size=(h, w), dtype=np.uint8))
            img = rgb.copy()
            img.putalpha(alpha)
        else:
            img = rgb.convert(mode)
        path = os.path.join(data_dir, "images", name)
        with open(path, "wb") as f:
            f.write(encode_image(img, fmt, **kwargs))
        paths[name] = path
    for name, count, w, h, fmt in VIDEO_SPECS:
        frames = []
        for arr in video_frames(rng, count, w, h):
            raw = encode_image(Image.fromarray(arr), fmt, **({"quality": 85} if fmt == "JPEG" else {}))
            frames.append(base64.b64encode(raw).decode("ascii"))
        path = os.path.join(data_dir, "videos", name)
        with open(path, "w") as f:
            json.dump(frames, f)
        paths[name] = path
    with open(os.path.join(data_dir, "ann_images.jsonl"), "w") as f:
        for index, name, q, ans, cls in IMAGE_QUESTIONS:
            rec = {"dataset": "tiny_images", "question": q, "answer": ans, "index": index,
                   "image": "data/images/" + name, "origin_dataset": "synthetic", "class": cls}
            f.write(json.dumps(rec) + "\n")
    with open(os.path.join(data_dir, "ann_videos.jsonl"), "w") as f:
        for index, name, q, ans, cls in VIDEO_QUESTIONS:
            rec = {"question": q, "answer": ans, "index": index, "dataset": "tiny_videos",
                   "video": "data/videos/" + name, "origin_dataset": "synthetic", "class": cls}
            f.write(json.dumps(rec) + "\n")
    return paths


# ---------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------


def _normal(g, shape, std, mean=0.0):
    return torch.randn(shape, generator=g) * std + mean


def fill_vit(vit, g):
    """Release-layout EVA ViT state dict at the pretraining grid (pos_embed for 3x3 patches)."""
    sd = {}
    w = vit["embed_dim"]
    hidden = int(w * vit["mlp_ratio"])
    p = vit["patch_size"]
    sd["cls_token"] = _normal(g, (1, 1, w), 0.2)
    sd["pos_embed"] = _normal(g, (1, 1 + vit["pretrain_grid"] ** 2, w), 0.2)
    sd["patch_embed.proj.weight"] = _normal(g, (w, 3, p, p), 0.05)
    sd["patch_embed.proj.bias"] = _normal(g, (w,), 0.05)
    for i in range(vit["depth"]):
        b = f"blocks.{i}."
        for n in ("norm1", "norm2"):
            sd[b + n + ".weight"] = _normal(g, (w,), 0.1, 1.0)
            sd[b + n + ".bias"] = _normal(g, (w,), 0.05)
        sd[b + "attn.qkv.weight"] = _normal(g, (3 * w, w), 0.2)
        sd[b + "attn.q_bias"] = _normal(g, (w,), 0.05)
        sd[b + "attn.v_bias"] = _normal(g, (w,), 0.05)
        sd[b + "attn.proj.weight"] = _normal(g, (w, w), 0.12)
        sd[b + "attn.proj.bias"] = _normal(g, (w,), 0.02)
        sd[b + "mlp.fc1.weight"] = _normal(g, (hidden, w), 0.15)
        sd[b + "mlp.fc1.bias"] = _normal(g, (hidden,), 0.05)
        sd[b + "mlp.fc2.weight"] = _normal(g, (w, hidden), 0.06)
        sd[b + "mlp.fc2.bias"] = _normal(g, (w,), 0.02)
    return sd


def fill_llama(llm, g, head_std, eos_shift, byte_scale=0.4):
    """Random LLaMA weights with peaked next-token distributions.

    eos_shift moves the EOS lm_head row towards the mean row, which makes EOS likelier
    after some contexts (so that some generations stop early). The byte-fallback rows
    (ids 3..258) of lm_head are shrunk by byte_scale so that generations are mostly made
    of word pieces (a few bytes still appear).
    """
    with torch.no_grad():
        for name, param in llm.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                param.copy_(_normal(g, param.shape, 0.1, 1.0))
            elif "embed_tokens" in name:
                param.copy_(_normal(g, param.shape, 1.0))
            elif "lm_head" in name:
                param.copy_(_normal(g, param.shape, head_std))
            elif any(k in name for k in ("q_proj", "k_proj", "v_proj", "gate_proj", "up_proj")):
                param.copy_(_normal(g, param.shape, 0.15))
            elif "o_proj" in name:
                param.copy_(_normal(g, param.shape, 0.1))
            elif "down_proj" in name:
                param.copy_(_normal(g, param.shape, 0.09))
            else:
                raise KeyError(f"unexpected LLaMA parameter {name}")
        head = llm.lm_head.weight
        head[3:259] *= byte_scale
        head[2] = head[2] + eos_shift * head.mean(dim=0) / head.mean(dim=0).norm() * head_std * 8


def fill_trained_parts(cfg, g):
    """bridge.*, LLM.model.layers.{i}.output_adapter.*, absolute_frame_pos_embed."""
    sd = {}
    w, d = cfg["vision_width"], cfg["text_width"]
    inner = 8 * 64
    sd["bridge.latents"] = _normal(g, (cfg["num_bridge_tokens"], d), 1.0)
    for i in range(cfg["bridge_depth"]):
        a = f"bridge.layers.{i}.0."
        sd[a + "norm_media.weight"] = _normal(g, (w,), 0.1, 1.0)
        sd[a + "norm_media.bias"] = _normal(g, (w,), 0.05)
        sd[a + "norm_latents.weight"] = _normal(g, (d,), 0.1, 1.0)
        sd[a + "norm_latents.bias"] = _normal(g, (d,), 0.05)
        sd[a + "to_q.weight"] = _normal(g, (inner, d), 0.15)
        sd[a + "to_kv.weight"] = _normal(g, (2 * inner, w), 0.2)
        sd[a + "to_out.weight"] = _normal(g, (d, inner), 0.05)
        f = f"bridge.layers.{i}.1."
        sd[f + "0.weight"] = _normal(g, (d,), 0.1, 1.0)
        sd[f + "0.bias"] = _normal(g, (d,), 0.05)
        sd[f + "1.weight"] = _normal(g, (4 * d, d), 0.1)
        sd[f + "3.weight"] = _normal(g, (d, 4 * d), 0.06)
    sd["bridge.norm.weight"] = _normal(g, (d,), 0.1, 1.0)
    sd["bridge.norm.bias"] = _normal(g, (d,), 0.05)
    for i in range(0, cfg["num_layers"], cfg["adapter_freq"]):
        a = f"LLM.model.layers.{i}.output_adapter."
        sd[a + "adapter_norm_before.weight"] = _normal(g, (d,), 0.1, 1.0)
        sd[a + "adapter_norm_before.bias"] = _normal(g, (d,), 0.05)
        sd[a + "adapter_down.weight"] = _normal(g, (d // 2, d), 0.15)
        sd[a + "adapter_down.bias"] = _normal(g, (d // 2,), 0.05)
        sd[a + "adapter_up.weight"] = _normal(g, (d, d // 2), 0.15)
        sd[a + "adapter_up.bias"] = _normal(g, (d,), 0.05)
        sd[a + "scaling"] = torch.rand(1, generator=g) * 0.5 + 0.5
    sd["absolute_frame_pos_embed"] = _normal(g, (1, cfg["num_frames"], 1, w), 0.2)
    return {k: v.clone().contiguous() for k, v in sd.items()}


# ---------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------

YAML_TEMPLATE = """\
# Tiny random Lynx for parity tests (made by tools/make_fixtures.py; do not edit by hand).
# Keys and meanings are those of the release's configs/LYNX.yaml; paths are relative to
# this file's folder. The last block holds this project's additions.

## Data
image_rdir: "./"

test_files: [ "{test_file}" ]

prompt: "User: {{question}}\\nBot:"
vision_prompt_dict: "{vision_key}"
output_prompt_dict: "answer"

data: {{
  num_frames: {num_frames},
}}


## Model
vision_encoder: 'eva_vit_1b'
video_encoding: 'concate'
add_frame_pos: True


LLM: 'vicuna-7b'
use_flash_attn: False
use_adapter: True
adapter_freq: {adapter_freq}


bridge: 'resampler'
bridge_depth: {bridge_depth}
num_bridge_tokens: {num_bridge_tokens}


## General
use_left_pad: True
lower_text: True
freeze_vit: True
freeze_llm: True
image_res: {image_res}
image_mean: [ 0.48145466, 0.4578275, 0.40821073 ]
image_std: [ 0.26862954, 0.26130258, 0.27577711 ]


## Testing
checkpoint: "finetune_lynx.pt"

## infer params
max_input_tokens: {max_input_tokens}
batch_size_test: {batch_size_test}
max_new_tokens: {max_new_tokens}
min_length: {min_length}
num_beams: {num_beams}
length_penalty: {length_penalty}
top_p: 0.9
top_k: 3
no_repeat_ngram_size: {no_repeat_ngram_size}
apply_lemmatizer: False
use_nucleus_sampling: False


## Files of the tiny model (lynx-rs additions)
llm_path: "vicuna"
vision_encoder_path: "eva_vit.pth"
vision_config: {{patch_size: {patch_size}, embed_dim: {embed_dim}, depth: {depth}, num_heads: {num_heads}, mlp_ratio: {mlp_ratio}, qkv_bias: true, layer_norm_eps: 1.0e-6}}
"""


def write_yaml(path, values):
    with open(path, "w") as f:
        f.write(YAML_TEMPLATE.format(**values))
