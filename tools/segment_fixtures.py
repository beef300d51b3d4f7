#!/usr/bin/python3
"""Writes the Grounded SAM 2 signature fixtures of models/segment (Debian's python3, torch 1.13, onnx 1.12).

    /usr/bin/python3 tools/segment_fixtures.py [models/segment/testdata]

Random-weight models with exactly the inputs, outputs, dtypes and dynamic axes of the common
public ONNX exports, tiny inside:

  grounding-dino/groundingdino.onnx + vocab.txt
      The export Grounded-SAM-2 users run (GroundingDINO's export_openvino.py and its copies:
      torch.onnx.export(model, (img, input_ids, attention_mask, position_ids, token_type_ids,
      text_token_mask), input_names=[...], output_names=["logits", "boxes"])):
        img             float32 [1,3,H,W]   (dynamic H, W; ImageNet-normalised)
        input_ids       int64   [1,L]       (dynamic L)
        attention_mask  bool    [1,L]
        position_ids    int64   [1,L]
        token_type_ids  int64   [1,L]
        text_token_mask bool    [1,L,L]     (the phrase-block self-attention mask)
        logits          float32 [1,900,256] (pre-sigmoid; -inf past the L text tokens, as the
                                             real ContrastiveEmbed pads to max_text_len 256)
        boxes           float32 [1,900,4]   (cx, cy, w, h in [0, 1])
      vocab.txt is a small BERT vocabulary ([PAD], [UNK], [CLS], [SEP], [MASK], punctuation,
      the concept words) standing for bert-base-uncased's.
  grounding-dino-image-only/groundingdino.onnx
      A detector without the text inputs (img -> logits, boxes): the bad-input case.
  sam2/sam2_hiera_tiny.encoder.onnx, sam2/sam2_hiera_tiny.decoder.onnx
      samexporter's export_sam2.py (vietanhdev/samexporter):
        encoder image [1,3,1024,1024] -> high_res_feats_0 [1,32,256,256],
                high_res_feats_1 [1,64,128,128], image_embed [1,256,64,64]
        decoder image_embed, high_res_feats_0, high_res_feats_1, point_coords float32 [n,N,2]
                (1024-square pixels), point_labels float32 [n,N], mask_input [n,1,256,256],
                has_mask_input [n] -> masks [n,3,256,256] (logits over the 1024 square),
                iou_predictions [n,3]
      The decoder's mask logits are the prompt box (labels 2, 3) as a distance to its edge plus
      0.5 tanh(image features), so a test can check that the mask follows the box and that the
      image reached the encoder as torch would feed it.
  sam2-orig-size/...: the same with the decoder input orig_im_size int64 [2] and masks
      [n,3,H,W] at that size (the exports that upsample inside the graph).
  sam2-other-names/...: a SAM 1 decoder (image_embeddings, point_coords, point_labels,
      mask_input, has_mask_input, orig_im_size): the bad-input case.

Beside the folders, torch's outputs for the Go parity tests (tensors written as JSON numbers):
  grounding-dino-reference.json  top 5 detections for "man . face ." on a 40x30 test image
  sam2-reference.json            the mask logits at image size for a box on the same image

Everything is seeded; a rerun writes the same files.
"""
import json
import os
import shutil
import sys

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

OPSET = 17
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUERIES = 900       # Grounding DINO's num_queries
MAX_TEXT = 256      # max_text_len
D = 8               # hidden width (256)
SAM = 1024          # SAM 2 image size
LOW = 256           # low-resolution mask side (image_size / 4)

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "?", "!", "'", "-",
         "a", "an", "the", "of", "photo", "man", "woman", "boy", "girl", "person", "cat", "dog",
         "face", "head", "##s", "##ing"]


class TinyGroundingDINO(nn.Module):
    """Image queries on a 30x30 grid scored against text tokens that attend within their phrase."""

    def __init__(self, text=True):
        super().__init__()
        self.text = text
        self.stem = nn.Conv2d(3, D, 8, stride=8)
        self.query = nn.Parameter(torch.randn(1, QUERIES, D))
        self.box = nn.Linear(D, 4)
        self.tok = nn.Embedding(len(VOCAB), D)
        self.pos = nn.Embedding(MAX_TEXT, D)
        self.typ = nn.Embedding(2, D)
        self.cls = nn.Parameter(torch.randn(1, 1, MAX_TEXT) * 3)

    def queries(self, img):
        f = self.stem(img)
        f = F.interpolate(f, size=(30, 30), mode="bilinear", align_corners=False)
        return f.flatten(2).transpose(1, 2) + self.query

    def forward(self, img, input_ids=None, attention_mask=None, position_ids=None, token_type_ids=None, text_token_mask=None):
        q = self.queries(img)
        boxes = torch.sigmoid(self.box(q))
        if not self.text:
            return q[..., :1] * 0 + self.cls, boxes
        e = self.tok(input_ids) + self.pos(position_ids) + self.typ(token_type_ids)
        att = (e @ e.transpose(1, 2)) / D ** 0.5
        att = att.masked_fill(~text_token_mask, float("-inf")).softmax(-1)
        e = (att @ e) * attention_mask.unsqueeze(-1).float()
        logits = 2 * (q @ e.transpose(1, 2)) / D ** 0.5
        logits = logits.masked_fill(~attention_mask.unsqueeze(1), float("-inf"))
        logits = F.pad(logits, (0, MAX_TEXT - logits.shape[-1]), value=float("-inf"))
        return logits, boxes


class TinySAM2Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.s0 = nn.Conv2d(3, 32, 4, stride=4)
        self.s1 = nn.Conv2d(32, 64, 2, stride=2, groups=32)
        self.s2 = nn.Conv2d(64, 256, 1, groups=64)

    def forward(self, image):
        h0 = self.s0(image)
        h1 = self.s1(h0)
        emb = self.s2(F.avg_pool2d(h1, 2))
        return h0, h1, emb


class TinySAM2Decoder(nn.Module):
    """Three masks: the prompt box (labels 2 and 3), shrunk by 0, 8 and 16 pixels, plus image terms."""

    def __init__(self, orig_size=False):
        super().__init__()
        self.orig_size = orig_size
        self.emb = nn.Conv2d(256, 1, 1)
        self.h0 = nn.Conv2d(32, 1, 1)
        self.h1 = nn.Conv2d(64, 1, 1)
        self.mask = nn.Conv2d(1, 1, 1)
        self.iou = nn.Linear(3, 3)
        step = SAM / LOW
        self.register_buffer("grid", (torch.arange(LOW, dtype=torch.float32) + 0.5) * step)

    def forward(self, image_embed, high_res_feats_0, high_res_feats_1, point_coords, point_labels, mask_input, has_mask_input, orig_im_size=None):
        tl = (point_labels == 2).float().unsqueeze(-1)
        br = (point_labels == 3).float().unsqueeze(-1)
        x0y0 = (point_coords * tl).sum(1) / tl.sum(1).clamp(min=1)  # [n,2]
        x1y1 = (point_coords * br).sum(1) / br.sum(1).clamp(min=1)
        gx = self.grid.view(1, 1, 1, LOW)
        gy = self.grid.view(1, 1, LOW, 1)
        shrink = torch.tensor([0.0, 8.0, 16.0]).view(1, 3, 1, 1)
        inside = torch.minimum(
            torch.minimum(gx - x0y0[:, 0].view(-1, 1, 1, 1), x1y1[:, 0].view(-1, 1, 1, 1) - gx),
            torch.minimum(gy - x0y0[:, 1].view(-1, 1, 1, 1), x1y1[:, 1].view(-1, 1, 1, 1) - gy)) - shrink
        feat = F.interpolate(self.emb(image_embed), size=(LOW, LOW), mode="bilinear", align_corners=False)
        if high_res_feats_0 is not None:
            feat = feat + self.h0(high_res_feats_0) + F.interpolate(self.h1(high_res_feats_1), size=(LOW, LOW), mode="bilinear", align_corners=False)
        feat = feat + has_mask_input.view(-1, 1, 1, 1) * self.mask(mask_input)
        masks = torch.clamp(inside / 4 + 0.5 * torch.tanh(feat), -32.0, 32.0)
        iou = torch.sigmoid(self.iou(masks.mean((2, 3)) / 32))
        if self.orig_size:
            masks = F.interpolate(masks, size=(orig_im_size[0], orig_im_size[1]), mode="bilinear", align_corners=False)
        return masks, iou


def export(model, args, path, inputs, outputs, axes):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.onnx.export(model, args, path, input_names=inputs, output_names=outputs, dynamic_axes=axes,
                      opset_version=OPSET, do_constant_folding=True)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    got = [i.name for i in m.graph.input if i.name not in {t.name for t in m.graph.initializer}]
    assert got == inputs, (path, got)


def grounding(out):
    torch.manual_seed(1)
    model = TinyGroundingDINO().eval()
    L = 6
    args = (torch.randn(1, 3, 64, 80), torch.tensor([[2, 16, 5, 23, 5, 3]]), torch.ones(1, L, dtype=torch.bool),
            torch.tensor([[0, 0, 1, 0, 1, 0]]), torch.zeros(1, L, dtype=torch.long), torch.eye(L, dtype=torch.bool).unsqueeze(0))
    names = ["img", "input_ids", "attention_mask", "position_ids", "token_type_ids", "text_token_mask"]
    axes = {"img": {2: "height", 3: "width"}, "input_ids": {1: "seq_len"}, "attention_mask": {1: "seq_len"},
            "position_ids": {1: "seq_len"}, "token_type_ids": {1: "seq_len"}, "text_token_mask": {1: "seq_len", 2: "seq_len"}}
    d = os.path.join(out, "grounding-dino")
    with torch.no_grad():
        export(model, args, os.path.join(d, "groundingdino.onnx"), names, ["logits", "boxes"], axes)
    with open(os.path.join(d, "vocab.txt"), "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    reference(model, os.path.join(out, "grounding-dino-reference.json"))
    torch.manual_seed(2)
    image_only = TinyGroundingDINO(text=False).eval()
    with torch.no_grad():
        export(image_only, (args[0],), os.path.join(out, "grounding-dino-image-only", "groundingdino.onnx"),
               ["img"], ["logits", "boxes"], {"img": {2: "height", 3: "width"}})


def reference_image(w, h):
    """The parity test's image, as models/segment/groundingdino's test builds it: RGB uint8."""
    x = torch.arange(w).view(1, w).expand(h, w)
    y = torch.arange(h).view(h, 1).expand(h, w)
    return torch.stack([(x * 6) % 256, (y * 8) % 256, (x * y) % 256]).to(torch.uint8)


def reference(model, path):
    """Torch's top detections for "man . face ." on reference_image(40, 30): the image resized
    to 1066x800 (short side 800) bilinearly and rounded to 8 bits as PIL does, ImageNet-
    normalised; the text inputs of Grounding DINO's generate_masks_with_special_tokens_and_
    transfer_map, written out by hand; scores the sigmoid of the best of the L text positions."""
    W, H = 40, 30
    img = reference_image(W, H).float().unsqueeze(0)
    img = F.interpolate(img, size=(800, 1066), mode="bilinear", align_corners=False).round().clamp(0, 255) / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    img = (img - mean) / std
    ids = torch.tensor([[2, 16, 5, 23, 5, 3]])  # [CLS] man . face . [SEP]
    L = ids.shape[1]
    mask = torch.zeros(1, L, L, dtype=torch.bool)
    for block in ([0], [1, 2], [3, 4], [5]):
        for i in block:
            for j in block:
                mask[0, i, j] = True
    with torch.no_grad():
        logits, boxes = model(img, ids, torch.ones(1, L, dtype=torch.bool), torch.tensor([[0, 0, 1, 0, 1, 0]]),
                              torch.zeros(1, L, dtype=torch.long), mask)
    sig = logits[0, :, :L].sigmoid()
    score = sig.max(1).values
    top = []
    for q in score.argsort(descending=True)[:5].tolist():
        cx, cy, w, h = boxes[0, q].tolist()
        phrase = "man" if sig[q, 1] >= sig[q, 3] else "face"
        box = [min(max(v, 0), m) for v, m in zip([(cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H], [W, H, W, H])]
        top.append({"query": q, "score": round(score[q].item(), 8), "phrase": phrase, "box": [round(v, 5) for v in box]})
    with open(path, "w") as f:
        json.dump({"image": [W, H], "caption": "man . face .", "top": top}, f, indent=1)
        f.write("\n")


def sam2_reference(enc, dec, path):
    """Torch's mask logits for the box (5, 4)-(30, 25) on reference_image(40, 30): the image
    stretched to 1024x1024 bilinearly in float (SAM2Transforms resizes the ToTensor output),
    ImageNet-normalised; the box as points labelled 2, 3 in the square's pixels; the mask with the best
    predicted IoU resized to 30x40 (F.interpolate, bilinear, align_corners=False)."""
    W, H = 40, 30
    box = [5.0, 4.0, 30.0, 25.0]
    img = reference_image(W, H).float().unsqueeze(0)
    img = F.interpolate(img / 255, size=(SAM, SAM), mode="bilinear", align_corners=False)
    img = (img - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        h0, h1, emb = enc(img)
        coords = torch.tensor([[[box[0] * SAM / W, box[1] * SAM / H], [box[2] * SAM / W, box[3] * SAM / H]]])
        masks, iou = dec(emb, h0, h1, coords, torch.tensor([[2.0, 3.0]]), torch.zeros(1, 1, LOW, LOW), torch.zeros(1))
    best = int(iou[0].argmax())
    logits = F.interpolate(masks[:, best:best + 1], size=(H, W), mode="bilinear", align_corners=False)
    with open(path, "w") as f:
        json.dump({"image": [W, H], "box": box, "best": best, "iou": round(iou[0, best].item(), 7),
                   "logits": [round(v, 5) for v in logits.flatten().tolist()]}, f)
        f.write("\n")


def sam2(out):
    torch.manual_seed(3)
    enc = TinySAM2Encoder().eval()
    image = torch.randn(1, 3, SAM, SAM)
    with torch.no_grad():
        feats = enc(image)
    prompt = (torch.tensor([[[100.0, 200.0], [600.0, 900.0]]]), torch.tensor([[2.0, 3.0]]),
              torch.zeros(1, 1, LOW, LOW), torch.zeros(1))
    dec_in = ["image_embed", "high_res_feats_0", "high_res_feats_1", "point_coords", "point_labels", "mask_input", "has_mask_input"]
    axes = {"point_coords": {0: "num_labels", 1: "num_points"}, "point_labels": {0: "num_labels", 1: "num_points"},
            "mask_input": {0: "num_labels"}, "has_mask_input": {0: "num_labels"}}
    for folder, orig in [("sam2", False), ("sam2-orig-size", True)]:
        d = os.path.join(out, folder)
        with torch.no_grad():
            export(enc, (image,), os.path.join(d, "sam2_hiera_tiny.encoder.onnx"), ["image"],
                   ["high_res_feats_0", "high_res_feats_1", "image_embed"], None)
            torch.manual_seed(4)
            dec = TinySAM2Decoder(orig_size=orig).eval()
            args = (feats[2], feats[0], feats[1]) + prompt
            names, a = list(dec_in), dict(axes)
            if orig:
                args = args + (torch.tensor([480, 640]),)
                names.append("orig_im_size")
                a["masks"] = {2: "height", 3: "width"}
            export(dec, args, os.path.join(d, "sam2_hiera_tiny.decoder.onnx"), names, ["masks", "iou_predictions"], a)
            if not orig:
                sam2_reference(enc, dec, os.path.join(out, "sam2-reference.json"))
    # A SAM 1 decoder: one image embedding, no high-resolution features.
    d = os.path.join(out, "sam2-other-names")
    shutil.copy(os.path.join(out, "sam2", "sam2_hiera_tiny.encoder.onnx"), os.path.join(d + "-tmp.onnx"))
    os.makedirs(d, exist_ok=True)
    shutil.move(d + "-tmp.onnx", os.path.join(d, "sam_vit_b.encoder.onnx"))

    class SAM1Decoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = TinySAM2Decoder(orig_size=True)

        def forward(self, image_embeddings, point_coords, point_labels, mask_input, has_mask_input, orig_im_size):
            return self.inner(image_embeddings, None, None, point_coords, point_labels, mask_input, has_mask_input, orig_im_size)

    torch.manual_seed(5)
    with torch.no_grad():
        export(SAM1Decoder().eval(), (feats[2],) + prompt + (torch.tensor([480, 640]),), os.path.join(d, "sam_vit_b.decoder.onnx"),
               ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size"],
               ["masks", "iou_predictions"], {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}})


def main():
    torch.set_num_threads(1)  # the same float sums on every run, so the references are stable
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "models", "segment", "testdata")
    grounding(out)
    sam2(out)
    total = 0
    for root, _, files in os.walk(out):
        for f in sorted(files):
            p = os.path.join(root, f)
            total += os.path.getsize(p)
            print(f"{os.path.relpath(p, out):55s} {os.path.getsize(p):8d}")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
