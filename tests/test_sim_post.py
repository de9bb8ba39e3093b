"""The post stage on the simulator (issue 21): upload a rendered clip, post the graph
``planning.postgraph`` builds from the server's own ``/object_info``, and measure the clip that
comes back: ``(N - 1) * m + 1`` frames at ``fps * m``, the upscaled size, real frames.

Which server has what: the model upscaler and the video loaders everywhere; core FrameInterpolate
and SeedVR2 only on 0.38; RIFE VFI when ComfyUI-Frame-Interpolation is installed (``nodes``).
"""

from __future__ import annotations

import time

import pytest
import requests
from PIL import Image, ImageChops, ImageStat

from conftest import SimClient
from wanclip.media import probe
from wanclip.planning.post import PostJob
from wanclip.planning.postgraph import OUTPUT, POST_CLASSES, PostNodes, post_graph, post_nodes, unavailable
from wanclip.sim import serve_in_thread
from wanclip.sim.video import Clip, read_mp4, write_mp4

W, H, FRAMES, FPS = 64, 48, 9, 16.0
PROFILES = ["0.3.64", "0.9", "0.33", "0.38"]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """`servers(version, packs)`: one fast simulator per (version, installed packs) for the module."""
    handles = {}

    def get(version: str, packs: tuple[str, ...] = ()):
        key = (version, packs)
        if key not in handles:
            out = tmp_path_factory.mktemp(f"post-{version}") / "output"
            handles[key] = serve_in_thread(out, load_seconds=0.02, step_seconds=0.005, comfy_version=version,
                                           nodes=packs)
        return handles[key]

    yield get
    for handle in handles.values():
        handle.stop()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> bytes:
    """A rendered clip as the sim writes one: W x H, FRAMES frames at FPS."""
    path = tmp_path_factory.mktemp("clip") / "shot.mp4"
    write_mp4(path, Clip(W, H, FRAMES, "a lantern swings in the wind", 7), FPS)
    return path.read_bytes()


def upload(url: str, name: str, data: bytes) -> str:
    answer = requests.post(url + "/upload/image", files={"image": (name, data, "video/mp4")},
                           data={"type": "input"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["name"]


def server_nodes(url: str) -> PostNodes:
    info = requests.get(url + "/object_info", timeout=30).json()
    return post_nodes({c: info[c] for c in POST_CLASSES if c in info})


def run(handle, graph: dict):
    """Posts the graph, waits for its history entry; the output clip's path."""
    answer = requests.post(handle.url + "/prompt", json={"prompt": graph, "client_id": "post-test"}, timeout=30)
    assert answer.status_code == 200, answer.text
    prompt_id = answer.json()["prompt_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        entry = requests.get(f"{handle.url}/history/{prompt_id}", timeout=30).json().get(prompt_id)
        if entry is not None:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the post prompt never finished")
    assert entry["status"]["status_str"] == "success", entry["status"]
    (saved,) = entry["outputs"][OUTPUT]["images"]
    return handle.output_dir / saved["subfolder"] / saved["filename"]


def job(interpolate: int = 1, width: int = W, height: int = H) -> PostJob:
    return PostJob(interpolate, width, height, FRAMES, FPS, W, H)


def frame_difference(a: Image.Image, b: Image.Image) -> float:
    return max(ImageStat.Stat(ImageChops.difference(a, b)).mean)


def check(path, wanted: PostJob, source: bytes, tmp_path) -> None:
    info = probe(path)
    assert (info.frames, float(info.fps), info.width, info.height, info.codec) == (
        wanted.frames, wanted.fps, wanted.width, wanted.height, "h264")
    # real frames: the last one is the clip's last frame (what a continued shot starts from), scaled
    src = tmp_path / "source.mp4"
    src.write_bytes(source)
    raw, w, h, _ = read_mp4(src)
    out, ow, oh, _ = read_mp4(path)
    last_in = Image.frombytes("RGB", (w, h), raw[-1]).resize((ow, oh), Image.Resampling.LANCZOS)
    assert frame_difference(Image.frombytes("RGB", (ow, oh), out[-1]), last_in) < 12


def fresh(handle, tmp_path):
    handle.reset(tmp_path / "comfy" / "output")
    handle.output_dir.mkdir(parents=True, exist_ok=True)
    return handle


@pytest.mark.parametrize("version", PROFILES)
def test_the_model_upscaler_doubles_a_clip_on_every_profile(servers, clip, tmp_path, version):
    handle = fresh(servers(version), tmp_path)
    name = upload(handle.url, "shot_001.mp4", clip)
    nodes = server_nodes(handle.url)
    assert nodes.load == "core" and nodes.upscale in ("model", "seedvr2")
    model_only = PostNodes(nodes.interpolate, "model", nodes.load, upscale_models=nodes.upscale_models)
    wanted = job(width=2 * W, height=2 * H)
    graph = post_graph(wanted, model_only, name, "wanclip/post/shot_001")
    assert "resize" not in graph  # RealESRGAN_x2plus gives 2x itself
    check(run(handle, graph), wanted, clip, tmp_path)


@pytest.mark.parametrize("version", PROFILES)
def test_an_odd_factor_is_scaled_to_the_exact_size_after_the_model(servers, clip, tmp_path, version):
    handle = fresh(servers(version), tmp_path)
    name = upload(handle.url, "shot_002.mp4", clip)
    nodes = PostNodes(None, "model", "core", upscale_models=server_nodes(handle.url).upscale_models)
    wanted = job(width=96, height=72)  # 1.5x
    graph = post_graph(wanted, nodes, name, "wanclip/post/shot_002")
    assert graph["resize"]["inputs"]["upscale_method"] == "lanczos"
    check(run(handle, graph), wanted, clip, tmp_path)


@pytest.mark.parametrize("multiplier", [2, 3])
def test_core_frame_interpolation_on_038(servers, clip, tmp_path, multiplier):
    handle = fresh(servers("0.38"), tmp_path)
    name = upload(handle.url, "shot_003.mp4", clip)
    nodes = server_nodes(handle.url)
    assert nodes.interpolate == "core" and nodes.interpolation_models == ("rife_v4.26.safetensors",)
    wanted = job(multiplier)
    graph = post_graph(wanted, nodes, name, "wanclip/post/shot_003")
    assert graph["interpolate"]["class_type"] == "FrameInterpolate"
    out = run(handle, graph)
    check(out, wanted, clip, tmp_path)
    # every m-th frame is an original one; the ones between are new
    raw, _, _, _ = read_mp4(out)
    assert raw[multiplier] != raw[1]


def test_seedvr2_upscales_then_interpolates_on_038(servers, clip, tmp_path):
    handle = fresh(servers("0.38"), tmp_path)
    name = upload(handle.url, "shot_004.mp4", clip)
    nodes = server_nodes(handle.url)
    assert nodes.upscale == "seedvr2"
    assert (nodes.seedvr2_models, nodes.seedvr2_vaes) == (("seedvr2_3b_int8_convrot.safetensors",),
                                                          ("seedvr2_ema_vae_fp16.safetensors",))
    wanted = job(2, 104, 78)  # not a multiple of 16: SeedVR2 pads, then cuts the padding off
    graph = post_graph(wanted, nodes, name, "wanclip/post/shot_004")
    assert {"SeedVR2Preprocess", "SeedVR2PostProcessing", "KSampler"} <= {n["class_type"] for n in graph.values()}
    check(run(handle, graph), wanted, clip, tmp_path)


@pytest.mark.parametrize("version", ["0.3.64", "0.33"])
def test_rife_vfi_when_the_pack_is_installed(servers, clip, tmp_path, version):
    handle = fresh(servers(version, ("frame-interpolation",)), tmp_path)
    name = upload(handle.url, "shot_005.mp4", clip)
    nodes = server_nodes(handle.url)
    assert nodes.interpolate == "rife-vfi" and "rife47.pth" in nodes.interpolation_models
    wanted = job(2, 2 * W, 2 * H)
    graph = post_graph(wanted, nodes, name, "wanclip/post/shot_005")
    assert graph["interpolate"]["class_type"] == "RIFE VFI"
    check(run(handle, graph), wanted, clip, tmp_path)


def test_vhs_load_video_reads_the_clip_too(servers, clip, tmp_path):
    handle = fresh(servers("0.9"), tmp_path)
    name = upload(handle.url, "shot_006.mp4", clip)
    nodes = PostNodes(None, "model", "vhs", upscale_models=server_nodes(handle.url).upscale_models)
    wanted = job(width=2 * W, height=2 * H)
    graph = post_graph(wanted, nodes, name, "wanclip/post/shot_006")
    assert graph["load"]["class_type"] == "VHS_LoadVideo"
    check(run(handle, graph), wanted, clip, tmp_path)


@pytest.mark.parametrize("version", ["0.3.64", "0.9", "0.33"])
def test_a_server_without_frame_interpolation_says_what_to_install(servers, tmp_path, version):
    handle = fresh(servers(version), tmp_path)
    nodes = server_nodes(handle.url)
    assert nodes.interpolate is None
    why = unavailable(job(2), nodes)
    assert "FrameInterpolate" in why and "ComfyUI-Frame-Interpolation" in why
    assert "wanclip setup --with interpolation" in why


@pytest.mark.parametrize("version", ["0.3.64", "0.33"])
def test_a_graph_with_a_node_the_server_lacks_is_refused_like_comfyui(servers, clip, tmp_path, version):
    handle = fresh(servers(version), tmp_path)
    name = upload(handle.url, "shot_007.mp4", clip)
    core = PostNodes("core", None, "core", interpolation_models=("rife_v4.26.safetensors",))
    graph = post_graph(job(2), core, name, "wanclip/post/shot_007")
    answer = requests.post(handle.url + "/prompt", json={"prompt": graph}, timeout=30)
    assert answer.status_code == 400
    error = answer.json()["error"]
    if version == "0.3.64":
        assert error["type"] == "invalid_prompt"
        assert "FrameInterpolat" in error["message"] and "does not exist" in error["message"]
    else:
        assert error["type"] == "missing_node_type"
        assert error["extra_info"]["class_type"].startswith("FrameInterpolat")


def test_the_uploaded_clip_is_listed_by_the_video_loaders_and_a_missing_one_is_refused(servers, clip, tmp_path):
    handle = fresh(servers("0.9"), tmp_path)
    name = upload(handle.url, "片段_008.mp4", clip)
    info = requests.get(handle.url + "/object_info/LoadVideo", timeout=30).json()
    assert name in info["LoadVideo"]["input"]["required"]["file"][1]["options"]
    nodes = PostNodes(None, "model", "core", upscale_models=("RealESRGAN_x2plus.pth",))
    graph = post_graph(job(width=2 * W, height=2 * H), nodes, "gone.mp4", "wanclip/post/x")
    answer = requests.post(handle.url + "/prompt", json={"prompt": graph}, timeout=30)
    assert answer.status_code == 400
    (error,) = answer.json()["node_errors"]["load"]["errors"]
    assert error["type"] == "custom_validation_failed" and "gone.mp4" in error["details"]


@pytest.mark.parametrize("version, packs, node", [("0.38", (), "interpolate"),
                                                  ("0.9", ("frame-interpolation",), "interpolate"),
                                                  ("0.3.64", (), "upscale")])
def test_the_post_nodes_report_progress_per_frame_for_the_eta(servers, clip, tmp_path, version, packs, node):
    """Interpolation counts the new frames, the upscaler the frames it upscales (their last update always goes out)."""
    handle = fresh(servers(version, packs), tmp_path)
    name = upload(handle.url, "shot_009.mp4", clip)
    wanted = job(2) if node == "interpolate" else job(width=2 * W, height=2 * H)
    graph = post_graph(wanted, server_nodes(handle.url), name, "wanclip/post/shot_009")
    answer, msgs = SimClient(handle).run(graph)
    assert answer.status_code == 200
    progress = [m["data"] for m in msgs if m["type"] == "progress" and m["data"]["node"] == node]
    assert progress and progress[-1]["value"] == progress[-1]["max"] == FRAMES - 1 + (node == "upscale")


def test_a_file_that_is_no_video_fails_the_load_like_a_node_error(servers, tmp_path):
    handle = fresh(servers("0.9"), tmp_path)
    name = upload(handle.url, "notes.mp4", "不是视频".encode())
    nodes = PostNodes(None, "model", "core", upscale_models=("RealESRGAN_x2plus.pth",))
    answer, msgs = SimClient(handle).run(post_graph(job(width=2 * W, height=2 * H), nodes, name, "p"))
    assert answer.status_code == 200
    (error,) = [m["data"] for m in msgs if m["type"] == "execution_error"]
    assert error["node_id"] == "load" and "cannot read video notes.mp4" in error["exception_message"]
