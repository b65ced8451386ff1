"""An MkDocs hook: the README's links to the repository's other Markdown files (BENCHMARKS.md, CHANGELOG.md) lead to
their pages in the documentation, where the README's sections are included as guide pages."""

from __future__ import annotations

import posixpath
import re
from typing import Any

PAGES = {"BENCHMARKS.md": "benchmarks.md", "CHANGELOG.md": "changelog.md"}
LINK = re.compile(r"\]\((?:\.\./)*(BENCHMARKS|CHANGELOG)\.md")


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    here = posixpath.dirname(page.file.src_uri)
    return LINK.sub(lambda match: "](" + posixpath.relpath(PAGES[f"{match[1]}.md"], here or "."), markdown)
