"""Two runs of one campaign share its items (claimed in the database), and a dead run shows as interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from core.campaigns import CampaignRunner, CampaignStore, plan_campaign
from core.campaigns.store import INTERRUPTED, new_claimant
from core.store import Store

ROOT = Path(__file__).resolve().parents[2]


def _campaign(fast, seeds: int = 1, **extra):
    plan = plan_campaign(
        "seasonal-campaign", {"product": "wool scarf"}, engine="local-score", seeds=seeds, seed=3, **dict(fast, **extra)
    )
    campaigns = CampaignStore()
    return campaigns, campaigns.create(plan)


def _made_per_item(campaign_id: str) -> Counter:
    store = Store(recover=False)
    return Counter(r.params.get("campaign_item") for r in store.list() if r.batch_id == campaign_id)


def test_claims_are_atomic_between_concurrent_claimants(fast):
    campaigns, campaign = _campaign(fast)
    total = campaigns.counts(campaign.id)["total"]
    got: list[str] = []
    lock = threading.Lock()

    def claim_all() -> None:
        me = new_claimant()
        own = CampaignStore()
        while (item := own.claim_next(campaign.id, me)) is not None:
            with lock:
                got.append(item.id)
            own.mark_done(item.id, f"g-{item.id}")

    threads = [threading.Thread(target=claim_all) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == total and len(set(got)) == total


def test_a_claim_of_a_dead_process_can_be_taken_over(fast):
    campaigns, campaign = _campaign(fast)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    first = campaigns.claim_next(campaign.id, f"{os.uname().nodename}:{dead.pid}:x")
    assert first is not None
    alive = new_claimant()
    again = campaigns.claim_next(campaign.id, alive)
    assert again is not None and again.id == first.id  # the dead run's item comes first again


def _cli(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", "core", "campaign", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.timeout(600)
def test_a_run_and_a_resume_at_once_make_each_image_once(fast, tmp_path):
    campaigns, campaign = _campaign(fast, seeds=2, steps=8)
    total = campaigns.counts(campaign.id)["total"]
    runs = [_cli("--resume", campaign.id, "--out", str(tmp_path / f"out{i}"), "--json") for i in range(2)]
    outputs = [p.communicate(timeout=500) for p in runs]
    assert [p.returncode for p in runs] == [0, 0], [o[1][-2000:] for o in outputs]
    made = _made_per_item(campaign.id)
    assert sum(made.values()) == total and set(made.values()) == {1}
    reports = [json.loads(o[0]) for o in outputs]
    assert sum(len(r["made"]) for r in reports) == total
    assert campaigns.get(campaign.id).status == "done"


@pytest.mark.timeout(600)
def test_a_killed_run_shows_interrupted_and_resume_finishes_it_once(fast, tmp_path):
    campaigns, campaign = _campaign(fast, seeds=2, steps=8)
    total = campaigns.counts(campaign.id)["total"]
    run = _cli("--resume", campaign.id, "--out", str(tmp_path / "a"))
    deadline = time.monotonic() + 300
    while campaigns.counts(campaign.id)["done"] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    run.send_signal(signal.SIGKILL)
    run.wait(30)
    shown = CampaignStore()
    assert shown.get(campaign.id).status == "running"  # as the dead run left it…
    assert shown.shown_status(shown.get(campaign.id)) == INTERRUPTED  # …but shown as interrupted
    listing = _cli("--list", "--json")
    out, err = listing.communicate(timeout=120)
    assert listing.returncode == 0, err
    (row,) = [r for r in json.loads(out) if r["id"] == campaign.id]
    assert row["status"] == INTERRUPTED and row["total"] == total and row["done"] >= 1
    resume = _cli("--resume", campaign.id, "--out", str(tmp_path / "b"))
    _out, err = resume.communicate(timeout=500)
    assert resume.returncode == 0, err
    made = _made_per_item(campaign.id)
    assert sum(made.values()) == total and set(made.values()) == {1}
    assert shown.get(campaign.id).status == "done"


def test_a_run_in_this_process_leaves_no_claims_behind(fast):
    campaigns, campaign = _campaign(fast)
    report = CampaignRunner(campaigns).run(campaign.id)
    assert report.status == "done" and report.elsewhere == 0
    assert all(i.claimed_by is None for i in campaigns.items(campaign.id))
