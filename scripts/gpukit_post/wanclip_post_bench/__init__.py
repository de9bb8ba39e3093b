"""Bench-only custom node pack: core ComfyUI's frame interpolation nodes for a 0.3.64 server.

Newer ComfyUI ships `FrameInterpolationModelLoader` and `FrameInterpolate` in its core; 0.3.64 does
not. This pack registers both under those exact class names, with the same inputs
(model_name from models/frame_interpolation/; model, images, multiplier 2..16, optional
torch_compile) and output types, so a wanclip post graph written for the core nodes runs
unchanged on the bench's 0.3.64 and its cost is measured. RIFE 4.x files only (no FILM).
Written against 0.3.64's comfy_api.latest io (V3 schema); pure torch.
"""
from __future__ import annotations

import logging
import os

import comfy.model_management as mm
import comfy.model_patcher
import comfy.utils
import folder_paths
import torch
from comfy_api.latest import ComfyExtension, io

from .rife_net import IFNet, normalise_keys, rife_config

FOLDER = "frame_interpolation"


def _register_folder() -> None:
    default = os.path.join(folder_paths.models_dir, FOLDER)
    entry = folder_paths.folder_names_and_paths.get(FOLDER)
    if entry is None:
        folder_paths.folder_names_and_paths[FOLDER] = ([default], set(folder_paths.supported_pt_extensions))
    else:  # an extra_model_paths.yaml may have made it first, with no extensions and without the default folder
        paths, exts = entry
        if default not in paths:
            paths.insert(0, default)
        exts.update(folder_paths.supported_pt_extensions)


_register_folder()

InterpModel = io.Custom("FRAME_INTERPOLATION_MODEL")


class FrameInterpolationModelLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FrameInterpolationModelLoader",
            display_name="Load Frame Interpolation Model",
            category="loaders",
            inputs=[io.Combo.Input("model_name", options=folder_paths.get_filename_list(FOLDER))],
            outputs=[InterpModel.Output()],
        )

    @classmethod
    def execute(cls, model_name) -> io.NodeOutput:
        path = folder_paths.get_full_path_or_raise(FOLDER, model_name)
        sd = normalise_keys(comfy.utils.load_torch_file(path, safe_load=True))
        if "extract.extract_sublevels.convs.0.0.conv.weight" in sd:
            raise ValueError(f"{model_name} is a FILM model; this bench pack runs RIFE 4.x files only")
        try:
            head, widths = rife_config(sd)
        except (KeyError, ValueError) as e:
            raise ValueError(f"{model_name}: not a RIFE 4.x frame interpolation model ({e})") from e
        net = IFNet(head_ch=head, channels=widths)
        net.load_state_dict(sd)
        device = mm.get_torch_device()
        dtype = torch.float16 if mm.should_use_fp16(device) else torch.float32
        net.eval().to(dtype)
        logging.info("frame interpolation: %s, RIFE head %d, blocks %s, %s", model_name, head, widths, dtype)
        return io.NodeOutput(comfy.model_patcher.ModelPatcher(net, load_device=device, offload_device=mm.unet_offload_device()))


class FrameInterpolate(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="FrameInterpolate",
            display_name="Frame Interpolate",
            category="image/video",
            inputs=[
                InterpModel.Input("model"),
                io.Image.Input("images"),
                io.Int.Input("multiplier", default=2, min=2, max=16),
                io.Boolean.Input("torch_compile", default=False, optional=True,
                                 tooltip="Compile the model's submodules (needs triton)."),
            ],
            outputs=[io.Image.Output()],
        )

    @classmethod
    def execute(cls, model, images, multiplier, torch_compile=False) -> io.NodeOutput:
        n = images.shape[0]
        if n < 2 or multiplier < 2:
            return io.NodeOutput(images)
        mm.load_model_gpu(model)
        dev, net = model.load_device, model.model
        dtype = model.model_dtype()
        host = mm.intermediate_device()
        frames = images.movedim(-1, 1).to(device=host)                    # (N, C, H, W)
        _, c, h, w = frames.shape
        a = net.pad_align
        ph, pw = -h % a, -w % a
        if ph or pw:   # reflect-pad in the images' own dtype (fp32): half reflect-pad on the CPU is not in every torch
            frames = torch.nn.functional.pad(frames, (0, pw, 0, ph), mode="reflect")
        frames = frames.to(dtype)
        H, W = frames.shape[-2:]
        if torch_compile:
            for name, child in list(net.named_children()):
                if not isinstance(child, (torch.nn.ModuleList, torch.nn.ModuleDict)) and not getattr(child, "_compiled", False):
                    comp = torch.compile(child)
                    comp._compiled = True
                    setattr(net, name, comp)
        k = multiplier - 1                                                 # new frames per pair
        out = torch.empty(((n - 1) * multiplier + 1, c, H, W), dtype=dtype, device=host,
                          pin_memory=(dev.type == "cuda" and host.type == "cpu"))
        pinned = out.is_pinned()
        ts = (torch.arange(1, multiplier, device=dev, dtype=torch.float32) / multiplier).to(dtype).view(k, 1, 1, 1).expand(k, 1, H, W)
        pbar = comfy.utils.ProgressBar((n - 1) * k)
        batch = k                                                          # halved on out-of-memory, kept after
        out[0] = frames[0]
        pos = 1
        with torch.inference_mode():
            x1 = frames[0:1].to(dev)
            f1 = net.extract_features(x1)
            for i in range(n - 1):
                x0, f0 = x1, f1
                x1 = frames[i + 1:i + 2].to(dev, non_blocking=True)
                f1 = net.extract_features(x1)
                j = 0
                while j < k:
                    b = min(batch, k - j)
                    try:
                        mid = net(x0.expand(b, -1, -1, -1), x1.expand(b, -1, -1, -1), ts[j:j + b],
                                  f0.expand(b, -1, -1, -1), f1.expand(b, -1, -1, -1))
                    except mm.OOM_EXCEPTION:
                        if batch == 1:
                            raise
                        batch = max(1, batch // 2)
                        mm.soft_empty_cache()
                        continue
                    out[pos:pos + b].copy_(mid, non_blocking=pinned)
                    pos += b
                    j += b
                    pbar.update(b)
                out[pos].copy_(frames[i + 1])
                pos += 1
        if pinned:
            torch.cuda.synchronize(dev)
        res = out[:, :, :h, :w].movedim(1, -1).clamp_(0.0, 1.0).to(torch.float32)
        return io.NodeOutput(res)


class _Pack(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [FrameInterpolationModelLoader, FrameInterpolate]


async def comfy_entrypoint() -> ComfyExtension:
    return _Pack()
