#!/usr/bin/python3
"""Export the ONNX test fixtures of models/runtime/ort with torch, fixed seeds.

Run from the repository root with Debian's python (torch 1.13, onnx 1.12):

    /usr/bin/python3 tools/onnx_fixtures.py [OUTDIR]

OUTDIR defaults to models/runtime/ort/testdata. For each model it writes NAME.onnx
(opset 17, dynamic batch axis) and NAME.json, the torch reference:

    {"model": "NAME.onnx", "opset": 17, "torch": "<version>",
     "cases": [{"batch": 1,
                "inputs":  {"x": {"dtype": "float32", "shape": [1, 8], "data": "<base64>"}},
                "outputs": {"y": {...}}}, ...]}

"data" is the tensor's raw little-endian bytes in row-major order, base64
encoded (std alphabet, padded). One case at batch 1 and one at batch 16.

Models:
  mlp          x float32 [N,8] -> y float32 [N,4]; Linear, tanh-GELU, Linear.
  transformer  tokens float32 [N,6,16], index int64 [N] ->
               hidden float32 [N,6,16], pooled float32 [N,16];
               pre-norm single-head attention block with layer norm written as
               explicit mean/var, softmax attention, tanh-GELU MLP; pooled is
               the hidden row at `index` for each batch item (GatherElements).
"""

import base64
import json
import math
import os
import sys

import numpy as np
import onnx
import torch

OPSET = 17
BATCHES = (1, 16)


def gelu_tanh(x):
    # GELU, tanh approximation, written out so the export is plain ops.
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def layer_norm(x, gain, bias, eps=1e-5):
    # Layer norm over the last axis from an explicit mean and variance.
    mean = x.mean(dim=-1, keepdim=True)
    centered = x - mean
    var = (centered * centered).mean(dim=-1, keepdim=True)
    return centered / torch.sqrt(var + eps) * gain + bias


class MLP(torch.nn.Module):
    def __init__(self, d_in=8, d_hidden=16, d_out=4):
        super().__init__()
        self.l1 = torch.nn.Linear(d_in, d_hidden)
        self.l2 = torch.nn.Linear(d_hidden, d_out)

    def forward(self, x):
        return self.l2(gelu_tanh(self.l1(x)))


class Block(torch.nn.Module):
    def __init__(self, width=16, hidden=32):
        super().__init__()
        self.width = width
        self.g1 = torch.nn.Parameter(1.0 + 0.1 * torch.randn(width))
        self.b1 = torch.nn.Parameter(0.1 * torch.randn(width))
        self.q = torch.nn.Linear(width, width)
        self.k = torch.nn.Linear(width, width)
        self.v = torch.nn.Linear(width, width)
        self.o = torch.nn.Linear(width, width)
        self.g2 = torch.nn.Parameter(1.0 + 0.1 * torch.randn(width))
        self.b2 = torch.nn.Parameter(0.1 * torch.randn(width))
        self.up = torch.nn.Linear(width, hidden)
        self.down = torch.nn.Linear(hidden, width)

    def forward(self, tokens, index):
        h = layer_norm(tokens, self.g1, self.b1)
        q, k, v = self.q(h), self.k(h), self.v(h)
        scores = torch.matmul(q, k.transpose(1, 2)) / math.sqrt(self.width)
        attn = torch.softmax(scores, dim=-1)
        x = tokens + self.o(torch.matmul(attn, v))
        x = x + self.down(gelu_tanh(self.up(layer_norm(x, self.g2, self.b2))))
        gather = index.view(-1, 1, 1).expand(-1, 1, self.width)
        pooled = torch.gather(x, 1, gather)[:, 0]
        return x, pooled


def encode(t):
    a = t.detach().cpu().numpy()
    a = np.ascontiguousarray(a.astype(a.dtype.newbyteorder("<")))
    return {
        "dtype": str(a.dtype.name),
        "shape": list(a.shape),
        "data": base64.b64encode(a.tobytes()).decode("ascii"),
    }


def export(outdir, name, model, make_inputs, input_names, output_names, dynamic_axes):
    model.eval()
    path = os.path.join(outdir, name + ".onnx")
    with torch.no_grad():
        torch.onnx.export(
            model,
            make_inputs(2, torch.Generator().manual_seed(99)),
            path,
            opset_version=OPSET,
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )
    onnx.checker.check_model(onnx.load(path))
    cases = []
    for i, batch in enumerate(BATCHES):
        inputs = make_inputs(batch, torch.Generator().manual_seed(1000 + i))
        with torch.no_grad():
            outputs = model(*inputs)
        if not isinstance(outputs, tuple):
            outputs = (outputs,)
        cases.append({
            "batch": batch,
            "inputs": {n: encode(t) for n, t in zip(input_names, inputs)},
            "outputs": {n: encode(t) for n, t in zip(output_names, outputs)},
        })
    ref = {"model": name + ".onnx", "opset": OPSET, "torch": torch.__version__, "cases": cases}
    with open(os.path.join(outdir, name + ".json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    print(path, os.path.getsize(path), "bytes", file=sys.stderr)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join("models", "ort", "testdata")
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(0)
    mlp = MLP()
    export(
        outdir, "mlp", mlp,
        lambda n, g: (torch.randn(n, 8, generator=g),),
        ["x"], ["y"],
        {"x": {0: "batch"}, "y": {0: "batch"}},
    )
    torch.manual_seed(1)
    block = Block()
    export(
        outdir, "transformer", block,
        lambda n, g: (torch.randn(n, 6, 16, generator=g), torch.randint(0, 6, (n,), generator=g)),
        ["tokens", "index"], ["hidden", "pooled"],
        {"tokens": {0: "batch"}, "index": {0: "batch"}, "hidden": {0: "batch"}, "pooled": {0: "batch"}},
    )


if __name__ == "__main__":
    main()
