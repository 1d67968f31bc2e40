import json
from pathlib import Path

import pytest

from core.cli import main


def test_generate_json_saves_to_gallery(capsys, tmp_path):
    out = tmp_path / "renders"
    code = main(
        [
            "generate",
            "--engine",
            "els",
            "--library",
            "faces",
            "--size",
            "16",
            "--count",
            "2",
            "--seed",
            "3",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["seed"] for d in data] == [3, 4]
    assert data[0]["params"]["machine"] == "els"
    assert len(list(out.glob("*.png"))) == 2
    assert main(["gallery", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {d["id"] for d in listed} == {d["id"] for d in data}


def test_generate_on_the_authors_time_grid(capsys):
    assert main(["generate", "--library", "digits", "--size", "16", "--grid", "reference", "--json"]) == 0
    (data,) = json.loads(capsys.readouterr().out)
    assert data["params"]["grid"] == "reference" and len(data["params"]["patch_sizes"]) == 19
    assert main(["generate", "--grid", "sideways", "--json"]) == 2
    assert "invalid choice" in json.loads(capsys.readouterr().out)["error"]


def test_generate_approximate_json(capsys):
    """The fast draft runs where it is estimated to win: the patch index (els/bbels at small sizes),
    else candidate images; exact where neither wins."""
    from core.engines.local_score import LocalScoreEngine, LocalScoreRequest

    engine = LocalScoreEngine(device="cpu")
    methods = {}
    for library, size, machine in (("digits", 16, "els"), ("faces", 16, "bbels")):
        request = LocalScoreRequest(library=library, size=size, machine=machine, approximate=True)
        methods[engine.plan(request)["draft"]] = (library, size, machine)
    assert set(methods) == {"index", "images"}
    for method, (library, size, machine) in methods.items():
        args = ["generate", "--library", library, "--size", str(size), "--machine", machine, "--approximate"]
        assert main([*args, "--json"]) == 0
        (data,) = json.loads(capsys.readouterr().out)
        assert data["params"]["approximate"] is True
        if method == "index":
            assert data["params"]["approximate_method"] == "patch index" and "top_k" not in data["params"]
        else:
            assert data["params"]["approximate_method"] == "candidate images" and data["params"]["top_k"] >= 40
    args = ["generate", "--library", "faces", "--size", "16", "--machine", "bbels", "--approximate"]
    assert main([*args, "--top-k", "100000", "--json"]) == 0  # keeping every image cannot win: exact
    (data,) = json.loads(capsys.readouterr().out)
    assert data["params"]["approximate_method"].startswith("exact") and "top_k" not in data["params"]
    args = ["generate", "--library", "faces", "--size", "16", "--machine", "ls", "--approximate", "--top-k", "5"]
    assert main([*args, "--json"]) == 0
    (data,) = json.loads(capsys.readouterr().out)
    assert data["params"]["top_k"] == 5 and data["params"]["approximate_method"] == "candidate images"


def test_libraries_list_and_show_json(capsys):
    assert main(["libraries", "list", "--json"]) == 0
    names = [d["name"] for d in json.loads(capsys.readouterr().out)]
    assert {"photos", "faces", "digits"} <= set(names)
    assert main(["libraries", "show", "digits", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["labels"] == [str(i) for i in range(10)]


def test_libraries_add_folder_and_bad_input(capsys, tmp_path):
    from PIL import Image

    (tmp_path / "pics" / "red").mkdir(parents=True)
    Image.new("RGB", (30, 30), "red").save(tmp_path / "pics" / "red" / "a.png")
    (tmp_path / "pics" / "red" / "empty.png").write_bytes(b"")
    assert main(["libraries", "add", "mine", str(tmp_path / "pics"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report[0]["added"] == 1 and report[0]["skipped"][0][0].endswith("empty.png")


def test_errors_exit_2_with_message(capsys):
    assert main(["generate", "--engine", "nonsense", "--json"]) == 2
    captured = capsys.readouterr()
    assert "Unknown engine" in json.loads(captured.out)["error"]
    assert main(["generate", "--library", "missing", "--size", "16"]) == 2
    assert "missing" in capsys.readouterr().err


def test_generate_with_sd_engine_on_a_tiny_pipeline(capsys, tmp_path):
    from tests.engines.sd.tiny import build_tiny_sd15

    model = build_tiny_sd15(tmp_path / "tiny")
    code = main(
        [
            "generate",
            "--engine",
            "sd",
            "--model",
            str(model),
            "--prompt",
            "a red shoe",
            "--steps",
            "2",
            "--width",
            "64",
            "--height",
            "64",
            "--count",
            "2",
            "--seed",
            "9",
            "--json",
        ]
    )
    assert code == 0, capsys.readouterr().err
    data = json.loads(capsys.readouterr().out)
    assert [d["seed"] for d in data] == [9, 10]
    assert data[0]["engine"] == "sd" and data[0]["width"] == 64
    assert data[0]["params"]["prompt"] == "a red shoe"


def test_campaign_command_exports_a_folder_and_zip(capsys, tmp_path):
    assert main(["campaign", "--list-templates", "--json"]) == 0
    ids = [t["id"] for t in json.loads(capsys.readouterr().out)]
    assert "social-post-set" in ids
    out = tmp_path / "campaign"
    code = main(
        [
            "campaign",
            "marketing-variations",
            "--field",
            "product=oat milk",
            "--library",
            "faces",
            "--size",
            "16",
            "--steps",
            "4",
            "--seeds",
            "1",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0, capsys.readouterr().err
    data = json.loads(capsys.readouterr().out)
    assert data["zip"] and (out / "manifest.csv").exists() and (out / "contact-sheet.html").exists()
    assert len(list((out / "images").glob("*.png"))) >= 2
    assert any("text" in n.lower() for n in data["notices"])  # offline engine says it has no text model


def test_analyze_command_flags_a_near_copy_and_writes_the_source_map(capsys, tmp_path, isolated_data_dir):
    from PIL import Image
    from skimage import data as skdata

    photos = tmp_path / "refs"
    photos.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        Image.fromarray(getattr(skdata, name)()).convert("RGB").resize((96, 96)).save(photos / f"{name}.png")
    assert main(["libraries", "add", "refs", str(photos), "--json"]) == 0
    capsys.readouterr()
    query = tmp_path / "query.jpg"
    Image.open(photos / "coffee.png").resize((120, 120)).save(query, quality=80)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["analyze", str(query), "--library", "refs", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["near_copy"]["is_copy"] is True
    assert data["copy_risk"] == "high" and data["verdict"]["risk"] == "high" and data["verdict"]["basis"] == "search"
    source_map = Path(data["source_map_png"])
    assert source_map.exists() and source_map.parent == isolated_data_dir / "exports" / "analyze"  # the data folder
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written next to the checked image
    out = tmp_path / "results"
    assert main(["analyze", str(query), "--library", "refs", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    (written,) = out.iterdir()
    assert written.name.startswith("query-") and written.name.endswith("_sources.png")
    assert f"source map written to {written}" in printed and "high copy risk" in printed
    assert main(["analyze", str(query), "--library", "refs", "--space", "latent"]) == 2
    assert "--model" in capsys.readouterr().err


def test_generate_with_the_trained_demo_model(capsys):
    assert main(["generate", "--engine", "trained", "--count", "2", "--seed", "4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["engine"] for d in data] == ["trained", "trained"] and data[0]["width"] == 16


# ----------------------------------------------------------------------- issue 13: nothing lost
def _no_computing(monkeypatch):
    """Fail the test if an engine or the analyzer starts computing."""
    import core.analyzer
    from core.engines.local_score import LocalScoreEngine

    def computing(*_args, **_kwargs):
        raise AssertionError("computed although the arguments were bad")

    monkeypatch.setattr(LocalScoreEngine, "generate", computing)
    monkeypatch.setattr(core.analyzer, "analyze_image", computing)


def _saved_count() -> int:
    from core.store import Store

    return Store().count()


def test_generate_refuses_bad_numbers_instead_of_replacing_them(capsys, monkeypatch):
    _no_computing(monkeypatch)
    base = ["generate", "--library", "digits"]
    cases = [
        (["--steps", "0"], "--steps"),
        (["--steps", "-3"], "--steps"),
        (["--size", "0"], "--size"),
        (["--size", "-16"], "--size"),
        (["--count", "0"], "--count"),
        (["--count", "-1"], "--count"),
        (["--seed", "-1"], "--seed"),
        (["--seed", str(2**63)], "--seed"),
        (["--seed", "1e3"], "--seed"),
        (["--top-k", "0", "--approximate"], "--top-k"),
        (["--seed", str(2**63 - 1), "--count", "2"], "seed must be a whole number from 0 to 9223372036854775806"),
    ]
    for extra, expected in cases:
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert expected in err and "Traceback" not in err, (extra, err)
    assert _saved_count() == 0


def test_generate_refuses_an_out_path_that_is_a_file_before_computing(capsys, monkeypatch, tmp_path):
    _no_computing(monkeypatch)
    a_file = tmp_path / "renders"
    a_file.write_text("not a folder")
    assert main(["generate", "--library", "digits", "--size", "8", "--steps", "2", "--out", str(a_file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main(["generate", "--library", "digits", "--out", str(a_file / "below")]) == 2
    assert "--out" in capsys.readouterr().err
    assert _saved_count() == 0


def test_analyze_checks_the_source_map_path_before_analysing(capsys, monkeypatch, tmp_path):
    from PIL import Image

    _no_computing(monkeypatch)
    image = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), "red").save(image)
    for target, expected in [
        (tmp_path / "no-such-folder" / "map.png", "does not exist"),
        (tmp_path / "map.gif", "must end in"),
        (tmp_path / "map", "must end in"),
        (tmp_path, "must end in"),
    ]:
        code = main(["analyze", str(image), "--library", "digits", "--source-map", str(target), "--json"])
        captured = capsys.readouterr()
        assert code == 2 and expected in json.loads(captured.out)["error"], (target, captured)
    (tmp_path / "folder.png").mkdir()
    assert main(["analyze", str(image), "--library", "digits", "--source-map", str(tmp_path / "folder.png")]) == 2
    assert "this is a folder" in capsys.readouterr().err


def test_analyze_refuses_a_bad_out_folder_before_analysing(capsys, monkeypatch, tmp_path):
    from PIL import Image

    _no_computing(monkeypatch)
    image = tmp_path / "photo.png"
    Image.new("RGB", (32, 32), "red").save(image)
    a_file = tmp_path / "results"
    a_file.write_text("not a folder")
    for out, expected in [(a_file, "is a file, not a folder"), (a_file / "below", "--out")]:
        code = main(["analyze", str(image), "--library", "digits", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and expected in err and "Traceback" not in err, (out, err)
    code = main(["analyze", str(image), "--library", "digits", "--out", str(tmp_path / "x"), "--source-map",
                 str(tmp_path / "map.png"), "--json"])
    assert code == 2 and "not both" in json.loads(capsys.readouterr().out)["error"]
    assert not (tmp_path / "x").exists() and not list(tmp_path.rglob("*_sources.png"))


def test_gallery_refuses_a_limit_below_one(capsys):
    for bad in ("-1", "0", "ten"):
        assert main(["gallery", "--limit", bad]) == 2
        err = capsys.readouterr().err
        assert "--limit" in err and "whole number" in err and "Traceback" not in err
    assert main(["gallery", "--limit", "1"]) == 0


def test_an_unexpected_problem_is_one_line_and_the_details_come_with_v(capsys, monkeypatch):
    from core.store import Store

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk controller on fire")

    monkeypatch.setattr(Store, "list", broken)
    assert main(["gallery"]) == 2
    err = capsys.readouterr().err
    assert "error: unexpected problem (RuntimeError): disk controller on fire. Run with -v for details." in err
    assert "Traceback" not in err
    assert main(["-v", "gallery"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_ctrl_c_is_a_short_message_with_status_130(capsys, monkeypatch):
    from core.store import Store

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Store, "list", interrupted)
    assert main(["gallery"]) == 130
    err = capsys.readouterr().err
    assert "Stopped." in err and "Traceback" not in err


def test_unusable_database_or_data_folder_exit_2_with_a_message(tmp_path):
    import os
    import subprocess
    import sys

    damaged = tmp_path / "data" / "mosaic.db"
    damaged.parent.mkdir()
    damaged.write_bytes(b"\x00garbage" * 500)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [
        ({"MOSAIC_DATABASE_URL": "::::"}, "not a valid address"),
        ({"MOSAIC_DATABASE_URL": "foo://bar"}, "cannot use here"),
        ({"MOSAIC_DATABASE_URL": "postgresql+psycopg://u:pw@127.0.0.1:1/x"}, "could not be reached"),
        ({"MOSAIC_DATA_DIR": str(damaged.parent)}, "damaged or is not a database file"),
        ({"MOSAIC_DATA_DIR": str(a_file)}, "is a file, not a folder"),
    ]
    root = Path(__file__).resolve().parents[1]
    for env, expected in cases:
        full = {**os.environ, "MOSAIC_DATA_DIR": str(tmp_path / "data"), **env}
        if "MOSAIC_DATABASE_URL" not in env:
            full.pop("MOSAIC_DATABASE_URL", None)
        run = subprocess.run(
            [sys.executable, "-m", "core", "gallery"], cwd=root, env=full, capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 2 and expected in run.stderr and "Traceback" not in run.stderr, (env, run.stderr)


@pytest.fixture(scope="module")
def tiny_sd15(tmp_path_factory):
    from tests.engines.sd.tiny import build_tiny_sd15

    return build_tiny_sd15(tmp_path_factory.mktemp("tiny") / "tiny-sd15")


def _sd_args(model: Path, count: int, steps: int) -> list[str]:
    return ["generate", "--engine", "sd", "--model", str(model), "--prompt", "a red shoe", "--steps", str(steps),
            "--width", "64", "--height", "64", "--count", str(count), "--seed", "11"]  # fmt: skip


def test_generate_keeps_the_images_finished_before_a_later_one_fails(capsys, monkeypatch, tiny_sd15):
    """Issue 13 item 5: each image is saved when it finishes, not all at the end."""
    from core.engines.sd.engine import StableDiffusionEngine
    from core.errors import ResourceError
    from core.store import Store

    real_one = StableDiffusionEngine._one
    calls = []

    def third_fails(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise ResourceError("Out of memory on image 3.")
        return real_one(self, *args, **kwargs)

    monkeypatch.setattr(StableDiffusionEngine, "_one", third_fails)
    assert main(_sd_args(tiny_sd15, count=4, steps=2)) == 2
    err = capsys.readouterr().err
    assert "Out of memory on image 3." in err and "2 finished images saved" in err
    store = Store()
    records = store.list()
    assert sorted(r.seed for r in records) == [11, 12]
    assert len({r.batch_id for r in records}) == 1
    assert all(store.image_path(r).is_file() for r in records)


def test_a_killed_generate_keeps_its_finished_images(tmp_path, tiny_sd15):
    """Issue 13 item 5: SIGKILL while the later images are being made keeps the finished ones, with their files."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from core.store import Store

    root = Path(__file__).resolve().parents[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "core", *_sd_args(tiny_sd15, count=6, steps=60)],
        cwd=root,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    try:
        while True:  # wait until two images are in the gallery, then kill the command mid-batch
            assert process.poll() is None, "the command ended before it could be killed"
            assert time.monotonic() < deadline, "two images were never saved"
            if (Path(os.environ["MOSAIC_DATA_DIR"]) / "mosaic.db").exists() and Store(recover=False).count() >= 2:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    store = Store()
    records = store.list()
    # images 1 and 2 were finished before the kill: they are kept (a third may have finished in the moment
    # before it; the last cannot have)
    assert sorted(r.seed for r in records)[:2] == [11, 12] and 2 <= len(records) < 6
    assert all(store.image(r).size == (64, 64) for r in records)


def test_commands_that_only_read_or_wait_do_not_load_torch(tmp_path):
    """Loading torch takes 1-2 s of every command: listing libraries, and ``analyze`` while a worker runs the
    check (it only reads the saved analysis and draws its map), do not load it (nor scipy, nor Alembic for
    a database that is up to date)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "MOSAIC_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    env.pop("MOSAIC_DATABASE_URL", None)
    # what cmd_analyze imports (the job itself runs in the worker)
    analyze_side = (
        "import core.cli, core.analyzer.render, core.analyzer.jobs, core.analyzer.verdict, core.images, "
        "core.jobs, core.jobs.cli, core.jobs.requests, core.libraries; "
        "from core.analyzer import source_map_image, AnalysisResult"
    )
    first = subprocess.run(  # makes the data folder and its database (migrated: Alembic is loaded then)
        [sys.executable, "-m", "core", "libraries", "--json"], cwd=root, env=env, capture_output=True, timeout=120
    )
    assert first.returncode == 0, first.stderr[-2000:]
    for command in (["-c", analyze_side], ["-m", "core", "libraries", "--json"]):
        run = subprocess.run(
            [sys.executable, "-X", "importtime", *command], cwd=root, env=env, capture_output=True, text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        lines = [line for line in run.stderr.splitlines() if line.startswith("import time:")]
        loaded = {line.rsplit("|", 1)[-1].strip() for line in lines}
        assert "core.libraries" in loaded and "torch" not in loaded, command
        assert "scipy" not in loaded and "alembic" not in loaded, command  # a third of a second each
