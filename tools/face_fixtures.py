#!/usr/bin/python3
"""Writes the signature fixtures of models/judges/insightface (Debian's python3, torch 1.13, onnx 1.12;
the chain reference also needs Debian's python3-opencv 4.6 and python3-skimage 0.19).

    /usr/bin/python3 tools/face_fixtures.py [models/judges/insightface/testdata]

Tiny random-weight stand-ins (fixed seed) for insightface's buffalo_l pack, with the real
exports' names, dtypes, dynamic axes and output order:

  buffalo_l/det_10g.onnx    SCRFD-10GF: input "input.1" float32 [1,3,?,?] (height and width
                            dynamic), nine outputs in insightface's order, scores of strides
                            8/16/32 ("448","471","494": [?,1], sigmoid), boxes ("451","474",
                            "497": [?,4], distances in stride units), keypoints ("454","477",
                            "500": [?,10]); rows are anchors, (row·W + col)·2 + anchor.
  buffalo_l/w600k_r50.onnx  ArcFace r50: input "input.1" float32 [None,3,112,112], output "683"
                            float32 [None,512], not normalised.
  scrfd_640.onnx            the same detector exported at a fixed 640×640 input (the other
                            export users have: outputs [12800,1], [3200,1], [800,1], ...).
  reference.json            torch outputs for fixed inputs, to compare ONNX Runtime against:
                            "det": every output on pattern [1,3,64,96] in full; "det640": the
                            640 model on pattern [1,3,640,640], each output's sum and first
                            32 values; "rec": the [2,512] output on pattern [2,3,112,112] with
                            the second image negated. Tensors are raw little-endian float32,
                            base64; the pattern is x[n,c,y,x] = 127.5·sin(0.05·x + 0.09·y + c)/128.
                            "detect320": insightface's SCRFD.detect (threshold 0.5, NMS 0.4),
                            written out in numpy, on the 320×320 RGB image
                            (7x + 13y + 50c + (x·y mod 31)) mod 256 with a 320 input: the kept
                            boxes+scores [K,5] and keypoints [K,5,2], best first.
                            "chain": insightface's whole chain run with OpenCV and scikit-image
                            (chain_reference) on the 200×150 image of the same formula: the
                            faces, the largest's index, the alignment matrix, the 112×112 crop
                            (RGB) and the normalised embedding.
"""

import base64
import json
import os
import sys

import numpy as np
import onnx
import torch
from torch import nn

STRIDES = (8, 16, 32)
ANCHORS = 2
SCORE_NAMES = ["448", "471", "494"]
BOX_NAMES = ["451", "474", "497"]
KPS_NAMES = ["454", "477", "500"]
DET_OUTPUTS = SCORE_NAMES + BOX_NAMES + KPS_NAMES
CLS_GAIN = 8.0


class TinySCRFD(nn.Module):
    """A five-level stride-2 conv stack; levels 3, 4, 5 (strides 8, 16, 32) carry the
    score/box/keypoint heads as SCRFD's do, flattened anchor-major as its export does."""

    def __init__(self, width=8):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(4, 4, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(4, width, 3, 2, 1), nn.ReLU())
        self.down = nn.ModuleList([nn.Conv2d(width, width, 3, 2, 1) for _ in range(2)])
        self.cls = nn.ModuleList([nn.Conv2d(width, ANCHORS, 1) for _ in STRIDES])
        self.reg = nn.ModuleList([nn.Conv2d(width, ANCHORS * 4, 1) for _ in STRIDES])
        self.kps = nn.ModuleList([nn.Conv2d(width, ANCHORS * 10, 1) for _ in STRIDES])

    def forward(self, x):
        feats = [self.stem(x)]
        for d in self.down:
            feats.append(torch.relu(d(feats[-1])))
        scores, boxes, kpss = [], [], []
        for i, f in enumerate(feats):
            scores.append(torch.sigmoid(self.cls[i](f)).permute(0, 2, 3, 1).reshape(-1, 1))
            boxes.append(self.reg[i](f).permute(0, 2, 3, 1).reshape(-1, 4))
            kpss.append(self.kps[i](f).permute(0, 2, 3, 1).reshape(-1, 10))
        return tuple(scores + boxes + kpss)


class TinyArcFace(nn.Module):
    """112×112 face crop -> 512-d identity feature (unnormalised, as w600k_r50's)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1), nn.PReLU(8),
            nn.Conv2d(8, 8, 3, 2, 1), nn.PReLU(8),
            nn.AvgPool2d(7))
        self.fc = nn.Linear(8 * 4 * 4, 512)
        self.bn = nn.BatchNorm1d(512)

    def forward(self, x):
        return self.bn(self.fc(self.body(x).flatten(1)))


def pattern(n, h, w):
    c = np.arange(3, dtype=np.float64)[:, None, None]
    y = np.arange(h, dtype=np.float64)[None, :, None]
    x = np.arange(w, dtype=np.float64)[None, None, :]
    p = 127.5 * np.sin(0.05 * x + 0.09 * y + c) / 128
    return np.broadcast_to(p, (n, 3, h, w)).astype(np.float32).copy()


def test_image(h, w):
    """An RGB uint8 image from integers alone, so that Go builds the same pixels."""
    y, x, c = np.meshgrid(np.arange(h), np.arange(w), np.arange(3), indexing="ij")
    return ((x * 7 + y * 13 + c * 50 + (x * y) % 31) % 256).astype(np.uint8)


def detect_reference(det, blob, thresh=0.5, nms_thresh=0.4):
    """SCRFD.forward and the rest of SCRFD.detect of insightface written out in numpy, from
    the detector blob [1,3,h,w] on: decode per stride, sort by score (ties in anchor order),
    NMS with +1 areas. Returns boxes+scores [K,5] and keypoints [K,5,2] in input pixels."""
    h, w = blob.shape[2:]
    outs = [o.numpy() for o in det(torch.from_numpy(np.ascontiguousarray(blob, dtype=np.float32)))]
    scores, boxes, kpss = [], [], []
    for i, stride in enumerate(STRIDES):
        fh, fw = h // stride, w // stride
        yy, xx = np.mgrid[:fh, :fw]
        centres = np.stack([xx, yy], -1).reshape(-1, 2).astype(np.float32) * stride
        centres = np.repeat(centres, ANCHORS, axis=0)
        sc = outs[i][:, 0]
        d = outs[i + 3] * stride
        k = outs[i + 6] * stride
        keep = np.where(sc >= thresh)[0]
        b = np.stack([centres[:, 0] - d[:, 0], centres[:, 1] - d[:, 1],
                      centres[:, 0] + d[:, 2], centres[:, 1] + d[:, 3]], -1)
        kp = np.stack([centres[:, j % 2] + k[:, j] for j in range(10)], -1).reshape(-1, 5, 2)
        scores.append(sc[keep])
        boxes.append(b[keep])
        kpss.append(kp[keep])
    # insightface sorts twice, in detect and again in nms, each time argsort()[::-1]; with a
    # stable sort (ties among the float32 scores of random heads are common) two reversals
    # leave tied anchors in anchor order.
    scores = np.concatenate(scores)
    order = scores.argsort(kind="stable")[::-1]
    dets = np.hstack([np.concatenate(boxes), scores[:, None]]).astype(np.float32)[order]
    kpss = np.concatenate(kpss)[order]
    x1, y1, x2, y2 = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    rest, keep = dets[:, 4].argsort(kind="stable")[::-1], []
    while rest.size:
        i = rest[0]
        keep.append(i)
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest[1:]]) - np.maximum(x1[i], x1[rest[1:]]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest[1:]]) - np.maximum(y1[i], y1[rest[1:]]) + 1)
        inter = iw * ih
        ovr = inter / (areas[i] + areas[rest[1:]] - inter)
        rest = rest[1:][ovr <= nms_thresh]
    keep = np.array(keep, dtype=np.int64)
    return dets[keep], kpss[keep]


# face_align.arcface_dst: the five landmarks' places in a 112×112 ArcFace crop.
ARCFACE_DST = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float32)


def chain_reference(det, rec, rgb, size=640):
    """insightface's face chain on an RGB uint8 image with OpenCV and scikit-image, as
    FaceAnalysis.get → SCRFD.detect → norm_crop → ArcFaceONNX.get_feat run it: the image as
    cv2 holds it (BGR), resized keeping its aspect into size×size (cv2.resize, top-left,
    black), blobFromImage(1/128, mean 127.5, swapRB), decode and NMS, the largest face,
    SimilarityTransform.estimate onto arcface_dst, warpAffine (black border), blobFromImages
    (1/127.5, mean 127.5, swapRB), the feature L2-normalised."""
    import cv2
    from skimage import transform as trans
    img = np.ascontiguousarray(rgb[:, :, ::-1])
    ratio = img.shape[0] / img.shape[1]
    if ratio > 1:
        nh, nw = size, int(size / ratio)
    else:
        nw, nh = size, int(size * ratio)
    scale = nh / img.shape[0]
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[:nh, :nw] = cv2.resize(img, (nw, nh))
    blob = cv2.dnn.blobFromImage(canvas, 1.0 / 128, (size, size), (127.5, 127.5, 127.5), swapRB=True)
    dets, kpss = detect_reference(det, blob)
    dets[:, :4] /= scale
    kpss /= scale
    area = (dets[:, 2] - dets[:, 0]) * (dets[:, 3] - dets[:, 1])
    best = int(np.argmax(area))
    tform = trans.SimilarityTransform()
    tform.estimate(kpss[best], ARCFACE_DST)
    m = tform.params[0:2, :]
    crop = cv2.warpAffine(img, m, (112, 112), borderValue=0.0)
    blob = cv2.dnn.blobFromImages([crop], 1.0 / 127.5, (112, 112), (127.5, 127.5, 127.5), swapRB=True)
    feat = rec(torch.from_numpy(blob)).numpy()[0]
    return {"dets": enc(dets), "kps": enc(kpss), "best": best, "m": enc(m),
            "crop": enc(crop[:, :, ::-1].astype(np.float32)), "embedding": enc(feat / np.linalg.norm(feat))}


def enc(a):
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode("ascii")}


def export(model, args, path, inputs, outputs, dynamic):
    """Exports with stand-in names and renames the graph's values afterwards: torch refuses
    the numeric value names ("448", "683") the real exports carry."""
    alias = {n: "v_" + n if n.isdigit() else n for n in inputs + outputs}
    dyn = None if dynamic is None else {alias[k]: v for k, v in dynamic.items()}
    torch.onnx.export(model, args, path, opset_version=11, input_names=[alias[n] for n in inputs],
                      output_names=[alias[n] for n in outputs], dynamic_axes=dyn, do_constant_folding=True)
    back = {a: n for n, a in alias.items() if a != n}
    m = onnx.load(path)
    g = m.graph
    for vi in g.output:
        # A reshape to (-1, C) leaves C symbolic; the real exports declare it.
        dims = vi.type.tensor_type.shape.dim
        if len(dims) == 2 and dims[1].dim_param:
            c = 1 if back.get(vi.name, vi.name) in SCORE_NAMES else 4 if back.get(vi.name, vi.name) in BOX_NAMES else 10
            dims[1].dim_value = c
    for node in g.node:
        node.input[:] = [back.get(v, v) for v in node.input]
        node.output[:] = [back.get(v, v) for v in node.output]
    for vi in list(g.input) + list(g.output):
        vi.name = back.get(vi.name, vi.name)
    onnx.checker.check_model(m)
    onnx.save(m, path)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "models/judges/insightface/testdata"
    pack = os.path.join(out, "buffalo_l")
    os.makedirs(pack, exist_ok=True)
    torch.manual_seed(17)
    det = TinySCRFD().eval()
    rec = TinyArcFace().eval()
    with torch.no_grad():
        # Trained SCRFD heads give positive distances of a few strides and few confident
        # anchors; biases make the random heads do the same, so boxes are real boxes.
        for r in det.reg:
            r.bias.uniform_(1.0, 3.0)
        # Keypoints laid out as a face around the anchor (eyes above, nose, mouth below), in
        # stride units, so that the alignment of a detected face is well conditioned.
        face = torch.tensor([-1.2, -1.0, 1.2, -1.0, 0.0, 0.0, -1.0, 1.2, 1.0, 1.2])
        for k in det.kps:
            k.bias.copy_(face.repeat(ANCHORS))
        for c in det.cls:
            c.weight.mul_(CLS_GAIN)
            c.bias.uniform_(-1.0, 0.0)
        rec.bn.running_mean.uniform_(-0.1, 0.1)
        rec.bn.running_var.uniform_(0.5, 1.5)

    dyn = {"input.1": {2: "?", 3: "?"}}
    for name in DET_OUTPUTS:
        dyn[name] = {0: "?"}
    export(det, torch.zeros(1, 3, 64, 64), os.path.join(pack, "det_10g.onnx"), ["input.1"], DET_OUTPUTS, dyn)
    export(det, torch.zeros(1, 3, 640, 640), os.path.join(out, "scrfd_640.onnx"), ["input.1"], DET_OUTPUTS, None)
    export(rec, torch.zeros(1, 3, 112, 112), os.path.join(pack, "w600k_r50.onnx"), ["input.1"], ["683"],
           {"input.1": {0: "None"}, "683": {0: "None"}})

    ref = {"torch": torch.__version__}
    with torch.no_grad():
        x = pattern(1, 64, 96)
        ys = det(torch.from_numpy(x))
        ref["det"] = {"input": [1, 3, 64, 96], "outputs": {n: enc(y.numpy()) for n, y in zip(DET_OUTPUTS, ys)}}
        ys = det(torch.from_numpy(pattern(1, 640, 640)))
        ref["det640"] = {n: {"shape": list(y.shape), "sum": float(y.double().sum()),
                             "first": [float(v) for v in y.flatten()[:32]]}
                         for n, y in zip(DET_OUTPUTS, ys)}
        x = pattern(2, 112, 112)
        x[1] = -x[1]
        img = test_image(320, 320)
        dets, kpss = detect_reference(det, ((img.astype(np.float32) - 127.5) / 128).transpose(2, 0, 1)[None])
        ref["detect320"] = {"dets": enc(dets), "kps": enc(kpss)}
        ref["chain"] = chain_reference(det, rec, test_image(150, 200))
        ref["rec"] = {"input": [2, 3, 112, 112], "output": enc(rec(torch.from_numpy(x)).numpy())}
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f)


if __name__ == "__main__":
    main()
