"""Setup: the model manifest, verified resumable downloads, the ComfyUI node pack.

manifest.py (what files, the --with sets) -> results.py (typed events and results) -> verify.py
(what is already on disk) -> install.py (downloads; the only huggingface_hub user); nodepack.py.

May import: checks.graph (node pack check), files, config, errors.
"""
