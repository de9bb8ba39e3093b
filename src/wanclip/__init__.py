"""wanclip: turn a shot list into a finished Wan 2.2 film on your own ComfyUI."""

__version__ = "0.1.0"
