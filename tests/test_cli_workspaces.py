"""``--workspace`` on the command line: a command of workspace A cannot see, export or delete anything of B."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from core.accounts import Accounts
from core.campaigns import CampaignStore, plan_campaign
from core.engines.base import GeneratedImage
from core.jobs import JobQueue
from core.libraries import LibraryManager
from core.store import Store


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core", *args], capture_output=True, text=True, env=dict(os.environ), timeout=300
    )


def _item(seed: int) -> GeneratedImage:
    image = Image.fromarray(np.random.default_rng(seed).integers(0, 255, (8, 8, 3), dtype=np.uint8))
    return GeneratedImage(image=image, seed=seed, engine="test", params={}, arrays={})


def test_every_command_sees_only_its_workspace(tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    accounts = Accounts()
    for name in ("acme", "globex"):
        accounts.add_workspace(name)
    (theirs,) = Store(workspace="globex").save([_item(1)])
    (mine,) = Store(workspace="acme").save([_item(2)])
    (default_image,) = Store().save([_item(3)])
    LibraryManager(workspace="globex").create("secret-shots", title="Globex secret shots")
    plan = plan_campaign("ab-ad-pair", {"product": "skates", "benefit": "fast"}, engine="local-score", seed=1,
                         library="faces", size=16, steps=2, name="Globex launch")
    campaign = CampaignStore(Store(workspace="globex")).create(plan)
    job = JobQueue(Store(workspace="globex")).submit("generate", {}, owner="user:bob", title="Globex job")

    gallery = json.loads(run("gallery", "--workspace", "acme", "--json").stdout)
    assert [g["id"] for g in gallery] == [mine.id]
    assert [g["id"] for g in json.loads(run("gallery", "--json").stdout)] == [default_image.id]  # as before
    libraries = json.loads(run("libraries", "list", "--workspace", "acme", "--json").stdout)
    assert "secret-shots" not in {lib["name"] for lib in libraries} and "faces" in {lib["name"] for lib in libraries}
    assert "secret-shots" in {lib["name"] for lib in json.loads(run("libraries", "--workspace", "globex",
                                                                      "--json").stdout)}
    assert json.loads(run("campaign", "--list", "--workspace", "acme", "--json").stdout) == []
    assert json.loads(run("jobs", "list", "--workspace", "acme", "--json").stdout) == []
    refused = [
        run("libraries", "show", "secret-shots", "--workspace", "acme", "--json"),
        run("libraries", "delete", "secret-shots", "--workspace", "acme", "--json"),
        run("campaign", "--resume", campaign.id, "--workspace", "acme", "--out", str(out), "--json"),
        run("jobs", "show", job.id, "--workspace", "acme", "--json"),
        run("jobs", "cancel", job.id, "--workspace", "acme", "--json"),
    ]
    for result in refused:
        assert result.returncode == 2, result.stdout + result.stderr
        assert "error" in json.loads(result.stdout) and "Traceback" not in result.stderr
    assert not list(out.iterdir())  # nothing of Globex was exported
    assert LibraryManager(workspace="globex").get("secret-shots")
    assert CampaignStore(Store(workspace="globex")).get(campaign.id)
    assert JobQueue(Store(workspace="globex")).get(job.id).state == "queued"
    assert Store(workspace="globex").get(theirs.id)
