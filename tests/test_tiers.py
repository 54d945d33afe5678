"""The test tiers: `make test-fast` (no slow, no e2e) stays the inner loop, and every test that
needs the whole-collection run is e2e without anyone remembering to mark it."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class FakeItem:
    def __init__(self, *fixtures: str) -> None:
        self.fixturenames = list(fixtures)
        self.markers: list[str] = []

    def add_marker(self, marker) -> None:
        self.markers.append(marker.name)


def _conftest(config: pytest.Config):
    conftest = ROOT / "tests" / "conftest.py"
    plugins = config.pluginmanager.get_plugins()
    return next(p for p in plugins if getattr(p, "__file__", None) == str(conftest))


def test_tests_that_need_the_collection_run_are_e2e(request):
    e2e, unit = FakeItem("tmp_path", "demo_run"), FakeItem("tmp_path", "planted_models")
    _conftest(request.config).pytest_collection_modifyitems([e2e, unit])
    assert e2e.markers == ["e2e"] and unit.markers == []


def test_tiers_are_declared_and_test_fast_leaves_out_slow_and_e2e():
    pytest_options = (ROOT / "pyproject.toml").read_text().split("[tool.pytest.ini_options]")[1]
    addopts = next(line for line in pytest_options.splitlines() if line.startswith("addopts"))
    assert "--durations=20" in addopts
    assert '"slow:' in pytest_options and '"e2e:' in pytest_options  # declared markers
    makefile = (ROOT / "Makefile").read_text().split("\ntest-fast:")[1].split("\n\n")[0]
    assert '-m "not slow and not e2e"' in makefile
