"""The background-encode output path: the graph swap by role, the simulator's delayed file and
``wait_for_file`` (event and ``/view`` fallback, failures, time-outs)."""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid

import pytest
import requests
import websocket

from helpers import wait_until
from wanclip.comfy import outputs
from wanclip.comfy.client import ComfyClient
from wanclip.errors import ClipError
from wanclip.planning.workflow import (
    CORE_WORKFLOW,
    ShotParams,
    find_roles,
    inject,
    shipped_graph,
    use_async_output,
)
from wanclip.sim import serve_in_thread

DELAY = 0.6


# -- the swap (pure) --------------------------------------------------------------------------------------
def test_the_vhs_output_becomes_wanclip_save_video_keeping_rate_prefix_and_quality():
    graph = shipped_graph()
    before = copy.deepcopy(graph)
    roles = find_roles(graph)
    vhs = graph[roles.output]["inputs"]
    swapped = use_async_output(graph)
    assert graph == before  # pure
    node = swapped[roles.output]
    assert node["class_type"] == "WanclipSaveVideo"
    assert node["inputs"] == {"images": vhs["images"], "frame_rate": vhs["frame_rate"],
                              "filename_prefix": vhs["filename_prefix"], "crf": vhs.get("crf", 19),
                              "pix_fmt": vhs.get("pix_fmt", "yuv420p"), "preset": "medium",
                              "save_output": vhs.get("save_output", True), "save_metadata": True}
    assert set(swapped) == set(graph)
    assert use_async_output(swapped) == swapped  # already swapped: unchanged
    again = find_roles(swapped)
    assert (again.output, again.output_kind, again.video_fps_node) == (roles.output, "async", roles.output)
    shot = inject(swapped, ShotParams("a fox", 7, 33, 832, 480, 24.0, "film/03_fox"))
    assert shot[roles.output]["inputs"]["frame_rate"] == 24.0
    assert shot[roles.output]["inputs"]["filename_prefix"] == "film/03_fox"


def test_the_core_chain_becomes_one_node_and_its_create_video_goes():
    graph = shipped_graph(CORE_WORKFLOW)
    roles = find_roles(graph)
    create = graph[roles.video_fps_node]
    swapped = use_async_output(graph)
    assert roles.video_fps_node not in swapped
    assert set(swapped) == set(graph) - {roles.video_fps_node}
    node = swapped[roles.output]
    assert node["class_type"] == "WanclipSaveVideo"
    assert node["inputs"]["images"] == create["inputs"]["images"]
    assert node["inputs"]["frame_rate"] == create["inputs"]["fps"]
    assert node["inputs"]["filename_prefix"] == graph[roles.output]["inputs"]["filename_prefix"]
    assert node["inputs"]["crf"] == 23  # PyAV's libx264 default, what SaveVideo encodes at
    assert node["inputs"]["save_metadata"] is True  # core SaveVideo embeds the prompt and workflow too
    assert find_roles(swapped).output_kind == "async"


def test_the_swap_keeps_vhs_save_metadata_off_where_the_graph_turned_it_off():
    graph = shipped_graph()
    out = find_roles(graph).output
    graph[out]["inputs"]["save_metadata"] = False
    assert use_async_output(graph)[out]["inputs"]["save_metadata"] is False


def test_outputs_the_node_cannot_reproduce_are_left_alone():
    graph = shipped_graph()
    out = find_roles(graph).output
    for change in ({"format": "video/h265-mp4"}, {"loop_count": 2}, {"pingpong": True}, {"audio": ["7", 0]}):
        other = copy.deepcopy(graph)
        other[out]["inputs"].update(change)
        assert use_async_output(other) == other
    fast = copy.deepcopy(graph)
    fast[out]["inputs"].update(format="video/wanclip-h264-ultrafast", crf=17)
    inputs = use_async_output(fast)[out]["inputs"]
    assert (inputs["preset"], inputs["crf"]) == ("ultrafast", 17)


# -- the simulator's delayed file ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pack_sim(tmp_path_factory):
    handle = serve_in_thread(tmp_path_factory.mktemp("pack-sim") / "output", load_seconds=0.01, step_seconds=0.005,
                             nodes=("wanclip",), video_delay=DELAY)
    yield handle
    handle.stop()


@pytest.fixture
def sim(pack_sim, tmp_path):
    pack_sim.reset(tmp_path / "output")
    pack_sim.output_dir.mkdir(parents=True, exist_ok=True)
    yield pack_sim
    pack_sim.reset()


def tiny(graph: dict, prefix: str = "clips/shot") -> dict:
    return inject(graph, ShotParams("a test card", 11, 5, 64, 48, 16.0, prefix))


class Session:
    """One client: a websocket whose wanclip.video events feed ``events`` after the prompt ended."""

    def __init__(self, url: str):
        self.client = ComfyClient(url)
        self.client_id = str(uuid.uuid4())
        self.ws = websocket.create_connection(self.client.ws_url(self.client_id), timeout=30)
        self.events = outputs.VideoEvents()
        self.seen: list[dict] = []
        self.reader: threading.Thread | None = None

    def run(self, graph: dict) -> tuple[str, dict, float]:
        """Submit, wait for `executing` null; (prompt id, history outputs, when it ended)."""
        prompt_id = str(uuid.uuid4())
        self.client.submit(graph, self.client_id, prompt_id)
        while True:
            message = json.loads(self.ws.recv())
            self.events.feed(message)
            data = message.get("data") or {}
            if message["type"] == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
                ended = time.monotonic()
                break
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return prompt_id, self.client.history(prompt_id)["outputs"], ended

    def _read(self) -> None:
        try:
            while True:
                message = json.loads(self.ws.recv())
                self.seen.append(message)
                self.events.feed(message)
        except (websocket.WebSocketException, OSError, ValueError):
            return

    def close(self) -> None:
        self.ws.close()
        self.ws.shutdown()  # close() is a no-op on a socket the server dropped (a restart): no leak
        if self.reader is not None:
            self.reader.join(10)
        self.client.close()


@pytest.fixture
def session(sim):
    s = Session(sim.url)
    yield s
    s.close()


def view(url: str, out: outputs.OutputFile) -> int:
    with requests.get(url + "/view", params={"filename": out.filename, "subfolder": out.subfolder,
                                             "type": out.kind}, timeout=10) as response:
        return response.status_code


def test_the_object_info_lists_the_node_only_where_the_pack_is_installed(sim, sim_server):
    assert "WanclipSaveVideo" in requests.get(sim.url + "/object_info/WanclipSaveVideo", timeout=10).json()
    assert requests.get(sim_server.url + "/object_info/WanclipSaveVideo", timeout=10).json() == {}
    refused = requests.post(sim_server.url + "/prompt", json={"prompt": use_async_output(tiny(shipped_graph()))},
                            timeout=10)
    assert refused.status_code == 400


@pytest.mark.parametrize("name", [None, CORE_WORKFLOW], ids=["vhs", "core"])
def test_the_file_appears_later_from_its_part_and_the_event_says_so(session, sim, name, tmp_path):
    graph = shipped_graph() if name is None else shipped_graph(name)
    prompt_id, result, _ = session.run(use_async_output(tiny(graph)))
    assert outputs.is_async(result)
    [out] = outputs.video_outputs(result)
    folder = sim.output_dir / out.subfolder
    assert view(sim.url, out) == 404  # announced, not there yet
    assert (folder / (out.filename + ".part")).exists()
    # "later" is the 404 and the .part above (no clock: a loaded machine made "DELAY * 0.8 < waited <
    # DELAY + 2" fail both ways). The node renames the file, then sends its event: until the reader
    # thread has fed that event, /view may answer first ("view"). Once it is here, it settles the wait.
    assert session.events.wait(out, 30) is not None
    assert outputs.wait_for_file(session.client, out, 30, events=session.events) == "event"
    event = session.events.get(out)
    assert (event.status, event.prompt_id, event.frames) == ("done", prompt_id, 5)
    assert sorted(p.name for p in folder.iterdir()) == [out.filename]
    clip = outputs.fetch_clip(session.client, result, tmp_path / "clip", 5, 64, 48, 16.0, events=session.events)
    assert clip.frames == 5


def test_without_the_event_view_retries_find_the_file(session, sim, tmp_path):
    _, result, _ = session.run(use_async_output(tiny(shipped_graph())))
    [out] = outputs.video_outputs(result)
    assert outputs.wait_for_file(session.client, out, 30) == "view"
    clip = outputs.fetch_clip(session.client, result, tmp_path / "clip", 5, 64, 48, 16.0)  # waits by itself
    assert clip.path.is_file()


@pytest.mark.parametrize("with_event", [True, False], ids=["event", "marker"])
def test_a_failed_background_encode_is_a_clip_error_with_the_servers_reason(session, sim, with_event, tmp_path):
    sim.faults.fail_encode(1, "libx264 not found")
    _, result, _ = session.run(use_async_output(tiny(shipped_graph())))
    [out] = outputs.video_outputs(result)
    with pytest.raises(ClipError, match="background encode of .* failed: libx264 not found"):
        outputs.fetch_clip(session.client, result, tmp_path / "clip", 5, 64, 48, 16.0,
                           events=session.events if with_event else None)
    folder = sim.output_dir / out.subfolder
    assert sorted(p.name for p in folder.iterdir()) == [out.filename + ".failed"]
    assert not (tmp_path / "clip.mp4").exists()


def test_a_file_that_never_comes_times_out(session, sim):
    sim.engine.config.video_delay = 30
    try:
        _, result, _ = session.run(use_async_output(tiny(shipped_graph())))
        [out] = outputs.video_outputs(result)
        with pytest.raises(ClipError, match="still not complete after 0.4 s"):
            outputs.wait_for_file(session.client, out, 0.4, events=session.events)
        assert view(sim.url, out) == 404  # it gave up before the file came (30 s), not when it came
    finally:
        sim.engine.config.video_delay = DELAY


def test_a_restart_drops_the_pending_clip_and_its_part(session, sim):
    _, result, _ = session.run(use_async_output(tiny(shipped_graph())))
    [out] = outputs.video_outputs(result)
    sim.restart()
    folder = sim.output_dir / out.subfolder
    # the encode either renames its .part or deletes it: once the .part is gone the outcome is known
    wait_until(lambda: not (folder / (out.filename + ".part")).exists())
    assert list(folder.iterdir()) == [] and session.events.get(out) is None


def test_the_vhs_graph_still_works_on_a_server_with_the_pack(session, sim, tmp_path):
    _, result, _ = session.run(tiny(shipped_graph()))
    assert not outputs.is_async(result)
    assert outputs.fetch_clip(session.client, result, tmp_path / "clip", 5, 64, 48, 16.0).frames == 5


# -- the event parser ------------------------------------------------------------------------------------------
def test_parse_video_event_takes_only_well_formed_wanclip_video_messages():
    data = {"prompt_id": "p", "node": 90, "filename": "a_00001_.mp4", "subfolder": "v", "type": "output",
            "status": "done", "message": "", "frames": "81", "bytes": 10}
    event = outputs.parse_video_event(json.dumps({"type": "wanclip.video", "data": data}))
    assert event == outputs.VideoEvent("p", "90", "a_00001_.mp4", "v", "output", "done", "", 81, 10)
    for bad in ("not json", {"type": "executed", "data": data}, {"type": "wanclip.video", "data": []},
                {"type": "wanclip.video", "data": dict(data, status="running")},
                {"type": "wanclip.video", "data": dict(data, filename=None)}):
        assert outputs.parse_video_event(bad) is None
    assert outputs.parse_video_event({"type": "wanclip.video", "data": dict(data, frames="x")}).frames == 0
