"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT.parent / "shared" / "reference"
SAMPLES = REFERENCE / "comfyui-samples"


@pytest.fixture(autouse=True)
def wanclip_home(tmp_path, monkeypatch):
    """All of wanclip's own state goes under the test's temporary folder."""
    home = tmp_path / "wanclip-home"
    monkeypatch.setenv("WANCLIP_HOME", str(home))
    for name in ("WANCLIP_SERVER", "WANCLIP_HEADERS", "WANCLIP_FFMPEG", "HF_ENDPOINT", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def reference() -> Path:
    """The shared reference folder; tests that need it skip when it is absent."""
    if not REFERENCE.is_dir():
        pytest.skip("../shared/reference is not present")
    return REFERENCE


@pytest.fixture
def samples(reference) -> Path:
    return reference / "comfyui-samples"
