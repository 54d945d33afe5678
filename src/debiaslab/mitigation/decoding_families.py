"""Which model families each decoding-time method (``--decoding``) can steer.

``balance`` steers causal and seq2seq LMs, ``self-debias-*`` causal LMs only (as in Schick et
al.), and every method is refused for masked LMs. Entry points: :func:`check_decoding`
(called before the model is loaded when the family is known, and again right after loading)
and :func:`known_family`.
"""

from __future__ import annotations

from pathlib import Path

from debiaslab.config import get_preset
from debiaslab.errors import ConfigError
from debiaslab.models import detect_family

DECODING_FAMILIES: dict[str, tuple[str, ...]] = {
    "balance": ("causal", "seq2seq"),
    "self-debias-gender": ("causal",),
    "self-debias-toxicity": ("causal",),
}


def check_decoding(method: str, family: str, model: str) -> None:
    """Refuse a decoding method that does not apply to a model of ``family``.

    A decoding method is a logits processor handed to ``generate`` (:mod:`debiaslab.generation`):

    * ``balance`` (:class:`~debiaslab.mitigation.decoding.GroupBalance`) shifts the next-token
      logits of any ``generate`` call: causal LMs, and seq2seq models whose decoder output it
      counts after the start token;
    * ``self-debias-*`` (:class:`~debiaslab.mitigation.decoding.SelfDebias`) re-runs the model
      on the prefixed input, which is defined for causal LMs only (as in Schick et al.);
    * a masked LM does not generate: its HONEST completions are fill-mask's top-K words, which
      no logits processor touches, so a run "with" a decoding method would be the plain run
      recorded under another name. Every method is refused for masked LMs.

    It is called before the model is loaded when the family is known (``family`` given, a
    preset, a local folder's config) and again right after loading, before anything is
    generated or written.

    Raises:
        ConfigError: naming the method, the model and its family, and the families it steers.

    Example:
        >>> check_decoding("balance", "seq2seq", "flan-t5-small")
        >>> check_decoding("balance", "masked", "tiny-bert")
        Traceback (most recent call last):
        ...
        debiaslab.errors.ConfigError: --decoding balance does not apply to 'tiny-bert', a masked LM: it steers the generation of causal and seq2seq LMs only (a masked LM's HONEST completions are fill-mask's top-K words, which no decoding method changes); run without --decoding, or use a causal or seq2seq model
    """  # noqa: E501
    supported = DECODING_FAMILIES[method]
    if family in supported:
        return
    why = (
        " (a masked LM's HONEST completions are fill-mask's top-K words, which no decoding "
        "method changes)"
        if family == "masked"
        else ""
    )
    names = " and ".join(supported)
    raise ConfigError(
        f"--decoding {method} does not apply to {model!r}, a {family} LM: it steers the "
        f"generation of {names} LMs only{why}; run without --decoding, or use a "
        f"{' or '.join(supported)} model"
    )


def known_family(model: str, family: str | None = None) -> str | None:
    """The family of ``model`` without loading its weights, or ``None`` if that needs the Hub.

    ``family`` if given, else the preset's, else a local folder's ``config.json``.
    """
    if family is not None:
        return family

    preset = get_preset(model)
    if preset is not None:
        return preset.family
    if not (Path(model) / "config.json").is_file():
        return None
    from transformers import AutoConfig

    try:
        return detect_family(AutoConfig.from_pretrained(model))
    except (OSError, ValueError):  # a broken config: load_model reports it properly
        return None
