#!/usr/bin/python3
"""Writes the ONNX import fixtures of models/runtime/engine (Debian's python3, torch 1.13, onnx 1.12).

    /usr/bin/python3 tools/onnx_import_fixtures.py [models/runtime/engine/testdata/import]

The modules are small and random-weight, but written line by line like the code the real
exporters trace, so that their ONNX graphs have the same op patterns:

  unet     diffusers' UNet2DConditionModel as SDXL configures it (inputs sample, timestep,
           encoder_hidden_states, text_embeds, time_ids; output out_sample): sinusoidal timestep
           embedding, SDXL's add_embedding on time_ids.flatten() (a Reshape whose shape is a Concat
           with an empty Slice of Shape), ResnetBlock2D (GroupNorm -> Reshape/InstanceNormalization
           /Reshape/Mul/Add, SiLU -> Mul(x, Sigmoid(x)), Conv, time-embedding Unsqueeze), a
           Transformer2DModel with linear projections (self and cross attention, GEGLU's
           chunk(2, -1) -> Shape/Gather(-1)/Slice, Erf GELU), a VAE-style spatial attention using
           flatten(2), a stride-2 Downsample2D, an Upsample2D (Resize nearest x2) and a skip Concat.
  clip     transformers' CLIPTextModelWithProjection (input input_ids; outputs text_embeds,
           last_hidden_state, hidden_states.0..2): token + position embeddings, the causal mask of
           _make_causal_mask (full/arange/masked_fill/expand), eager CLIPAttention, quick-GELU
           (Sigmoid), final LayerNorm, pooling at input_ids.argmax(-1) (ArgMax + the flattened
           advanced-indexing Gather), text_projection.

Files written (opset 14, optimum's default for both; dynamic batch/size/sequence axes as optimum
declares them):

  unet.onnx, clip.onnx                  float32, weights inline;
  unet_f64.onnx, clip_f64.onnx          the same modules in float64 (for tight gradient checks);
  unet_ext/model.onnx + model.onnx_data the float32 UNet with external data, as optimum saves the
                                        real (> 2 GB) UNet (onnx.save_model(save_as_external_data,
                                        one file, size_threshold 1024));
  unet_fp16.onnx                        the float32 UNet converted to float16 (weights, constants,
                                        graph inputs/outputs, Cast targets), like an `--fp16` export;
  unet_ref.json, clip_ref.json          inputs, torch outputs and torch autograd gradients (below).

Reference JSON: {"torch": version, "opset": 14, "inputs": {name: T}, "outputs": {name: T},
"weights": {name: T}, "grads": {name: T}, "f64": {...same keys for the float64 module...},
"fp16": {"outputs": ...}}, T = {"dtype", "shape", "data": base64 of little-endian row-major bytes}.
"weights" are the r tensors of the scalar loss L = sum over outputs of sum(r * output); "grads"
are dL/d(input) by torch autograd: for the UNet w.r.t. sample and encoder_hidden_states, for CLIP
w.r.t. the token embeddings (the output of the token-embedding Gather, named "inputs_embeds"),
holding the EOS positions fixed. Everything is seeded; rerunning reproduces the same files.
"""
import base64
import math
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn.functional as F

OPSET = 14
B = 2

# UNet sizes: SDXL has 4 latent channels, 320-1280 block channels in 32 groups, 2048-d text
# states, 1280-d pooled text_embeds and 6 time_ids embedded at 256 each.
LATENT, CH, GROUPS, HEADS = 4, 16, 4, 2
TEXT_DIM, POOLED_DIM, TIME_IDS, TIME_ID_DIM = 24, 16, 6, 8
TEMB = 32
H = W = 8
SEQ = 7

# CLIP sizes: SDXL's encoders have 49408 tokens, 77 positions, 768/1280 width, 12/32 layers.
VOCAB, POS, WIDTH, CLIP_HEADS, LAYERS, MLP, PROJ = 50, 8, 32, 2, 2, 64, 16
EOS = VOCAB - 1


def encode(t):
    a = t.detach().cpu().numpy()
    a = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<")))
    return {"dtype": str(a.dtype.name), "shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode("ascii")}


# ---------------------------------------------------------------------------------------------
# diffusers-like UNet


# When set, the constants the exporter folds into the graph are rounded to float16 as an fp16
# export holds them (only for the fp16 reference; never while exporting).
ROUND_CONSTANTS_TO_HALF = False


def folded(t):
    return t.half().to(t.dtype) if ROUND_CONSTANTS_TO_HALF else t


def timestep_embedding(timesteps, dim, max_period=10000, shift=0.0):
    # diffusers.models.embeddings.get_timestep_embedding with flip_sin_to_cos=True, shift 0.
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(start=0, end=half, dtype=torch.float32)
    exponent = exponent / (half - shift)
    emb = folded(torch.exp(exponent)).to(timesteps.dtype)
    emb = timesteps[:, None] * emb[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    return torch.cat([emb[:, half:], emb[:, :half]], dim=-1)


class Attention(torch.nn.Module):
    # diffusers Attention with the PyTorch-2 processor written out (what SDPA decomposes into).
    def __init__(self, dim, context_dim=None, heads=HEADS):
        super().__init__()
        context_dim = context_dim or dim
        self.heads = heads
        self.to_q = torch.nn.Linear(dim, dim, bias=False)
        self.to_k = torch.nn.Linear(context_dim, dim, bias=False)
        self.to_v = torch.nn.Linear(context_dim, dim, bias=False)
        self.to_out = torch.nn.Linear(dim, dim)

    def forward(self, x, context=None):
        context = x if context is None else context
        b, n, d = x.shape
        hd = d // self.heads
        q = self.to_q(x).view(b, -1, self.heads, hd).transpose(1, 2)
        k = self.to_k(context).view(b, -1, self.heads, hd).transpose(1, 2)
        v = self.to_v(context).view(b, -1, self.heads, hd).transpose(1, 2)
        scale = 1.0 / math.sqrt(hd)
        if ROUND_CONSTANTS_TO_HALF:
            scale = float(np.float16(scale))
        scores = torch.matmul(q, k.transpose(-1, -2)) * scale
        out = torch.matmul(scores.softmax(dim=-1), v)
        out = out.transpose(1, 2).reshape(b, -1, d)
        return self.to_out(out)


class GEGLU(torch.nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = torch.nn.Linear(dim, inner * 2)

    def forward(self, x):
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class TransformerBlock(torch.nn.Module):
    # diffusers BasicTransformerBlock: self attention, cross attention, GEGLU feed-forward.
    def __init__(self, dim, context_dim):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(dim)
        self.attn1 = Attention(dim)
        self.norm2 = torch.nn.LayerNorm(dim)
        self.attn2 = Attention(dim, context_dim)
        self.norm3 = torch.nn.LayerNorm(dim)
        self.ff = GEGLU(dim, 2 * dim)
        self.ff_out = torch.nn.Linear(2 * dim, dim)

    def forward(self, x, context):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff_out(self.ff(self.norm3(x))) + x


class Transformer2D(torch.nn.Module):
    # diffusers Transformer2DModel with use_linear_projection=True (SDXL).
    def __init__(self, ch, context_dim):
        super().__init__()
        self.norm = torch.nn.GroupNorm(GROUPS, ch, eps=1e-6)
        self.proj_in = torch.nn.Linear(ch, ch)
        self.block = TransformerBlock(ch, context_dim)
        self.proj_out = torch.nn.Linear(ch, ch)

    def forward(self, x, context):
        b, c, h, w = x.shape
        residual = x
        x = self.norm(x)
        x = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
        x = self.proj_out(self.block(self.proj_in(x), context))
        x = x.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
        return x + residual


class SpatialAttention(torch.nn.Module):
    # The attention diffusers' AttnProcessor applies to 4-d inputs (VAE mid-block), through
    # flatten(2): Reshape(x, Concat(Slice(Shape(x), 0, 2), [-1])).
    def __init__(self, ch):
        super().__init__()
        self.group_norm = torch.nn.GroupNorm(GROUPS, ch, eps=1e-6)
        self.attn = Attention(ch, heads=1)

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.group_norm(x).flatten(2).transpose(1, 2)
        t = self.attn(t)
        return t.transpose(-1, -2).reshape(b, c, h, w) + x


class Resnet(torch.nn.Module):
    # diffusers ResnetBlock2D.
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1 = torch.nn.GroupNorm(GROUPS, cin, eps=1e-5)
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = torch.nn.Linear(TEMB, cout)
        self.norm2 = torch.nn.GroupNorm(GROUPS, cout, eps=1e-5)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = torch.nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class UNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.time_linear_1 = torch.nn.Linear(CH, TEMB)
        self.time_linear_2 = torch.nn.Linear(TEMB, TEMB)
        self.add_linear_1 = torch.nn.Linear(POOLED_DIM + TIME_IDS * TIME_ID_DIM, TEMB)
        self.add_linear_2 = torch.nn.Linear(TEMB, TEMB)
        self.conv_in = torch.nn.Conv2d(LATENT, CH, 3, padding=1)
        self.down_resnet = Resnet(CH, CH)
        self.down_attn = Transformer2D(CH, TEXT_DIM)
        self.downsample = torch.nn.Conv2d(CH, CH, 3, stride=2, padding=1)
        self.mid_resnet = Resnet(CH, CH)
        self.mid_attn = SpatialAttention(CH)
        self.upsample_conv = torch.nn.Conv2d(CH, CH, 3, padding=1)
        self.up_resnet = Resnet(2 * CH, CH)
        self.up_attn = Transformer2D(CH, TEXT_DIM)
        self.conv_norm_out = torch.nn.GroupNorm(GROUPS, CH, eps=1e-5)
        self.conv_out = torch.nn.Conv2d(CH, LATENT, 3, padding=1)

    def forward(self, sample, timestep, encoder_hidden_states, text_embeds, time_ids):
        timesteps = timestep.expand(sample.shape[0])
        t_emb = timestep_embedding(timesteps, CH).to(sample.dtype)
        emb = self.time_linear_2(F.silu(self.time_linear_1(t_emb)))
        time_embeds = timestep_embedding(time_ids.flatten(), TIME_ID_DIM)
        time_embeds = time_embeds.reshape((text_embeds.shape[0], -1))
        add_embeds = torch.concat([text_embeds, time_embeds], dim=-1).to(emb.dtype)
        emb = emb + self.add_linear_2(F.silu(self.add_linear_1(add_embeds)))

        x = self.conv_in(sample)
        skip = self.down_attn(self.down_resnet(x, emb), encoder_hidden_states)
        x = self.downsample(skip)
        x = self.mid_attn(self.mid_resnet(x, emb))
        x = self.upsample_conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        x = torch.cat([x, skip], dim=1)
        x = self.up_attn(self.up_resnet(x, emb), encoder_hidden_states)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


def unet_inputs(dtype, g):
    return (
        torch.randn(B, LATENT, H, W, generator=g).to(dtype),
        torch.tensor([917.0, 211.0]).to(dtype),
        torch.randn(B, SEQ, TEXT_DIM, generator=g).to(dtype),
        torch.randn(B, POOLED_DIM, generator=g).to(dtype),
        torch.tensor([[1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0], [768.0, 1024.0, 64.0, 0.0, 1024.0, 1024.0]]).to(dtype),
    )


UNET_IN = ["sample", "timestep", "encoder_hidden_states", "text_embeds", "time_ids"]
UNET_OUT = ["out_sample"]
UNET_AXES = {
    "sample": {0: "batch_size", 2: "height", 3: "width"},
    "timestep": {0: "steps"},
    "encoder_hidden_states": {0: "batch_size", 1: "sequence_length"},
    "text_embeds": {0: "batch_size"},
    "time_ids": {0: "batch_size"},
    "out_sample": {0: "batch_size", 2: "height", 3: "width"},
}


# ---------------------------------------------------------------------------------------------
# transformers-like CLIP text encoder with projection


def causal_mask(bsz, tgt_len, dtype):
    # transformers' _make_causal_mask.
    mask = torch.full((tgt_len, tgt_len), torch.finfo(dtype).min, dtype=dtype)
    mask_cond = torch.arange(mask.size(-1))
    mask.masked_fill_(mask_cond < (mask_cond + 1).view(mask.size(-1), 1), 0)
    mask = mask.to(dtype)
    return mask[None, None, :, :].expand(bsz, 1, tgt_len, tgt_len)


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


class CLIPAttention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.head_dim = WIDTH // CLIP_HEADS
        self.scale = self.head_dim ** -0.5
        self.k_proj = torch.nn.Linear(WIDTH, WIDTH)
        self.v_proj = torch.nn.Linear(WIDTH, WIDTH)
        self.q_proj = torch.nn.Linear(WIDTH, WIDTH)
        self.out_proj = torch.nn.Linear(WIDTH, WIDTH)

    def _shape(self, t, seq, bsz):
        return t.view(bsz, seq, CLIP_HEADS, self.head_dim).transpose(1, 2).contiguous()

    def forward(self, x, mask):
        bsz, tgt_len, embed_dim = x.size()
        q = self.q_proj(x) * self.scale
        k = self._shape(self.k_proj(x), -1, bsz)
        v = self._shape(self.v_proj(x), -1, bsz)
        proj_shape = (bsz * CLIP_HEADS, -1, self.head_dim)
        q = self._shape(q, tgt_len, bsz).view(*proj_shape)
        k = k.view(*proj_shape)
        v = v.view(*proj_shape)
        src_len = k.size(1)
        w = torch.bmm(q, k.transpose(1, 2))
        w = w.view(bsz, CLIP_HEADS, tgt_len, src_len) + mask
        w = w.view(bsz * CLIP_HEADS, tgt_len, src_len).softmax(dim=-1)
        out = torch.bmm(w, v)
        out = out.view(bsz, CLIP_HEADS, tgt_len, self.head_dim).transpose(1, 2).reshape(bsz, tgt_len, embed_dim)
        return self.out_proj(out)


class CLIPLayer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn = CLIPAttention()
        self.layer_norm1 = torch.nn.LayerNorm(WIDTH)
        self.fc1 = torch.nn.Linear(WIDTH, MLP)
        self.fc2 = torch.nn.Linear(MLP, WIDTH)
        self.layer_norm2 = torch.nn.LayerNorm(WIDTH)

    def forward(self, x, mask):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.fc2(quick_gelu(self.fc1(self.layer_norm2(x))))


class CLIPText(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.token_embedding = torch.nn.Embedding(VOCAB, WIDTH)
        self.position_embedding = torch.nn.Embedding(POS, WIDTH)
        self.register_buffer("position_ids", torch.arange(POS).expand((1, -1)), persistent=False)
        self.layers = torch.nn.ModuleList([CLIPLayer() for _ in range(LAYERS)])
        self.final_layer_norm = torch.nn.LayerNorm(WIDTH)
        self.text_projection = torch.nn.Linear(WIDTH, PROJ, bias=False)

    def forward(self, input_ids, inputs_embeds=None):
        input_shape = input_ids.size()
        input_ids = input_ids.view(-1, input_shape[-1])
        seq_length = input_ids.shape[-1]
        position_ids = self.position_ids[:, :seq_length]
        if inputs_embeds is None:
            inputs_embeds = self.token_embedding(input_ids)
        hidden = inputs_embeds + self.position_embedding(position_ids)
        mask = causal_mask(input_shape[0], input_shape[1], hidden.dtype)
        states = [hidden]
        for layer in self.layers:
            hidden = layer(hidden, mask)
            states.append(hidden)
        last = self.final_layer_norm(hidden)
        pooled = last[torch.arange(last.shape[0]), input_ids.to(dtype=torch.int).argmax(dim=-1)]
        return (self.text_projection(pooled), last, *states)


def clip_inputs(g):
    # Token ids below EOS, an EOS, then padding with EOS (SDXL's first tokenizer): the pooled row
    # is the first EOS, so ArgMax must return the first of equal maxima.
    ids = torch.randint(1, EOS, (B, POS), generator=g)
    for b, eos_at in enumerate((5, 3)):
        ids[b, eos_at:] = EOS
    return (ids,)


CLIP_IN = ["input_ids"]
CLIP_OUT = ["text_embeds", "last_hidden_state"] + [f"hidden_states.{i}" for i in range(LAYERS + 1)]
CLIP_AXES = {"input_ids": {0: "batch_size", 1: "sequence_length"}}
for _name in CLIP_OUT:
    CLIP_AXES[_name] = {0: "batch_size"} if _name == "text_embeds" else {0: "batch_size", 1: "sequence_length"}


# ---------------------------------------------------------------------------------------------


def export(model, inputs, path, input_names, output_names, axes):
    model.eval()
    with torch.no_grad():
        torch.onnx.export(model, inputs, path, opset_version=OPSET, input_names=input_names,
                          output_names=output_names, dynamic_axes=axes, do_constant_folding=True)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    return m


def op_types(m):
    return sorted({n.op_type for n in m.graph.node})


def loss_weights(outputs, g):
    return [torch.randn(o.shape, generator=g, dtype=o.dtype) for o in outputs]


def unet_reference(model, dtype):
    inputs = unet_inputs(dtype, torch.Generator().manual_seed(7))
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    out = model(*leaves)
    (r,) = loss_weights([out], torch.Generator().manual_seed(8))
    gs, ge = torch.autograd.grad((r * out).sum(), [leaves[0], leaves[2]])
    return {
        "inputs": {n: encode(t) for n, t in zip(UNET_IN, inputs)},
        "outputs": {"out_sample": encode(out)},
        "weights": {"out_sample": encode(r)},
        "grads": {"sample": encode(gs), "encoder_hidden_states": encode(ge)},
    }


def clip_reference(model, dtype):
    (ids,) = clip_inputs(torch.Generator().manual_seed(9))
    embeds = model.token_embedding(ids).detach().clone().requires_grad_(True)
    outs = model(ids, embeds)
    rs = loss_weights(outs, torch.Generator().manual_seed(10))
    (ge,) = torch.autograd.grad(sum((r * o).sum() for r, o in zip(rs, outs)), [embeds])
    return {
        "inputs": {"input_ids": encode(ids)},
        "outputs": {n: encode(o) for n, o in zip(CLIP_OUT, outs)},
        "weights": {n: encode(r) for n, r in zip(CLIP_OUT, rs)},
        "grads": {"inputs_embeds": encode(ge)},
        "eos_index": [int(i) for i in ids.argmax(dim=-1)],
    }


def to_fp16(m):
    """Converts a float32 ONNX model to float16 in place: what an fp16 export holds."""
    f32, f16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16

    def tensor16(t):
        if t.data_type != f32:
            return t
        a = numpy_helper.to_array(t).astype(np.float16)
        n = numpy_helper.from_array(a, t.name)
        return n

    for i, t in enumerate(list(m.graph.initializer)):
        m.graph.initializer[i].CopyFrom(tensor16(t))
    for vi in list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info):
        if vi.type.tensor_type.elem_type == f32:
            vi.type.tensor_type.elem_type = f16
    for n in m.graph.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                a.t.CopyFrom(tensor16(a.t))
            if n.op_type == "Cast" and a.name == "to" and a.i == f32:
                a.i = f16
    return m


def write_json(path, obj):
    import json
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=True)
        f.write("\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join("models", "runtime", "engine", "testdata", "import")
    os.makedirs(out, exist_ok=True)
    report = {}

    torch.manual_seed(20261201)
    unet = UNet().eval()
    m = export(unet, unet_inputs(torch.float32, torch.Generator().manual_seed(1)), os.path.join(out, "unet.onnx"), UNET_IN, UNET_OUT, UNET_AXES)
    report["unet"] = op_types(m)
    ref = unet_reference(unet, torch.float32)
    unet64 = UNet().eval()
    unet64.load_state_dict(unet.state_dict())
    unet64.double()
    export(unet64, unet_inputs(torch.float64, torch.Generator().manual_seed(1)), os.path.join(out, "unet_f64.onnx"), UNET_IN, UNET_OUT, UNET_AXES)
    ref["f64"] = unet_reference(unet64, torch.float64)

    ext = os.path.join(out, "unet_ext")
    os.makedirs(ext, exist_ok=True)
    for f in os.listdir(ext):
        os.remove(os.path.join(ext, f))
    onnx.save_model(onnx.load(os.path.join(out, "unet.onnx")), os.path.join(ext, "model.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="model.onnx_data", size_threshold=1024)

    m16 = to_fp16(onnx.load(os.path.join(out, "unet.onnx")))
    onnx.checker.check_model(m16)
    onnx.save_model(m16, os.path.join(out, "unet_fp16.onnx"))
    # The float16 model's own weights and folded constants (timestep frequencies, attention
    # scale), run in float32: what a float32 import of it computes, up to the few constants torch
    # writes inside its own ops (GELU's 1/sqrt(2), layer norm's epsilon).
    global ROUND_CONSTANTS_TO_HALF
    unet16 = UNet().eval()
    unet16.load_state_dict({k: v.half().float() for k, v in unet.state_dict().items()})
    ROUND_CONSTANTS_TO_HALF = True
    ref["fp16"] = {"outputs": unet_reference(unet16, torch.float32)["outputs"]}
    ROUND_CONSTANTS_TO_HALF = False
    ref.update({"torch": torch.__version__, "opset": OPSET, "ops": report["unet"]})
    write_json(os.path.join(out, "unet_ref.json"), ref)

    torch.manual_seed(20261202)
    clip = CLIPText().eval()
    m = export(clip, clip_inputs(torch.Generator().manual_seed(2)), os.path.join(out, "clip.onnx"), CLIP_IN, CLIP_OUT, CLIP_AXES)
    report["clip"] = op_types(m)
    ref = clip_reference(clip, torch.float32)
    clip64 = CLIPText().eval()
    clip64.load_state_dict(clip.state_dict())
    clip64.double()
    export(clip64, clip_inputs(torch.Generator().manual_seed(2)), os.path.join(out, "clip_f64.onnx"), CLIP_IN, CLIP_OUT, CLIP_AXES)
    ref["f64"] = clip_reference(clip64, torch.float64)
    ref.update({"torch": torch.__version__, "opset": OPSET, "ops": report["clip"]})
    write_json(os.path.join(out, "clip_ref.json"), ref)

    for name, ops in report.items():
        print(name, "ops:", " ".join(ops))
    for root, _, files in os.walk(out):
        for f in sorted(files):
            p = os.path.join(root, f)
            print(f"{os.path.getsize(p):9d}  {p}")


if __name__ == "__main__":
    main()
