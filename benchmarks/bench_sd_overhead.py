"""Overhead of the studio's Stable Diffusion wrapper over a bare diffusers call.

Both sides run the same tiny SD 1.x pipeline object (so loading is excluded), the same scheduler
(DPM++ 2M Karras), steps, guidance, size and seed, one image per call, interleaved, and the
median over repeats is compared. The wrapper adds: request validation, settings resolution,
the per-model lock, prompt-length check, step callback (cancel check), metadata.

Run: ``python benchmarks/bench_sd_overhead.py [--steps 20] [--repeats 15] [--size 64] [--threads 1]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from core.engines.sd import PipelineCache, SDRequest, StableDiffusionEngine  # noqa: E402
from tests.engines.sd.tiny import build_tiny_sd15  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_tiny_sd15(Path(tmp) / "tiny-sd15")
        engine = StableDiffusionEngine(cache=PipelineCache(max_loaded=1))
        request = SDRequest(model=str(folder), prompt="a red bicycle on a beach", negative_prompt="blurry",
                            steps=args.steps, guidance=7.0, width=args.size, height=args.size, seed=1234,
                            scheduler="DPM++ 2M Karras")
        loaded = engine.load(str(folder))
        pipe = loaded.pipe
        pipe.scheduler = loaded.scheduler("DPM++ 2M Karras")

        def bare():
            return pipe(prompt=request.prompt, negative_prompt=request.negative_prompt,
                        num_inference_steps=args.steps, guidance_scale=7.0, width=args.size, height=args.size,
                        generator=torch.Generator("cpu").manual_seed(1234)).images[0]

        def wrapped():
            return engine.generate(request)[0].image

        bare_image, wrapped_image = bare(), wrapped()  # warm-up, and same settings -> same pixels
        same = bare_image.tobytes() == wrapped_image.tobytes()
        # time spent inside the diffusers call during wrapped runs, to separate the wrapper's own cost
        inner: list[float] = []
        pipe_class = type(pipe)
        original_call = pipe_class.__call__

        def timed_call(self, *a, **k):
            start = time.perf_counter()
            try:
                return original_call(self, *a, **k)
            finally:
                inner.append(time.perf_counter() - start)

        times: dict[str, list[float]] = {"bare": [], "wrapper": []}
        outside: list[float] = []
        for repeat in range(args.repeats):
            order = (("bare", bare), ("wrapper", wrapped))
            for name, fn in order if repeat % 2 == 0 else order[::-1]:  # ABBA: cancels drift
                pipe_class.__call__ = timed_call if name == "wrapper" else original_call
                start = time.perf_counter()
                fn()
                elapsed = time.perf_counter() - start
                times[name].append(elapsed)
                if name == "wrapper":
                    outside.append(elapsed - inner[-1])
        pipe_class.__call__ = original_call
    bare_s, wrap_s = statistics.median(times["bare"]), statistics.median(times["wrapper"])
    overhead = (wrap_s - bare_s) / bare_s * 100
    own = statistics.median(outside)
    print(f"steps={args.steps} size={args.size} repeats={args.repeats} threads={args.threads}")
    print(f"identical images: {same}")
    print(f"bare diffusers : median {bare_s * 1000:.1f} ms")
    print(f"studio wrapper : median {wrap_s * 1000:.1f} ms")
    print(f"overhead       : {overhead:+.1f} % ({(wrap_s - bare_s) * 1000:+.1f} ms per image, wall-clock medians)")
    print(f"outside the diffusers call: median {own * 1000:.2f} ms per image ({own / bare_s * 100:.2f} %)")


if __name__ == "__main__":
    main()
