"""wanclip's client side against transcripts recorded from a real ComfyUI 0.3.64 (skips without them).

The simulator is checked against the same samples in test_sim_conformance.py; this checks the
parsing the render loop relies on, so a client bug cannot hide behind a matching fake.
"""

from __future__ import annotations

import json

import pytest

from wanclip.comfy.events import (
    Executed,
    Executing,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    Progress,
    history_error,
    history_timestamps,
    parse,
)
from wanclip.comfy.outputs import check_safe, video_outputs


def entry(samples, name: str) -> dict:
    return next(iter(json.loads((samples / f"{name}_history_entry.json").read_text()).values()))


def transcript(samples, name: str) -> list:
    return [parse(json.dumps(m["msg"])) for m in json.loads((samples / f"{name}_ws_transcript.json").read_text())]


def test_cold_run_events_end_with_executing_null_after_success(samples):
    events = [e for e in transcript(samples, "run7_vhs_cold_final") if e is not None]
    pid = next(e.prompt_id for e in events if isinstance(e, ExecutionStart))
    kinds = [type(e) for e in events if e.prompt_id == pid]
    assert kinds.index(ExecutionStart) < kinds.index(Executed) < kinds.index(ExecutionSuccess)
    last = [e for e in events if isinstance(e, Executing)][-1]
    assert (last.node, last.prompt_id) == (None, pid)
    steps = [(e.node, e.value, e.max) for e in events if isinstance(e, Progress) and e.node in ("11", "12")]
    assert steps == [("11", 1, 2), ("11", 2, 2), ("12", 1, 2), ("12", 2, 2)]


def test_vhs_output_is_found_under_gifs_and_never_by_fullpath(samples):
    outputs = video_outputs(entry(samples, "run7_vhs_cold_final")["outputs"])
    assert [(o.node, o.filename, o.subfolder, o.kind) for o in outputs] == \
        [("15", "wan22_t2v_vhs_00007.mp4", "wanclip", "output")]
    check_safe(outputs[0])


def test_core_savevideo_output_is_found_under_images_with_animated(samples):
    outputs = video_outputs(entry(samples, "run4_core_createvideo_savevideo")["outputs"])
    assert [(o.filename, o.subfolder, o.extension) for o in outputs] == [("wan22_t2v_core_00001_.mp4", "wanclip", ".mp4")]


def test_wrong_vae_error_is_read_from_history_and_socket(samples):
    failure = history_error(entry(samples, "exec_error_wan22_vae"))
    assert isinstance(failure, ExecutionError) and failure.node_type == "VAEDecode"
    assert "to have 48 channels, but got 16 channels instead" in failure.exception_message
    assert not failure.exception_message.endswith("\n")
    socket = [e for e in transcript(samples, "exec_error_wan22_vae") if isinstance(e, ExecutionError)]
    assert [e.node_type for e in socket] == ["VAEDecode"]


def test_interrupted_prompt_is_read_from_history(samples):
    recorded = json.loads((samples / "interrupt_samples.json").read_text())
    key = next(k for k in recorded if k.startswith("GET /history/"))
    body = recorded[key]
    failure = history_error(next(iter(body.values())))
    assert isinstance(failure, ExecutionInterrupted)


def test_history_timestamps_are_the_servers(samples):
    start, success = history_timestamps(entry(samples, "run7_vhs_cold_final"))
    assert isinstance(start, int) and success - start > 60_000  # the cold run loaded the models


@pytest.mark.parametrize("name", ["run1_vhs_cold", "run3_vhs_identical_resubmit", "lora_empty", "interrupt"])
def test_every_recorded_frame_parses(samples, name):
    path = samples / f"{name}_ws_transcript.json"
    for message in json.loads(path.read_text()):
        parse(json.dumps(message["msg"]))  # must not raise on any real frame
