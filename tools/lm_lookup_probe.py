"""Does a small LLaMA learn to look things up in its context? (issue 4; paper 2.3: Lynx relies on a
frozen LLM that reads the words before it.)

Lookup drills give a few bindings and ask for one of them, so only the context answers:
  "The circle is red, the star is blue and the cross is pink. What colour is the star?" -> "blue"
  "There are 3 stars and 5 squares. How many squares are there?" -> "5"

Three commands:
  drills    writes the drills as `text_instruct` records (train, and two held-out test files), so
            that `lynx train` (stage lm_instruct) and `lynx eval loss` can run on the same files.
  finetune  trains an exported LM folder (`RUN/vicuna/model`: config.json, model.safetensors,
            tokenizer.json) on the train drills (or, with --fresh, on new ones) with the optimiser, schedule and row packing of
            `lynx train`'s lm_instruct stage, and prints the train loss and the held-out loss per
            answer token. With --lynx-metrics (a `lynx train` metrics.jsonl over the same drills)
            it prints lynx's curve beside it: the reference check of the training loop's dynamics.
  scratch   pretrains a LLaMA of the given size from scratch on freshly drawn drills (none seen
            twice, so they cannot be memorised), mixed with the world's text when --world is given,
            and prints the held-out lookup loss as it goes: how many updates in-context lookup
            needs before it appears.

It needs torch, transformers, tokenizers and PyYAML; --device cuda runs it on a GPU. See
docs/lm-lookup.md for what it measured.
"""

import argparse
import json
import math
import os
import random
import sys
import time

SHAPES = ["square", "heart", "triangle", "hexagon", "star", "cross", "diamond", "circle"]
COLORS = ["red", "white", "pink", "orange", "green", "yellow", "purple", "blue"]


QUESTION_FIRST = False


def ask(text, question):
    """The drill's instruction: the bindings, then the question; or, with --question-first, the
    question before the bindings it is about."""
    return f"{question} {text}" if QUESTION_FIRST else f"{text} {question}"


def lookup_drill(r):
    k = r.randint(2, 4)
    shapes = r.sample(SHAPES, k)
    colors = [r.choice(COLORS) for _ in shapes]
    parts = [f"the {s} is {c}" for s, c in zip(shapes, colors)]
    text = (", ".join(parts[:-1]) + " and " + parts[-1]).capitalize() + "."
    i = r.randrange(k)
    if r.random() < 0.5 or colors.count(colors[i]) > 1:
        return ask(text, f"What colour is the {shapes[i]}?"), colors[i]
    return ask(text, f"Which shape is {colors[i]}?"), f"the {shapes[i]}"


def plural(shape):
    return shape + "es" if shape.endswith("s") else shape + "s"


def count_drill(r):
    k = r.randint(2, 3)
    shapes = r.sample(SHAPES, k)
    ns = [r.randint(2, 9) for _ in shapes]
    items = [f"{n} {plural(s)}" for n, s in zip(ns, shapes)]
    text = "There are " + ", ".join(items[:-1]) + " and " + items[-1] + "."
    i = r.randrange(k)
    return ask(text, f"How many {plural(shapes[i])} are there?"), str(ns[i])


def context_guess(recs):
    """The accuracy of naming a random colour (or shape, or number) of the question's own
    description: what a model that uses its context as a bag of words can reach."""
    total = 0.0
    for rec in recs:
        words = rec["question"].replace(",", " ").replace(".", " ").lower().split()
        q = rec["question"]
        asked = (q.split("? ", 1)[0] if "? " in q else q.rsplit(". ", 1)[-1]).lower().split()
        desc = [w for w in words if w not in asked] if "? " in q else words[: len(words) - len(asked)]
        if "colour" in asked:
            pool = COLORS
        elif "shape" in asked:
            pool = SHAPES
        else:
            pool = [str(n) for n in range(10)]
        cands = {w for w in desc if w in pool}
        total += (1 / len(cands)) if rec["answer"].split()[-1] in cands else 0.0
    return total / max(1, len(recs))


def record(q, a):
    return {"task": "text_instruct", "question": q, "answer": a}


def write_drills(out, n_train, n_test, seed):
    os.makedirs(out, exist_ok=True)
    specs = [
        ("train.jsonl", n_train, seed, [lookup_drill, count_drill]),
        ("lookup_test.jsonl", n_test, seed + 1000, [lookup_drill]),
        ("count_test.jsonl", n_test, seed + 2000, [count_drill]),
    ]
    for name, n, s, kinds in specs:
        r = random.Random(s)
        with open(os.path.join(out, name), "w") as f:
            for j in range(n):
                f.write(json.dumps(record(*kinds[j % len(kinds)](r))) + "\n")
    print(f"wrote {n_train} train and 2 x {n_test} test drills to {out}")
    for name in ["lookup_test.jsonl", "count_test.jsonl"]:
        recs = read_jsonl(os.path.join(out, name))
        print(f"{name}: naming a random candidate from the description scores {context_guess(recs):.1%}")


def read_jsonl(path):
    try:
        with open(path) as f:
            lines = f.readlines()
    except OSError as e:
        sys.exit(f"{path}: {e.strerror}")
    out = []
    for i, line in enumerate(lines, 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"{path}:{i}: not JSON ({e.msg})")
    return out


def read_yaml(path):
    import yaml

    try:
        with open(path) as f:
            return yaml.safe_load(f) or {}
    except OSError as e:
        sys.exit(f"{path}: {e.strerror}")
    except yaml.YAMLError as e:
        sys.exit(f"{path}: not YAML ({e})")


class Text:
    """Tokenisation as lynx does it: the chat prompt of the model's lynx.yaml (lower-cased when
    `lower_text`), the reply trimmed and closed by EOS; pretraining documents as
    `[BOS] text [EOS]` (crates/lynx/src/data/conversation.rs, crates/lynx/src/train/lm.rs)."""

    def __init__(self, tokenizer_json, prompt, lower, templates):
        from tokenizers import Tokenizer

        try:
            self.tok = Tokenizer.from_file(tokenizer_json)
        except Exception as e:  # the tokenizers library raises its own exception types
            sys.exit(f"{tokenizer_json}: cannot read the tokenizer ({e})")
        self.prompt, self.lower, self.templates = prompt, lower, templates
        self.bos = self.tok.token_to_id("<s>")
        self.eos = self.tok.token_to_id("</s>")
        if self.bos is None or self.eos is None:
            sys.exit(f"{tokenizer_json}: no <s> / </s> tokens")

    def enc(self, s):
        return self.tok.encode(s, add_special_tokens=False).ids

    def chat(self, question, answer, r=None):
        q = r.choice(self.templates).replace("{question}", question) if r else question
        p = self.prompt.replace("{question}", q).strip()
        p = self.enc(p.lower() if self.lower else p)
        a = self.enc(answer.strip()) + [self.eos]
        return [self.bos] + p + a, [0] * (1 + len(p)) + [1] * len(a)

    def document(self, rec, r):
        turns = []
        if "conversations" in rec:
            c = rec["conversations"]
            turns = [f"{c[i]['value'].strip()} {c[i + 1]['value'].strip()}" for i in range(0, len(c) - 1, 2)]
        elif rec.get("question"):
            a = rec["answer"] if isinstance(rec["answer"], str) else rec["answer"][0]
            q = r.choice(self.templates).replace("{question}", rec["question"])
            turns = [f"{q.strip()} {a.strip()}"]
        else:
            turns = [str(rec.get("caption") or rec.get("answer") or "").strip()]
        return [self.bos] + self.enc("\n".join(turns)) + [self.eos]


def chat_rows(text, draw, r, rows, seq, torch, dev):
    """Rows of whole examples; one that does not fit starts the next row (lynx's lm_instruct)."""
    out, tgt, cur, ct = [], [], [], []
    while len(out) < rows:
        q = draw()
        ids, t = text.chat(q["question"], q["answer"], r)
        ids, t = ids[:seq], t[:seq]
        if len(cur) + len(ids) > seq:
            pad = seq - len(cur)
            out.append(cur + [0] * pad)
            tgt.append(ct + [0] * pad)
            cur, ct = [], []
            if len(out) == rows:
                break
        cur, ct = cur + ids, ct + t
    return torch.tensor(out, device=dev), torch.tensor(tgt, device=dev)


def loss_of(model, x, t, F):
    logits = model(input_ids=x).logits[:, :-1].float()
    m = t[:, 1:].reshape(-1).float()
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="none")
    return (ce * m).sum() / m.sum()


def held_out(model, text, recs, torch, F, dev, chat=True):
    """Mean loss per answer token (EOS included in chat form), as `lynx eval loss` reports it,
    and the share of answers whose every token is the model's first choice (greedy decoding
    would give that answer)."""
    tot = n = right = 0.0
    with torch.no_grad():
        for rec in recs:
            if chat:
                ids, t = text.chat(rec["question"], rec["answer"])
            else:
                q, a = text.enc(rec["question"].strip()), text.enc(" " + rec["answer"].strip())
                ids, t = [text.bos] + q + a, [0] * (1 + len(q)) + [1] * len(a)
            x = torch.tensor([ids], device=dev)
            logits = model(input_ids=x).logits[0, :-1].float()
            ce = F.cross_entropy(logits, x[0, 1:], reduction="none")
            m = torch.tensor(t[1:], device=dev, dtype=torch.float32)
            tot += (ce * m).sum().item()
            n += m.sum().item()
            hit = logits.argmax(-1) == x[0, 1:]
            right += bool(hit[m.bool()].all())
    return tot / n, right / len(recs)


def schedule(step, total, lr, min_lr, warmup):
    """Linear warm-up, then cosine to min_lr (crates/lynx/src/train/schedule.rs)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * p))


def train(model, batch, a, evals, torch, F, label):
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    losses, t0, rows = [], time.time(), []
    for s in range(a.steps):
        for g in opt.param_groups:
            g["lr"] = schedule(s, a.steps, a.lr, a.lr / 20 if a.min_lr is None else a.min_lr, a.warmup)
        x, t = batch()
        loss = loss_of(model, x, t, F)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if (s + 1) % a.every == 0 or s + 1 == a.steps:
            model.eval()
            ev = {}
            for k, f in evals.items():
                loss, acc = f(model)
                ev[k], ev[k + "_acc"] = round(loss, 4), round(acc, 3)
            model.train()
            row = {"step": s + 1, "train": round(sum(losses[-a.every:]) / len(losses[-a.every:]), 4), **ev}
            rows.append(row)
            print(label, json.dumps(row), f"{time.time() - t0:.0f}s", flush=True)
    return rows


def lynx_curve(path, every):
    steps = read_jsonl(path)
    out = {}
    for i in range(every, len(steps) + 1, every):
        out[i] = round(sum(s["loss"] for s in steps[i - every:i]) / every, 4)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("drills")
    d.add_argument("--out", required=True)
    d.add_argument("--train", type=int, default=4000)
    d.add_argument("--test", type=int, default=200)
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--question-first", action="store_true", help="ask before giving the bindings")
    # Defaults: the recipe's lm_instruct ("Vicuna") and lm (pretraining) stages.
    budgets = {"finetune": (200, 5e-4, 10, 16, 192), "scratch": (1500, 1e-3, 30, 12, 128)}
    for name, (steps, lr, warmup, rows, seq) in budgets.items():
        p = sub.add_parser(name)
        p.add_argument("--steps", type=int, default=steps)
        p.add_argument("--lr", type=float, default=lr)
        p.add_argument("--warmup", type=int, default=warmup)
        p.add_argument("--rows", type=int, default=rows, help="rows per update")
        p.add_argument("--seq", type=int, default=seq, help="tokens per row")
        p.add_argument("--drills", required=True, help="folder written by `drills`")
        p.add_argument("--device", default="cpu")
        p.add_argument("--every", type=int, default=20)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--weight-decay", type=float, default=0.05 if name == "finetune" else 0.1)
        p.add_argument("--min-lr", type=float, default=None)
        p.add_argument("--prompts", help="the world's prompts.yaml (text_instruct templates)")
        p.add_argument("--out", help="write the curve here as JSON")
        p.add_argument("--question-first", action="store_true", help="fresh drills ask before giving the bindings")
    f = sub.choices["finetune"]
    f.add_argument("--llm", required=True, help="exported LM folder (config.json, model.safetensors, tokenizer.json)")
    f.add_argument("--config", help="the model's lynx.yaml (prompt, lower_text)")
    f.add_argument("--lynx-metrics", help="metrics.jsonl of `lynx train` on the same drills")
    f.add_argument("--fresh", action="store_true", help="draw new drills for every example instead of train.jsonl's")
    s = sub.choices["scratch"]
    s.add_argument("--tokenizer", required=True, help="tokenizer.json")
    s.add_argument("--world", help="a world folder: its train/*.jsonl text is mixed in")
    s.add_argument("--drill-share", type=float, default=1.0)
    s.add_argument("--layers", type=int, default=4)
    s.add_argument("--hidden", type=int, default=256)
    s.add_argument("--heads", type=int, default=4)
    a = ap.parse_args()
    global QUESTION_FIRST
    QUESTION_FIRST = a.question_first
    if a.cmd == "drills":
        return write_drills(a.out, a.train, a.test, a.seed)

    import torch
    import torch.nn.functional as F
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(a.seed)
    r = random.Random(a.seed)
    templates = ["{question}"]
    if a.prompts:
        templates = read_yaml(a.prompts).get("text_instruct") or templates
    lookup = read_jsonl(os.path.join(a.drills, "lookup_test.jsonl"))
    count = read_jsonl(os.path.join(a.drills, "count_test.jsonl"))

    if a.cmd == "finetune":
        prompt, lower = "User: {question}\nBot:", True
        if a.config:
            y = read_yaml(a.config)
            prompt, lower = y.get("prompt", prompt), bool(y.get("lower_text", lower))
        for needed in ["config.json", "model.safetensors", "tokenizer.json"]:
            if not os.path.isfile(os.path.join(a.llm, needed)):
                sys.exit(f"{a.llm}: no {needed} (expected an LM folder exported by `lynx train`)")
        text = Text(os.path.join(a.llm, "tokenizer.json"), prompt, lower, templates)
        model = LlamaForCausalLM.from_pretrained(a.llm, torch_dtype=torch.float32).to(a.device)
        drills = read_jsonl(os.path.join(a.drills, "train.jsonl"))
        fresh = random.Random(a.seed + 1)

        def draw():
            if a.fresh:
                return record(*fresh.choice([lookup_drill, count_drill])(fresh))
            return r.choice(drills)

        evals = {
            "lookup": lambda m: held_out(m, text, lookup, torch, F, a.device),
            "count": lambda m: held_out(m, text, count, torch, F, a.device),
        }
        model.eval()
        print("before", json.dumps({k: [round(x, 4) for x in v(model)] for k, v in evals.items()}), flush=True)
        model.train()
        rows = train(model, lambda: chat_rows(text, draw, r, a.rows, a.seq, torch, a.device), a, evals, torch, F, "torch")
        if a.lynx_metrics:
            lx = lynx_curve(a.lynx_metrics, a.every)
            print(f"\n| update | torch train loss | lynx train loss |\n|---:|---:|---:|")
            for row in rows:
                print(f"| {row['step']} | {row['train']:.3f} | {lx.get(row['step'], float('nan')):.3f} |")
                row["lynx_train"] = lx.get(row["step"])
    else:
        text = Text(a.tokenizer, "{question}", False, templates)
        world = []
        if a.world:
            tdir = os.path.join(a.world, "train")
            world = [read_jsonl(os.path.join(tdir, n)) for n in sorted(os.listdir(tdir)) if n.endswith(".jsonl") and "control" not in n]
        fresh = random.Random(a.seed + 1)
        cfg = LlamaConfig(
            vocab_size=text.tok.get_vocab_size(), hidden_size=a.hidden, intermediate_size=(a.hidden * 8 // 3 + 15) // 16 * 16,
            num_hidden_layers=a.layers, num_attention_heads=a.heads, max_position_embeddings=512, rms_norm_eps=1e-6,
            rope_theta=10000.0, bos_token_id=text.bos, eos_token_id=text.eos, tie_word_embeddings=False,
        )
        model = LlamaForCausalLM(cfg).to(a.device)
        model.train()
        carry = []

        def batch():
            rows = []
            for _ in range(a.rows):
                row = []
                while len(row) < a.seq:
                    if not carry:
                        if not world or r.random() < a.drill_share:
                            q, ans = r.choice([lookup_drill, count_drill])(fresh)
                            carry.extend(text.document(record(q, ans), r))
                        else:
                            carry.extend(text.document(r.choice(r.choice(world)), r))
                    take = a.seq - len(row)
                    row += carry[:take]
                    del carry[:take]
                rows.append(row)
            x = torch.tensor(rows, device=a.device)
            t = torch.ones_like(x)
            t[:, 0] = 0
            return x, t

        evals = {
            "lookup": lambda m: held_out(m, text, lookup, torch, F, a.device, chat=False),
            "count": lambda m: held_out(m, text, count, torch, F, a.device, chat=False),
        }
        rows = train(model, batch, a, evals, torch, F, "scratch")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"args": vars(a), "curve": rows}, f, indent=1)


if __name__ == "__main__":
    main()
