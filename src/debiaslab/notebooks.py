"""The notebook collection: rendered from jupytext templates, checked, and executed in CI.

Each model family gets ``notebooks/<slug>/{01_pre_eval,02_finetune,03_post_eval}.ipynb``,
rendered (:func:`render`) from the ``py:percent`` templates in ``notebooks/_templates/`` by
filling ``{{PLACEHOLDERS}}`` from :data:`COLLECTION`. Notebooks are generated, never edited by
hand: :func:`check` re-renders every one and reports any difference and anatomy problem
(:func:`lint`). :func:`debiaslab.offline_params.ci_parameters` gives each stage's tiny offline
parameters; :mod:`debiaslab.collection` executes the whole collection with them (``make demo``).
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

from debiaslab import __version__
from debiaslab.config import get_preset
from debiaslab.env import QUICK, repo_root
from debiaslab.errors import ConfigError
from debiaslab.io import write_bytes_atomic
from debiaslab.planner import runtime as rt

STAGES = ("01_pre_eval", "02_finetune", "03_post_eval")
REPOSITORY = "https://github.com/debiaslab/debiaslab"
# The one release constant: the package's version. The bootstrap cell pins it, the badges open
# the notebooks at its tag, pyproject.toml reads it (``dynamic = ["version"]``).
RELEASE = f"v{__version__}"
# Where a Colab user keeps the wheel (Google Drive, mounted at /content/drive).
COLAB_WHEELS = "/content/drive/MyDrive/debiaslab"
# The one bootstrap cell every notebook has (a template writes {{BOOTSTRAP}} for it). It must
# work before debiaslab exists, so it is plain code with the platform's paths; everything after
# it calls the package. $DEBIASLAB_INPUT_ROOT is the emulated-Kaggle input root (CI).
BOOTSTRAP = f"""# Bootstrap: debiaslab as installed, else from the first of: a wheel in an
# attached input (Kaggle: the dataset `debiaslab kaggle build` makes; Colab:
# {COLAB_WHEELS} on Drive), the package index, the release's git tag.
# The index and git need the internet (Kaggle: Settings → Internet on). Then, before
# torch loads: a GPU the installed torch has no kernels for (a P100) gets a build that has.
import glob
import importlib.util
import os
import subprocess
import sys

VERSION = "{__version__}"
if importlib.util.find_spec("debiaslab") is None:
    roots = [os.environ.get("DEBIASLAB_INPUT_ROOT") or "/kaggle/input", "{COLAB_WHEELS}"]
    wheels = sorted(
        path for root in roots
        for path in glob.glob(f"{{root}}/**/debiaslab-{{VERSION}}-*.whl", recursive=True)
    )
    links = [["--find-links", os.path.dirname(w), w] for w in wheels[-1:]]
    sources = [("attached wheel", ["--no-index", *link]) for link in links]
    sources += [("attached wheel and the index", link) for link in links]
    sources += [
        ("package index", [f"debiaslab=={{VERSION}}"]),
        ("git", [f"debiaslab @ git+{REPOSITORY}@v{{VERSION}}"]),
    ]
    for name, source in sources:
        print(f"installing debiaslab {{VERSION}} from the {{name}}: {{source[-1]}}")
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", *source])
        if pip.returncode == 0:
            importlib.invalidate_caches()
            break
        print(f"... the {{name}} did not work (pip exited with {{pip.returncode}})")
    else:
        raise RuntimeError(
            "debiaslab could not be installed. Attach its wheel (Kaggle: Add Input → the "
            "dataset made by `debiaslab kaggle build`; Colab: put the wheel in "
            "{COLAB_WHEELS} and mount Drive), or turn the internet on (Kaggle: "
            "Settings → Internet on), then run this cell again."
        )
from debiaslab import gpucheck

gpu_check = gpucheck.ensure_torch()"""
_T4 = (
    "Kaggle 'GPU T4 x2' (both GPUs used: evaluation and fine-tuning run one process each) or "
    "a P100 (its first cell installs the CUDA 12.6 torch that still runs on it), or a Colab "
    "T4; 16 GB of GPU memory is enough. On Kaggle, attach the debiaslab dataset (`debiaslab "
    "kaggle build`) or turn Settings → Internet on before the first cell."
)


@dataclass(frozen=True)
class Entry:
    """One model family of the collection."""

    slug: str
    title: str
    model: str
    tiny: str  # the offline preset CI runs the chain with
    instruction: bool
    hardware: str
    stages: tuple[str, ...] = STAGES
    # True: the notebook is notebooks/<stage>.ipynb (the results notebook), not in a folder.
    flat: bool = False


COLLECTION = (
    Entry("gpt2", "GPT-2", "gpt2", "tiny-gpt2", False, "t4x2"),
    Entry("bert", "BERT", "bert-base-uncased", "tiny-bert", False, "t4x2"),
    Entry("bloomz", "Bloomz", "bloomz-560m", "tiny-gpt2", True, "t4x2"),
    Entry("flan_t5", "FLAN-T5", "flan-t5-base", "tiny-t5", True, "t4x2"),
)
# One notebook per mitigation method that is not fine-tuning.
METHODS = (
    Entry(
        "decoding_balance",
        "Decoding-time group balancing",
        "gpt2",
        "tiny-gpt2",
        False,
        "t4x2",
        stages=("decoding_balance",),
    ),
    Entry(
        "attention_gate",
        "Attention-head gating for toxicity",
        "gpt2",
        "tiny-gpt2",
        False,
        "t4x2",
        stages=("attention_gate",),
    ),
    Entry(
        "synthetic_data",
        "Synthetic debiasing data",
        "gpt2",
        "tiny-gpt2",
        False,
        "t4x2",
        stages=("synthetic_data",),
    ),
    Entry(
        "t2i_audit",
        "Text-to-image occupation audit",
        "sd-1.5",
        "tiny-sd",
        False,
        "t4x2",
        stages=("t2i_audit",),
    ),
    Entry(
        "precise_debias",
        "PreciseDebias prompt rewriting",
        "qwen2.5-1.5b-instruct",
        "tiny-gpt2",
        True,
        "t4x2",
        stages=("01_dataset", "02_train", "03_evaluate", "04_infer"),
    ),
    Entry(
        "socratic",
        "Socratic prompt refinement",
        "sd-1.5",
        "tiny-sd",
        False,
        "t4x2",
        stages=("01_run", "02_evaluate"),
    ),
)
# The planted-bias calibration of the metrics, and the results notebook that draws every
# figure from the result files (both CPU only).
STUDIES = (
    Entry(
        "calibration",
        "Planted-bias calibration of the metrics",
        "tiny planted models",
        "tiny planted models",
        False,
        "cpu",
        stages=("calibration",),
    ),
)
RESULTS = Entry(
    "results", "Results", "every result file", "—", False, "cpu", stages=("results",), flat=True
)
STAGE_NAMES = {
    "01_pre_eval": "1. pre-evaluation",
    "02_finetune": "2. fine-tuning",
    "03_post_eval": "3. post-evaluation",
    "decoding_balance": "balancing strength vs. perplexity, Self-Debias, BOLD gaps",
    "attention_gate": "attribute heads, close the top k: toxicity vs. perplexity, pre/post",
    "synthetic_data": "generate, filter, card and push a dataset; fine-tune on it; pre/post",
    "t2i_audit": "images per occupation, perceived gender and race vs. BLS shares",
    "01_dataset": "1. prompts, placeholders, instruction pairs split by prompt",
    "02_train": "2. LoRA rewriter and the measure-and-align loop",
    "03_evaluate": "3. group shares of rewrites; images vs. BLS, plain and rewritten",
    "04_infer": "4. rewrite your prompts (and draw them)",
    "01_run": "1. generate → caption → rewrite, per cycle",
    "02_evaluate": "2. CLIPScore per cycle, best images",
    "calibration": "tiny LMs with planted stereotype rates: do the metrics rank them?",
    "results": "figures and tables from every result file (what the report shows)",
}


def runtime(entry: Entry, stage: str) -> str:
    """A notebook header's runtime: the planner's estimate (:mod:`debiaslab.planner.runtime`)
    of a ``full`` run on Kaggle T4×2 and a P100, and of ``RUN = "quick"``."""
    quick = QUICK
    preset = get_preset(entry.model)
    family = preset.family if preset is not None else "causal"
    if stage in ("01_pre_eval", "03_post_eval", "decoding_balance", "attention_gate"):
        works = {
            "full": rt.evaluation(entry.model, family, None, 20),
            "quick": rt.evaluation(entry.model, family, quick["LIMIT"], quick["GENERATION_LIMIT"]),
        }
    elif stage in ("02_finetune", "02_train", "synthetic_data"):
        settings = preset.settings("t4x2")
        tokens = settings.effective_batch(2) * settings.seq_len
        lora = settings.method != "full"
        works = {
            "full": rt.finetuning(entry.model, 300, tokens, lora),
            "quick": rt.finetuning(entry.model, quick["STEPS"], tokens, lora),
        }
    elif stage in ("t2i_audit", "03_evaluate", "01_run"):
        n = {"t2i_audit": 4 * 16, "03_evaluate": 2 * 4 * 8, "01_run": 30 * 3}[stage]
        quick_n = {"t2i_audit": 4 * 2, "03_evaluate": 2 * 4 * 2, "01_run": 30 * 2}[stage]
        works = {"full": rt.images(n, 30), "quick": rt.images(quick_n, 30)}
    else:
        return "Minutes (small models, or reading files): no GPU estimate needed."
    return (
        f"{rt.describe(works)} — an estimate from FLOPs and memory bandwidth "
        "(debiaslab.planner.runtime), not a timing: no notebook has been timed on a T4 yet."
    )


def _fill(template: str, entry: Entry, stage: str) -> str:
    values = {
        "TITLE": entry.title,
        "MODEL": entry.model,
        "SLUG": entry.slug,
        "INSTRUCTION": repr(entry.instruction),
        "HARDWARE": entry.hardware,
        "HARDWARE_NOTE": _T4
        if entry.hardware != "cpu"
        else "CPU only; no GPU is needed. On Kaggle, attach the debiaslab dataset or turn "
        "Settings → Internet on before the first cell.",
        "RUNTIME": runtime(entry, stage) if entry.hardware != "cpu" else "Minutes, on a CPU.",
        "BOOTSTRAP": BOOTSTRAP,
        "STEREOSET_MC_NOTE": (
            " (likelihood form and, for this instruction-tuned model, the prompt form)"
            if entry.instruction
            else " (likelihood form)"
        ),
        "GENERATIVE_NOTE": (
            "HONEST (top-20 word completions of the masked LM)"
            if entry.tiny == "tiny-bert"
            else "BOLD continuations (toxicity, regard, HONEST, group gaps) and HONEST"
        ),
    }
    text = re.sub(r"\{\{([A-Z_]+)\}\}", lambda m: values[m.group(1)], template)
    if "{{" in text:
        raise ConfigError(f"unfilled placeholder in a template: {text[text.index('{{') :][:40]}")
    return text


def render_text(stage: str, entry: Entry, templates: Path | None = None) -> str:
    """One notebook as ``.ipynb`` JSON text (stripped, deterministic)."""
    import jupytext

    templates = templates or repo_root() / "notebooks" / "_templates"
    own = templates / entry.slug / f"{stage}.py"  # a family's own stages (e.g. socratic/01_run)
    template = own if own.is_file() else templates / f"{stage}.py"
    source = _fill(template.read_text("utf-8"), entry, stage)
    notebook = jupytext.reads(source, fmt="py:percent")
    settings = kaggle_settings(entry)
    notebook.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        # What Kaggle reads when the notebook is imported (Settings → Accelerator, Internet).
        "kaggle": {
            "accelerator": "nvidiaTeslaT4" if settings["gpu"] else "none",
            "isGpuEnabled": settings["gpu"],
            "isInternetEnabled": settings["internet"],
            "language": "python",
            "sourceType": "notebook",
        },
    }
    for number, cell in enumerate(notebook.cells):
        cell.id = f"{stage}-{number}"  # nbformat's default ids are random
        cell.metadata.pop("lines_to_next_cell", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return json.dumps(notebook, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


# What a stage reads from the other stages of its family (notebook 3: notebook 1's results and
# notebook 2's adapter). On Kaggle these are its kernel_sources; the collection runs in this
# order. The results notebook reads every other notebook.
READS = {
    "03_post_eval": ("01_pre_eval", "02_finetune"),
    "02_train": ("01_dataset",),
    "03_evaluate": ("01_dataset", "02_train"),
    "04_infer": ("02_train",),
    "02_evaluate": ("01_run",),
}


def kaggle_settings(entry: Entry) -> dict[str, bool]:
    """Whether a notebook needs Kaggle's GPU and internet: a GPU notebook loads real
    checkpoints from the Hub; the CPU ones (calibration, results) need neither."""
    needs = entry.hardware != "cpu"
    return {"gpu": needs, "internet": needs}


def step_name(entry: Entry, stage: str) -> str:
    """``family/stage`` (``results`` for the results notebook): the collection's step name."""
    return stage if entry.flat else f"{entry.slug}/{stage}"


def upstream(entry: Entry, stage: str) -> tuple[str, ...]:
    """The notebooks (step names) whose outputs ``stage`` reads."""
    if entry is RESULTS:
        return tuple(step_name(e, s) for e in entries() if e is not RESULTS for s in e.stages)
    return tuple(step_name(entry, s) for s in READS.get(stage, ()) if s in entry.stages)


def entries() -> tuple[Entry, ...]:
    """Every notebook family, in the order the README lists them (results last)."""
    return (*COLLECTION, *METHODS, *STUDIES, RESULTS)


def notebook_path(entry: Entry, stage: str, root: Path | None = None) -> Path:
    """Where a stage's notebook lives: ``notebooks/<slug>/<stage>.ipynb`` (or
    ``notebooks/<stage>.ipynb`` for a flat entry such as the results notebook)."""
    folder = (root or repo_root()) / "notebooks"
    return folder / f"{stage}.ipynb" if entry.flat else folder / entry.slug / f"{stage}.ipynb"


def results_notebook(root: Path | None = None) -> Path:
    return notebook_path(RESULTS, RESULTS.stages[0], root)


def targets(root: Path | None = None) -> dict[Path, tuple[str, Entry]]:
    return {
        notebook_path(entry, stage, root): (stage, entry)
        for entry in entries()
        for stage in entry.stages
    }


def render(root: Path | None = None) -> list[Path]:
    """Write every notebook of the collection (atomically); return the paths."""

    out = []
    for path, (stage, entry) in targets(root).items():
        write_bytes_atomic(path, render_text(stage, entry).encode("utf-8"))
        out.append(path)
    return out


_PLATFORM_PATH = re.compile(r"(/kaggle/|/content/|/home/|/Users/|C:\\\\|/root/)")
_TOKEN = re.compile(r"\b(hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9]{20,})\b")


def lint(notebook: dict, name: str = "notebook") -> list[str]:
    """Anatomy problems of one notebook (empty when it is fine).

    Anatomy of a notebook: a markdown header (purpose, hardware, runtime), one cell tagged
    ``parameters`` holding only literals with Kaggle-ready defaults, one identical bootstrap
    cell (debiaslab as installed, else from an attached wheel, the index or the release tag;
    the one cell that may name platform paths), ``env.setup()``, then short calls into the
    package; results are written to files. Problems reported also include unstripped
    outputs and cells that break the anatomy (a ``def`` or ``class``, a platform path,
    something that looks like a token).
    """
    problems = []
    cells = notebook.get("cells", [])
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if sum("".join(c.get("source", "")) == BOOTSTRAP for c in cells) != 1:
        problems.append(f"{name}: expected the bootstrap cell once")
    if len(tagged) != 1:
        problems.append(f"{name}: expected one cell tagged 'parameters', found {len(tagged)}")
    for number, cell in enumerate(cells, start=1):
        source = "".join(cell.get("source", ""))
        where = f"{name}: cell {number}"
        if cell.get("cell_type") == "code":
            if cell.get("outputs") or cell.get("execution_count") is not None:
                problems.append(f"{where}: outputs are not stripped")
            try:
                tree = ast.parse(source)
            except SyntaxError as exc:
                problems.append(f"{where}: not valid Python ({exc.msg})")
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    problems.append(
                        f"{where}: defines {node.name!r} (logic belongs in the package)"
                    )
            if cell in tagged:
                for stmt in tree.body:
                    value = getattr(stmt, "value", None)
                    try:
                        ast.literal_eval(value) if value is not None else None
                    except ValueError:
                        problems.append(f"{where}: parameters must be literals")
                    if not isinstance(stmt, ast.Assign):
                        problems.append(f"{where}: parameters cell holds a non-assignment")
        if source.startswith("# Bootstrap") and source != BOOTSTRAP:
            problems.append(
                f"{where}: the bootstrap cell differs from debiaslab.notebooks.BOOTSTRAP"
            )
        if _PLATFORM_PATH.search(source) and source != BOOTSTRAP:  # it runs before the package
            problems.append(f"{where}: platform path (use env.output_root)")
        if _TOKEN.search(source):
            problems.append(f"{where}: something that looks like a token")
    return problems


def check(root: Path | None = None) -> list[str]:
    """Every difference from a fresh render, and every anatomy problem, as messages.

    Templates are converted with jupytext; a hand edit of a rendered notebook shows as a
    difference, which makes CI fail.
    """
    problems = []
    root = root or repo_root()
    expected_paths = targets(root)
    for path, (stage, entry) in expected_paths.items():
        rel = path.relative_to(root)
        if not path.is_file():
            problems.append(f"{rel}: missing (run `make notebooks`)")
            continue
        text = path.read_text("utf-8")
        if text != render_text(stage, entry):
            problems.append(f"{rel}: differs from its template (edit the template, then render)")
        problems += lint(json.loads(text), str(rel))
    for path in sorted((root / "notebooks").rglob("*.ipynb")):
        if path not in expected_paths and "_templates" not in path.parts:
            problems.append(f"{path.relative_to(root)}: not generated by the collection")
    return problems


def readme_table() -> str:
    """The README's table of notebooks with their Colab and Kaggle links (generated)."""
    github = REPOSITORY.removeprefix("https://github.com/")
    lines = [
        "| model | notebook | open | needs |",
        "|---|---|---|---|",
    ]
    needs = {
        "t4x2": "GPU: Kaggle T4×2 (both used), a P100 or a Colab T4",
        "cpu": "CPU only (minutes)",
    }
    for entry in entries():
        for stage in entry.stages:
            rel = notebook_path(entry, stage, Path(".")).as_posix()
            colab = f"https://colab.research.google.com/github/{github}/blob/{RELEASE}/{rel}"
            kaggle = f"https://kaggle.com/kernels/welcome?src={REPOSITORY}/blob/{RELEASE}/{rel}"
            lines.append(
                f"| {entry.title} (`{entry.model}`) | [{STAGE_NAMES[stage]}]({rel}) | "
                f"[Colab]({colab}) · [Kaggle]({kaggle}) | {needs[entry.hardware]} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m debiaslab.notebooks [--check | --readme]``: render, check, or print the
    README's table."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if "--readme" in args:
        print(readme_table(), end="")
        return 0
    if "--check" in args:
        problems = check()
        for problem in problems:
            print(problem)
        return 1 if problems else 0
    for path in render():
        print(path.relative_to(repo_root()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
