"""The render engine: the pure shot machine and film coordinator, and the I/O shell over the backend seam.

May import: planning, comfy, checks, ledger, files, media, config, errors, signals.
"""
