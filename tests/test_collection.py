"""`make demo`: the whole collection executes offline in dependency order, then the results
notebook draws the figures and the report is built to a PDF whose pages render."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from debiaslab import collection
from debiaslab import notebooks as nb
from debiaslab.errors import ConfigError
from debiaslab.results import read_all


def test_plan_orders_every_notebook_after_what_it_needs():
    steps = collection.collection_steps()
    names = [s.name for s in steps]
    expected = {f"{e.slug}/{stage}" for e in (*nb.COLLECTION, *nb.METHODS, *nb.STUDIES)
                for stage in e.stages}  # fmt: skip
    speed = {name for name, _, _ in collection.SPEED}
    assert set(names) == expected | speed | {"results"} and len(names) == len(set(names))
    for position, step in enumerate(steps):
        assert all(names.index(a) < position for a in step.after), step
    assert names[-1] == "results" and set(steps[-1].after) == expected | speed
    # The speed benchmarks run alone: after every notebook, one after the other.
    first_speed = next(s for s in steps if s.command)
    assert set(first_speed.after) == expected and first_speed.notebook is None
    after = dict((s.name, s.after) for s in steps)
    assert after["gpt2/03_post_eval"] == ("gpt2/01_pre_eval", "gpt2/02_finetune")
    assert after["gpt2/02_finetune"] == () and after["precise_debias/04_infer"] == (
        "precise_debias/02_train",
    )
    assert dict((s.name, s.after) for s in steps)["t2i_audit/t2i_audit"] == ()
    only = [s.name for s in collection.collection_steps(only=["socratic"])]
    assert only == ["socratic/01_run", "socratic/02_evaluate", "results"]


def test_the_real_slice_runs_first_beside_the_notebooks_and_before_speed_and_results():
    real = collection.real_step("demo")
    steps = collection.collection_steps(real=real)
    assert steps[0] == real and real.after == ()
    assert real.command[1:5] == ("-m", "debiaslab.cli", "track", "--size")
    assert "{output}/results" in real.command  # the output root, filled in at run time
    speed = [s for s in steps if s.name.startswith("speed/")]
    assert real.name in speed[0].after
    assert real.name in steps[-1].after  # the results notebook sees the real results
    paper = collection.real_step("full", "adapters/x")
    assert paper.command[-2:] == ("--adapter-dir", "adapters/x") and "full" in paper.command
    # With every core it runs alone: after every notebook, before the speed steps.
    alone = collection.collection_steps(real=collection.real_step("full", every_core=True))
    names = [s.name for s in alone]
    at = names.index(real.name)
    notebooks = [s.name for s in alone if s.notebook is not None and s.name != "results"]
    assert set(alone[at].after) == set(notebooks) and names[at + 1].startswith("speed/")


@pytest.mark.slow
def test_a_command_step_gets_the_output_root_and_logs_to_its_file(tmp_path):
    import sys

    code = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_text('ran'); print('hello')"
    step = collection.Step("cmd/one", None, {}, (), (sys.executable, "-c", code, "{output}/x.txt"))
    summary = collection.run_collection(
        tmp_path / "run", output_root=tmp_path / "out", steps=[step], report=False,
        log=lambda line: None,
    )  # fmt: skip
    assert (summary.working("cmd/one") / "x.txt").read_text() == "ran"
    with open(summary.outcomes[0].log) as log:
        assert "hello" in log.read()


@pytest.mark.slow
def test_each_step_is_a_kaggle_session_with_its_upstream_mounted_read_only(tmp_path):
    """A fresh working folder per step; what it reads mounted under its input root, and only
    that; writing there fails; the network is off; results are gathered at the end."""
    import sys

    up = (
        "import os, pathlib; here = pathlib.Path(os.environ['DEBIASLAB_OUTPUT']);"
        "assert here == pathlib.Path.cwd() and not any(here.iterdir());"
        "(here / 'runs').mkdir(); (here / 'runs' / 'adapter.txt').write_text('weights')"
    )
    down = (
        "import os, pathlib, socket; inputs = pathlib.Path(os.environ['DEBIASLAB_INPUT_ROOT']);"
        "print(sorted(p.name for p in inputs.iterdir()));"
        "mounted = inputs / 'debiaslab-up';"
        "print((mounted / 'runs' / 'adapter.txt').read_text())\n"
        "try: (mounted / 'runs' / 'adapter.txt').write_text('changed')\n"
        "except OSError as exc: print('refused', exc.strerror)\n"
        "try: socket.create_connection(('huggingface.co', 443), timeout=5)\n"
        "except OSError as exc: print('offline', exc)"
    )
    steps = [
        collection.Step("up", None, {}, (), (sys.executable, "-c", up)),
        collection.Step("other", None, {}, (), (sys.executable, "-c", down.split(";")[0])),
        collection.Step("down", None, {}, ("up",), (sys.executable, "-c", down)),
    ]
    summary = collection.run_collection(
        tmp_path / "run", output_root=tmp_path / "out", steps=steps, report=False,
        log=lambda line: None,
    )  # fmt: skip
    log = Path(summary.outcomes[2].log).read_text()
    assert "['debiaslab-up']\nweights\nrefused Read-only file system\noffline" in log
    assert "cannot look up huggingface.co" in log
    assert (summary.working("up") / "runs" / "adapter.txt").read_text() == "weights"
    assert not any(summary.run_dir.joinpath("kaggle", "input", "debiaslab-other").iterdir())
    # Finished: the sessions are writable again (a user can delete the run folder).
    (summary.working("up") / "runs" / "adapter.txt").write_text("mine")


@pytest.mark.slow
def test_a_step_beside_others_gets_its_share_of_the_cores_a_lone_one_every_core(tmp_path):
    import os
    import sys

    code = "import os, sys; open(sys.argv[1], 'w').write(os.environ['OMP_NUM_THREADS'])"
    steps = [
        collection.Step(name, None, {}, (), (sys.executable, "-c", code, f"{{output}}/{name}"))
        for name in ("a", "b")
    ]
    steps.append(
        collection.Step(
            "c", None, {}, ("a", "b"), (*steps[0].command[:3], "{output}/c"), every_core=True
        )
    )
    summary = collection.run_collection(
        tmp_path / "run", output_root=tmp_path / "out", steps=steps, workers=2, report=False,
        log=lambda line: None,
    )  # fmt: skip
    cores = os.cpu_count() or 1
    threads = {name: int((summary.working(name) / name).read_text()) for name in "abc"}
    assert threads == {"a": max(1, cores // 2), "b": max(1, cores // 2), "c": cores}
    assert collection.real_step("full", every_core=True).every_core
    assert not collection.real_step("demo").every_core


def test_quiet_libraries_silences_what_a_user_cannot_act_on_and_says_so():
    import logging

    from transformers.utils import logging as hf_logging

    from debiaslab.env import quiet_libraries

    bars = hf_logging.is_progress_bar_enabled()
    try:
        note = quiet_libraries()
        for name in ("bitsandbytes.backends.cpu.ops", "kernels._internals.hf_hub",
                     "transformers.utils.import_utils"):  # fmt: skip
            assert not logging.getLogger(name).isEnabledFor(logging.WARNING), name
            assert logging.getLogger(name).isEnabledFor(logging.ERROR), name
        assert not hf_logging.is_progress_bar_enabled()
        assert "bitsandbytes" in note and "torchvision" in note
    finally:
        for name in ("bitsandbytes.backends.cpu.ops", "kernels",
                     "transformers.utils.import_utils"):  # fmt: skip
            logging.getLogger(name).setLevel(logging.NOTSET)
        if bars:
            hf_logging.enable_progress_bar()


def _notebook(path, source: str):
    cell = nbformat.v4.new_code_cell(source)
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    return path


@pytest.mark.slow
def test_a_failing_notebook_skips_what_needs_it_and_not_the_others(tmp_path):
    steps = [
        collection.Step(
            "a/fails", _notebook(tmp_path / "a.ipynb", "raise ValueError('boom')"), {}
        ),
        collection.Step("a/after", _notebook(tmp_path / "b.ipynb", "x = 1"), {}, ("a/fails",)),
        collection.Step("c/fine", _notebook(tmp_path / "c.ipynb", "print('fine')"), {}),
    ]
    lines = []
    with pytest.raises(collection.CollectionError, match="a/fails") as caught:
        collection.run_collection(tmp_path / "run", output_root=tmp_path / "out", steps=steps,
                       report=False, log=lines.append)  # fmt: skip
    status = {o.name: o.status for o in caught.value.summary.outcomes}
    assert status == {"a/fails": "failed", "a/after": "skipped", "c/fine": "ok"}
    assert "boom" in str(caught.value)  # the log's tail says why
    timings = collection.read_timings(tmp_path / "run")
    assert [s["status"] for s in timings["steps"]] == ["failed", "skipped", "ok"]
    assert (tmp_path / "run" / "notebooks" / "c" / "fine.ipynb").is_file()
    assert any("a/after: skipped" in line for line in lines)
    # A prerequisite that no earlier step is would wait forever: refused before anything runs.
    orphan = [collection.Step("x/y", steps[2].notebook, {}, ("x/nothing",))]
    with pytest.raises(ConfigError, match="x/nothing"):
        collection.run_collection(tmp_path / "run2", output_root=tmp_path / "out", steps=orphan)
    assert not (tmp_path / "run2" / "timings.json").exists()


@pytest.mark.slow
def test_the_demo_runs_every_notebook_and_builds_the_report(demo_run):
    for step in (s for s in collection.collection_steps() if s.notebook is not None):
        executed = nbformat.read(demo_run.executed(step.name), as_version=4)
        assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code"), step.name
    # Every cell that shows a figure or an image grid holds it as a PNG in the executed copy.
    for step in (s for s in collection.collection_steps() if s.notebook is not None):
        cells = nbformat.read(demo_run.executed(step.name), as_version=4).cells
        showing = [c for c in cells if c.cell_type == "code" and ".show(" in c.source]
        for cell in showing:
            kinds = {k for o in cell.outputs for k in o.get("data", {})}
            assert "image/png" in kinds, (step.name, cell.source[:80])
    drawn = {s.name for s in collection.collection_steps() if s.notebook is not None
             and ".show(" in s.notebook.read_text()}  # fmt: skip
    assert {"decoding_balance/decoding_balance", "attention_gate/attention_gate",
            "calibration/calibration", "t2i_audit/t2i_audit", "precise_debias/02_train",
            "precise_debias/03_evaluate", "precise_debias/04_infer", "socratic/01_run",
            "socratic/02_evaluate", "results"} <= drawn  # fmt: skip
    results_nb = json.dumps(nbformat.read(demo_run.executed("results"), as_version=4).cells)
    # The results notebook read every other notebook's output from its mounted inputs.
    assert "results from debiaslab-attention-gate-attention-gate: " in results_nb
    assert "debiaslab-calibration-calibration: " in results_nb
    timings = collection.read_timings(demo_run.run_dir)
    assert {s["status"] for s in timings["steps"]} == {"ok"}
    assert all(s["seconds"] > 0 for s in timings["steps"])
    out = demo_run.run_dir.parent / "out"
    figures = {p.name for p in (out / "figures").iterdir()}
    for name in ("calibration", "prepost_forest", "size_effect", "group_gaps",
                 "decoding_tradeoff", "gating_tradeoff", "demographics", "align_curve",
                 "socratic_clipscore"):  # fmt: skip
        assert {f"{name}.png", f"{name}.pdf"} <= figures, name
    # The demo's report lies in its run folder: the checkout's report/ is the committed paper.
    assert demo_run.report == demo_run.run_dir / "report" / "debiaslab-report.pdf"
    speed = {r["config"]["name"] for _, r in read_all(out / "results" / "speed")}
    assert speed == {"crows_pairs_scoring", "generation"}


@pytest.mark.slow
def test_the_report_pdf_renders_and_says_what_is_tiny(demo_run):
    pdfium = pytest.importorskip("pypdfium2")
    document = pdfium.PdfDocument(str(demo_run.report))
    try:
        assert len(document) >= 5
        pages = (document[i].get_textpage().get_text_range() for i in range(len(document)))
        text = " ".join(" ".join(pages).split())  # line breaks fall anywhere
        image = document[0].render(scale=1.0).to_pil().convert("L")
    finally:
        document.close()
    assert image.size[0] > 500 and image.size[1] > 700
    histogram = image.histogram()
    assert histogram[255] < sum(histogram) * 0.99  # not a blank page: text was drawn
    for heading in ("Abstract", "Introduction", "Related Work", "Methods", "Experimental setup",
                    "Results", "Limitations", "Ethics Statement", "References"):  # fmt: skip
        assert heading in text, heading
    assert "tiny offline models only" in text and "Real-model findings" in text
    assert "Planted-bias calibration" in text and "No calibration results" not in text
    assert "speedup_vs_plain" in text and "No speed measurements" not in text
