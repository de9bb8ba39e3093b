"""`wanclip setup --with interpolation | upscale | lightx2v-1217`: the post stage's model files and the
newer LightX2V LoRAs, against the loopback fake hub; the names the planner and the graphs use agree
with what setup installs."""

from __future__ import annotations

import hashlib
import json
import random

import pytest
import yaml
from typer.testing import CliRunner

from fakehub import FakeHub
from helpers import help_words
from wanclip.cli.app import app
from wanclip.models import manifest as manifest_module
from wanclip.models.manifest import load_manifest
from wanclip.planning import post_models

SETS = ("interpolation", "upscale", "lightx2v-1217")
VAE = "vae/wan_2.1_vae.safetensors"


def dests(name: str) -> list[str]:
    base = {item.dest for item in load_manifest()}
    return [item.dest for item in load_manifest(extras=[name]) if item.dest not in base]


def setup(*args):
    return CliRunner().invoke(app, ["setup", *map(str, args)])


def models_of(models):
    return sorted(str(p.relative_to(models)) for p in models.rglob("*") if p.is_file())


# -- the manifests and the names the graphs load -----------------------------------------------------
def test_each_post_model_name_is_a_file_its_set_installs():
    assert dests("interpolation") == [f"frame_interpolation/{post_models.INTERPOLATION_MODEL}"]
    assert dests("upscale") == [f"upscale_models/{post_models.UPSCALE_MODEL}",
                                f"diffusion_models/{post_models.SEEDVR2_MODEL}", f"vae/{post_models.SEEDVR2_VAE}"]
    assert post_models.INTERPOLATION_MODEL == "rife_v4.26.safetensors"
    assert (post_models.UPSCALE_MODEL, post_models.UPSCALE_MODEL_SCALE) == ("RealESRGAN_x2plus.pth", 2)
    assert post_models.SEEDVR2_MODEL == "seedvr2_3b_int8_convrot.safetensors"
    assert post_models.SEEDVR2_VAE == "seedvr2_ema_vae_fp16.safetensors"
    # RIFE VFI fetches its own checkpoint: no set installs it
    everything = {item.name for item in load_manifest(extras=manifest_module.EXTRAS)}
    assert post_models.RIFE_VFI_CKPT not in everything


def test_the_post_sets_pin_the_published_sizes_and_hashes():
    files = {i.dest: i for i in load_manifest(extras=["interpolation", "upscale", "lightx2v-1217"])}
    assert [(d, files[d].bytes, files[d].sha256[:8] + files[d].sha256[-4:]) for d in
            dests("interpolation") + dests("upscale") + dests("lightx2v-1217")] == [
        ("frame_interpolation/rife_v4.26.safetensors", 22_674_688, "151874597c94"),
        ("upscale_models/RealESRGAN_x2plus.pth", 67_061_725, "49fafd456abb"),
        ("diffusion_models/seedvr2_3b_int8_convrot.safetensors", 3_458_259_704, "c3dec8bca157"),
        ("vae/seedvr2_ema_vae_fp16.safetensors", 501_324_814, "206785482ca1"),
        # the T2V 1217 pair: sha256 pinned, size taken from the hub at download
        ("loras/wan2.2_t2v_A14b_high_noise_lora_rank64_lightx2v_4step_1217.safetensors", None, "890033851769"),
        ("loras/wan2.2_t2v_A14b_low_noise_lora_rank64_lightx2v_4step_1217.safetensors", None, "4df7c2061322"),
        ("loras/wan2.2_i2v_A14b_high_noise_lora_rank64_lightx2v_4step_1022.safetensors", 634_645_944,
         "887c3bdebb19"),
        ("loras/wan2.2_i2v_A14b_low_noise_lora_rank64_lightx2v_4step_1022.safetensors", 739_472_104,
         "8833bd4fb0f1")]
    assert files["frame_interpolation/rife_v4.26.safetensors"].repo == "Comfy-Org/frame_interpolation"
    assert {files[d].repo for d in dests("upscale")[1:]} == {"Comfy-Org/SeedVR2"}
    assert {files[d].repo for d in dests("lightx2v-1217")} == {"lightx2v/Wan2.2-Distill-Loras"}


def test_lora_sets_name_files_setup_installs():
    sets = post_models.LORA_SETS
    assert post_models.DEFAULT_LORA_SET == "v1.1" and set(sets) == {"v1.1", "1217"}
    base = {item.name for item in load_manifest()}
    i2v = {item.name for item in load_manifest(extras=["i2v"])}
    newer = {item.name for item in load_manifest(extras=["lightx2v-1217"])}
    assert set(sets["v1.1"]["t2v"]) <= base and set(sets["v1.1"]["i2v"]) <= i2v
    assert set(sets["1217"]["i2v"]) <= newer and set(sets["1217"]["t2v"]) <= newer
    assert sets["1217"]["t2v"] == ("wan2.2_t2v_A14b_high_noise_lora_rank64_lightx2v_4step_1217.safetensors",
                                   "wan2.2_t2v_A14b_low_noise_lora_rank64_lightx2v_4step_1217.safetensors")
    for pair in (p for s in sets.values() for p in s.values()):  # (high, low)
        assert "high" in pair[0] and "low" in pair[1]


def test_help_names_each_set_and_what_it_is_for():
    words = help_words("setup")
    for phrase in ("interpolation:", "upscale:", "lightx2v-1217:", "post: interpolate:", "post: upscale:",
                   "lightx2v: 1217"):
        assert phrase in words, phrase


# -- installing them from the (fake) hub -------------------------------------------------------------
@pytest.fixture
def payloads():
    rng = random.Random(21)
    wanted = [VAE] + [d for name in SETS for d in dests(name)]
    return {dest: rng.randbytes(40_000 + i) for i, dest in enumerate(wanted)}


@pytest.fixture
def small(tmp_path, payloads, monkeypatch):
    """Copies of the manifests with the small payloads' sizes and hashes: one base file (the VAE)
    and each set, which `--with NAME` then reads."""
    def write(name: str, items) -> str:
        entries = [i.model_dump() | {"bytes": len(payloads[i.dest]) if i.bytes else None,  # size-less stay so
                                     "sha256": hashlib.sha256(payloads[i.dest]).hexdigest()} for i in items]
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"files": entries}))
        return path

    every = {i.dest: i for i in load_manifest(extras=SETS)}
    paths = {name: write(name, [every[d] for d in dests(name)]) for name in SETS}
    monkeypatch.setattr(manifest_module, "extra_manifest_path", lambda name: paths[name])
    return write("base", [every[VAE]])


@pytest.fixture
def hub(payloads):
    hub = FakeHub()
    for item in load_manifest(extras=SETS):
        if item.dest in payloads:
            hub.add(item.repo, item.path, payloads[item.dest])
    yield hub.start()
    hub.stop()


@pytest.mark.parametrize("name", SETS)
def test_with_a_post_set_installs_and_verifies_its_files(tmp_path, hub, small, payloads, name):
    models = tmp_path / "models"
    result = setup("--with", name, "--endpoint", hub.url, "--models-dir", models, "--manifest", small)
    assert result.exit_code == 0, result.output
    assert models_of(models) == sorted([VAE, *dests(name)])
    for dest in dests(name):
        assert (models / dest).read_bytes() == payloads[dest]
    others = [d for other in SETS if other != name for d in dests(other)]
    assert not any(d.split("/")[-1] in request[1] for request in hub.requests for d in others)
    result = setup("--check", "--with", name, "--models-dir", models, "--manifest", small, "--json")
    assert result.exit_code == 0, result.output


def test_a_post_file_of_other_bytes_is_refused(tmp_path, hub, small):
    models = tmp_path / "models"
    hub.fault("frame_interpolation/rife_v4.26.safetensors", wrong_bytes=True)
    result = setup("--with", "interpolation", "--endpoint", hub.url, "--models-dir", models, "--manifest", small)
    assert result.exit_code == 1
    assert "does not match the manifest" in result.output
    assert models_of(models) == [VAE]  # nothing of it is left, not even a .part


def test_check_names_a_missing_post_file_and_the_set_that_installs_it(tmp_path, hub, small):
    models = tmp_path / "models"
    assert setup("--endpoint", hub.url, "--models-dir", models, "--manifest", small).exit_code == 0
    result = setup("--check", "--with", "upscale", "--models-dir", models, "--manifest", small, "--json")
    assert result.exit_code == 1
    final = json.loads(result.output.splitlines()[-1])
    missing = {f["dest"]: f["fix"] for f in final["files"] if f["status"] == "missing"}
    assert missing == {d: "run wanclip setup --with upscale" for d in dests("upscale")}


def test_an_unknown_set_lists_the_post_sets_too(tmp_path):
    result = setup("--check", "--with", "rife", "--models-dir", tmp_path)
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "interpolation, for" in text and "upscale, for" in text and "lightx2v-1217, for" in text


def test_with_lightx2v_1217_installs_both_pairs_and_sends_no_one_to_download_by_hand(tmp_path, hub, small,
                                                                                      payloads):
    models = tmp_path / "models"
    result = setup("--with", "lightx2v-1217", "--endpoint", hub.url, "--models-dir", models, "--manifest", small,
                   "--json")
    assert result.exit_code == 0, result.output
    final = json.loads(result.output.splitlines()[-1])
    assert final["warnings"] == []
    sets = post_models.LORA_SETS["1217"]
    assert {f["dest"]: f["bytes"] for f in final["files"] if "lightx2v_4step" in f["dest"]} == {
        f"loras/{name}": len(payloads[f"loras/{name}"]) for name in sets["t2v"] + sets["i2v"]}
    check = setup("--check", "--with", "lightx2v-1217", "--models-dir", models, "--manifest", small, "--json")
    assert check.exit_code == 0 and json.loads(check.output.splitlines()[-1])["warnings"] == []
