"""Both shipped graphs against the real /object_info recorded from ComfyUI 0.3.64 + VideoHelperSuite."""

from __future__ import annotations

import json

import pytest

from helpers import SHIPPED, SHIPPED_CORE, load
from wanclip.checks.graph import combo_options

MODEL_INPUTS = {"unet_name", "clip_name", "vae_name", "lora_name"}
# Combos listing the server's files: the recording's list is that machine's input/ folder, not a schema.
FILE_INPUTS = {("LoadImage", "image")}


def problems(graph: dict, object_info: dict) -> list[str]:
    found = []
    for node_id, node in graph.items():
        info = object_info.get(node["class_type"])
        if info is None:
            found.append(f"{node_id}: class {node['class_type']} does not exist")
            continue
        for name, spec in info["input"].get("required", {}).items():
            if name not in node["inputs"]:
                found.append(f"{node_id} ({node['class_type']}): required input {name} missing")
                continue
            value, options = node["inputs"][name], combo_options(spec)
            linked = isinstance(value, list)
            server_files = name in MODEL_INPUTS or (node["class_type"], name) in FILE_INPUTS
            if options is not None and not linked and not server_files and value not in options:
                found.append(f"{node_id} ({node['class_type']}): {name}={value!r} not in {options}")
            if linked and value[0] not in graph:
                found.append(f"{node_id}: {name} links to missing node {value[0]}")
    return found


@pytest.mark.parametrize("path", [SHIPPED, SHIPPED_CORE], ids=["vhs", "core"])
def test_shipped_graph_matches_real_object_info(samples, path):
    object_info = json.loads((samples / "object_info_all.json").read_text())
    assert problems(load(path), object_info) == []


def test_vhs_format_widgets_are_the_h264_ones(samples):
    object_info = json.loads((samples / "object_info_all.json").read_text())
    fmt = object_info["VHS_VideoCombine"]["input"]["required"]["format"][1]["formats"]["video/h264-mp4"]
    widgets = {w[0] for w in fmt}
    node = load(SHIPPED)["90"]["inputs"]
    assert widgets <= set(node)
    assert (node["format"], node["pix_fmt"], node["crf"], node["frame_rate"], node["save_output"]) == \
        ("video/h264-mp4", "yuv420p", 19, 16, True)


def test_checker_catches_a_bad_value(samples):
    object_info = json.loads((samples / "object_info_all.json").read_text())
    graph = load(SHIPPED)
    graph["81"]["inputs"]["sampler_name"] = "euler_fast"
    del graph["78"]["inputs"]["cfg"]
    assert problems(graph, object_info) == [
        "81 (KSamplerAdvanced): sampler_name='euler_fast' not in " + repr(
            object_info["KSamplerAdvanced"]["input"]["required"]["sampler_name"][0]),
        "78 (KSamplerAdvanced): required input cfg missing",
    ]


def test_shipped_graph_has_the_product_settings():
    graph = load(SHIPPED)
    by_class = {}
    for node in graph.values():
        by_class.setdefault(node["class_type"], []).append(node["inputs"])
    assert sorted(n["unet_name"] for n in by_class["UNETLoader"]) == [
        "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"]
    assert [n["strength_model"] for n in by_class["LoraLoaderModelOnly"]] == [1.0, 1.0]
    assert [n["shift"] for n in by_class["ModelSamplingSD3"]] == [8.0, 8.0]
    assert by_class["CLIPLoader"][0]["type"] == "wan"
    assert by_class["VAELoader"][0]["vae_name"] == "wan_2.1_vae.safetensors"
    latent = by_class["EmptyHunyuanLatentVideo"][0]
    assert (latent["width"], latent["height"], latent["length"]) == (832, 480, 81)
    high, low = sorted(by_class["KSamplerAdvanced"], key=lambda n: n["start_at_step"])
    assert (high["add_noise"], high["steps"], high["cfg"], high["sampler_name"], high["scheduler"],
            high["start_at_step"], high["end_at_step"], high["return_with_leftover_noise"]) == \
        ("enable", 4, 1.0, "euler", "simple", 0, 2, "enable")
    assert (low["add_noise"], low["start_at_step"], low["end_at_step"], low["return_with_leftover_noise"]) == \
        ("disable", 2, 4, "disable")
    negative = graph["72"]["inputs"]["text"]
    assert negative.startswith("色调艳丽，过曝，静态") and negative.endswith("倒着走")


def test_core_graph_matches_the_recorded_092_object_info(reference):
    """0.9.2: SaveVideo's `format` and `codec` are still plain V3 COMBOs (DIFF.md row 23)."""
    object_info = json.loads((reference / "comfyui-samples-0.9.2" / "object_info_all.json").read_text())
    assert problems(load(SHIPPED_CORE), object_info) == []


def test_core_graph_matches_the_038_schema_with_its_dynamic_combo():
    """0.38 (the simulator's object_info, from the drift notes): `format` a DynamicCombo whose keys
    are the choices, `codec` a hidden optional input kept for graphs like the shipped one."""
    from wanclip.planning.workflow import shipped_path

    object_info = json.loads((shipped_path("sim", "object_info_0.38.json")).read_text())
    save = object_info["SaveVideo"]["input"]
    assert save["required"]["format"][0] == "COMFY_DYNAMICCOMBO_V3" and "codec" in save["optional"]
    assert combo_options(save["required"]["format"]) == ["auto", "mp4", "mkv", "webm"]
    assert problems(load(SHIPPED_CORE), object_info) == []


I2V_PATHS = [SHIPPED.parent / "wan22_i2v_lightx2v_4step.json", SHIPPED.parent / "wan22_i2v_lightx2v_4step_core.json"]


@pytest.mark.parametrize("path", I2V_PATHS, ids=["i2v-vhs", "i2v-core"])
@pytest.mark.parametrize("recording", ["comfyui-samples", "comfyui-samples-0.9.2"], ids=["0.3.64", "0.9.2"])
def test_shipped_i2v_graphs_match_real_object_info(reference, path, recording):
    """LoadImage -> WanImageToVideo, and the first-last-frame form inject makes, against both recordings."""
    from wanclip.planning.workflow import ShotParams, inject

    object_info = json.loads((reference / recording / "object_info_all.json").read_text())
    graph = load(path)
    assert problems(graph, object_info) == []
    flf = inject(graph, ShotParams(positive="p", seed=1, frames=81, width=832, height=480, fps=16.0,
                                   filename_prefix="wanclip/x", start_image="a.png", end_image="b.png"))
    assert problems(flf, object_info) == []
    for node in flf.values():  # every linked input the node takes, by the real input names
        info = object_info[node["class_type"]]["input"]
        known = set(info.get("required", {})) | set(info.get("optional", {}))
        assert {n for n, v in node["inputs"].items() if isinstance(v, list)} <= known, node["class_type"]


def test_shipped_i2v_graph_has_the_official_template_settings():
    """As Comfy-Org's video_wan2_2_14B_i2v template with its 4-step LoRA switch on (workflow_templates
    json 0.1.123): i2v experts and LoRA pair at 1.0, shift 5, 4 steps split 2/2 at cfg 1, euler/simple."""
    graph = load(I2V_PATHS[0])
    by_class = {}
    for node in graph.values():
        by_class.setdefault(node["class_type"], []).append(node["inputs"])
    assert sorted(n["unet_name"] for n in by_class["UNETLoader"]) == [
        "wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors", "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"]
    assert sorted(n["lora_name"] for n in by_class["LoraLoaderModelOnly"]) == [
        "wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
        "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"]
    assert [n["strength_model"] for n in by_class["LoraLoaderModelOnly"]] == [1.0, 1.0]
    assert [n["shift"] for n in by_class["ModelSamplingSD3"]] == [5.0, 5.0]
    (i2v,) = by_class["WanImageToVideo"]
    assert (i2v["width"], i2v["height"], i2v["length"], i2v["batch_size"]) == (832, 480, 81, 1)
    assert i2v["vae"] == ["73", 0] and by_class["VAELoader"][0]["vae_name"] == "wan_2.1_vae.safetensors"
    high, low = sorted(by_class["KSamplerAdvanced"], key=lambda n: n["start_at_step"])
    assert (high["add_noise"], high["steps"], high["cfg"], high["sampler_name"], high["scheduler"],
            high["start_at_step"], high["end_at_step"], high["return_with_leftover_noise"]) == \
        ("enable", 4, 1.0, "euler", "simple", 0, 2, "enable")
    assert (low["add_noise"], low["start_at_step"], low["end_at_step"], low["cfg"]) == ("disable", 2, 4, 1.0)
    assert (high["latent_image"], low["latent_image"]) == (["98", 2], ["81", 0])
    assert graph["90"]["class_type"] == "VHS_VideoCombine" and graph["90"]["inputs"]["format"] == "video/h264-mp4"
