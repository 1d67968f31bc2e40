"""Sign-in and workspaces in real headless Chromium.

* Nothing but the sign-in form before signing in, whatever page a link points to; the first start
  makes the administrator; a wrong password is refused.
* A viewer looks and exports, but cannot generate or delete.
* A member of workspace A cannot see, open by link, export or delete anything of workspace B.
* Two people in two workspaces run a campaign each at the same time: each sees only their own.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.accounts import Accounts
from core.campaigns import CampaignStore, plan_campaign
from core.engines.base import GeneratedImage
from core.libraries import LibraryManager
from core.store import Store
from tests.browser.studio import chromium_pages, fill_small_campaign, running_studio, settle, shot
from tests.signin import PASSWORD, sign_in_browser

pytestmark = pytest.mark.browser


def _item(seed: int) -> GeneratedImage:
    image = Image.fromarray(np.random.default_rng(seed).integers(0, 255, (16, 16, 3), dtype=np.uint8))
    return GeneratedImage(image=image, seed=seed, engine="local-score", params={"library": "faces"}, arrays={})


def _team() -> dict[str, str]:
    """root (studio administrator); Acme: ann (editor), vic (viewer); Globex: bob (editor) and its secrets."""
    accounts = Accounts()
    accounts.add_user("root", PASSWORD)
    accounts.add_workspace("acme", title="Acme Shoes")
    accounts.add_workspace("globex", title="Globex")
    accounts.add_user("ann", PASSWORD, role="editor", workspace="acme")
    accounts.add_user("vic", PASSWORD, role="viewer", workspace="acme")
    accounts.add_user("bob", PASSWORD, role="editor", workspace="globex")
    (acme_image,) = Store(workspace="acme").save([_item(1)], title="Acme hero")
    (globex_image,) = Store(workspace="globex").save([_item(2)], title="Globex secret")
    LibraryManager(workspace="globex").create("globex-secret", title="Globex secret shots")
    plan = plan_campaign(
        "ab-ad-pair", {"product": "rocket skates", "benefit": "fast"}, engine="local-score", seed=1,
        library="faces", size=16, steps=2, name="Globex launch",
    )
    campaign = CampaignStore(Store(workspace="globex")).create(plan)
    return {"acme_image": acme_image.id, "globex_image": globex_image.id, "globex_campaign": campaign.id}


def _text(page) -> str:
    settle(page)
    return page.locator("body").inner_text()


def test_only_the_sign_in_form_shows_before_signing_in(isolated_data_dir):
    with running_studio(isolated_data_dir) as url, chromium_pages(1) as (page,):
        page.goto(url)  # a new studio: the first visitor makes the administrator account
        page.get_by_text("Create the administrator account").wait_for()
        page.get_by_label("Name", exact=True).fill("root")
        page.get_by_label("Password (at least 8 characters)").fill(PASSWORD)
        page.get_by_label("Password again").fill(PASSWORD + "x")
        page.get_by_role("button", name="Create the account and sign in").click()
        page.get_by_text("The two passwords differ").wait_for()
        page.get_by_label("Password again").fill(PASSWORD)
        page.get_by_role("button", name="Create the account and sign in").click()
        page.get_by_text("Start in three steps").wait_for()
        assert "Signed in as root" in _text(page)
        Store().save([_item(3)], title="A saved image")

        page.get_by_role("button", name="Sign out").click()
        page.get_by_role("button", name="Sign in").wait_for()
        for path in ("", "/gallery", "/generate", "/team", "/mosaic?id=x"):
            page.goto(url + path)
            page.get_by_role("button", name="Sign in").wait_for()
            text = _text(page)
            assert "Page not found" not in text
            for hidden in ("Gallery", "Generate", "Start in three steps", "Signed in as", "Sign out"):
                assert hidden not in text, (path, hidden)
            assert page.locator("img").count() == 0, path  # not one image of the studio
        shot(page, "signin_01_form")
        page.goto(url + "/gallery")
        page.get_by_label("Name", exact=True).fill("root")
        page.get_by_label("Password", exact=True).fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("do not match an account").wait_for()
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Gallery").wait_for()  # the page the link pointed to
        assert "1 image saved" in _text(page)
        page.reload()  # a reload keeps the person signed in
        page.get_by_role("heading", name="Gallery").wait_for()
    log = (isolated_data_dir.parent / "streamlit.log").read_text(encoding="utf-8")
    assert "signed in" in log  # the server logged the sign-ins, and not one password
    for secret in (PASSWORD, PASSWORD + "x", "not the password"):
        assert secret not in log


def test_a_viewer_can_look_and_export_but_not_generate_or_delete(isolated_data_dir):
    ids = _team()
    with running_studio(isolated_data_dir) as url, chromium_pages(1) as (page,):
        sign_in_browser(page, url, "vic")
        page.goto(url + "/gallery")
        page.get_by_role("heading", name="Gallery").wait_for()
        settle(page)
        image = ids["acme_image"]
        assert page.locator(f".st-key-d_{image}").count() == 1  # download (export)
        assert page.locator(f".st-key-x_{image}").count() == 0  # no delete
        shot(page, "signin_02_viewer_gallery")
        page.get_by_role("link", name="Generate").first.click()
        page.get_by_text("can look and export").first.wait_for()
        assert page.get_by_role("button", name="Generate").count() == 0
        page.get_by_role("link", name="Libraries").first.click()
        page.get_by_role("tab", name="New library").click()
        page.get_by_text("can look and export").first.wait_for()
        assert page.get_by_role("button", name="Create library").count() == 0
        assert page.get_by_role("link", name="Team").count() == 0
    assert Store(workspace="acme").get(image)  # nothing was deleted


def test_a_member_of_one_workspace_cannot_reach_another(isolated_data_dir):
    ids = _team()
    with running_studio(isolated_data_dir) as url, chromium_pages(1) as (page,):
        sign_in_browser(page, url, "ann")
        page.goto(url + "/gallery")
        page.get_by_role("heading", name="Gallery").wait_for()
        text = _text(page)
        assert "1 image saved" in text and "Acme Shoes" in text
        assert page.locator(f".st-key-d_{ids['globex_image']}").count() == 0
        assert page.locator(f".st-key-d_{ids['acme_image']}").count() == 1
        assert page.get_by_role("combobox", name="Workspace").count() == 0  # one workspace: nothing to switch to

        # a link to Globex's image answers exactly like a link to an image that does not exist
        answers = []
        for wanted in (ids["globex_image"], "0123456789abcdef"):
            page.goto(f"{url}/analyze?id={wanted}")
            page.get_by_text("no longer exists").first.wait_for()
            answers.append(page.get_by_text("no longer exists").first.inner_text())
            page.goto(f"{url}/mosaic?id={wanted}")
            page.get_by_text("no longer exists").first.wait_for()
            assert "Globex" not in _text(page)
        assert answers[0] == answers[1]
        shot(page, "signin_03_other_workspace_link")

        page.goto(url + "/libraries")
        page.get_by_role("heading", name="Libraries").wait_for()
        assert "Globex secret shots" not in _text(page)
        page.goto(url + "/campaigns")
        page.get_by_role("heading", name="Campaigns").wait_for()
        page.get_by_text("2 · Results & export").click()
        assert "Globex launch" not in _text(page)
    # nothing of Globex changed
    assert Store(workspace="globex").get(ids["globex_image"])
    assert LibraryManager(workspace="globex").get("globex-secret")
    assert CampaignStore(Store(workspace="globex")).get(ids["globex_campaign"]).name == "Globex launch"


@pytest.mark.timeout(1500)
def test_two_people_in_two_workspaces_run_a_campaign_each_at_once(isolated_data_dir):
    accounts = Accounts()
    accounts.add_user("root", PASSWORD)
    for name, title, person in (("acme", "Acme Shoes", "ann"), ("globex", "Globex", "bob")):
        accounts.add_workspace(name, title=title)
        accounts.add_user(person, PASSWORD, role="editor", workspace=name)
    with running_studio(isolated_data_dir, workers=2) as url, chromium_pages(2) as (ann, bob):
        for page, person, product, name in ((ann, "ann", "water bottle", "Ann spring"),
                                            (bob, "bob", "rocket skates", "Bob autumn")):
            sign_in_browser(page, url, person)
            page.goto(url)
            page.get_by_text("Start in three steps").wait_for()
            fill_small_campaign(page, product=product, name=name)
        for page in (ann, bob):  # both press Generate, one right after the other
            page.get_by_role("button", name="Generate campaign").click()
        for page in (ann, bob):
            page.get_by_role("button", name="Download ZIP").wait_for(timeout=900_000)
        shot(ann, "signin_04_ann_campaign")
        shot(bob, "signin_05_bob_campaign")
        for page, mine, theirs in ((ann, "Ann spring", "Bob autumn"), (bob, "Bob autumn", "Ann spring")):
            text = _text(page)
            assert mine in text and theirs not in text
            page.get_by_role("link", name="Gallery").first.click()
            page.get_by_role("heading", name="Gallery").wait_for()
            made = Store(workspace="acme" if page is ann else "globex").count()
            assert made >= 2 and f"{made} images saved" in _text(page)
    for workspace, name in (("acme", "Ann spring"), ("globex", "Bob autumn")):
        store = Store(workspace=workspace)
        (campaign,) = CampaignStore(store).list()
        counts = CampaignStore(store).counts(campaign.id)
        assert campaign.name == name and counts["done"] == counts["total"] == store.count()
        assert {r.workspace for r in store.list()} == {workspace}


def test_switching_workspaces_shows_each_ones_own_things_and_is_remembered(isolated_data_dir):
    ids = _team()
    Accounts().set_member("globex", "ann", "viewer")
    with running_studio(isolated_data_dir) as url, chromium_pages(1) as (page,):
        sign_in_browser(page, url, "ann")
        page.goto(url + "/gallery")
        page.get_by_role("heading", name="Gallery").wait_for()
        settle(page)
        assert page.locator(f".st-key-d_{ids['acme_image']}").count() == 1
        assert "Acme Shoes · editor" in _text(page)
        page.get_by_role("combobox", name="Workspace").click()
        page.get_by_role("option", name="Globex").click()
        page.get_by_text("Globex · viewer").wait_for()
        settle(page)
        assert page.locator(f".st-key-d_{ids['globex_image']}").count() == 1
        assert page.locator(f".st-key-d_{ids['acme_image']}").count() == 0
        assert page.locator(f".st-key-x_{ids['globex_image']}").count() == 0  # a viewer there: no delete
        shot(page, "signin_06_switched")
        page.reload()  # the browser comes back to the workspace it used last
        page.get_by_text("Globex · viewer").wait_for()
        settle(page)
        assert page.locator(f".st-key-d_{ids['globex_image']}").count() == 1
