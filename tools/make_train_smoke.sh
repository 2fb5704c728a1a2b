#!/usr/bin/env bash
# Regenerates examples/train-smoke: a small synthetic dataset (lynx data synth) and a tiny base
# model (the random tiny Lynx of fixtures/tiny, converted to one safetensors folder).
# Usage: tools/make_train_smoke.sh   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p lynx-cli
lynx=target/release/lynx
out=examples/train-smoke
rm -rf "$out/data" "$out/base"
"$lynx" data synth --out "$out/data" --seed 7 --count 40 --test-count 10 --size 64 --quiet
rm -rf "$out/data/test"
"$lynx" convert --config fixtures/tiny/lynx.yaml --out "$out/base"
