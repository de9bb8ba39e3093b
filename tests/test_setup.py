"""`wanclip setup` against a loopback fake hub: small files under the real repo ids and paths."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fakehub import FakeHub
from helpers import help_words
from wanclip.cli.app import app
from wanclip.errors import AssetError
from wanclip.files import sha256_file
from wanclip.models import install
from wanclip.models import manifest as manifest_module
from wanclip.models.install import Source
from wanclip.models.manifest import load_manifest
from wanclip.models.verify import VAE_WARNING

SIZE = 300_000  # per file: several write chunks of the fake hub, small enough to stay fast


@pytest.fixture
def payloads():
    """Six distinct small payloads keyed by the built-in manifest's entries."""
    rng = random.Random(6)
    return {item.dest: rng.randbytes(SIZE + i) for i, item in enumerate(load_manifest())}


@pytest.fixture
def manifest(tmp_path, payloads):
    """The built-in manifest with sizes and sha256 of the small payloads."""
    entries = []
    for item in load_manifest():
        data = payloads[item.dest]
        entries.append(item.model_dump() | {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    path = tmp_path / "test-models.yaml"
    path.write_text(yaml.safe_dump({"files": entries}))
    return path


@pytest.fixture(params=[False, True], ids=["inline", "cdn-redirect"])
def hub(request, payloads):
    hub = FakeHub(redirect=request.param)
    for item in load_manifest():
        hub.add(item.repo, item.path, payloads[item.dest])
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture
def inline_hub(payloads):
    hub = FakeHub()
    for item in load_manifest():
        hub.add(item.repo, item.path, payloads[item.dest])
    yield hub.start()
    hub.stop()


def setup(*args):
    return CliRunner().invoke(app, ["setup", *map(str, args)])


def models_of(models):
    return sorted(str(p.relative_to(models)) for p in models.rglob("*") if p.is_file())


HIGH = "split_files/diffusion_models/wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors"
HIGH_DEST = "diffusion_models/wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors"
ALL_DESTS = sorted(item.dest for item in load_manifest())


def test_built_in_manifest_lists_the_six_files_of_38_gb():
    items = load_manifest()
    assert len(items) == 6
    assert sum(item.bytes for item in items) == 38_031_524_327
    assert {item.folder for item in items} == {"diffusion_models", "text_encoders", "vae", "loras"}


def test_fresh_models_folder_is_filled_in_parallel_and_verified(tmp_path, hub, manifest, payloads):
    models = tmp_path / "models"
    result = setup("--endpoint", hub.url, "--models-dir", models, "--manifest", manifest)
    assert result.exit_code == 0, result.output
    assert models_of(models) == ALL_DESTS
    for dest, data in payloads.items():
        assert (models / dest).read_bytes() == data
    assert sum(hub.served.values()) == sum(len(d) for d in payloads.values())
    assert not hub.cdn_saw_authorization


def test_hf_token_goes_to_the_hub_never_to_the_cdn_nor_the_output(tmp_path, hub, manifest, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_value")
    result = setup("--endpoint", hub.url, "--models-dir", tmp_path / "m", "--manifest", manifest, "--json")
    assert result.exit_code == 0
    assert "hf_secret_token_value" not in result.output
    assert not hub.cdn_saw_authorization


def test_rerun_skips_verified_files_without_a_request(tmp_path, inline_hub, manifest):
    models = tmp_path / "models"
    assert setup("--endpoint", inline_hub.url, "--models-dir", models, "--manifest", manifest).exit_code == 0
    inline_hub.requests.clear()
    result = setup("--endpoint", inline_hub.url, "--models-dir", models, "--manifest", manifest, "--json")
    assert result.exit_code == 0
    assert inline_hub.requests == []
    final = json.loads(result.output.splitlines()[-1])
    assert [f["status"] for f in final["files"]] == ["skipped"] * 6
    assert final["fetched_bytes"] == 0


def test_connection_cut_at_half_then_rerun_fetches_only_the_missing_half(tmp_path, inline_hub, manifest,
                                                                        payloads):
    models = tmp_path / "models"
    size = len(payloads[HIGH_DEST])
    inline_hub.fault(HIGH, cut_at=size // 2)  # every response for this file breaks at 50 %
    first = setup("--endpoint", inline_hub.url, "--models-dir", models, "--manifest", manifest)
    assert first.exit_code == 1
    assert "kept breaking off" in first.output
    assert (models / (HIGH_DEST + ".part")).stat().st_size == size // 2
    assert not (models / HIGH_DEST).exists()

    inline_hub.faults.clear()
    second = setup("--endpoint", inline_hub.url, "--models-dir", models, "--manifest", manifest)
    assert second.exit_code == 0, second.output
    assert (models / HIGH_DEST).read_bytes() == payloads[HIGH_DEST]
    assert inline_hub.served[HIGH] == size  # half, then the other half: nothing fetched twice
    assert ("GET", f"/Comfy-Org/Wan_2.2_ComfyUI_Repackaged/resolve/main/{HIGH}",
            f"bytes={size // 2}-") in inline_hub.requests


def test_one_broken_connection_is_resumed_within_the_same_run(tmp_path, inline_hub, manifest, payloads):
    models = tmp_path / "models"
    inline_hub.fault(HIGH, cut_at=100_000, cuts=1)
    result = setup("--endpoint", inline_hub.url, "--models-dir", models, "--manifest", manifest)
    assert result.exit_code == 0, result.output
    assert (models / HIGH_DEST).read_bytes() == payloads[HIGH_DEST]
    assert inline_hub.served[HIGH] == len(payloads[HIGH_DEST])


def test_wrong_bytes_of_the_right_size_are_never_installed(tmp_path, inline_hub, manifest):
    models = tmp_path / "models"
    inline_hub.fault(HIGH, wrong_bytes=True)
    result = setup("--endpoint", inline_hub.url, "--models-dir", models, "--manifest", manifest)
    assert result.exit_code == 1
    assert "does not match the manifest" in result.output
    assert "partial file was deleted" in result.output
    assert not (models / HIGH_DEST).exists()
    assert not (models / (HIGH_DEST + ".part")).exists()
    assert len(models_of(models)) == 5  # the other files are installed


@pytest.mark.parametrize(("error", "words"), [
    ("missing", ["Comfy-Org/Wan_2.2_ComfyUI_Repackaged/" + HIGH, "moved or renamed upstream"]),
    ("unauthorized", ["HTTP 401", "HF_TOKEN"]),
    ("gated", ["is gated", "HF_TOKEN"]),
])
def test_hub_refusals_name_the_file_and_the_fix(tmp_path, inline_hub, manifest, error, words):
    inline_hub.fault(HIGH, error=error)
    result = setup("--endpoint", inline_hub.url, "--models-dir", tmp_path / "m", "--manifest", manifest, "--json")
    assert result.exit_code == 1
    final = json.loads(result.output.splitlines()[-1])
    failed = [f for f in final["files"] if f["status"] == "failed"]
    assert [f["dest"] for f in failed] == [HIGH_DEST]
    text = failed[0]["detail"] + " " + failed[0]["fix"]
    for word in words:
        assert word in text


def test_unreachable_mirror_says_so(tmp_path, manifest):
    import socket
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = setup("--endpoint", f"http://127.0.0.1:{port}", "--models-dir", tmp_path / "m", "--manifest",
                   manifest, "--json")
    assert result.exit_code == 1
    final = json.loads(result.output.splitlines()[-1])
    assert {f["status"] for f in final["files"]} == {"failed"}
    assert f"cannot reach http://127.0.0.1:{port}" in final["files"][0]["detail"]


@pytest.mark.parametrize("how", ["--endpoint", "HF_ENDPOINT"])
def test_a_mirrors_password_is_never_printed(tmp_path, manifest, monkeypatch, how):
    import socket
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://someone:S3CRET-pass@127.0.0.1:{port}"
    args = ["--models-dir", tmp_path / "m", "--manifest", manifest]
    if how == "HF_ENDPOINT":
        monkeypatch.setenv("HF_ENDPOINT", url)
    else:
        args = ["--endpoint", url, *args]
    for extra in ([], ["--json"]):
        result = setup(*args, *extra)
        assert result.exit_code == 1
        assert "S3CRET" not in result.output and f"cannot reach http://***@127.0.0.1:{port}" in result.output


def test_not_enough_disk_is_refused_before_any_download(tmp_path, inline_hub, manifest):
    items = load_manifest(manifest)
    source = Source(endpoint=inline_hub.url)
    with pytest.raises(AssetError) as caught:
        install.install(items, tmp_path / "m", source, disk_free=lambda path: 1_000_000)
    assert caught.value.message.endswith("1.80 MB needed, 1.00 MB free (0.80 MB short)")
    assert inline_hub.requests == []


def test_from_dir_installs_without_network_and_verifies(tmp_path, manifest, payloads):
    nas = tmp_path / "nas"
    for item in load_manifest():
        (nas / item.path).parent.mkdir(parents=True, exist_ok=True)
        (nas / item.path).write_bytes(payloads[item.dest])
    models = tmp_path / "models"
    result = setup("--from-dir", nas, "--models-dir", models, "--manifest", manifest)
    assert result.exit_code == 0, result.output
    assert models_of(models) == ALL_DESTS
    assert (models / HIGH_DEST).read_bytes() == payloads[HIGH_DEST]


def test_from_dir_with_a_corrupt_file_installs_nothing_for_it(tmp_path, manifest, payloads):
    nas = tmp_path / "nas"
    for dest, data in payloads.items():
        (nas / dest).parent.mkdir(parents=True, exist_ok=True)
        (nas / dest).write_bytes(data)
    (nas / HIGH_DEST).write_bytes(b"x" * len(payloads[HIGH_DEST]))
    models = tmp_path / "models"
    result = setup("--from-dir", nas, "--models-dir", models, "--manifest", manifest)
    assert result.exit_code == 1
    assert not (models / HIGH_DEST).exists()
    assert (nas / HIGH_DEST).exists()  # the source is never touched
    assert len(models_of(models)) == 5


def test_check_reports_missing_and_wrong_files_and_exits_1(tmp_path, inline_hub, manifest):
    models = tmp_path / "models"
    assert setup("--endpoint", inline_hub.url, "--models-dir", models, "--manifest", manifest).exit_code == 0
    (models / HIGH_DEST).unlink()
    lora = models / "loras/wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors"
    data = bytearray(lora.read_bytes())
    data[0] ^= 1
    lora.write_bytes(bytes(data))
    os.utime(lora, ns=(1, 1))  # a changed file: its record no longer applies
    inline_hub.requests.clear()
    result = setup("--check", "--models-dir", models, "--manifest", manifest, "--json")
    assert result.exit_code == 1
    statuses = {f["dest"]: f["status"] for f in json.loads(result.output)["files"]}
    assert statuses[HIGH_DEST] == "missing"
    assert statuses["loras/wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors"] == "wrong"
    assert sorted(statuses.values()).count("ok") == 4
    assert inline_hub.requests == []


def test_check_passes_on_a_complete_folder(tmp_path, inline_hub, manifest):
    models = tmp_path / "models"
    assert setup("--endpoint", inline_hub.url, "--models-dir", models, "--manifest", manifest).exit_code == 0
    result = setup("--check", "--models-dir", models, "--manifest", manifest)
    assert result.exit_code == 0
    assert "missing" not in result.output


def test_wan22_vae_is_left_alone_with_a_warning(tmp_path, inline_hub, manifest):
    models = tmp_path / "models"
    (models / "vae").mkdir(parents=True)
    (models / "vae/wan2.2_vae.safetensors").write_bytes(b"48 channels")
    result = setup("--endpoint", inline_hub.url, "--models-dir", models, "--manifest", manifest, "--json")
    assert result.exit_code == 0
    final = json.loads(result.output.splitlines()[-1])
    assert final["warnings"] == [VAE_WARNING.format(path="models/vae/wan2.2_vae.safetensors")]
    assert (models / "vae/wan2.2_vae.safetensors").read_bytes() == b"48 channels"
    assert (models / "vae/wan_2.1_vae.safetensors").exists()


def test_comfy_dir_puts_files_under_its_models_folder(tmp_path, inline_hub, manifest):
    comfy = tmp_path / "ComfyUI"
    comfy.mkdir()
    (comfy / "main.py").write_text("# ComfyUI\n")
    result = setup("--endpoint", inline_hub.url, "--comfy-dir", comfy, "--manifest", manifest)
    assert result.exit_code == 0
    assert models_of(comfy / "models") == ALL_DESTS


def test_bad_input_exits_2(tmp_path):
    assert setup("--check").exit_code == 2  # no folder given
    bad = tmp_path / "bad.yaml"
    bad.write_text("files:\n  - repo: a/b\n    path: x\n    dest: ../escape\n    bytes: 1\n    sha256: abc\n")
    result = setup("--check", "--models-dir", tmp_path, "--manifest", bad)
    assert result.exit_code == 2
    assert "not a valid manifest" in result.output


# --- --comfy-dir must be a ComfyUI folder ------------------------------------------------------

def test_comfy_dir_with_models_and_custom_nodes_but_no_main_py_is_accepted(tmp_path, inline_hub, manifest):
    comfy = tmp_path / "portable" / "ComfyUI"
    (comfy / "models").mkdir(parents=True)
    (comfy / "custom_nodes").mkdir()
    result = setup("--endpoint", inline_hub.url, "--comfy-dir", comfy, "--manifest", manifest)
    assert result.exit_code == 0, result.output
    assert models_of(comfy / "models") == ALL_DESTS


def test_comfy_dir_that_is_the_models_folder_is_refused_pointing_at_models_dir(tmp_path, inline_hub, manifest):
    models = tmp_path / "ComfyUI" / "models"
    for folder in ("diffusion_models", "vae", "loras"):
        (models / folder).mkdir(parents=True)
    result = setup("--endpoint", inline_hub.url, "--comfy-dir", models, "--manifest", manifest)
    assert result.exit_code == 2
    assert f"{models} is not a ComfyUI folder" in result.output
    assert f"this looks like the models folder itself: use --models-dir {models}" in result.output
    assert not (models / "models").exists()
    assert inline_hub.requests == []


def test_comfy_dir_that_is_some_other_folder_is_refused(tmp_path, inline_hub, manifest):
    folder = tmp_path / "Downloads"
    folder.mkdir()
    result = setup("--endpoint", inline_hub.url, "--comfy-dir", folder, "--manifest", manifest)
    assert result.exit_code == 2
    assert f"{folder} is not a ComfyUI folder (no main.py, nor models/ and custom_nodes/)" in result.output
    assert "--models-dir" in result.output
    assert list(folder.iterdir()) == []


# --- full disks and read-only folders -----------------------------------------------------------

class FullDisk:
    """An ``open`` for the part files whose writes fail with ENOSPC once ``room`` bytes are written."""

    def __init__(self, room: int):
        self.room = room

    def __call__(self, path, mode="rb"):
        fh = open(path, mode)  # noqa: SIM115 - handed to the caller, who closes it
        if "r" in mode:
            return fh
        return _Filling(fh, self)


class _Filling(io.RawIOBase):
    def __init__(self, fh, disk: FullDisk):
        self.fh, self.disk = fh, disk

    def write(self, block) -> int:
        if len(block) > self.disk.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.disk.room -= len(block)
        return self.fh.write(block)

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self.fh.close()
        super().close()


def test_a_disk_that_fills_up_mid_download_stops_setup_with_what_it_needs(tmp_path, inline_hub, manifest):
    models = tmp_path / "models"
    items = load_manifest(manifest)
    with pytest.raises(AssetError) as caught:
        install.install(items, models, Source(endpoint=inline_hub.url), workers=1,
                       open_file=FullDisk(room=4 * SIZE + 100), disk_free=lambda path: 123_000_000)
    error = caught.value
    assert error.exit_code == 1
    assert error.message.startswith(f"the disk under {models} is full")
    assert "123.00 MB free" in error.message
    finished = [f for f in ALL_DESTS if (models / f).exists()]
    unfinished = sum(item.bytes for item in items if item.dest not in finished)
    kept = sum(p.stat().st_size for p in models.rglob("*.part"))
    assert f"{install._gb(unfinished - kept)} more are needed" in error.message
    assert "partial downloads (.part) are kept" in error.hint
    for item in items:  # a final name only ever holds the manifest's bytes
        target = models / item.dest
        assert not target.exists() or sha256_file(target) == item.sha256
    assert len(finished) < 6


@pytest.fixture
def other_filesystem(tmp_path):
    """A folder on another filesystem than tmp_path, where hard links fail and setup copies."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("no second filesystem to copy across")
    with tempfile.TemporaryDirectory(dir=shm) as folder:
        yield Path(folder)


def test_a_disk_that_fills_up_during_a_copy_from_dir_leaves_no_partial_copy(tmp_path, manifest, payloads,
                                                                          other_filesystem):
    nas = other_filesystem
    for dest, data in payloads.items():
        (nas / dest).parent.mkdir(parents=True, exist_ok=True)
        (nas / dest).write_bytes(data)
    models = tmp_path / "models"
    items = load_manifest(manifest)
    with pytest.raises(AssetError, match=f"the disk under {models} is full"):
        install.install(items, models, Source(from_dir=nas), workers=1, open_file=FullDisk(room=SIZE // 2))
    assert list(models.rglob("*.part")) == []
    assert models_of(models) == []


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_a_read_only_models_folder_is_refused_before_any_download(tmp_path, inline_hub, manifest, code):
    models = tmp_path / "models"

    def read_only(path, mode="rb"):
        if "r" not in mode:
            raise OSError(code, os.strerror(code), str(path))
        return open(path, mode)  # noqa: SIM115

    with pytest.raises(AssetError) as caught:
        install.install(load_manifest(manifest), models, Source(endpoint=inline_hub.url),
                       open_file=read_only)
    assert caught.value.exit_code == 2
    assert f"cannot write to {models}" in caught.value.message
    assert os.strerror(code) in caught.value.message
    assert "--models-dir" in caught.value.hint
    assert inline_hub.requests == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0555")
def test_a_chmod_0555_models_folder_is_refused_before_any_download(tmp_path, inline_hub, manifest):
    models = tmp_path / "models"
    models.mkdir()
    models.chmod(0o555)
    try:
        result = setup("--endpoint", inline_hub.url, "--models-dir", models, "--manifest", manifest)
    finally:
        models.chmod(0o755)
    assert result.exit_code == 2
    assert f"cannot write to {models}" in result.output
    assert inline_hub.requests == []


def test_a_models_dir_under_a_file_is_a_message_not_a_traceback(tmp_path, inline_hub, manifest):
    (tmp_path / "notes.txt").write_text("a file")
    models = tmp_path / "notes.txt" / "models"
    result = setup("--endpoint", inline_hub.url, "--models-dir", models, "--manifest", manifest)
    assert result.exit_code == 2, result.output
    assert f"cannot write to {models}" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_read_only_wanclip_home_does_not_fail_an_install(tmp_path, inline_hub, manifest, wanclip_home):
    wanclip_home.parent.mkdir(parents=True, exist_ok=True)
    wanclip_home.write_text("a file where the state folder should be")
    result = setup("--endpoint", inline_hub.url, "--models-dir", tmp_path / "m", "--manifest", manifest)
    assert result.exit_code == 0, result.output
    assert models_of(tmp_path / "m") == ALL_DESTS


# --- import cost and wording --------------------------------------------------------------------

def test_importing_the_installer_does_not_import_the_hub_client():
    code = ("import sys, wanclip.models.install; "
            "assert 'huggingface_hub' not in sys.modules and 'httpx2' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith(('huggingface', 'httpx')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_from_dir_help_and_hint_talk_about_a_local_folder_of_model_files(tmp_path, manifest):
    help_text = help_words("setup")
    assert "--from-dir" in help_text and "a local folder of model files" in help_text
    empty = tmp_path / "nas"
    empty.mkdir()
    result = setup("--from-dir", empty, "--models-dir", tmp_path / "m", "--manifest", manifest, "--json")
    assert result.exit_code == 1
    failed = json.loads(result.output.splitlines()[-1])["files"][0]
    assert failed["detail"] == f"wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors is not in {empty}"
    assert f"--from-dir takes a local folder of model files: put it at {empty / HIGH_DEST}" in failed["fix"]


# -- `wanclip setup --with i2v`: the image-to-video experts and LoRAs, beside the T2V files ----------
I2V_DESTS = sorted(item.dest for item in load_manifest(extras=["i2v"]) if item.dest not in ALL_DESTS)


def test_i2v_set_adds_the_two_experts_and_the_lora_pair_the_i2v_graph_loads():
    from wanclip.planning.workflow import I2V_WORKFLOW, model_files, shipped_graph

    extra = [item for item in load_manifest(extras=["i2v"]) if item.dest in I2V_DESTS]
    assert [(i.dest, i.bytes) for i in extra] == [
        ("diffusion_models/wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors", 14_294_742_832),
        ("diffusion_models/wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors", 14_294_742_832),
        ("loras/wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors", 1_226_977_424),
        ("loras/wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors", 1_226_977_424)]
    assert {i.repo for i in extra} == {"Comfy-Org/Wan_2.2_ComfyUI_Repackaged"}
    assert [i.sha256[:8] + i.sha256[-4:] for i in extra] == ["6122e79d6a42", "5471a457c21e", "d176c808f11e",
                                                            "024f21deb7f9"]
    # with the shared text encoder and VAE, that is every file the shipped I2V graph loads
    wanted = {f"{folder}/{name}" for folder, names in model_files(shipped_graph(I2V_WORKFLOW)).items()
              for name in names}
    assert wanted <= {i.dest for i in load_manifest(extras=["i2v"])}
    assert load_manifest(extras=["i2v", "i2v"]) == load_manifest(extras=["i2v"])


@pytest.fixture
def i2v_payloads():
    rng = random.Random(12)
    return {dest: rng.randbytes(SIZE // 2 + i) for i, dest in enumerate(I2V_DESTS)}


@pytest.fixture
def i2v_manifest(tmp_path, i2v_payloads, monkeypatch):
    """`--with i2v` reads a copy of the built-in i2v manifest with the small payloads' values."""
    entries = [item.model_dump() | {"bytes": len(i2v_payloads[item.dest]),
                                    "sha256": hashlib.sha256(i2v_payloads[item.dest]).hexdigest()}
               for item in load_manifest(extras=["i2v"]) if item.dest in I2V_DESTS]
    path = tmp_path / "test-models-i2v.yaml"
    path.write_text(yaml.safe_dump({"files": entries}))
    monkeypatch.setattr(manifest_module, "extra_manifest_path", lambda name: path)
    return path


@pytest.fixture
def full_hub(payloads, i2v_payloads):
    """The hub with the T2V and the I2V files."""
    hub = FakeHub()
    for item in load_manifest(extras=["i2v"]):
        hub.add(item.repo, item.path, {**payloads, **i2v_payloads}[item.dest])
    yield hub.start()
    hub.stop()


def test_with_i2v_installs_and_verifies_the_i2v_files_too(tmp_path, full_hub, manifest, i2v_manifest,
                                                          i2v_payloads):
    models = tmp_path / "models"
    result = setup("--with", "i2v", "--endpoint", full_hub.url, "--models-dir", models, "--manifest", manifest)
    assert result.exit_code == 0, result.output
    assert models_of(models) == sorted(ALL_DESTS + I2V_DESTS)
    for dest, data in i2v_payloads.items():
        assert (models / dest).read_bytes() == data

    result = setup("--check", "--with", "i2v", "--models-dir", models, "--manifest", manifest, "--json")
    assert result.exit_code == 0, result.output
    final = json.loads(result.output.splitlines()[-1])
    assert sorted(f["dest"] for f in final["files"]) == sorted(ALL_DESTS + I2V_DESTS)


def test_without_with_i2v_the_i2v_files_are_neither_fetched_nor_checked(tmp_path, full_hub, manifest,
                                                                        i2v_manifest):
    models = tmp_path / "models"
    assert setup("--endpoint", full_hub.url, "--models-dir", models, "--manifest", manifest).exit_code == 0
    assert models_of(models) == ALL_DESTS
    assert not any("i2v" in request[1] for request in full_hub.requests)
    result = setup("--check", "--models-dir", models, "--manifest", manifest, "--json")
    assert result.exit_code == 0  # the T2V setup is complete without them
    final = json.loads(result.output.splitlines()[-1])
    assert sorted(f["dest"] for f in final["files"]) == ALL_DESTS


def test_check_with_i2v_names_each_missing_i2v_file_and_how_to_get_it(tmp_path, full_hub, manifest,
                                                                      i2v_manifest):
    models = tmp_path / "models"
    assert setup("--endpoint", full_hub.url, "--models-dir", models, "--manifest", manifest).exit_code == 0
    result = setup("--check", "--with", "i2v", "--models-dir", models, "--manifest", manifest, "--json")
    assert result.exit_code == 1
    final = json.loads(result.output.splitlines()[-1])
    status = {f["dest"]: f["status"] for f in final["files"]}
    assert status == {**{d: "ok" for d in ALL_DESTS}, **{d: "missing" for d in I2V_DESTS}}
    assert {f["fix"] for f in final["files"] if f["dest"] in I2V_DESTS} == {"run wanclip setup --with i2v"}


def test_an_unknown_set_is_refused_with_the_known_ones(tmp_path):
    result = setup("--check", "--with", "video", "--models-dir", tmp_path)
    assert result.exit_code == 2
    assert "there is no file set 'video'" in result.output and "i2v, for image-to-video" in result.output
