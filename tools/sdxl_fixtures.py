#!/usr/bin/python3
"""Writes the SDXL signature fixture of models/family/sdxl (run with Debian's python3, torch 1.13, onnx 1.12).

    /usr/bin/python3 tools/sdxl_fixtures.py [models/family/sdxl/testdata/tiny-sdxl]

The folder has the layout `optimum-cli export onnx --model stabilityai/stable-diffusion-xl-base-1.0`
writes (optimum-onnx main of 2026-04, the ONNX exporter that left optimum 1.27; optimum >= 1.23
names the VAE encoder's output latent_parameters):

  model_index.json                      StableDiffusionXLPipeline, force_zeros_for_empty_prompt
  scheduler/scheduler_config.json       EulerDiscreteScheduler: scaled_linear 0.00085-0.012,
                                        T=1000, leading spacing, steps_offset 1, epsilon
  tokenizer/, tokenizer_2/              vocab.json, merges.txt, tokenizer_config.json,
                                        special_tokens_map.json (pad <|endoftext|> and "!")
  text_encoder/model.onnx               CLIPTextModel: input_ids int64 [batch, sequence] ->
                                        last_hidden_state, pooler_output, hidden_states.0..N
  text_encoder_2/model.onnx             CLIPTextModelWithProjection: -> text_embeds,
                                        last_hidden_state, hidden_states.0..N
  unet/model.onnx + model.onnx_data     UNet2DConditionModel (addition_embed_type text_time):
                                        sample [b,4,h,w], timestep float32 scalar,
                                        encoder_hidden_states [b,s,D1+D2], text_embeds [b,P],
                                        time_ids [b,6] -> out_sample; weights as external data
  vae_encoder/model.onnx                sample [b,3,H,W] -> latent_parameters [b,8,H/8,W/8]
  vae_decoder/model.onnx                latent_sample [b,4,h,w] -> sample [b,3,8h,8w]
  each component folder has its diffusers/transformers config.json.

There are no transformers or diffusers in Debian, so the modules below are written after
transformers' modeling_clip.py and diffusers' unet_2d_condition.py / autoencoder_kl.py, module for
module, so that torch.onnx.export (opset 17, torch 1.13's highest) emits the op patterns of the real
exports: GroupNorm as Reshape/InstanceNormalization/Reshape/Mul/Add, SiLU and quick-GELU as
Sigmoid, nearest upsampling as Resize, attention as MatMul/Softmax, time_ids.flatten() as a
Reshape of Concat(Slice(Shape, 0:0), [-1]), GEGLU's chunk(2, -1), CLIP's causal mask
(Range/Less/Where/Expand), the ArgMax pooling at EOS, text_projection and the hidden_states
outputs. Widths are tiny and the BPE vocabulary is small (byte symbols plus merges learnt from the
tiny world's words), so the folder is about 2.7 MB (1.1 MB of it the UNet's model.onnx_data).

Also written, beside the folder (so that the folder is exactly an export): tiny-sdxl-reference.json
(180 KB; tensors as base64 float32/int64, exact) with torch outputs for the parity tests of
models/family/sdxl: tokenizer ids, both text encoders from ids, the UNet, both VAE halves, and
the torch autograd gradient of a scalar loss through both text encoders (as functions of token
embeddings plus the EOS index) and the UNet with respect to the pseudo-words inserted before the
concept token. Everything is seeded: a rerun reproduces the same files byte for byte.
"""
import base64
import json
import math
import os
import re
import shutil
import sys

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

OPSET = 17
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---- sizes (SDXL's real values in comments) -------------------------------------------------
MAX_LEN = 77                    # 77
TE1 = dict(hidden=32, layers=3, heads=2, inter=64, act="quick_gelu", proj=32)    # CLIP ViT-L: 768, 12, 12, 3072
TE2 = dict(hidden=48, layers=3, heads=2, inter=96, act="gelu", proj=40)          # OpenCLIP bigG: 1280, 32, 20, 5120, proj 1280
UNET_CH = (16, 32)              # (320, 640, 1280)
UNET_GROUPS = 4                 # 32
UNET_HEADS = 2                  # attention_head_dim (5, 10, 20), read as head counts
ADD_TIME_DIM = 8                # addition_time_embed_dim 256
LATENT = 4                      # latent_channels 4
VAE_CH = (8, 8, 16, 16)         # (128, 256, 512, 512): 4 blocks, a factor 8
VAE_GROUPS = 4                  # 32
IMAGE = 64                      # 1024
SCALING = 0.13025               # SDXL VAE scaling_factor


# ---- tokenizer: CLIP byte-level BPE ---------------------------------------------------------

def bytes_to_unicode():
    """CLIP's map of the 256 bytes to printable characters, in its order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs])), bs


SPLIT = re.compile(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+")


def pieces(text):
    """CLIP's cleaning and pre-tokenization for ASCII text (lower-case, collapse spaces)."""
    text = re.sub(r"\s+", " ", text).strip().lower()
    return SPLIT.findall(text)


def learn_merges(words, n):
    """Byte-pair merges learnt on a word list, CLIP style (the last symbol carries </w>)."""
    b2u, _ = bytes_to_unicode()
    seqs = {}
    for w in words:
        for p in pieces(w):
            sym = [b2u[b] for b in p.encode("utf-8")]
            sym[-1] += "</w>"
            seqs[tuple(sym)] = seqs.get(tuple(sym), 0) + 1
    merges = []
    for _ in range(n):
        counts = {}
        for s, c in seqs.items():
            for a, b in zip(s, s[1:]):
                counts[(a, b)] = counts.get((a, b), 0) + c
        if not counts:
            break
        best = max(sorted(counts), key=lambda k: counts[k])
        merges.append(best)
        merged = {}
        for s, c in seqs.items():
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            merged[tuple(out)] = merged.get(tuple(out), 0) + c
        seqs = merged
    return merges


class Tokenizer:
    """The CLIP BPE tokenizer over a vocabulary built as OpenAI's: bytes, bytes+</w>, merges, specials."""

    def __init__(self, merges):
        b2u, order = bytes_to_unicode()
        self.b2u = b2u
        tokens = [b2u[b] for b in order] + [b2u[b] + "</w>" for b in order] + [a + b for a, b in merges]
        tokens += ["<|startoftext|>", "<|endoftext|>"]
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.merges = merges
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.bos, self.eos = self.vocab["<|startoftext|>"], self.vocab["<|endoftext|>"]

    def bpe(self, piece):
        word = [self.b2u[b] for b in piece.encode("utf-8")]
        word[-1] += "</w>"
        while len(word) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(word, word[1:]))]
            rank, _ = min(pairs)
            if rank == 1 << 30:
                break
            a, b = self.merges[rank]
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        return [self.vocab[w] for w in word]

    def encode(self, text):
        ids = [self.bos]
        for p in pieces(text):
            ids += self.bpe(p)
        return ids + [self.eos]

    def pad(self, ids, pad_id):
        return ids + [pad_id] * (MAX_LEN - len(ids))


# ---- CLIP text encoders (after transformers' modeling_clip.py) ------------------------------

class CLIPAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.d, self.heads, self.hd = d, heads, d // heads
        self.scale = self.hd ** -0.5
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def _shape(self, x, seq, bsz):
        return x.view(bsz, seq, self.heads, self.hd).transpose(1, 2).contiguous()

    def forward(self, x, causal_mask):
        bsz, tgt, d = x.size()
        q = self.q_proj(x) * self.scale
        k = self._shape(self.k_proj(x), -1, bsz)
        v = self._shape(self.v_proj(x), -1, bsz)
        proj = (bsz * self.heads, -1, self.hd)
        q = self._shape(q, tgt, bsz).view(*proj)
        k, v = k.view(*proj), v.view(*proj)
        src = k.size(1)
        w = torch.bmm(q, k.transpose(1, 2))
        w = w.view(bsz, self.heads, tgt, src) + causal_mask
        w = w.view(bsz * self.heads, tgt, src)
        w = F.softmax(w, dim=-1)
        o = torch.bmm(w, v)
        o = o.view(bsz, self.heads, tgt, self.hd).transpose(1, 2).reshape(bsz, tgt, d)
        return self.out_proj(o)


class CLIPEncoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["hidden"]
        self.self_attn = CLIPAttention(d, cfg["heads"])
        self.layer_norm1, self.layer_norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, cfg["inter"]), nn.Linear(cfg["inter"], d)
        self.act = cfg["act"]

    def mlp(self, x):
        x = self.fc1(x)
        x = x * torch.sigmoid(1.702 * x) if self.act == "quick_gelu" else F.gelu(x)
        return self.fc2(x)

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


def causal_mask(bsz, tgt, dtype):
    """transformers' AttentionMaskConverter._make_causal_mask, expanded to [bsz, 1, tgt, tgt]."""
    mask = torch.full((tgt, tgt), torch.finfo(dtype).min)
    cond = torch.arange(mask.size(-1))
    mask.masked_fill_(cond < (cond + 1).view(mask.size(-1), 1), 0)
    return mask.to(dtype)[None, None, :, :].expand(bsz, 1, tgt, tgt)


class CLIPText(nn.Module):
    """CLIPTextModel (projection False) or CLIPTextModelWithProjection, with output_hidden_states."""

    def __init__(self, cfg, vocab, projection):
        super().__init__()
        d = cfg["hidden"]
        self.token_embedding = nn.Embedding(vocab, d)
        self.position_embedding = nn.Embedding(MAX_LEN, d)
        self.register_buffer("position_ids", torch.arange(MAX_LEN).expand((1, -1)), persistent=False)
        self.layers = nn.ModuleList(CLIPEncoderLayer(cfg) for _ in range(cfg["layers"]))
        self.final_layer_norm = nn.LayerNorm(d)
        self.text_projection = nn.Linear(d, cfg["proj"], bias=False) if projection else None

    def encode(self, inputs_embeds, eos):
        """The encoder as CoCoIns needs it: token embeddings [B, L, D] and the EOS index [B]."""
        seq = inputs_embeds.shape[-2]
        h = inputs_embeds + self.position_embedding(self.position_ids[:, :seq])
        mask = causal_mask(h.shape[0], seq, h.dtype)
        states = []
        for layer in self.layers:
            states.append(h)
            h = layer(h, mask)
        states.append(h)
        last = self.final_layer_norm(h)
        pooled = last[torch.arange(last.shape[0]), eos]
        return last, pooled, states

    def forward(self, input_ids):
        shape = input_ids.size()
        input_ids = input_ids.view(-1, shape[-1])
        seq = shape[-1]
        h = self.token_embedding(input_ids) + self.position_embedding(self.position_ids[:, :seq])
        mask = causal_mask(shape[0], seq, h.dtype)
        states = []
        for layer in self.layers:
            states.append(h)
            h = layer(h, mask)
        states.append(h)
        last = self.final_layer_norm(h)
        # transformers: eos_token_id == 2 (the legacy value in SDXL's configs) pools at argmax(ids).
        pooled = last[torch.arange(last.shape[0]), input_ids.to(dtype=torch.int).argmax(dim=-1)]
        if self.text_projection is not None:
            return (self.text_projection(pooled), last, *states)
        return (last, pooled, *states)


# ---- UNet (after diffusers' unet_2d_condition.py and its blocks) ----------------------------

def timestep_embedding(t, dim, flip_sin_to_cos=True, shift=0.0, max_period=10000):
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32)
    exponent = exponent / (half - shift)
    emb = t[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    return emb


class TimestepEmbedding(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.linear_1, self.linear_2 = nn.Linear(cin, dim), nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


class Resnet(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout) if temb else None
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class Attention(nn.Module):
    """diffusers' Attention with the classic AttnProcessor (baddbmm scores, softmax, bmm)."""

    def __init__(self, dim, heads, context=None, groups=None):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.group_norm = nn.GroupNorm(groups, dim, eps=1e-6) if groups else None
        self.to_q = nn.Linear(dim, dim, bias=groups is not None)
        self.to_k = nn.Linear(context or dim, dim, bias=groups is not None)
        self.to_v = nn.Linear(context or dim, dim, bias=groups is not None)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])

    def head_to_batch(self, x):
        b, s, d = x.shape
        return x.reshape(b, s, self.heads, d // self.heads).permute(0, 2, 1, 3).reshape(b * self.heads, s, d // self.heads)

    def batch_to_head(self, x):
        b, s, d = x.shape
        return x.reshape(b // self.heads, self.heads, s, d).permute(0, 2, 1, 3).reshape(b // self.heads, s, d * self.heads)

    def forward(self, x, context=None):
        residual = x
        ndim = x.ndim
        if ndim == 4:
            b, c, h, w = x.shape
            x = x.view(b, c, h * w).transpose(1, 2)
        if self.group_norm is not None:
            x = self.group_norm(x.transpose(1, 2)).transpose(1, 2)
        context = x if context is None else context
        q = self.head_to_batch(self.to_q(x))
        k = self.head_to_batch(self.to_k(context))
        v = self.head_to_batch(self.to_v(context))
        scores = torch.baddbmm(torch.empty(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype), q, k.transpose(-1, -2), beta=0, alpha=self.scale)
        o = torch.bmm(scores.softmax(dim=-1), v)
        o = self.to_out[1](self.to_out[0](self.batch_to_head(o)))
        if ndim == 4:
            o = o.transpose(-1, -2).reshape(b, c, h, w)
        if self.group_norm is not None:  # the VAE's mid-block attention has a residual connection
            o = o + residual
        return o


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x):
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, heads, context):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads)
        self.attn2 = Attention(dim, heads, context=context)
        self.ff = nn.ModuleList([GEGLU(dim, dim * 4), nn.Dropout(0.0), nn.Linear(dim * 4, dim)])

    def forward(self, x, context):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        h = self.norm3(x)
        for m in self.ff:
            h = m(h)
        return h + x


class Transformer2D(nn.Module):
    """Transformer2DModel with use_linear_projection (SDXL)."""

    def __init__(self, dim, heads, context, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, dim, eps=1e-6)
        self.proj_in = nn.Linear(dim, dim)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(dim, heads, context)])
        self.proj_out = nn.Linear(dim, dim)

    def forward(self, x, context):
        b, _, h, w = x.shape
        residual = x
        x = self.norm(x)
        inner = x.shape[1]
        x = x.permute(0, 2, 3, 1).reshape(b, h * w, inner)
        x = self.proj_in(x)
        for blk in self.transformer_blocks:
            x = blk(x, context)
        x = self.proj_out(x)
        x = x.reshape(b, h, w, inner).permute(0, 3, 1, 2).contiguous()
        return x + residual


class Downsample(nn.Module):
    def __init__(self, ch, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:  # the VAE pads asymmetrically
            x = F.pad(x, (0, 1, 0, 1), mode="constant", value=0)
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock(nn.Module):
    def __init__(self, cin, cout, temb, attn, context, downsample):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(cin, cout, temb, UNET_GROUPS, 1e-5)])
        self.attentions = nn.ModuleList([Transformer2D(cout, UNET_HEADS, context, UNET_GROUPS)]) if attn else None
        self.downsamplers = nn.ModuleList([Downsample(cout, 1)]) if downsample else None

    def forward(self, x, temb, context):
        out = ()
        for i, r in enumerate(self.resnets):
            x = r(x, temb)
            if self.attentions is not None:
                x = self.attentions[i](x, context)
            out += (x,)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            out += (x,)
        return x, out


class UpBlock(nn.Module):
    def __init__(self, cin, prev, cout, temb, attn, context, upsample, layers):
        super().__init__()
        rs = []
        for j in range(layers):
            skip = cin if j == layers - 1 else cout
            rin = prev if j == 0 else cout
            rs.append(Resnet(rin + skip, cout, temb, UNET_GROUPS, 1e-5))
        self.resnets = nn.ModuleList(rs)
        self.attentions = nn.ModuleList(Transformer2D(cout, UNET_HEADS, context, UNET_GROUPS) for _ in rs) if attn else None
        self.upsamplers = nn.ModuleList([Upsample(cout)]) if upsample else None

    def forward(self, x, skips, temb, context):
        for i, r in enumerate(self.resnets):
            x = torch.cat([x, skips[-1]], dim=1)
            skips = skips[:-1]
            x = r(x, temb)
            if self.attentions is not None:
                x = self.attentions[i](x, context)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class MidBlock(nn.Module):
    def __init__(self, ch, temb, context):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(ch, ch, temb, UNET_GROUPS, 1e-5), Resnet(ch, ch, temb, UNET_GROUPS, 1e-5)])
        self.attentions = nn.ModuleList([Transformer2D(ch, UNET_HEADS, context, UNET_GROUPS)])

    def forward(self, x, temb, context):
        x = self.resnets[0](x, temb)
        x = self.attentions[0](x, context)
        return self.resnets[1](x, temb)


class UNet(nn.Module):
    """UNet2DConditionModel: down (DownBlock2D, CrossAttnDownBlock2D), mid, up (CrossAttnUpBlock2D, UpBlock2D)."""

    def __init__(self, context, text_embeds):
        super().__init__()
        c0, c1 = UNET_CH
        temb = c0 * 4
        self.conv_in = nn.Conv2d(LATENT, c0, 3, padding=1)
        self.time_embedding = TimestepEmbedding(c0, temb)
        self.add_embedding = TimestepEmbedding(text_embeds + 6 * ADD_TIME_DIM, temb)
        self.down_blocks = nn.ModuleList([
            DownBlock(c0, c0, temb, False, context, True),
            DownBlock(c0, c1, temb, True, context, False),
        ])
        self.mid_block = MidBlock(c1, temb, context)
        self.up_blocks = nn.ModuleList([
            UpBlock(c0, c1, c1, temb, True, context, True, 2),
            UpBlock(c0, c1, c0, temb, False, context, False, 2),
        ])
        self.conv_norm_out = nn.GroupNorm(UNET_GROUPS, c0, eps=1e-5)
        self.conv_out = nn.Conv2d(c0, LATENT, 3, padding=1)

    def forward(self, sample, timestep, encoder_hidden_states, text_embeds, time_ids):
        t = timestep
        if len(t.shape) == 0:
            t = t[None]
        t = t.expand(sample.shape[0])
        emb = self.time_embedding(timestep_embedding(t, UNET_CH[0]).to(dtype=sample.dtype))
        time_embeds = timestep_embedding(time_ids.flatten(), ADD_TIME_DIM)
        time_embeds = time_embeds.reshape((text_embeds.shape[0], -1))
        add = torch.concat([text_embeds, time_embeds], dim=-1).to(emb.dtype)
        emb = emb + self.add_embedding(add)

        x = self.conv_in(sample)
        skips = (x,)
        for blk in self.down_blocks:
            x, res = blk(x, emb, encoder_hidden_states)
            skips += res
        x = self.mid_block(x, emb, encoder_hidden_states)
        for blk in self.up_blocks:
            n = len(blk.resnets)
            res, skips = skips[-n:], skips[:-n]
            x = blk(x, res, emb, encoder_hidden_states)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


# ---- VAE (after diffusers' autoencoder_kl.py / vae.py) --------------------------------------

class VAEMid(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(ch, ch, None, VAE_GROUPS, 1e-6), Resnet(ch, ch, None, VAE_GROUPS, 1e-6)])
        self.attentions = nn.ModuleList([Attention(ch, 1, groups=VAE_GROUPS)])

    def forward(self, x):
        return self.resnets[1](self.attentions[0](self.resnets[0](x)))


class VAEEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_in = nn.Conv2d(3, VAE_CH[0], 3, padding=1)
        blocks, cin = [], VAE_CH[0]
        for i, c in enumerate(VAE_CH):
            blk = nn.Module()
            blk.resnets = nn.ModuleList([Resnet(cin, c, None, VAE_GROUPS, 1e-6)])
            blk.downsamplers = nn.ModuleList([Downsample(c, 0)]) if i < len(VAE_CH) - 1 else None
            blocks.append(blk)
            cin = c
        self.down_blocks = nn.ModuleList(blocks)
        self.mid_block = VAEMid(cin)
        self.conv_norm_out = nn.GroupNorm(VAE_GROUPS, cin, eps=1e-6)
        self.conv_out = nn.Conv2d(cin, 2 * LATENT, 3, padding=1)
        self.quant_conv = nn.Conv2d(2 * LATENT, 2 * LATENT, 1)

    def forward(self, sample):
        x = self.conv_in(sample)
        for blk in self.down_blocks:
            for r in blk.resnets:
                x = r(x)
            if blk.downsamplers is not None:
                x = blk.downsamplers[0](x)
        x = self.conv_out(F.silu(self.conv_norm_out(self.mid_block(x))))
        return self.quant_conv(x)  # the parameters (mean, logvar) of the latent distribution


class VAEDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        rev = list(reversed(VAE_CH))
        self.post_quant_conv = nn.Conv2d(LATENT, LATENT, 1)
        self.conv_in = nn.Conv2d(LATENT, rev[0], 3, padding=1)
        self.mid_block = VAEMid(rev[0])
        blocks, cin = [], rev[0]
        for i, c in enumerate(rev):
            blk = nn.Module()
            blk.resnets = nn.ModuleList([Resnet(cin if j == 0 else c, c, None, VAE_GROUPS, 1e-6) for j in range(2)])
            blk.upsamplers = nn.ModuleList([Upsample(c)]) if i < len(rev) - 1 else None
            blocks.append(blk)
            cin = c
        self.up_blocks = nn.ModuleList(blocks)
        self.conv_norm_out = nn.GroupNorm(VAE_GROUPS, cin, eps=1e-6)
        self.conv_out = nn.Conv2d(cin, 3, 3, padding=1)

    def forward(self, latent_sample):
        x = self.mid_block(self.conv_in(self.post_quant_conv(latent_sample)))
        for blk in self.up_blocks:
            for r in blk.resnets:
                x = r(x)
            if blk.upsamplers is not None:
                x = blk.upsamplers[0](x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


# ---- export ---------------------------------------------------------------------------------

def export(model, args, path, inputs, outputs, axes, external=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.onnx.export(model, args, path, input_names=inputs, output_names=outputs, dynamic_axes=axes,
                      opset_version=OPSET, do_constant_folding=True)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    if external:  # optimum writes model.onnx + model.onnx_data when weights pass 2 GB
        onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location="model.onnx_data", size_threshold=1024, convert_attribute=False)
    return sorted({n.op_type for n in m.graph.node})


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).float().tolist()]


def tensor(t):
    """A tensor as its shape and its values, float32 or int64 little-endian, base64-encoded (exact)."""
    t = t.detach().contiguous()
    if t.dtype.is_floating_point:
        return {"shape": list(t.shape), "f32": base64.b64encode(t.float().numpy().astype("<f4").tobytes()).decode()}
    return {"shape": list(t.shape), "i64": base64.b64encode(t.long().numpy().astype("<i8").tobytes()).decode()}


def clip_config(cfg, vocab, projection):
    c = {
        "architectures": ["CLIPTextModelWithProjection" if projection else "CLIPTextModel"],
        "attention_dropout": 0.0, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
        "hidden_act": cfg["act"], "hidden_size": cfg["hidden"], "initializer_factor": 1.0,
        "initializer_range": 0.02, "intermediate_size": cfg["inter"], "layer_norm_eps": 1e-05,
        "max_position_embeddings": MAX_LEN, "model_type": "clip_text_model",
        "num_attention_heads": cfg["heads"], "num_hidden_layers": cfg["layers"],
        "output_hidden_states": True, "projection_dim": cfg["proj"], "torch_dtype": "float32",
        "transformers_version": "4.46.3", "vocab_size": vocab,
    }
    return c


def vae_config():
    return {
        "_class_name": "AutoencoderKL", "_diffusers_version": "0.31.0", "act_fn": "silu",
        "block_out_channels": list(VAE_CH), "down_block_types": ["DownEncoderBlock2D"] * len(VAE_CH),
        "force_upcast": True, "in_channels": 3, "latent_channels": LATENT, "layers_per_block": 1,
        "norm_num_groups": VAE_GROUPS, "out_channels": 3, "sample_size": IMAGE,
        "scaling_factor": SCALING, "up_block_types": ["UpDecoderBlock2D"] * len(VAE_CH),
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "models/family/sdxl/testdata/tiny-sdxl")
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    torch.manual_seed(1024)
    torch.set_grad_enabled(False)

    # Tokenizers: merges learnt on the tiny world's words, the same vocabulary in both folders.
    with open(os.path.join(REPO, "models/family/tiny/vocab.txt")) as f:
        words = [w.strip() for w in f if w.strip() and not w.startswith("<")]
    words += "a photo of is looking at the camera person standing sitting in front wearing with".split()
    tok = Tokenizer(learn_merges(words, 300))
    vocab = len(tok.vocab)
    for name, pad in (("tokenizer", "<|endoftext|>"), ("tokenizer_2", "!")):
        d = os.path.join(out, name)
        write_json(os.path.join(d, "vocab.json"), tok.vocab)
        with open(os.path.join(d, "merges.txt"), "w") as f:
            f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in tok.merges))
        special = {"bos_token": {"content": "<|startoftext|>", "lstrip": False, "normalized": True, "rstrip": False, "single_word": False},
                   "eos_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": True, "rstrip": False, "single_word": False},
                   "pad_token": pad,
                   "unk_token": {"content": "<|endoftext|>", "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}}
        write_json(os.path.join(d, "special_tokens_map.json"), special)
        write_json(os.path.join(d, "tokenizer_config.json"), {
            "add_prefix_space": False, "bos_token": "<|startoftext|>", "clean_up_tokenization_spaces": True,
            "do_lower_case": True, "eos_token": "<|endoftext|>", "errors": "replace", "model_max_length": MAX_LEN,
            "pad_token": pad, "tokenizer_class": "CLIPTokenizer", "unk_token": "<|endoftext|>"})
    pad2 = tok.vocab["!"]

    # Text encoders.
    te1, te2 = CLIPText(TE1, vocab, False).eval(), CLIPText(TE2, vocab, True).eval()
    prompts = ["a photo of a man", "A woman is looking at the camera."]
    ids = [tok.encode(p) for p in prompts]
    ids1 = torch.tensor([tok.pad(i, tok.eos) for i in ids])
    ids2 = torch.tensor([tok.pad(i, pad2) for i in ids])
    ops = {}
    for name, m, cfg, proj, x in (("text_encoder", te1, TE1, False, ids1), ("text_encoder_2", te2, TE2, True, ids2)):
        n = cfg["layers"]
        hs = [f"hidden_states.{i}" for i in range(n + 1)]
        outs = (["text_embeds", "last_hidden_state"] if proj else ["last_hidden_state", "pooler_output"]) + hs
        axes = {"input_ids": {0: "batch_size", 1: "sequence_length"}}
        for o in outs:
            axes[o] = {0: "batch_size"} if o == "pooler_output" else {0: "batch_size", 1: "sequence_length"}
        ops[name] = export(m, (x,), os.path.join(out, name, "model.onnx"), ["input_ids"], outs, axes)
        write_json(os.path.join(out, name, "config.json"), clip_config(cfg, vocab, proj))

    # UNet.
    d1, d2, p2 = TE1["hidden"], TE2["hidden"], TE2["proj"]
    unet = UNet(d1 + d2, p2).eval()
    lat = IMAGE // 8
    ux = (torch.randn(2, LATENT, lat, lat), torch.tensor(500.0), torch.randn(2, MAX_LEN, d1 + d2),
          torch.randn(2, p2), torch.tensor([[IMAGE, IMAGE, 0, 0, IMAGE, IMAGE]] * 2, dtype=torch.float32))
    uin = ["sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids"]
    uaxes = {"sample": {0: "batch_size", 2: "height", 3: "width"}, "encoder_hidden_states": {0: "batch_size", 1: "sequence_length"},
             "text_embeds": {0: "batch_size"}, "time_ids": {0: "batch_size"}, "out_sample": {0: "batch_size", 2: "height", 3: "width"}}
    ops["unet"] = export(unet, ux, os.path.join(out, "unet", "model.onnx"), uin, ["out_sample"], uaxes, external=True)
    write_json(os.path.join(out, "unet", "config.json"), {
        "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.31.0", "act_fn": "silu",
        "addition_embed_type": "text_time", "addition_embed_type_num_heads": 64, "addition_time_embed_dim": ADD_TIME_DIM,
        "attention_head_dim": [UNET_HEADS, UNET_HEADS], "block_out_channels": list(UNET_CH), "center_input_sample": False,
        "cross_attention_dim": d1 + d2, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "flip_sin_to_cos": True, "freq_shift": 0, "in_channels": LATENT, "layers_per_block": 1,
        "mid_block_type": "UNetMidBlock2DCrossAttn", "norm_eps": 1e-05, "norm_num_groups": UNET_GROUPS,
        "out_channels": LATENT, "projection_class_embeddings_input_dim": p2 + 6 * ADD_TIME_DIM,
        "requires_aesthetics_score": False, "sample_size": lat, "text_encoder_projection_dim": p2,
        "time_cond_proj_dim": None, "transformer_layers_per_block": [1, 1],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"], "use_linear_projection": True})

    # VAE.
    enc, dec = VAEEncoder().eval(), VAEDecoder().eval()
    img = torch.rand(1, 3, IMAGE, IMAGE) * 2 - 1
    ops["vae_encoder"] = export(enc, (img,), os.path.join(out, "vae_encoder", "model.onnx"), ["sample"], ["latent_parameters"],
                                {"sample": {0: "batch_size", 2: "sample_height", 3: "sample_width"},
                                 "latent_parameters": {0: "batch_size", 2: "sample_height / 8", 3: "sample_width / 8"}})
    zl = torch.randn(1, LATENT, lat, lat)
    ops["vae_decoder"] = export(dec, (zl,), os.path.join(out, "vae_decoder", "model.onnx"), ["latent_sample"], ["sample"],
                                {"latent_sample": {0: "batch_size", 2: "latent_height", 3: "latent_width"},
                                 "sample": {0: "batch_size", 2: "latent_height * 8", 3: "latent_width * 8"}})
    write_json(os.path.join(out, "vae_encoder", "config.json"), vae_config())
    write_json(os.path.join(out, "vae_decoder", "config.json"), vae_config())

    write_json(os.path.join(out, "scheduler", "scheduler_config.json"), {
        "_class_name": "EulerDiscreteScheduler", "_diffusers_version": "0.31.0", "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False, "interpolation_type": "linear",
        "num_train_timesteps": 1000, "prediction_type": "epsilon", "sample_max_value": 1.0, "set_alpha_to_one": False,
        "skip_prk_steps": True, "steps_offset": 1, "timestep_spacing": "leading", "trained_betas": None,
        "use_karras_sigmas": False})
    write_json(os.path.join(out, "model_index.json"), {
        "_class_name": "StableDiffusionXLPipeline", "_diffusers_version": "0.31.0", "feature_extractor": [None, None],
        "force_zeros_for_empty_prompt": True, "image_encoder": [None, None],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"], "tokenizer": ["transformers", "CLIPTokenizer"],
        "tokenizer_2": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]})

    # ---- references ----
    ref = {"ops": ops, "max_length": MAX_LEN, "pad_2": pad2, "bos": tok.bos, "eos": tok.eos, "vocab_size": vocab,
           "tokens": {p: tok.encode(p) for p in prompts + ["", "a boy with curly blond hair, close-up", "clean-shaven"]}}
    r1, r2 = te1(ids1), te2(ids2)
    n1, n2 = TE1["layers"], TE2["layers"]
    ref["text_encoder"] = {"input_ids": tensor(ids1), "penultimate": tensor(r1[2 + n1 - 1]), "pooler_output": tensor(r1[1])}
    ref["text_encoder_2"] = {"input_ids": tensor(ids2), "penultimate": tensor(r2[2 + n2 - 1]), "text_embeds": tensor(r2[0])}
    uref = tuple(a[:1] if a.dim() > 0 else a for a in ux)
    ref["unet"] = {"sample": tensor(uref[0]), "timestep": float(uref[1]), "encoder_hidden_states": tensor(uref[2]),
                   "text_embeds": tensor(uref[3]), "time_ids": tensor(uref[4]), "out_sample": tensor(unet(*uref))}
    small = img[:, :, :32, :32]
    ref["vae_encoder"] = {"sample": tensor(small), "latent_parameters": tensor(enc(small))}
    ref["vae_decoder"] = {"latent_sample": tensor(zl[:, :, :4, :4]), "sample": tensor(dec(zl[:, :, :4, :4]))}

    # The gradient of a scalar loss w.r.t. the pseudo-words inserted before the concept token of
    # "a photo of a man" (eq. 4): token embeddings of both encoders (encoder 2 pads with "!"),
    # words inserted at the concept index, EOS moved by +1, penultimate states concatenated, the
    # pooled text_embeds of encoder 2, the UNet at t = 500 with time ids (64, 64, 0, 0, 64, 64).
    torch.set_grad_enabled(True)
    g = torch.Generator().manual_seed(77)
    base = tok.encode(prompts[0])
    concept = len(base) - 2  # "man"
    w1 = (torch.randn(1, d1, generator=g) * 0.5).requires_grad_(True)
    w2 = (torch.randn(1, d2, generator=g) * 0.5).requires_grad_(True)
    inserted = []
    for m, w, pad in ((te1, w1, tok.eos), (te2, w2, pad2)):
        e = m.token_embedding(torch.tensor([tok.pad(base, pad)])).detach()
        inserted.append(torch.cat([e[:, :concept], w[:, None, :], e[:, concept:-1]], dim=1))
    eos = torch.tensor([len(base)])  # EOS index after the insertion
    _, _, s1 = te1.encode(inserted[0], eos)
    _, pooled2, s2 = te2.encode(inserted[1], eos)
    ehs = torch.cat([s1[n1 - 1], s2[n2 - 1]], dim=-1)
    text_embeds = te2.text_projection(pooled2)
    x = torch.randn(1, LATENT, lat, lat, generator=g)
    weight = torch.randn(1, LATENT, lat, lat, generator=g)
    tids = torch.tensor([[IMAGE, IMAGE, 0, 0, IMAGE, IMAGE]], dtype=torch.float32)
    eps = unet(x, torch.tensor(500.0), ehs, text_embeds, tids)
    loss = (eps * weight).sum()
    loss.backward()
    ref["gradient"] = {"prompt": prompts[0], "ids": base, "concept": concept, "eos": int(eos[0]), "timestep": 500.0,
                       "w1": flat(w1), "w2": flat(w2), "x": tensor(x), "weight": tensor(weight), "time_ids": flat(tids),
                       "penultimate_1": tensor(s1[n1 - 1]), "penultimate_2": tensor(s2[n2 - 1]), "text_embeds": tensor(text_embeds),
                       "out_sample": tensor(eps), "loss": float(loss), "grad_w1": flat(w1.grad), "grad_w2": flat(w2.grad)}
    write_json(os.path.join(out, "..", "tiny-sdxl-reference.json"), ref)
    total = 0
    for root, _, files in os.walk(out):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"wrote {out} ({total} bytes); ops: " + json.dumps(ops))


if __name__ == "__main__":
    main()
