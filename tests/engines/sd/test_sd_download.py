"""Downloading a model shows the bytes written (all files together), then the parts loaded.

The "Hub" here is a small HTTP server on 127.0.0.1 serving a tiny pipeline the way huggingface.co serves a
repository (repository info, file tree, files with their commit and size headers). Nothing leaves this computer:
huggingface_hub's endpoint points at that server, and only for these tests is its offline mode switched off.
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.engines.base import Progress
from core.engines.sd import PipelineCache, SDRequest, StableDiffusionEngine, hub

REPO = "acme/tiny-sd"
SHA = "a" * 40


def _server(folder: Path) -> ThreadingHTTPServer:
    files = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # quiet
            pass

        def _json(self, body) -> None:
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _file(self, head: bool) -> None:
            name = self.path.split("?")[0][len(f"/{REPO}/resolve/"):].split("/", 1)[1]
            data = files.get(name)
            if data is None:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("X-Repo-Commit", SHA)
            self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            self._file(head=True)

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            if path.startswith(f"/{REPO}/resolve/"):
                self._file(head=False)
            elif path.startswith(f"/api/models/{REPO}/tree/"):
                self._json([{"type": "file", "oid": hashlib.sha1(d).hexdigest(), "size": len(d), "path": n}
                            for n, d in files.items()])
            elif path.startswith(f"/api/models/{REPO}"):
                self._json({"id": REPO, "modelId": REPO, "sha": SHA, "siblings": [{"rfilename": n} for n in files]})
            else:
                self.send_response(404)
                self.end_headers()

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture
def local_hub(tiny_models, tmp_path, monkeypatch):
    """huggingface_hub pointed at a local server holding the tiny SD 1.5 pipeline as ``acme/tiny-sd``."""
    from huggingface_hub import constants

    server = _server(tiny_models.sd15)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    yield tiny_models.sd15
    server.shutdown()


def _weights_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_download_reports_the_bytes_of_all_files_together(local_hub):
    seen: list[tuple[int, int]] = []
    folder = hub.download(REPO, lambda done, total: seen.append((done, total)))
    total = _weights_bytes(local_hub)
    assert (folder / "model_index.json").is_file() and (folder / "unet").is_dir()
    assert len(seen) >= 5  # one report per chunk written, several files
    assert all(t == total for _, t in seen)  # the total is known from the start (the repository's file list)
    dones = [d for d, _ in seen]
    assert dones == sorted(dones) and dones[-1] == total and dones[0] < total
    # everything in the cache already: nothing to fetch, the bar is full at once
    again: list[tuple[int, int]] = []
    hub.download(REPO, lambda done, total: again.append((done, total)))
    assert again == [(1, 1)]


def test_a_first_use_downloads_then_loads_with_a_moving_bar(local_hub):
    events: list[Progress] = []
    engine = StableDiffusionEngine(cache=PipelineCache(max_loaded=1))
    request = SDRequest(model=REPO, prompt="a cat", steps=2, width=64, height=64)
    images = engine.generate(request, on_progress=events.append)
    assert len(images) == 1
    messages = [e.message for e in events]
    downloading = [e for e in events if e.message.startswith("Downloading the model:")]
    loading = [e for e in events if e.message.startswith("Loading the model: part")]
    assert downloading and loading
    assert events.index(downloading[-1]) < events.index(loading[0])  # bytes first, then the parts
    assert downloading[-1].fraction == 1.0 and any(0 < e.fraction < 1 for e in downloading)
    assert " kB of " in downloading[0].message  # amounts a person reads
    assert [e.fraction for e in downloading] == sorted(e.fraction for e in downloading)
    assert messages[-1] == "Image 1 of 1: step 2 of 2"
