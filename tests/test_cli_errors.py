"""Bad input and a hostile machine, as a new user meets them: one line, no traceback, nothing
half-written, and nothing loaded (or fetched from the Hub) that the error could have spared."""

from __future__ import annotations

import argparse
import errno
import tempfile
from pathlib import Path

import pytest
import torch

from debiaslab import results, runner, suites
from debiaslab.cli import build_parser, main
from debiaslab.errors import ConfigError
from debiaslab.evalconfig import EvalConfig
from debiaslab.generation import GenerationSettings


@pytest.fixture
def crows(shared_data, monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
    monkeypatch.setenv("DEBIASLAB_CACHE", str(tmp_path / "cache"))
    return shared_data / "crows_pairs" / "crows_pairs_anonymized.csv"


@pytest.fixture
def no_loading(monkeypatch):
    """Fail the test if a model is loaded or a benchmark file is read."""

    def refuse(*args, **kwargs):
        raise AssertionError("loaded something although the input was already known to be bad")

    monkeypatch.setattr("debiaslab.models.load_model", refuse)
    monkeypatch.setattr(runner, "_load_data", refuse)


@pytest.fixture
def no_hub(monkeypatch):
    """Fail the test if anything asks the Hugging Face Hub (or its cache-or-download path)."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a Hub download was attempted: {args} {kwargs}")

    import peft.config
    import transformers.utils.hub

    for module in (transformers.utils.hub, peft.config):
        monkeypatch.setattr(module, "hf_hub_download", refuse)
    monkeypatch.setattr(transformers.utils.hub, "snapshot_download", refuse)


def eval_argv(model, out, *extra) -> list[str]:
    return [
        "eval", "--model", str(model), "--benchmark", "crows_pairs", "--output", str(out),
        "--limit", "4", "--n-boot", "10", "--no-progress", *extra,
    ]  # fmt: skip


def run_cli(argv, capsys) -> tuple[int, str]:
    """Exit status and the one error line; argparse's exits count as statuses."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, err
    return code, lines[0]


def listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.is_dir() else {}


# ------------------------------------------------------------------------------ output paths


def test_output_that_is_a_file_fails_at_parse_time(tiny_dirs, tmp_path, capsys, no_loading):
    file = tmp_path / "results.txt"
    file.write_text("mine")
    code, line = run_cli(eval_argv(tiny_dirs["masked"], file), capsys)
    assert code == 2 and "--output" in line and f"{file} is a file" in line
    assert file.read_text() == "mine"


def test_output_under_a_file_fails_at_parse_time(tiny_dirs, tmp_path, capsys, no_loading):
    file = tmp_path / "results.txt"
    file.write_text("mine")
    code, line = run_cli(eval_argv(tiny_dirs["masked"], file / "sub"), capsys)
    assert code == 2 and f"is under {file}, which is a file" in line


def test_read_only_output_folder(tiny_dirs, crows, tmp_path, capsys, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    (out / "earlier.json").write_text("{}")
    out.chmod(0o555)
    # root ignores permission bits: refuse the write the way a read-only folder does.
    real = tempfile.mkstemp  # what debiaslab.io's atomic writes call

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == out:
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    try:
        code, line = run_cli(eval_argv(tiny_dirs["masked"], out, "--data", str(crows)), capsys)
        assert code == 2 and str(out) in line and "choose another output folder" in line
        assert listing(out) == {"earlier.json": b"{}"}
    finally:
        out.chmod(0o755)


def test_disk_full_leaves_no_partial_result_and_keeps_earlier_ones(
    tiny_dirs, crows, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "results"
    model = tiny_dirs["masked"]
    assert main(eval_argv(model, out, "--data", str(crows))) == 0
    before = listing(out)
    assert len(before) == 2  # the result and its items
    real = results.write_bytes_atomic

    def disk_full_at_the_result_json(path, data):
        name = Path(path).name.removesuffix(".staged")
        if name.endswith(".json") and "__crows_pairs__" in name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(results, "write_bytes_atomic", disk_full_at_the_result_json)
    # Another run (other seed: another run id) and a forced rerun of the first one.
    for extra in (["--seed", "1"], ["--force"]):
        code, line = run_cli(eval_argv(model, out, "--data", str(crows), *extra), capsys)
        assert code == 2 and "disk is full" in line and str(out) in line
        assert listing(out) == before  # no new side file, no temp file, old files as they were


# ------------------------------------------------------------------------- numbers (point 16)


def test_negative_n_boot_fails_before_anything_loads(tiny_dirs, tmp_path, capsys, no_loading):
    code, line = run_cli(eval_argv(tiny_dirs["masked"], tmp_path, "--n-boot", "-5"), capsys)
    assert code == 2 and "--n-boot" in line and "'-5'" in line and ">= 0" in line
    with pytest.raises(ConfigError, match="n_boot must be an integer >= 0, got -5"):
        runner.evaluate(
            EvalConfig.of(str(tiny_dirs["masked"]), "crows_pairs", tmp_path, n_boot=-5)
        )


@pytest.mark.parametrize("value", ["0", "-3"])
def test_batch_size_zero_or_negative_is_refused(tiny_dirs, tmp_path, capsys, no_loading, value):
    code, line = run_cli(eval_argv(tiny_dirs["masked"], tmp_path, "--batch-size", value), capsys)
    assert code == 2 and "--batch-size" in line and ">= 1" in line
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1"):
        runner.evaluate(
            EvalConfig.of(str(tiny_dirs["masked"]), "crows_pairs", tmp_path, batch_size=int(value))
        )


def test_load_model_refuses_a_batch_size_of_zero(tiny_dirs):
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1, got 0"):
        from debiaslab.models import load_model

        load_model(str(tiny_dirs["masked"]), batch_size=0)


@pytest.mark.parametrize("flags", [["--temperature", "0.7"], ["--top-p", "0.5", "--top-k", "4"]])
def test_greedy_with_sampling_flags_is_refused(tiny_dirs, tmp_path, capsys, no_loading, flags):
    argv = eval_argv(tiny_dirs["causal"], tmp_path, "--greedy", *flags)
    argv[argv.index("crows_pairs")] = "bold"
    code, line = run_cli(argv, capsys)
    assert code == 2 and "--greedy" in line and f"{flags[0]} {flags[1]}" in line
    with pytest.raises(ConfigError, match=r"temperature=0\.7 has no effect with greedy"):
        GenerationSettings(do_sample=False, temperature=0.7)


@pytest.mark.parametrize("value", ["2", "0", "-0.5"])
def test_threshold_outside_0_1_is_refused(tiny_dirs, tmp_path, capsys, no_loading, value):
    argv = eval_argv(tiny_dirs["causal"], tmp_path, "--threshold", value)
    argv[argv.index("crows_pairs")] = "bold"
    code, line = run_cli(argv, capsys)
    assert code == 2 and "--threshold" in line and "(0, 1]" in line
    with pytest.raises(ConfigError, match=r"threshold must be a number in \(0, 1\]"):
        runner.evaluate(
            EvalConfig.of(str(tiny_dirs["causal"]), "bold", tmp_path, threshold=float(value))
        )


def _actions(parser: argparse.ArgumentParser, path: str = "debiaslab"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for verb, sub in action.choices.items():
                yield from _actions(sub, f"{path} {verb}")
        else:
            yield path, action


def test_every_numeric_flag_of_every_verb_is_validated():
    from debiaslab import validate

    actions = list(_actions(build_parser()))
    plain = [f"{path} {a.option_strings}" for path, a in actions if a.type in (int, float)]
    assert plain == []  # a numeric flag takes a check from debiaslab.validate
    assert sum(isinstance(a.type, validate.NumberCheck) for _, a in actions) >= 50


@pytest.mark.parametrize(
    "argv",
    [
        ["finetune", "--model", "m", "--output", "o", "--steps", "0"],
        ["finetune", "--model", "m", "--output", "o", "--lr", "-0.0001"],
        ["finetune", "--model", "m", "--output", "o", "--lora-dropout", "1"],
        ["finetune", "--model", "m", "--output", "o", "--mlm-probability", "0"],
        [
            "stereoset-score",
            "--gold",
            "g",
            "--predictions",
            "p",
            "--output",
            "o",
            "--n-boot",
            "-1",
        ],
        ["demo", "--workers", "0"],
        ["synth", "generate", "--spec", "s", "--model", "m", "--out", "o", "--n", "0"],
        [
            "synth",
            "generate",
            "--spec",
            "s",
            "--model",
            "m",
            "--out",
            "o",
            "--n",
            "5",
            "--rpm",
            "0",
        ],
        ["t2i", "generate", "--out", "o", "--prompts", "p", "--size", "30"],
        ["t2i", "audit", "--out", "o", "--occupations", "nurse", "--images", "-1"],
        ["t2i", "socratic", "--out", "o", "--stop-similarity", "1.5"],
        ["t2i", "rewrite", "--model", "m", "--prompts", "p", "--n", "0"],
        ["eval", "--model", "m", "--benchmark", "bold", "--output", "o", "--top-p", "nan"],
    ],
)
def test_bad_numbers_fail_at_parse_time_in_every_verb(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error: argument --" in err and ": must be " in err


# ---------------------------------------------------------------------------- models, add-ons


def test_nonexistent_adapter_folder(tiny_dirs, tmp_path, capsys, no_loading):
    argv = eval_argv(tiny_dirs["masked"], tmp_path, "--adapter", str(tmp_path / "nope"))
    code, line = run_cli(argv, capsys)
    assert code == 2 and f"adapter folder {tmp_path / 'nope'} does not exist" in line


def test_corrupt_head_gates_file(tiny_dirs, crows, tmp_path, capsys, no_loading):
    gates = tmp_path / "gates.safetensors"
    gates.write_bytes(b"\xff" * 64)
    argv = eval_argv(tiny_dirs["causal"], tmp_path / "out", "--head-gates", str(gates))
    code, line = run_cli(argv, capsys)
    assert code == 2 and f"head-gates file {gates} cannot be read" in line


def test_model_folder_with_only_pickle_weights_names_the_flag(tiny_dirs, crows, tmp_path, capsys):
    from safetensors.torch import load_file

    folder = tmp_path / "pickled"
    folder.mkdir()
    for file in tiny_dirs["masked"].iterdir():
        if file.suffix == ".safetensors":
            torch.save(load_file(file), folder / "pytorch_model.bin")
        else:
            (folder / file.name).write_bytes(file.read_bytes())
    code, line = run_cli(eval_argv(folder, tmp_path / "out", "--data", str(crows)), capsys)
    assert code == 2 and "only pickle weights (pytorch_model.bin)" in line
    flag = ["--allow-pickle-weights"]
    assert flag[0] in line
    # The flag the message names exists and does what it says.
    assert main(eval_argv(folder, tmp_path / "out", "--data", str(crows), *flag)) == 0


def test_nonexistent_model_path_is_a_missing_folder_not_a_repo_id(
    tmp_path, capsys, no_loading, no_hub
):
    missing = tmp_path / "models" / "mine"
    code, line = run_cli(eval_argv(missing, tmp_path / "out"), capsys)
    assert code == 2 and f"model folder {missing} does not exist" in line
    assert "Repo id" not in line


def test_invalid_model_name_fails_fast_even_online(tmp_path, capsys, monkeypatch, no_hub):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    code, line = run_cli(eval_argv("my model!", tmp_path / "out"), capsys)
    assert code == 2 and "'my model!' is neither a preset, a local folder nor a valid Hub" in line


def test_unknown_hub_id_fails_fast_in_offline_mode(tmp_path, capsys, monkeypatch, no_hub):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))  # an empty cache
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    code, line = run_cli(eval_argv("someone/no-such-model", tmp_path / "out"), capsys)
    assert code == 2 and "'someone/no-such-model'" in line and "offline mode is on" in line


@pytest.mark.parametrize(
    "model,words",
    [
        ("no such model!", "is neither a preset, a local folder nor a valid Hub repo id"),
        ("someone/no-such-model", "not in the local Hugging Face cache while offline mode is on"),
    ],
)
def test_notebook_1_with_a_bogus_model_names_it(tmp_path, monkeypatch, no_hub, model, words):
    """Notebook 1's cell: ``suites.evaluate_suite(MODEL, output, stage="pre", ...)``."""
    template = Path(__file__).parents[1] / "notebooks" / "_templates" / "01_pre_eval.py"
    assert "suites.evaluate_suite(\n    MODEL," in template.read_text()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ConfigError) as info:
        suites.evaluate_suite(model, tmp_path / "results", stage="pre")
    message = str(info.value)
    assert f"{model!r}" in message and words in message and "\n" not in message


def test_write_error_outside_results_is_one_line_too(tmp_path, capsys, monkeypatch):
    def disk_full(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.bin"))

    monkeypatch.setattr("debiaslab.cli.outputs.cmd_models", disk_full)
    code, line = run_cli(["models"], capsys)
    assert code == 2 and f"cannot write {tmp_path / 'x.bin'}: the disk is full" in line


def test_output_dir_check_is_usable_from_python(tmp_path):
    from debiaslab import validate

    file = tmp_path / "f"
    file.write_text("")
    with pytest.raises(ConfigError, match="is a file"):
        validate.check_output_dir(file)
    validate.check_output_dir(tmp_path / "new" / "deeper")  # created later: fine
    assert not (tmp_path / "new").exists()


def test_unknown_classifier_fails_fast_in_offline_mode(
    tiny_dirs, shared_data, tmp_path, capsys, monkeypatch, no_hub
):
    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    argv = eval_argv(tiny_dirs["causal"], tmp_path, "--toxicity-model", "someone/no-such-clf")
    argv[argv.index("crows_pairs")] = "bold"
    code, line = run_cli(argv, capsys)
    assert code == 2 and "'someone/no-such-clf'" in line and "offline mode is on" in line
