"""The simulator's HTTP routes, one module per area of ComfyUI's server.py: prompts (prompt, queue,
history, interrupt), jobs (the 0.9+ /api/jobs), files (/view, /upload/image), system (schemas,
models, stats, features). The websocket lives in ``sim/websocket.py``; ``sim/server.py`` mounts them.
"""
