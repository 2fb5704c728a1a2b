"""PyTorch side of `lynx bench train` (`tools/bench_reference.py train ...`): one Lynx training
update (paper 2.3/2.4: bridge, adapters and frame positions trained, ViT and LLM frozen) in the
reference modules of tools/lynx_ref.py, on the micro-batches and weights the Rust run used, timed
the same way. See the docstring of tools/bench_reference.py.
"""

import argparse
import json
import os
import platform
import sys
import time

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

import lynx_ref as R
from bench_reference import mem_mib, stats


def is_trainable(name, parts):
    """crates/lynx/src/train/params.rs `is_trainable`, on the checkpoint names."""
    rules = {
        "bridge": lambda n: n.startswith("bridge."),
        "adapter": lambda n: ".output_adapter." in n,
        "frame_pos": lambda n: n == "absolute_frame_pos_embed",
        "vision_encoder": lambda n: n.startswith("vision_encoder."),
        "llm": lambda n: n.startswith("LLM.") and ".output_adapter." not in n,
    }
    return any(rules[p](name) for p in parts)


def checkpoint_name(name):
    """A parameter name of the reference modules as the checkpoint spells it (the adapted
    decoder layers wrap HF's layer as `.layer`)."""
    return name.replace(".layer.", ".", 1) if name.startswith("LLM.model.layers.") else name


def build_converted(model_dir, image_res):
    """The reference Lynx of a converted model folder (config.json + model.safetensors), f32."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    v, b, lc = cfg["vision"], cfg["bridge"], cfg["llm"]
    if (b.get("num_heads"), b.get("head_dim"), b.get("ff_mult")) != (8, 64, 4):
        sys.exit(f"{model_dir}: lynx_ref's resampler has 8 heads of 64 and ff_mult 4, not {b}")
    if lc.get("num_key_value_heads") not in (None, lc["num_attention_heads"]):
        sys.exit(f"{model_dir}: transformers 4.28's LLaMA has no grouped-query attention")
    if lc.get("rope_theta", 10000.0) != 10000.0:
        sys.exit(f"{model_dir}: transformers 4.28's LLaMA has rope_theta 10000 only")
    vit = R.EvaVit(image_res, v["patch_size"], v["embed_dim"], v["depth"], v["num_heads"],
                   v["mlp_ratio"], v["layer_norm_eps"])
    bridge = R.PerceiverResampler(b["media_dim"], b["latent_dim"], b["depth"], b["num_bridge_tokens"])
    llm = LlamaForCausalLM(LlamaConfig(
        vocab_size=lc["vocab_size"], hidden_size=lc["hidden_size"],
        intermediate_size=lc["intermediate_size"], num_hidden_layers=lc["num_hidden_layers"],
        num_attention_heads=lc["num_attention_heads"], rms_norm_eps=lc["rms_norm_eps"],
        max_position_embeddings=lc["max_position_embeddings"], bos_token_id=1, eos_token_id=2,
        tie_word_embeddings=lc.get("tie_word_embeddings", False)))
    if cfg["vocab_size"] == lc["vocab_size"] + 1:
        R.add_pad_token(llm)
    if cfg["adapter"]["use_adapter"]:
        freq = cfg["adapter"]["adapter_freq"]
        R.install_adapters(llm, {i: R.Adapter(lc["hidden_size"])
                                 for i in range(0, lc["num_hidden_layers"], freq)})
    frame_pos = (torch.nn.Parameter(torch.zeros(1, cfg["num_frames"], 1, v["embed_dim"]))
                 if cfg["add_frame_pos"] else None)
    model = R.TinyLynx(vit, bridge, llm, frame_pos)

    sd = load_file(os.path.join(model_dir, "model.safetensors"))
    prefix = "vision_encoder."
    vit.load_release_state_dict({k[len(prefix):]: t for k, t in sd.items() if k.startswith(prefix)})
    names = {checkpoint_name(n): n for n in model.state_dict()}
    mapped = {prefix + k: t for k, t in vit.state_dict().items()}
    for k, t in sd.items():
        if not k.startswith(prefix):
            if k not in names:
                sys.exit(f"{model_dir}/model.safetensors: {k} is not a parameter of the reference model")
            mapped[names[k]] = t.float()
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    missing = [m for m in missing if not m.endswith("rotary_emb.inv_freq")]
    if missing or unexpected:
        sys.exit(f"{model_dir}: missing {missing}, unexpected {unexpected}")
    return model, b["num_bridge_tokens"]


def load_batches(path):
    """The micro-batches written by `lynx bench train --save-batch`."""
    t = load_file(path)
    out, k = [], 0
    while f"{k}.ids" in t:
        out.append({name[len(f"{k}."):]: v for name, v in t.items() if name.startswith(f"{k}.")})
        k += 1
    if not out:
        sys.exit(f"{path}: no micro-batch (no 0.ids)")
    return out


def batch_loss(model, b, num_bridge, smoothing):
    """crates/lynx/src/train/trainer.rs `batch_loss`: bridge tokens (zeros, masked, for rows
    without media) ++ text embeddings through the LLM; mean next-token loss at the targets."""
    ids, text_mask = b["ids"], b["text_mask"]
    rows = [None] * ids.shape[0]
    for kind in ("image", "video"):
        if f"{kind}s" in b:
            tokens = model.bridge(model.media_tokens(b[f"{kind}s"]))
            for k, row in enumerate(b[f"{kind}_rows"].tolist()):
                rows[row] = tokens[k]
    hidden = model.LLM.config.hidden_size
    zeros = torch.zeros(num_bridge, hidden)
    bridge = torch.stack([r if r is not None else zeros for r in rows])
    bridge_mask = torch.tensor([[int(r is not None)] * num_bridge for r in rows], dtype=torch.long)
    embeds = torch.cat([bridge, model.LLM.model.embed_tokens(ids)], dim=1)
    mask = torch.cat([bridge_mask, text_mask], dim=1)
    out = model.LLM.model(inputs_embeds=embeds, attention_mask=mask,
                          position_ids=R.position_ids_from_mask(mask), use_cache=False)
    h = out.last_hidden_state
    bsz, seq, dim = h.shape
    targets = b["targets"]
    idx = targets[:, 0] * seq + num_bridge + targets[:, 1]
    logp = F.log_softmax(model.LLM.lm_head(h.reshape(bsz * seq, dim)[idx]), dim=-1)
    nll = -logp.gather(1, b["labels"].unsqueeze(1)).squeeze(1)
    if smoothing > 0:
        nll = nll * (1.0 - smoothing) + (-logp.mean(dim=-1)) * smoothing
    return nll.mean()


def main(argv):
    ap = argparse.ArgumentParser(prog="bench_reference.py train",
                                 description="PyTorch timing of `lynx bench train`'s updates")
    ap.add_argument("--like", required=True,
                    help="the JSON report of `lynx bench train --fixed-batch --save-batch B --json`")
    ap.add_argument("--batch-file", default=None, help="default: the report's --save-batch")
    ap.add_argument("--model", default=None, help="converted model folder (default: model.dir)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    with open(args.like) as f:
        rust = json.load(f)
    cfg = rust["train_config"]
    if cfg["stage"] not in ("pretrain", "finetune"):
        sys.exit(f"{args.like}: stage {cfg['stage']} is not a Lynx stage")
    batch_file = args.batch_file or rust["options"]["save_batch"]
    model_dir = args.model or cfg["model"]["dir"]
    if not batch_file or not model_dir:
        sys.exit("need the saved batch (--save-batch in the Rust run) and a converted model.dir")
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = load_batches(batch_file)
    media = [b[k] for b in batches for k in ("images", "videos") if k in b]
    image_res = media[0].shape[-1] if media else cfg["image_res"]
    model, num_bridge = build_converted(model_dir, image_res)
    named = []
    for name, p in model.named_parameters():
        p.requires_grad_(is_trainable(checkpoint_name(name), cfg["train_parts"]))
        if p.requires_grad:
            named.append((checkpoint_name(name), p))
    decay = [p for n, p in named if p.dim() >= 2 and not any(s in n for s in cfg["no_decay"])]
    rest = [p for n, p in named if not (p.dim() >= 2 and not any(s in n for s in cfg["no_decay"]))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg["weight_decay"]},
                             {"params": rest, "weight_decay": 0.0}],
                            lr=cfg["lr"], betas=tuple(cfg["betas"]), eps=cfg["eps"], foreach=False)
    params = [p for _, p in named]
    model_rss = mem_mib("VmRSS")
    tokens = sum(int(b["text_mask"].sum()) + b["ids"].shape[0] * num_bridge for b in batches)
    supervised = sum(b["targets"].shape[0] for b in batches)
    steps = []
    for i, rs in enumerate(rust["steps"]):
        c = time.process_time()
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        losses = []
        for b in batches:
            loss = batch_loss(model, b, num_bridge, cfg["label_smoothing"])
            (loss / len(batches)).backward()
            losses.append(loss.item())
        clip = cfg["clip_grad_norm"]
        norm = (torch.nn.utils.clip_grad_norm_(params, clip) if clip is not None else
                torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None])))
        for g in opt.param_groups:
            g["lr"] = rs["lr"]
        opt.step()
        ms = (time.perf_counter() - t) * 1e3
        cpu = (time.process_time() - c) * 1e3
        steps.append(dict(step=i + 1, warmup=rs["warmup"], loss=sum(losses) / len(losses), lr=rs["lr"],
                          grad_norm=float(norm), step_ms=ms, step_cpu_ms=cpu, tokens=tokens,
                          supervised_tokens=supervised))
        print(f"\rupdate {i + 1}/{len(rust['steps'])}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    timed = [s for s in steps if not s["warmup"]]
    fixed = rust["options"]["fixed_batch"]
    pairs = list(zip(rust["steps"], steps)) if fixed else [(rust["steps"][0], steps[0])]
    report = dict(
        implementation=f"PyTorch {torch.__version__} + transformers {transformers.__version__} "
                       f"(Python {platform.python_version()})",
        mode="train", model=model_dir, batch_file=batch_file, device="cpu", dtype="f32",
        threads=torch.get_num_threads(), trainable_parameters=sum(p.numel() for p in params),
        options=dict(steps=len(timed), warmup=len(steps) - len(timed), fixed_batch=True),
        step_ms=stats(s["step_ms"] for s in timed), step_cpu_ms=stats(s["step_cpu_ms"] for s in timed),
        tokens_per_s=stats(tokens / (s["step_ms"] / 1e3) for s in timed),
        supervised_tokens_per_s=stats(supervised / (s["step_ms"] / 1e3) for s in timed),
        peak_rss_mib=mem_mib("VmHWM"), model_rss_mib=model_rss,
        agreement=dict(compared_updates=len(pairs),
                       max_abs_loss_diff=max(abs(r["loss"] - p["loss"]) for r, p in pairs),
                       max_rel_grad_norm_diff=max(abs(r["grad_norm"] - p["grad_norm"]) / max(abs(p["grad_norm"]), 1e-12)
                                                  for r, p in pairs)),
        steps=steps,
    )
    print(side_by_side(rust, report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")


def side_by_side(rust, torch_report):
    """A Markdown table: the Rust update's model time (compute) next to PyTorch's update."""
    def cell(st, d):
        if st is None:
            return "-"
        return f"{st['mean']:.{d}f} / {st['median']:.{d}f} ({st['min']:.{d}f}–{st['max']:.{d}f})"

    t = torch_report
    ag = t["agreement"]
    rows = [
        ("fwd + bwd + clip + AdamW, ms", cell(rust.get("compute_ms"), 1), cell(t["step_ms"], 1)),
        ("… CPU time ms (all threads)", cell(rust.get("compute_cpu_ms"), 1), cell(t["step_cpu_ms"], 1)),
        ("whole update incl. data, ms", cell(rust["step_ms"], 1), "-"),
        ("tokens/s (text + bridge)", cell(rust["tokens_per_s"], 0), cell(t["tokens_per_s"], 0)),
        ("supervised tokens/s", cell(rust.get("supervised_tokens_per_s"), 0), cell(t["supervised_tokens_per_s"], 0)),
        ("trainable parameters", str(rust["trainable_parameters"]), str(t["trainable_parameters"])),
        ("peak RSS MiB", f"{rust['peak_rss_mib']:.0f}", f"{t['peak_rss_mib']:.0f}"),
        ("threads", str(rust["threads"]), str(t["threads"])),
    ]
    out = ["| mean / median (min–max) | lynx-rs | PyTorch |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    out.append(f"\nloss agreement over {ag['compared_updates']} update(s): max |Δloss| "
               f"{ag['max_abs_loss_diff']:.2e}, max relative Δ grad norm {ag['max_rel_grad_norm_diff']:.2e}")
    return "\n".join(out)
