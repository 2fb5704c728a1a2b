"""Optional cross-check: run the official Lynx code (bytedance/lynx-llm) on fixtures/tiny.

The official modules are imported from a checkout given with --official (never copied
here). Two changes are patched in at run time: the EVA ViT factory builds the tiny sizes
of lynx.yaml's vision_config instead of ViT-g, and frame sampling uses the release's
deterministic branch (its eval dataset samples randomly). Everything else - checkpoint
loading (pos_embed interpolation, qkv split, [PAD] rows, `model.` prefixes), the eval
dataset (preprocessing, prompt, truncation, left padding), LynxBase.generate and
generate.py's evaluation loop - is the release's own code.

Needs, besides make_fixtures.py's packages: timm==0.6.13, einops, einops_exts, ruamel.yaml
(e.g. `pip install --target /tmp/offdeps --no-deps ...` and pass --deps /tmp/offdeps).

    python tools/check_against_official.py --official /path/to/lynx-llm [--deps DIR]
"""

import argparse
import json
import os
import sys
import tempfile

import torch
import yaml
from safetensors.torch import load_file


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", required=True, help="checkout of bytedance/lynx-llm")
    parser.add_argument("--deps", default=None, help="extra site dir with timm/einops/einops_exts/ruamel")
    parser.add_argument("--fixtures", default=os.path.join(root, "fixtures", "tiny"))
    args = parser.parse_args()
    fx = os.path.abspath(args.fixtures)
    if args.deps:
        sys.path.insert(0, args.deps)
    sys.path.insert(0, os.path.abspath(args.official))
    torch.set_num_threads(1)

    # The release opens data/vicuna-7b, data/eva_vit_g.pth and annotation media relative to
    # the working directory: give it a scratch directory of links.
    work = tempfile.mkdtemp(prefix="lynx-official-")
    os.makedirs(os.path.join(work, "data"))
    links = {"data/vicuna-7b": "vicuna", "data/eva_vit_g.pth": "eva_vit.pth", "data/images": "data/images",
             "data/videos": "data/videos", "data/ann_images.jsonl": "data/ann_images.jsonl",
             "data/ann_videos.jsonl": "data/ann_videos.jsonl"}
    for dst, src in links.items():
        os.symlink(os.path.join(fx, src), os.path.join(work, dst))
    os.chdir(work)

    import dataset.eval_datasets as official_eval
    import dataset.utils as official_utils
    import models.vits.eva_vit as official_vit
    from dataset import create_dataset, create_loader
    from generate import evaluation
    from models.lynx import LynxBase

    with open(os.path.join(fx, "lynx.yaml")) as f:
        config = yaml.safe_load(f)
    vc = config["vision_config"]
    release_vit = official_vit.VisionTransformer

    def tiny_vit(**kwargs):
        kwargs.update(embed_dim=vc["embed_dim"], depth=vc["depth"], num_heads=vc["num_heads"],
                      mlp_ratio=vc["mlp_ratio"], patch_size=vc["patch_size"])
        return release_vit(**kwargs)

    official_vit.VisionTransformer = tiny_vit
    official_eval.sample_frame_ids = lambda n, s, training: official_utils.sample_frame_ids(n, s, False)

    config["checkpoint"] = os.path.join(fx, "finetune_lynx.pt")
    model = LynxBase(config=config, freeze_vit=True, freeze_llm=True, load_bridge=False).eval()
    ref = load_file(os.path.join(fx, "reference", "tensors.safetensors"))
    with open(os.path.join(fx, "reference", "cases.json")) as f:
        cases = json.load(f)
    failures = []

    def close(name, got, want, tol=2e-4):
        err = (got.float() - want.float()).abs().max().item()
        status = "ok" if err <= tol else "MISMATCH"
        if err > tol:
            failures.append(name)
        print(f"{status:8} {name}: max abs diff {err:.2e}")

    # Weights and [PAD] rows.
    close("vit.pos_embed", model.vision_encoder.pos_embed.data, ref["vit.pos_embed"], 0)
    close("llm.embed_pad_row", model.LLM.model.embed_tokens.weight[-1], ref["llm.embed_pad_row"], 0)
    close("llm.lm_head_pad_row", model.LLM.lm_head.weight[-1], ref["llm.lm_head_pad_row"], 0)
    prefixed = dict(config, checkpoint=os.path.join(fx, "finetune_lynx_prefixed.pt"))
    other = LynxBase(config=prefixed, freeze_vit=True, freeze_llm=True, load_bridge=False).eval()
    same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
    print(f"{'ok' if same else 'MISMATCH':8} finetune_lynx_prefixed.pt loads the same weights")
    if not same:
        failures.append("prefixed checkpoint")

    with torch.no_grad():
        for media, key, ann in (("image", "image", "ann_images.jsonl"), ("video", "video", "ann_videos.jsonl")):
            cfg = dict(config, test_files=[f"data/{ann}"], vision_prompt_dict=key)
            ds = create_dataset("eval", cfg)
            tag = "img" if media == "image" else "vid"
            for i in range(len(ds)):
                idx, pixels, ids = ds[i]
                prompt = cases["prompts"][f"{media}:{idx}"]
                if ids != prompt["input_ids"]:
                    failures.append(f"input_ids {media}:{idx}")
                    print(f"MISMATCH input_ids {media}:{idx}: {ids} vs {prompt['input_ids']}")
                name = os.path.splitext(os.path.basename(ds.data[i][key]))[0]
                pixels = torch.stack(pixels) if isinstance(pixels, list) else pixels
                close(f"pixels.{name}", pixels, ref[f"pixels.{name}"], 1e-6)
            loader = create_loader([ds], batch_size=[cfg["batch_size_test"]], num_workers=[0],
                                   collate_fns=[ds.collate_fn])[0]
            for _, vision, input_ids, atts in loader:
                emb, vatts = model.get_vision_embeds(vision)
                feats, fatts = model.bridge(vision_embeds=emb, vision_atts=vatts)
                if media == "image":
                    close("vit.out.img_a", emb[:1], ref["vit.out.img_a"], 1e-4)
                    close("bridge.out.img_a", feats[:1], ref["bridge.out.img_a"], 1e-4)
                else:
                    close("media.vid7", emb[:1], ref["media.vid7"], 1e-4)
                    close("bridge.out.vid7", feats[:1], ref["bridge.out.vid7"], 1e-4)
                embeds = torch.cat([feats, model.embed_tokens(input_ids)], dim=1)
                mask = torch.cat([fatts, atts], dim=1)
                pos = mask.long().cumsum(-1) - 1
                pos.masked_fill_(mask == 0, 1)
                logits = model.LLM(inputs_embeds=embeds, attention_mask=mask, position_ids=pos).logits[:, -1]
                close(f"logits.{tag}_batch", logits, ref[f"logits.{tag}_batch"], 1e-4)
                rows = {int(a["index"]): r for r, a in enumerate(ds.data)}
                for case in cases["cases"]:
                    if case["media"] != media:
                        continue
                    sel = [rows[j] for j in case["indices"]]
                    ids = torch.tensor(case["input_ids"])
                    # What LynxBase.generate does before calling HF generate.
                    emb, vatts = model.get_vision_embeds(vision[sel])
                    feats, fatts = model.bridge(vision_embeds=emb, vision_atts=vatts)
                    embeds = torch.cat([feats, model.embed_tokens(ids)], dim=1)
                    mask = torch.cat([fatts, torch.tensor(case["text_attention_mask"])], dim=1)
                    out = model.LLM.generate(inputs_embeds=embeds, attention_mask=mask, **case["generate_kwargs"])
                    if out.tolist() != case["sequences"]:
                        failures.append(case["name"])
                        print(f"MISMATCH {case['name']}: {out.tolist()} vs {case['sequences']}")
                    else:
                        print(f"ok       {case['name']}")
            preds = evaluation(model, loader, "cpu", cfg)
            with open(os.path.join(fx, "reference", f"predictions_{media}s.jsonl")) as f:
                want = [json.loads(line) for line in f]
            got = [{"index": int(p["index"]), "text_output": p["text_output"]} for p in preds]
            if got != [{"index": w["index"], "text_output": w["text_output"]} for w in want]:
                failures.append(f"predictions_{media}s")
                print(f"MISMATCH predictions_{media}s.jsonl: {got}")
            else:
                print(f"ok       predictions_{media}s.jsonl (generate.py evaluation loop)")
    print("FAILED: " + ", ".join(failures) if failures else "all checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
