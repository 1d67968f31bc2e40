"""Bad input never costs a traceback, a hang, a memory blow-up or anything already made.

A data folder is filled first (two gallery images, a user library of two pictures); then each bad
input below goes through the command line (a real ``python -m core`` process, watched for time and
peak memory) or through the Python API that the pages call. Every one must:

* end with exit status 2 and a message (``error: …`` on stderr, ``{"error": …}`` with ``--json``),
  never a traceback and never the CLI's last-resort "unexpected problem" message;
* finish within its time limit (no hang) and stay under 2 GB of memory;
* leave the data folder and the database exactly as they were (same records, same files).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
MEMORY_LIMIT_KB = 2 * 1024 * 1024  # 2 GB, in ru_maxrss units (KiB on Linux)
TIME_LIMIT = 90.0


# ------------------------------------------------------------------------------------ the files
def _png(path: Path, seed: int = 0, size: int = 24) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def _safetensors_with_header(path: Path, header: bytes) -> Path:
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    return path


def _zip_bomb(path: Path) -> Path:
    """One member that inflates from ~100 KB to 100 MB of zeros, named like a picture."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("big.png", b"\0" * (100 * 1024 * 1024))
    return path


def _deep_yaml(depth: int) -> str:
    return "id: deep\nname: " + "[" * depth + "]" * depth + "\n"


@dataclass
class Inputs:
    """Bad files made once per test in a folder outside the data folder."""

    folder: Path
    good_png: Path = field(init=False)

    def __post_init__(self) -> None:
        f = self.folder
        f.mkdir(parents=True, exist_ok=True)
        self.good_png = _png(f / "good.png")
        (f / "not-an-image.png").write_bytes(b"this is text, not a picture\n" * 10)
        (f / "an-existing-file.txt").write_text("keep me")
        with open(f / "sparse.png", "wb") as handle:
            handle.truncate(2**30)  # 1 GiB of nothing: must be refused without reading it
        os.mkfifo(f / "pipe.png")
        _zip_bomb(f / "bomb.zip")
        (f / "not-a-zip.zip").write_bytes(b"PK\x03\x04 but nothing else")
        # Stable Diffusion model folders that are not what they claim
        for name, index in {
            "sd-index-list": "[1, 2, 3]",
            "sd-classname-list": json.dumps({"_class_name": ["StableDiffusionPipeline"], "unet": ["x", "y"]}),
            "sd-index-garbage": "{not json",
        }.items():
            (f / name).mkdir()
            (f / name / "model_index.json").write_text(index)
        _safetensors_with_header(f / "header-list.safetensors", b"[1, 2, 3]")
        _safetensors_with_header(f / "header-number.safetensors", b"42")
        (f / "huge-length.safetensors").write_bytes(struct.pack("<Q", 2**60) + b"{}")
        (f / "truncated.safetensors").write_bytes(b"\x01\x02")


# A case: the arguments (after ``python -m core``), or ``{env: ...}`` additions; paths are
# formatted with the Inputs' attributes (``{f}`` = the inputs folder, ``{png}`` = a good picture).
CLI_CASES: dict[str, list[str]] = {
    # generate: numbers out of range are refused, not replaced
    "steps-zero": ["generate", "--steps", "0", "--library", "digits", "--size", "16"],
    "size-zero": ["generate", "--size", "0"],
    "count-zero": ["generate", "--count", "0"],
    "count-negative": ["generate", "--count", "-3"],
    "seed-negative": ["generate", "--seed", "-1"],
    "seed-2-63": ["generate", "--seed", str(2**63)],
    "seed-huge": ["generate", "--seed", "9" * 30],
    "seed-text": ["generate", "--seed", "abc"],
    "out-is-a-file": [
        "generate",
        "--library",
        "digits",
        "--size",
        "16",
        "--steps",
        "2",
        "--out",
        "{f}/an-existing-file.txt",
    ],
    "unknown-library": ["generate", "--library", "no-such-library"],
    "library-path-escape": ["generate", "--library", "../../etc"],
    "unknown-engine": ["generate", "--engine", "warp-drive"],
    "unknown-machine": ["generate", "--machine", "xx"],
    "sd-index-list": ["generate", "--engine", "sd", "--model", "{f}/sd-index-list", "--prompt", "x"],
    "sd-classname-list": ["generate", "--engine", "sd", "--model", "{f}/sd-classname-list", "--prompt", "x"],
    "sd-index-garbage": ["generate", "--engine", "sd", "--model", "{f}/sd-index-garbage", "--prompt", "x"],
    "sd-header-list": ["generate", "--engine", "sd", "--model", "{f}/header-list.safetensors", "--prompt", "x"],
    "sd-header-number": ["generate", "--engine", "sd", "--model", "{f}/header-number.safetensors", "--prompt", "x"],
    "sd-huge-length": ["generate", "--engine", "sd", "--model", "{f}/huge-length.safetensors", "--prompt", "x"],
    "sd-truncated": ["generate", "--engine", "sd", "--model", "{f}/truncated.safetensors", "--prompt", "x"],
    "sd-missing-model": ["generate", "--engine", "sd", "--model", "{f}/no-such-model", "--prompt", "x"],
    "sd-init-not-image": ["generate", "--engine", "sd", "--init-image", "{f}/not-an-image.png", "--prompt", "x"],
    "trained-not-a-model": ["generate", "--engine", "trained", "--model", "{f}/sd-index-list"],
    # analyze
    "analyze-missing": ["analyze", "{f}/nothing.png", "--library", "mine"],
    "analyze-not-image": ["analyze", "{f}/not-an-image.png", "--library", "mine"],
    "analyze-dev-zero": ["analyze", "/dev/zero", "--library", "mine"],
    "analyze-fifo": ["analyze", "{f}/pipe.png", "--library", "mine"],
    "analyze-sparse": ["analyze", "{f}/sparse.png", "--library", "mine"],
    "analyze-map-missing-folder": ["analyze", "{png}", "--library", "mine", "--source-map", "{f}/nope/map.png"],
    "analyze-map-extension": ["analyze", "{png}", "--library", "mine", "--source-map", "{f}/map.gif"],
    "analyze-unknown-library": ["analyze", "{png}", "--library", "no-such-library"],
    "analyze-latent-no-model": ["analyze", "{png}", "--library", "mine", "--space", "latent"],
    # libraries
    "add-dev-zero": ["libraries", "add", "newlib", "/dev/zero"],
    "add-sparse": ["libraries", "add", "newlib", "{f}/sparse.png"],
    "add-fifo": ["libraries", "add", "newlib", "{f}/pipe.png"],
    "add-missing": ["libraries", "add", "newlib", "{f}/nothing.png"],
    "add-not-image": ["libraries", "add", "newlib", "{f}/not-an-image.png"],
    "add-zip-bomb": ["libraries", "add", "newlib", "{f}/bomb.zip"],
    "add-not-a-zip": ["libraries", "add", "newlib", "{f}/not-a-zip.zip"],
    "add-to-existing-bad": ["libraries", "add", "mine", "{f}/not-an-image.png"],
    "add-bad-name": ["libraries", "add", "bad name!", "{png}"],
    "add-nothing": ["libraries", "add", "newlib"],
    "show-unknown": ["libraries", "show", "no-such-library"],
    "delete-unknown": ["libraries", "delete", "no-such-library"],
    # gallery
    "gallery-limit-negative": ["gallery", "--limit", "-1"],
    "gallery-limit-text": ["gallery", "--limit", "many"],
    # campaigns
    "campaign-unknown-template": ["campaign", "no-such-template", "--out", "{f}/out"],
    "campaign-resume-unknown": ["campaign", "--resume", "no-such-campaign", "--out", "{f}/out"],
    "campaign-field-without-value": ["campaign", "social-post-set", "--field", "product", "--out", "{f}/out"],
    "campaign-no-template": ["campaign", "--out", "{f}/out"],
    "campaign-steps-zero": ["campaign", "social-post-set", "--steps", "0", "--out", "{f}/out"],
    "campaign-bad-template-file": ["campaign", "deep", "--out", "{f}/out"],
}

#: environment variations: the variable and its value (formatted like the arguments)
ENV_CASES: dict[str, tuple[dict[str, str], list[str]]] = {
    "db-url-malformed": ({"MOSAIC_DATABASE_URL": "not a url at all"}, ["gallery"]),
    "db-url-unknown-dialect": ({"MOSAIC_DATABASE_URL": "foo://somewhere/db"}, ["gallery"]),
    "db-url-no-driver": ({"MOSAIC_DATABASE_URL": "mysql+mysqldb://u@127.0.0.1/x"}, ["gallery"]),
    "db-url-unreachable": ({"MOSAIC_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1:1/x"}, ["gallery"]),
    "db-corrupt-sqlite": ({"MOSAIC_DATABASE_URL": "sqlite:///{f}/corrupt.db"}, ["gallery"]),
    "data-dir-is-a-file": ({"MOSAIC_DATA_DIR": "{f}/an-existing-file.txt"}, ["gallery"]),
}


# ------------------------------------------------------------------------------------ the state
def _snapshot(data_dir: Path) -> dict:
    """Records and files that must survive any bad input (caches and built-in libraries excluded)."""
    from core.libraries import LibraryManager
    from core.libraries.builtins import BUILTIN_LIBRARIES
    from core.store import Store

    store = Store()
    records = sorted(r.id for r in store.list())
    with store.session() as session:
        from sqlalchemy import text

        try:
            campaigns = session.execute(text("SELECT count(*) FROM campaigns")).scalar_one()
        except Exception:  # table not made yet
            campaigns = 0
    libraries = {i.name: i.count for i in LibraryManager().list() if i.name not in BUILTIN_LIBRARIES}
    skip = {"score-indexes", "kernels"}
    files = {}
    for path in sorted(data_dir.rglob("*")):
        rel = path.relative_to(data_dir)
        parts = rel.parts
        if parts[0] in skip or (parts[0] == "libraries" and len(parts) > 1 and parts[1] in BUILTIN_LIBRARIES):
            continue
        if parts[0] == "libraries" and "cache" in parts:
            continue
        if rel.name.startswith("mosaic.db") or rel.name.endswith(".lock"):
            continue  # the database is compared by its records; lock files may stay
        if path.is_file():
            files[str(rel)] = path.stat().st_size
    return {"records": records, "campaigns": campaigns, "libraries": libraries, "files": files}


@pytest.fixture
def filled(isolated_data_dir, tmp_path):
    """A data folder holding two gallery images and a user library 'mine' of two pictures."""
    from core.engines.base import GeneratedImage
    from core.libraries import LibraryManager
    from core.store import Store

    rng = np.random.default_rng(3)
    images = [
        GeneratedImage(
            image=Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)),
            seed=s,
            engine="local-score",
            params={"library": "mine"},
        )
        for s in (1, 2)
    ]
    Store().save(images, title="before")
    pictures = [(f"p{i}.png", _png(tmp_path / f"p{i}.png", seed=i, size=32).read_bytes()) for i in range(2)]
    LibraryManager().create_from_files("mine", pictures, title="Mine")
    inputs = Inputs(tmp_path / "inputs")
    (inputs.folder / "corrupt.db").write_bytes(b"SQLite format 3\0" + os.urandom(4096))
    templates = isolated_data_dir / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    (templates / "deep.yaml").write_text(_deep_yaml(20_000))
    (templates / "nan.yaml").write_text("id: nan\nname: .nan\nchannels: [.inf]\n")
    return inputs, _snapshot(isolated_data_dir)


def _fmt(value: str, inputs: Inputs) -> str:
    return value.format(f=inputs.folder, png=inputs.good_png)


def _run_cli(argv: list[str], env_extra: dict[str, str], data_dir: Path) -> tuple[int, str, str, int, float]:
    """Run ``python -m core`` in a process; returns (status, stdout, stderr, peak KiB, seconds).

    The peak is sampled every 50 ms from ``/proc`` while the command runs.
    """
    env = dict(os.environ, MOSAIC_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.update(env_extra)
    out_path, err_path = data_dir.parent / "fuzz.out", data_dir.parent / "fuzz.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "core", *argv], cwd=ROOT, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL
        )
        peak_kb = 0
        while True:
            peak_kb = max(peak_kb, _vm_hwm_kb(proc.pid))
            pid, status, _usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > TIME_LIMIT:
                proc.kill()
                os.wait4(proc.pid, 0)
                pytest.fail(f"python -m core {' '.join(argv)} hung (> {TIME_LIMIT:.0f} s)")
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return (
        proc.returncode,
        out_path.read_text(errors="replace"),
        err_path.read_text(errors="replace"),
        peak_kb,
        time.monotonic() - start,
    )


def _vm_hwm_kb(pid: int) -> int:
    """The process's own peak memory so far (``ru_maxrss`` would also count the test process it forked from)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _check_refused(argv: list[str], status: int, stdout: str, stderr: str, peak_kb: int, json_mode: bool) -> None:
    shown = f"python -m core {' '.join(argv)}\nexit {status}\nstdout: {stdout[-2000:]}\nstderr: {stderr[-3000:]}"
    assert "Traceback" not in stderr + stdout, shown
    assert status == 2, shown
    assert "unexpected problem" not in stderr.lower(), "fell through to the last-resort handler:\n" + shown
    assert "error:" in stderr and len(stderr.strip()) > len("error:") + 5, shown
    if json_mode:
        payload = (
            json.loads(stdout.strip().splitlines()[-1])
            if stdout.strip()
            else json.loads(stderr.strip().splitlines()[0])
        )
        assert isinstance(payload, dict) and payload.get("error"), shown
    assert peak_kb < MEMORY_LIMIT_KB, f"peak memory {peak_kb / 1024:.0f} MB\n" + shown


@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_refuses_bad_input_and_keeps_everything(case, filled, isolated_data_dir):
    inputs, before = filled
    argv = [_fmt(a, inputs) for a in CLI_CASES[case]]
    json_mode = case.endswith(("zero", "negative", "bomb", "list")) or case.startswith("add-")
    if json_mode and argv[0] != "campaign" and "--json" not in argv:
        argv = [*argv, "--json"]
    status, stdout, stderr, peak, _ = _run_cli(argv, {}, isolated_data_dir)
    _check_refused(argv, status, stdout, stderr, peak, json_mode and "--json" in argv)
    assert _snapshot(isolated_data_dir) == before


@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", sorted(ENV_CASES))
def test_cli_refuses_bad_environment(case, filled, isolated_data_dir):
    inputs, before = filled
    env, argv = ENV_CASES[case]
    env = {k: _fmt(v, inputs) for k, v in env.items()}
    status, stdout, stderr, peak, _ = _run_cli(argv + ["--json"], env, isolated_data_dir)
    _check_refused(argv, status, stdout, stderr, peak, json_mode=True)
    assert _snapshot(isolated_data_dir) == before


def test_one_bad_user_template_does_not_hide_the_others(filled, isolated_data_dir):
    _inputs, _before = filled
    status, stdout, stderr, _peak, _ = _run_cli(["campaign", "--list-templates", "--json"], {}, isolated_data_dir)
    assert status == 0, stderr
    ids = {t["id"] for t in json.loads(stdout)}
    assert "social-post-set" in ids
    assert not {"deep", "nan"} & ids


# ------------------------------------------------------------------------- the Python API of the pages
def _api_cases(inputs: Inputs) -> dict[str, Callable[[], object]]:
    from core.analyzer import analyze_image
    from core.engines.local_score import LocalScoreEngine, LocalScoreRequest
    from core.engines.registry import get_engine
    from core.engines.sd import SDRequest
    from core.libraries import LibraryManager
    from core.store import Store
    from core.templates import TemplateLibrary
    from core.templates.library import parse_template

    libraries = LibraryManager()
    bomb = (inputs.folder / "bomb.zip").read_bytes()
    return {
        "create-from-garbage": lambda: libraries.create_from_files("newlib", [("x.png", b"not a picture")]),
        "create-from-bad-zip": lambda: libraries.create_from_zip("newlib", b"PK\x03\x04garbage"),
        "create-from-zip-bomb": lambda: libraries.create_from_zip("newlib", bomb),
        "add-garbage-to-existing": lambda: libraries.add_files("mine", [("x.png", b"not a picture")]),
        "add-fifo-folder": lambda: libraries.create_from_folder("newlib", inputs.folder / "pipe.png"),
        "load-unknown-library": lambda: libraries.load("no-such-library", 16),
        "store-unknown-record": lambda: Store().get("no-such-id"),
        "analyze-garbage": lambda: analyze_image(inputs.folder / "not-an-image.png", "mine"),
        "analyze-unknown-library": lambda: analyze_image(inputs.good_png, "no-such-library"),
        "template-unknown": lambda: TemplateLibrary().get("no-such-template"),
        "template-bad-file": lambda: TemplateLibrary().get("deep"),
        "template-nan": lambda: parse_template("id: x\nname: .nan\nchannels: [.inf]\n", "x"),
        "template-deep": lambda: parse_template(_deep_yaml(20_000), "deep"),
        "local-steps-zero": lambda: LocalScoreEngine().generate(LocalScoreRequest(steps=0, library="mine")),
        "local-size-zero": lambda: LocalScoreEngine().generate(LocalScoreRequest(size=0, library="mine")),
        "sd-index-list": lambda: get_engine("sd").generate(
            SDRequest(model=str(inputs.folder / "sd-index-list"), prompt="x")
        ),
        "sd-header-list": lambda: get_engine("sd").generate(
            SDRequest(model=str(inputs.folder / "header-list.safetensors"), prompt="x")
        ),
    }


API_CASES = [
    "create-from-garbage",
    "create-from-bad-zip",
    "create-from-zip-bomb",
    "add-garbage-to-existing",
    "add-fifo-folder",
    "load-unknown-library",
    "store-unknown-record",
    "analyze-garbage",
    "analyze-unknown-library",
    "template-unknown",
    "template-bad-file",
    "template-nan",
    "template-deep",
    "local-steps-zero",
    "local-size-zero",
    "sd-index-list",
    "sd-header-list",
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", API_CASES)
def test_page_api_refuses_bad_input_with_a_message(case, filled, isolated_data_dir):
    from core.errors import MosaicError

    inputs, before = filled
    call = _api_cases(inputs)[case]
    with pytest.raises(MosaicError) as caught:
        call()
    message = str(caught.value)
    assert message and "Traceback" not in message and len(message) < 2000
    assert _snapshot(isolated_data_dir) == before


def test_the_case_lists_are_run(tmp_path):
    """Guard against a case list that silently shrinks or names a case that does not exist."""
    assert len(CLI_CASES) >= 50 and len(ENV_CASES) >= 6
    assert sorted(API_CASES) == sorted(_api_cases(Inputs(tmp_path / "inputs")))
