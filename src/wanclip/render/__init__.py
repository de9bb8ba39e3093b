"""The render engine: the pure shot machine and film coordinator, and the I/O shell over the backend seam.

May import: planning, comfy, checks, ledger, files, media, config, errors, signals, and serve.state only
(which servers a running `wanclip serve` has warm). The pool and the effects reach a server only through
render/backend.py; render/comfyui.py is ComfyUI's implementation of it.
"""
