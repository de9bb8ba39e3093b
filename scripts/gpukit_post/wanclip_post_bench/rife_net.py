"""A RIFE 4.x flow network (IFNet) written for the post-stage bench.

Only the parameter layout is fixed: it must take the state dicts that ComfyUI's core
FrameInterpolationModelLoader accepts (``encode.cnn0..3`` head, ``blocks.0..4`` with ``conv0``,
``convblock.0..7.{conv,beta}`` and ``lastconv.0``), so the bench's random-weight file and a real
RIFE file load alike. Coarse-to-fine: five blocks at 1/16 .. 1/1 resolution each refine the two
flows (frame 0 -> t, frame 1 -> t), a blend mask and an 8-channel feature map.
"""
from __future__ import annotations

import comfy.ops
import torch
import torch.nn.functional as F
from torch import nn

NN = comfy.ops.disable_weight_init   # no init work: the weights come from the file
SCALES = (16, 8, 4, 2, 1)
ALIGN = 64                            # the input's sides must be multiples of this


def _conv(cin, cout, stride):
    return NN.Conv2d(cin, cout, 3, stride, 1)


def _act():
    return nn.LeakyReLU(0.2, inplace=True)


class Head(nn.Module):
    """Per-frame features at full resolution (cached: frame i+1 of one pair is frame 0 of the next)."""

    def __init__(self, out_ch: int):
        super().__init__()
        self.cnn0 = _conv(3, 16, 2)
        self.cnn1 = _conv(16, 16, 1)
        self.cnn2 = _conv(16, 16, 1)
        self.cnn3 = NN.ConvTranspose2d(16, out_ch, 4, 2, 1)

    def forward(self, img):
        h = F.leaky_relu(self.cnn0(img), 0.2)
        h = F.leaky_relu(self.cnn1(h), 0.2)
        h = F.leaky_relu(self.cnn2(h), 0.2)
        return self.cnn3(h)


class ResConv(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = _conv(c, c, 1)
        self.beta = nn.Parameter(torch.empty(1, c, 1, 1))

    def forward(self, x):
        return F.leaky_relu(x + self.conv(x) * self.beta, 0.2)


class IFBlock(nn.Module):
    """One level: downsample by `scale`, 2 strided convs, 8 residual convs, back up; outputs
    (flow delta 4 ch, mask 1 ch, features 8 ch) at the input's resolution."""

    def __init__(self, cin: int, c: int):
        super().__init__()
        self.conv0 = nn.Sequential(nn.Sequential(_conv(cin, c // 2, 2), _act()), nn.Sequential(_conv(c // 2, c, 2), _act()))
        self.convblock = nn.Sequential(*[ResConv(c) for _ in range(8)])
        self.lastconv = nn.Sequential(NN.ConvTranspose2d(c, 4 * 13, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x, flow, scale: int):
        if scale != 1:
            x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            f = flow if scale == 1 else F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat((x, f), 1)
        out = self.lastconv(self.convblock(self.conv0(x)))
        if scale != 1:
            out = F.interpolate(out, scale_factor=scale, mode="bilinear", align_corners=False)
        return out[:, :4] * scale, out[:, 4:5], out[:, 5:]


class IFNet(nn.Module):
    def __init__(self, head_ch: int = 4, channels=(192, 128, 96, 64, 32)):
        super().__init__()
        self.encode = Head(head_ch)
        first = 3 + 3 + 2 * head_ch + 1                  # img0, img1, their features, t
        later = first + 4 + 1 + 8                        # + flow, mask, features of the level above
        self.blocks = nn.ModuleList([IFBlock(first if i == 0 else later, c) for i, c in enumerate(channels)])
        self.pad_align = ALIGN
        self._grid = None                                # (H, W, device) -> base grid, pixel->[-1,1] factor

    def get_dtype(self):
        return self.encode.cnn0.weight.dtype

    def extract_features(self, img):
        return self.encode(img)

    def _warp(self, img, flow):
        _, _, h, w = img.shape
        key = (h, w, img.device)
        if self._grid is None or self._grid[0] != key:
            ys = torch.linspace(-1.0, 1.0, h, device=img.device)
            xs = torch.linspace(-1.0, 1.0, w, device=img.device)
            gy, gx = torch.meshgrid(ys, xs, indexing="ij")
            norm = torch.tensor([2.0 / (w - 1), 2.0 / (h - 1)], device=img.device).view(1, 2, 1, 1)
            self._grid = (key, torch.stack((gx, gy)).unsqueeze(0), norm)
        _, base, norm = self._grid
        grid = (base + flow.float() * norm).permute(0, 2, 3, 1)
        return F.grid_sample(img.float(), grid, mode="bilinear", padding_mode="border", align_corners=True).to(img.dtype)

    def forward(self, img0, img1, timestep, f0, f1):
        """img0/img1: (B,3,H,W) with H, W multiples of 64; timestep: (B,1,H,W); f0/f1: head features."""
        flow = mask = feat = None
        w0, w1 = img0, img1
        for block, scale in zip(self.blocks, SCALES, strict=True):
            if flow is None:
                flow, mask, feat = block(torch.cat((img0, img1, f0, f1, timestep), 1), None, scale)
            else:
                x = torch.cat((w0, w1, self._warp(f0, flow[:, :2]), self._warp(f1, flow[:, 2:4]), timestep, mask, feat), 1)
                d, mask, feat = block(x, flow, scale)
                flow = flow + d
            w0 = self._warp(img0, flow[:, :2])
            w1 = self._warp(img1, flow[:, 2:4])
        m = torch.sigmoid(mask)
        return w0 * m + w1 * (1 - m)


def rife_config(sd: dict) -> tuple[int, list[int]]:
    """(head channels, the five blocks' widths) of a state dict in the loader's naming; KeyError/ValueError if not RIFE."""
    head = sd["encode.cnn3.weight"].shape[1]               # ConvTranspose2d weight: (in, out, k, k)
    widths = [sd[f"blocks.{i}.conv0.1.0.weight"].shape[0] for i in range(5) if f"blocks.{i}.conv0.1.0.weight" in sd]
    if len(widths) != 5:
        raise ValueError(f"a RIFE 4.x file has 5 flow blocks, this one {len(widths)}")
    return head, widths


def normalise_keys(sd: dict) -> dict:
    """Raw RIFE checkpoints name things `module.block0.…` / `flownet.block0.…`; the loader's names are `blocks.0.…`."""
    out = {}
    for k, v in sd.items():
        for p in ("module.", "flownet."):
            if k.startswith(p):
                k = k[len(p):]
        if k.startswith(("teacher.", "caltime.")):
            continue
        if k.startswith("block") and k[5:6].isdigit():
            k = f"blocks.{k[5]}.{k[7:]}"
        out[k] = v
    return out
