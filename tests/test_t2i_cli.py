"""``debiaslab t2i …`` on the tiny offline models."""

from __future__ import annotations

import json

import pytest

from debiaslab.cli import main


@pytest.mark.slow  # the whole text-to-image pipeline, four commands
def test_t2i_generate_audit_rewrite_and_socratic_from_the_command_line(
    tmp_path, monkeypatch, shared_data, capsys
):
    monkeypatch.setenv("DEBIASLAB_DATA_DIR", str(shared_data))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a photo of a nurse\na photo of a chef\n")
    tiny = ["--model", "tiny-sd", "--steps", "2", "--size", "32"]
    out = tmp_path / "images"
    assert main(["t2i", "generate", *tiny, "--prompts", str(prompts), "--images", "2",
                 "--out", str(out)]) == 0  # fmt: skip
    assert "4 images" in capsys.readouterr().out and len(list(out.rglob("*.png"))) == 4

    audit = ["t2i", "audit", *tiny, "--occupations", "Cashiers", "--images", "2"]
    assert (
        main([*audit, "--clip", "tiny-clip", "--n-boot", "20", "--out", str(tmp_path / "a")]) == 0
    )
    printed = capsys.readouterr().out
    assert "written" in printed and "Cashiers" in printed

    assert main(["t2i", "rewrite", "--model", "tiny-gpt2", "--prompts", str(prompts),
                 "--n", "2"]) == 0  # fmt: skip
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [x["prompt"] for x in lines] == ["a photo of a nurse", "a photo of a chef"]
    assert all(len(x["rewrites"]) == 2 for x in lines)

    socratic = ["t2i", "socratic", *tiny, "--categories", "People", "--limit", "1"]
    models = ["--captioner", "tiny-blip", "--clip", "tiny-clip", "--llm", "tiny-gpt2"]
    assert main([*socratic, *models, "--max-cycles", "2", "--n-boot", "20",
                 "--out", str(tmp_path / "soc")]) == 0  # fmt: skip
    assert "written" in capsys.readouterr().out
