"""Workspace scoping: whatever belongs to workspace B is, seen from workspace A, exactly like something missing.

Images, campaigns (and their images), jobs, libraries, templates and the brand kit; the built-in
libraries and templates are readable from every workspace. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.accounts import Accounts
from core.campaigns import CampaignStore, plan_campaign
from core.engines.base import GeneratedImage
from core.errors import BadInputError
from core.jobs import JobQueue
from core.libraries import LibraryManager
from core.store import Store
from core.templates import TemplateLibrary, load_brand_kit, save_brand_kit


def _item(seed: int = 1) -> GeneratedImage:
    image = Image.fromarray(np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8))
    return GeneratedImage(image=image, seed=seed, engine="test", params={"steps": 3}, arrays={})


@pytest.fixture
def fast() -> dict:
    from tests.campaigns.conftest import FAST

    return dict(FAST)


@pytest.fixture
def stores():
    accounts = Accounts()
    for name in ("acme", "globex"):
        accounts.add_workspace(name)
    return Store(workspace="acme"), Store(workspace="globex")


def _message(call) -> str:
    with pytest.raises(BadInputError) as err:
        call()
    return str(err.value)


def test_images_of_another_workspace_read_as_missing(stores):
    acme, globex = stores
    (mine,) = acme.save([_item(1)])
    (theirs,) = globex.save([_item(2)])
    assert [r.id for r in acme.list()] == [mine.id] and acme.count() == 1
    assert [r.id for r in globex.list()] == [theirs.id]
    assert acme.get(mine.id).workspace == "acme"
    other = _message(lambda: acme.get(theirs.id))
    missing = _message(lambda: acme.get("0123456789abcdef"))
    assert other.replace(theirs.id, "X") == missing.replace("0123456789abcdef", "X")
    with pytest.raises(BadInputError):
        acme.delete(theirs.id)
    assert globex.get(theirs.id) and globex.image_path(theirs).is_file()  # nothing of B was touched
    assert acme.owns([mine.id, theirs.id]) == {mine.id}
    assert Store().count() == 0  # the default workspace sees neither


def test_campaigns_and_their_images_stay_in_their_workspace(stores, fast):
    acme, globex = stores
    plan = plan_campaign("ab-ad-pair", {"product": "bottle", "benefit": "cold"}, engine="local-score", seed=1, **fast)
    theirs = CampaignStore(globex).create(plan)
    item = CampaignStore(globex).items(theirs.id)[0]
    mine = CampaignStore(acme)
    assert mine.list() == []
    assert _message(lambda: mine.get(theirs.id)) == _message(lambda: mine.get("nope")).replace("nope", theirs.id)
    for call in (
        lambda: mine.items(theirs.id),
        lambda: mine.item(item.id),
        lambda: mine.star(item.id),
        lambda: mine.set_notes(item.id, "mine now"),
        lambda: mine.rename(theirs.id, "stolen"),
        lambda: mine.delete(theirs.id),
        lambda: mine.counts(theirs.id),
    ):
        with pytest.raises(BadInputError):
            call()
    kept = CampaignStore(globex).get(theirs.id)
    assert kept.name == plan.name and kept.workspace == "globex"
    assert not CampaignStore(globex).item(item.id).starred and CampaignStore(globex).item(item.id).notes == ""


def test_jobs_are_seen_and_cancelled_only_in_their_workspace(stores):
    acme, globex = stores
    theirs = JobQueue(globex).submit("generate", {"x": 1}, owner="user:bob", title="Globex launch")
    mine = JobQueue(acme)
    assert mine.list() == [] and mine.list(owner="user:bob") == []
    with pytest.raises(BadInputError, match="No job"):
        mine.get(theirs.id)
    with pytest.raises(BadInputError, match="No job"):
        mine.cancel(theirs.id)
    assert JobQueue(globex).get(theirs.id).state == "queued"
    # one person, the same settings in two workspaces: two jobs (one click = one job per workspace)
    a = mine.submit("generate", {"x": 1}, owner="user:bob", dedupe_key="user:bob:same")
    b = JobQueue(globex).submit("generate", {"x": 1}, owner="user:bob", dedupe_key="user:bob:same")
    assert a.id != b.id and a.workspace == "acme" and b.workspace == "globex"
    # a worker of one workspace takes only its jobs; the studio's workers take all
    assert mine.claim("w-acme").id == a.id and mine.claim("w-acme") is None
    assert {JobQueue(all_workspaces=True).claim("w-all").id for _ in range(2)} == {theirs.id, b.id}


def test_libraries_templates_and_brand_kits_belong_to_their_workspace(stores):
    acme, globex = LibraryManager(workspace="acme"), LibraryManager(workspace="globex")
    globex.create("secret-shots", title="Globex secret shots")
    assert "secret-shots" not in {i.name for i in acme.list()}
    assert _message(lambda: acme.get("secret-shots")).startswith("There is no library called 'secret-shots'")
    with pytest.raises(BadInputError):
        acme.delete("secret-shots")
    assert globex.get("secret-shots").title == "Globex secret shots"
    acme.create("secret-shots", title="Acme's own")  # the same name in another workspace is another library
    assert acme.get("secret-shots").title == "Acme's own" and globex.get("secret-shots").title == "Globex secret shots"
    # built-in libraries: one copy, readable from every workspace, changed by none
    builtins = {i.name for i in LibraryManager().list() if i.kind == "builtin"}
    assert builtins and builtins <= {i.name for i in acme.list()} and builtins <= {i.name for i in globex.list()}
    assert acme.ensure("digits").count == globex.ensure("digits").count > 0
    assert acme._folder("digits") == globex._folder("digits") == LibraryManager()._folder("digits")
    with pytest.raises(BadInputError, match="built-in"):
        acme.delete("digits")

    ours = TemplateLibrary(workspace="globex").duplicate("ab-ad-pair", new_id="globex-ab")
    TemplateLibrary(workspace="globex").save(ours)
    assert "globex-ab" in TemplateLibrary(workspace="globex").ids()
    assert "globex-ab" not in TemplateLibrary(workspace="acme").ids()
    with pytest.raises(BadInputError):
        TemplateLibrary(workspace="acme").get("globex-ab")
    assert "ab-ad-pair" in TemplateLibrary(workspace="acme").ids()  # built-in templates for everyone

    save_brand_kit({"name": "Globex", "palette": ["#112233"]}, "globex")
    assert load_brand_kit("globex").name == "Globex" and load_brand_kit("acme").is_empty
