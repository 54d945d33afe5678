"""The report's headline findings: the real model leads (named by its display name, every number
with an interval and its n), tiny-classifier scores never pass as a real model's toxicity, a
missing result is named, and the PDF carries a digest of the text it was built from, so a stale
committed PDF fails here without compiling Typst."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from debiaslab import report, smollm2
from debiaslab.benchmarks import crows_pairs, generation_metrics
from debiaslab.env import repo_root
from debiaslab.metrics import Metric
from debiaslab.mitigation.tradeoff import tradeoff_record, tradeoff_row
from debiaslab.report import findings, numbers, paper
from debiaslab.results import BenchmarkOutput, make_record, write_result
from debiaslab.stats import bootstrap_vectorized
from debiaslab.t2i.precise_debias.align import align_record

SMOL = {
    "name": "smollm2-135m-instruct",
    "source": "/c/debiaslab/models/smollm2-135m-instruct-q4_1",
    "family": "causal",
    "n_parameters": 134_515_008,
    **smollm2.source_record(),
}
TINY = {"name": "tiny-gpt2", "source": "/c/tiny/tiny-gpt2", "family": "causal"}


def _items(stereotyped: np.ndarray) -> pd.DataFrame:
    n = len(stereotyped)
    more = np.where(stereotyped, -10.0, -12.0) - np.arange(n) * 0.01
    return pd.DataFrame({
        "index": np.arange(n), "sent_more": [f"m{i}" for i in range(n)],
        "sent_less": [f"l{i}" for i in range(n)], "direction": "stereo",
        "bias_type": np.where(np.arange(n) % 2, "gender", "race-color"),
        "sent_more_score": more, "sent_less_score": -11.0 - np.arange(n) * 0.01,
        "n_masked": 0, "stereotyped": stereotyped, "neutral": False,
    })  # fmt: skip


def _crows(folder, model, items, stage="eval", split="all", adapter=None):
    metrics, ci = bootstrap_vectorized(crows_pairs.harness_metrics(items), len(items), n_boot=200)
    output = BenchmarkOutput("crows_pairs", metrics, ci, crows_pairs.METRICS, n_items=len(items))
    info = {**model, "adapter": adapter}
    config = {"mode": "harness", "n_boot": 200, "split": split, "adapter": adapter}
    record = make_record(output, model=info, config=config, timing={}, stage=stage)
    record["eval_config"] = {"crows": {"crows_split": split}}
    return write_result(record, folder, items=items)


def _bold(folder, model, toxicity_model):
    metrics = {"toxicity/mean": 0.3, "gender/toxicity/gap": 0.2,
               "gender/toxicity/gap_p_value": 0.01, "gender/honest/gap": 0.05,
               "gender/honest/gap_p_value": 0.4}  # fmt: skip
    ci = {"toxicity/mean": (0.2, 0.4), "gender/toxicity/gap": (0.1, 0.3),
          "gender/honest/gap": (0.0, 0.1)}  # fmt: skip
    output = BenchmarkOutput("bold", metrics, ci, generation_metrics.METRICS, n_items=40)
    record = make_record(output, model=model, config={}, timing={})
    record["eval_config"] = {"generation": {"toxicity_model": toxicity_model,
                                            "regard_model": "tiny-regard"}}  # fmt: skip
    return write_result(record, folder)


class _LM:
    info = SMOL
    name = "smollm2-135m-instruct"


def _real_track(root):
    """What the real-model track writes (the tiny collection's record shapes)."""
    rng = np.random.default_rng(0)
    everything = _items(rng.random(200) < 0.6)
    _crows(root / "real", SMOL, everything)
    pre_flags = rng.random(80) < 0.6
    post_flags = pre_flags.copy()
    post_flags[:20] = False  # fine-tuning turned 20 pairs (some already anti-stereotypical)
    _crows(root / "real", SMOL, _items(pre_flags), "pre", "heldout")
    _crows(root / "real", SMOL, _items(post_flags), "post", "heldout", adapter="/w/lora")
    rows = [
        tradeoff_row("balance", a, rng.random(30) < p, 10.0 * (1 + a / 10), 10.0, n_boot=200)
        for a, p in ((0.0, 0.8), (1.0, 0.6), (2.0, 0.5))
    ]
    rows.append(tradeoff_row("self-debias", 50.0, rng.random(30) < 0.9, 60.0, 10.0, n_boot=200))
    write_result(tradeoff_record(pd.DataFrame(rows), _LM(), "decoding_tradeoff"), root / "real")
    curve = [
        {"iteration": i, "shares": {"a": s, "b": 1 - s}, "max_abs_delta": abs(s - 0.5),
         "tv": abs(s - 0.5), "undetected": u, "n_rewrites": 24,
         "ci": {"tv": [abs(s - 0.5) - 0.1, abs(s - 0.5) + 0.1], "undetected": [0.0, 0.5]}}
        for i, (s, u) in enumerate(((0.9, 0.25), (0.7, 0.1), (0.55, 0.05)))
    ]  # fmt: skip
    record = align_record({"curve": curve, "target": {"a": 0.5, "b": 0.5}, "stopped": "x"}, _LM())
    write_result(record, root / "real")
    _bold(root / "real", SMOL, "tiny-toxicity")
    return pre_flags, post_flags


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    flags = _real_track(root)
    _crows(root / "tiny-demo", TINY, _items(np.arange(50) % 3 == 0))
    return root, flags


def test_real_findings_lead_with_intervals_and_the_display_name(results):
    root, (pre, post) = results
    rows = findings.headline_rows(root)
    kinds = [r.kind for r in rows]
    assert kinds[0] == "real" and kinds == sorted(kinds, key=findings.KINDS.index)
    real = [r for r in rows if r.kind == "real"]
    assert {r.model for r in real} == {smollm2.DISPLAY_NAME}
    assert all(r.ci is not None and r.ci[0] <= r.value <= r.ci[1] for r in real)
    crows = next(r for r in real if r.key == "crows_pairs")
    assert crows.n == 200  # the run over every pair, not a held-out half
    lora = next(r for r in real if r.key == "lora")
    assert lora.value == pytest.approx(100 * (post.mean() - pre.mean()))  # post − pre, in points
    assert lora.n == 80 and "paired bootstrap" in lora.note
    # The paired interval is narrower than the one two independent runs' intervals allow.
    records = {r["stage"]: r for _, r in report.load(root).of("crows_pairs") if "stage" in r}
    low_pre, high_pre = records["pre"]["ci"]["pct_stereotype"]
    low_post, high_post = records["post"]["ci"]["pct_stereotype"]
    assert lora.ci[1] - lora.ci[0] < (high_post - low_pre) - (low_post - high_pre)
    assert {r.key for r in real} >= {"decoding", "align", "bold/gap"}
    # Decoding: the balancing sweep at its strongest, against its own strength 0 (not the
    # sweep's costliest row, Self-Debias here).
    decoding = next(r for r in real if r.key == "decoding")
    assert "(balance 2)" in decoding.name and "×1.2 of plain" in decoding.note
    assert "plain decoding" in decoding.note and "(n = 30)" in decoding.note
    align = next(r for r in real if r.key == "align")  # the loop's intervals, carried over
    assert align.ci == pytest.approx((-0.05, 0.15)) and "25% → 5%" in align.note
    tiny = [r for r in rows if r.kind == "tiny"]
    assert tiny and {r.model for r in tiny} == {"tiny-gpt2"}


def test_the_lora_finding_carries_its_perplexity_cost(results):
    root, _ = results
    declared = {"perplexity": Metric(False, None, "ratio", "held-out perplexity")}
    for stage, value in (("pre", 20.0), ("post", 21.0)):
        output = BenchmarkOutput("perplexity", {"perplexity": value}, {}, declared, n_items=50)
        record = make_record(output, model=SMOL, config={}, timing={}, stage=stage)
        write_result(record, root / "real")
    lora = next(r for r in findings.headline_rows(root) if r.key == "lora")
    assert "perplexity 20 → 21 (×1.05" in lora.note


def test_tiny_classifier_toxicity_is_never_a_real_finding(results):
    root, _ = results
    real = [r for r in findings.headline_rows(root) if r.kind == "real"]
    assert not [r for r in real if "toxicity" in r.name or "regard" in r.name]
    assert [r for r in real if "honest" in r.name]  # the lexicon-scored gap stays
    gaps = report.tables.group_gaps(report.load(root))
    marked = gaps.set_index("panel")
    assert "gender · toxicity (tiny classifier)" in marked.index
    assert "gender · honest" in marked.index  # HurtLex needs no classifier
    data = numbers.numbers(report.load(root), {}, root)
    assert data["results"]["lead"]["tiny_classifier"] == [smollm2.DISPLAY_NAME]


def test_a_real_toxicity_classifier_makes_a_real_finding(tmp_path):
    _bold(tmp_path / "r", SMOL, "facebook/roberta-hate-speech-dynabench-r4-target")
    real = findings.headline_rows(tmp_path / "r")
    assert any("toxicity" in r.name for r in real)


def test_the_lead_table_is_the_first_results_table_and_about_the_real_model(results):
    root, _ = results
    data = numbers.numbers(report.load(root), {}, root)
    lead = data["results"]["lead"]
    assert lead["models"] == smollm2.DISPLAY_NAME
    missing = ["StereoSet (SS, LMS, ICAT)", "StereoSet multiple choice", "HONEST"]
    assert lead["missing"] == missing
    assert all("[" in row[1] for row in lead["table"]["rows"])  # every value has its interval
    assert lead["crows"]["n"] == "200"
    source = (paper.resources.files("debiaslab.report") / "sections" / "results.typ").read_text()
    tables = [line for line in source.splitlines() if line.strip().startswith("data-table(")]
    assert tables[0].strip() == "data-table(lead.table),"
    assert "Hub release" not in json.dumps(data) and "bf16" not in json.dumps(data)


def test_without_real_results_the_section_says_what_is_missing(tmp_path):
    _crows(tmp_path / "results" / "demo", TINY, _items(np.arange(30) % 2 == 0))
    loaded = report.load(tmp_path / "results")
    assert all(r.kind == "tiny" for r in findings.headline_rows(loaded))
    lead = numbers.numbers(loaded, {}, tmp_path)["results"]["lead"]
    assert lead["table"] is None and lead["missing"] == list(findings.EXPECTED.values())
    written = paper.write_generated(loaded, {}, tmp_path / "report" / "generated")
    assert written  # no crash; results.typ words the missing list (lead.missing)
    typst = (tmp_path / "report" / "generated" / "results.typ").read_text()
    assert "No real-model results were found" in typst


def test_calibration_rows_come_between_real_and_tiny(results):
    root, _ = results
    for rate, share in ((0.2, 0.2), (0.5, 0.5), (0.8, 0.8)):
        model = {"name": f"tiny-causal-planted{rate}", "family": "causal"}
        flags = np.arange(100) < share * 100
        _crows(root / "calib" / "planted", model, _items(flags))
    rows = findings.headline_rows(root)
    kinds = [r.kind for r in rows]
    assert kinds == sorted(kinds, key=findings.KINDS.index) and "calibration" in kinds
    cal = [r for r in rows if r.kind == "calibration"]
    assert all(r.ci is not None for r in cal)
    assert not any("planted" in r.model for r in rows if r.kind == "tiny")
    assert "ranked in order: yes" in cal[0].note and "0.8" in cal[0].name


def test_format_findings_is_a_plain_text_table_by_kind(results):
    root, _ = results
    text = findings.format_findings(findings.headline_rows(root))
    assert text.index("Real model") < text.index("Tiny offline models")
    assert smollm2.DISPLAY_NAME in text and "(n = 200 pairs)" in text
    assert findings.format_findings([]).startswith("no findings")


def test_the_digest_follows_the_numbers_not_the_machine(results, tmp_path):
    root, _ = results
    source = repo_root() / "report"
    first = paper.digest(report.load(root), source)
    assert first == paper.digest(report.load(root), source)  # same results, same digest
    moved = tmp_path / "elsewhere" / "results"
    moved.parent.mkdir()
    root.rename(moved)
    assert paper.digest(report.load(moved), source) == first  # no absolute path in it
    crows = next(moved.glob("real/*crows_pairs__eval*.json"))
    record = json.loads(crows.read_text())
    before = paper.digest(report.load(moved), source)
    record["metrics"]["pct_stereotype"] += 1.0
    crows.write_text(json.dumps(record))
    assert paper.digest(report.load(moved), source) != before  # a changed number shows


def test_pdf_digests_finds_the_stamp_plain_utf16_and_compressed():
    import zlib

    stamp = paper.DIGEST_PREFIX + "ab" * 32
    assert paper.pdf_digests(b"%PDF /Keywords (" + stamp.encode() + b")") == {"ab" * 32}
    assert paper.pdf_digests(b"<" + stamp.encode("utf-16-be") + b">") == {"ab" * 32}
    stream = zlib.compress(b"<x:keywords>" + stamp.encode() + b"</x:keywords>")
    assert paper.pdf_digests(b"1 0 obj stream\n" + stream + b"\nendstream") == {"ab" * 32}
    assert paper.pdf_digests(b"%PDF nothing here") == set()


@pytest.mark.slow
def test_a_report_built_from_a_results_subfolder_carries_its_digest_and_figures(results, tmp_path):
    """``debiaslab report --results results/paper --figures figures/paper --out report``."""
    pytest.importorskip("typst")
    pdfium = pytest.importorskip("pypdfium2")
    root = tmp_path / "w" / "results" / "paper"
    root.parent.mkdir(parents=True)
    results[0].rename(root)
    figures_dir = tmp_path / "w" / "figures" / "paper"
    pdf = report.build(root, figures_dir, tmp_path / "w" / "report", log=lambda _: None)
    expected = paper.digest(report.load(root), tmp_path / "w" / "report")
    assert paper.pdf_digests(pdf.read_bytes()) == {expected}
    document = pdfium.PdfDocument(str(pdf))
    try:
        images = sum(
            1
            for page in document
            for o in page.get_objects()
            if o.type == pdfium.raw.FPDF_PAGEOBJ_IMAGE
        )
        assert document.get_metadata_dict()["Keywords"] == paper.DIGEST_PREFIX + expected
    finally:
        document.close()
    assert images >= 4  # the real model's group gaps, forest, trade-off and align curve


def test_the_committed_pdf_is_built_from_the_committed_results():
    """``results/paper/`` and ``report/debiaslab-report.pdf`` are committed together: regenerate
    the text from the results (no Typst) and find its digest in the PDF."""
    results_dir, pdf = repo_root() / "results" / "paper", repo_root() / "report" / paper.PDF
    if not results_dir.is_dir():
        pytest.skip("results/paper/ is not committed yet (`make paper` writes it)")
    assert pdf.is_file(), f"{pdf} is missing: run `make paper` and commit it with results/paper/"
    expected = paper.digest(report.load(results_dir), repo_root() / "report")
    carried = paper.pdf_digests(pdf.read_bytes())
    assert expected in carried, (
        f"{pdf} is stale: it carries {sorted(carried) or 'no digest'}, the committed results "
        f"and prose give {expected}; rebuild it with `make paper` (or `debiaslab report "
        "--results results/paper --figures report/figures --out report`) and commit it"
    )


def test_each_finetune_effect_record_is_a_lora_finding_with_its_intervals(tmp_path):
    from debiaslab.mitigation.tradeoff import EFFECT_BENCHMARK
    from debiaslab.realtrack.finetune import METRICS

    for recipe, change, ci in (("crows_counter", -4.0, (-7.5, -0.5)), ("cda", 1.0, (-2.0, 4.0))):
        metrics = {"crows_pairs/pct_stereotype/change": change, "perplexity/ratio": 1.08}
        cis = {"crows_pairs/pct_stereotype/change": ci, "perplexity/ratio": (1.05, 1.11)}
        output = BenchmarkOutput(EFFECT_BENCHMARK, metrics, cis, METRICS, n_items=300)
        config = {"recipe": recipe, "method": "lora", "perplexity_texts": "BOLD gender"}
        record = make_record(output, model=SMOL, config=config, timing={}, stage="effect")
        write_result(record, tmp_path / recipe)
    rows = {r.key: r for r in findings.headline_rows(tmp_path)}
    headline, cda = rows["lora"], rows["lora/cda"]
    assert headline.kind == cda.kind == "real" and headline.n == 300
    assert headline.value == -4.0 and headline.ci == (-7.5, -0.5)
    assert "crows_counter" in headline.name and "cda" in cda.name
    assert "perplexity ×1.08 [1.05, 1.11] on BOLD gender" in headline.note
