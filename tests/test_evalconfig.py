"""One typed evaluation config: the ``eval`` flags are generated from :class:`EvalConfig`, every
setting survives argv → config → result record → config, and ``evaluate`` dispatches through
the benchmark registry."""

from __future__ import annotations

import dataclasses
import json
import types

import pytest

from debiaslab import runner, validate
from debiaslab.benchmarks import registry
from debiaslab.cli import build_parser, main
from debiaslab.errors import ConfigError
from debiaslab.evalconfig import (
    EvalConfig,
    GenerationConfig,
    PrecisionConfig,
    comma_list,
    flag_of,
    flat_fields,
    from_args,
)
from debiaslab.metrics import Metric
from debiaslab.results import BenchmarkOutput

REQUIRED = {"model": "tiny-gpt2", "benchmark": "crows_pairs"}

# Values that a check rejects, tried in order (one of them fails every number check).
BAD_NUMBERS = ("-1", "0", "1.5", "nan")


def base_argv(out) -> list[str]:
    return ["eval", "--model", "tiny-gpt2", "--benchmark", "crows_pairs", "--output", str(out)]


def other_value(name: str, f, out):
    """A value of the setting ``name`` that is not its default, and the argv that gives it."""
    meta, flag = f.metadata, flag_of(f)
    default = None if f.default is dataclasses.MISSING else f.default
    if "const" in meta:  # a switch that stores a value (--no-progress, --allow-pickle-weights)
        return meta["const"], [flag]
    if f.type == "bool":
        return not default, [flag]
    if name == "output":
        return str(out / "elsewhere"), [flag, str(out / "elsewhere")]
    if name == "benchmark":
        return "honest", [flag, "honest"]
    if name == "model_meta":
        return {"planted_rate": 0.2}, [flag, json.dumps({"planted_rate": 0.2})]
    if meta.get("type") is comma_list:
        return ("toxicity", "regard"), [flag, "toxicity,regard"]
    choices = meta.get("choices")
    if meta.get("nargs"):
        items = [choices[-1]] if choices else ["group a", "group b"]
        return tuple(items), [flag, *items]
    if choices:
        value = next(c for c in choices if c != default)
        return value, [flag, value]
    check = meta.get("check")
    if check is not None:
        value = next(v for v in (7, 3, 0.25, 0.5) if check.test(v) and v != default)
        value = check.kind(value)
        return value, [flag, str(value)]
    return "some-value", [flag, "some-value"]


def through_the_record(config: EvalConfig) -> EvalConfig:
    """The config as a result file records it, read back."""
    return EvalConfig.from_record(json.loads(json.dumps(config.to_record())))


@pytest.mark.parametrize("name", sorted(flat_fields()))
def test_every_setting_round_trips_cli_config_record(name, tmp_path):
    parser = build_parser()
    base = EvalConfig.from_flat({**REQUIRED, "output": str(tmp_path)})
    _, f = flat_fields()[name]
    value, flags = other_value(name, f, tmp_path)
    argv = base_argv(tmp_path)
    if name in ("model", "benchmark", "output"):  # given once, with the other value
        at = argv.index(flag_of(f))
        argv[at : at + 2] = flags
    else:
        argv += flags
    parsed = from_args(parser.parse_args(argv))
    assert parsed == base.replace(**{name: value})  # the flag exists and sets this field
    assert parsed != base
    assert through_the_record(parsed) == parsed  # and the record keeps it


def test_a_config_with_every_setting_changed_round_trips(tmp_path):
    argv, expected = base_argv(tmp_path), {}
    for name, (_, f) in flat_fields().items():
        if name in ("model", "benchmark", "output", "greedy"):  # greedy: refuses sampling flags
            continue
        value, flags = other_value(name, f, tmp_path)
        argv += flags
        expected[name] = value
    parsed = from_args(build_parser().parse_args(argv))
    assert parsed == EvalConfig.from_flat({**REQUIRED, "output": str(tmp_path), **expected})
    assert through_the_record(parsed) == parsed


@pytest.mark.slow  # scores CrowS-Pairs with a tiny model
def test_a_result_records_its_config(tmp_path, shared_data, monkeypatch):
    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
    out = tmp_path / "results"
    argv = [*base_argv(out), "--limit", "3", "--n-boot", "5", "--no-progress", "--seed", "2"]
    argv += ["--mode", "harness", "--stage", "pre", "--model-meta", '{"planted_rate": 0.5}']
    assert main(argv) == 0
    (path,) = out.glob("*.json")
    record = json.loads(path.read_text())
    config = EvalConfig.from_record(record["eval_config"])
    assert config == EvalConfig.of(
        "tiny-gpt2", "crows_pairs", str(out), limit=3, n_boot=5, progress=False, seed=2,
        mode="harness", stage="pre", model_meta={"planted_rate": 0.5},
    )  # fmt: skip
    assert record["stage"] == "pre" and record["model"]["planted_rate"] == 0.5
    # The same config from Python finds the same run (same run id): skipped.
    again = runner.evaluate(config)
    assert again.skipped and again.path == path


# --------------------------------------------------------------------------- range checks


def _number_fields():
    for name, (_, f) in flat_fields().items():
        check = f.metadata.get("check")
        if isinstance(check, validate.NumberCheck):
            yield name, f, next(v for v in BAD_NUMBERS if not _accepts(check, v))


def _accepts(check, text) -> bool:
    try:
        check.parse(text)
    except (TypeError, ValueError):
        return False
    return True


@pytest.mark.parametrize("name,f,bad", list(_number_fields()), ids=lambda v: str(v)[:20])
def test_an_out_of_range_value_is_one_line_naming_the_flag(name, f, bad, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([*base_argv(tmp_path), flag_of(f), bad])
    assert info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert errors == [f"debiaslab eval: error: argument {flag_of(f)}: must be " + errors[0].split(
        ": must be ", 1)[1]]  # fmt: skip
    assert repr(bad) in errors[0]
    # The same check from Python, naming the setting.
    with pytest.raises(ConfigError, match=f"^{name} must be "):
        EvalConfig.of("m", "crows_pairs", tmp_path, **{name: bad})


def test_a_bad_choice_from_python_names_the_flag(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown mc_orders 'six' \(--mc-orders\)"):
        EvalConfig.of("m", "stereoset_mc", tmp_path, mc_orders="six")
    with pytest.raises(ConfigError, match="unknown evaluation setting 'n_bootstrap'"):
        EvalConfig.of("m", "crows_pairs", tmp_path, n_bootstrap=10)


def test_greedy_with_sampling_settings_is_refused_from_python_too():
    with pytest.raises(ConfigError, match="--greedy decodes without sampling, so --top-k 4"):
        GenerationConfig(greedy=True, top_k=4)
    GenerationConfig(greedy=True, num_return_sequences=1)  # 1 is what greedy does anyway


# ------------------------------------------------------------------------------- registry


SPY_METRICS = {"spy": Metric(None, None, "score", "what the spy run returns")}


def _spy_entry(entry: registry.Benchmark, calls: list):
    """``entry`` with loading and scoring replaced by a record of the call (no real data)."""

    def run(lm, loaded, job):
        calls.append((job.config.benchmark, lm.family, loaded))
        resolved = {key: "spy" for key in entry.resolved_keys}  # what the run used
        return BenchmarkOutput(
            entry.name, {"spy": 1.0}, {}, SPY_METRICS, len(loaded), config=resolved
        )

    return dataclasses.replace(
        entry,
        load=lambda job: ["item"],
        source=lambda job, loaded: ("spy.csv", None),
        setup=lambda job: None,
        run=run,
    )


@pytest.mark.parametrize("name", registry.names())
def test_every_registered_benchmark_dispatches(name, tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setitem(registry.REGISTRY, name, _spy_entry(registry.get(name), calls))
    result = runner.evaluate(EvalConfig.of("tiny-gpt2", name, tmp_path, n_boot=0))
    assert calls == [(name, "causal", ["item"])]
    assert result.record["benchmark"] == name and result.record["metrics"] == {"spy": 1.0}
    assert result.record["run_id"].startswith(f"tiny-gpt2__{name}__eval__")


def test_a_new_benchmark_is_one_registration(tmp_path, monkeypatch):
    calls: list = []

    def run(lm, loaded, job):
        calls.append((job.config.benchmark, lm.family, loaded))
        return BenchmarkOutput("toy", {"toy/score": 0.5}, {}, module.METRICS, len(loaded))

    module = types.ModuleType("toy", "A toy benchmark: its card.")
    module.METRICS = {"score": Metric(True, 1.0, "fraction", "share of toy items right")}
    entry = registry.Benchmark(
        "toy", "Toy", module, ("causal",), PrecisionConfig,
        load=lambda job: ["a", "b"], source=lambda job, loaded: ("toy.csv", None), run=run,
    )  # fmt: skip
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    registry.register(entry)
    assert main(["eval", "--model", "tiny-gpt2", "--benchmark", "toy", "--output", str(tmp_path),
                 "--no-progress"]) == 0  # fmt: skip
    assert calls == [("toy", "causal", ["a", "b"])]
    (path,) = tmp_path.glob("*.json")
    record = json.loads(path.read_text())
    assert record["metrics"] == {"toy/score": 0.5}
    assert record["higher_is_better"] == {"toy/score": True}
    assert record["ideal"] == {"toy/score": 1.0}
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(entry)
    undeclared = dataclasses.replace(entry, name="toy2", module=types.ModuleType("toy2"))
    with pytest.raises(ValueError, match="toy2: module toy2 declares no METRICS"):
        registry.register(undeclared)


def test_an_unknown_benchmark_lists_the_registered_ones(tmp_path, capsys):
    with pytest.raises(ConfigError) as info:
        runner.evaluate(EvalConfig.of("tiny-gpt2", "winobias", tmp_path))
    message = str(info.value)
    assert "unknown benchmark 'winobias'" in message and "\n" not in message
    assert all(name in message for name in registry.names())
    with pytest.raises(SystemExit):
        build_parser().parse_args([*base_argv(tmp_path)[:4], "winobias", "--output", "o"])
    err = capsys.readouterr().err
    assert "invalid choice: 'winobias'" in err and all(n in err for n in registry.names())


def test_an_unsupported_family_is_refused_before_loading(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("loaded although the family was known to be unsupported")

    monkeypatch.setattr("debiaslab.models.load_model", refuse)
    monkeypatch.setattr(runner, "_load_data", refuse)
    with pytest.raises(ConfigError) as info:
        runner.evaluate(EvalConfig.of("tiny-bert", "stereoset_mc", tmp_path))
    message = str(info.value)
    assert "needs a causal or seq2seq model; 'tiny-bert' is a masked LM" in message
    assert "\n" not in message and not any(tmp_path.iterdir())


def test_an_unsupported_family_known_only_after_loading_is_refused(tmp_path, monkeypatch):
    from debiaslab.mitigation import decoding_families

    calls: list = []
    spy = _spy_entry(registry.get("stereoset_mc"), calls)
    monkeypatch.setitem(registry.REGISTRY, "stereoset_mc", spy)
    monkeypatch.setattr(decoding_families, "known_family", lambda model, family=None: None)
    with pytest.raises(ConfigError, match="'tiny-bert' is a masked LM"):
        runner.evaluate(EvalConfig.of("tiny-bert", "stereoset_mc", tmp_path))
    assert calls == [] and not list(tmp_path.glob("*.json"))


def test_entries_reach_their_module():
    """Another module's declarations (e.g. its metrics) are reached as ``entry.module``."""
    for name in registry.names():
        entry = registry.get(name)
        assert entry.module.__doc__ and entry.run is not None
        assert set(entry.families) <= set(registry.ALL_FAMILIES)
        assert isinstance(runner.config_section(EvalConfig.of("m", name, "o"), entry.config_type),
                          entry.config_type)  # fmt: skip
