"""wanclip's own node pack as the simulator models it (``serve_in_thread(..., nodes=("wanclip",))``).

``WanclipSaveVideo`` returns at once: its ui names the final file, which does not exist yet. The
clip is written in the background to ``NAME.part`` and renamed ``video_delay`` seconds after the
node returned; then a ``wanclip.video`` event goes to the prompt's client. With the
``encode_fail:N`` fault prompt N's encode fails instead: no ``NAME``, a ``NAME.failed`` marker
(JSON with the reason) and a ``failed`` event. A restart or stop while a clip is pending deletes
its ``.part`` and sends nothing (the real pack's atexit kills ffmpeg; its next start cleans up).

The schema is what ComfyUI's ``/object_info`` makes of the pack's ``INPUT_TYPES`` (a test checks
it against the shipped node).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time

from wanclip.sim.node_base import Ctx, NodeError, next_counter, save_target
from wanclip.sim.video import Clip, write_mp4

PACKS = ("wanclip", "frame-interpolation")  # the second: ComfyUI-Frame-Interpolation's RIFE VFI (post_schemas)
EVENT = "wanclip.video"
CLASS = "WanclipSaveVideo"
PRESETS = ["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]
PIX_FMTS = ["yuv420p", "yuv420p10le"]

_REQUIRED = {
    "images": ["IMAGE"],
    "frame_rate": ["FLOAT", {"default": 16.0, "min": 1.0, "max": 240.0, "step": 1.0}],
    "filename_prefix": ["STRING", {"default": "video/wanclip"}],
    "crf": ["INT", {"default": 19, "min": 0, "max": 51, "step": 1}],
    "pix_fmt": [PIX_FMTS, {"default": "yuv420p"}],
    "preset": [PRESETS, {"default": "medium"}],
    "save_output": ["BOOLEAN", {"default": True}],
}

OBJECT_INFO = {
    CLASS: {
        "input": {"required": _REQUIRED, "optional": {"save_metadata": ["BOOLEAN", {"default": True}]},
                  "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"}},
        "input_order": {"required": list(_REQUIRED), "optional": ["save_metadata"],
                        "hidden": ["prompt", "extra_pnginfo", "unique_id"]},
        "output": [], "output_is_list": [], "output_name": [], "name": CLASS,
        "display_name": "Save Video in Background (wanclip)",
        "description": ("Saves the frames as an H.264 mp4 like VHS Video Combine (video/h264-mp4), encoding in the "
                        "background so the next prompt starts at once. The file appears a moment after the node "
                        "finishes (as NAME.part first); a failed encode leaves NAME.failed and sends a "
                        "'wanclip.video' event. save_metadata embeds the prompt and workflow as VHS does."),
        "python_module": "custom_nodes.wanclip_nodes", "category": "wanclip", "output_node": True,
    },
}


def object_info(packs) -> dict:
    """The classes the named packs add to ``/object_info``; an unknown pack is a ValueError."""
    unknown = [p for p in packs if p not in PACKS]
    if unknown:
        raise ValueError(f"unknown node pack(s) {', '.join(unknown)}: the simulator models {', '.join(PACKS)}")
    return dict(OBJECT_INFO) if "wanclip" in packs else {}


def save_video(inputs, ctx: Ctx):
    if inputs["pix_fmt"] not in PIX_FMTS or inputs["preset"] not in PRESETS:
        raise NodeError("ValueError", f"WanclipSaveVideo: unknown pix_fmt {inputs['pix_fmt']!r} or preset "
                              f"{inputs['preset']!r}")
    save = bool(inputs.get("save_output", True))
    folder, stem, subfolder = save_target(ctx.output_dir if save else ctx.temp_dir, inputs["filename_prefix"])
    counter = next_counter(folder, re.escape(stem) + r"_(\d+)_\..+")  # .part and .failed count too
    name = f"{stem}_{counter:05}_.mp4"
    final = folder / name
    part = folder / (name + ".part")
    part.touch(exist_ok=False)  # reserves the name, as the real node does
    kind = "output" if save else "temp"
    info = {"prompt_id": ctx.prompt_id, "node": ctx.node_id, "filename": name, "subfolder": subfolder, "type": kind}
    clip: Clip = inputs["images"]
    fps = float(inputs["frame_rate"])
    started = time.monotonic()

    def work(wait, fail_message):
        """In the background: the payload of the event, or None when the server went away."""
        try:
            if fail_message is None:
                write_mp4(part, clip, fps, fmt="mp4")
            if not wait(ctx.video_delay - (time.monotonic() - started)):
                part.unlink(missing_ok=True)
                return None
            if fail_message is None:
                size = part.stat().st_size
                os.replace(part, final)
                return dict(info, status="done", message="", frames=clip.frames, bytes=size,
                            seconds=round(time.monotonic() - started, 3))
        except Exception as exc:  # noqa: BLE001 - like the real encoder: any failure is the clip's
            fail_message = f"{type(exc).__name__}: {exc}"
        part.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            (folder / (name + ".failed")).write_text(json.dumps(dict(info, status="failed", message=fail_message)),
                                                     encoding="utf-8")
        return dict(info, status="failed", message=fail_message, frames=0, bytes=0,
                    seconds=round(time.monotonic() - started, 3))

    ctx.background(work)
    entry = {"filename": name, "subfolder": subfolder, "type": kind}
    return (), {"images": [entry], "animated": [True],
                "wanclip": [{"pending": True, "event": EVENT, "failed_marker": name + ".failed"}]}


RUNNERS = {CLASS: save_video}
