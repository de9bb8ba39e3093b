"""wanclip's ComfyUI node pack: the node's logic without ComfyUI (stubbed ``folder_paths``,
``server``), ``wanclip setup --nodes`` into a fake ComfyUI folder, and doctor's row."""

from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.util
import json
import os
import re
import stat
import subprocess
import sys
import threading
import types
from array import array
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import wait_until
from wanclip import media
from wanclip.checks.doctor import run_doctor
from wanclip.cli.app import app
from wanclip.comfy.client import ComfyClient
from wanclip.models import nodepack
from wanclip.sim import serve_in_thread
from wanclip.sim import wanclip_nodes as sim_pack

PACK_PARENT = Path(nodepack.source_dir()).parent


# -- stubs: just enough of ComfyUI for the node ------------------------------------------------------
def _get_save_image_path(filename_prefix, output_dir, image_width=0, image_height=0):
    """folder_paths.get_save_image_path of ComfyUI 0.3.64, less the %date% tokens."""
    def map_filename(filename):
        prefix_len = len(os.path.basename(filename_prefix))
        prefix = filename[:prefix_len + 1]
        try:
            digits = int(filename[prefix_len + 1:].split("_")[0])
        except ValueError:
            digits = 0
        return digits, prefix

    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    full_output_folder = os.path.join(output_dir, subfolder)
    if os.path.commonpath((output_dir, os.path.abspath(full_output_folder))) != output_dir:
        raise Exception("**** ERROR: Saving image outside the output folder is not allowed.")
    try:
        counter = max(filter(lambda a: a[1][:-1] == filename and a[1][-1] == "_",
                             map(map_filename, os.listdir(full_output_folder))))[0] + 1
    except ValueError:
        counter = 1
    except FileNotFoundError:
        os.makedirs(full_output_folder, exist_ok=True)
        counter = 1
    return full_output_folder, filename, counter, subfolder, filename_prefix


class FakeServer:
    def __init__(self):
        self.sent = []
        self.client_id = "client-1"
        self.last_prompt_id = "prompt-1"

    def send_sync(self, event, data, sid=None):
        self.sent.append((event, data, sid))


class Frame:
    """A frame the way the node sees a torch tensor: .cpu().numpy() -> a buffer of float32."""

    def __init__(self, values: array):
        self.values = values

    def cpu(self):
        return self

    def numpy(self):
        return self.values


class Images:
    """An IMAGE batch [T, H, W, 3] of floats 0..1, without numpy or torch."""

    def __init__(self, frames: int = 9, height: int = 48, width: int = 64, channels: int = 3):
        self.shape = (frames, height, width, channels)
        size = height * width * channels
        self.frames = [Frame(array("f", [((i * 37 + k) % 256) / 255 for k in range(size)])) for i in range(frames)]

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, i):
        return self.frames[i]


@pytest.fixture
def comfy(tmp_path, monkeypatch):
    """Stub ComfyUI modules; returns (output dir, temp dir, fake PromptServer)."""
    out, temp = tmp_path / "output", tmp_path / "temp"
    out.mkdir()
    temp.mkdir()
    folder_paths = types.ModuleType("folder_paths")
    folder_paths.get_output_directory = lambda: str(out)
    folder_paths.get_temp_directory = lambda: str(temp)
    folder_paths.get_save_image_path = _get_save_image_path
    server_mod = types.ModuleType("server")
    fake = FakeServer()
    server_mod.PromptServer = type("PromptServer", (), {"instance": fake})
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    monkeypatch.setitem(sys.modules, "server", server_mod)
    monkeypatch.delenv("WANCLIP_FFMPEG", raising=False)
    return out, temp, fake


@pytest.fixture
def pack(comfy, monkeypatch):
    """The pack imported fresh against the stubs (what ComfyUI does at start); its encoder is
    shut down afterwards."""
    monkeypatch.syspath_prepend(str(PACK_PARENT))
    for name in [m for m in sys.modules if m == "wanclip_nodes" or m.startswith("wanclip_nodes.")]:
        monkeypatch.delitem(sys.modules, name)

    def load():
        return importlib.import_module("wanclip_nodes")

    yield load
    module = sys.modules.get("wanclip_nodes.encoder")
    if module is not None and module._shared is not None:
        module._shared.shutdown()
        atexit.unregister(module._shared.shutdown)
        module._shared = None
    for name in [m for m in sys.modules if m == "wanclip_nodes" or m.startswith("wanclip_nodes.")]:
        del sys.modules[name]


def fake_ffmpeg(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-ffmpeg"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def save(module, images=None, **kw):
    node = module.NODE_CLASS_MAPPINGS["WanclipSaveVideo"]()
    args = dict(images=Images() if images is None else images, frame_rate=16.0, filename_prefix="video/shot", unique_id="90") | kw
    return node.save(**args)


def encoder_of(module):
    return sys.modules["wanclip_nodes.encoder"]


# -- the node ------------------------------------------------------------------------------------------
def test_frames_in_give_a_playable_mp4_with_the_same_frame_count_and_a_done_event(pack, comfy, monkeypatch):
    out, _, server = comfy
    module = pack()
    encoders: list[threading.Thread] = []  # the threads that started an ffmpeg

    class Recorded(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            encoders.append(threading.current_thread())
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Recorded)
    result = save(module, Images(frames=9))
    entry = {"filename": "shot_00001_.mp4", "subfolder": "video", "type": "output"}
    assert result["ui"]["images"] == [entry] and result["ui"]["animated"] == [True]
    assert result["ui"]["wanclip"][0]["pending"] is True and result["result"] == ()
    assert encoder_of(module).shared_encoder(None).wait_idle(60)
    monkeypatch.undo()
    # the encode is not on the node's thread (was "returned in under 0.5 s", a clock under load)
    assert encoders and threading.current_thread() not in encoders
    clip = out / "video" / "shot_00001_.mp4"
    info = media.probe(clip)
    assert (info.frames, info.width, info.height, float(info.fps)) == (9, 64, 48, 16.0)
    assert not (out / "video" / "shot_00001_.mp4.part").exists()
    [(event, data, sid)] = server.sent
    assert event == "wanclip.video" and sid == "client-1"
    assert data | {"seconds": 0} == {"prompt_id": "prompt-1", "node": "90", "filename": "shot_00001_.mp4",
                                     "subfolder": "video", "type": "output", "status": "done", "message": "",
                                     "frames": 9, "bytes": clip.stat().st_size, "seconds": 0}


def tags_of(clip: Path) -> dict[str, str]:
    """The mp4's global metadata, as ffmpeg reads it back (FFMETADATA1, escapes undone)."""
    text = subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(clip), "-f", "ffmetadata", "-"],
                          capture_output=True, text=True, check=True).stdout
    tags, key, value = {}, None, ""
    for line in text.splitlines()[1:]:
        if key is not None and value.endswith("\\") and not value.endswith("\\\\"):
            value = value[:-1] + "\n" + line
        else:
            if key is not None:
                tags[key] = value
            key, _, value = line.partition("=")
    if key is not None:
        tags[key] = value
    return {k: re.sub(r"\\(.)", r"\1", v, flags=re.S) for k, v in tags.items()}


def test_save_metadata_embeds_the_prompt_and_workflow_as_vhs_does(pack, comfy):
    out, _, _ = comfy
    module = pack()
    prompt = {"90": {"class_type": "WanclipSaveVideo", "inputs": {"filename_prefix": "a=b; #c\\d\ne 番茄"}}}
    workflow = {"nodes": [{"id": 90, "title": "保存"}]}
    save(module, prompt=prompt, extra_pnginfo={"workflow": workflow})
    save(module, prompt=prompt, extra_pnginfo={"workflow": workflow}, save_metadata=False)
    assert encoder_of(module).shared_encoder(None).wait_idle(60)
    tags = tags_of(out / "video" / "shot_00001_.mp4")
    assert json.loads(tags["prompt"]) == prompt and json.loads(tags["workflow"]) == workflow
    assert "prompt" not in tags_of(out / "video" / "shot_00002_.mp4")
    assert sorted(os.listdir(out / "video")) == ["shot_00001_.mp4", "shot_00002_.mp4"]  # no metadata file left


def test_the_file_is_a_part_until_the_encode_is_over_then_renamed(pack, comfy):
    out, _, _ = comfy
    module = pack()
    enc = encoder_of(module)
    gated = enc.Encoder(module.save_video._notify, start=False)
    enc._shared = gated
    save(module)
    folder = out / "video"
    assert sorted(os.listdir(folder)) == ["shot_00001_.mp4.part"]  # reserved, announced, not there yet
    save(module)  # the next prompt while the first still waits: another name
    assert sorted(os.listdir(folder)) == ["shot_00001_.mp4.part", "shot_00002_.mp4.part"]
    gated.start()
    assert gated.wait_idle(60)
    assert sorted(os.listdir(folder)) == ["shot_00001_.mp4", "shot_00002_.mp4"]


def test_the_ffmpeg_command_is_vhs_h264_mp4s(tmp_path):
    enc = load_encoder()
    args = enc.ffmpeg_args("ffmpeg", 832, 480, 16.0, 3, 19, "yuv420p", "medium", "/o/x.mp4.part")
    # videohelpersuite/nodes.py + video_formats/h264-mp4.json (save_metadata only adds an input and tags)
    vhs = ["ffmpeg", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-color_range", "pc", "-colorspace", "rgb",
           "-color_primaries", "bt709", "-color_trc", "bt709", "-s", "832x480", "-r", "16.0", "-i", "-",
           "-n", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "19", "-vf", "scale=out_color_matrix=bt709",
           "-color_range", "tv", "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709"]
    assert args[:-3] == [("-y" if a == "-n" else a) for a in vhs] and args[-3:] == ["-f", "mp4", "/o/x.mp4.part"]
    tagged = enc.ffmpeg_args("ffmpeg", 832, 480, 16.0, 3, 19, "yuv420p", "medium", "/o/x.mp4.part", "/t/meta.txt")
    # VHS with save_metadata: the metadata file is the first input, and the tags are written as mp4 tags
    assert tagged == (["ffmpeg", "-i", "/t/meta.txt"] + args[1:-3] + ["-metadata", "creation_time=now", "-movflags",
                                                                       "use_metadata_tags"] + args[-3:])
    fast = enc.ffmpeg_args("ffmpeg", 8, 8, 16.0, 4, 17, "yuv420p", "ultrafast", "o")
    assert fast[fast.index("-preset") + 1] == "ultrafast" and fast[fast.index("-pix_fmt") + 1] == "rgba"


def test_uint8_conversion_matches_vhs_rounding():
    enc = load_encoder()
    values = array("f", [0.0, 1.0, 0.5, 1 / 255, -0.2, 1.7, 0.998])
    # VHS: clip(x * 255 + 0.5, 0, 255).astype(uint8)
    assert list(enc.to_uint8(Frame(values))) == [0, 255, 128, 1, 0, 255, 254]
    assert enc.to_uint8(bytes([1, 2, 3])) == bytes([1, 2, 3])


def test_a_full_queue_blocks_the_caller_instead_of_holding_more_frames(tmp_path):
    enc = load_encoder()
    reported = []
    encoder = enc.Encoder(lambda payload, sid: reported.append(payload["status"]), max_pending=1, start=False)
    jobs = [enc.Job(Images(frames=2), 16.0, enc.reserve(str(tmp_path), "q", 1)) for _ in range(1)]
    jobs.append(enc.Job(Images(frames=2), 16.0, enc.reserve(str(tmp_path), "q", 1)))
    encoder.submit(jobs[0])
    blocked = threading.Thread(target=encoder.submit, args=(jobs[1],))
    blocked.start()
    blocked.join(0.4)
    assert blocked.is_alive()  # the second clip waits for a free slot
    with pytest.raises(__import__("queue").Full):
        encoder.submit(enc.Job(Images(frames=2), 16.0, str(tmp_path / "x.mp4")), timeout=0.05)
    encoder.start()
    blocked.join(30)
    assert not blocked.is_alive() and encoder.wait_idle(60)
    assert reported == ["done", "done"]
    encoder.shutdown()


def test_a_failing_ffmpeg_leaves_no_clip_but_a_failed_marker_and_a_failed_event(pack, comfy, tmp_path, monkeypatch):
    out, _, server = comfy
    monkeypatch.setenv("WANCLIP_FFMPEG", fake_ffmpeg(tmp_path, 'echo "Unknown encoder libx264" >&2; exit 1'))
    module = pack()
    save(module)
    assert encoder_of(module).shared_encoder(None).wait_idle(60)
    folder = out / "video"
    assert os.listdir(folder) == ["shot_00001_.mp4.failed"]
    marker = json.loads((folder / "shot_00001_.mp4.failed").read_text())
    assert marker["status"] == "failed" and "Unknown encoder libx264" in marker["message"]
    assert marker["filename"] == "shot_00001_.mp4" and marker["prompt_id"] == "prompt-1"
    [(event, data, _)] = server.sent
    assert event == "wanclip.video" and data["status"] == "failed" and "Unknown encoder libx264" in data["message"]
    save(module)  # the failed name is never reused
    assert encoder_of(module).shared_encoder(None).wait_idle(60)
    assert "shot_00002_.mp4.failed" in os.listdir(folder)


def test_shutdown_kills_a_running_ffmpeg_and_leaves_no_part(tmp_path):
    enc = load_encoder()
    encoder = enc.Encoder(ffmpeg=fake_ffmpeg(tmp_path, "exec sleep 30"))
    final = enc.reserve(str(tmp_path), "s", 1)
    waiting = enc.reserve(str(tmp_path), "s", 1)
    encoder.submit(enc.Job(Images(frames=3), 16.0, final))
    encoder.submit(enc.Job(Images(frames=3), 16.0, waiting))
    wait_until(lambda: encoder._procs)
    [proc] = encoder._procs
    encoder.shutdown()
    assert proc.poll() is not None  # killed: it would sleep 30 s (no clock here: shutdown waits for it)
    names = sorted(os.listdir(tmp_path))
    assert not [n for n in names if n.endswith(".part")]
    assert "s_00001_.mp4.failed" in names and "s_00002_.mp4.failed" in names
    assert "shut down" in json.loads((tmp_path / "s_00002_.mp4.failed").read_text())["message"]
    with pytest.raises(enc.EncodeError):
        encoder.submit(enc.Job(Images(frames=1), 16.0, str(tmp_path / "late.mp4")))


def test_stale_parts_of_a_crashed_run_are_removed_when_the_pack_loads(pack, comfy):
    out, temp, _ = comfy
    (out / "video").mkdir()
    stale = [out / "video" / "shot_00003_.mp4.part", temp / "x_00001_.mp4.part"]
    kept = [out / "video" / "shot_00002_.mp4", out / "download.part", out / "video" / "other_1.mp4.part"]
    for path in stale + kept:
        path.write_bytes(b"x")
    pack()
    assert [p.exists() for p in stale] == [False, False]
    assert all(p.exists() for p in kept)


def test_bad_frames_fail_the_node_at_once_and_reserve_nothing(pack, comfy):
    out, _, _ = comfy
    module = pack()
    with pytest.raises(ValueError, match="even width and height"):
        save(module, Images(frames=2, height=47))
    with pytest.raises(ValueError, match="no frames"):
        save(module, Images(frames=0))
    assert not (out / "video").exists() or os.listdir(out / "video") == []


def test_temp_output_and_the_frame_rate_accepts_int_links(pack, comfy):
    _, temp, _ = comfy
    module = pack()
    result = save(module, save_output=False, filename_prefix="preview")
    assert result["ui"]["images"] == [{"filename": "preview_00001_.mp4", "subfolder": "", "type": "temp"}]
    frame_rate = module.save_video.WanclipSaveVideo.INPUT_TYPES()["required"]["frame_rate"][0]
    assert not (frame_rate != "INT") and not (frame_rate != "FLOAT") and frame_rate != "IMAGE"
    assert frame_rate == "FLOAT"  # a literal is coerced as a FLOAT, never int()
    assert encoder_of(module).shared_encoder(None).wait_idle(60)
    assert (temp / "preview_00001_.mp4").is_file()


def comfy_node_info(cls, name: str, display: str) -> dict:
    """ComfyUI 0.3.64's server.node_info for a V1 node of a custom pack."""
    info = {"input": cls.INPUT_TYPES(), "input_order": {k: list(v) for k, v in cls.INPUT_TYPES().items()},
            "output": cls.RETURN_TYPES, "output_is_list": [False] * len(cls.RETURN_TYPES),
            "output_name": cls.RETURN_TYPES, "name": name, "display_name": display,
            "description": cls.DESCRIPTION, "python_module": "custom_nodes.wanclip_nodes", "category": cls.CATEGORY,
            "output_node": cls.OUTPUT_NODE}
    return json.loads(json.dumps(info))


def test_the_simulators_schema_is_the_shipped_nodes(pack, comfy):
    module = pack()
    cls = module.NODE_CLASS_MAPPINGS["WanclipSaveVideo"]
    got = comfy_node_info(cls, "WanclipSaveVideo", module.NODE_DISPLAY_NAME_MAPPINGS["WanclipSaveVideo"])
    assert got == sim_pack.OBJECT_INFO["WanclipSaveVideo"]


@functools.cache
def load_encoder():
    """encoder.py on its own (it imports nothing of ComfyUI)."""
    spec = importlib.util.spec_from_file_location("wanclip_pack_encoder", PACK_PARENT / "wanclip_nodes" / "encoder.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# -- wanclip setup --nodes --------------------------------------------------------------------------------
@pytest.fixture
def comfy_dir(tmp_path):
    root = tmp_path / "ComfyUI"
    (root / "custom_nodes").mkdir(parents=True)
    (root / "main.py").write_text("# ComfyUI\n")
    return root


def with_vhs(root: Path) -> Path:
    vhs = root / "custom_nodes" / "ComfyUI-VideoHelperSuite"
    (vhs / "videohelpersuite").mkdir(parents=True)
    (vhs / "video_formats").mkdir()
    (vhs / "video_formats" / "h264-mp4.json").write_text("{}")
    return vhs / "video_formats"


def setup(*args):
    return CliRunner().invoke(app, ["setup", *map(str, args)])


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_setup_nodes_installs_the_pack_and_the_vhs_format_verified(comfy_dir):
    formats = with_vhs(comfy_dir)
    result = setup("--nodes", "--comfy-dir", comfy_dir)
    assert result.exit_code == 0, result.output
    target = comfy_dir / "custom_nodes" / "wanclip_nodes"
    shipped = nodepack.shipped_files()
    assert {"__init__.py", "encoder.py", "save_video.py"} <= set(shipped)
    assert {rel: sha(target / rel) for rel in shipped} == shipped
    assert json.loads((target / "wanclip_pack.json").read_text())["files"] == shipped
    fmt = formats / "wanclip-h264-ultrafast.json"
    assert json.loads(fmt.read_text())["main_pass"][2:5] == ["libx264", "-preset", "ultrafast"]
    assert "installed" in result.output and "restart ComfyUI" in result.output
    assert not [p for p in (comfy_dir / "custom_nodes").iterdir() if p.name.startswith(".")]  # no temp folder left
    again = setup("--nodes", "--comfy-dir", comfy_dir, "--json")
    assert again.exit_code == 0
    data = json.loads(again.output)
    assert (data["status"], data["vhs_format"]) == ("unchanged", "unchanged")
    assert setup("--nodes", "--check", "--comfy-dir", comfy_dir).exit_code == 0


def test_setup_nodes_repairs_a_changed_file_and_check_says_so(comfy_dir):
    assert setup("--nodes", "--comfy-dir", comfy_dir).exit_code == 0
    target = comfy_dir / "custom_nodes" / "wanclip_nodes"
    (target / "encoder.py").write_text("# edited\n")
    (target / "__pycache__").mkdir()
    checked = setup("--nodes", "--check", "--comfy-dir", comfy_dir, "--json")
    assert checked.exit_code == 1 and json.loads(checked.output)["status"] == "modified"
    fixed = setup("--nodes", "--comfy-dir", comfy_dir, "--json")
    assert fixed.exit_code == 0 and json.loads(fixed.output)["status"] == "updated"
    assert sha(target / "encoder.py") == nodepack.shipped_files()["encoder.py"]
    assert (target / "__pycache__").is_dir()  # not ours to delete


def test_setup_nodes_never_overwrites_a_foreign_folder_or_format_file(comfy_dir):
    foreign = comfy_dir / "custom_nodes" / "wanclip_nodes"
    foreign.mkdir()
    (foreign / "__init__.py").write_text("# someone else's\n")
    result = setup("--nodes", "--comfy-dir", comfy_dir)
    assert result.exit_code == 2 and "not installed by wanclip" in result.output
    assert (foreign / "__init__.py").read_text() == "# someone else's\n"
    assert setup("--nodes", "--check", "--comfy-dir", comfy_dir).exit_code == 1
    (foreign / "__init__.py").unlink()
    foreign.rmdir()
    formats = with_vhs(comfy_dir)
    (formats / "wanclip-h264-ultrafast.json").write_text('{"main_pass": []}')
    result = setup("--nodes", "--comfy-dir", comfy_dir, "--json")
    assert result.exit_code == 0 and json.loads(result.output)["vhs_format"] == "foreign"
    assert (formats / "wanclip-h264-ultrafast.json").read_text() == '{"main_pass": []}'


def test_setup_nodes_needs_a_comfyui_folder(tmp_path, comfy_dir):
    assert setup("--nodes", "--comfy-dir", tmp_path / "nowhere").exit_code == 2
    (tmp_path / "plain").mkdir()
    assert setup("--nodes", "--comfy-dir", tmp_path / "plain").exit_code == 2
    result = setup("--nodes", "--models-dir", comfy_dir / "models")
    assert result.exit_code == 2 and "--comfy-dir" in result.output
    missing = setup("--nodes", "--check", "--comfy-dir", comfy_dir, "--json")
    assert missing.exit_code == 1 and json.loads(missing.output)["status"] == "missing"


def test_the_installed_pack_loads_the_way_comfyui_loads_custom_nodes(comfy_dir, comfy):
    assert setup("--nodes", "--comfy-dir", comfy_dir).exit_code == 0
    path = comfy_dir / "custom_nodes" / "wanclip_nodes"
    name = str(path).replace(".", "_x_")  # nodes.load_custom_node's sys_module_name
    spec = importlib.util.spec_from_file_location(name, path / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        assert list(module.NODE_CLASS_MAPPINGS) == ["WanclipSaveVideo"]
        assert module.NODE_CLASS_MAPPINGS["WanclipSaveVideo"].OUTPUT_NODE is True
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]


# -- doctor's row -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("packs", [(), ("wanclip",)], ids=["without", "with"])
def test_doctor_reports_the_pack_as_information_never_as_a_failure(tmp_path, packs):
    handle = serve_in_thread(tmp_path / "output", load_seconds=0.01, step_seconds=0.005, nodes=packs)
    try:
        with ComfyClient(handle.url) as client:
            report = run_doctor(client, output_dir=tmp_path, disk_free=lambda path: 10**12)
    finally:
        handle.stop()
    [row] = [c for c in report.checks if c.name == "wanclip nodes"]
    assert row.ok and report.ok
    if packs:
        assert row.detail.startswith("WanclipSaveVideo is installed")
    else:
        assert row.detail.startswith("optional, not installed") and "setup --nodes" in row.fix


# -- the clip someone waits for: encoded in parts side by side -------------------------------------------
def keyframes(clip: Path) -> list[int]:
    """The packet numbers (decode order) ffmpeg flags as keyframes."""
    text = subprocess.run([media.ffmpeg_exe(), "-v", "error", "-i", str(clip), "-map", "0:v:0", "-c", "copy",
                           "-f", "framecrc", "-"], capture_output=True, text=True, check=True).stdout
    packets = [line for line in text.splitlines() if line.startswith("0,")]
    return [i for i, line in enumerate(packets) if "F=" not in line]


def test_parts_when_idle_takes_a_quarter_of_the_cpus_with_at_least_16_frames_a_part(monkeypatch):
    enc = load_encoder()
    monkeypatch.delenv("WANCLIP_NODES_PARTS", raising=False)
    assert [enc.parts_when_idle(81, cpus) for cpus in (1, 2, 4, 8, 16, 64)] == [1, 1, 1, 2, 4, 5]
    assert enc.parts_when_idle(31, 16) == 1 and enc.parts_when_idle(33, 16) == 2
    monkeypatch.setenv("WANCLIP_NODES_PARTS", "1")
    assert enc.parts_when_idle(81, 64) == 1
    monkeypatch.setenv("WANCLIP_NODES_PARTS", "3")
    assert enc.parts_when_idle(81, 2) == 3
    monkeypatch.setenv("WANCLIP_NODES_PARTS", "many")  # not a number: the quarter
    assert enc.parts_when_idle(81, 16) == 4


def test_a_clip_in_parts_is_one_mp4_with_every_frame_the_tags_and_a_keyframe_where_each_part_starts(tmp_path):
    enc = load_encoder()
    reported = []
    whole = enc.Encoder(lambda payload, sid: reported.append(payload))
    split = enc.Encoder(lambda payload, sid: reported.append(payload), parts=lambda job, frames: 3)
    images = Images(frames=50)
    metadata = {"prompt": {"90": {"inputs": {"text": "番茄炒蛋"}}}, "workflow": {"nodes": []}}
    one, three = enc.reserve(str(tmp_path), "one", 1), enc.reserve(str(tmp_path), "three", 1)
    whole.submit(enc.Job(images, 16.0, one, metadata=metadata))
    split.submit(enc.Job(images, 16.0, three, metadata=metadata))
    assert whole.wait_idle(120) and split.wait_idle(120)
    for encoder in (whole, split):
        encoder.shutdown()
    assert [r["status"] for r in reported] == ["done", "done"], reported
    a, b = media.probe(Path(one)), media.probe(Path(three))
    assert (b.frames, b.width, b.height, b.fps, b.pix_fmt) == (a.frames, a.width, a.height, a.fps, a.pix_fmt)
    assert b.frames == 50
    assert keyframes(Path(one)) == [0] and keyframes(Path(three)) == [0, 16, 33]
    assert json.loads(tags_of(Path(three))["prompt"]) == metadata["prompt"]
    # the same pictures: every decoded frame of the parts' clip is close to the whole one's
    frames = [media.read_frames(Path(p), [0, 15, 16, 32, 33, 49], 64, 48, scale=False) for p in (one, three)]
    for i in frames[0]:
        diff = sum(abs(x - y) for x, y in zip(frames[0][i], frames[1][i], strict=True)) / len(frames[0][i])
        assert diff < 4, (i, diff)
    assert sorted(os.listdir(tmp_path)) == ["one_00001_.mp4", "three_00001_.mp4"]


def test_a_part_that_fails_fails_the_clip_and_leaves_no_file_of_it(tmp_path):
    enc = load_encoder()
    real = media.ffmpeg_exe()
    ffmpeg = fake_ffmpeg(tmp_path, f'case "$*" in *part1.mp4*) echo "part one refused" >&2; exit 1;; esac\n'
                                   f'exec "{real}" "$@"')
    reported = []
    encoder = enc.Encoder(lambda payload, sid: reported.append(payload), ffmpeg=ffmpeg, parts=lambda job, n: 3)
    out = tmp_path / "out"
    final = enc.reserve(str(out), "shot", 1)
    encoder.submit(enc.Job(Images(frames=48), 16.0, final))
    assert encoder.wait_idle(120)
    encoder.shutdown()
    [payload] = reported
    assert payload["status"] == "failed" and "part one refused" in payload["message"]
    assert os.listdir(out) == ["shot_00001_.mp4.failed"]


def test_the_node_splits_the_clip_only_when_nothing_is_queued_behind_its_prompt(pack, comfy, monkeypatch):
    out, _, server = comfy
    monkeypatch.setenv("WANCLIP_NODES_PARTS", "2")

    class Prompts:  # ComfyUI's PromptQueue, as far as the node reads it
        mutex = threading.RLock()

        def __init__(self, queued, running):
            self.queue, self.currently_running = queued, dict(enumerate(running))

    module = pack()
    server.prompt_queue = Prompts([(2, "prompt-2", {}, {}, [])], [(1, "prompt-1", {}, {}, [])])
    save(module, Images(frames=40))  # prompt-2 waits behind it: one run
    assert encoder_of(module).shared_encoder(None).wait_idle(60)
    server.prompt_queue = Prompts([], [(2, "prompt-1", {}, {}, [])])
    save(module, Images(frames=40))  # the last one: in two parts
    assert encoder_of(module).shared_encoder(None).wait_idle(60)
    server.prompt_queue = Prompts([], [(3, "prompt-9", {}, {}, [])])
    save(module, Images(frames=40))  # another prompt still runs: one run
    assert encoder_of(module).shared_encoder(None).wait_idle(60)
    del server.prompt_queue  # a server whose queue we cannot read: one run
    save(module, Images(frames=40))
    assert encoder_of(module).shared_encoder(None).wait_idle(60)
    clips = [out / "video" / f"shot_{n:05}_.mp4" for n in (1, 2, 3, 4)]
    assert [keyframes(c) for c in clips] == [[0], [0, 20], [0], [0]]
    assert [media.probe(c).frames for c in clips] == [40, 40, 40, 40]
