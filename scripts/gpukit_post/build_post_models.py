"""Write the post stage's two model files with random weights at their real shapes.

usage: build_post_models.py MODELS_DIR [--interp NAME] [--upscale NAME] [--device cuda|cpu]
  MODELS_DIR/frame_interpolation/NAME  RIFE 4.x IFNet (head 4 ch, blocks 192/128/96/64/32), safetensors,
                                       in the raw checkpoint naming (`block0.` ...) that the core loader maps
  MODELS_DIR/upscale_models/NAME       Real-ESRGAN x2plus RRDBNet (64 feat, 23 blocks, 32 growth,
                                       pixel-unshuffle by 2: 12 input channels), a .pth with `params_ema`
Names default to src/wanclip/planning/post_models.py's INTERPOLATION_MODEL / UPSCALE_MODEL (read as
text, so wanclip need not be importable). Weights are small (std 0.02 conv, 0.1 RIFE beta) so flows stay
near zero and every output is finite; the cost of running them is that of the real models.
Prints one JSON line per file: path, tensors, parameters, bytes, seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from post_names import default_names  # noqa: E402


def rife_shapes(head=4, widths=(192, 128, 96, 64, 32)) -> dict[str, tuple]:
    s = {"encode.cnn0.weight": (16, 3, 3, 3), "encode.cnn0.bias": (16,),
         "encode.cnn1.weight": (16, 16, 3, 3), "encode.cnn1.bias": (16,),
         "encode.cnn2.weight": (16, 16, 3, 3), "encode.cnn2.bias": (16,),
         "encode.cnn3.weight": (16, head, 4, 4), "encode.cnn3.bias": (head,)}   # ConvTranspose2d: (in, out, k, k)
    first = 3 + 3 + 2 * head + 1
    for i, c in enumerate(widths):
        cin = first if i == 0 else first + 4 + 1 + 8
        p = f"block{i}."
        s[p + "conv0.0.0.weight"], s[p + "conv0.0.0.bias"] = (c // 2, cin, 3, 3), (c // 2,)
        s[p + "conv0.1.0.weight"], s[p + "conv0.1.0.bias"] = (c, c // 2, 3, 3), (c,)
        for r in range(8):
            s[p + f"convblock.{r}.conv.weight"], s[p + f"convblock.{r}.conv.bias"] = (c, c, 3, 3), (c,)
            s[p + f"convblock.{r}.beta"] = (1, c, 1, 1)
        s[p + "lastconv.0.weight"], s[p + "lastconv.0.bias"] = (c, 4 * 13, 4, 4), (4 * 13,)
    return s


def esrgan_x2plus_shapes(nf=64, nb=23, gc=32, unshuffle=2) -> dict[str, tuple]:
    s = {"conv_first.weight": (nf, 3 * unshuffle ** 2, 3, 3), "conv_first.bias": (nf,)}
    for b in range(nb):
        for r in (1, 2, 3):
            for j in range(1, 6):
                cin, cout = nf + (j - 1) * gc, (gc if j < 5 else nf)
                s[f"body.{b}.rdb{r}.conv{j}.weight"], s[f"body.{b}.rdb{r}.conv{j}.bias"] = (cout, cin, 3, 3), (cout,)
    for n in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        s[f"{n}.weight"], s[f"{n}.bias"] = (nf, nf, 3, 3), (nf,)
    s["conv_last.weight"], s["conv_last.bias"] = (3, nf, 3, 3), (3,)
    return s


def draw(shapes: dict[str, tuple], device: str, seed: int, beta_std: float = 0.1) -> dict[str, torch.Tensor]:
    g = torch.Generator(device=device).manual_seed(seed)
    out = {}
    for k, shp in shapes.items():
        if k.endswith(".bias"):
            t = torch.zeros(shp, device=device)
        elif k.endswith(".beta"):
            t = torch.randn(shp, generator=g, device=device) * beta_std
        else:
            t = torch.randn(shp, generator=g, device=device) * 0.02
        out[k] = t.float().cpu().contiguous()
    return out


def main() -> None:
    interp, upscale = default_names()
    ap = argparse.ArgumentParser()
    ap.add_argument("models_dir")
    ap.add_argument("--interp", default=interp)
    ap.add_argument("--upscale", default=upscale)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    for sub, name, shapes, seed in (("frame_interpolation", a.interp, rife_shapes(), 47),
                                    ("upscale_models", a.upscale, esrgan_x2plus_shapes(), 2)):
        t0 = time.time()
        os.makedirs(os.path.join(a.models_dir, sub), exist_ok=True)
        path = os.path.join(a.models_dir, sub, name)
        sd = draw(shapes, a.device, seed)
        part = path + ".part"
        if name.endswith(".safetensors"):
            from safetensors.torch import save_file
            save_file(sd, part)
        else:   # .pth / .pt: the layout Real-ESRGAN publishes
            torch.save({"params_ema": sd}, part)
        os.replace(part, path)
        print(json.dumps({"path": path, "tensors": len(sd), "parameters": sum(t.numel() for t in sd.values()),
                          "bytes": os.path.getsize(path), "seconds": round(time.time() - t0, 2)}), flush=True)


if __name__ == "__main__":
    main()
