"""Before any GPU work, doctor and the render's preflight name a post model or LoRA file the server
lacks, with the `wanclip setup --with ...` line that installs it (or the page to download it from)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from wanclip.checks import doctor, post_files
from wanclip.checks.graph import graph_checks
from wanclip.checks.post_files import PostNeed, missing_post_models, post_model_checks
from wanclip.cli.app import app
from wanclip.comfy.client import ComfyClient
from wanclip.planning import post_models
from wanclip.planning.post import post_job
from wanclip.planning.workflow import I2V_WORKFLOW, LOADER_INPUTS, shipped_graph

WAN_UNETS = ["wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"]


def combo(options, v3=False):
    return ["COMBO", {"options": list(options)}] if v3 else [list(options), {}]


def server(*, frame_models=None, rife_vfi=False, upscale_models=None, seedvr2=False, unets=WAN_UNETS,
           vaes=("wan_2.1_vae.safetensors",), v3=False) -> dict:
    """The /object_info of the post classes a server has (None: the class is absent)."""
    info = {"UNETLoader": {"input": {"required": {"unet_name": combo(unets, v3), "weight_dtype": combo(["default"])}}},
            "VAELoader": {"input": {"required": {"vae_name": combo(vaes, v3)}}}}
    if frame_models is not None:
        info["FrameInterpolationModelLoader"] = {"input": {"required": {"model_name": combo(frame_models, v3)}}}
    if rife_vfi:
        info["RIFE VFI"] = {"input": {"required": {"ckpt_name": combo(["rife47.pth", "rife49.pth"])}}}
    if upscale_models is not None:
        info["UpscaleModelLoader"] = {"input": {"required": {"model_name": combo(upscale_models, v3)}}}
    if seedvr2:
        info["SeedVR2Conditioning"] = {"input": {"required": {}}}
    return info


BOTH = PostNeed(interpolate=True, upscale=True)


def failed(checks):
    return {c.name: c for c in checks if not c.ok}


def test_the_need_comes_from_a_post_job():
    assert PostNeed.of(post_job(2, None, 81, 16, 832, 480)) == PostNeed(interpolate=True, upscale=False)
    assert PostNeed.of(post_job(1, 2, 81, 16, 832, 480)) == PostNeed(interpolate=False, upscale=True)
    assert set(post_files.POST_MODEL_CLASSES) >= {"FrameInterpolationModelLoader", "RIFE VFI", "UpscaleModelLoader",
                                                  "UNETLoader", "VAELoader"}


@pytest.mark.parametrize("v3", [False, True], ids=["v1-combo", "v3-combo"])
def test_a_core_interpolation_loader_listing_nothing_names_the_rife_file_and_the_setup_line(v3):
    missing = missing_post_models(PostNeed(True, False), server(frame_models=[], v3=v3))
    assert [c.name for c in missing] == ["model rife_v4.26.safetensors"]
    assert missing[0].detail == ("ComfyUI does not list rife_v4.26.safetensors "
                                 "(FrameInterpolationModelLoader.model_name)")
    assert missing[0].fix.startswith("rife_v4.26.safetensors is missing from models/frame_interpolation/: "
                                     "install it with `wanclip setup --with interpolation --comfy-dir DIR`")


def test_interpolation_needs_no_file_when_the_server_has_one_or_rife_vfi():
    assert missing_post_models(PostNeed(True, False), server(frame_models=[post_models.INTERPOLATION_MODEL])) == []
    # another RIFE or FILM file of the loader is what the graph then uses
    ok = post_model_checks(PostNeed(True, False), server(frame_models=["film_net_fp16.safetensors"]))
    assert [c.ok for c in ok] == [True] and "film_net_fp16.safetensors" in ok[0].detail
    # RIFE VFI fetches its own checkpoint: nothing to install
    ok = post_model_checks(PostNeed(True, False), server(rife_vfi=True))
    assert [c.ok for c in ok] == [True] and "fetches" in ok[0].detail and "rife47.pth" in ok[0].detail


def test_a_server_with_no_interpolation_node_gets_no_file_message():
    # which node to install is planning.postgraph.unavailable's message, not a missing file
    assert post_model_checks(PostNeed(True, False), server()) == []


def test_an_upscaler_listing_nothing_names_the_2x_model_and_upscale():
    missing = missing_post_models(PostNeed(False, True), server(upscale_models=[]))
    assert [c.name for c in missing] == ["model RealESRGAN_x2plus.pth"]
    assert "missing from models/upscale_models/: install it with `wanclip setup --with upscale --comfy-dir DIR`" \
        in missing[0].fix


def test_seedvr2_without_its_files_names_both_unless_the_model_upscaler_can_do_it():
    missing = failed(post_model_checks(PostNeed(False, True), server(seedvr2=True, upscale_models=[])))
    assert set(missing) == {"model seedvr2_3b_int8_convrot.safetensors", "model seedvr2_ema_vae_fp16.safetensors",
                            "model RealESRGAN_x2plus.pth"}
    assert "missing from models/diffusion_models/" in missing["model seedvr2_3b_int8_convrot.safetensors"].fix
    assert "missing from models/vae/" in missing["model seedvr2_ema_vae_fp16.safetensors"].fix
    assert all("`wanclip setup --with upscale --comfy-dir DIR`" in c.fix for c in missing.values())
    # only its VAE missing
    half = server(seedvr2=True, unets=[*WAN_UNETS, post_models.SEEDVR2_MODEL])
    assert [c.name for c in missing_post_models(PostNeed(False, True), half)] == [
        "model seedvr2_ema_vae_fp16.safetensors"]
    # the model upscaler has a file: the post graph upscales with it, nothing is missing
    assert missing_post_models(PostNeed(False, True), server(seedvr2=True, upscale_models=["4x-UltraSharp.pth"])) == []
    # SeedVR2 with both files (the upstream VAE name counts too)
    full = server(seedvr2=True, unets=[*WAN_UNETS, post_models.SEEDVR2_MODEL], vaes=["ema_vae_fp16.safetensors"])
    assert [(c.ok, "SeedVR2" in c.detail) for c in post_model_checks(PostNeed(False, True), full)] == [(True, True)]


def test_nothing_is_asked_of_a_job_that_does_not_need_it():
    assert post_model_checks(PostNeed(False, False), server(frame_models=[], upscale_models=[])) == []
    assert [c.name for c in missing_post_models(BOTH, server(frame_models=[], upscale_models=[]))] == [
        "model rife_v4.26.safetensors", "model RealESRGAN_x2plus.pth"]


# -- the LoRA files of a set: the graph checks name them ---------------------------------------------
def lora_graph(workflow: str, pair: tuple[str, str]) -> dict:
    graph = shipped_graph(workflow)
    loaders = sorted((i for i, n in graph.items() if n["class_type"] == "LoraLoaderModelOnly"),
                     key=lambda i: "low" in graph[i]["inputs"]["lora_name"])
    for node_id, name in zip(loaders, pair, strict=True):
        graph[node_id]["inputs"]["lora_name"] = name
    return graph


def info_listing_nothing(graph: dict) -> dict:
    info = {n["class_type"]: {"input": {"required": {}}} for n in graph.values()}
    for (class_type, name), _folder in LOADER_INPUTS.items():
        if class_type in info:
            info[class_type]["input"]["required"][name] = [[], {}]
    return info


@pytest.mark.parametrize(("workflow", "kind"), [(I2V_WORKFLOW, "i2v"), ("wan22_t2v_lightx2v_4step.json", "t2v")])
def test_a_missing_1217_set_lora_is_sent_to_setup_with_lightx2v_1217(workflow, kind):
    graph = lora_graph(workflow, post_models.LORA_SETS["1217"][kind])
    checks = {c.name: c for c in graph_checks(graph, info_listing_nothing(graph))}
    for name in post_models.LORA_SETS["1217"][kind]:
        assert "install it with `wanclip setup --with lightx2v-1217 --comfy-dir DIR`" in checks[f"model {name}"].fix


# -- doctor ------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def plenty_of_disk(monkeypatch):
    monkeypatch.setattr(doctor, "MIN_FREE_OUTPUT", 0)


def test_doctor_names_a_missing_post_model_with_its_setup_line(sim, monkeypatch):
    asked = []

    def post_info(client, caps):  # a 0.38 server with core FrameInterpolate and no model file yet
        asked.append(client.url)
        return {**server(frame_models=[], upscale_models=["RealESRGAN_x2plus.pth"]),
                "FrameInterpolate": {"input": {"required": {}}}}  # the loader comes with its node

    monkeypatch.setattr(post_files, "post_object_info", post_info)
    report = doctor.run_doctor(ComfyClient(sim.url), post=BOTH)
    assert asked == [sim.url]
    assert [c.name for c in report.failed] == ["model rife_v4.26.safetensors"]
    assert "`wanclip setup --with interpolation --comfy-dir DIR`" in report.failed[0].fix
    assert {c.name: c.ok for c in report.checks}["post upscale"] is True
    nodes = {c.name: c for c in report.checks}["post stage nodes"]
    assert nodes.ok and "core FrameInterpolate" in nodes.detail and "UpscaleModelLoader" in nodes.detail
    # without a post step doctor does not ask
    assert doctor.run_doctor(ComfyClient(sim.url)).ok and asked == [sim.url]


def test_doctor_cli_is_unchanged_for_a_film_without_post(sim):
    result = CliRunner().invoke(app, ["doctor", "--server", sim.url, "--json"])
    assert result.exit_code == 0, result.output
    assert not any(c["name"].startswith("post ") for c in json.loads(result.output)["checks"])
