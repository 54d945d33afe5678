"""The dataset card (``README.md``) of a synthetic debiasing dataset, from its manifest alone.

``debiaslab synth generate`` (:mod:`debiaslab.synth.pipeline`) writes it beside the parquet
splits and :func:`debiaslab.hub.client.push_dataset` uploads it: front matter (licence, data
files), spec, generation backend, filter counts, regard shares before and after, splits, columns,
intended use and limitations.
"""

from __future__ import annotations

from typing import Any

from debiaslab.cards.markdown import cell, front_matter

REGARD_LABELS_SHOWN = ("positive", "negative", "neutral", "other")


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return name
    return "100K<n<1M" if n < 1_000_000 else "n>1M"


def dataset_card(manifest: dict[str, Any]) -> str:
    """The dataset card (``README.md``) of a synthetic dataset, from its manifest alone."""
    spec = manifest["spec"]
    splits = manifest["splits"]
    groups = list(spec["groups"])
    front = {
        "license": spec["license"],
        "language": [spec["language"]],
        "pretty_name": spec["name"],
        "size_categories": [_size_category(manifest["n_rows"])],
        "task_categories": ["text-generation"],
        "tags": ["synthetic", "bias-mitigation", "fairness", "counterfactual", "debiaslab"],
        "configs": [
            {
                "config_name": "default",
                "data_files": [
                    {"split": name, "path": f"data/{name}-*.parquet"} for name in splits
                ],
            }
        ],
    }
    backend = manifest["backend"]
    lines = [
        *front_matter(front),
        "",
        f"# {spec['name']}",
        "",
        spec["description"] or "A synthetic debiasing dataset.",
        "",
        f"Generated with [debiaslab](https://github.com/debiaslab/debiaslab) "
        f"{manifest['debiaslab_version']} (`debiaslab synth generate`) on "
        f"{manifest['created'][:10]}: "
        f"{manifest['n_generated']} texts were generated from the spec below and "
        f"{manifest['n_rows']} rows remain after filtering and counterfactual pairing.",
        "",
        "## Spec",
        "",
        f"Attribute: {spec['attribute'] or 'unspecified'}. Every group × topic × template cell "
        f"was asked {manifest['per_cell']} times, so the raw data is balanced by design.",
        "",
        "| Group | Mentioned as | Words swapped for counterfactuals |",
        "|---|---|---|",
        *(
            f"| {cell(g)} | {cell(v['mention'])} | {cell(', '.join(v['terms']) or '—')} |"
            for g, v in spec["groups"].items()
        ),
        "",
        f"Topics: {', '.join(spec['topics'])}.",
        "",
        "Templates:",
        "",
        *(f"{i + 1}. {cell(t)}" for i, t in enumerate(spec["templates"])),
        "",
        "## Generation",
        "",
        f"- Backend: `{backend['name']}`",
        *(f"- {k}: `{v}`" for k, v in sorted(backend.items()) if k != "name"),
        "",
        "## Filters",
        "",
        "| Step | Rule | Removed | Added | Rows after |",
        "|---|---|---:|---:|---:|",
        f"| generated | {manifest['per_cell']} per cell | | | {manifest['n_generated']} |",
        *(
            f"| {s['step']} | {cell(s.get('detail', ''))} | {s['removed']} | {s.get('added', '')} "
            f"| {s['kept']} |"
            for s in manifest["steps"]
        ),
        "",
        "Regard labels per group (share of texts), before the regard balance and in the final "
        "data (counterfactuals included):",
        "",
        "| Group | Stage | n | " + " | ".join(REGARD_LABELS_SHOWN) + " |",
        "|---|---|---:|" + "---:|" * len(REGARD_LABELS_SHOWN),
    ]
    for group in groups:
        for stage, key in (("before", "regard_before_balance"), ("final", "regard_final")):
            dist = manifest[key].get(group, {})
            cells = " | ".join(f"{dist.get(label, 0.0):.2f}" for label in REGARD_LABELS_SHOWN)
            lines.append(f"| {cell(group)} | {stage} | {dist.get('n', 0)} | {cells} |")
    lines += [
        "",
        "## Splits",
        "",
        "| Split | Rows | " + " | ".join(cell(g) for g in groups) + " |",
        "|---|---:|" + "---:|" * len(groups),
        *(
            f"| {name} | {part['n']} | " + " | ".join(str(part.get(g, 0)) for g in groups) + " |"
            for name, part in splits.items()
        ),
        "",
        f"The held-out split takes {spec['filters']['test_fraction']:.0%} of the pairs, chosen "
        "by a hash of `pair_id`: a text and its counterfactual are always in the same split.",
        "",
        "## Columns",
        "",
        "- `text`: the generated text (or its counterfactual).",
        "- `group`, `topic`, `template`, `prompt`: the spec cell it was asked for (a "
        "counterfactual carries the group it was swapped to).",
        "- `source`: `generated` or `counterfactual`; `pair_id`: the generated text's `id`.",
        "- `toxicity`: classifier score; `regard`: classifier label.",
        "",
        "## Intended use and limitations",
        "",
        "- Meant for counterfactual or balanced fine-tuning against social bias (e.g. "
        "`debiaslab finetune --recipe synthetic --data <this folder>`), and for studying such "
        "data. Not a benchmark: do not evaluate a model on data like its own training data.",
        "- The texts are machine-generated: they inherit the generating model's biases and "
        "errors, and the topics and templates chosen here are narrow.",
        "- Toxicity and regard come from classifiers with biases of their own; balanced "
        "classifier labels are not balanced meaning.",
        "- Word swaps are mechanical: a counterfactual can be ungrammatical (e.g. *her* → "
        "*his*/*him*) or implausible, and the groups are treated as binary and interchangeable.",
        "",
        "## Licence",
        "",
        f"Released under `{spec['license']}`. The generating model's terms of use may add "
        "conditions on its outputs: check them before publishing.",
        "",
    ]
    return "\n".join(lines)
