"""A manifest entry without ``bytes``: its sha256 is pinned, its size is the hub's (or the local file's),
looked up before any transfer; the file gets its final name only when its sha256 matches. Against the
loopback fake hub, with the real names of the LightX2V T2V 1217 pair."""

from __future__ import annotations

import hashlib
import json
import random

import pytest
import yaml
from typer.testing import CliRunner

from fakehub import FakeHub
from wanclip.checks import doctor
from wanclip.cli.app import app
from wanclip.errors import AssetError
from wanclip.models import install
from wanclip.models.install import Source
from wanclip.models.manifest import load_manifest
from wanclip.models.verify import VerifiedState, check_files

REPO = "lightx2v/Wan2.2-Distill-Loras"
HIGH = "wan2.2_t2v_A14b_high_noise_lora_rank64_lightx2v_4step_1217.safetensors"
LOW = "wan2.2_t2v_A14b_low_noise_lora_rank64_lightx2v_4step_1217.safetensors"
HIGH_SHA = "89003385f8a9d53ba58fd6ede647fdc90292e8568a54683fcfe6db5556a31769"
LOW_SHA = "4df7c206f3189472da2f92c0a42dcf308f04433d9c14302d08d56e99a3f51322"


@pytest.fixture
def payloads():
    rng = random.Random(1217)
    return {HIGH: rng.randbytes(3 * (1 << 20) + 17), LOW: rng.randbytes(200_003)}


def entry(name: str, data: bytes, **extra) -> dict:
    return {"repo": REPO, "path": name, "dest": f"loras/{name}", "sha256": hashlib.sha256(data).hexdigest(),
            "revision": "main"} | extra


@pytest.fixture
def manifest(tmp_path, payloads):
    """The pair without sizes: the high-noise file leaves `bytes` out, the low-noise one says `bytes: null`."""
    path = tmp_path / "sizeless.yaml"
    path.write_text(yaml.safe_dump({"files": [entry(HIGH, payloads[HIGH]), entry(LOW, payloads[LOW], bytes=None)]}))
    return path


@pytest.fixture(params=[False, True], ids=["inline", "cdn-redirect"])
def hub(request, payloads):
    hub = FakeHub(redirect=request.param)
    for name, data in payloads.items():
        hub.add(REPO, name, data)
    yield hub.start()
    hub.stop()


def setup(*args):
    return CliRunner().invoke(app, ["setup", *map(str, args)])


def json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def models_of(models):
    return sorted(str(p.relative_to(models)) for p in models.rglob("*") if p.is_file())


def gets(hub: FakeHub) -> list:
    return [r for r in hub.resolve_requests() if r[0] == "GET"]


# -- the built-in manifest ---------------------------------------------------------------------------
def test_the_1217_set_installs_the_t2v_pair_pinned_by_sha256_with_the_size_from_the_hub():
    files = {item.name: item for item in load_manifest(extras=["lightx2v-1217"])}
    assert (files[HIGH].repo, files[HIGH].path, files[HIGH].dest, files[HIGH].revision) == (
        REPO, HIGH, f"loras/{HIGH}", "main")
    assert (files[LOW].repo, files[LOW].path, files[LOW].dest) == (REPO, LOW, f"loras/{LOW}")
    assert (files[HIGH].sha256, files[HIGH].bytes) == (HIGH_SHA, None)
    assert (files[LOW].sha256, files[LOW].bytes) == (LOW_SHA, None)


def test_a_user_manifest_still_needs_the_sha256(tmp_path, payloads):
    path = tmp_path / "bad.yaml"
    item = entry(HIGH, payloads[HIGH])
    del item["sha256"]
    path.write_text(yaml.safe_dump({"files": [item]}))
    result = setup("--check", "--manifest", path, "--models-dir", tmp_path / "models")
    assert result.exit_code == 2
    assert "sha256" in result.output


# -- from the hub ------------------------------------------------------------------------------------
def test_a_sizeless_entry_installs_with_the_hubs_size(tmp_path, hub, manifest, payloads):
    models = tmp_path / "models"
    result = setup("--endpoint", hub.url, "--models-dir", models, "--manifest", manifest, "--json")
    assert result.exit_code == 0, result.output
    assert models_of(models) == sorted(f"loras/{name}" for name in payloads)
    for name, data in payloads.items():
        assert (models / "loras" / name).read_bytes() == data
    lines = json_lines(result.output)
    plan = next(line for line in lines if line.get("kind") == "plan")
    assert plan["total"] == sum(len(data) for data in payloads.values())
    starts = {line["file"]: line["total"] for line in lines if line.get("kind") == "start"}
    assert starts == {f"loras/{name}": len(data) for name, data in payloads.items()}
    final = lines[-1]
    assert {f["dest"]: (f["status"], f["bytes"]) for f in final["files"]} == {
        f"loras/{name}": ("installed", len(data)) for name, data in payloads.items()}
    # a rerun trusts the recorded verification: no request at all, and the table has the sizes on disk
    before = len(hub.requests)
    again = setup("--endpoint", hub.url, "--models-dir", models, "--manifest", manifest, "--json")
    assert again.exit_code == 0, again.output
    assert len(hub.requests) == before
    assert {f["dest"]: (f["status"], f["bytes"]) for f in json_lines(again.output)[-1]["files"]} == {
        f"loras/{name}": ("skipped", len(data)) for name, data in payloads.items()}


def test_a_sizeless_entry_whose_hub_etag_differs_is_refused(tmp_path, hub, payloads):
    models = tmp_path / "models"
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump({"files": [entry(HIGH, b"the bytes the manifest pinned")]}))
    result = setup("--endpoint", hub.url, "--models-dir", models, "--manifest", path)
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "changed upstream" in text and "nothing was downloaded" in text
    assert gets(hub) == [] and models_of(models) == []


def test_sizeless_bytes_that_do_not_hash_to_the_sha256_never_get_the_final_name(tmp_path, hub, manifest, payloads):
    models = tmp_path / "models"
    hub.fault(HIGH, wrong_bytes=True)  # the hub's size and ETag are right, the bytes are not
    result = setup("--endpoint", hub.url, "--models-dir", models, "--manifest", manifest)
    assert result.exit_code == 1
    assert "does not match the manifest" in " ".join(result.output.split())
    assert models_of(models) == [f"loras/{LOW}"]  # not the high-noise file, nor its .part
    check = setup("--check", "--models-dir", models, "--manifest", manifest, "--json")
    assert {f["dest"]: f["status"] for f in json_lines(check.output)[-1]["files"]} == {
        f"loras/{HIGH}": "missing", f"loras/{LOW}": "ok"}


@pytest.mark.parametrize("off_by", [-1, 1])
def test_a_size_the_hub_misstates_is_found_in_the_bytes_received(tmp_path, hub, manifest, payloads, off_by):
    models = tmp_path / "models"
    hub.fault(HIGH, size=len(payloads[HIGH]) + off_by)  # the metadata lies, the bytes are the true ones
    result = setup("--endpoint", hub.url, "--models-dir", models, "--manifest", manifest, "--json")
    assert result.exit_code == 1
    files = {f["dest"]: f for f in json_lines(result.output)[-1]["files"]}
    assert files[f"loras/{HIGH}"]["status"] == "failed"
    assert ("sent more than" if off_by < 0 else "kept breaking off") in files[f"loras/{HIGH}"]["detail"]
    assert not (models / "loras" / HIGH).exists()
    assert files[f"loras/{LOW}"]["status"] == "installed"


def test_a_cut_sizeless_download_resumes_from_its_part(tmp_path, manifest, payloads):
    hub = FakeHub()
    for name, data in payloads.items():
        hub.add(REPO, name, data)
    hub.start()
    try:
        models = tmp_path / "models"
        cut = 1 << 20
        hub.fault(HIGH, cut_at=cut)  # every response breaks off at 1 MiB
        first = setup("--endpoint", hub.url, "--models-dir", models, "--manifest", manifest)
        assert first.exit_code == 1
        assert "kept breaking off" in first.output
        assert (models / "loras" / (HIGH + ".part")).stat().st_size == cut
        hub.faults.clear()
        hub.served.clear()
        second = setup("--endpoint", hub.url, "--models-dir", models, "--manifest", manifest)
        assert second.exit_code == 0, second.output
        assert hub.served[HIGH] == len(payloads[HIGH]) - cut
        assert (models / "loras" / HIGH).read_bytes() == payloads[HIGH]
    finally:
        hub.stop()


def test_a_failed_size_lookup_fails_that_file_only(tmp_path, hub, manifest, payloads):
    models = tmp_path / "models"
    hub.fault(HIGH, error="missing")
    result = setup("--endpoint", hub.url, "--models-dir", models, "--manifest", manifest, "--json")
    assert result.exit_code == 1
    files = {f["dest"]: f for f in json_lines(result.output)[-1]["files"]}
    assert files[f"loras/{HIGH}"]["status"] == "failed"
    assert "is not on" in files[f"loras/{HIGH}"]["detail"]
    assert files[f"loras/{LOW}"]["status"] == "installed"
    assert models_of(models) == [f"loras/{LOW}"]


def test_the_free_space_check_counts_the_hubs_size_before_any_transfer(tmp_path, hub, manifest, payloads):
    items = load_manifest(manifest)
    total = sum(len(data) for data in payloads.values())
    with pytest.raises(AssetError) as caught:
        install.install(items, tmp_path / "models", Source(endpoint=hub.url), disk_free=lambda path: total - 1)
    assert "not enough free disk" in caught.value.message
    assert f"{total / 1e6:.2f} MB needed" in caught.value.message
    assert gets(hub) == []


# -- from a local folder, --check and doctor ---------------------------------------------------------
def test_a_sizeless_entry_from_a_local_folder_then_check(tmp_path, manifest, payloads):
    source, models = tmp_path / "downloads", tmp_path / "models"
    source.mkdir()
    for name, data in payloads.items():
        (source / name).write_bytes(data)
    result = setup("--from-dir", source, "--models-dir", models, "--manifest", manifest, "--json")
    assert result.exit_code == 0, result.output
    assert {f["dest"]: (f["status"], f["bytes"]) for f in json_lines(result.output)[-1]["files"]} == {
        f"loras/{name}": ("installed", len(data)) for name, data in payloads.items()}
    check = setup("--check", "--models-dir", models, "--manifest", manifest, "--json")
    assert check.exit_code == 0, check.output
    assert {f["dest"]: (f["status"], f["bytes"]) for f in json_lines(check.output)[-1]["files"]} == {
        f"loras/{name}": ("ok", len(data)) for name, data in payloads.items()}
    # a changed file is found by its sha256 (there is no size to compare), by --check and by doctor
    with open(models / "loras" / HIGH, "ab") as fh:
        fh.write(b"!")
    check = setup("--check", "--models-dir", models, "--manifest", manifest, "--json")
    assert check.exit_code == 1
    wrong = {f["dest"]: f for f in json_lines(check.output)[-1]["files"] if f["status"] == "wrong"}
    assert list(wrong) == [f"loras/{HIGH}"] and "sha256" in wrong[f"loras/{HIGH}"]["detail"]
    checks = doctor.disk_checks(load_manifest(manifest), tmp_path)
    assert [c.name for c in checks if not c.ok] == [f"disk loras/{HIGH}"]


def test_local_bytes_that_do_not_hash_to_the_sha256_are_refused(tmp_path, manifest, payloads):
    source, models = tmp_path / "downloads", tmp_path / "models"
    source.mkdir()
    (source / HIGH).write_bytes(payloads[HIGH][:-1] + b"?")
    (source / LOW).write_bytes(payloads[LOW])
    result = setup("--from-dir", source, "--models-dir", models, "--manifest", manifest)
    assert result.exit_code == 1
    assert "does not match the manifest" in " ".join(result.output.split())
    assert models_of(models) == [f"loras/{LOW}"]


def test_a_sizeless_file_missing_from_the_local_folder_fails_that_file(tmp_path, manifest, payloads):
    source, models = tmp_path / "downloads", tmp_path / "models"
    source.mkdir()
    (source / LOW).write_bytes(payloads[LOW])
    result = setup("--from-dir", source, "--models-dir", models, "--manifest", manifest, "--json")
    assert result.exit_code == 1
    files = {f["dest"]: f for f in json_lines(result.output)[-1]["files"]}
    assert files[f"loras/{HIGH}"]["status"] == "failed" and f"{HIGH} is not in" in files[f"loras/{HIGH}"]["detail"]
    assert files[f"loras/{LOW}"]["status"] == "installed"


def test_the_verified_record_of_a_sizeless_file_is_keyed_by_its_size_and_time(tmp_path, manifest, payloads):
    models = tmp_path / "models"
    (models / "loras").mkdir(parents=True)
    target = models / "loras" / LOW
    target.write_bytes(payloads[LOW])
    items = [i for i in load_manifest(manifest) if i.name == LOW]
    state = VerifiedState(tmp_path / "verified.json")
    assert check_files(items, models, state).ok
    assert state.trusted(target, items[0].sha256)
    target.write_bytes(payloads[LOW] + b"more")  # another size: the record no longer vouches for it
    assert not state.trusted(target, items[0].sha256)
    assert not check_files(items, models, state).ok
