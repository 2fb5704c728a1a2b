#!/usr/bin/env python3
"""Regenerates fixtures/preprocess/: small test images of every mode and the outputs that
Pillow 13, torchvision 0.17 and torch 2.2 give for them.

The Rust tests in crates/lynx/tests/preprocess_*.rs compare against these files:
  images/            inputs (every PIL mode, EXIF orientations, animations, broken files)
  frames/            a folder of PNG frames named frame_1.png .. frame_11.png (natural order)
  video*.json        the release's video format: a JSON list of base64-encoded frames
  expected.safetensors
      rgb/NAME                  uint8 [H,W,3]: ImageOps.exif_transpose(Image.open(p)).convert("RGB")
                                (images of at most 10000 pixels; expected.json has every one's SHA-256)
      resize/NAME/WxH           uint8 [h,w,3]: rgb.resize((w,h), Image.BICUBIC)
      evalcrop/NAME/RES         uint8 [R,R,3]: torchvision Resize(RES, bicubic) + CenterCrop(RES)
      eval/NAME/RES             f32 [3,R,R]: the release's full test transform
      pos/in_G, pos/out_G_N     f32: F.interpolate(bicubic, align_corners=False) of pos embeds
  expected.json      per image: Pillow mode, size, EXIF orientation; frame-sampling cases;
                     SHA-256 of Pillow's RGB decode and eval crops of a few real photographs.

Run from the repository root: /work/pyenv/bin/python tools/fixtures_preprocess.py
ffmpeg on PATH additionally writes video.mp4 and video.webm (the frames as a video).
"""

import base64
import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import zlib

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from safetensors.numpy import save_file
from torchvision import transforms
from torchvision.transforms import InterpolationMode

OUT = "fixtures/preprocess"
IMG = os.path.join(OUT, "images")
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
OWL = "../shared/data/owleval/cases"

rs = np.random.RandomState(1234)


def photo_like(w, h, seed):
    """Smooth colour gradients with some texture, so JPEG and resize both have work to do."""
    r = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = []
    for c in range(3):
        fx, fy, ph = r.uniform(0.02, 0.3), r.uniform(0.02, 0.3), r.uniform(0, 6)
        v = 128 + 90 * np.sin(fx * x + ph) * np.cos(fy * y - ph) + r.normal(0, 12, (h, w))
        chans.append(v)
    return np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8)


def raw_png(w, h, bitdepth, ctype, rows):
    """A PNG written by hand (Pillow cannot write 16-bit RGB/RGBA/LA or 4-bit grey)."""

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + r for r in rows)
    ihdr = struct.pack(">IIBBBBB", w, h, bitdepth, ctype, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def write(name, data):
    with open(os.path.join(IMG, name), "wb") as f:
        f.write(data)


def save(im, name, **kw):
    im.save(os.path.join(IMG, name), **kw)


def frame_color(i):
    """Frame i of the test videos is one flat colour, so a test can tell which frame it got."""
    return (10 + 20 * i, 240 - 20 * i, (60 * i) % 256)


def flat_frame(i, w=32, h=24, mode="RGB"):
    a = np.zeros((h, w, 3), np.uint8)
    a[:, :] = frame_color(i)
    return Image.fromarray(a).convert(mode)


def b64_image(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return base64.b64encode(b.getvalue()).decode()


def release_frame_ids(nf, ns):
    """The release's deterministic frame sampling (dataset/utils.py, training=False)."""
    if nf <= ns:
        return sorted(i % nf for i in range(ns))
    stride = nf // ns
    strides = [stride + 1] * (nf - ns * stride) + [stride] * (ns * (stride + 1) - nf)
    out, cursor = [], 0
    for s in strides:
        out.append(cursor)
        cursor += s
    return out


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(IMG)
    os.makedirs(os.path.join(OUT, "frames"))
    tensors = {}
    decoded = {}
    meta = {"images": {}}

    # ---- still images of every mode ------------------------------------------------------
    save(Image.fromarray(photo_like(37, 23, 1)), "rgb_37x23.jpg", quality=90)
    save(Image.fromarray(photo_like(19, 41, 2)), "rgb_19x41.png")
    save(Image.fromarray(photo_like(20, 27, 3)), "rgb_20x27.png")
    save(Image.fromarray(photo_like(16, 22, 4)), "rgb_16x22.png")
    save(Image.fromarray(photo_like(64, 48, 5)), "rgb_444.jpg", quality=95, subsampling=0)
    save(Image.fromarray(photo_like(33, 29, 6)), "rgb_prog.jpg", quality=85, progressive=True)
    save(Image.fromarray(photo_like(320, 240, 7)), "big.jpg", quality=80)
    save(Image.fromarray(rs.randint(0, 256, (18, 24, 3), dtype=np.uint8)), "noise.png")
    save(Image.fromarray(photo_like(21, 17, 8)).convert("L"), "l.png")
    save(Image.fromarray(photo_like(21, 17, 9)).convert("L"), "l.jpg", quality=90)
    la = Image.fromarray(photo_like(15, 13, 10)).convert("LA")
    la.putalpha(Image.fromarray(rs.randint(0, 256, (13, 15), dtype=np.uint8)))
    save(la, "la.png")
    p = Image.fromarray(photo_like(18, 14, 11)).convert("P", palette=Image.ADAPTIVE, colors=16)
    save(p, "p.png")
    save(p, "p_trns.png", transparency=3)
    rgba = Image.fromarray(photo_like(16, 12, 12)).convert("RGBA")
    rgba.putalpha(Image.fromarray(rs.randint(0, 256, (12, 16), dtype=np.uint8)))
    save(rgba, "rgba.png")
    cmyk = np.concatenate([photo_like(20, 16, 13), photo_like(20, 16, 14)[:, :, :1]], -1)
    save(Image.fromarray(cmyk, "CMYK"), "cmyk.jpg", quality=95)
    g16 = (np.linspace(0, 1, 17 * 11) ** 3 * 65535).astype(np.uint16).reshape(11, 17)
    g16[0, :6] = [0, 1, 255, 256, 1000, 65535]
    save(Image.fromarray(g16), "gray16.png")
    v16 = rs.randint(0, 65536, (9, 13, 4)).astype(np.uint16)
    v16[0, :4, 0] = [255, 256, 65279, 65280]
    write("rgb16.png", raw_png(13, 9, 16, 2, [v16[y, :, :3].astype(">u2").tobytes() for y in range(9)]))
    write("rgba16.png", raw_png(13, 9, 16, 6, [v16[y].astype(">u2").tobytes() for y in range(9)]))
    write("la16.png", raw_png(13, 9, 16, 4, [v16[y, :, :2].astype(">u2").tobytes() for y in range(9)]))
    g4 = rs.randint(0, 16, (7, 10)).astype(np.uint8)
    write("gray4.png", raw_png(10, 7, 4, 0, [bytes((r[i] << 4) | r[i + 1] for i in range(0, 10, 2)) for r in g4]))
    save(Image.fromarray(rs.randint(0, 2, (9, 11), dtype=np.uint8) * 255).convert("1"), "bilevel.png")
    save(Image.fromarray(photo_like(14, 10, 15)), "rgb.bmp")
    save(Image.fromarray(photo_like(30, 20, 16)), "lossy.webp", quality=80)
    save(Image.fromarray(photo_like(30, 20, 17)), "lossless.webp", lossless=True)
    save(Image.fromarray(photo_like(24, 16, 18)), "disguised_png.jpg", format="PNG")

    # EXIF orientation 1..8 (JPEG) and 6 in a PNG eXIf chunk
    base = Image.fromarray(photo_like(24, 16, 19))
    for k in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = k
        save(base, f"exif{k}.jpg", quality=92, exif=exif)
    exif = Image.Exif()
    exif[0x0112] = 6
    save(Image.fromarray(photo_like(12, 8, 20)), "exif6.png", exif=exif)

    # animations: 7 flat frames (GIF is also read as a still image: its first frame)
    frames = [flat_frame(i, 12, 10) for i in range(7)]
    frames[0].save(os.path.join(IMG, "anim.gif"), save_all=True, append_images=frames[1:], duration=50, loop=0)
    frames[0].save(os.path.join(IMG, "anim.webp"), save_all=True, append_images=frames[1:], duration=50,
                   lossless=True)

    # broken files
    with open(os.path.join(IMG, "rgb_37x23.jpg"), "rb") as f:
        jpg = f.read()
    write("truncated.jpg", jpg[: len(jpg) // 2])
    with open(os.path.join(IMG, "rgb_19x41.png"), "rb") as f:
        png = f.read()
    write("truncated.png", png[: len(png) // 2])
    write("garbage.png", b"\x89PNG\r\n\x1a\n" + bytes(rs.randint(0, 256, 64, dtype=np.uint8)))
    write("not_an_image.txt", b"hello, this is text\n")

    still = sorted(n for n in os.listdir(IMG)
                   if n not in ("truncated.jpg", "truncated.png", "garbage.png", "not_an_image.txt"))
    for name in still:
        im = Image.open(os.path.join(IMG, name))
        orient = im.getexif().get(0x0112, 1)
        rgb = ImageOps.exif_transpose(im).convert("RGB")
        meta["images"][name] = {"format": im.format, "mode": im.mode, "size": list(im.size),
                                "orientation": orient, "rgb_sha256": hashlib.sha256(rgb.tobytes()).hexdigest()}
        decoded[name] = np.asarray(rgb)
        if rgb.width * rgb.height <= 10000:  # larger ones are checked by their hash only
            tensors[f"rgb/{name}"] = decoded[name]
    for name in ("truncated.jpg", "truncated.png", "garbage.png", "not_an_image.txt"):
        try:
            Image.open(os.path.join(IMG, name)).convert("RGB")
            raise SystemExit(f"{name} unexpectedly decodes in Pillow")
        except (OSError, SyntaxError):
            pass

    # ---- PIL bicubic resize ---------------------------------------------------------------
    resize_cases = {
        "rgb_37x23.jpg": [(20, 13), (80, 50), (37, 40), (11, 23), (37, 23), (1, 1), (200, 3), (3, 77)],
        # (12, 27): height shrinks by exactly twice the width's shrink, horizontal pass first;
        # (12, 26): one more, Pillow 13 runs the vertical pass first.
        "rgb_19x41.png": [(56, 120), (7, 9), (19, 100), (12, 27), (12, 26)],
        "big.jpg": [(31, 17), (100, 75), (320, 30), (45, 240)],
    }
    # random targets for a small noise image, many of them sensitive to the pass order
    sizes_rs = np.random.RandomState(99)
    resize_cases["noise.png"] = [(int(sizes_rs.randint(1, 33)), int(sizes_rs.randint(1, 33))) for _ in range(40)]
    meta["resize"] = {}
    for name, sizes in resize_cases.items():
        rgb = Image.fromarray(decoded[name])
        meta["resize"][name] = [list(s) for s in sizes]
        for w, h in sizes:
            tensors[f"resize/{name}/{w}x{h}"] = np.asarray(rgb.resize((w, h), Image.BICUBIC))

    # ---- the release's eval transform ------------------------------------------------------
    def crop_tf(res):
        return transforms.Compose([
            transforms.Resize(size=res, interpolation=InterpolationMode.BICUBIC, max_size=None, antialias=None),
            transforms.CenterCrop(size=(res, res)),
        ])

    def full_tf(res):
        return transforms.Compose([crop_tf(res), transforms.ToTensor(), transforms.Normalize(MEAN, STD)])

    eval_cases = [("rgb_37x23.jpg", 56), ("rgb_19x41.png", 56), ("rgb_20x27.png", 56), ("rgb_16x22.png", 56),
                  ("big.jpg", 56), ("l.png", 56), ("big.jpg", 224)]
    meta["eval"] = [[n, r] for n, r in eval_cases]
    for name, res in eval_cases:
        rgb = Image.fromarray(decoded[name])
        tensors[f"evalcrop/{name}/{res}"] = np.asarray(crop_tf(res)(rgb))
        if res == 56:
            tensors[f"eval/{name}/{res}"] = full_tf(res)(rgb).numpy()

    # ---- real photographs: hashes of Pillow's decode and of the eval crop ---------------------
    meta["owleval"] = {}
    for name in ("1.jpg", "9.jpg", "49.jpg", "47.jpg"):
        im = Image.open(os.path.join(OWL, name)).convert("RGB")
        entry = {"size": list(im.size), "rgb_sha256": hashlib.sha256(im.tobytes()).hexdigest()}
        for res in (224, 420):
            entry[f"evalcrop_{res}_sha256"] = hashlib.sha256(np.asarray(crop_tf(res)(im)).tobytes()).hexdigest()
        meta["owleval"][name] = entry

    # ---- position-embedding interpolation ----------------------------------------------------
    torch.manual_seed(0)
    width = 8
    for g, ns in ((3, (4, 5, 2)), (16, (30,))):
        pe = torch.randn(1, 1 + g * g, width)
        tensors[f"pos/in_{g}"] = pe.numpy()
        for n in ns:
            grid = pe[:, 1:].reshape(1, g, g, width).permute(0, 3, 1, 2)
            out = F.interpolate(grid, size=(n, n), mode="bicubic", align_corners=False)
            out = out.permute(0, 2, 3, 1).reshape(1, n * n, width)
            tensors[f"pos/out_{g}_{n}"] = torch.cat([pe[:, :1], out], 1).numpy()

    # ---- videos -------------------------------------------------------------------------------
    for i in range(11):
        flat_frame(i).save(os.path.join(OUT, "frames", f"frame_{i + 1}.png"))
    with open(os.path.join(OUT, "frames", "notes.txt"), "w") as f:
        f.write("not a frame: files without an image extension are ignored\n")
    with open(os.path.join(OUT, "video.json"), "w") as f:
        json.dump([b64_image(flat_frame(i), "JPEG", quality=95) for i in range(9)], f)
    with open(os.path.join(OUT, "video_dataurl.json"), "w") as f:
        json.dump(["data:image/png;base64," + b64_image(flat_frame(i), "PNG") for i in range(3)], f)
    with open(os.path.join(OUT, "video_empty.json"), "w") as f:
        json.dump([], f)
    with open(os.path.join(OUT, "video_badb64.json"), "w") as f:
        json.dump([b64_image(flat_frame(0), "PNG"), "@@not base64@@"], f)
    with open(os.path.join(OUT, "video_badframe.json"), "w") as f:
        json.dump([b64_image(flat_frame(0), "PNG"), b64_image(flat_frame(1), "PNG"),
                   base64.b64encode(b"definitely not an image").decode()], f)
    meta["frame_colors"] = [list(frame_color(i)) for i in range(11)]
    if shutil.which("ffmpeg"):
        for ext, codec in (("mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "10"]),
                           ("webm", ["-c:v", "libvpx", "-b:v", "1M"])):
            subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-framerate", "10", "-i",
                            os.path.join(OUT, "frames", "frame_%d.png"), *codec, "-fflags", "+bitexact",
                            os.path.join(OUT, f"video.{ext}")], check=True)
    else:
        print("ffmpeg not found: video.mp4/video.webm not written")

    # ---- the release's frame sampling (deterministic mode) -------------------------------------
    pairs = [(1, 5), (2, 5), (3, 5), (5, 5), (6, 5), (7, 5), (9, 5), (10, 5), (12, 5), (13, 5),
             (100, 5), (4, 1), (9, 3), (2, 8), (11, 4)]
    meta["frame_sampling"] = [{"num_available": a, "num_frames": n, "deterministic": release_frame_ids(a, n)}
                              for a, n in pairs]

    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, os.path.join(OUT, "expected.safetensors"))
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(OUT) for n in ns)
    print(f"wrote {OUT}: {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
