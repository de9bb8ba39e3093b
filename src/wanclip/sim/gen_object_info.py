"""Regenerates the simulator's node schemas from a recorded `/object_info`: only the sim's classes.

    python -m wanclip.sim.gen_object_info ../shared/reference/comfyui-samples-0.9.2/object_info_all.json \
        [../shared/reference/comfyui-samples/object_info_all.json [../shared/reference/comfyui-samples-0.33.0]]

writes `data/sim/object_info_0.9.json` (the 0.9.2 recording, trimmed) and `object_info_0.38.json`
(the same plus the schema changes comfyui-drift.md §2 read in the 0.3x code, which no recording shows);
with the second (0.3.64) recording also `object_info.json`; with the 0.33.0 folder also
`object_info_0.33.json` (0.38's, with the classes that ComfyUI 0.33.0 recorded taken from it:
SaveVideo, CreateVideo, UNETLoader, VHS_VideoCombine; no full 0.33 `/object_info` was recorded).
Model lists and LoadImage's file list are emptied: the catalog fills them from the server's folders.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

from wanclip.sim.catalog import IMAGE_INPUT, MODEL_INPUTS
from wanclip.sim.nodes import RUNNERS

DATA = Path(__file__).resolve().parent.parent / "data" / "sim"

# CLIPLoader `type` entries seen in the 0.3x nodes.py (drift §2), after 0.9.2's list.
CLIP_TYPES_038 = ["cogvideox", "lens", "pixeldit", "ideogram4", "boogu", "krea2", "joyimage", "mage", "minimax"]


def trimmed(recorded: dict) -> dict:
    info = {cls: copy.deepcopy(recorded[cls]) for cls in RUNNERS}
    for (cls, name) in [*MODEL_INPUTS, IMAGE_INPUT]:
        info[cls]["input"]["required"][name][0] = []
    return info


def _combo(options: list, default: str, tooltip: str | None = None, **extra) -> list:
    spec = {"default": default, "multiselect": False, "options": options, **extra}
    if tooltip:
        spec = {"tooltip": tooltip, **spec}
    return ["COMBO", spec]


def _dynamic(options: list[tuple[str, dict]], default: str, tooltip: str) -> list:
    """A V3 DynamicCombo spec: each option names the inputs that appear when it is picked."""
    return ["COMFY_DYNAMICCOMBO_V3", {"tooltip": tooltip, "default": default,
                                      "options": [{"key": k, "inputs": v} for k, v in options]}]


def schema_038(info_09: dict) -> dict:
    """0.9.2's schemas with the 0.3x changes (drift §2). The exact tooltips/defaults are inferred."""
    info = copy.deepcopy(info_09)
    info["UNETLoader"]["input"]["required"]["weight_dtype"].append({"advanced": True})
    types = info["CLIPLoader"]["input"]["required"]["type"][0]
    types.extend(t for t in CLIP_TYPES_038 if t not in types)

    create = info["CreateVideo"]
    create["input"]["optional"].update(
        bit_depth=_combo(["auto", "8", "10"], "auto", "Bits per channel of the encoded video."),
        color_space=_combo(["sRGB", "HDR", "HDR PQ"], "sRGB", "Colour space of the encoded video."))
    create["input_order"]["optional"] += ["bit_depth", "color_space"]
    create["category"] = "video"

    encoding = _dynamic([("auto", {}), ("re-encode", {"required": {"crf": ["INT", {"default": 23, "min": 0, "max": 51}]}})],
                        "auto", "Keep the encoder's defaults or re-encode with a constant rate factor.")
    codec = _dynamic([(c, {"required": {"encoding": encoding}}) for c in ("auto", "h264", "av1")], "auto",
                     "The codec to use for the video.")
    save = info["SaveVideo"]
    required = save["input"]["required"]
    required["format"] = _dynamic([(f, {"required": {"codec": codec}}) for f in ("auto", "mp4", "mkv", "webm")],
                                  "auto", "The format to save the video as.")
    old_codec = required.pop("codec")
    old_codec[1]["hidden"] = True  # kept for graphs saved before the DynamicCombo (inferred spelling)
    save["input"]["optional"] = {"codec": old_codec}
    save["input_order"] = {"required": ["video", "filename_prefix", "format"], "optional": ["codec"],
                           "hidden": save["input_order"]["hidden"]}
    save.update(output=["VIDEO"], output_is_list=[False], output_name=["VIDEO"], output_tooltips=[None],
                category="video")
    return info


def recorded_033(folder: Path) -> dict:
    """The classes the 0.33.0 recording holds: ``object_info_<class>.json`` files and ``misc.jsonl``."""
    found = {}
    for path in sorted(folder.glob("object_info_*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        found.update(body.get("body", body))
    for line in (folder / "misc.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("tag", "").startswith("GET /object_info/") and isinstance(entry.get("body"), dict):
            found.update(entry["body"])
    return found


def schema_033(info_038: dict, recorded: dict) -> dict:
    info = copy.deepcopy(info_038)
    info.update({cls: copy.deepcopy(spec) for cls, spec in recorded.items() if cls in RUNNERS})
    for (cls, name) in [*MODEL_INPUTS, IMAGE_INPUT]:
        info[cls]["input"]["required"][name][0] = []
    return info


def main(argv: list[str]) -> None:
    recorded = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    info_09 = trimmed(recorded)
    outputs = [("object_info_0.9.json", info_09), ("object_info_0.38.json", schema_038(info_09))]
    if len(argv) > 2:
        outputs.append(("object_info.json", trimmed(json.loads(Path(argv[2]).read_text(encoding="utf-8")))))
    if len(argv) > 3:
        outputs.append(("object_info_0.33.json", schema_033(outputs[1][1], recorded_033(Path(argv[3])))))
    for name, info in outputs:
        (DATA / name).write_text(json.dumps(info, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"wrote {DATA / name}")


if __name__ == "__main__":
    main(sys.argv)
