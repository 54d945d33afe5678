"""Revised English and French CrowS-Pairs (Névéol et al., ACL 2022), and which data a run reads.

1,677 pairs per language (the original pairs revised, 41 dropped, 210 new French pairs
translated back), exactly the files lm-evaluation-harness's ``crows_pairs_english`` and
``crows_pairs_french`` score, with their known defects read as lm-eval reads them. CC BY-SA
4.0. Entry points: :func:`load_crows_pairs_revised`; :func:`resolve_data_version` (``harness``
mode defaults to the revised data, ``nangia`` mode to the original 1,508 pairs; French exists
only revised) and :func:`load_pairs`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from debiaslab.data import fetch
from debiaslab.data.crows_pairs import BIAS_TYPES, CrowsPair, _parse, load_crows_pairs
from debiaslab.errors import ConfigError

DATA_VERSIONS = ("original", "revised")
LANGUAGES = ("english", "french")
REGISTRY_NAMES = {
    ("original", "english"): "crows_pairs",
    ("revised", "english"): "crows_pairs_revised_english",
    ("revised", "french"): "crows_pairs_revised_french",
}
REVISED_BIAS_TYPES = (*BIAS_TYPES, "autre")
REVISED_COLUMNS = ("", "sent_more", "sent_less", "stereo_antistereo", "bias_type")
# What lm-eval scores for an empty field: pandas reads NaN, the Hub dataset stores str(nan).
LM_EVAL_EMPTY_SENTENCE = "nan"


def load_crows_pairs_revised(
    path: str | os.PathLike | None = None, language: str = "english"
) -> list[CrowsPair]:
    """Load the revised English or the French CrowS-Pairs, in file order.

    The French CrowS-Pairs authors revised the English CrowS-Pairs (fixing issues that Blodgett
    et al. 2021 reported), dropped 41 pairs they found untranslatable or US-centric, translated
    the rest into French and collected 210 new French pairs, translated back into English. Each
    language has 1,677 pairs over the 9 original bias types plus ``autre`` ("other").
    lm-evaluation-harness's ``crows_pairs_english`` and ``crows_pairs_french`` score exactly
    these files, through the Hub dataset ``BigScienceBiasEval/crows_pairs_multilingual`` (now
    ``jannalu/crows_pairs_multilingual``), whose ``test`` split is every row of the file as
    ``pandas.read_csv(path, sep="\\t", index_col=0)`` reads it — no row dropped or reordered.

    Format (``crows_pairs_EN_revised+210.csv``,
    ``crows_pairs_FR_languagearc_contribution+210.csv``): tab-separated despite the ``.csv``
    name, UTF-8, a header. Columns: an unnamed leading id column, ``sent_more``,
    ``sent_less``, ``stereo_antistereo``, ``bias_type``. Ids are text:
    ``"0"``…``"1507"`` are the original file's record indices (the same pair, revised or
    translated), ``"LA0"``…``"LA209"`` the new pairs (the same id names the same pair in both
    languages). Sentences keep their spaces as written (some end with one): lm-eval scores them
    so. Errors name file, row (the header is row 0) and field, as the original loader's do.

    Known defects, reproduced as lm-eval reads them:

    * French id ``129`` has an empty ``sent_less``. pandas reads it as NaN and the Hub dataset's
      string feature stores ``str(nan)``, so lm-eval scores the text ``"nan"``; this loader does
      the same for the published files (checked by sha256, with a warning) and refuses an empty
      sentence in any other file.
    * Three French pairs (ids 59, 379, 388) have two identical sentences: never stereotyped, a
      likelihood difference of 0.

    Source: Aurélie Névéol, Yoann Dupont, Julien Bezançon, Karën Fort. "French CrowS-Pairs:
    Extending a challenge dataset for measuring social bias in masked language models to a
    language other than English." ACL 2022. Licence CC BY-SA 4.0 (as CrowS-Pairs; stated by the
    French CrowS-Pairs authors).

    Args:
        path: the tab-separated file. ``None`` resolves the registered file of ``language``:
            ``$DEBIASLAB_DATA_DIR`` → cache → checksum-verified download.
        language: ``english`` or ``french`` (used when ``path`` is None).

    Returns:
        One :class:`~debiaslab.data.crows_pairs.CrowsPair` per record (1,677 for each
        published file), ``index`` being the file's id as text.

    Raises:
        ConfigError: an unknown language.
        DataNotFoundError, ChecksumError: as :func:`debiaslab.data.fetch.resolve`.
        DataFormatError: the file is malformed; the message names file, row and field.
    """
    name = registry_name("revised", language)
    file = fetch.resolve(name, path)
    data = file.read_bytes()
    return _parse(
        data,
        file,
        delimiter="\t",
        columns=REVISED_COLUMNS,
        string_ids=True,
        empty_sentence=LM_EVAL_EMPTY_SENTENCE if _is_published(data) else None,
    )


def _is_published(data: bytes) -> bool:
    digest = hashlib.sha256(data).hexdigest()
    names = [REGISTRY_NAMES[("revised", language)] for language in LANGUAGES]
    return any(fetch.REGISTRY[name].sha256 == digest for name in names)


def registry_name(data_version: str, language: str = "english") -> str:
    """The :data:`debiaslab.data.fetch.REGISTRY` name of a data version and language."""
    check_choice(data_version, language)
    if (data_version, language) not in REGISTRY_NAMES:
        raise ConfigError(
            f"CrowS-Pairs in {language} exists only in the revised version (Névéol et al. "
            f"2022); use --data-version revised (or auto), not {data_version!r}"
        )
    return REGISTRY_NAMES[(data_version, language)]


def check_choice(data_version: str, language: str) -> None:
    """Raise :class:`ConfigError` for an unknown data version or language."""
    if data_version not in ("auto", *DATA_VERSIONS):
        raise ConfigError(
            f"unknown CrowS-Pairs data version {data_version!r}; expected auto, original or "
            "revised"
        )
    if language not in LANGUAGES:
        raise ConfigError(
            f"unknown CrowS-Pairs language {language!r}; expected one of {list(LANGUAGES)}"
        )


def file_format(path: str | os.PathLike) -> str:
    """``revised`` if the file's header is tab-separated, else ``original``."""
    with open(path, "rb") as fh:
        first = fh.readline()
    return "revised" if b"\t" in first else "original"


def resolve_data_version(
    mode: str,
    data_version: str = "auto",
    language: str = "english",
    path: str | os.PathLike | None = None,
) -> str:
    """The data version a run reads: ``original`` or ``revised``.

    ``auto`` means: an explicit file's own format (see :func:`file_format`; tab-separated means
    revised); else revised for ``harness`` mode (lm-evaluation-harness) and for French (which
    exists only revised), original (1,508 pairs) for ``nangia`` mode (``metric.py``).

    Args:
        mode: the resolved CrowS-Pairs mode, ``nangia`` or ``harness``.
        data_version: ``auto``, ``original`` or ``revised``.
        language: ``english`` or ``french``.
        path: an explicit data file, if any.

    Raises:
        ConfigError: an unknown value, or French asked in the original version.

    Example:
        >>> resolve_data_version("harness"), resolve_data_version("nangia")
        ('revised', 'original')
    """
    check_choice(data_version, language)
    if data_version == "auto":
        if path is not None and Path(path).is_file():
            data_version = file_format(path)
        elif language == "french" or mode == "harness":
            data_version = "revised"
        else:
            data_version = "original"
    if path is None:
        registry_name(data_version, language)  # French + original is refused here
    return data_version


def load_pairs(
    data_version: str, language: str = "english", path: str | os.PathLike | None = None
) -> list[CrowsPair]:
    """Load the pairs of a resolved data version (``original`` or ``revised``) and language,
    from ``path`` if given (read in that version's format), else from the registered file."""
    if data_version not in DATA_VERSIONS:
        raise ConfigError(
            f"data version {data_version!r} is not resolved; expected one of {DATA_VERSIONS} "
            "(see resolve_data_version)"
        )
    if path is None:
        registry_name(data_version, language)
    else:
        check_choice(data_version, language)
    if data_version == "revised":
        return load_crows_pairs_revised(path, language)
    return load_crows_pairs(path)


def data_file(data_version: str, language: str = "english") -> Path:
    """The local path of a registered data version's file (resolved as the loaders do)."""
    return fetch.resolve(registry_name(data_version, language))
