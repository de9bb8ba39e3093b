"""The render engine: the pure shot machine and film coordinator, and the I/O shell over the backend seam.

May import: planning, comfy, checks, ledger, files, media, config, errors, signals, and serve.state only
(which servers a running `wanclip serve` has warm). Only render/comfyui.py (the ComfyUI backend) may
use comfy's client, socket, jobs and download code: the pool and the effects go through render/backend.py.
"""
