"""Image-to-video graphs by role: the shipped I2V graph, first-last-frame, images set at submit time."""

from __future__ import annotations

import copy
import hashlib

import pytest

from helpers import ROOT, SHIPPED, load
from wanclip.errors import WorkflowError
from wanclip.planning.workflow import (
    CONTINUE_PLACEHOLDER,
    I2V_CORE_WORKFLOW,
    I2V_WORKFLOW,
    ShotParams,
    find_roles,
    image_name,
    image_names,
    inject,
    model_files,
    sampler_steps,
    set_image,
    shipped_graph,
)

I2V = ROOT / "workflows" / I2V_WORKFLOW
I2V_CORE = ROOT / "workflows" / I2V_CORE_WORKFLOW


def params(**images) -> ShotParams:
    return ShotParams(positive="the fox walks on through the snow", seed=11, frames=81, width=832, height=480,
                      fps=16.0, filename_prefix="wanclip/film/04_fox", **images)


def renumber(graph: dict, prefix: str) -> dict:
    """The same graph as a subgraph export names it: every id (and link) prefixed."""
    out = {}
    for node_id, node in graph.items():
        node = copy.deepcopy(node)
        for name, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and value[0] in graph:
                node["inputs"][name] = [prefix + value[0], value[1]]
        out[prefix + node_id] = node
    return out


def test_the_top_level_workflows_folder_links_to_the_packaged_graphs():
    for path in (I2V, I2V_CORE):
        assert path.is_symlink()
        assert path.resolve() == (ROOT / "src" / "wanclip" / "data" / "workflows" / path.name).resolve()
    assert shipped_graph(I2V_WORKFLOW) == load(I2V)


@pytest.mark.parametrize("path", [I2V, I2V_CORE], ids=["vhs", "core"])
def test_roles_follow_the_image_to_video_node(path):
    graph = load(path)
    roles = find_roles(graph)
    i2v = roles.image_to_video
    assert graph[i2v]["class_type"] == "WanImageToVideo" and roles.latent == i2v
    for sampler in (roles.high_sampler, roles.low_sampler):
        inputs = graph[sampler]["inputs"]
        assert (inputs["positive"], inputs["negative"]) == ([i2v, 0], [i2v, 1])
    assert graph[roles.positive]["class_type"] == graph[roles.negative]["class_type"] == "CLIPTextEncode"
    assert graph[i2v]["inputs"]["positive"] == [roles.positive, 0]
    assert graph[roles.start_image]["class_type"] == "LoadImage" and roles.end_image is None
    assert image_names(graph) == {"start_image": CONTINUE_PLACEHOLDER}
    assert sampler_steps(graph) == (4, 2, 2)


def test_a_text_to_video_graph_has_no_image_roles():
    roles = find_roles(load(SHIPPED))
    assert (roles.image_to_video, roles.start_image, roles.end_image) == (None, None, None)
    assert image_names(load(SHIPPED)) == {}


def test_the_i2v_graph_loads_the_i2v_experts_and_their_loras():
    assert model_files(load(I2V)) == {
        "text_encoders": ["umt5_xxl_fp8_e4m3fn_scaled.safetensors"],
        "vae": ["wan_2.1_vae.safetensors"],
        "diffusion_models": ["wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
                             "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"],
        "loras": ["wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
                  "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"],
    }


def test_a_keyframe_shot_sets_the_start_image_and_the_latent():
    graph = load(I2V)
    name = image_name(hashlib.sha256(b"keyframe").hexdigest())
    out = inject(graph, params(start_image=name))
    roles = find_roles(out)
    assert out[roles.image_to_video]["class_type"] == "WanImageToVideo"
    latent = out[roles.latent]["inputs"]
    assert (latent["width"], latent["height"], latent["length"]) == (832, 480, 81)
    assert out[roles.positive]["inputs"]["text"] == "the fox walks on through the snow"
    assert image_names(out) == {"start_image": name}
    assert graph == load(I2V)  # the input graph is not changed


def test_an_end_image_makes_it_first_last_frame_with_its_own_loader():
    out = inject(load(I2V), params(start_image="wanclip-aaaa000000000000.png", end_image="wanclip-bbbb000000000000.png"))
    roles = find_roles(out)
    node = out[roles.image_to_video]
    assert node["class_type"] == "WanFirstLastFrameToVideo"
    assert roles.start_image != roles.end_image
    assert node["inputs"]["end_image"] == [roles.end_image, 0]
    assert out[roles.end_image] == {"inputs": {"image": "wanclip-bbbb000000000000.png"}, "class_type": "LoadImage",
                                    "_meta": {"title": "Load Image (end image)"}}
    assert image_names(out) == {"start_image": "wanclip-aaaa000000000000.png",
                                "end_image": "wanclip-bbbb000000000000.png"}


def test_an_end_image_alone_unlinks_and_drops_the_start_loader():
    graph = load(I2V)
    start = find_roles(graph).start_image
    out = inject(graph, params(end_image="wanclip-bbbb000000000000.png"))
    roles = find_roles(out)
    assert start not in out and "start_image" not in out[roles.image_to_video]["inputs"]
    assert roles.start_image is None
    assert image_names(out) == {"end_image": "wanclip-bbbb000000000000.png"}


def test_a_first_last_frame_graph_without_an_end_image_loses_only_that_link():
    flf = inject(load(I2V), params(start_image="a.png", end_image="b.png"))
    out = inject(flf, params(start_image="c.png"))
    roles = find_roles(out)
    assert out[roles.image_to_video]["class_type"] == "WanFirstLastFrameToVideo"
    assert image_names(out) == {"start_image": "c.png"}
    assert sum(n["class_type"] == "LoadImage" for n in out.values()) == 1


def test_a_continued_shot_is_planned_with_the_placeholder_and_set_at_submit_time():
    planned = inject(load(I2V), params(start_image=CONTINUE_PLACEHOLDER))
    uploaded = image_name("0f" * 32)
    assert uploaded == "wanclip-0f0f0f0f0f0f0f0f.png"
    ready = set_image(planned, "start_image", uploaded)
    assert image_names(ready) == {"start_image": uploaded}
    assert image_names(planned) == {"start_image": CONTINUE_PLACEHOLDER}  # a new graph


def test_roles_survive_other_ids_and_an_image_resize_node():
    graph = renumber(load(I2V), "128:")
    start = find_roles(graph).start_image
    i2v = find_roles(graph).image_to_video
    graph["128:200"] = {"class_type": "ImageScale", "inputs": {
        "image": [start, 0], "upscale_method": "lanczos", "width": 832, "height": 480, "crop": "center"}}
    graph[i2v]["inputs"]["start_image"] = ["128:200", 0]
    roles = find_roles(graph)
    assert (roles.image_to_video, roles.start_image, roles.latent) == (i2v, start, i2v)
    out = inject(graph, params(start_image="x.png", end_image="y.png"))
    assert image_names(out) == {"start_image": "x.png", "end_image": "y.png"}
    assert find_roles(out).end_image not in graph  # a fresh id for the new loader


def test_images_into_a_text_to_video_graph_name_the_role():
    with pytest.raises(WorkflowError) as err:
        inject(load(SHIPPED), params(start_image="x.png"))
    assert err.value.role == "start_image"
    assert "no image-to-video node" in str(err.value) and I2V_WORKFLOW in str(err.value)
    with pytest.raises(WorkflowError) as err:
        set_image(load(SHIPPED), "end_image", "y.png")
    assert err.value.role == "end_image"


def test_set_image_refuses_a_role_the_graph_does_not_carry():
    with pytest.raises(WorkflowError) as err:
        set_image(load(I2V), "end_image", "y.png")
    assert err.value.role == "end_image" and "has no end_image LoadImage" in str(err.value)
    with pytest.raises(ValueError):
        set_image(load(I2V), "middle_image", "y.png")


def test_samplers_fed_around_the_image_node_are_refused():
    graph = load(I2V)
    roles = find_roles(graph)
    graph[roles.high_sampler]["inputs"]["positive"] = [roles.positive, 0]
    with pytest.raises(WorkflowError) as err:
        find_roles(graph)
    assert err.value.role == "image-conditioned positive prompt"


def test_image_name_is_content_addressed():
    digest = hashlib.sha256(b"frame").hexdigest()
    assert image_name(digest) == image_name(digest.upper()) == f"wanclip-{digest[:16]}.png"
    with pytest.raises(ValueError):
        image_name("not-a-digest")
