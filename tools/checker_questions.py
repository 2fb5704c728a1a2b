#!/usr/bin/env python3
"""Questions about a world's held-out scenes in phrasings of our own (none of them is in
crates/lynx/src/synth/phrasings.rs), written from scenes.jsonl alone, the way issue 4's check
asks them: colour, counting, shape, spatial, place and OCR. The output is an Open-VQA
annotation file for `lynx generate` and `lynx eval open-vqa --judge rule`.

    lynx data synth --out W --seed 4242 --count 10 --test-count 60
    python3 tools/checker_questions.py W/test > W/test/checker.jsonl
    lynx generate --input W/test/checker.jsonl --output pred.jsonl --set image_rdir=W/test
    lynx eval open-vqa --annotations W/test/checker.jsonl --predictions pred.jsonl --judge rule

Standard library only.
"""

import json
import sys
from collections import Counter
from pathlib import Path

NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
PLURAL = {"cross": "crosses"}


def plural(shape):
    return PLURAL.get(shape, shape + "s")


def centre(b):
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


def place_answers(test_dir):
    """Place aliases as the world's own Place questions accept them, per place name."""
    place_of = {}
    for line in (test_dir / "scenes.jsonl").read_text().splitlines():
        s = json.loads(line)
        place_of[s["media"]] = s["place"]
    out = {}
    for line in (test_dir / "open_vqa_images.jsonl").read_text().splitlines():
        a = json.loads(line)
        place = place_of.get(a["image"])
        if a.get("class") == "Place" and place and a["answer"][0] == place:
            out.setdefault(place, a["answer"])
    return out


def questions(scene, places):
    objs = scene.get("objects", [])
    shapes = Counter(o["shape"] for o in objs)
    colors = Counter(o["color"] for o in objs)
    qs = []
    # Colour of a shape that occurs once.
    for o in objs:
        if shapes[o["shape"]] == 1:
            qs.append(("Color", f"Tell me which colour the {o['shape']} is.", [o["color"]]))
            break
    # Counting, for a shape present and for one absent.
    if objs:
        s, n = shapes.most_common(1)[0]
        qs.append(("Counting", f"Count how many {plural(s)} appear here.", [str(n), NUMBERS[n]]))
    # Shape of the object of a colour that occurs once.
    for o in objs:
        if colors[o["color"]] == 1:
            qs.append(("Others", f"The {o['color']} object: which shape does it have?", [o["shape"]]))
            break
    # Left or right, between two objects of unique shapes far enough apart.
    uniq = [o for o in objs if shapes[o["shape"]] == 1]
    for i, a in enumerate(uniq):
        for b in uniq[i + 1:]:
            (ax, _), (bx, _) = centre(a["bbox"]), centre(b["bbox"])
            if abs(ax - bx) >= 12:
                # Objects are listed left to right: ask about the later one every other time.
                if len(qs) % 2:
                    a, b, ax, bx = b, a, bx, ax
                side = "left" if ax < bx else "right"
                qs.append(("Spatial", f"Starting from the {b['shape']}, would you turn left or right to find the {a['shape']}?", [side]))
                break
        else:
            continue
        break
    # Place.
    qs.append(("Place", "What sort of place does this image show?", places.get(scene["place"], [scene["place"]])))
    # OCR.
    for t in scene.get("texts", []):
        item = {"sign": "sign", "label": "label", "book": "book cover"}.get(t["kind"], t["kind"])
        qs.append(("OCR", f"What is printed on the {item}?", [t["text"].lower()]))
        break
    return qs


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: checker_questions.py WORLD/test > checker.jsonl")
    test_dir = Path(sys.argv[1])
    places = place_answers(test_dir)
    index = 0
    for line in (test_dir / "scenes.jsonl").read_text().splitlines():
        scene = json.loads(line)
        if scene["kind"] != "image":
            continue
        for cls, q, answers in questions(scene, places):
            index += 1
            print(json.dumps({
                "dataset": "checker", "question": q, "answer": answers, "index": index,
                "image": scene["media"], "origin_dataset": "synth", "class": cls,
            }))


if __name__ == "__main__":
    main()
