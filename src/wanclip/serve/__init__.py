"""One ComfyUI per GPU: the supervisor behind `wanclip serve`.

May import: comfy, planning, config, files, errors.
"""
