"""One exception tree that carries data: who refused a prompt, whose disk is full, and a follow-up
request that reaches the server the way the render did (its headers, its credentials)."""

from __future__ import annotations

import base64
import errno
import json
from pathlib import Path

import pytest

from authproxy import AuthProxy
from helpers import ROOT, load, run_cli, write_shots
from wanclip.comfy.client import ComfyClient
from wanclip.errors import LocalIOError, PromptRejected, ServerError, UsageError, WanclipError


def typo_film(folder: Path) -> Path:
    graph = load(ROOT / "workflows" / "wan22_t2v_lightx2v_4step_core.json")
    graph["81"]["inputs"]["sampler_name"] = "eulr"  # preflight does not check samplers: the server refuses it
    (folder / "typo.json").write_text(json.dumps(graph))
    return write_shots(folder, "title: Typo\nwidth: 64\nheight: 64\nframes: 5\nseed_base: 100\n"
                               "workflow: typo.json\nshots:\n  - {name: shot-1, prompt: 'one'}\n")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("sim_profile", ["0.38"], indirect=True)
@pytest.mark.parametrize("how", ["header", "credentials"])
def test_the_allowed_values_after_a_400_are_asked_with_the_renders_headers_and_credentials(sim_profile, tmp_path,
                                                                                           how):
    """Behind an authenticating proxy the 'allowed' column came out empty: the look-up went out bare."""
    name, value = ("X-Api-Key", "s3cret") if how == "header" else ("Authorization", basic("alice", "pw"))
    with AuthProxy(sim_profile.url, name, value) as proxy:
        server = proxy.url if how == "header" else proxy.url.replace("://", "://alice:pw@")
        extra = ["-H", f"{name}: {value}"] if how == "header" else []
        result = run_cli("render", typo_film(tmp_path), "--server", server, *extra, "--out", tmp_path / "out",
                         env={"COLUMNS": "250"})
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "euler_ancestral" in text and "did you mean 'euler'?" in text  # from /object_info/KSamplerAdvanced
    assert any(path.startswith("/object_info/KSamplerAdvanced") and ok for path, ok in proxy.seen), proxy.seen
    assert all(ok for _, ok in proxy.seen), proxy.seen
    assert "s3cret" not in result.output and "alice" not in result.output and "pw@" not in result.output


@pytest.mark.parametrize("sim_profile", ["0.38"], indirect=True)
def test_a_refused_prompt_names_the_server_that_refused_it_without_credentials(sim_profile, tmp_path):
    from wanclip import make_film, plan_film

    with AuthProxy(sim_profile.url, "Authorization", basic("alice", "pw")) as proxy:
        with pytest.raises(PromptRejected) as refused:
            make_film(plan_film(typo_film(tmp_path), out=tmp_path / "out"),
                      servers=[proxy.url.replace("://", "://alice:pw@")])
    assert refused.value.server == proxy.url and refused.value.shot == "shot-1"
    assert "sampler_name" in json.dumps(refused.value.node_errors)


def test_a_full_disk_is_a_local_error_not_the_servers(tmp_path, sim, tiny_workflow):
    """The server did nothing wrong when our disk is full: LocalIOError, with the file and errno."""
    with ComfyClient(sim.url) as client:
        prompt_id = client.submit(tiny_workflow(), "c1")["prompt_id"]
        from helpers import wait_until

        wait_until(lambda: client.history(prompt_id) is not None, tries=3000)
        [video] = [f for out in client.history(prompt_id)["outputs"].values() for f in out.get("gifs", [])
                   + out.get("images", []) + out.get("videos", [])][:1]
        dest = tmp_path / "clip.mp4"
        (tmp_path / "clip.mp4.part").symlink_to("/dev/full")  # every write there fails with ENOSPC
        with pytest.raises(LocalIOError) as full:
            client.download(video["filename"], video.get("subfolder", ""), video.get("type", "output"), dest,
                            limit=10**8)
    assert full.value.errno == errno.ENOSPC and full.value.path == str(dest)
    assert not isinstance(full.value, ServerError) and "free some space" in full.value.hint


def test_a_malformed_header_or_url_is_a_usage_error_with_exit_2():
    from wanclip.comfy.client import parse_header, split_credentials

    for bad in (lambda: parse_header("SECRETTOKEN"), lambda: split_credentials("alice:pw@host:8188")):
        with pytest.raises(UsageError) as err:
            bad()
        assert err.value.exit_code == 2 and not isinstance(err.value, ServerError)
        assert isinstance(err.value, WanclipError) and "SECRETTOKEN" not in str(err.value)


def test_a_file_we_cannot_write_is_a_local_error_that_is_still_an_oserror(tmp_path):
    from wanclip.files import atomic_write_text

    (tmp_path / "not-a-folder").write_text("a file where the film folder should be")
    target = tmp_path / "not-a-folder" / "ledger.json"
    with pytest.raises(LocalIOError) as refused:
        atomic_write_text(target, "{}")
    assert refused.value.path == str(target) and refused.value.exit_code == 1
    assert str(refused.value).startswith(f"cannot write {target}: ")
    assert isinstance(refused.value, OSError)  # a best-effort cache's `except OSError` still holds


def test_a_full_disk_says_so_and_how_to_fix_it():
    error = LocalIOError.from_os(OSError(errno.ENOSPC, "No space left on device"), "/films/x/clips/a.mp4")
    assert error.message == "cannot write /films/x/clips/a.mp4: the disk is full (No space left on device)"
    assert error.hint == "free some space on the disk of /films/x/clips and rerun: finished shots are kept"
    assert error.errno == errno.ENOSPC


def test_doctor_sends_the_header_with_every_request(sim):
    with AuthProxy(sim.url, "X-Api-Key", "s3cret") as proxy:
        result = run_cli("doctor", "--server", proxy.url, "-H", "X-Api-Key: s3cret", "--json")
        bare = run_cli("doctor", "--server", proxy.url, "--json")
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["server"]["ok"] and checks["nodes"]["ok"] and checks["vae"]["ok"], result.output
    assert bare.exit_code == 1 and not json.loads(bare.stdout)["ok"]  # the proxy does refuse a bare request
    assert "s3cret" not in result.output
