"""Write the reference outputs of the tiny Lynx fixtures (fixtures/tiny/reference/).

Per-component tensors (preprocessing, position-embedding interpolation, ViT, resampler,
LLM logits) go to one safetensors file; tokenization, prompts, generation cases and the
expected prediction files are JSON. Field meanings are in tools/README.md.
"""

import json
import os
import platform

import numpy as np
import PIL
import sentencepiece
import tokenizers
import torch
import torchvision
import transformers
from PIL import Image
from safetensors.torch import save_file

import fixture_assets as A
import lynx_ref as R
from fixture_config import BOS, EOS, IMAGE_RES, MEAN, PROMPT, SETTINGS, STD, TOKENIZER_TEXTS, TRAINED, VIT

RESIZE_SIZES = [(37, 23), (131, 97), (56, 84)]


def stem(name):
    return os.path.splitext(name)[0]


def media_tensors(model, paths, tensors):
    tf = R.eval_transform(IMAGE_RES, MEAN, STD)
    for name, *_ in A.IMAGE_SPECS:
        img = Image.open(paths[name]).convert("RGB")
        tensors[f"decoded.{stem(name)}"] = torch.from_numpy(np.array(img))
        pixels = tf(img)
        R.check_close(f"manual preprocessing of {name}", pixels, R.manual_preprocess(img, IMAGE_RES, MEAN, STD), 1e-6)
        tensors[f"pixels.{stem(name)}"] = pixels
    for name in ("img_a.jpg", "img_b.png"):
        img = Image.open(paths[name]).convert("RGB")
        for w, h in RESIZE_SIZES:
            tensors[f"resize.{stem(name)}.{w}x{h}"] = torch.from_numpy(np.array(img.resize((w, h), Image.BICUBIC)))
    for name, *_ in A.VIDEO_SPECS:
        pixels, _ = R.load_media(paths, [{"video": name}], "video", IMAGE_RES, MEAN, STD, TRAINED["num_frames"])
        tensors[f"pixels.{stem(name)}"] = pixels[0]

    g = torch.Generator().manual_seed(7)
    src = torch.randn((1, 10, VIT["embed_dim"]), generator=g)
    tensors["interp.src"] = src
    tensors["interp.grid4"] = R.interpolate_pos_embed(src, 4)
    tensors["interp.grid5"] = R.interpolate_pos_embed(src, 5)

    vit = model.vision_encoder
    tensors["vit.pos_embed"] = vit.pos_embed.detach().clone()
    vit_out = vit(tensors["pixels.img_a"][None])
    tensors["vit.out.img_a"] = vit_out
    tensors["bridge.out.img_a"] = model.bridge(vit_out)
    video = tensors["pixels.vid7"][None]
    tensors["vit.out.vid7"] = vit(video[0])
    tensors["media.vid7"] = model.media_tokens(video)
    tensors["bridge.out.vid7"] = model.bridge(tensors["media.vid7"])


def llm_tensors(model, tok, prompts, tensors):
    llm = model.LLM
    vocab = tok.pad_token_id
    tensors["llm.embed_pad_row"] = llm.model.embed_tokens.weight[vocab].clone()
    tensors["llm.lm_head_pad_row"] = llm.lm_head.weight[vocab].clone()
    p = prompts["image:1"]
    ids = torch.tensor([p["input_ids"]])
    pixels = tensors["pixels.img_a"][None]
    embeds, mask = model.inputs(pixels, ids, torch.ones_like(ids))
    tensors["embeds.img_q1"] = embeds
    text_ids = torch.tensor([[BOS] + tok.sp_model.encode(R.prompt_text(PROMPT, "what is this?", True))])
    tensors["llm.text_ids"] = text_ids[0]
    tensors["llm.text_logits"] = llm(input_ids=text_ids, use_cache=False).logits[0]
    saved = list(llm.model.layers)
    R.remove_adapters(llm)
    tensors["llm.text_logits_no_adapter"] = llm(input_ids=text_ids, use_cache=False).logits[0]
    for i, layer in enumerate(saved):
        llm.model.layers[i] = layer


def tokenization_record(tok, fast, prompts):
    sp = tok.sp_model
    zero = [sp.id_to_piece(i) for i in range(sp.get_piece_size())
            if sp.get_score(i) == 0.0 and not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i))]
    texts = []
    for text in TOKENIZER_TEXTS + [p["text"] for p in prompts.values()]:
        slow = sp.encode(text)
        fast_ids = fast(text, add_special_tokens=False)["input_ids"]
        texts.append(dict(text=text, slow_ids=slow, slow_pieces=[sp.id_to_piece(i) for i in slow],
                          fast_ids=fast_ids, fast_pieces=fast.convert_ids_to_tokens(fast_ids),
                          agree=slow == fast_ids, slow_decoded=sp.decode(slow)))
    pad = tok.pad_token_id
    snowman = list("\u2603".encode("utf-8"))
    decode_ids = [
        [BOS] + sp.encode("what is in the image?") + [EOS, pad, pad],
        [pad, pad, BOS] + sp.encode("caf\u00e9 \u2603 ok") + [EOS],
        sp.encode("a") + [0] + sp.encode("b"),
        [3 + b for b in snowman[:2]] + sp.encode("x"),
        [3 + b for b in snowman] + [EOS],
        sp.encode("  spaced   out "),
    ]
    decodes = [dict(ids=ids, skip_special=tok.decode(ids, skip_special_tokens=True),
                    keep_special=tok.decode(ids, skip_special_tokens=False),
                    sp_decode=sp.decode([i for i in ids if i < pad]))
               for ids in decode_ids]
    return dict(vocab_size=sp.get_piece_size(), pad_id=pad, pad_token="[PAD]", unk_id=0, bos_id=BOS, eos_id=EOS,
                zero_score_pieces=zero, texts=texts, decode=decodes)


def write_records(out, model, tok, fast, paths, cases, gen_tensors, prompts, frame_ids, meta):
    ref = os.path.join(out, "reference")
    os.makedirs(ref, exist_ok=True)
    tensors = dict(gen_tensors)
    with torch.no_grad():
        media_tensors(model, paths, tensors)
        llm_tensors(model, tok, prompts, tensors)
    for k, v in tensors.items():
        if v.is_floating_point():
            assert torch.isfinite(v).all(), k
            tensors[k] = v.float().contiguous()
        else:
            tensors[k] = v.contiguous()
    for k in [k for k in tensors if k.startswith("logits.")]:
        assert tensors[k].std(dim=-1).min() > 0.5, k
    save_file(dict(sorted(tensors.items())), os.path.join(ref, "tensors.safetensors"))

    def dump(name, obj):
        with open(os.path.join(ref, name), "w") as f:
            json.dump(obj, f, indent=1, ensure_ascii=False)
            f.write("\n")

    dump("tokenization.json", tokenization_record(tok, fast, prompts))
    dump("cases.json", dict(prompt=PROMPT, settings=SETTINGS, frame_ids=frame_ids, prompts=prompts, cases=cases))
    by_name = {c["name"]: c for c in cases}
    for media, case in (("images", "img_batch_beam"), ("videos", "vid_batch_beam")):
        c = by_name[case]
        with open(os.path.join(ref, f"predictions_{media}.jsonl"), "w") as f:
            for idx, text, new in zip(c["indices"], c["texts"], c["new_tokens"]):
                f.write(json.dumps({"index": idx, "text_output": text, "token_ids": new}) + "\n")
    versions = dict(python=platform.python_version(), torch=torch.__version__, torchvision=torchvision.__version__,
                    transformers=transformers.__version__, tokenizers=tokenizers.__version__,
                    sentencepiece=sentencepiece.__version__, pillow=PIL.__version__, numpy=np.__version__)
    files = {}
    for d, _, fs in os.walk(out):
        for f in fs:
            p = os.path.join(d, f)
            files[os.path.relpath(p, out)] = os.path.getsize(p)
    files["reference/manifest.json"] = None
    dump("manifest.json", dict(meta, versions=versions, vit=VIT, trained=TRAINED, image_res=IMAGE_RES,
                               tensors={k: [str(v.dtype).replace("torch.", ""), list(v.shape)]
                                        for k, v in sorted(tensors.items())},
                               files=dict(sorted(files.items()))))
