"""Writes fixtures/train/adamw_torch.json: the reference numbers for lynx's AdamW
(crates/lynx/src/train/optim.rs), computed with torch.optim.AdamW and
torch.nn.utils.clip_grad_norm_ (PyTorch 2.2, CPU, float32).

Run from the repository root: /work/pyenv/bin/python tools/make_train_fixtures.py
"""
import json
import os

import torch

OUT = os.path.join("fixtures", "train", "adamw_torch.json")

# Names follow the release's checkpoint keys so the decay rule is tested on real-looking names.
SHAPES = {
    "bridge.layers.0.0.to_q.weight": [3, 4],  # rank 2 -> decay
    "bridge.layers.0.0.norm_media.bias": [4],  # rank 1 -> no decay
    "bridge.latents": [2, 3],  # rank 2 but in the configured no-decay list
    "LLM.model.layers.0.output_adapter.scaling": [1],  # rank 1 -> no decay
    "absolute_frame_pos_embed": [1, 2, 1, 3],  # rank 4 -> decay; no grad on some steps
}
NO_DECAY = ["norm", "bias", "latents"]
LR = [1e-3, 2e-3, 1.5e-3, 5e-4, 1e-4, 1e-3]
GRAD_SCALE = [3.0, 0.05, 1.0, 0.1, 5.0, 0.2]  # some steps are clipped, some are not
FRAME_POS_GRAD = [True, False, True, True, False, True]
BETAS = (0.9, 0.98)
EPS = 1e-6
WEIGHT_DECAY = 0.1
MAX_NORM = 1.0
MICRO_BATCHES = 2


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def decays(name, shape):
    return len(shape) >= 2 and not any(p in name for p in NO_DECAY)


def main():
    gen = torch.Generator().manual_seed(20230705)
    params = {n: torch.randn(s, generator=gen).requires_grad_() for n, s in SHAPES.items()}
    init = {n: flat(p) for n, p in params.items()}
    groups = [
        {"params": [p for n, p in params.items() if decays(n, SHAPES[n])], "weight_decay": WEIGHT_DECAY},
        {"params": [p for n, p in params.items() if not decays(n, SHAPES[n])], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=LR[0], betas=BETAS, eps=EPS, foreach=False)
    steps = []
    for i, lr in enumerate(LR):
        micro = []
        for _ in range(MICRO_BATCHES):
            micro.append(
                {
                    n: torch.randn(s, generator=gen) * GRAD_SCALE[i]
                    for n, s in SHAPES.items()
                    if n != "absolute_frame_pos_embed" or FRAME_POS_GRAD[i]
                }
            )
        for n, p in params.items():
            if n in micro[0]:
                p.grad = (micro[0][n] + micro[1][n]) * (1.0 / MICRO_BATCHES)
            else:
                p.grad = None
        with_grad = [p for p in params.values() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(with_grad, MAX_NORM)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        steps.append(
            {
                "lr": lr,
                "micro_grads": [{n: flat(g) for n, g in m.items()} for m in micro],
                "grad_norm": float(norm),
                "params": {n: flat(p) for n, p in params.items()},
            }
        )
    doc = {
        "torch": torch.__version__,
        "betas": list(BETAS),
        "eps": EPS,
        "weight_decay": WEIGHT_DECAY,
        "no_decay": NO_DECAY,
        "max_norm": MAX_NORM,
        "shapes": SHAPES,
        "init": init,
        "steps": steps,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
