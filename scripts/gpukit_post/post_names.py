"""The post models' file names: src/wanclip/planning/post_models.py's INTERPOLATION_MODEL and UPSCALE_MODEL,
read as text (stdlib only, wanclip need not be importable), with its first values as the fallback.
`python3 post_names.py` prints the two names."""
from __future__ import annotations

import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))


def default_names() -> tuple[str, str]:
    names = {"INTERPOLATION_MODEL": "rife47.safetensors", "UPSCALE_MODEL": "RealESRGAN_x2plus.pth"}
    for cand in (os.path.join(HERE, "..", "src", "wanclip", "planning", "post_models.py"),
                 os.path.join(os.getcwd(), "src", "wanclip", "planning", "post_models.py")):
        if os.path.isfile(cand):
            text = open(cand, encoding="utf-8").read()
            for k in names:
                m = re.search(rf'^{k}\s*=\s*"([^"]+)"', text, re.M)
                if m:
                    names[k] = m.group(1)
            break
    return names["INTERPOLATION_MODEL"], names["UPSCALE_MODEL"]


if __name__ == "__main__":
    print(*default_names())
