"""``WanclipSaveVideo``: an output node that hands the frames to a background ffmpeg and returns.

VideoHelperSuite's ``VHS_VideoCombine`` encodes on ComfyUI's executor thread, so the GPU waits
~1.7 s per 81-frame clip before the next prompt starts. This node reserves the file name, queues
the frames and returns at once; the worker in ``encoder.py`` converts and encodes them while the
next prompt samples, writes ``NAME.part`` and renames it to ``NAME``. A clip with no prompt queued
behind it (the last of a film: the one the film waits for) is encoded in parts side by side, one
per four CPUs (``encoder.parts_when_idle``), each part starting on a keyframe.

**The file is announced before it is complete.** The ui result (core ``SaveVideo``'s shape,
``{"images": [...], "animated": [true]}``) names the final file the moment the node returns;
``/view`` answers 404 for it until the rename. Then a ``wanclip.video`` websocket event goes to the
prompt's client: ``{"prompt_id", "node", "filename", "subfolder", "type", "status": "done" |
"failed", "message", "frames", "bytes", "seconds"}``. A failed encode leaves no ``NAME`` but
``NAME.failed`` (JSON, the same payload), which ``/view`` serves, so a client that missed the
event still learns why.
"""

from __future__ import annotations

import logging
import os

from . import encoder

log = logging.getLogger("wanclip_nodes")


class _AnyOf(str):
    """An input type that also accepts links of other types (VHS's ``floatOrInt``): a frame rate
    may come from an INT primitive as well as a FLOAT one."""

    def __new__(cls, name: str, allowed: tuple[str, ...]):
        value = super().__new__(cls, name)
        value.allowed = allowed
        return value

    def __ne__(self, other):  # only `!=`: ComfyUI's `== "INT"` literal coercion must still see FLOAT
        return other != "*" and other not in self.allowed


FLOAT_OR_INT = _AnyOf("FLOAT", ("FLOAT", "INT"))


def _server():
    try:
        from server import PromptServer

        return PromptServer.instance
    except Exception:  # noqa: BLE001 - outside ComfyUI (tests without the stub): no events
        return None


def _notify(payload: dict, sid: str | None) -> None:
    server = _server()
    if server is not None:
        server.send_sync(encoder.EVENT, payload, sid)


def _prompt_id(server) -> str | None:
    try:
        from comfy_execution.utils import get_executing_context

        context = get_executing_context()
        if context is not None:
            return context.prompt_id
    except Exception:  # noqa: BLE001 - older ComfyUI: the worker's last prompt is this one
        pass
    return getattr(server, "last_prompt_id", None)


def _nothing_behind(prompt_id: str | None) -> bool:
    """True when the server has no prompt queued and none running but this clip's own: the clip is
    what someone waits for now. False when unsure (another ComfyUI's queue, no server)."""
    server = _server()
    prompts = getattr(server, "prompt_queue", None)
    try:
        with prompts.mutex:
            pending = len(prompts.queue)
            running = [item[1] for item in prompts.currently_running.values()]
    except Exception:  # noqa: BLE001 - not ComfyUI's PromptQueue as we know it: encode in one run
        return False
    return pending == 0 and all(r == prompt_id for r in running)


def _parts(job: encoder.Job, frames: int) -> int:
    """The encoder's question when a clip's encode starts: in how many parts, side by side."""
    return encoder.parts_when_idle(frames) if _nothing_behind(job.info.get("prompt_id")) else 1


class WanclipSaveVideo:
    """Save an H.264 mp4 (VHS ``video/h264-mp4`` frames) in the background; the prompt ends at once."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE",),
                "frame_rate": (FLOAT_OR_INT, {"default": 16.0, "min": 1.0, "max": 240.0, "step": 1.0}),
                "filename_prefix": ("STRING", {"default": "video/wanclip"}),
                "crf": ("INT", {"default": 19, "min": 0, "max": 51, "step": 1}),
                "pix_fmt": (list(encoder.PIX_FMTS), {"default": "yuv420p"}),
                "preset": (list(encoder.PRESETS), {"default": "medium"}),
                "save_output": ("BOOLEAN", {"default": True}),
            },
            # optional: a graph made for an older pack (without it) still validates
            "optional": {"save_metadata": ("BOOLEAN", {"default": True})},
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        }

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"
    CATEGORY = "wanclip"
    DESCRIPTION = ("Saves the frames as an H.264 mp4 like VHS Video Combine (video/h264-mp4), encoding in the "
                   "background so the next prompt starts at once. The file appears a moment after the node "
                   "finishes (as NAME.part first); a failed encode leaves NAME.failed and sends a "
                   "'wanclip.video' event. save_metadata embeds the prompt and workflow as VHS does.")

    def save(self, images, frame_rate, filename_prefix="video/wanclip", crf=19, pix_fmt="yuv420p",
             preset="medium", save_output=True, save_metadata=True, prompt=None, extra_pnginfo=None,
             unique_id=None):
        import folder_paths

        count, height, width, channels = encoder.frame_shape(images)
        if count == 0:
            raise ValueError("WanclipSaveVideo got no frames")
        if channels not in (3, 4):
            raise ValueError(f"WanclipSaveVideo needs RGB or RGBA frames, got {channels} channels")
        if width % 2 or height % 2:
            raise ValueError(f"WanclipSaveVideo needs an even width and height for {pix_fmt}, got {width}x{height}")
        if pix_fmt not in encoder.PIX_FMTS or preset not in encoder.PRESETS:
            raise ValueError(f"WanclipSaveVideo: unknown pix_fmt {pix_fmt!r} or preset {preset!r}")
        base = folder_paths.get_output_directory() if save_output else folder_paths.get_temp_directory()
        folder, stem, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, base, width, height)
        final = encoder.reserve(folder, stem, counter)
        name = os.path.basename(final)
        kind = "output" if save_output else "temp"
        server = _server()
        info = {"prompt_id": _prompt_id(server), "node": None if unique_id is None else str(unique_id),
                "filename": name, "subfolder": subfolder, "type": kind}
        metadata = None
        if save_metadata:  # what VHS embeds: the prompt (API graph) and the extra_pnginfo (the UI workflow)
            metadata = ({"prompt": prompt} if prompt is not None else {}) | dict(extra_pnginfo or {})
        job = encoder.Job(images, float(frame_rate), final, crf=int(crf), pix_fmt=pix_fmt, preset=preset,
                          info=info, sid=getattr(server, "client_id", None), metadata=metadata or None)
        try:
            encoder.shared_encoder(_notify, _parts).submit(job)  # blocks while the queue is full
        except BaseException:
            os.unlink(job.part)
            raise
        entry = {"filename": name, "subfolder": subfolder, "type": kind}
        return {"ui": {"images": [entry], "animated": [True],
                       "wanclip": [{"pending": True, "event": encoder.EVENT,
                                    "failed_marker": name + encoder.FAILED}]},
                "result": ()}


def _cleanup_at_load() -> None:
    try:
        import folder_paths

        roots = [folder_paths.get_output_directory(), folder_paths.get_temp_directory()]
    except Exception:  # noqa: BLE001 - imported outside ComfyUI
        return
    encoder.cleanup_stale(roots)


_cleanup_at_load()

NODE_CLASS_MAPPINGS = {"WanclipSaveVideo": WanclipSaveVideo}
NODE_DISPLAY_NAME_MAPPINGS = {"WanclipSaveVideo": "Save Video in Background (wanclip)"}
