"""Reference PyTorch implementation of Lynx inference, written for the parity fixtures.

Follows ../shared/reference/lynx-official.md (and facts read from the official release,
bytedance/lynx-llm): EVA ViT, Perceiver resampler, Hugging Face LLaMA (transformers 4.28.1)
with bottleneck adapters, release preprocessing, frame sampling and prompt building.
Module and parameter names mirror the release checkpoints so that state dicts line up
key for key with `eva_vit_g.pth` and `finetune_lynx.pt`.
"""

import base64
import io
import json
import math
import os

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision import transforms
from torchvision.transforms import InterpolationMode

# ---------------------------------------------------------------------------------------
# Vision encoder (EVA ViT)
# ---------------------------------------------------------------------------------------


def interpolate_pos_embed(pos_embed, new_grid):
    """Resize the patch part of a [1, 1+N, W] position embedding to new_grid x new_grid.

    The release does this once at load time, in f32, with torch bicubic (A = -0.75,
    align_corners=False); the CLS position is kept. Same grid: returned unchanged.
    """
    pos_embed = pos_embed.float()
    width = pos_embed.shape[-1]
    old_grid = int((pos_embed.shape[-2] - 1) ** 0.5)
    if old_grid == new_grid:
        return pos_embed
    cls_pos = pos_embed[:, :1]
    grid = pos_embed[:, 1:].reshape(-1, old_grid, old_grid, width).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).flatten(1, 2)
    return torch.cat([cls_pos, grid], dim=1)


class VitAttention(nn.Module):
    """Fused qkv weight with separate q and v biases; the key projection has no bias."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        head_dim = c // self.heads
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias).reshape(b, n, 3, self.heads, head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        scores = (q * head_dim**-0.5) @ k.transpose(-2, -1)
        probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
        out = (probs @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class VitMlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU


class VitBlock(nn.Module):
    def __init__(self, dim, heads, mlp_hidden, eps):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = VitAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = VitMlp(dim, mlp_hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class EvaVit(nn.Module):
    """EVA ViT at image_res: CLS + patches, pre-norm blocks, no final norm; returns all 1+N tokens."""

    def __init__(self, image_res, patch_size, embed_dim, depth, num_heads, mlp_ratio, layer_norm_eps):
        super().__init__()
        self.grid = image_res // patch_size
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid**2, embed_dim))
        hidden = int(embed_dim * mlp_ratio)
        self.blocks = nn.ModuleList(
            [VitBlock(embed_dim, num_heads, hidden, layer_norm_eps) for _ in range(depth)]
        )

    def load_release_state_dict(self, state_dict):
        """Load a release-layout state dict (any dtype), interpolating pos_embed to this grid."""
        sd = {k: v.float() for k, v in state_dict.items()}
        sd["pos_embed"] = interpolate_pos_embed(sd["pos_embed"], self.grid)
        self.load_state_dict(sd, strict=True)

    def forward(self, pixels):
        x = self.patch_embed(pixels)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return x


# ---------------------------------------------------------------------------------------
# Bridge (Perceiver resampler)
# ---------------------------------------------------------------------------------------


class PerceiverAttention(nn.Module):
    """Latent queries attend to the normalised media tokens only (latents are not keys)."""

    def __init__(self, vision_width, text_width, heads=8, dim_head=64):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.dim_head = dim_head
        self.norm_media = nn.LayerNorm(vision_width)  # eps 1e-5
        self.norm_latents = nn.LayerNorm(text_width)
        self.to_q = nn.Linear(text_width, inner, bias=False)
        self.to_kv = nn.Linear(vision_width, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, text_width, bias=False)

    def _heads(self, t):
        b, n, _ = t.shape
        return t.reshape(b, n, self.heads, self.dim_head).transpose(1, 2)

    def forward(self, media, latents):
        media = self.norm_media(media)
        latents = self.norm_latents(latents)
        q = self._heads(self.to_q(latents)) * self.dim_head**-0.5
        k, v = self.to_kv(media).chunk(2, dim=-1)
        k, v = self._heads(k), self._heads(v)
        probs = torch.softmax(q @ k.transpose(-2, -1), dim=-1)
        out = (probs @ v).transpose(1, 2).flatten(2)
        return self.to_out(out)


def feed_forward(dim, mult=4):
    # Sequential indices 0 (norm), 1, 3 are the checkpoint names; 2 is the GELU.
    return nn.Sequential(
        nn.LayerNorm(dim),
        nn.Linear(dim, dim * mult, bias=False),
        nn.GELU(),
        nn.Linear(dim * mult, dim, bias=False),
    )


class PerceiverResampler(nn.Module):
    def __init__(self, vision_width, text_width, depth, num_latents):
        super().__init__()
        self.latents = nn.Parameter(torch.zeros(num_latents, text_width))
        self.layers = nn.ModuleList(
            [
                nn.ModuleList([PerceiverAttention(vision_width, text_width), feed_forward(text_width)])
                for _ in range(depth)
            ]
        )
        self.norm = nn.LayerNorm(text_width)

    def forward(self, media):
        latents = self.latents.unsqueeze(0).expand(media.shape[0], -1, -1)
        for attn, ff in self.layers:
            latents = attn(media, latents) + latents
            latents = ff(latents) + latents
        return self.norm(latents)


# ---------------------------------------------------------------------------------------
# LLM adapters (inserted into HF LlamaDecoderLayer outputs)
# ---------------------------------------------------------------------------------------


class Adapter(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.adapter_norm_before = nn.LayerNorm(dim)  # eps 1e-5
        self.adapter_down = nn.Linear(dim, dim // 2)
        self.adapter_up = nn.Linear(dim // 2, dim)
        self.scaling = nn.Parameter(torch.ones(1))

    def forward(self, h):
        up = self.adapter_up(F.silu(self.adapter_down(self.adapter_norm_before(h))))
        return h + up * self.scaling


class AdaptedLayer(nn.Module):
    """Runs a HF decoder layer, then the adapter on its hidden-state output (after the MLP residual)."""

    def __init__(self, layer, adapter):
        super().__init__()
        self.layer = layer
        self.output_adapter = adapter

    def forward(self, hidden_states, *args, **kwargs):
        outputs = self.layer(hidden_states, *args, **kwargs)
        return (self.output_adapter(outputs[0]),) + tuple(outputs[1:])


def install_adapters(llm, adapters):
    """adapters: {layer index: Adapter}; wraps those decoder layers of a LlamaForCausalLM."""
    for i, adapter in adapters.items():
        llm.model.layers[i] = AdaptedLayer(llm.model.layers[i], adapter)


def remove_adapters(llm):
    for i, layer in enumerate(llm.model.layers):
        if isinstance(layer, AdaptedLayer):
            llm.model.layers[i] = layer.layer


def add_pad_token(llm):
    """Append the [PAD] row (id = old vocab size) to embed_tokens and lm_head: mean of the old rows."""
    old = llm.config.vocab_size
    llm.resize_token_embeddings(old + 1)
    emb = llm.get_input_embeddings().weight.data
    head = llm.get_output_embeddings().weight.data
    emb[old:] = emb[:old].mean(dim=0, keepdim=True)
    head[old:] = head[:old].mean(dim=0, keepdim=True)
    return old


# ---------------------------------------------------------------------------------------
# The composition
# ---------------------------------------------------------------------------------------


class TinyLynx(nn.Module):
    def __init__(self, vit, bridge, llm, frame_pos):
        super().__init__()
        self.vision_encoder = vit
        self.bridge = bridge
        self.LLM = llm
        self.absolute_frame_pos_embed = frame_pos  # [1, F, 1, W] or None

    def media_tokens(self, pixels):
        """[B,3,H,W] -> [B,1+N,W]; video [B,F,3,H,W] -> [B,F*(1+N),W] with frame positions."""
        if pixels.dim() == 4:
            return self.vision_encoder(pixels)
        b, f = pixels.shape[:2]
        feats = self.vision_encoder(pixels.flatten(0, 1))
        feats = feats.reshape(b, f, feats.shape[1], feats.shape[2]) + self.absolute_frame_pos_embed
        return feats.flatten(1, 2)

    def vision_tokens(self, pixels):
        return self.bridge(self.media_tokens(pixels))

    def inputs(self, pixels, input_ids, text_mask):
        vis = self.vision_tokens(pixels)
        text = self.LLM.model.embed_tokens(input_ids)
        embeds = torch.cat([vis, text], dim=1)
        mask = torch.cat([torch.ones(vis.shape[:2], dtype=torch.long), text_mask], dim=1)
        return embeds, mask

    def last_logits(self, pixels, input_ids, text_mask):
        embeds, mask = self.inputs(pixels, input_ids, text_mask)
        pos = position_ids_from_mask(mask)
        out = self.LLM(inputs_embeds=embeds, attention_mask=mask, position_ids=pos, use_cache=False)
        return out.logits[:, -1, :]


def position_ids_from_mask(mask):
    pos = mask.long().cumsum(-1) - 1
    return pos.masked_fill(mask == 0, 1)


# ---------------------------------------------------------------------------------------
# Preprocessing, frames, prompts
# ---------------------------------------------------------------------------------------


def eval_transform(res, mean, std):
    """The release's evaluation transform (image and video frames)."""
    return transforms.Compose(
        [
            transforms.Resize(res, interpolation=InterpolationMode.BICUBIC, max_size=None, antialias=None),
            transforms.CenterCrop((res, res)),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )


def resized_size(width, height, res):
    """(w, h) after 'shorter side to res, longer side int(res * long / short)'."""
    if width <= height:
        return res, int(res * height / width)
    return int(res * width / height), res


def manual_preprocess(img, res, mean, std):
    """The same pipeline written out by hand (checks the documented rules against torchvision)."""
    w, h = resized_size(img.width, img.height, res)
    if (w, h) != img.size:
        img = img.resize((w, h), Image.BICUBIC)
    top = int(round((h - res) / 2.0))
    left = int(round((w - res) / 2.0))
    img = img.crop((left, top, left + res, top + res))
    x = torch.tensor(list(img.getdata()), dtype=torch.float32).reshape(res, res, 3) / 255.0
    x = x.permute(2, 0, 1)
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def sample_frame_ids(num_total, num_frames):
    """The release's deterministic frame choice (its `training=False` branch).

    More frames than num_frames: num_frames contiguous segments, the first (num_total mod
    num_frames) one frame longer, the first index of each. Otherwise all frames, indices
    repeated cyclically (i % num_total) up to num_frames, then sorted.
    """
    if num_total <= num_frames:
        return sorted(i % num_total for i in range(num_frames))
    stride = num_total // num_frames
    extra = num_total - num_frames * stride
    ids, cursor = [], 0
    for seg in range(num_frames):
        ids.append(cursor)
        cursor += stride + (1 if seg < extra else 0)
    return ids


def load_media(paths, anns, key, res, mean, std, num_frames):
    """Pixels for annotations: images [B,3,res,res] or videos [B,F,3,res,res], plus frame ids.

    paths maps a media file name to its path; a video file is a JSON list of base64 frames.
    """
    tf = eval_transform(res, mean, std)
    batch, frame_ids = [], []
    for ann in anns:
        path = paths[os.path.basename(ann[key])]
        if key == "image":
            batch.append(tf(Image.open(path).convert("RGB")))
            continue
        with open(path) as f:
            frames = json.load(f)
        ids = sample_frame_ids(len(frames), num_frames)
        frame_ids.append(ids)
        imgs = [Image.open(io.BytesIO(base64.b64decode(frames[i]))).convert("RGB") for i in ids]
        batch.append(torch.stack([tf(im) for im in imgs]))
    return torch.stack(batch), frame_ids


def prompt_text(template, question, lower):
    text = template.format(question=question).strip()
    return text.lower() if lower else text


def prompt_ids(sp, text, bos_id, max_input_tokens):
    ids = [bos_id] + sp.encode(text)
    return ids[-max_input_tokens:] if max_input_tokens > 0 else ids


def left_pad(batch_ids, pad_id):
    longest = max(len(ids) for ids in batch_ids)
    ids = [[pad_id] * (longest - len(x)) + x for x in batch_ids]
    mask = [[0] * (longest - len(x)) + [1] * len(x) for x in batch_ids]
    return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)


def check_close(name, a, b, tol):
    err = (a - b).abs().max().item()
    if not math.isfinite(err) or err > tol:
        raise AssertionError(f"{name}: max abs diff {err} > {tol}")
    return err
