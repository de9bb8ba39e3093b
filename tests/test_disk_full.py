"""A full disk during a render or a stitch (issue 19, item 6).

On a 2 MB filesystem `wanclip render` kept submitting every queued shot after the first "no
space" (6 wasted renders) and said "0 MB free, 0 MB needed"; `stitch` printed a 40-line ffmpeg
command with the hint "check the clips play". Now the first full-disk write stops the render: no
new prompt, ours still queued removed, a running one left to finish (its clip waits on the
server); the message says how much room the rest needs and how much is free.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from helpers import ROOT, run_cli, wait_until, write_shots
from test_coordinator import A, Driver, Server, film, kinds, on_server, statuses
from wanclip.comfy.client import ComfyClient
from wanclip.comfy.events import parse
from wanclip.errors import LocalIOError
from wanclip.ledger import Ledger, load_ledger
from wanclip.render import messages as msg
from wanclip.render import shot as m

pytestmark = pytest.mark.timeout(120)


# -- the coordinator alone ---------------------------------------------------------------------------


def finished_on_server(d: Driver, server: Server, n: int) -> None:
    """Prompt ``p-n`` finished on the server (the next one starts); its shot asks for its clip."""
    pid = f"p-{n}"
    server.running = server.pending.pop(0) if server.pending else None
    d.step(msg.Heard(A, parse(f'{{"type":"executing","data":{{"node":null,"prompt_id":"{pid}"}}}}')))
    d.step(msg.Heard(A, (f"shot-{n}", m.HistoryRead({"outputs": {"80": {}}, "status": {"status_str": "success"}}))))
    if server.running:
        d.step(msg.Heard(A, parse(f'{{"type":"execution_start","data":{{"prompt_id":"{server.running}",'
                                  f'"timestamp":2}}}}')))


def test_a_clip_that_finds_the_disk_full_stops_submitting_removes_the_queued_and_leaves_the_running():
    d = Driver(film(5), Server(A))
    server = on_server(d)  # p-1 running, p-2 .. p-5 queued
    finished_on_server(d, server, 1)  # p-1 done, p-2 running
    assert server.running == "p-2"
    out = d.step(msg.Heard(A, ("shot-1", m.DownloadFailed("cannot write clips/01_shot-1.mp4: the disk is full",
                                                            no_space="/films/x/clips/01_shot-1.mp4"))))
    assert "Quiesce" in kinds(out)
    said = [t.data["message"] for t in d.told("warning")]
    assert "shot-1 finished on the server, but there is no room here for its clip" in said[0]
    assert "no more prompts are sent" in said[1]
    d.answer(out)
    posts = list(server.posts)
    d.run_until(lambda: d.film.finished, step=0.2)
    assert server.posts == posts  # nothing was posted after the full disk
    assert server.pending == [] and server.running == "p-2"  # queued ones removed, the running one left
    assert not [e for e in d.effects if isinstance(e, m.Interrupt)]
    # shot-1's clip waits on the server and shot-2 runs there: both keep their prompt id for the next run
    assert statuses(d.film) == [("running", "p-1"), ("running", "p-2"), ("pending", None), ("pending", None),
                                ("pending", None)]
    assert d.film.shots["shot-1"].phase == m.Phase.KEPT and d.film.stop.left == {"shot-2"}
    assert d.film.no_space.path == "/films/x/clips/01_shot-1.mp4"


def test_a_ledger_that_cannot_be_saved_stops_the_render_the_same_way():
    d = Driver(film(3, servers=(A, "http://gpu-b:8188")), Server(A), Server("http://gpu-b:8188"))
    d.turn(0.0)  # the first submission goes alone
    for item in d.heard_backlog():
        d.answer(d.step(item))
    out = d.step(msg.NoSpace("cannot write /films/x/ledger.json: the disk is full", "/films/x/ledger.json"))
    assert kinds(out) == ["warning", "Quiesce"]
    d.answer(out)
    d.run_until(lambda: d.film.finished, step=0.2)
    assert not [e for e in d.effects[d.effects.index(out[-1]):] if isinstance(e, m.Submit)]
    assert sum(len(s.posts) for s in d.servers.values()) == 1


# -- the numbers of a full disk are true ---------------------------------------------------------------


def test_a_clip_the_disk_has_no_room_for_says_its_size_and_the_room_not_zero_mb(sim, tmp_path, monkeypatch):
    """It said "0 MB free, 0 MB needed" for a 9 KB clip on a disk with 4 KB free."""
    (sim.output_dir / "clip.mp4").write_bytes(b"x" * 9000)
    monkeypatch.setattr("wanclip.comfy.client.shutil.disk_usage",
                        lambda path: shutil._ntuple_diskusage(2_000_000, 1_996_000, 4000))
    client = ComfyClient(sim.url)
    with pytest.raises(LocalIOError) as caught:
        client.download("clip.mp4", "", "output", tmp_path / "clips" / "01_a.mp4", limit=1 << 20)
    error = caught.value
    assert error.no_space and error.errno == errno.ENOSPC
    assert error.message.endswith("the disk is full (the clip is 9 KB, 4 KB free)")
    assert not list((tmp_path / "clips").iterdir())


# -- `wanclip render` on the simulator with its clips on a real full disk --------------------------------


def namespace_problem() -> str | None:
    """Why a user+mount namespace with a 2 MB tmpfs cannot be made here (None: it can)."""
    if sys.platform != "linux":
        return f"a tmpfs in a user+mount namespace needs Linux, this is {sys.platform}"
    if shutil.which("unshare") is None:
        return "no `unshare` (util-linux) on PATH"
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=2m tmpfs /mnt && echo ok"],
                           capture_output=True, text=True, timeout=30)
    if probe.stdout.strip() != "ok":
        return f"`unshare -rm` + `mount -t tmpfs` refused: {probe.stderr.strip() or probe.returncode}"
    return None


def film_of(folder: Path, shots: int) -> Path:
    lines = ["title: Full Disk", "width: 320", "height: 192", "frames: 17", "seed_base: 100", "shots:"]
    lines += [f"  - {{name: shot-{i}, prompt: 'shot number {i}'}}" for i in range(1, shots + 1)]
    return write_shots(folder, "\n".join(lines) + "\n")


def render_on_full_clips_disk(shots: Path, server: str, out: Path, saved: Path) -> subprocess.CompletedProcess:
    """`wanclip render` with ``out/clips`` on a 2 MB tmpfs filled to the last byte (in its own
    user+mount namespace); the clips folder is copied to ``saved`` before the namespace goes. The
    filler sits beside the clips on that disk, not in clips/: the film folder stays one wanclip may
    write (an empty clips/ in it)."""
    clips, disk = out / "clips", out.parent / "disk"
    clips.mkdir(parents=True)
    disk.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "400"}
    script = (f'mount -t tmpfs -o size=2m tmpfs "{disk}" && mkdir "{disk}/clips" '
              f'&& mount --bind "{disk}/clips" "{clips}" && (cat /dev/zero > "{disk}/filler" 2>/dev/null; true) '
              f'&& "{sys.executable}" -m wanclip render "{shots}" -s {server} --out "{out}" --no-stitch --json; '
              f'rc=$?; rm -f "{disk}/filler"; cp -a "{clips}/." "{saved}/"; exit $rc')
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=env,
                          timeout=100)


def test_render_on_a_full_disk_stops_at_the_first_no_space_and_says_what_the_rest_needs(sim, tmp_path):
    problem = namespace_problem()
    if problem:
        pytest.skip(problem)
    sim.faults.stall_prompt(2)  # the second prompt is still running when the first clip finds no room
    out, saved = tmp_path / "film", tmp_path / "saved"
    saved.mkdir()
    done = render_on_full_clips_disk(film_of(tmp_path, 5), sim.url, out, saved)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 1, done.stdout + done.stderr
    error = lines[-1]
    assert error["event"] == "error" and error["exit_code"] == 1
    assert error["error"].startswith(f"no space left on the disk of {out / 'clips'}: 5 shots not rendered need about ")
    assert " KB free); no more prompts were sent" in error["error"]
    assert "shot-1 finished on the server, its clip not saved here" in error["error"]
    assert f"shot-2 is left to finish on {sim.url}" in error["error"]
    assert "0 MB needed" not in done.stdout
    # the server ran the first prompt and is running the second; the three queued were removed unrun
    ledger = load_ledger(out)
    ran = [e["prompt_id"] for e in sim.log()]
    assert ran == [ledger.shot("shot-1").prompt_id, ledger.shot("shot-2").prompt_id]
    assert requests.get(sim.url + "/queue", timeout=5).json()["queue_pending"] == []
    # the ledger is whole; what is on the server keeps its prompt id, the rest is pending
    assert [s.status for s in ledger.shots] == ["running", "running", "pending", "pending", "pending"]
    assert not list(out.glob("*.part")) and not list(out.glob(".ledger.json.*")) and not list(saved.glob("*.part"))
    # free the room (the tmpfs is gone with its namespace): the rerun fetches shot-1 without rendering it
    requests.post(sim.url + "/interrupt", json={}, timeout=5)
    wait_until(lambda: not requests.get(sim.url + "/queue", timeout=5).json()["queue_running"], timeout=60)
    rerun = run_cli("render", tmp_path / "film.yaml", "-s", sim.url, "--out", out, "--no-stitch", "--json")
    after = load_ledger(out)
    assert [s.status for s in after.shots] == ["done", "failed", "done", "done", "done"], rerun.output
    assert "interrupted" in after.shot("shot-2").error["message"]  # by this test, to free the simulator
    assert [e["prompt_id"] for e in sim.log()].count(ledger.shot("shot-1").prompt_id) == 1  # fetched, not rendered


# -- a ledger that cannot be written, in process ---------------------------------------------------------


def test_a_ledger_that_finds_the_disk_full_posts_nothing_more_and_stays_whole(sim, tmp_path, monkeypatch):
    from test_render import tiny_film
    from wanclip.planning.plan import plan_film
    from wanclip.render.loop import RenderOptions, render_film

    sim.faults.stall_prompt(1)
    real_save, saves = Ledger.save, []

    def save(self):
        saves.append(self.to_dict())
        if any(s["status"] == "running" for s in self.to_dict()["shots"]):  # from the first start on: full
            raise LocalIOError.from_os(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), self.path)
        real_save(self)

    monkeypatch.setattr(Ledger, "save", save)
    plan = plan_film(tiny_film(tmp_path, 4), out=tmp_path / "out")
    with pytest.raises(LocalIOError) as caught:
        render_film(plan, RenderOptions(servers=[sim.url], stitch=False, cancel_wait=30))
    error = caught.value
    assert error.exit_code == 1 and error.message.startswith(f"no space left on the disk of {tmp_path / 'out'}: ")
    assert "4 shots not rendered need about " in error.message and "shot-1 is left to finish" in error.message
    on_disk = json.loads((tmp_path / "out" / "ledger.json").read_text())  # the last one written whole
    first = on_disk["shots"][0]
    assert first["status"] == "queued" and first["prompt_id"]
    assert {s["status"] for s in on_disk["shots"][1:]} <= {"queued", "pending"}
    assert not list((tmp_path / "out").glob(".ledger.json.*"))
    assert requests.get(sim.url + "/queue", timeout=5).json()["queue_pending"] == []
    assert [e["prompt_id"] for e in sim.log()] == [first["prompt_id"]]  # shot-1 only; the queued never ran
    requests.post(sim.url + "/interrupt", json={}, timeout=5)


# -- `wanclip stitch` on a full disk ---------------------------------------------------------------------


def test_ffmpeg_saying_no_space_is_a_full_disk_not_a_command_dump():
    from wanclip import media

    said = b"[out#0/mp4 @ 0x1] Error writing trailer: No space left on device\nConversion failed!\n"
    error = media.ffmpeg_failed(["ffmpeg", "-i", "a.mp4", "film.mp4.part"], said, "writing film.mp4", 1)
    assert error.errno == errno.ENOSPC and "command:" not in error.message and "check the clips" not in error.hint
    assert media.ffmpeg_failed(["ffmpeg"], b"Conversion failed!", "writing film.mp4", 256 - errno.ENOSPC).errno \
        == errno.ENOSPC  # ffmpeg exits with AVERROR(ENOSPC)
    assert media.ffmpeg_failed(["ffmpeg"], b"Invalid data found", "writing film.mp4", 1).errno is None


def test_stitch_on_a_full_disk_names_the_cause_and_the_room_and_leaves_no_part(tmp_path):
    """It printed a 40-line ffmpeg command with the hint "check the clips play"."""
    from test_media import make_clip

    problem = namespace_problem()
    if problem:
        pytest.skip(problem)
    clips = [make_clip(tmp_path / f"{i}.mp4", frames=48, size="320x192") for i in range(3)]
    need = sum(c.stat().st_size for c in clips)
    disk = tmp_path / "disk"
    disk.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "400"}
    script = (f'mount -t tmpfs -o size=2m tmpfs "{disk}" && head -c {2097152 - 8192} /dev/zero > "{disk}/filler" '
              f'&& "{sys.executable}" -m wanclip stitch {" ".join(map(str, clips))} -o "{disk}/film.mp4" '
              f'--no-contact-sheet; rc=$?; ls -A "{disk}" > "{tmp_path}/left.txt"; exit $rc')
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=env,
                          timeout=100)
    assert done.returncode == 1, done.stdout + done.stderr
    text = " ".join(done.stderr.split())
    assert text.startswith(f"error: cannot write the film {disk / 'film.mp4'}: the disk is full (no space left "
                           f"on the disk of {disk}): the film needs about ")
    about = re.search(r"the film needs about (\d+) KB, \d+ KB free", text)
    assert about and int(about.group(1)) == round(need / 1e3)  # the clips it joins
    assert "command:" not in text and "ffmpeg said" not in text and "check the clips" not in text
    assert "then stitch again" in text
    assert (tmp_path / "left.txt").read_text().split() == ["filler"]  # no film.mp4.part, no list file


def test_a_ledger_the_full_disk_cannot_take_stays_the_last_one_written_whole(tmp_path):
    """The ledger is written .part then renamed: when even that finds no room, the file on disk is
    the last whole one, and no .part is left behind."""
    problem = namespace_problem()
    if problem:
        pytest.skip(problem)
    disk = tmp_path / "disk"
    disk.mkdir()
    code = ("import json, sys\n"
            "from wanclip.errors import LocalIOError\n"
            "from wanclip.files import atomic_write_text\n"
            f"path = {str(disk / 'ledger.json')!r}\n"
            "atomic_write_text(path, json.dumps({'shots': ['whole']}))\n"
            "try:\n"
            f"    with open({str(disk / 'filler')!r}, 'wb') as fh:\n"
            "        fh.write(b'0' * 2_200_000)\n"
            "except OSError:\n"
            "    pass\n"
            "try:\n"
            "    atomic_write_text(path, json.dumps({'shots': ['x' * 100_000]}))\n"
            "except LocalIOError as exc:\n"
            "    print('no_space' if exc.no_space else exc.message)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    script = (f'mount -t tmpfs -o size=2m tmpfs "{disk}" && "{sys.executable}" -c "$CODE"; rc=$?; '
              f'cp "{disk}/ledger.json" "{tmp_path}/kept.json"; ls -A "{disk}" > "{tmp_path}/left.txt"; exit $rc')
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                          env={**env, "CODE": code}, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "no_space", done.stdout + done.stderr
    assert json.loads((tmp_path / "kept.json").read_text()) == {"shots": ["whole"]}
    assert sorted((tmp_path / "left.txt").read_text().split()) == ["filler", "ledger.json"]


def test_a_clip_the_server_never_hands_over_fails_its_shot_after_the_timeout_instead_of_retrying_for_ever():
    """A server that answers everything but the clip (a /view that keeps failing) was retried with
    backoff for ever: the render never ended. After the shot timeout of retries the shot fails."""
    d = Driver(film(1), Server(A))
    server = on_server(d)
    finished_on_server(d, server, 1)
    limit = d.film.rules.shot_timeout
    for at in range(0, int(limit) + 100, 15):
        d.step(msg.Heard(A, ("shot-1", m.DownloadFailed("502 Bad Gateway", retry=True))), at=float(at))
        if d.film.shots["shot-1"].phase == m.Phase.FAILED:
            break
    assert d.film.shots["shot-1"].phase == m.Phase.FAILED
    assert limit < d.now <= limit + 15
    error = d.film.shots["shot-1"].record.error["message"]
    assert error.startswith(f"the clip could not be downloaded for {d.now:.0f} s (502 Bad Gateway)"), error
