"""Approximate sampling: after the high-noise steps, compare with a small part of the library.

Two ways, chosen by :func:`uses_index`:

* **Patch index** (``els`` and ``bbels`` on CPU with the native kernel, :mod:`core.score.ivf`): the
  first 10 % of the steps (high noise, big patches) are exact; afterwards every pixel of a shared patch dictionary
  compares with the library patches of the few k-means lists nearest to its own patch (top-k
  patches per pixel from an inverted-file index, built once per library and patch size); corner
  pixels of ``bbels`` stay exact. Measured on FashionMNIST (BENCHMARKS.md): about 6× faster than
  the exact sampler once the index exists, Pearson r ≥ 0.99 per image from the same noise (lowest
  of 60 images: 0.9925).
* **Candidate images** (``is``, ``ls``, on a GPU or without the kernel, and ``els``/``bbels`` where
  the index loses: slower than exact at 64 px and up, heavier than exact on most ``bbels`` settings):
  the first steps are exact; each sample then keeps the ``top_k`` library images (of its class) that
  supplied the most pixels at the last exact step (the top patch of each pixel), topped up with the
  images nearest to its ``x0`` estimate, and the machine is exact on that subset (about 3.3× faster,
  r ≥ 0.98 on FashionMNIST bbELS with 40 images). How many steps stay exact and how many images are
  kept depend on the image size (:data:`CANDIDATE_DRAFTS`): up to 96 px 35 % and half of the images
  (r ≥ 0.99 on ``photos`` at 64 px, about 1.8× faster than exact); at 128 px 4 % of the images.

Both are deterministic but no longer equal to the exact sampler.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from core.score import native
from core.score.index_store import IndexStore
from core.score.ivf import INDEXES, IVF_KINDS, MAX_LISTS, fingerprint, ivf_denoise, padded_library
from core.score.machine import denoise, map_jobs
from core.score.result import CancelCheck, DenoiseResult, scatter_parts

logger = logging.getLogger(__name__)


#: Fraction of the steps (from the highest noise) that stay exact with the patch index (``els`` /
#: ``bbels`` on CPU, :mod:`core.score.ivf`); candidate images: :data:`CANDIDATE_DRAFTS`.
INDEXED_EXACT_FRACTION = 0.1


@dataclass(frozen=True)
class CandidateDraft:
    """How the candidate-image draft narrows the library at one image size: the leading
    ``exact_fraction`` of the steps stay exact, then each sample keeps ``share`` of the images it may
    use, at least ``minimum`` (all of them when it may use fewer)."""

    exact_fraction: float
    share: float
    minimum: int


#: The candidate-image draft by the smallest image size (pixels, the larger side) it applies to, as
#: measured on ``photos`` bbELS (398 images; Pearson r of the final image against the exact image of
#: the same noise; BENCHMARKS.md, issue 17). Up to 96 px: 35 % of the steps exact, then half of the
#: images, at least 40 (64 px: r 0.999–1.000 on 3 seeds, about 20 s against 36 s exact; 120 images
#: gave 0.980–0.998). At 128 px a picture follows far fewer images: with the same exact steps, 16
#: images (4 %) give r 0.993–0.998 on 3 seeds and 24 give 0.996–0.999, where fewer exact steps drop a
#: seed below 0.98 (6 steps, 24 or 32 images: 0.979); half of the images would keep the draft near
#: 200 s, against 371 s exact and the issue's 60 s.
CANDIDATE_DRAFTS: dict[int, CandidateDraft] = {
    0: CandidateDraft(exact_fraction=0.35, share=0.5, minimum=40),
    128: CandidateDraft(exact_fraction=0.35, share=0.04, minimum=16),
}


def candidate_draft(size: int) -> CandidateDraft:
    """The candidate-image draft's settings for images of ``size`` pixels (the larger side)."""
    return CANDIDATE_DRAFTS[max(smallest for smallest in CANDIDATE_DRAFTS if smallest <= size)]


def default_top_k(allowed: int, size: int) -> int:
    """Candidate images kept per sample, of ``allowed`` images at ``size`` pixels, when the caller
    names no number (:data:`CANDIDATE_DRAFTS`)."""
    draft = candidate_draft(size)
    return max(1, min(allowed, max(draft.minimum, math.ceil(draft.share * allowed))))


def uses_index(kind: str, device: torch.device | str) -> bool:
    """Whether the approximate mode of ``kind`` on ``device`` uses the patch index
    (:mod:`core.score.ivf`) rather than candidate images: on a CPU with the native kernel. (Without
    it the index's PyTorch loop over the lists is slower than the exact machine: measured ×0.8 on
    the built-in faces, against ×3 with the kernel.)"""
    dev = torch.device(device)
    return kind in IVF_KINDS and dev.type == "cpu" and native.available(dev)


def exact_steps(steps: int, size: int, indexed: bool = False) -> int:
    """Number of leading (high-noise) steps that stay exact in a draft of ``size``-pixel images."""
    fraction = INDEXED_EXACT_FRACTION if indexed else candidate_draft(size).exact_fraction
    return max(1, round(steps * fraction))


def choose_candidates(
    x0: torch.Tensor,
    sources: torch.Tensor | None,
    library: torch.Tensor,
    top_k: int | None,
    labels: torch.Tensor | None,
    class_labels: torch.Tensor | None,
) -> list[torch.Tensor]:
    """Sorted library indices each sample keeps (at most ``top_k`` of its allowed images; ``None``:
    :func:`default_top_k` of them).

    ``sources`` ``(B, H, W, 3)``: the top patch of every pixel at the last exact step. The images that
    supplied the most pixels come first (ties: lower index); when fewer than ``top_k`` images supplied
    pixels, the images nearest to ``x0`` (L2 over the whole image) fill the set. With ``sources=None``
    the set is just the ``top_k`` nearest images.
    """
    flat_lib = library.flatten(1)
    # no temporary copy of the library (a draft must not need more memory than the exact run)
    lib_norms = torch.linalg.vector_norm(flat_lib, dim=1).square()
    result = []
    for b in range(x0.shape[0]):
        allowed = torch.arange(library.shape[0], device=library.device)
        if class_labels is not None:
            assert labels is not None
            allowed = torch.nonzero(labels.to(library.device) == class_labels[b].to(library.device)).flatten()
        size = max(library.shape[2], library.shape[3])
        keep = min(top_k, allowed.numel()) if top_k is not None else default_top_k(allowed.numel(), size)
        chosen = allowed[:0]
        if sources is not None:
            used = torch.bincount(sources[b, ..., 0].flatten().to(library.device), minlength=library.shape[0])
            used = used[allowed]
            by_use = torch.argsort(used, descending=True, stable=True)
            chosen = allowed[by_use[: min(keep, int((used > 0).sum()))]]
        if chosen.numel() < keep:
            distances = (lib_norms - 2.0 * (flat_lib @ x0[b].flatten()))[allowed]
            distances[torch.isin(allowed, chosen)] = float("inf")
            nearest = allowed[torch.topk(distances, keep - chosen.numel(), largest=False).indices]
            chosen = torch.cat([chosen, nearest])
        result.append(torch.sort(chosen).values)
    return result


def denoise_pruned(
    x: torch.Tensor,
    ab: float,
    library: torch.Tensor,
    kind: str,
    patch_size: int,
    candidates: list[torch.Tensor],
    budget: int,
    should_cancel: CancelCheck | None,
) -> DenoiseResult:
    """The exact machine of each sample on its own candidate images (indices mapped back); the
    samples run side by side on a multi-core CPU (:func:`core.score.machine.map_jobs`). Each works
    within a share of its budget in proportion to its images, so that the copy of its images and
    its working memory stay within what the exact machine needs (a draft is never heavier)."""

    def run(job: tuple[torch.Tensor, torch.Tensor], job_budget: int) -> DenoiseResult:
        sample_index, members = job
        part = denoise(
            x[sample_index],
            ab,
            library[members],
            kind,
            patch_size,
            memory_budget_bytes=max(1, job_budget * members.numel() // library.shape[0]),
            should_cancel=should_cancel,
        )
        part.sources[..., 0] = members[part.sources[..., 0]]
        return part

    jobs = [(torch.tensor([b], device=x.device), members) for b, members in enumerate(candidates)]
    parts = map_jobs(run, jobs, budget, x.device)
    return DenoiseResult(
        x0=torch.cat([p.x0 for p in parts]),
        sources=torch.cat([p.sources for p in parts]),
        entropy=torch.cat([p.entropy for p in parts]),
    )


def indexes_missing(
    library: torch.Tensor,
    kind: str,
    patch_sizes: list[int],
    labels: torch.Tensor | None = None,
    class_labels: torch.Tensor | None = None,
    batch: int = 1,
    index_dir: Path | None = None,
) -> bool:
    """Whether an approximate run would have to build a patch index first (none in memory or in
    ``index_dir`` for one of its classes and the sizes of its approximate steps)."""
    run = IndexedRun(library, kind, labels, class_labels, batch, index_dir)
    steps = len(patch_sizes)
    size = max(library.shape[2], library.shape[3])
    return any(run.missing(p) for p in set(patch_sizes[exact_steps(steps, size, True) :]))


class IndexedRun:
    """The approximate steps of one sampling run of ``els`` / ``bbels`` (:mod:`core.score.ivf`).

    Every job (a class of a class-conditional run, else a share of the samples against the whole
    library) uses the patch index of its library images, built on first use and kept for later
    runs of this process (:data:`core.score.ivf.INDEXES`) and, with an ``index_dir``, on disk
    (:class:`~core.score.index_store.IndexStore`).
    """

    def __init__(
        self,
        library: torch.Tensor,
        kind: str,
        labels: torch.Tensor | None,
        class_labels: torch.Tensor | None,
        batch: int,
        index_dir: Path | None = None,
    ) -> None:
        self.kind = kind
        self.store = IndexStore(index_dir) if index_dir is not None else None
        # per job: (patch size, its padded library images): consecutive steps often share a size
        self._padded: dict[int, tuple[int, torch.Tensor]] = {}
        # (samples, their library images, the indices of those images, content hash): the images are
        # selected once per run, not at every step
        self.jobs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]] = []
        if class_labels is None:
            everything = torch.arange(library.shape[0])
            key = fingerprint(library)
            parts = max(1, min(torch.get_num_threads(), batch))
            self.jobs = [(samples, library, everything, key) for samples in torch.arange(batch).tensor_split(parts)]
        else:
            assert labels is not None
            for label in torch.unique(class_labels).tolist():
                members = torch.nonzero(labels.cpu() == label).flatten()
                samples = torch.nonzero(class_labels.cpu() == label).flatten()
                images = library[members]
                self.jobs.append((samples, images, members, fingerprint(images)))

    def missing(self, patch_size: int) -> int:
        """How many jobs have no index at ``patch_size`` yet (neither in memory nor stored)."""
        return sum(
            1
            for _, _, _, key in self.jobs
            if not INDEXES.has(key, self.kind, patch_size)
            and (self.store is None or not self.store.has(key, self.kind, patch_size))
        )

    def denoise(
        self,
        x: torch.Tensor,
        ab: float,
        patch_size: int,
        budget: int,
        should_cancel: CancelCheck | None,
        every_list: bool = False,
    ) -> DenoiseResult:
        """One approximate evaluation of the batch ``x``; jobs run side by side (:func:`map_jobs`).
        With ``every_list`` every pixel compares with all lists of its class: the exact machine
        (the native kernel does that faster than the exact machine's own path at big patches)."""
        nprobe = MAX_LISTS if every_list else None

        def run(job: tuple[torch.Tensor, torch.Tensor], job_budget: int) -> DenoiseResult:
            number = int(job[1])
            samples, library, members, key = self.jobs[number]
            index = INDEXES.get(library, key, self.kind, patch_size, self.store)
            if self._padded.get(number, (None,))[0] != patch_size:  # each job on one worker: no race
                self._padded[number] = (patch_size, padded_library(library, self.kind, patch_size))
            padded = self._padded[number][1]
            part = ivf_denoise(x[samples], ab, library, index, job_budget, should_cancel, nprobe, padded)
            part.sources[..., 0] = members[part.sources[..., 0]]
            return part

        numbered = [(job[0], torch.tensor(i)) for i, job in enumerate(self.jobs)]
        parts = map_jobs(run, numbered, budget, x.device)
        return scatter_parts(x, [job[0] for job in self.jobs], parts)
