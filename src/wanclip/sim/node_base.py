"""What every simulated node builds on: the context a node body runs with, the error a node
raises, and ComfyUI's output-file naming (folder checks, counters) that the save nodes share.

Both the built-in nodes (``nodes.py``) and the node packs (``wanclip_nodes.py``) import this;
it imports neither, so the two never import each other.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


class NodeError(Exception):
    """A node raised at execution time; becomes execution_error with this type and message."""

    def __init__(self, exception_type: str, message: str):
        super().__init__(message)
        self.exception_type = exception_type


@dataclass
class Ctx:
    """What a node body may use: the runner's hooks, so the node stays a plain function."""

    node_id: str
    prompt: dict
    output_dir: Path
    temp_dir: Path
    sleep: object  # sleep(seconds), raises on interrupt/restart
    step: object  # step(value, max) after each sampler/frame tick
    step_seconds: float
    load: object  # load(folder, name) -> seconds to wait
    activity: object = lambda name: None  # activity("loading") while a node spends time on it (0.38)
    prompt_id: str | None = None
    background: object = None  # background(work): work(wait, fail_message) -> event payload (node pack)
    video_delay: float = 0.0  # node pack: seconds from the node's return to the renamed file
    image_path: object = None  # image_path(name) -> Path: LoadImage's file, "[output]"-style suffixes read
    drift: float = 0.0  # colour drift of a clip decoded from an image-to-video latent (SimConfig.drift)


def save_target(base: Path, prefix: str) -> tuple[Path, str, str]:
    """(folder, file stem, subfolder) for a prefix; refuses to leave the output folder like ComfyUI."""
    subfolder, stem = os.path.split(os.path.normpath(prefix))
    folder = (base / subfolder).resolve()
    if os.path.commonpath([folder, base.resolve()]) != str(base.resolve()):
        raise NodeError("Exception", f"**** ERROR: Saving image outside the output folder is not allowed.\n full_output_folder: {folder}\n         output_dir: {base}")
    folder.mkdir(parents=True, exist_ok=True)
    return folder, stem, subfolder


def next_counter(folder: Path, pattern: str) -> int:
    matcher = re.compile(pattern, re.IGNORECASE)
    found = [int(m.group(1)) for f in os.listdir(folder) if (m := matcher.fullmatch(f))]
    return max(found, default=0) + 1
