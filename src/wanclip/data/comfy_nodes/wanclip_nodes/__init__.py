"""wanclip's ComfyUI nodes, installed by ``wanclip setup --nodes --comfy-dir DIR``.

WanclipSaveVideo: VHS_VideoCombine's h264-mp4 frames, encoded in the background so the GPU starts
the next prompt at once. Managed by wanclip (see wanclip_pack.json): edits here are replaced on
the next ``wanclip setup --nodes``.
"""

from .save_video import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
