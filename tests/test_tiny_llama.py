"""The tiny Llama: an offline SentencePiece-style tokenizer (Llama-2 / Mistral layout) and a
random LlamaForCausalLM that load back from disk like a hub checkpoint."""

from __future__ import annotations

from debiaslab.models import load_model
from debiaslab.tiny.build import save_tiny
from debiaslab.tiny.llama import CHAT_TEMPLATE, build_llama_tokenizer, build_tiny_llama


def test_tokenizer_is_deterministic_and_llama_shaped():
    tok = build_llama_tokenizer()
    assert tok.get_vocab() == build_llama_tokenizer().get_vocab()
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 258]) == [
        "<unk>", "<s>", "</s>", "<0x00>", "<0xFF>"
    ]  # fmt: skip
    ids = tok("Answer: A\nnaïve")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] != tok.eos_token_id
    assert "<0x0A>" in tok.convert_ids_to_tokens(ids)  # byte fallback, no <unk>
    assert tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == "Answer: A\nnaïve"
    # The two pipelines differ only for text that starts with a space.
    current = build_llama_tokenizer(legacy=False)
    assert current("The nurse came in.")["input_ids"] == tok("The nurse came in.")["input_ids"]
    assert tok.tokenize(" A") == ["▁", "▁A"] and current.tokenize(" A") == ["▁A"]


def test_tiny_llama_saves_and_loads_back_with_its_pipeline_and_chat_template(tmp_path):
    model, tok = build_tiny_llama(seed=1, chat=True)
    path = save_tiny(model, tok, tmp_path / "tiny-llama")
    lm = load_model(str(path), device="cpu")
    assert lm.family == "causal" and type(lm.model).__name__ == "LlamaForCausalLM"
    assert lm.tokenizer.tokenize(" B") == ["▁", "▁B"]
    assert lm.tokenizer.chat_template == CHAT_TEMPLATE
    text = lm.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Pick one."}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<s>[INST] Pick one. [/INST]"
