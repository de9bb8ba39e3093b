"""One ComfyUI per GPU: the supervisor behind `wanclip serve`, and serve.json (state.py), which the
render and the CLI read.

May import: comfy, planning, config, files, errors.
"""
