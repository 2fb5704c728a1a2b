#!/usr/bin/env python3
"""Long-form instructions about a world's held-out images, and how long the answers are: the
generation side of the paper's balance (Section 3.2; issue 4 asks for full sentences where an
instruction wants them). A model that copies its word tokens too eagerly answers "Write a short
story about this picture." with one word (docs/lm-lookup.md, section 9).

    python3 tools/longform_questions.py questions W/test > W/test/longform.jsonl
    lynx generate --input W/test/longform.jsonl --output long.jsonl --set image_rdir=W/test
    python3 tools/longform_questions.py lengths W/test/longform.jsonl long.jsonl
    python3 tools/longform_questions.py explained W/test > W/test/explained.jsonl

`questions` takes every fourth held-out image and asks each instruction about it; `lengths`
prints, per instruction, how many answers have fewer than 8 words and the mean length.
`explained` writes the held-out image questions with " Explain your answer." appended, as the
report's explained row asks them, for `lynx eval open-vqa --judge rule` per class (section 10).
Standard library only.
"""

import json
import sys
from collections import defaultdict
from pathlib import Path

INSTRUCTIONS = [
    "Write a short story about this picture.",
    "Describe this image in detail.",
    "What is happening in this picture? Explain in a few sentences.",
]
SHORT = 8


def questions(test_dir):
    scenes = [json.loads(l) for l in (test_dir / "scenes.jsonl").read_text().splitlines()]
    images = [s["media"] for s in scenes if s["kind"] == "image"]
    index = 0
    for media in images[::4]:
        for q in INSTRUCTIONS:
            index += 1
            print(json.dumps({
                "dataset": "longform", "question": q, "answer": ["-"], "index": index,
                "image": media, "origin_dataset": "synth", "class": "Long-form",
            }))


def explained(test_dir):
    for line in (test_dir / "open_vqa_images.jsonl").read_text().splitlines():
        a = json.loads(line)
        a["question"] = a["question"] + " Explain your answer."
        print(json.dumps(a))


def lengths(annotations, predictions):
    asked = {}
    for line in Path(annotations).read_text().splitlines():
        a = json.loads(line)
        asked[a["index"]] = a["question"]
    rows = defaultdict(lambda: [0, 0, 0])
    for line in Path(predictions).read_text().splitlines():
        p = json.loads(line)
        if p["index"] not in asked:
            sys.exit(f"{predictions}: index {p['index']} is not in {annotations}")
        words = len(p["text_output"].split())
        row = rows[asked[p["index"]]]
        row[0] += 1
        row[1] += words < SHORT
        row[2] += words
    print(f"| Instruction | Answers | Under {SHORT} words | Mean words |")
    print("|---|---:|---:|---:|")
    for q in INSTRUCTIONS:
        n, short, total = rows.get(q, [0, 0, 0])
        mean = total / n if n else 0.0
        print(f"| {q} | {n} | {short} | {mean:.1f} |")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "questions":
        questions(Path(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "explained":
        explained(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "lengths":
        lengths(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
