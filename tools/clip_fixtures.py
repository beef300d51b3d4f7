#!/usr/bin/python3
"""Write the test fixtures of the paper-scale image judges: CLIP towers, DreamSim, and the
reference pixels of their preprocessing.

Run from the repository root with Debian's python (torch 1.13, onnx 1.12; no PIL):

    /usr/bin/python3 tools/clip_fixtures.py

It writes, with fixed seeds:

  models/judges/imageprep/testdata/
    wide.png, tall.png         two fixed RGB test images (62x47 upsamples, 320x400 downsamples)
    clip-wide.png, clip-tall.png
                               OpenAI CLIP's preprocessing in uint8: resize of the short side to
                               224 with PIL's bicubic filter, then torchvision's centre crop 224
    square-wide.png, square-tall.png
                               DreamSim's: Resize((224, 224)) with PIL's bicubic filter
  models/judges/clipvit/testdata/ (its tests read the images from imageprep/testdata)
    towers/onnx/text_model.onnx   input_ids int64 [text_batch_size, sequence_length] ->
                                  text_embeds [text_batch_size, 12], last_hidden_state
    towers/onnx/vision_model.onnx pixel_values float32 [batch_size, 3, height, width] ->
                                  image_embeds [batch_size, 12], last_hidden_state
                                  (the transformers.js / Xenova layout of separate towers)
    joint/model.onnx              input_ids, pixel_values, attention_mask ->
                                  logits_per_image, logits_per_text, text_embeds, image_embeds
                                  (optimum-cli's CLIPOnnxConfig, same weights as the towers)
    towers/ and joint/ each hold a tiny Hugging Face tokenizer (vocab.json, merges.txt,
    special_tokens_map.json): the 512 byte symbols, a few merges, then the two specials, so
    that <|endoftext|> has the largest id as in CLIP's real vocabulary.
    reference.json             the texts, their ids, and the embeddings torch computes for
                               them and for wide.png and tall.png preprocessed as above
  models/judges/dreamsim/testdata/
    model.onnx                 image float32 [batch, 3, 224, 224] in [0, 1] -> embedding
                               [batch, 24]: three tiny backbones, each normalising with its own
                               mean/std (DINO: ImageNet's, CLIP and OpenCLIP: CLIP's), their
                               features concatenated and passed through dreamsim's
                               normalize_embedding (divide by the norm, subtract the mean)
    reference.json             the embeddings of wide.png and tall.png

PIL is not installed here, so the reference resize is a separate implementation of PIL's
ImagingResample for 8-bit images (libImaging/Resample.c: precompute_coeffs with the bicubic
filter a = -0.5 and support 2 scaled by the downscale factor, coefficients normalised and
rounded to 22-bit fixed point, a horizontal pass then a vertical pass, each rounding and
clipping to uint8), written from the algorithm, not from cocoflow's Go code.
"""

import json
import math
import os
import struct
import sys
import zlib

import numpy as np
import onnx
import torch

OPSET = 14
PREC = 22  # PIL's PRECISION_BITS for 8-bit images: 32 - 8 - 2
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------- PNG without PIL

def write_png(path, rgb):
    """Write an HxWx3 uint8 array as an 8-bit RGB PNG."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n"
    png += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9))
    png += chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def test_image(w, h, seed, noise):
    """A fixed image with smooth gradients, hard edges and uniform noise of +-noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / (w / 5.0)) * np.cos(y / (h / 3.0))
    g = 255.0 * x / max(w - 1, 1)
    b = np.where(((x // 7) + (y // 5)) % 2 == 0, 230.0, 25.0)
    disc = (x - w * 0.6) ** 2 + (y - h * 0.4) ** 2 < (min(w, h) * 0.25) ** 2
    r = np.where(disc, 250.0, r)
    g = np.where(disc, 10.0, g)
    img = np.stack([r, g, b], axis=-1) + rng.integers(-noise, noise + 1, size=(h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- PIL's bicubic resample

def bicubic(x):
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def coeffs(in_size, out_size):
    """PIL's precompute_coeffs for the box (0, in_size), then the 8-bit fixed-point weights."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    bounds, weights = [], []
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        ss = 1.0 / filterscale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        k = [bicubic((x + xmin - center + 0.5) * ss) for x in range(xmax)]
        ww = sum(k)
        if ww != 0.0:
            k = [v / ww for v in k]
        fixed = [int(-0.5 + v * (1 << PREC)) if v < 0 else int(0.5 + v * (1 << PREC)) for v in k]
        bounds.append((xmin, xmax))
        weights.append(np.array(fixed, dtype=np.int64))
    return bounds, weights


def clip8(v):
    """PIL's clip8: the fixed-point sum to uint8, saturating."""
    return np.where(v >= (1 << PREC << 8), 255, np.where(v <= 0, 0, v >> PREC))


def pass_1d(img, bounds, weights, axis):
    """One resampling pass along axis (1: horizontal, 0: vertical) of an HxWx3 int64 image."""
    out = []
    for (lo, n), k in zip(bounds, weights):
        seg = img[:, lo:lo + n, :] if axis == 1 else img[lo:lo + n, :, :]
        if axis == 1:
            acc = (1 << (PREC - 1)) + np.einsum("hwc,w->hc", seg, k)
        else:
            acc = (1 << (PREC - 1)) + np.einsum("hwc,h->wc", seg, k)
        out.append(clip8(acc))
    return np.stack(out, axis=axis)


def pil_resize(rgb, w, h):
    """PIL's Image.resize((w, h), Image.BICUBIC) of an 8-bit RGB image."""
    ih, iw, _ = rgb.shape
    img = rgb.astype(np.int64)
    need_h, need_v = w != iw, h != ih
    hb, hk = coeffs(iw, w)
    vb, vk = coeffs(ih, h)
    if need_h:
        first = vb[0][0]
        last = vb[-1][0] + vb[-1][1]
        img = pass_1d(img[first:last], hb, hk, axis=1)
        vb = [(lo - first, n) for lo, n in vb]
    if need_v:
        img = pass_1d(img, vb, vk, axis=0)
    return img.astype(np.uint8)


def clip_pixels(rgb, size=224):
    """OpenAI CLIP's Resize(size, BICUBIC) + CenterCrop(size) as torchvision does it on PIL."""
    h, w, _ = rgb.shape
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(size * long / short)
    nw, nh = (size, new_long) if w <= h else (new_long, size)
    if (nw, nh) != (w, h):
        rgb = pil_resize(rgb, nw, nh)
    top = int(round((nh - size) / 2.0))
    left = int(round((nw - size) / 2.0))
    return rgb[top:top + size, left:left + size]


def to_tensor(rgb, mean=None, std=None):
    """ToTensor (/255, CHW) and optionally Normalize, as a [1,3,H,W] float32 tensor."""
    x = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()
    if mean is not None:
        m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        x = (x - m) / s
    return x.unsqueeze(0)


# ---------------------------------------------------------------- a tiny CLIP tokenizer

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


MERGES = [("p", "h"), ("o", "t"), ("ph", "ot"), ("phot", "o</w>"), ("o", "f</w>"), ("a", "t</w>"),
          ("c", "at</w>"), ("t", "h"), ("th", "e</w>"), ("d", "o"), ("do", "g</w>"), ("o", "n</w>")]


def tiny_vocab():
    byte_syms = list(bytes_to_unicode().values())
    tokens = byte_syms + [s + "</w>" for s in byte_syms] + [a + b for a, b in MERGES]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}


def write_tokenizer(folder, vocab):
    with open(os.path.join(folder, "vocab.json"), "w") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")
        for a, b in MERGES:
            f.write(f"{a} {b}\n")
    with open(os.path.join(folder, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
                   "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}, f)


def tokenize(text, vocab):
    """CLIP's BPE for lower-case ASCII words separated by spaces (all the fixture texts use)."""
    ranks = {m: i for i, m in enumerate(MERGES)}
    ids = [vocab["<|startoftext|>"]]
    for word in text.lower().split():
        assert word.isalpha() and word.isascii(), word
        syms = list(word[:-1]) + [word[-1] + "</w>"]
        while len(syms) > 1:
            pairs = [(ranks.get((syms[i], syms[i + 1]), 1 << 30), i) for i in range(len(syms) - 1)]
            rank, i = min(pairs)
            if rank == 1 << 30:
                break
            syms = syms[:i] + [syms[i] + syms[i + 1]] + syms[i + 2:]
        ids += [vocab[s] for s in syms]
    ids.append(vocab["<|endoftext|>"])
    return ids


# ---------------------------------------------------------------- tiny CLIP towers

WIDTH, PROJ, CTX, PATCH = 16, 12, 77, 14


class Attention(torch.nn.Module):
    """Pre-LN transformer block: single-head attention with an additive mask, then an MLP."""

    def __init__(self, width):
        super().__init__()
        self.ln1 = torch.nn.LayerNorm(width)
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.out = torch.nn.Linear(width, width)
        self.ln2 = torch.nn.LayerNorm(width)
        self.fc1 = torch.nn.Linear(width, 2 * width)
        self.fc2 = torch.nn.Linear(2 * width, width)

    def forward(self, x, mask=None):
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        s = q @ k.transpose(1, 2) / math.sqrt(x.shape[-1])
        if mask is not None:
            s = s + mask
        x = x + self.out(s.softmax(-1) @ v)
        h = self.fc1(self.ln2(x))
        return x + self.fc2(h * torch.sigmoid(1.702 * h))  # quick GELU, as CLIP


class TextTower(torch.nn.Module):
    """CLIPTextModelWithProjection in miniature: causal attention, final LN, pooled at the
    argmax of input_ids (the EOS, CLIP's largest id), projected without bias."""

    def __init__(self, vocab_size):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab_size, WIDTH)
        self.pos = torch.nn.Parameter(0.1 * torch.randn(CTX, WIDTH))
        self.block = Attention(WIDTH)
        self.ln = torch.nn.LayerNorm(WIDTH)
        self.proj = torch.nn.Linear(WIDTH, PROJ, bias=False)

    def forward(self, input_ids, attention_mask=None):
        n = input_ids.shape[1]
        x = self.tok(input_ids) + self.pos[:n]
        causal = torch.full((n, n), -1e9).triu(1).unsqueeze(0)
        if attention_mask is not None:
            causal = causal + (1.0 - attention_mask[:, None, :].to(torch.float32)) * -1e9
        hidden = self.ln(self.block(x, causal))
        pooled = hidden[torch.arange(hidden.shape[0]), input_ids.argmax(dim=-1)]
        return self.proj(pooled), hidden


class VisionTower(torch.nn.Module):
    """CLIPVisionModelWithProjection in miniature: 14x14 patches, class token, pre-LN, one
    block, post-LN of the class token, projected without bias."""

    def __init__(self):
        super().__init__()
        self.patch = torch.nn.Conv2d(3, WIDTH, PATCH, stride=PATCH, bias=False)
        self.cls = torch.nn.Parameter(0.1 * torch.randn(WIDTH))
        self.pos = torch.nn.Parameter(0.1 * torch.randn(1 + (224 // PATCH) ** 2, WIDTH))
        self.pre = torch.nn.LayerNorm(WIDTH)
        self.block = Attention(WIDTH)
        self.post = torch.nn.LayerNorm(WIDTH)
        self.proj = torch.nn.Linear(WIDTH, PROJ, bias=False)

    def forward(self, pixel_values):
        p = self.patch(pixel_values).flatten(2).transpose(1, 2)
        cls = self.cls.expand(p.shape[0], 1, WIDTH)
        x = self.pre(torch.cat([cls, p], dim=1) + self.pos)
        hidden = self.block(x)
        return self.proj(self.post(hidden[:, 0])), hidden


class TextOnly(torch.nn.Module):
    def __init__(self, text):
        super().__init__()
        self.text = text

    def forward(self, input_ids):
        return self.text(input_ids)


class Joint(torch.nn.Module):
    """CLIPModel: normalised embeddings and logits scaled by exp(logit_scale)."""

    def __init__(self, text, vision):
        super().__init__()
        self.text, self.vision = text, vision
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(100.0)))

    def forward(self, input_ids, pixel_values, attention_mask):
        t, _ = self.text(input_ids, attention_mask)
        v, _ = self.vision(pixel_values)
        t = t / t.norm(dim=-1, keepdim=True)
        v = v / v.norm(dim=-1, keepdim=True)
        logits_per_text = self.logit_scale.exp() * t @ v.t()
        return logits_per_text.t(), logits_per_text, t, v


# ---------------------------------------------------------------- tiny DreamSim

class Backbone(torch.nn.Module):
    """A ViT-B/16 stand-in: its own normalisation, 16x16 patches, a class token, one block."""

    def __init__(self, mean, std, dim):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self.patch = torch.nn.Conv2d(3, dim, 16, stride=16)
        self.cls = torch.nn.Parameter(0.1 * torch.randn(dim))
        self.pos = torch.nn.Parameter(0.1 * torch.randn(1 + 14 * 14, dim))
        self.block = Attention(dim)

    def forward(self, img):
        x = (img - self.mean) / self.std
        p = self.patch(x).flatten(2).transpose(1, 2)
        cls = self.cls.expand(p.shape[0], 1, p.shape[2])
        return self.block(torch.cat([cls, p], dim=1) + self.pos)[:, 0]


class DreamSim(torch.nn.Module):
    """PerceptualModel.embed of the ensemble: features concatenated, normalize_embedding."""

    def __init__(self):
        super().__init__()
        self.models = torch.nn.ModuleList([
            Backbone(IMAGENET_MEAN, IMAGENET_STD, 8),  # dino_vitb16
            Backbone(CLIP_MEAN, CLIP_STD, 8),  # clip_vitb16
            Backbone(CLIP_MEAN, CLIP_STD, 8),  # open_clip_vitb16
        ])

    def forward(self, image):
        e = torch.cat([m(image) for m in self.models], dim=-1)
        e = e / e.norm(dim=1, keepdim=True)
        return e - e.mean(dim=1, keepdim=True)


# ---------------------------------------------------------------- export

def export(model, args, path, input_names, output_names, dynamic_axes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.eval()
    with torch.no_grad():
        torch.onnx.export(model, args, path, opset_version=OPSET, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes,
                          do_constant_folding=True)
    onnx.checker.check_model(onnx.load(path))
    print(path, os.path.getsize(path), "bytes", file=sys.stderr)


def rows(t):
    return [[float(v) for v in row] for row in t.detach().numpy().astype(np.float64)]


def main():
    prep = os.path.join("models", "judges", "imageprep", "testdata")
    clipdir = os.path.join("models", "judges", "clipvit", "testdata")
    dsdir = os.path.join("models", "judges", "dreamsim", "testdata")
    for d in (prep, clipdir, dsdir):
        os.makedirs(d, exist_ok=True)

    images = {"wide": test_image(62, 47, 1, 6), "tall": test_image(320, 400, 2, 0)}
    clip_px, square_px = {}, {}
    for name, rgb in images.items():
        write_png(os.path.join(prep, name + ".png"), rgb)
        clip_px[name] = clip_pixels(rgb)
        square_px[name] = pil_resize(rgb, 224, 224)
        write_png(os.path.join(prep, "clip-" + name + ".png"), clip_px[name])
        write_png(os.path.join(prep, "square-" + name + ".png"), square_px[name])
    order = ["wide", "tall"]

    # CLIP
    torch.manual_seed(0)
    vocab = tiny_vocab()
    text, vision = TextTower(len(vocab)), VisionTower()
    joint = Joint(text, vision)
    for m in (text, vision, joint):
        m.eval()
    towers = os.path.join(clipdir, "towers")
    jointdir = os.path.join(clipdir, "joint")
    for d in (towers, jointdir):
        os.makedirs(d, exist_ok=True)
        write_tokenizer(d, vocab)
    texts = ["a photo of a cat", "the dog on the beach", "a photo"]
    ids = [tokenize(t, vocab) for t in texts]
    eos = vocab["<|endoftext|>"]
    padded = torch.tensor([i + [eos] * (CTX - len(i)) for i in ids], dtype=torch.int64)
    mask = torch.tensor([[1] * len(i) + [0] * (CTX - len(i)) for i in ids], dtype=torch.int64)
    pixels = torch.cat([to_tensor(clip_px[n], CLIP_MEAN, CLIP_STD) for n in order])

    export(TextOnly(text), (padded,), os.path.join(towers, "onnx", "text_model.onnx"),
           ["input_ids"], ["text_embeds", "last_hidden_state"],
           {"input_ids": {0: "text_batch_size", 1: "sequence_length"},
            "text_embeds": {0: "text_batch_size"},
            "last_hidden_state": {0: "text_batch_size", 1: "sequence_length"}})
    export(vision, (pixels,), os.path.join(towers, "onnx", "vision_model.onnx"),
           ["pixel_values"], ["image_embeds", "last_hidden_state"],
           {"pixel_values": {0: "batch_size", 1: "num_channels", 2: "height", 3: "width"},
            "image_embeds": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"}})
    export(joint, (padded, pixels, mask), os.path.join(jointdir, "model.onnx"),
           ["input_ids", "pixel_values", "attention_mask"],
           ["logits_per_image", "logits_per_text", "text_embeds", "image_embeds"],
           {"input_ids": {0: "text_batch_size", 1: "sequence_length"},
            "pixel_values": {0: "image_batch_size", 1: "num_channels", 2: "height", 3: "width"},
            "attention_mask": {0: "text_batch_size", 1: "sequence_length"},
            "logits_per_image": {0: "image_batch_size", 1: "text_batch_size"},
            "logits_per_text": {0: "text_batch_size", 1: "image_batch_size"},
            "text_embeds": {0: "text_batch_size"}, "image_embeds": {0: "image_batch_size"}})
    with torch.no_grad():
        t_emb, _ = text(padded, mask)
        i_emb, _ = vision(pixels)
    ref = {"torch": torch.__version__, "opset": OPSET, "texts": texts, "ids": ids,
           "images": [n + ".png" for n in order],
           "text_embeds": rows(t_emb), "image_embeds": rows(i_emb)}
    with open(os.path.join(clipdir, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")

    # DreamSim
    torch.manual_seed(1)
    ds = DreamSim().eval()
    square = torch.cat([to_tensor(square_px[n]) for n in order])
    export(ds, (square,), os.path.join(dsdir, "model.onnx"), ["image"], ["embedding"],
           {"image": {0: "batch"}, "embedding": {0: "batch"}})
    with torch.no_grad():
        emb = ds(square)
    ref = {"torch": torch.__version__, "opset": OPSET, "images": [n + ".png" for n in order],
           "embedding": rows(emb)}
    with open(os.path.join(dsdir, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
