#!/usr/bin/python3
"""Writes the ONNX fixture of models/runtime/engine's import test (run with Debian's python3, torch 1.13).

    /usr/bin/python3 tools/engine_fixture.py [models/runtime/engine/testdata]

Outputs, in the target folder:
  fixture_f64.onnx, fixture_f32.onnx  the same tiny attention-like network in float64 / float32,
                                      built only from ops onnx-gomlx v0.3.4 supports (MatMul, Add,
                                      Tanh, Mul, ReduceMean, Softmax, Transpose, Reshape, Sub);
  fixture_ref.json                    an input x, a weighting r, the float64 output y = net(x) and
                                      the torch autograd gradient of sum(r * y) w.r.t. x;
  unsupported_sigmoid.onnx            y = sigmoid(x), an op onnx-gomlx v0.3.4 lacks (engine rewrites
                                      it at import; the test checks the values).
Everything is seeded, so rerunning reproduces the same files (byte-identical .json).
"""
import json
import os
import sys

import onnx
import torch

B, L, D, H = 2, 3, 4, 6  # batch, tokens, input width, hidden width


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(20240611)
        self.w1 = torch.nn.Parameter(torch.randn(D, H, generator=g) * 0.5)
        self.b1 = torch.nn.Parameter(torch.randn(H, generator=g) * 0.1)
        self.w2 = torch.nn.Parameter(torch.randn(H, D, generator=g) * 0.5)
        self.scale = torch.nn.Parameter(torch.randn(D, generator=g) * 0.5 + 1.0)

    def forward(self, x):  # x: [B, L, D]
        h = torch.tanh(torch.matmul(x, self.w1) + self.b1)              # MatMul, Add, Tanh: [B, L, H]
        s = torch.matmul(h, h.transpose(1, 2)) * (1.0 / H ** 0.5)       # Transpose, MatMul, Mul
        a = torch.softmax(s, dim=-1)                                    # Softmax: [B, L, L]
        h = torch.matmul(a, h)                                          # [B, L, H]
        y = torch.matmul(h, self.w2) * self.scale                       # MatMul, Mul: [B, L, D]
        y = y - y.mean(dim=-1, keepdim=True)                            # ReduceMean, Sub
        return y.reshape(B, L * D)                                      # Reshape: [B, L*D]


class Sigmoid(torch.nn.Module):
    def forward(self, x):
        return torch.sigmoid(x)


def export(net, x, path, allowed=None):
    torch.onnx.export(net, (x,), path, input_names=["x"], output_names=["y"], opset_version=13,
                      do_constant_folding=True)
    model = onnx.load(path)
    onnx.checker.check_model(model)
    ops = sorted({n.op_type for n in model.graph.node})
    if allowed is None:
        allowed = {"MatMul", "Add", "Tanh", "Mul", "ReduceMean", "Softmax", "Transpose", "Reshape", "Sub", "Constant"}
    if not set(ops) <= allowed:
        raise SystemExit(f"{path}: unexpected ops {sorted(set(ops) - allowed)}")
    return ops


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "models", "engine", "testdata")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    net = Net().double()
    g = torch.Generator().manual_seed(7)
    x = torch.randn(B, L, D, generator=g, dtype=torch.float64)
    r = torch.randn(B, L * D, generator=g, dtype=torch.float64)

    xg = x.clone().requires_grad_(True)
    y = net(xg)
    (grad,) = torch.autograd.grad((r * y).sum(), xg)

    ops = export(net, x, os.path.join(out, "fixture_f64.onnx"))
    export(Net().float(), x.float(), os.path.join(out, "fixture_f32.onnx"))
    export(Sigmoid(), x.float(), os.path.join(out, "unsupported_sigmoid.onnx"), allowed={"Sigmoid"})
    ref = {
        "about": "tools/engine_fixture.py: y = net(x); grad = d sum(r*y) / dx, torch float64 autograd",
        "ops": ops,
        "x_shape": [B, L, D], "y_shape": [B, L * D],
        "x": x.flatten().tolist(), "r": r.flatten().tolist(),
        "y": y.detach().flatten().tolist(), "grad_x": grad.flatten().tolist(),
    }
    with open(os.path.join(out, "fixture_ref.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    print("wrote", out, "ops:", ", ".join(ops))


if __name__ == "__main__":
    main()
