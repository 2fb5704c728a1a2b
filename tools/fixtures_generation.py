#!/usr/bin/env python
"""Reference fixtures for lynx::generation (HF transformers 4.28.1 `generate` with `inputs_embeds`).

Writes to fixtures/generation/:
  model.safetensors, config.json  a tiny random LlamaForCausalLM (hidden 32, 2 layers, 4 heads, vocab 64)
  cases.json                      per case: generation parameters, inputs_embeds, left-padded attention
                                  mask, and HF's new tokens per returned sequence (placeholder and pads
                                  removed, EOS kept), plus beam sequence scores
  processors.json                 raw score rows, token histories and HF's output for every logits
                                  processor / warper the Rust code implements (-inf written as null)

Every generate case is checked for numerical robustness before it is kept: greedy arg-max gaps,
beam top-k gaps (around the 2*num_beams cut) and the beam-hypothesis comparisons (add / is_done) must
clear a margin, so float noise between torch and candle cannot flip a decision. Cases whose inputs
give a near-tie are re-drawn with the next seed. Some cases must also be sensitive to one HF rule:
re-run with a deliberately broken copy of that rule (VARIANTS), they must give other tokens.

Run: /work/pyenv/bin/python tools/fixtures_generation.py
"""

import inspect
import json
import math
import os
import sys
import textwrap

import torch
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.generation import beam_search as hf_beam
from transformers.generation import logits_process as lp

assert transformers.__version__ == "4.28.1", transformers.__version__

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "generation")
BOS, EOS, PAD = 1, 2, 0
VOCAB, HIDDEN = 64, 32
GAP = 2e-3  # absolute margin for score comparisons (log-probs / logits)
REL = 1e-4  # relative margin for length-normalised hypothesis scores


def build_model():
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
        rms_norm_eps=1e-6,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
        tie_word_embeddings=False,
    )
    torch.manual_seed(1234)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name == "lm_head.weight":
                # Peaked next-token distributions: logits with std ~3.
                p.copy_(0.55 * torch.randn_like(p))
            else:
                p.copy_(0.25 * torch.randn_like(p))
        # EOS should be reachable but not dominant: a weaker row.
        model.lm_head.weight[EOS] *= 0.5
    return cfg, model


class Probe:
    """Records decision margins while HF generates (wraps torch.argmax / torch.topk and BeamHypotheses)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.greedy_gaps = []  # per step: tensor [rows] of top1 - top2
        self.beam_gap_steps = []  # per step: list of per-group min gaps (None when group done)
        self.pending_topk = None
        self.hyp_margins = []

    def install(self):
        probe = self
        orig_argmax, orig_topk = torch.argmax, torch.topk
        self.impl = dict(
            process=hf_beam.BeamSearchScorer.process,
            add=hf_beam.BeamHypotheses.add,
            is_done=hf_beam.BeamHypotheses.is_done,
        )

        def argmax(x, dim=None, **kw):
            if x.dim() == 2 and dim == -1:
                top = orig_topk(x, 2, dim=-1).values
                probe.greedy_gaps.append((top[:, 0] - top[:, 1]).tolist())
            return orig_argmax(x, dim=dim, **kw)

        def topk(x, k, *args, **kw):
            if x.dim() == 2 and kw.get("dim") == 1:
                # beam search: the 2*num_beams candidates and the first one left out
                vals = orig_topk(x, min(k + 1, x.shape[1]), dim=1).values
                gaps = []
                for row in vals.tolist():
                    finite = [v for v in row if v != -math.inf]
                    gaps.append(min([a - b for a, b in zip(finite, finite[1:])], default=math.inf))
                probe.pending_topk = gaps
            elif x.dim() == 2 and k == 1:
                # TopKLogitsWarper(1): the kept token is the arg-max
                top = orig_topk(x, 2, dim=-1).values
                probe.greedy_gaps.append((top[:, 0] - top[:, 1]).tolist())
            return orig_topk(x, k, *args, **kw)

        def process(self, *args, **kw):
            gaps = probe.pending_topk
            if gaps is not None:
                probe.beam_gap_steps.append([None if d else g for d, g in zip(self._done.tolist(), gaps)])
                probe.pending_topk = None
            return probe.impl["process"](self, *args, **kw)

        def add(self, hyp, sum_logprobs, beam_indices=None):
            score = sum_logprobs / (hyp.shape[-1] ** self.length_penalty)
            if len(self) >= self.num_beams:
                probe.hyp_margins.append(abs(score - self.worst_score) / max(abs(score), 1e-9))
            return probe.impl["add"](self, hyp, sum_logprobs, beam_indices)

        def is_done(self, best_sum_logprobs, cur_len):
            if len(self) >= self.num_beams and self.early_stopping is False:
                high = best_sum_logprobs / cur_len**self.length_penalty
                probe.hyp_margins.append(abs(self.worst_score - high) / max(abs(high), 1e-9))
            return probe.impl["is_done"](self, best_sum_logprobs, cur_len)

        torch.argmax, torch.topk = argmax, topk
        hf_beam.BeamSearchScorer.process = process
        hf_beam.BeamHypotheses.add, hf_beam.BeamHypotheses.is_done = add, is_done


def variant(fn, old, new):
    """A copy of HF's function `fn` with `old` replaced by `new` in its source: a deliberately
    wrong beam search, used to prove that a case is sensitive to the HF rule it stands for."""
    src = textwrap.dedent(inspect.getsource(fn))
    assert old in src, (fn.__name__, old)
    ns = {}
    exec(src.replace(old, new), vars(hf_beam), ns)
    return ns[fn.__name__]


# Each variant breaks one rule; some case must give other tokens under it.
VARIANTS = {
    # the done test would use the length before the new token
    "done_len": (
        "is_done",
        lambda fn: variant(
            fn,
            "best_sum_logprobs / cur_len**self.length_penalty",
            "best_sum_logprobs / (cur_len - 1)**self.length_penalty",
        ),
    ),
    # the hypothesis length would count the EOS
    "hyp_len": (
        "add",
        lambda fn: variant(
            fn,
            "hyp.shape[-1] ** self.length_penalty",
            "(hyp.shape[-1] + 1) ** self.length_penalty",
        ),
    ),
}


def differs_under(model, probe, case, seed, name, new):
    key, make = VARIANTS[name]
    saved = probe.impl[key]
    probe.impl[key] = make(saved)
    try:
        other = run_case(model, probe, case, seed)[2]
    finally:
        probe.impl[key] = saved
    return other != new


def strip(seq):
    """HF sequence (placeholder first) -> new tokens, EOS kept, padding after EOS removed."""
    out = []
    for t in seq[1:]:
        out.append(t)
        if t == EOS:
            break
    return out


def make_inputs(seed, lengths):
    g = torch.Generator().manual_seed(seed)
    b, t = len(lengths), max(lengths)
    embeds = torch.randn(b, t, HIDDEN, generator=g)
    mask = torch.zeros(b, t, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, t - n :] = 1
        embeds[i, : t - n] = 0.0  # padding positions hold zeros (never attended)
    return embeds, mask


def run_case(model, probe, case, seed):
    embeds, mask = make_inputs(seed, case["lengths"])
    params = dict(case["params"])
    params.setdefault("num_beams", 1)
    params.setdefault("do_sample", False)
    probe.reset()
    with torch.no_grad():
        out = model.generate(
            inputs_embeds=embeds,
            attention_mask=mask,
            bos_token_id=BOS,
            eos_token_id=EOS,
            pad_token_id=PAD,
            return_dict_in_generate=True,
            output_scores=True,
            **params,
        )
    seqs = out.sequences.tolist()
    new = [strip(s) for s in seqs]
    margins = []
    if params["num_beams"] == 1:
        # Only steps where the row was still generating matter.
        for r, toks in enumerate(new):
            margins += [step[r] for step in probe.greedy_gaps[: len(toks)]]
    else:
        for step in probe.beam_gap_steps:
            margins += [g for g in step if g is not None]
    gap = min(margins, default=math.inf)
    hyp = min(probe.hyp_margins, default=math.inf)
    scores = out.sequences_scores.tolist() if params["num_beams"] > 1 else None
    return embeds, mask, new, scores, gap, hyp


CASES = [
    # name, lengths (left padded), generate kwargs, extra requirement
    dict(name="greedy", lengths=[5], params=dict(max_new_tokens=10)),
    dict(name="greedy_repetition_penalty", lengths=[4], params=dict(max_new_tokens=12, repetition_penalty=1.3)),
    dict(
        name="greedy_no_repeat_ngram_min_length",
        lengths=[5],
        params=dict(max_new_tokens=12, no_repeat_ngram_size=2, min_length=5),
    ),
    dict(name="beam3_lp-2", lengths=[5], params=dict(max_new_tokens=10, num_beams=3, length_penalty=-2.0)),
    dict(name="beam3_lp1", lengths=[5], params=dict(max_new_tokens=10, num_beams=3, length_penalty=1.0)),
    dict(name="beam3_lp0", lengths=[5], params=dict(max_new_tokens=10, num_beams=3, length_penalty=0.0)),
    dict(
        name="beam3_no_repeat_ngram",
        lengths=[4],
        params=dict(max_new_tokens=10, num_beams=3, length_penalty=1.0, no_repeat_ngram_size=2),
    ),
    dict(
        name="beam3_return3",
        lengths=[5],
        params=dict(max_new_tokens=8, num_beams=3, length_penalty=1.0, num_return_sequences=3),
    ),
    dict(name="batch_greedy", lengths=[6, 3, 5], params=dict(max_new_tokens=10)),
    dict(name="batch_beam3", lengths=[6, 3, 5], params=dict(max_new_tokens=10, num_beams=3, length_penalty=1.0)),
    dict(
        name="lynx_beam5",
        lengths=[6, 4],
        params=dict(
            max_new_tokens=10, num_beams=5, length_penalty=-2.0, min_length=2, no_repeat_ngram_size=2,
        ),
    ),
    dict(name="greedy_to_max_new_tokens", lengths=[5], params=dict(max_new_tokens=16), need="no_eos"),
    dict(name="sample_top_k1", lengths=[5], params=dict(max_new_tokens=10, do_sample=True, top_k=1)),
    # The EOS cases use a model whose EOS row of lm_head is 1.1 x the row of token 35 (stored in the
    # case): EOS wins wherever the model would say 35, so rows stop at varied steps.
    dict(name="eos_greedy_batch", lengths=[6, 3, 5], params=dict(max_new_tokens=12), need="eos", eos=True),
    dict(
        name="eos_greedy_min_length",
        lengths=[4],
        params=dict(max_new_tokens=12, min_length=4),
        need="eos_at_min_length",
        eos=True,
    ),
    # Token 1 (the placeholder's id) made frequent: the placeholder is in every history, so the
    # repetition penalty and the n-gram ban see it from the first step.
    dict(
        name="bos_greedy_repetition_penalty",
        lengths=[5],
        params=dict(max_new_tokens=12, repetition_penalty=1.3),
        need="bos_matters",
        boost={BOS: 26},
    ),
    dict(
        name="bos_greedy_no_repeat_ngram",
        lengths=[5],
        params=dict(max_new_tokens=12, no_repeat_ngram_size=2),
        need="bos_matters",
        boost={BOS: 26},
    ),
    dict(
        name="bos_beam3_no_repeat_ngram",
        lengths=[5],
        params=dict(max_new_tokens=10, num_beams=3, no_repeat_ngram_size=2),
        need="bos_matters",
        boost={BOS: 26},
    ),
    dict(
        name="eos_beam3_batch",
        lengths=[6, 3, 5],
        params=dict(max_new_tokens=12, num_beams=3, length_penalty=1.0),
        need="eos_beam",
        eos=True,
    ),
    dict(
        name="eos_beam3_lp-2",
        lengths=[5, 5],
        params=dict(max_new_tokens=12, num_beams=3, length_penalty=-2.0),
        need="eos_beam",
        eos=True,
    ),
    dict(
        name="eos_beam3_done_rule",
        lengths=[5, 4, 6],
        params=dict(max_new_tokens=12, num_beams=3, length_penalty=1.0),
        differs=["done_len"],
        eos=True,
    ),
    dict(
        name="eos_beam3_length_rule",
        lengths=[5],
        params=dict(max_new_tokens=10, num_beams=3, length_penalty=1.0),
        differs=["hyp_len"],
        eos=True,
    ),
    dict(
        name="eos_lynx_beam5",
        lengths=[6, 4],
        params=dict(
            max_new_tokens=12, num_beams=5, length_penalty=-2.0, min_length=2, no_repeat_ngram_size=2,
        ),
        need="eos_beam",
        eos=True,
    ),
]


def requirement_ok(case, new, params):
    need = case.get("need")
    max_new = params["max_new_tokens"]
    if need == "no_eos":
        return all(len(t) == max_new and EOS not in t for t in new)
    if need == "eos":
        # Every row stops early, at different steps when batched; min_length holds.
        ends = [len(t) for t in new]
        ok = all(t[-1] == EOS and len(t) < max_new for t in new)
        if len(new) > 1:
            ok = ok and len(set(ends)) == len(ends)
        return ok and all(len(t) + 1 >= params.get("min_length", 0) for t in new)
    if need == "eos_at_min_length":
        # EOS comes at the first step min_length allows (token number min_length).
        return all(t[-1] == EOS and len(t) == params["min_length"] for t in new)
    if need == "bos_matters":
        return any(BOS in t for t in new)
    if need == "eos_beam":
        # Most rows end with EOS (their beam search is done early), not all at the same step.
        ended = [len(t) for t in new if t and t[-1] == EOS]
        return len(ended) >= max(1, len(new) - 1) and len(set(len(t) for t in new)) > 1
    return True


def main():
    os.makedirs(OUT, exist_ok=True)
    cfg, model = build_model()
    probe = Probe()
    probe.install()

    base = model.lm_head.weight.detach().clone()

    cases_out = []
    for case in CASES:
        boost = dict(case.get("boost", {}))
        if case.get("eos"):
            boost[EOS] = 35
        with torch.no_grad():
            model.lm_head.weight.copy_(base)
            for row, src in boost.items():
                model.lm_head.weight[row] = 1.1 * base[src]
        params = dict(case["params"])
        params.setdefault("num_beams", 1)
        for seed in range(case_seed(case["name"]), case_seed(case["name"]) + 400):
            embeds, mask, new, scores, gap, hyp = run_case(model, probe, case, seed)
            if gap > GAP and hyp > REL and requirement_ok(case, new, params):
                if all(differs_under(model, probe, case, seed, v, new) for v in case.get("differs", [])):
                    break
        else:
            sys.exit(f"{case['name']}: no robust seed found")
        print(f"{case['name']:36s} seed {seed} gap {gap:.4f} hyp {hyp:.2e} -> {new}")
        entry = dict(
            name=case["name"],
            params=params,
            lengths=case["lengths"],
            inputs_embeds=embeds.tolist(),
            attention_mask=mask.tolist(),
            expected=new,
            sequence_scores=scores,
            min_gap=gap,
        )
        if boost:
            # rows of lm_head replaced for this case: 1.1 x the row of another token
            entry["lm_head_row_overrides"] = [
                dict(row=row, values=(1.1 * base[src]).tolist()) for row, src in sorted(boost.items())
            ]
        cases_out.append(entry)
    with torch.no_grad():
        model.lm_head.weight.copy_(base)

    tensors = {k: v.contiguous() for k, v in model.state_dict().items() if "rotary_emb" not in k}
    save_file(tensors, os.path.join(OUT, "model.safetensors"))
    cfg.to_json_file(os.path.join(OUT, "config.json"))
    meta = dict(transformers=transformers.__version__, torch=torch.__version__, bos=BOS, eos=EOS, pad=PAD)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(dict(meta=meta, cases=cases_out), f, separators=(",", ":"))
    write_processors()


def case_seed(name):
    return sum(ord(c) * (i + 1) for i, c in enumerate(name)) % 10007


def enc(t):
    return [[None if v == -math.inf else v for v in row] for row in t.tolist()]


def write_processors():
    """HF logits processors and warpers applied to random score rows."""
    g = torch.Generator().manual_seed(77)
    rows, v = 4, 16
    scores = torch.randn(rows, v, generator=g) * 2.0
    scores[1, 3] = 0.0  # exact zero: repetition penalty divides / multiplies by sign
    hist = torch.tensor(
        [
            [1, 5, 6, 5, 7, 5],
            [1, 3, 3, 3, 3, 3],
            [1, 9, 10, 11, 9, 10],
            [1, 2, 4, 8, 15, 4],
        ]
    )
    cases = []

    def add(name, fn, params, hist_used=hist):
        out = fn(hist_used, scores.clone())
        cases.append(dict(name=name, params=params, output=enc(out)))

    add("repetition_penalty_1.3", lp.RepetitionPenaltyLogitsProcessor(1.3), dict(repetition_penalty=1.3))
    add("repetition_penalty_0.7", lp.RepetitionPenaltyLogitsProcessor(0.7), dict(repetition_penalty=0.7))
    for n in (1, 2, 3):
        add(f"no_repeat_ngram_{n}", lp.NoRepeatNGramLogitsProcessor(n), dict(no_repeat_ngram_size=n))
    add("no_repeat_ngram_7_short", lp.NoRepeatNGramLogitsProcessor(7), dict(no_repeat_ngram_size=7))
    add("min_length_7", lp.MinLengthLogitsProcessor(7, EOS), dict(min_length=7))
    add("min_length_6", lp.MinLengthLogitsProcessor(6, EOS), dict(min_length=6))
    add("temperature_0.7", lp.TemperatureLogitsWarper(0.7), dict(temperature=0.7))
    for k, keep in ((3, 1), (1, 2), (100, 1)):
        add(f"top_k_{k}_keep{keep}", lp.TopKLogitsWarper(k, min_tokens_to_keep=keep), dict(top_k=k, min_keep=keep))
    for p, keep in ((0.9, 1), (0.3, 1), (0.3, 2), (0.01, 1)):
        add(
            f"top_p_{p}_keep{keep}",
            lp.TopPLogitsWarper(p, min_tokens_to_keep=keep),
            dict(top_p=p, min_keep=keep),
        )
    chain = lp.LogitsProcessorList(
        [lp.TemperatureLogitsWarper(0.7), lp.TopKLogitsWarper(5), lp.TopPLogitsWarper(0.8)]
    )
    add("warpers_t0.7_k5_p0.8", chain, dict(temperature=0.7, top_k=5, top_p=0.8, min_keep=1))
    log_sm = torch.log_softmax(scores, dim=-1)
    cases.append(dict(name="log_softmax", params={}, output=enc(log_sm)))
    with open(os.path.join(OUT, "processors.json"), "w") as f:
        json.dump(
            dict(scores=scores.tolist(), history=hist.tolist(), eos=EOS, cases=cases), f, separators=(",", ":")
        )


if __name__ == "__main__":
    main()
