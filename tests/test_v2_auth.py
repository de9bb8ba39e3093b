"""The Comfy API key against the real comfy-api-proxy started with --token: the key from
COMFY_API_KEY goes as a Bearer header; a missing or refused key stops before any work (exit 2),
naming the variable and never showing the key."""

from __future__ import annotations

import json

import pytest

from helpers import run_cli, write_shots
from wanclip.ledger import load_ledger

TOKEN = "sk-test-0123456789abcdef"


@pytest.fixture(scope="module")
def guarded(sim_server, tmp_path_factory):
    from conftest import Proxy

    folder = tmp_path_factory.mktemp("v2-guarded")
    proxy = Proxy(sim_server.url, folder / "state", folder / "proxy.log", token=TOKEN)
    proxy.start()
    yield proxy
    proxy.stop()


def film(folder):
    return write_shots(folder, "title: Key\nwidth: 64\nheight: 64\nframes: 5\nshots:\n"
                               "  - {name: one, prompt: 'one shot'}\n")


def test_the_key_from_the_environment_renders_and_is_never_stored(sim, guarded, tmp_path, monkeypatch):
    monkeypatch.setenv("COMFY_API_KEY", TOKEN)
    out = tmp_path / "out"
    result = run_cli("render", film(tmp_path), "-s", guarded.url, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    assert load_ledger(out).shots[0].backend == "v2"
    assert TOKEN not in result.output
    assert not [p for p in out.rglob("*") if p.is_file() and p.suffix in (".json", ".html", ".log", ".txt")
                and TOKEN in p.read_text(errors="replace")]


def test_doctor_fails_the_key_check_and_names_the_variable(guarded, monkeypatch):
    monkeypatch.setenv("COMFY_API_KEY", "sk-wrong-key-42")
    result = run_cli("doctor", "-s", guarded.url, "--json")
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert not checks["API key"]["ok"] and "COMFY_API_KEY" in checks["API key"]["fix"]
    assert "sk-wrong-key-42" not in result.output
