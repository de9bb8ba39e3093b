"""One shot, one pass: roles are found at plan, the submit-time edit is one pure function, and the
ledger records the hash of exactly the graph the server received."""

from __future__ import annotations

import copy

import pytest

from test_chains import chain_film
from test_render import tiny_film
from wanclip.ledger import load_ledger
from wanclip.planning.identity import legacy_identity_sha256
from wanclip.planning.plan import plan_film
from wanclip.planning.workflow import ASYNC_OUTPUT, find_roles, graph_sha256, image_names, posted_graph
from wanclip.render.loop import RenderOptions, render_film
from wanclip.sim import serve_in_thread

ATTEMPT = "1a2b3c4d-0000-4000-8000-000000000000"
IDENTITY = ["b1738d285a0b", "a9db5ecadc54", "0c09ee23bbbf"]  # since shot identity (the output's prefix left out)
CHAIN_IDENTITY = ["4a9e251078c8", "99177b5a8ba9", "d398270f8500"]


def test_plan_finds_each_shots_roles_once_and_they_fit_its_graph(tmp_path):
    plan = plan_film(chain_film(tmp_path, 2), out=tmp_path / "out")
    for shot in plan.shots:
        assert shot.roles == find_roles(shot.graph)
    assert plan.shots[0].roles.start_image is None and plan.shots[1].roles.start_image is not None


def legacy(plan) -> list[str]:
    return [legacy_identity_sha256(s.graph, s.roles, plan.film.slug, s.index, s.name)[:12] for s in plan.shots]


def test_the_identity_hash_is_what_earlier_versions_recorded(tmp_path):
    """Pinned from the plan before roles travelled with the shot (e80e706): an existing user's ledger
    must not see every shot as changed (each would render again). Since shot identity the output's
    prefix (which had the shot's position in it) is left out of the hash; the hash those ledgers
    hold is still rebuilt by ``legacy_identity_sha256``, so they migrate instead of re-rendering."""
    plan = plan_film(tiny_film(tmp_path, 3), out=tmp_path / "out")
    assert legacy(plan) == ["95f60e95b993", "79b1fca1d4f2", "f1fc6601bdc1"]
    assert [s.graph_sha256[:12] for s in plan.shots] == IDENTITY
    chain = plan_film(chain_film(tmp_path, 3), out=tmp_path / "chain")
    assert legacy(chain) == ["15a96dd79d5c", "282b3dba31ce", "163ab49823bb"]
    assert [s.graph_sha256[:12] for s in chain.shots] == CHAIN_IDENTITY


def test_posted_graph_is_pure_and_edits_only_output_and_pictures(tmp_path):
    shot = plan_film(chain_film(tmp_path, 2), out=tmp_path / "out").shots[1]
    before = copy.deepcopy(shot.graph)
    posted = posted_graph(shot.graph, shot.roles, ATTEMPT, pictures={"start_image": "wanclip-abc.png"})
    assert shot.graph == before  # the planned graph (and so its identity hash) is untouched
    assert posted == posted_graph(shot.graph, shot.roles, ATTEMPT, pictures={"start_image": "wanclip-abc.png"})
    assert image_names(posted) == {"start_image": "wanclip-abc.png"}
    prefix = posted[shot.roles.output]["inputs"]["filename_prefix"]
    assert prefix == before[shot.roles.output]["inputs"]["filename_prefix"] + "_1a2b3c4d"
    changed = {nid for nid in before if before[nid] != posted.get(nid)}
    assert changed == {shot.roles.output, shot.roles.start_image}


def test_posted_graph_swaps_in_the_node_packs_output_only_for_a_server_that_has_it(tmp_path):
    shot = plan_film(tiny_film(tmp_path, 1), out=tmp_path / "out").shots[0]
    plain = posted_graph(shot.graph, shot.roles, ATTEMPT)
    packed = posted_graph(shot.graph, shot.roles, ATTEMPT, async_output=True)
    assert plain[shot.roles.output]["class_type"] != ASYNC_OUTPUT
    assert packed[shot.roles.output]["class_type"] == ASYNC_OUTPUT
    assert packed[shot.roles.output]["inputs"]["filename_prefix"].endswith("_1a2b3c4d")
    assert graph_sha256(plain) != graph_sha256(packed) != shot.graph_sha256


@pytest.fixture(scope="module")
def pack_sim(tmp_path_factory):
    """A simulator with wanclip's node pack: every submit-time edit applies (node pack, picture, name)."""
    handle = serve_in_thread(tmp_path_factory.mktemp("posted-sim") / "output", load_seconds=0.01,
                             step_seconds=0.005, nodes=("wanclip",))
    yield handle
    handle.stop()


def test_the_graph_the_server_received_hashes_to_what_the_ledger_recorded(tmp_path, pack_sim):
    pack_sim.reset(tmp_path / "comfy" / "output")
    pack_sim.output_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_film(chain_film(tmp_path, 2), out=tmp_path / "out")
    result = render_film(plan, RenderOptions(servers=[pack_sim.url], stitch=False))
    assert result.exit_code == 0
    history = pack_sim.engine.history()
    ledger = load_ledger(plan.out_dir)
    for record, shot in zip(ledger.shots, plan.shots, strict=True):
        received = history[record.prompt_id]["prompt"][2]
        assert record.posted_sha256 == graph_sha256(received)
        assert record.graph_sha256 == shot.graph_sha256  # the identity hash is still the planned graph's
        assert received[shot.roles.output]["class_type"] == ASYNC_OUTPUT
    link = history[ledger.shots[1].prompt_id]["prompt"][2]
    assert image_names(link)["start_image"].startswith("wanclip-")  # the uploaded last frame
