"""A user's session with the simulator's image-to-video side: upload pictures the way ComfyUI takes
them, render the shipped I2V graph (and its first-last-frame form), and look at the frames.

Pictures are smooth gradients: an H.264 yuv420p clip halves the colour resolution, so a picture
with sharp saturated edges cannot come back at 35 dB from a real ComfyUI either.
"""

from __future__ import annotations

import copy
import io
import json
import math
import subprocess

import imageio_ffmpeg
import pytest
import requests
from PIL import Image, ImageChops, ImageOps, ImageStat

from conftest import ROOT, SimClient
from helpers import load, run_cli
from wanclip.sim import serve_in_thread

I2V = ROOT / "src" / "wanclip" / "data" / "workflows" / "wan22_i2v_lightx2v_4step.json"
W, H, FRAMES = 96, 64, 9
PROFILES = ["0.3.64", "0.9", "0.38"]


# -- pictures, uploads, graphs, frames ------------------------------------------------------------

def gradient(size=(W, H), tint=(0, 0, 0)) -> Image.Image:
    """A smooth picture: red across, blue down, green a diagonal, kept inside 40..200 (no clipping)."""
    w, h = size
    img = Image.new("RGB", size)
    img.putdata([(40 + 160 * x // max(1, w - 1) + tint[0], 120 + tint[1] - 60 * (x + y) // max(1, w + h - 2),
                  40 + 160 * y // max(1, h - 1) + tint[2]) for y in range(h) for x in range(w)])
    return img


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def upload(url: str, name: str, data: bytes, route: str = "/upload/image", **fields) -> requests.Response:
    return requests.post(url + route, files={"image": (name, data, "image/png")}, data=fields, timeout=30)


def i2v_graph(start: str | None, end: str | None = None, text: str = "a lantern swings in the wind",
              seed: int = 5) -> dict:
    """The shipped I2V graph at W x H x FRAMES; with `end` its first-last-frame form."""
    graph = copy.deepcopy(load(I2V))
    (i2v_id,) = [k for k, n in graph.items() if n["class_type"] == "WanImageToVideo"]
    i2v = graph[i2v_id]
    i2v["inputs"].update(width=W, height=H, length=FRAMES)
    load_id = i2v["inputs"]["start_image"][0]
    if start is None:
        del graph[load_id], i2v["inputs"]["start_image"]
    else:
        graph[load_id]["inputs"]["image"] = start
    if end is not None:
        i2v["class_type"] = "WanFirstLastFrameToVideo"
        graph["end"] = {"class_type": "LoadImage", "inputs": {"image": end}}
        i2v["inputs"]["end_image"] = ["end", 0]
    graph[i2v["inputs"]["positive"][0]]["inputs"]["text"] = text
    for node in graph.values():
        if node["class_type"] == "KSamplerAdvanced":
            node["inputs"]["noise_seed"] = seed
    return graph


def render(client: SimClient, graph: dict, tmp_path, name: str = "clip.mp4"):
    """Submits, waits, downloads the clip through /view; returns (its path, the ws messages)."""
    resp, msgs = client.run(graph)
    assert resp.status_code == 200, resp.text
    pid = resp.json()["prompt_id"]
    (entry,) = client.get(f"/history/{pid}").json().values()
    assert entry["status"]["status_str"] == "success", entry["status"]
    (gif,) = [g for out in entry["outputs"].values() for g in out.get("gifs", [])]
    got = client.get("/view", params={"filename": gif["filename"], "subfolder": gif["subfolder"], "type": gif["type"]})
    assert got.status_code == 200
    path = tmp_path / name
    path.write_bytes(got.content)
    return path, msgs


def frames(path, size=(W, H)) -> list[Image.Image]:
    """Every frame of a clip, decoded by the bundled ffmpeg."""
    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    n = size[0] * size[1] * 3
    return [Image.frombytes("RGB", size, raw[i:i + n]) for i in range(0, len(raw), n)]


def psnr(a: Image.Image, b: Image.Image) -> float:
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    mse = sum(v * v for v in ImageStat.Stat(diff).rms) / 3
    return math.inf if mse == 0 else 10 * math.log10(255 * 255 / mse)


def top(img: Image.Image) -> Image.Image:
    """The upper half of a frame: clear of the test-card band along the bottom."""
    return img.crop((0, 0, img.width, img.height // 2))


def executed_nodes(msgs: list[dict]) -> list[str]:
    return [m["data"]["node"] for m in msgs if m["type"] == "executing" and m["data"].get("node")]


# -- POST /upload/image ------------------------------------------------------------------------------

@pytest.mark.parametrize("sim_profile", PROFILES, indirect=True)
def test_same_bytes_keep_the_name_other_bytes_get_a_number(sim_profile, profile_client):
    first, second, third = png(gradient()), png(gradient(tint=(10, 0, 0))), png(gradient(tint=(0, 0, 10)))
    url = sim_profile.url
    inputs = sim_profile.engine.config.input_dir

    assert upload(url, "key.png", first).json() == {"name": "key.png", "subfolder": "", "type": "input"}
    assert upload(url, "key.png", first).json()["name"] == "key.png"  # the same bytes: nothing written
    assert upload(url, "key.png", second).json()["name"] == "key (1).png"
    assert upload(url, "key.png", second, route="/api/upload/image").json()["name"] == "key (1).png"
    assert upload(url, "key.png", third).json()["name"] == "key (2).png"
    assert sorted(p.name for p in inputs.iterdir()) == ["key (1).png", "key (2).png", "key.png"]
    assert (inputs / "key (1).png").read_bytes() == second

    assert upload(url, "key.png", third, overwrite="true").json()["name"] == "key.png"
    assert (inputs / "key.png").read_bytes() == third
    view = profile_client.get("/view", params={"filename": "key (1).png", "type": "input"})
    assert (view.status_code, view.content) == (200, second)
    listed = profile_client.get("/object_info/LoadImage").json()["LoadImage"]["input"]["required"]["image"]
    assert listed == [["key (1).png", "key (2).png", "key.png"], {"image_upload": True}]


def test_type_subfolder_and_bad_uploads(sim, sim_client):
    data = png(gradient())
    answer = upload(sim.url, "k.png", data, subfolder="keys", type="temp").json()
    assert answer == {"name": "k.png", "subfolder": "keys", "type": "temp"}
    assert (sim.engine.config.temp_dir / "keys" / "k.png").read_bytes() == data
    assert upload(sim.url, "k.png", data, type="output").json()["type"] == "output"
    assert (sim.output_dir / "k.png").is_file()
    upload(sim.url, "notes.txt", b"not a picture")
    upload(sim.url, "deep.png", data, subfolder="keys")
    # LoadImage lists the pictures at the top of input/ only, as ComfyUI's INPUT_TYPES does
    listed = sim_client.get("/object_info/LoadImage").json()["LoadImage"]["input"]["required"]["image"][0]
    assert listed == []

    bad_type = upload(sim.url, "k.png", data, type="video")
    assert (bad_type.status_code, bad_type.text) == (500, "500 Internal Server Error\n\nServer got itself in trouble")
    assert upload(sim.url, "k.png", data, subfolder="../../elsewhere").status_code == 400
    assert requests.post(sim.url + "/upload/image", data={"type": "input"}, timeout=30).status_code == 400


def test_an_upload_over_the_size_limit_is_413(tmp_path):
    handle = serve_in_thread(tmp_path / "output", load_seconds=0.02, step_seconds=0.005, max_upload_size=4096)
    try:
        assert upload(handle.url, "small.png", b"x" * 1000).status_code == 200
        assert upload(handle.url, "big.png", b"x" * 8192).status_code == 413
        assert sorted(p.name for p in handle.engine.config.input_dir.iterdir()) == ["small.png"]
    finally:
        handle.stop()


# -- LoadImage, WanImageToVideo, WanFirstLastFrameToVideo --------------------------------------------

@pytest.mark.parametrize("sim_profile", PROFILES, indirect=True)
def test_a_missing_image_is_custom_validation_failed_like_comfyui(sim_profile, profile_client):
    graph = i2v_graph("nope.png")
    resp = profile_client.post("/prompt", {"prompt": graph})

    assert resp.status_code == 400
    body = resp.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    (load_id,) = [k for k, n in graph.items() if n["class_type"] == "LoadImage"]
    # LoadImage.VALIDATE_INPUTS names `image`, so ComfyUI skips its combo check ("not in list")
    assert body["node_errors"][load_id]["errors"] == [{
        "type": "custom_validation_failed", "message": "Custom validation failed for node",
        "details": "image - Invalid image file: nope.png", "extra_info": {"input_name": "image"}}]
    assert body["node_errors"][load_id]["class_type"] == "LoadImage"


@pytest.mark.parametrize("sim_profile", PROFILES, indirect=True)
def test_an_i2v_clip_starts_on_the_uploaded_picture(sim_profile, profile_client, tmp_path):
    picture = gradient((120, 90))  # 4:3 for a 3:2 shot: resized to cover, centre-cropped
    name = upload(sim_profile.url, "start.png", png(picture)).json()["name"]
    clip, _ = render(profile_client, i2v_graph(name), tmp_path)

    shown = frames(clip)
    assert len(shown) == FRAMES
    expected = ImageOps.fit(picture, (W, H))
    assert psnr(shown[0], expected) >= 35
    assert psnr(top(shown[-1]), top(expected)) >= 35  # the card covers the bottom band only
    assert psnr(shown[-1], expected) < 30  # ... and it is there


@pytest.mark.parametrize("sim_profile", PROFILES, indirect=True)
def test_a_first_last_frame_clip_lands_on_the_end_picture(sim_profile, profile_client, tmp_path):
    start, end = gradient(), gradient(tint=(0, 0, 0)).transpose(Image.Transpose.ROTATE_180)
    url = sim_profile.url
    first = upload(url, "first.png", png(start)).json()["name"]
    last = upload(url, "last.png", png(end)).json()["name"]

    shown = frames(render(profile_client, i2v_graph(first, last), tmp_path)[0])
    assert psnr(shown[0], start) >= 35
    assert psnr(shown[-1], end) >= 35

    only_end = frames(render(profile_client, i2v_graph(None, last), tmp_path, "end.mp4")[0])
    assert psnr(only_end[-1], end) >= 35  # from the usual card towards the picture
    assert psnr(only_end[0], end) < 20


def test_an_overwritten_upload_is_loaded_again(sim, sim_client, tmp_path):
    """LoadImage's IS_CHANGED is its file's sha256: the same graph renders the new picture."""
    url = sim.url
    upload(url, "key.png", png(gradient()))
    graph = i2v_graph("key.png")
    render(sim_client, graph, tmp_path, "one.mp4")
    again = gradient(tint=(0, 0, 40))
    upload(url, "key.png", png(again), overwrite="1")

    clip, msgs = render(sim_client, graph, tmp_path, "two.mp4")
    (load_id,) = [k for k, n in graph.items() if n["class_type"] == "LoadImage"]
    assert load_id in executed_nodes(msgs)
    assert psnr(frames(clip)[0], again) >= 35


def test_drift_warms_the_last_frame_of_a_link_by_the_configured_amount(tmp_path):
    handle = serve_in_thread(tmp_path / "comfy" / "output", load_seconds=0.02, step_seconds=0.005, drift=0.05)
    try:
        client = SimClient(handle)
        picture = gradient()
        upload(handle.url, "start.png", png(picture))
        shown = frames(render(client, i2v_graph("start.png"), tmp_path)[0])
    finally:
        handle.stop()

    first, last = (ImageStat.Stat(top(f)).mean for f in (shown[0], shown[-1]))
    assert psnr(shown[0], picture) >= 35  # the first frame is still the picture
    assert last[0] == pytest.approx(first[0] * 1.05, abs=1.5)
    assert last[2] == pytest.approx(first[2] * 0.95, abs=1.5)
    assert last[1] == pytest.approx(first[1], abs=1.5)
    middle = ImageStat.Stat(top(shown[FRAMES // 2])).mean
    assert first[0] < middle[0] < last[0]  # progressively, not at once


def test_the_i2v_models_and_nodes_are_on_the_default_server(sim, sim_client, samples):
    unets = sim_client.get("/models/diffusion_models").json()
    loras = sim_client.get("/models/loras").json()
    assert {"wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors", "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"} <= set(unets)
    assert {"wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
            "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"} <= set(loras)
    real = json.loads((samples / "object_info_all.json").read_text(encoding="utf-8"))
    for cls in ("WanImageToVideo", "WanFirstLastFrameToVideo"):
        assert sim_client.get(f"/object_info/{cls}").json() == {cls: real[cls]}


def test_wanclip_sim_takes_a_drift(tmp_path):
    result = run_cli("sim", "--help")
    assert "--drift" in result.stdout and "image-to-video" in result.stdout
    with pytest.raises(ValueError, match="drift"):
        serve_in_thread(tmp_path / "output", drift=1.5)
