"""Setup: the model manifest, verified resumable downloads, the ComfyUI node pack.

May import: checks.graph (node pack check), files, config, errors.
"""
