"""Graph editing by role: the shipped graphs, the official templates, renumbered and extended copies."""

from __future__ import annotations

import copy
import json

import pytest

from helpers import SHIPPED, SHIPPED_CORE, load
from wanclip.errors import WorkflowError
from wanclip.planning.workflow import (
    ShotParams,
    find_roles,
    graph_sha256,
    inject,
    load_graph,
    model_files,
    sampler_steps,
)

PARAMS = ShotParams(positive="a red fox, warm light", negative="blurry", seed=7, frames=161, width=640,
                    height=368, fps=24.0, filename_prefix="wanclip/film/03_fox", steps=6, switch_step=3,
                    cfg=1.5, shift=5.0, lora_strength=0.8)


def renumber(graph: dict, mapping) -> dict:
    """The same graph with every id (and every link) renamed by ``mapping``."""
    out = {}
    for node_id, node in graph.items():
        node = copy.deepcopy(node)
        for name, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and value[0] in graph:
                node["inputs"][name] = [mapping(value[0]), value[1]]
        out[mapping(node_id)] = node
    return out


def by_class(graph: dict, cls: str) -> list[dict]:
    return [n["inputs"] for n in graph.values() if n["class_type"] == cls]


def assert_injected(graph: dict, roles) -> None:
    high, low = graph[roles.high_sampler]["inputs"], graph[roles.low_sampler]["inputs"]
    assert graph[roles.positive]["inputs"]["text"] == "a red fox, warm light"
    assert graph[roles.negative]["inputs"]["text"] == "blurry"
    assert (high["noise_seed"], low["noise_seed"]) == (7, 7)
    assert (high["steps"], high["start_at_step"], high["end_at_step"]) == (6, 0, 3)
    assert (low["steps"], low["start_at_step"]) == (6, 3)
    assert (high["cfg"], low["cfg"]) == (1.5, 1.5)
    latent = graph[roles.latent]["inputs"]
    assert (latent["width"], latent["height"], latent["length"]) == (640, 368, 161)
    assert graph[roles.output]["inputs"]["filename_prefix"] == "wanclip/film/03_fox"
    assert [graph[n]["inputs"]["shift"] for n in roles.model_sampling] == [5.0, 5.0]


def test_shipped_graph_roles_are_found_by_following_links():
    roles = find_roles(load(SHIPPED))
    assert (roles.high_sampler, roles.low_sampler) == ("81", "78")
    assert (roles.positive, roles.negative, roles.latent) == ("89", "72", "74")
    assert (roles.output, roles.output_kind, roles.model_sampling) == ("90", "vhs", ["82", "86"])
    assert sorted(roles.loras) == ["83", "85"]


def test_inject_sets_every_shot_value_and_leaves_the_input_alone():
    base = load(SHIPPED)
    before = json.dumps(base, sort_keys=True)
    out = inject(base, PARAMS)
    assert json.dumps(base, sort_keys=True) == before
    roles = find_roles(out)
    assert_injected(out, roles)
    assert out["90"]["inputs"]["frame_rate"] == 24.0
    assert out["78"]["inputs"]["end_at_step"] == 6
    assert [i["strength_model"] for i in by_class(out, "LoraLoaderModelOnly")] == [0.8, 0.8]


def test_core_graph_sets_fps_on_create_video():
    out = inject(load(SHIPPED_CORE), PARAMS)
    roles = find_roles(out)
    assert (roles.output, roles.output_kind, roles.video_fps_node) == ("80", "core", "88")
    assert out["88"]["inputs"]["fps"] == 24.0
    assert_injected(out, roles)


def test_keep_graph_values_when_params_are_none():
    base = load(SHIPPED)
    out = inject(base, ShotParams(positive="p", seed=1, frames=81, width=832, height=480, fps=16.0,
                                  filename_prefix="x/y"))
    assert out["72"]["inputs"]["text"] == base["72"]["inputs"]["text"]
    assert sampler_steps(out) == (4, 2, 2)
    assert out["82"]["inputs"]["shift"] == 8.0


@pytest.mark.parametrize("name", ["wan22_14B_t2v_4step_lightx2v.api.json", "wan22_14B_t2v_4step_lightx2v_vhs.api.json",
                                  "wan22_14B_t2v_20step_original.api.json"])
def test_official_templates_accept_injection(reference, name):
    graph = load(reference / "templates" / name)
    params = PARAMS if "lightx2v" in name else ShotParams(**{**PARAMS.__dict__, "lora_strength": None})
    out = inject(graph, params)
    assert_injected(out, find_roles(out))


def test_subgraph_ids_and_extra_nodes_work():
    graph = renumber(load(SHIPPED), lambda i: f"128:{i}")
    graph["128:999"] = {"class_type": "Note", "inputs": {"text": "my notes"}, "_meta": {"title": "notes"}}
    graph["7"] = {"class_type": "PreviewAny", "inputs": {"source": ["128:74", 0]}}
    for node in graph.values():
        node.setdefault("_meta", {})["title"] = "renamed by user"
    out = inject(graph, PARAMS)
    roles = find_roles(out)
    assert roles.high_sampler == "128:81" and roles.positive == "128:89"
    assert_injected(out, roles)


def test_linked_values_are_set_on_their_primitive_nodes():
    graph = load(SHIPPED)
    graph["p1"] = {"class_type": "PrimitiveInt", "inputs": {"value": 81}}
    graph["p2"] = {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "old"}}
    graph["74"]["inputs"]["length"] = ["p1", 0]
    graph["89"]["inputs"]["text"] = ["p2", 0]
    out = inject(graph, PARAMS)
    assert out["p1"]["inputs"]["value"] == 161
    assert out["p2"]["inputs"]["value"] == "a red fox, warm light"


def test_graph_without_the_noise_adding_sampler_names_the_role():
    graph = load(SHIPPED)
    graph["81"]["inputs"]["add_noise"] = "disable"
    with pytest.raises(WorkflowError) as err:
        find_roles(graph)
    assert err.value.role == "noise-adding sampler"
    assert "81 add_noise='disable'" in err.value.message and "78 add_noise='disable'" in err.value.message


def test_graph_with_one_sampler_lists_what_it_found():
    graph = load(SHIPPED)
    del graph["78"]
    graph["87"]["inputs"]["samples"] = ["81", 0]
    with pytest.raises(WorkflowError) as err:
        find_roles(graph)
    assert err.value.role == "pair of expert samplers"
    assert "1: 81 (KSamplerAdvanced)" in err.value.message


def test_graph_without_output_names_the_role():
    graph = load(SHIPPED)
    del graph["90"]
    with pytest.raises(WorkflowError, match="no video output: wanted one VHS_VideoCombine or SaveVideo node"):
        find_roles(graph)


def test_shift_requested_on_a_graph_without_model_sampling_is_refused():
    graph = load(SHIPPED)
    for nid in ("82", "86"):
        graph[nid] = {"class_type": "Reroute", "inputs": {"model": graph[nid]["inputs"]["model"]}}
    with pytest.raises(WorkflowError, match="no model sampling"):
        inject(graph, PARAMS)


def test_ui_format_workflow_is_refused_with_the_fix(reference, tmp_path):
    with pytest.raises(WorkflowError, match="looks like a UI workflow") as err:
        load_graph(reference / "templates" / "video_wan2_2_14B_t2v__ac4a8d70_lightx2v_4step.json")
    assert "Export (API)" in err.value.hint


def test_graph_hash_ignores_key_order_and_whitespace():
    graph = load(SHIPPED)
    shuffled = json.loads(json.dumps(dict(reversed(list(graph.items())))))
    assert graph_sha256(graph) == graph_sha256(shuffled)
    assert graph_sha256(graph) != graph_sha256(inject(graph, PARAMS))


def test_model_files_by_folder():
    assert model_files(load(SHIPPED)) == {
        "text_encoders": ["umt5_xxl_fp8_e4m3fn_scaled.safetensors"],
        "vae": ["wan_2.1_vae.safetensors"],
        "diffusion_models": ["wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
                             "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"],
        "loras": ["wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors",
                  "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors"],
    }


def test_a_new_frontend_export_with_dotted_dynamic_combo_keys_is_read_by_role():
    """Newer ComfyUI frontends export SaveVideo's DynamicCombo as dotted keys (drift §2)."""
    graph = load(SHIPPED_CORE)
    inputs = graph["80"]["inputs"]
    del inputs["codec"]
    inputs.update({"format": "mp4", "format.codec": "h264", "format.codec.encoding": "re-encode",
                   "format.codec.encoding.crf": 20})
    roles = find_roles(graph)
    assert (roles.output, roles.output_kind, roles.video_fps_node) == ("80", "core", "88")
    out = inject(graph, PARAMS)
    assert out["80"]["inputs"]["filename_prefix"] == PARAMS.filename_prefix and out["88"]["inputs"]["fps"] == 24.0
    assert {k: v for k, v in out["80"]["inputs"].items() if k.startswith("format")} == {
        "format": "mp4", "format.codec": "h264", "format.codec.encoding": "re-encode", "format.codec.encoding.crf": 20}
    assert model_files(out) == model_files(load(SHIPPED_CORE))
