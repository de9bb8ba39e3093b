"""planning.postgraph: which route a server's /object_info allows, what is missing and how to fix
it, and graphs that pass the validation of the simulator's schemas (the real ones, per profile)."""

from __future__ import annotations

import pytest

from wanclip.planning import post_models
from wanclip.planning.post import PostJob
from wanclip.planning.postgraph import (
    OUTPUT,
    POST_CLASSES,
    VIDEO_INPUT,
    PostNodes,
    model_scale,
    post_graph,
    post_nodes,
    unavailable,
)
from wanclip.sim import catalog as sim_catalog
from wanclip.sim import post_schemas
from wanclip.sim.catalog import Catalog, load_models
from wanclip.sim.profiles import get_profile
from wanclip.sim.validate import validate_prompt

CLIP = "shot_001_take1.mp4"


def server(tmp_path, version: str, packs=(), models=None):
    """A simulated server's catalog (schemas, model lists, an input folder holding CLIP)."""
    profile = get_profile(version)
    (tmp_path / "input").mkdir(exist_ok=True)
    (tmp_path / "input" / CLIP).write_bytes(b"\0")
    if models is None:
        models = load_models(None, profile.key in post_schemas.SOURCE_PROFILES)
    folders = {"input": tmp_path / "input", "output": tmp_path / "output", "temp": tmp_path / "temp"}
    return Catalog(models, profile.object_info, None, post_schemas.object_info(profile.key, packs), lambda: folders)


def offered(catalog: Catalog) -> dict:
    info = catalog.info
    return {c: info[c] for c in POST_CLASSES if c in info}


def valid(catalog: Catalog, graph: dict) -> None:
    ok, error, outputs, node_errors = validate_prompt(catalog, graph)
    assert ok, (error, node_errors)
    assert outputs == [OUTPUT]


def job(interpolate=2, width=832, height=480) -> PostJob:
    return PostJob(interpolate, width, height, 81, 16.0, 832, 480)


def classes(graph: dict) -> list[str]:
    return [n["class_type"] for n in graph.values()]


def test_the_simulators_default_post_models_are_the_ones_wanclip_installs():
    defaults = load_models(None, core_post=True)
    assert post_models.UPSCALE_MODEL in defaults["upscale_models"]
    assert post_models.INTERPOLATION_MODEL in defaults["frame_interpolation"]
    assert post_models.SEEDVR2_MODEL in defaults["diffusion_models"]
    assert post_models.SEEDVR2_VAE in defaults["vae"]
    assert post_models.RIFE_VFI_CKPT in post_schemas.RIFE_CKPTS
    assert "frame_interpolation" not in sim_catalog.DEFAULT_MODELS  # that folder is 0.38's


@pytest.mark.parametrize("version", ["0.3.64", "0.9", "0.33"])
def test_older_servers_load_and_upscale_with_core_nodes_but_cannot_interpolate(tmp_path, version):
    catalog = server(tmp_path, version)
    nodes = post_nodes(offered(catalog))
    assert (nodes.load, nodes.upscale, nodes.interpolate) == ("core", "model", None)
    assert nodes.upscale_models == (post_models.UPSCALE_MODEL,)
    up = job(1, 1664, 960)
    graph = post_graph(up, nodes, CLIP, "wanclip/post/shot_001")
    assert classes(graph) == ["LoadVideo", "GetVideoComponents", "UpscaleModelLoader", "ImageUpscaleWithModel",
                              "CreateVideo", "SaveVideo"]
    valid(catalog, graph)
    why = unavailable(job(2), nodes)
    assert why.startswith("no frame interpolation node")
    assert "ComfyUI-Frame-Interpolation (RIFE VFI)" in why and "`wanclip setup --with interpolation`" in why


def test_038_prefers_core_frame_interpolation_and_seedvr2(tmp_path):
    catalog = server(tmp_path, "0.38", packs=("frame-interpolation",))
    nodes = post_nodes(offered(catalog))
    assert (nodes.load, nodes.upscale, nodes.interpolate) == ("core", "seedvr2", "core")
    assert nodes.interpolation_models == (post_models.INTERPOLATION_MODEL,)
    assert nodes.seedvr2_models == (post_models.SEEDVR2_MODEL,)  # the Wan experts are not SeedVR2's
    assert nodes.seedvr2_vaes == (post_models.SEEDVR2_VAE,)
    both = job(2, 1664, 960)
    graph = post_graph(both, nodes, CLIP, "wanclip/post/shot_001")
    valid(catalog, graph)
    # upscale first, then interpolate, then CreateVideo at the new fps
    assert graph["interpolate"]["inputs"]["images"] == ["upscale", 0]
    assert graph["upscale"]["class_type"] == "SeedVR2PostProcessing"
    assert graph["resize"]["inputs"] == {"image": ["frames", 0], "upscale_method": "lanczos", "width": 1664,
                                         "height": 960, "crop": "disabled"}
    assert graph["seedvr2_sample"]["inputs"]["steps"] == 1
    assert graph["video"]["inputs"] == {"images": ["interpolate", 0], "fps": 32.0}
    assert graph[OUTPUT]["inputs"] == {"video": ["video", 0], "filename_prefix": "wanclip/post/shot_001",
                                       "format": "mp4", "codec": "h264"}
    assert graph[VIDEO_INPUT] == {"class_type": "LoadVideo", "inputs": {"file": CLIP},
                                  "_meta": {"title": "Load the rendered clip"}}


@pytest.mark.parametrize("version", ["0.3.64", "0.33"])
def test_rife_vfi_interpolates_where_the_pack_is_installed(tmp_path, version):
    catalog = server(tmp_path, version, packs=("frame-interpolation",))
    nodes = post_nodes(offered(catalog))
    assert nodes.interpolate == "rife-vfi"
    graph = post_graph(job(3), nodes, CLIP, "wanclip/post/shot_001")
    assert graph["interpolate"]["inputs"] == {
        "ckpt_name": post_models.RIFE_VFI_CKPT, "frames": ["frames", 0], "clear_cache_after_n_frames": 10,
        "multiplier": 3, "fast_mode": True, "ensemble": True, "scale_factor": 1.0}
    assert graph["video"]["inputs"]["fps"] == 48.0
    assert "UpscaleModelLoader" not in classes(graph)  # nothing to upscale
    valid(catalog, graph)


def test_vhs_loads_the_clip_where_core_load_video_is_missing(tmp_path):
    catalog = server(tmp_path, "0.9")
    info = offered(catalog)
    del info["LoadVideo"]
    nodes = post_nodes(info)
    assert nodes.load == "vhs"
    graph = post_graph(job(1, 1664, 960), nodes, CLIP, "p")
    assert graph[VIDEO_INPUT]["class_type"] == "VHS_LoadVideo" and graph[VIDEO_INPUT]["inputs"]["video"] == CLIP
    assert graph["upscale"]["inputs"]["image"] == [VIDEO_INPUT, 0]
    valid(catalog, graph)
    del info["VHS_LoadVideo"]
    why = unavailable(job(1, 1664, 960), post_nodes(info))
    assert why.startswith("no video loading node") and "ComfyUI-VideoHelperSuite" in why


def test_another_upscale_model_is_used_and_scaled_to_the_exact_size(tmp_path):
    models = dict(load_models(None), upscale_models=["4x-UltraSharp.pth"])
    catalog = server(tmp_path, "0.9", models=models)
    nodes = post_nodes(offered(catalog))
    graph = post_graph(job(1, 1664, 960), nodes, CLIP, "p")
    assert graph["upscale_model"]["inputs"]["model_name"] == "4x-UltraSharp.pth"
    assert graph["resize"]["inputs"]["image"] == ["upscale", 0]
    assert (graph["resize"]["inputs"]["width"], graph["resize"]["inputs"]["height"]) == (1664, 960)
    assert graph["video"]["inputs"]["images"] == ["resize", 0]
    valid(catalog, graph)


@pytest.mark.parametrize("name, factor", [("RealESRGAN_x2plus.pth", 2), ("RealESRGAN_x4plus_anime_6B.pth", 4),
                                          ("4x-UltraSharp.pth", 4), ("2x_NMKD.pth", 2), ("upscaler.pth", None)])
def test_the_factor_an_upscale_models_name_states(name, factor):
    assert model_scale(name) == factor


def test_a_missing_model_file_is_named_with_the_setup_command(tmp_path):
    models = {k: v for k, v in load_models(None, core_post=True).items() if k not in ("frame_interpolation",
                                                                                       "upscale_models")}
    models["vae"] = [v for v in models["vae"] if "seedvr2" not in v]
    catalog = server(tmp_path, "0.38", models=models)
    nodes = post_nodes(offered(catalog))
    assert (nodes.interpolate, nodes.upscale) == ("core", "seedvr2")  # nothing else could run either
    why = unavailable(job(2), nodes)
    assert why.startswith("no frame interpolation model") and post_models.INTERPOLATION_MODEL in why
    assert "`wanclip setup --with interpolation`" in why
    why = unavailable(job(1, 1664, 960), nodes)
    assert why.startswith("no SeedVR2 VAE") and post_models.SEEDVR2_VAE in why and "--with upscale" in why
    with pytest.raises(ValueError, match="no SeedVR2 VAE"):
        post_graph(job(1, 1664, 960), nodes, CLIP, "p")
    assert unavailable(job(1, 1664, 960), PostNodes(None, "model", "core")).startswith("no upscale model")
    assert unavailable(job(1, 1664, 960), PostNodes(None, None, "core")).startswith("no upscaler node")


def test_seedvr2_without_its_models_gives_way_to_the_model_upscaler(tmp_path):
    models = load_models(None)  # no SeedVR2 files, RealESRGAN listed
    catalog = server(tmp_path, "0.38", models=models)
    nodes = post_nodes(offered(catalog))
    assert nodes.upscale == "model" and nodes.seedvr2_models == ()
    valid(catalog, post_graph(job(1, 1664, 960), nodes, CLIP, "p"))


def test_core_interpolation_without_a_model_gives_way_to_rife_vfi(tmp_path):
    models = {k: v for k, v in load_models(None, core_post=True).items() if k != "frame_interpolation"}
    catalog = server(tmp_path, "0.38", packs=("frame-interpolation",), models=models)
    nodes = post_nodes(offered(catalog))
    assert nodes.interpolate == "rife-vfi"
    valid(catalog, post_graph(job(2), nodes, CLIP, "p"))


def test_nothing_to_do_needs_only_loading_and_saving():
    nodes = PostNodes(None, None, "core")
    assert unavailable(job(1), nodes) is None
    assert unavailable(job(2), PostNodes(None, None, None)).startswith("no video loading node")
