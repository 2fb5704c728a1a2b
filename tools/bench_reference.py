#!/usr/bin/env python
"""PyTorch side of `lynx bench infer`: the same preset sizes with random weights, measured the
same way, so BENCHMARKS.md can put Rust and PyTorch side by side.

The model is tools/lynx_ref.py's reference Lynx (EVA ViT, Perceiver resampler, HF transformers
4.28.1 LlamaForCausalLM with the adapters and the [PAD] row). Per iteration, as the Rust bench:
  vision   vision_encoder(pixels [B,3,R,R])                  -> ms per image
  bridge   bridge(vision tokens)                              -> ms per batch
  embed    embed_tokens(prompt ids) ++ bridge tokens, mask
  greedy   LLM.generate(inputs_embeds, attention_mask, max_new_tokens=N, greedy, EOS disabled);
           forward hooks time the model calls: the first is the prefill, the others decode steps
  beam     the same with num_beams=K (when K > 1)
Prefill tokens/s = B * (32 + T) / prefill time; decode tokens/s = B * steps / decode time;
end-to-end ms/answer = (vision + bridge + embed + generate) / B. Vision and end to end are also
given in process CPU time (time.process_time), which other programs on the machine do not inflate. Statistics: median, min, max over
the timed iterations (statistics.median). Peak memory: VmHWM of /proc/self/status.

Run: /work/pyenv/bin/python tools/bench_reference.py --preset small --threads 1 --json out.json
     /work/pyenv/bin/python tools/bench_reference.py table rust.json=Rust torch.json=PyTorch
     (a Markdown table of reports side by side; `=label` names a column)

Training (`train` mode, beside `lynx bench train`): the converted model of a `lynx train` config
(model.dir) in the reference modules, the same parts trainable (train_parts: bridge, adapters,
frame positions; ViT and LLM frozen with requires_grad=False), the micro-batches that
`lynx bench train --fixed-batch --save-batch B` used, the reply-token loss of
crates/lynx/src/train/trainer.rs (hidden states at the targets -> lm_head -> log-softmax ->
NLL, label smoothing), torch.optim.AdamW (decay on rank >= 2 tensors outside no_decay),
clip_grad_norm_, and the Rust run's learning rate per update. Each update (zero_grad, forward,
backward, clip, step) is timed in wall and process CPU time; the losses are compared with the
Rust run's (the same batch and weights give the same first loss):
     lynx bench train --config examples/train-smoke/stage2.yaml --fixed-batch \
         --save-batch /tmp/batch.safetensors --json rust.json
     /work/pyenv/bin/python tools/bench_reference.py train --like rust.json --json torch.json
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch
import transformers
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lynx_ref as R  # noqa: E402

# The sizes of crates/lynx/src/bench/presets.rs (documented in BENCHMARKS.md).
# vit: (embed_dim, depth, heads); llm: (hidden, intermediate, layers, heads, vocab, max_pos)
PRESETS = {
    "tiny": dict(image_res=56, vit=(32, 2, 4), llm=(64, 172, 4, 4, 400, 128)),
    "small": dict(image_res=224, vit=(384, 6, 6), llm=(512, 1376, 8, 8, 32000, 2048)),
    "base": dict(image_res=224, vit=(768, 12, 12), llm=(1024, 2752, 12, 16, 32000, 2048)),
}
PATCH, MLP_RATIO, BRIDGE_DEPTH, BRIDGE_TOKENS, ADAPTER_FREQ, NUM_FRAMES = 14, 4.3637, 3, 32, 2, 5


def init_random(module, std=0.02):
    """As the Rust presets: vector `weight`s and `scaling` 1, vector biases 0, the rest N(0, std²)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "scaling" or (p.dim() == 1 and leaf == "weight"):
                p.fill_(1.0)
            elif p.dim() == 1 and leaf.endswith("bias"):
                p.zero_()
            else:
                p.normal_(0.0, std)


def build(preset, image_res):
    spec = PRESETS[preset]
    w, depth, heads = spec["vit"]
    hidden, inter, layers, lheads, vocab, max_pos = spec["llm"]
    vit = R.EvaVit(image_res, PATCH, w, depth, heads, MLP_RATIO, 1e-6)
    bridge = R.PerceiverResampler(w, hidden, BRIDGE_DEPTH, BRIDGE_TOKENS)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
                      num_hidden_layers=layers, num_attention_heads=lheads, rms_norm_eps=1e-6,
                      max_position_embeddings=max_pos, bos_token_id=1, eos_token_id=2,
                      tie_word_embeddings=False)
    llm = LlamaForCausalLM(cfg)
    pad = R.add_pad_token(llm)
    R.install_adapters(llm, {i: R.Adapter(hidden) for i in range(0, layers, ADAPTER_FREQ)})
    frame_pos = torch.nn.Parameter(torch.zeros(1, NUM_FRAMES, 1, w))
    model = R.TinyLynx(vit, bridge, llm, frame_pos)
    init_random(model)
    model.eval()
    # EOS off: every answer has exactly max_new_tokens tokens, as in the Rust bench.
    llm.generation_config.eos_token_id = None
    llm.config.eos_token_id = None
    params = {k: sum(p.numel() for n, p in model.named_parameters() if n.split(".")[0] == k)
              for k in ("vision_encoder", "bridge", "LLM", "absolute_frame_pos_embed")}
    return model, pad, params


class CallTimer:
    """Forward hooks on the LLM: the time of every model call inside generate."""

    def __init__(self, module):
        self.calls = []
        self._t = None
        module.register_forward_pre_hook(self._pre)
        module.register_forward_hook(self._post)

    def _pre(self, *_):
        self._t = time.perf_counter()

    def _post(self, *_):
        self.calls.append((time.perf_counter() - self._t) * 1e3)


def run_generate(model, timer, embeds, mask, new_tokens, num_beams, pad):
    timer.calls = []
    c = time.process_time()
    t = time.perf_counter()
    out = model.LLM.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=new_tokens,
                             min_length=0, num_beams=num_beams, do_sample=False, length_penalty=1.0,
                             no_repeat_ngram_size=0, repetition_penalty=1.0, pad_token_id=pad)
    total = (time.perf_counter() - t) * 1e3
    cpu = (time.process_time() - c) * 1e3
    if out.shape[1] != 1 + new_tokens:
        raise RuntimeError(f"generate returned {out.shape[1] - 1} tokens, expected {new_tokens}")
    return dict(prefill_ms=timer.calls[0], decode_ms=sum(timer.calls[1:]),
                decode_steps=len(timer.calls) - 1, generate_ms=total, generate_cpu_ms=cpu)


def iteration(model, timer, pixels, ids, args, pad):
    c = time.process_time()
    t = time.perf_counter()
    media = model.media_tokens(pixels)
    vision_ms = (time.perf_counter() - t) * 1e3
    vision_cpu_ms = (time.process_time() - c) * 1e3
    t = time.perf_counter()
    tokens = model.bridge(media)
    bridge_ms = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    text = model.LLM.model.embed_tokens(ids)
    embeds = torch.cat([tokens, text], dim=1)
    mask = torch.ones(embeds.shape[:2], dtype=torch.long)
    embed_ms = (time.perf_counter() - t) * 1e3
    media_cpu_ms = (time.process_time() - c) * 1e3
    it = dict(vision_ms=vision_ms, vision_cpu_ms=vision_cpu_ms, bridge_ms=bridge_ms, embed_ms=embed_ms,
              media_cpu_ms=media_cpu_ms,
              greedy=run_generate(model, timer, embeds, mask, args.new_tokens, 1, pad), beam=None)
    if args.num_beams > 1:
        it["beam"] = run_generate(model, timer, embeds, mask, args.new_tokens, args.num_beams, pad)
    return it


def stats(values):
    values = list(values)
    return dict(median=statistics.median(values), mean=statistics.fmean(values), min=min(values),
                max=max(values), n=len(values))


def decode_report(iters, key, num_beams, batch, llm_tokens):
    gens = [(it, it[key]) for it in iters]
    return dict(
        num_beams=num_beams,
        prefill_tokens_per_s=stats(batch * llm_tokens / (g["prefill_ms"] / 1e3) for _, g in gens),
        decode_tokens_per_s=stats(batch * g["decode_steps"] / (g["decode_ms"] / 1e3) for _, g in gens),
        decode_step_ms=stats(g["decode_ms"] / max(g["decode_steps"], 1) for _, g in gens),
        e2e_ms_per_answer=stats((it["vision_ms"] + it["bridge_ms"] + it["embed_ms"] + g["generate_ms"]) / batch
                                for it, g in gens),
        e2e_cpu_ms_per_answer=stats((it["media_cpu_ms"] + g["generate_cpu_ms"]) / batch for it, g in gens),
    )


def mem_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return None


def fmt(st, digits):
    return f"{st['median']:.{digits}f} ({st['min']:.{digits}f}–{st['max']:.{digits}f})"


def render(r):
    o = r["options"]
    lines = [f"{r['implementation']} | model {r['model']} | cpu f32 | threads {r['threads']}",
             f"batch {o['batch']} | image {o['image_res']}px ({r['vision_tokens']} vision tokens) | prompt "
             f"{o['prompt_tokens']} + {BRIDGE_TOKENS} bridge tokens | {o['new_tokens']} new tokens | "
             f"{o['iters']} iters (+{o['warmup']} warm-up)"]
    rows = [("vision encoder ms/image", r["vision_ms_per_image"], 2), ("  (CPU time)", r["vision_cpu_ms_per_image"], 2),
            ("bridge ms (batch)", r["bridge_ms"], 2)]
    for d in [r["greedy"]] + ([r["beam"]] if r["beam"] else []):
        mode = f"beam {d['num_beams']}" if d["num_beams"] > 1 else "greedy"
        rows += [(f"prefill tokens/s ({mode})", d["prefill_tokens_per_s"], 1),
                 (f"decode tokens/s ({mode})", d["decode_tokens_per_s"], 1),
                 (f"decode ms/step ({mode})", d["decode_step_ms"], 2),
                 (f"end-to-end ms/answer ({mode})", d["e2e_ms_per_answer"], 1),
                 ("  (CPU time)", d["e2e_cpu_ms_per_answer"], 1)]
    lines += [f"  {name:<34} {fmt(st, dg)}" for name, st, dg in rows]
    lines.append(f"  {'peak RSS':<34} {r['peak_rss_mib']:.0f} MiB (after building the model: "
                 f"{r['model_rss_mib']:.0f} MiB)")
    return "\n".join(lines)


def table(paths):
    """A Markdown table of several JSON reports (Rust or PyTorch), one column each."""
    reports, heads = [], []
    for p in paths:
        path, _, label = p.partition("=")
        with open(path) as f:
            reports.append(json.load(f))
        heads.append(label or os.path.splitext(os.path.basename(path))[0])

    def cell(r, path, digits):
        v = r
        for key in path:
            v = v.get(key) if isinstance(v, dict) else None
        if v is None:
            return "-"
        return f"{v['median']:.{digits}f} ({v['min']:.{digits}f}–{v['max']:.{digits}f})"

    rows = [("vision encoder ms/image", ("vision_ms_per_image",), 1),
            ("… CPU time ms/image", ("vision_cpu_ms_per_image",), 1), ("bridge ms", ("bridge_ms",), 1)]
    for mode in ("greedy", "beam"):
        beams = next((r[mode]["num_beams"] for r in reports if r.get(mode)), None)
        if beams is None:
            continue
        label = "greedy" if mode == "greedy" else f"beam {beams}"
        rows += [(f"prefill tokens/s ({label})", (mode, "prefill_tokens_per_s"), 0),
                 (f"decode tokens/s ({label})", (mode, "decode_tokens_per_s"), 1),
                 (f"decode ms/step ({label})", (mode, "decode_step_ms"), 1),
                 (f"end-to-end ms/answer ({label})", (mode, "e2e_ms_per_answer"), 0),
                 (f"… CPU time ms/answer ({label})", (mode, "e2e_cpu_ms_per_answer"), 0)]
    out = ["| median (min–max) | " + " | ".join(heads) + " |", "|---" * (len(paths) + 1) + "|"]
    out += [f"| {name} | " + " | ".join(cell(r, path, d) for r in reports) + " |" for name, path, d in rows]
    out.append("| peak RSS MiB | " + " | ".join(f"{r['peak_rss_mib']:.0f}" for r in reports) + " |")
    out.append("| threads | " + " | ".join(str(r["threads"]) for r in reports) + " |")
    return "\n".join(out)


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "table":
        print(table(sys.argv[2:]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "train":
        import bench_train_reference
        bench_train_reference.main(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="`bench_reference.py table A.json[=label] B.json ...` prints a Markdown "
                                        "table of reports (from this script or `lynx bench infer --json`).")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--image-res", type=int, default=None)
    ap.add_argument("--prompt-tokens", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--num-beams", type=int, default=1)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the full report here")
    args = ap.parse_args()
    if args.new_tokens < 2 or min(args.batch, args.prompt_tokens, args.num_beams, args.iters) < 1:
        ap.error("batch, prompt-tokens, num-beams, iters must be >= 1 and new-tokens >= 2")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    res = args.image_res or PRESETS[args.preset]["image_res"]
    if res % PATCH:
        ap.error(f"--image-res {res} is not a multiple of {PATCH}")
    print(f"building the {args.preset} preset with random weights", file=sys.stderr)
    model, pad, params = build(args.preset, res)
    timer = CallTimer(model.LLM)
    model_rss = mem_mib("VmRSS")
    pixels = torch.rand(args.batch, 3, res, res) * 4.0 - 2.0
    ids = torch.randint(3, pad, (args.batch, args.prompt_tokens))
    iters = []
    with torch.inference_mode():
        for i in range(args.warmup + args.iters):
            it = iteration(model, timer, pixels, ids, args, pad)
            if i >= args.warmup:
                iters.append(it)
            print(f"\riteration {i + 1}/{args.warmup + args.iters}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    llm_tokens = BRIDGE_TOKENS + args.prompt_tokens
    report = dict(
        implementation=f"PyTorch {torch.__version__} + transformers {transformers.__version__} "
                       f"(Python {platform.python_version()})",
        model=args.preset,
        options=dict(batch=args.batch, image_res=res, prompt_tokens=args.prompt_tokens,
                     new_tokens=args.new_tokens, num_beams=args.num_beams, iters=args.iters,
                     warmup=args.warmup, seed=args.seed),
        device="cpu", dtype="f32", threads=torch.get_num_threads(), parameters=params,
        vision_tokens=1 + (res // PATCH) ** 2, llm_input_tokens=llm_tokens,
        vision_ms_per_image=stats(it["vision_ms"] / args.batch for it in iters),
        vision_cpu_ms_per_image=stats(it["vision_cpu_ms"] / args.batch for it in iters),
        bridge_ms=stats(it["bridge_ms"] for it in iters),
        greedy=decode_report(iters, "greedy", 1, args.batch, llm_tokens),
        beam=decode_report(iters, "beam", args.num_beams, args.batch, llm_tokens) if args.num_beams > 1 else None,
        peak_rss_mib=mem_mib("VmHWM"), model_rss_mib=model_rss, iterations=iters,
    )
    print(render(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
