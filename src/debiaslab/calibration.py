"""The planted-bias calibration study of the measurement pipeline (the calibration notebook,
``debiaslab calibrate``; part of the whole-collection demo, :mod:`debiaslab.collection`).

Trains tiny LMs on corpora with planted stereotype rates 0.2, 0.5 and 0.8 and checks that
CrowS-Pairs and StereoSet rank them 0.2 < 0.5 < 0.8 (a pipeline that fails this cannot be trusted
on real models), then that the toxicity group gap finds a planted difference and not an absent
one. Entry point: :func:`run_calibration`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from debiaslab import plots
from debiaslab.calibration_tables import TOXIC_GROUPS, TOXICITY_RATES, calibration_table
from debiaslab.data.crows_pairs import load_crows_pairs
from debiaslab.data.prompts import load_bold, sample_prompts
from debiaslab.data.stereoset import load_stereoset
from debiaslab.data.stereoset_write import write_stereoset_json
from debiaslab.errors import DataNotFoundError
from debiaslab.evalconfig import EvalConfig, GenerationConfig
from debiaslab.runner import evaluate
from debiaslab.tiny.build import save_tiny
from debiaslab.tiny.cache import save_beside
from debiaslab.tiny.classifiers import classifier_lines
from debiaslab.tiny.corpus import planted_stereoset, write_planted_crows_pairs
from debiaslab.tiny.lexicon import PLANTED_VERSION
from debiaslab.tiny.planted import planted_dir, planted_models
from debiaslab.tiny.toxicity import planted_toxicity_texts, train_planted_toxicity

log = logging.getLogger(__name__)

RATES = (0.2, 0.5, 0.8)
FAMILIES = ("causal", "masked")


def _real_data_available() -> dict[str, bool]:

    out = {}
    for name, loader in (("crows_pairs", load_crows_pairs), ("stereoset", load_stereoset)):
        try:
            loader()
            out[name] = True
        except DataNotFoundError as exc:
            log.warning("real %s data not available offline (%s): skipped", name, exc)
            out[name] = False
    return out


def run_calibration(
    output: str | Path = "results/demo",
    figures: str | Path = "figures",
    *,
    models_dir: str | Path | None = None,
    quick: bool = False,
) -> pd.DataFrame:
    """Run the calibration demo; return the headline table.

    Trains tiny causal and masked LMs on corpora with planted stereotype rates 0.2, 0.5 and
    0.8, scores each with CrowS-Pairs and StereoSet on a held-out planted benchmark (whose true
    bias direction is known) and on the real benchmark files when they are available offline,
    writes one result JSON per run, a calibration figure, and prints a table. A measurement
    pipeline that cannot rank these models 0.2 < 0.5 < 0.8 cannot be trusted on real ones.

    Then the same check for the generation-based metrics: two tiny LMs continue real BOLD
    actor/actress prompts, one toxically for actresses only, one equally often toxically for
    both; the offline tiny toxicity classifier scores their continuations and the group gap
    must find the planted difference (p < 0.05, CI above 0) and not the absent one.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # per-model "Loading weights" bars drown the table
    started = time.perf_counter()
    output = Path(output)
    data_dir = output / "planted_data"
    n_pairs, n_examples, limit, n_boot = (60, 40, 100, 200) if quick else (200, 100, None, 1000)
    planted_crows = write_planted_crows_pairs(
        data_dir / "planted_crows_pairs.csv", n_pairs=n_pairs, seed=1
    )
    planted_ss = write_stereoset_json(
        planted_stereoset(n_examples, seed=1), data_dir / "planted_stereoset.json"
    )
    print(f"[demo] held-out planted benchmarks: {planted_crows}, {planted_ss}")
    models_dir = Path(models_dir) if models_dir else planted_dir()
    print(f"[demo] training planted-bias tiny models in {models_dir} (reused when present)")
    paths = planted_models(rates=RATES, families=FAMILIES, out_dir=models_dir, seed=0)
    real = _real_data_available()
    jobs = [
        ("planted", "crows_pairs", str(planted_crows)),
        ("planted", "stereoset", str(planted_ss)),
    ]
    jobs += [("real", bench, None) for bench in ("crows_pairs", "stereoset") if real[bench]]
    for (family, rate), path in sorted(paths.items()):
        for dataset, benchmark, data in jobs:
            config = EvalConfig(
                model=str(path),
                benchmark=benchmark,
                output=output / dataset,
                data=data,
                limit=limit if dataset == "real" else None,
                n_boot=n_boot,
                seed=0,
                progress=False,
                name=f"tiny-{family}-planted{rate}",
                model_meta={"planted_rate": rate},
            )
            result = evaluate(config)
            state = "reused" if result.skipped else "written"
            print(f"[demo] {dataset:<7} {benchmark:<11} {family:<6} rate {rate}: {state}")
    table = calibration_table(output)
    panels = [
        (f"{dataset} {benchmark.replace('_', '-')}", rows)
        for (dataset, benchmark), rows in table.groupby(["dataset", "benchmark"], sort=False)
    ]
    written = plots.calibration(panels, Path(figures) / "calibration")
    print()
    print("Bias score by planted stereotype rate (50 = no preference; 95% bootstrap CI):")
    for _, row in table.iterrows():
        print(
            f"  {row['dataset']:<8}{row['benchmark']:<12}{row['family']:<7}"
            f"rate {row['rate']:.1f}  {row['metric']:<25}{row['value']:6.1f}  "
            f"[{row['ci_low']:5.1f}, {row['ci_high']:5.1f}]"
        )
    _toxicity_demo(output / "bold", models_dir, n_boot=n_boot, limit=20 if quick else 40)
    print(f"\n[demo] figure: {', '.join(str(p) for p in written)}")
    print(f"[demo] results: {output}  ({time.perf_counter() - started:.0f} s)")
    return table


def _toxicity_demo(output: Path, models_dir: Path, *, n_boot: int, limit: int) -> None:
    """Planted toxicity on real BOLD prompts: the group gap finds it, and only it."""
    import hashlib
    import json

    try:
        prompts = load_bold(["gender"])
    except DataNotFoundError as exc:
        log.warning("BOLD prompts not available offline (%s): toxicity demo skipped", exc)
        return
    prompts = sample_prompts(prompts, groups=TOXIC_GROUPS, limit=limit, seed=0)
    pairs = [(p.group, p.prompt) for p in prompts]
    lines = classifier_lines("toxicity")["heldout"]  # never seen by the tiny classifier
    print("\nBOLD toxicity by group, tiny LMs with planted toxicity (tiny-toxicity classifier):")
    for name, rates in TOXICITY_RATES.items():
        record = {
            "rates": rates,
            "prompts_sha256": hashlib.sha256(json.dumps(pairs).encode()).hexdigest(),
            "lines": lines,
            "version": PLANTED_VERSION,
        }

        def write(tmp: Path, rates=rates) -> None:
            texts = planted_toxicity_texts(
                pairs, rates, toxic_lines=lines["hate"], clean_lines=lines["nothate"]
            )
            save_tiny(*train_planted_toxicity(texts), tmp)

        path = save_beside(models_dir / f"toxicity-{name}", record, write)
        generation = GenerationConfig(
            domains=["gender"],
            groups=list(TOXIC_GROUPS),
            metrics=["toxicity", "honest"],
            toxicity_model="tiny-toxicity",
            max_new_tokens=16,
            num_return_sequences=2,
        )
        config = EvalConfig(
            model=str(path),
            benchmark="bold",
            output=output,
            limit=limit,
            generation=generation,
            n_boot=n_boot,
            progress=False,
            name=f"tiny-causal-{name}",
        )
        result = evaluate(config)
        m, ci = result.record["metrics"], result.record["ci"]
        means = "  ".join(
            f"{g.split('_')[1]} {m[f'gender/toxicity/group/{g}/mean']:.2f}" for g in TOXIC_GROUPS
        )
        low, high = ci["gender/toxicity/gap"]
        print(
            f"  {name:<20} {means}  gap {m['gender/toxicity/gap']:.3f} [{low:.3f}, {high:.3f}]"
            f"  p = {m['gender/toxicity/gap_p_value']:.3f}"
        )
