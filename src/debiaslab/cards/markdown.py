"""Markdown pieces every card uses: YAML front matter and table cells."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml


def front_matter(front: Mapping[str, Any]) -> list[str]:
    """The card's first lines: ``---``, the fields as YAML in their order, ``---``.

    Example:
        >>> front_matter({"license": "mit", "tags": ["debiaslab"]})
        ['---', 'license: mit\\ntags:\\n- debiaslab', '---']
    """
    return ["---", yaml.safe_dump(dict(front), sort_keys=False, allow_unicode=True).strip(), "---"]


def cell(text: Any) -> str:
    """``text`` as one Markdown table cell: ``|`` escaped, line breaks made spaces."""
    return str(text).replace("|", "\\|").replace("\n", " ")
