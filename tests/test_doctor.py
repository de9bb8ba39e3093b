"""`wanclip doctor` and the graph checks render's preflight reuses."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from helpers import DOCTOR_FEATURES, help_words
from wanclip.checks import doctor
from wanclip.checks.graph import Check, combo_options, graph_checks, similar_model
from wanclip.checks.preflight import preflight
from wanclip.cli.app import app
from wanclip.comfy.client import ComfyClient
from wanclip.errors import PreflightError
from wanclip.models.manifest import load_manifest
from wanclip.planning.workflow import CORE_WORKFLOW, LOADER_INPUTS, shipped_graph, shipped_path

GRAPH = shipped_graph()
ROOT_WORKFLOWS = shipped_path("workflows", CORE_WORKFLOW).parent
SIX = {"diffusion_models": ["wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
                            "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"],
       "text_encoders": ["umt5_xxl_fp8_e4m3fn_scaled.safetensors"],
       "vae": ["wan_2.1_vae.safetensors"],
       "loras": ["wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors",
                 "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors"]}


def object_info_for(models: dict, classes=None, v3_vae=False) -> dict:
    """A minimal /object_info: every class of the graph, loader combos from ``models``."""
    info = {c: {"input": {"required": {}}} for c in (classes or {n["class_type"] for n in GRAPH.values()})}
    for (class_type, name), folder in LOADER_INPUTS.items():
        if class_type in info:
            options = list(models.get(folder, []))
            spec = ["COMBO", {"options": options}] if v3_vae and class_type == "VAELoader" else [options, {}]
            info[class_type]["input"]["required"][name] = spec
    return info


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


# -- graph checks (pure) ---------------------------------------------------------------------------
def test_combo_options_reads_both_encodings():
    assert combo_options([["a.safetensors", "b.safetensors"], {}]) == ["a.safetensors", "b.safetensors"]
    assert combo_options(["COMBO", {"options": ["auto", "mp4"], "default": "auto"}]) == ["auto", "mp4"]
    assert combo_options(["INT", {"default": 1}]) is None


@pytest.mark.parametrize("v3", [False, True], ids=["v1-combo", "v3-combo"])
def test_shipped_graph_passes_on_a_complete_server(v3):
    checks = graph_checks(GRAPH, object_info_for(SIX, v3_vae=v3))
    assert [c.name for c in checks if not c.ok] == []
    assert by_name(checks)["nodes"].detail == "all 10 node classes are installed"
    assert by_name(checks)["vae"].detail == ("node 73 loads wan_2.1_vae.safetensors, the 16-channel Wan 2.1 VAE "
                                             "the 14B model needs")
    assert len([c for c in checks if c.name.startswith("model ")]) == 6


def test_missing_videohelpersuite_suggests_the_core_graph():
    classes = {n["class_type"] for n in GRAPH.values()} - {"VHS_VideoCombine"}
    nodes = by_name(graph_checks(GRAPH, object_info_for(SIX, classes)))["nodes"]
    assert not nodes.ok
    assert nodes.detail == "ComfyUI has no VHS_VideoCombine (node 90)"
    assert nodes.fix == ("install ComfyUI-VideoHelperSuite (ComfyUI-Manager, or git clone into custom_nodes/) "
                         "and restart ComfyUI; or render with the core-nodes graph "
                         "workflows/wan22_t2v_lightx2v_4step_core.json")


def test_a_near_model_name_gets_a_did_you_mean_and_its_folder():
    models = dict(SIX, loras=["Wan2.2/wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors",
                              "wan2.2_t2v_lightx2v_4steps_lora_v1.1_low_noise.safetensors"])
    check = by_name(graph_checks(GRAPH, object_info_for(models)))[
        "model wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors"]
    assert not check.ok
    assert check.detail == ("ComfyUI does not list wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors "
                            "(node 83 LoraLoaderModelOnly.lora_name)")
    assert check.fix.startswith("did you mean Wan2.2/wan2.2_t2v_lightx2v_4steps_lora_v1.1_high_noise.safetensors?")
    assert "models/loras/" in check.fix


def test_the_48_channel_vae_is_refused_with_the_reason():
    graph = json.loads(json.dumps(GRAPH))
    graph["73"]["inputs"]["vae_name"] = "wan2.2_vae.safetensors"
    models = dict(SIX, vae=["wan2.2_vae.safetensors", "wan_2.1_vae.safetensors"])
    vae = by_name(graph_checks(graph, object_info_for(models, v3_vae=True)))["vae"]
    assert not vae.ok
    assert "48-channel VAE of the 5B model" in vae.detail
    assert "fails only after sampling, minutes in" in vae.detail
    assert vae.fix == "set vae_name to wan_2.1_vae.safetensors (wanclip setup puts it in models/vae/)"


def test_core_graph_checks_v3_save_nodes_without_model_inputs():
    core = shipped_graph(CORE_WORKFLOW)
    checks = graph_checks(core, object_info_for(SIX, {n["class_type"] for n in core.values()}))
    assert [c.name for c in checks if not c.ok] == []


# -- doctor against a server -----------------------------------------------------------------------
@pytest.fixture
def sim_with(tmp_path):
    """Start a simulator with chosen model folders (the shared ``sim`` has all six files)."""
    from wanclip.sim import serve_in_thread

    handles = []

    def start(models: dict):
        handles.append(serve_in_thread(tmp_path / "sim-output", models=models, load_seconds=0.01,
                                       step_seconds=0.001))
        return handles[-1]

    yield start
    for handle in handles:
        handle.stop()


def run_doctor_cli(*args, env=None):
    return CliRunner().invoke(app, ["doctor", *map(str, args)], env=env)


@pytest.fixture(autouse=True)
def plenty_of_disk(monkeypatch):
    monkeypatch.setattr(doctor, "MIN_FREE_OUTPUT", 0)


def test_doctor_passes_against_the_simulator(sim):
    result = run_doctor_cli("--server", sim.url, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["server"]["detail"] == f"ComfyUI 0.3.64 answers at {sim.url}"
    assert checks["gpu"]["detail"] == "wanclip simulated GPU, 80.0 GiB free of 80.0 GiB VRAM"
    assert checks["nodes"]["ok"] and checks["vae"]["ok"]
    assert len([name for name in checks if name.startswith("model ")]) == 6


def test_doctor_names_a_missing_model_with_its_folder_and_exits_1(sim_with):
    comfy = sim_with(dict(SIX, diffusion_models=SIX["diffusion_models"][:1]))
    result = run_doctor_cli("--server", comfy.url, "--json")
    assert result.exit_code == 1
    failed = [c for c in json.loads(result.output)["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == ["model wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"]
    assert "models/diffusion_models/" in failed[0]["fix"]
    assert "wanclip setup" in failed[0]["fix"]


def test_doctor_table_shows_each_fix_and_never_offers_the_48_channel_vae(sim_with):
    comfy = sim_with(dict(SIX, vae=["wan2.2_vae.safetensors"]))
    result = run_doctor_cli("--server", comfy.url)
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert ("fix: wan_2.1_vae.safetensors is missing from models/vae/: install it with "
            "`wanclip setup --comfy-dir DIR`") in text
    assert "did you mean" not in text and "restart" not in text
    assert "1 check failed" in result.output


def test_doctor_with_an_unreachable_server_says_how_to_start_it():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_doctor_cli("--server", f"http://127.0.0.1:{port}", "--json")
    assert result.exit_code == 1
    server = json.loads(result.output)["checks"][0]
    assert server["name"] == "server"
    assert server["ok"] is False
    assert "is ComfyUI running there?" in server["fix"]


def test_doctor_with_comfy_dir_verifies_the_files_on_disk(tmp_path, sim):
    comfy = tmp_path / "ComfyUI"
    manifest = load_manifest()[:1]
    report = doctor.run_doctor(ComfyClient(sim.url), comfy, manifest=manifest, disk_free=lambda path: 10**12)
    disk = [c for c in report.checks if c.name.startswith("disk ")]
    assert [(c.name, c.ok, c.detail) for c in disk] == [
        ("disk diffusion_models/wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors", False,
         "models/diffusion_models/wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors is missing")]


def test_low_disk_for_outputs_fails_with_the_amount(tmp_path, monkeypatch):
    monkeypatch.setattr(doctor, "MIN_FREE_OUTPUT", 5_000_000_000)
    check = doctor.free_space_check([tmp_path], lambda path: 1_200_000_000)
    assert (check.ok, check.detail) == (False, f"1.2 GB free in {tmp_path}")
    assert check.fix.startswith("free at least 5 GB")


def test_recorded_object_info_of_a_server_without_models(samples):
    """The real /object_info of a ComfyUI 0.3.64 with VHS and empty model folders."""
    object_info = json.loads((samples / "object_info_all.json").read_text())
    checks = graph_checks(GRAPH, object_info)
    assert by_name(checks)["nodes"].ok
    failed = sorted(c.name for c in checks if not c.ok)
    assert failed == sorted(f"model {name}" for names in SIX.values() for name in names)


# -- the did-you-mean never picks another expert, model or LoRA -------------------------------------
HIGH_UNET, LOW_UNET = SIX["diffusion_models"]
HIGH_LORA, LOW_LORA = SIX["loras"]


@pytest.mark.parametrize("missing,has", [
    (LOW_LORA, [HIGH_LORA]),
    (LOW_UNET, [HIGH_UNET]),
    (HIGH_UNET, ["wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors"]),
    (HIGH_UNET, ["wan2.2_ti2v_5B_fp16.safetensors", "wan2.2_t2v_high_noise_5B_fp8_scaled.safetensors"]),
    (HIGH_UNET, ["wan2.1_t2v_high_noise_14B_fp8_scaled.safetensors"]),
    ("wan_2.1_vae.safetensors", ["wan2.2_vae.safetensors"]),
    (HIGH_LORA, ["wan2.2_t2v_lightx2v_4steps_lora_v1.0_high_noise.safetensors",
                 "wan2.2_t2v_causvid_lora_high_noise.safetensors"]),
], ids=["lora-low-vs-high", "unet-low-vs-high", "t2v-vs-i2v", "14B-vs-5B", "2.2-vs-2.1", "vae-2.1-vs-2.2",
        "another-lora"])
def test_no_suggestion_of_another_expert_or_model(missing, has):
    assert similar_model(missing, has) is None


@pytest.mark.parametrize("missing,has,meant", [
    ("wan2.2_t2v_high_noise_14B_fp8.safetensors", SIX["diffusion_models"], HIGH_UNET),
    (HIGH_LORA, ["Wan2.2/" + HIGH_LORA, "Wan2.2/" + LOW_LORA], "Wan2.2/" + HIGH_LORA),
    ("wan2.2_t2v_hihg_noise_14B_fp8_scaled.safetensors", SIX["diffusion_models"], None),
    ("wan2.2_t2v_low_noize_14B_fp8_scaled.safetensors", SIX["diffusion_models"], LOW_UNET),
    ("Wan_2.1_VAE.safetensors", ["wan_2.1_vae.safetensors", "wan2.2_vae.safetensors"], "wan_2.1_vae.safetensors"),
], ids=["fp8-vs-fp8_scaled", "subfolder", "typo-in-the-expert-is-not-guessed", "typo", "case"])
def test_a_genuine_typo_still_gets_its_suggestion(missing, has, meant):
    assert similar_model(missing, has) == meant


def test_missing_low_noise_lora_is_named_with_how_to_install_it(sim_with):
    comfy = sim_with(dict(SIX, loras=[HIGH_LORA]))
    result = run_doctor_cli("--server", comfy.url, "--json")
    assert result.exit_code == 1
    failed = [c for c in json.loads(result.output)["checks"] if not c["ok"]]
    assert [c["name"] for c in failed] == [f"model {LOW_LORA}"]
    assert failed[0]["fix"].startswith(f"{LOW_LORA} is missing from models/loras/: install it with "
                                       "`wanclip setup --comfy-dir DIR`")
    assert "high_noise" not in failed[0]["fix"] and "restart" not in failed[0]["fix"]
    with pytest.raises(PreflightError) as err:  # render's preflight says the same
        preflight([ComfyClient(comfy.url)], [GRAPH])
    assert f"does not list {LOW_LORA}" in err.value.message and "wanclip setup --comfy-dir" in err.value.message
    assert "high_noise" not in err.value.message and "restart" not in err.value.message


def test_a_file_setup_does_not_install_is_not_sent_to_setup():
    graph = json.loads(json.dumps(GRAPH))
    graph["83"]["inputs"]["lora_name"] = "my_style_lora.safetensors"
    check = by_name(graph_checks(graph, object_info_for(SIX)))["model my_style_lora.safetensors"]
    assert check.fix == ("put my_style_lora.safetensors in models/loras/ (wanclip setup installs only the "
                         "files of the shipped graphs); ComfyUI sees it on the next request")


def test_preflight_imports_neither_doctor_nor_the_hub():
    code = ("import sys, wanclip.checks.preflight; "
            "print(sorted(m for m in sys.modules if m == 'wanclip.checks.doctor' or m.startswith('huggingface_hub')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


# -- the command: several servers, JSON, exit codes -------------------------------------------------
def test_doctor_checks_every_server_and_fails_if_one_does(sim, sim_with):
    broken = sim_with(dict(SIX, loras=[HIGH_LORA]))
    result = run_doctor_cli("-s", sim.url, "--server", broken.url, "--json")
    assert result.exit_code == 1
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["server"], r["ok"]) for r in reports] == [(sim.url, True), (broken.url, False)]
    table = run_doctor_cli("-s", f"{sim.url},{broken.url}")
    assert table.exit_code == 1
    assert f"wanclip doctor — {sim.url}" in table.output and f"wanclip doctor — {broken.url}" in table.output


def test_doctor_json_ends_with_an_error_event_on_bad_input(tmp_path):
    result = run_doctor_cli("--workflow", tmp_path / "nope.json", "--json")
    assert result.exit_code == 2
    event = json.loads(result.stdout.splitlines()[-1])
    assert (event["event"], event["exit_code"]) == ("error", 2) and "nope.json" in event["error"]


def test_doctor_help_gives_the_exit_codes():
    text = help_words("doctor")
    assert "Exit codes: 0 every check passed on every server, 1 a check failed" in text and "--server -s URL" in text


# -- what each ComfyUI speaks: the "ComfyUI features" row ------------------------------------------


@pytest.mark.parametrize("sim_profile", ["0.3.64", "0.9", "0.33", "0.38"], indirect=True)
def test_doctor_shows_what_each_comfyui_speaks(sim_profile):
    result = run_doctor_cli("--server", sim_profile.url, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["ComfyUI features"] == {"name": "ComfyUI features", "ok": True, "fix": "",
                                          "detail": DOCTOR_FEATURES[sim_profile.engine.profile.key]}
    assert report["capabilities"]["jobs_api"] == {"0.3.64": "no", "0.9": "read-only", "0.33": "yes", "0.38": "yes"}[
        sim_profile.engine.profile.key]
    assert [n for n in checks][:3] == ["server", "ComfyUI features", "gpu"]
    table = run_doctor_cli("--server", sim_profile.url, env={"COLUMNS": "400"})
    assert table.exit_code == 0
    assert DOCTOR_FEATURES[sim_profile.engine.profile.key] in " ".join(table.output.split())


@pytest.mark.parametrize("sim_profile", ["0.33"], indirect=True)
def test_doctor_claims_nothing_a_033_does_not_do(sim_profile):
    """ComfyUI 0.33.0 re-runs a re-posted id and sends no activity/seconds (its recordings): doctor,
    which posts nothing, says so of neither; the handshake it saw on its one socket it names."""
    result = run_doctor_cli("--server", sim_profile.url, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    detail = {c["name"]: c for c in report["checks"]}["ComfyUI features"]["detail"]
    assert "refused" not in detail and "(409)" not in detail and "activity, seconds" not in detail
    assert "409 for a re-posted id not known yet" in detail and "credential handshake no (seen)" in detail
    assert "progress_state not known yet" in detail and "posted nothing" in detail
    assert {k: report["capabilities"][k] for k in ("refuses_known_ids", "credential_handshake", "progress_state",
                                                   "progress_activity")} == {
        "refuses_known_ids": None, "credential_handshake": False, "progress_state": None, "progress_activity": None}
    assert sim_profile.engine.history(None, -1) == {}  # nothing was posted


@pytest.mark.parametrize("sim_profile", ["0.38"], indirect=True)
def test_doctor_on_038_checks_the_core_graph_with_its_dynamic_combo(sim_profile):
    result = run_doctor_cli("--server", sim_profile.url, "--workflow", ROOT_WORKFLOWS / CORE_WORKFLOW, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True


# -- image-to-video: its nodes and models are checked only when the film needs them ---------------------
I2V_FILES = {"diffusion_models": ["wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors",
                                  "wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"],
             "loras": ["wan2.2_i2v_lightx2v_4steps_lora_v1_high_noise.safetensors",
                       "wan2.2_i2v_lightx2v_4steps_lora_v1_low_noise.safetensors"]}
CHAIN_FILM = shipped_path("shots", "dancer_chain.yaml")
CUTS_FILM = shipped_path("shots", "tomato_egg.yaml")


def test_only_an_image_to_video_graph_needs_the_i2v_set():
    from wanclip.planning.workflow import I2V_WORKFLOW

    assert doctor.sets_needed([GRAPH]) == []
    assert doctor.sets_needed([GRAPH, shipped_graph(I2V_WORKFLOW)]) == ["i2v"]


def test_a_server_without_the_i2v_nodes_fails_the_i2v_graph_by_name():
    from wanclip.planning.workflow import I2V_WORKFLOW

    graph = shipped_graph(I2V_WORKFLOW)
    classes = {n["class_type"] for n in graph.values()} - {"WanImageToVideo"}
    nodes = by_name(graph_checks(graph, object_info_for(SIX | I2V_FILES, classes)))["nodes"]
    assert not nodes.ok and nodes.detail == "ComfyUI has no WanImageToVideo (node 98)"


def test_an_i2v_model_missing_from_the_server_is_sent_to_setup_with_i2v():
    from wanclip.planning.workflow import I2V_WORKFLOW

    checks = by_name(graph_checks(shipped_graph(I2V_WORKFLOW), object_info_for(SIX)))
    check = checks["model wan2.2_i2v_low_noise_14B_fp8_scaled.safetensors"]
    assert not check.ok
    assert "install it with `wanclip setup --with i2v --comfy-dir DIR`" in check.fix


def test_doctor_on_a_film_of_cuts_ignores_the_i2v_files(sim_with):
    comfy = sim_with(SIX)  # no I2V experts on this server
    result = run_doctor_cli(CUTS_FILM, "--server", comfy.url, "--json")
    assert result.exit_code == 0, result.output
    names = [c["name"] for c in json.loads(result.output)["checks"]]
    assert not any("i2v" in name for name in names)


def test_doctor_on_a_chained_film_checks_the_i2v_nodes_and_models(sim):
    result = run_doctor_cli(CHAIN_FILM, "--server", sim.url, "--json")
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.output)["checks"]}
    for names in I2V_FILES.values():
        for name in names:
            assert checks[f"model {name}"]["ok"]
    assert checks["nodes"]["ok"]


def test_doctor_on_a_chained_film_without_the_i2v_files_says_setup_with_i2v(sim_with):
    comfy = sim_with(SIX)
    result = run_doctor_cli(CHAIN_FILM, "--server", comfy.url, "--json")
    assert result.exit_code == 1
    failed = {c["name"]: c for c in json.loads(result.output)["checks"] if not c["ok"]}
    assert sorted(failed) == sorted(f"model {name}" for names in I2V_FILES.values() for name in names)
    for check in failed.values():
        assert "install it with `wanclip setup --with i2v --comfy-dir DIR`" in check["fix"]
    table = " ".join(run_doctor_cli(CHAIN_FILM, "--server", comfy.url).output.split())
    assert ("fix: wan2.2_i2v_high_noise_14B_fp8_scaled.safetensors is missing from models/diffusion_models/: "
            "install it with `wanclip setup --with i2v --comfy-dir DIR`") in table


def test_doctor_takes_a_shots_file_or_a_workflow_not_both():
    result = run_doctor_cli(CHAIN_FILM, "--workflow", ROOT_WORKFLOWS / CORE_WORKFLOW)
    assert result.exit_code == 2
    assert "give a shots file or --workflow, not both" in result.output
