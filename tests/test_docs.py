"""The documentation keeps up with the code and with itself.

- docs/architecture.md names every runtime module (each ``.py`` file under
  ``include/lead_load/`` and ``plugins/`` but a package's ``__init__.py``) by its dotted import
  name, ``lead_load.core.phones`` for ``include/lead_load/core/phones.py``. Only files that
  exist are checked, so a module the page names before it lands costs nothing.
- Every relative link in README.md and docs/*.md points at a file (or folder) that exists,
  and a link with an anchor into a markdown file at one of its headings.
- README.md stays a guide: under 300 lines, with a table of contents that lists its ``##``
  headings, in order, each with its GitHub anchor.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
ARCHITECTURE = REPO / "docs" / "architecture.md"
# Source folder -> the folder its dotted names are relative to.
RUNTIME_ROOTS = {
    REPO / "include" / "lead_load": REPO / "include",
    REPO / "plugins": REPO / "plugins",
}
README_MAX_LINES = 300
CONTENTS = "Contents"

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) or [text](target "title"); images too. Not inside inline code.
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`+[^`]*`+")
TOC_ENTRY = re.compile(r"^\s*[-*]\s+\[(?P<text>[^\]]+)\]\(#(?P<anchor>[^)]+)\)\s*$")


def runtime_modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the runtime that exists now."""
    modules = {}
    for source, base in RUNTIME_ROOTS.items():
        for path in sorted(source.rglob("*.py")):
            if path.name == "__init__.py" or "__pycache__" in path.parts:
                continue
            modules[".".join(path.relative_to(base).with_suffix("").parts)] = path
    return modules


def names(text: str, dotted: str) -> bool:
    """Whether ``dotted`` appears as a whole name (not as part of a longer one)."""
    return re.search(rf"(?<![\w.]){re.escape(dotted)}(?![\w]|\.\w)", text) is not None


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def headings(text: str) -> list[tuple[int, str]]:
    """(level, title) of every markdown heading outside code blocks."""
    found = []
    for _, line in prose_lines(text):
        match = HEADING.match(line)
        if match:
            found.append((len(match.group(1)), match.group(2)))
    return found


def slug(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but ``-`` and ``_`` dropped,
    spaces as ``-``."""
    plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link's text only
    plain = plain.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", plain).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for _, title in headings(path.read_text()):
        base = slug(title)
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def documents() -> list[Path]:
    return [README, *sorted((REPO / "docs").glob("*.md"))]


def links(path: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in prose_lines(path.read_text()):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            found.append((number, match.group(1)))
    return found


def broken_link(document: Path, target: str) -> str | None:
    """Why a relative link of ``document`` leads nowhere, or None."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, mailto:, ...
        return None
    file_part, _, anchor = target.partition("#")
    destination = (document.parent / file_part).resolve() if file_part else document
    if not destination.exists():
        return f"{file_part} does not exist"
    if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
        return f"{destination.relative_to(REPO)} has no heading #{anchor}"
    return None


# (a) every runtime module is named in docs/architecture.md


def test_architecture_names_every_runtime_module() -> None:
    text = ARCHITECTURE.read_text()
    missing = [
        f"{dotted} ({path.relative_to(REPO)})"
        for dotted, path in runtime_modules().items()
        if not names(text, dotted)
    ]
    assert not missing, (
        "docs/architecture.md does not name these modules (by dotted name, e.g. "
        "lead_load.core.phones):\n" + "\n".join(missing)
    )


def test_the_module_walk_sees_every_package() -> None:
    """Guards the walk itself: a path typo would otherwise pass on nothing."""
    modules = runtime_modules()
    assert {
        "lead_load.__main__",
        "lead_load.core.phones",
        "lead_load.ledger.schema",
        "lead_load.steps.post",
        "lead_load.glue.operators",
        "agent_api.hooks.agent_api",
        "agent_api.masking",
        "lead_loads.app",
        "lead_loads_plugin",
    } <= set(modules)
    assert not any(name.endswith("__init__") for name in modules)


def test_a_name_is_matched_whole() -> None:
    assert names("see `lead_load.core.window`.", "lead_load.core.window")
    assert names("lead_load.core.window: the window", "lead_load.core.window")
    assert not names("lead_load.core.windows", "lead_load.core.window")
    assert not names("lead_load.core.window.parse", "lead_load.core.window")
    assert not names("x.lead_load.core.window", "lead_load.core.window")


# (b) every relative link points at something that exists


def test_relative_links_point_at_existing_files() -> None:
    broken = [
        f"{document.relative_to(REPO)}:{number}: ({target}) {why}"
        for document in documents()
        for number, target in links(document)
        if (why := broken_link(document, target))
    ]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_link_check_reads_links() -> None:
    """Guards the check: the README links to docs pages, and a made-up target is caught."""
    targets = [target for _, target in links(README)]
    assert any(target.startswith("docs/") for target in targets)
    assert broken_link(README, "docs/no-such-page.md")
    assert broken_link(README, "#no-such-heading")
    assert broken_link(README, "docs/testing.md") is None
    assert broken_link(README, "https://example.com/x.md") is None
    assert slug("The `lead_load` DAG, task by task") == "the-lead_load-dag-task-by-task"
    assert slug("Mistakes in a run's settings") == "mistakes-in-a-runs-settings"


# (c) the README is a guide with a table of contents


def test_readme_is_short() -> None:
    count = len(README.read_text().splitlines())
    assert count < README_MAX_LINES, (
        f"README.md has {count} lines; keep it under {README_MAX_LINES} and move detail to docs/"
    )


def test_readme_contents_match_its_sections() -> None:
    text = README.read_text()
    sections = [title for level, title in headings(text) if level == 2 and title != CONTENTS]
    assert (2, CONTENTS) in headings(text), "README.md needs a '## Contents' section"

    entries, inside = [], False
    for _, line in prose_lines(text):
        match = HEADING.match(line)
        if match:
            if inside:
                break
            inside = len(match.group(1)) == 2 and match.group(2) == CONTENTS
            continue
        if inside and (entry := TOC_ENTRY.match(line)):
            entries.append((entry["text"], entry["anchor"]))

    assert [text for text, _ in entries] == sections, (
        "README's Contents must list its ## headings in order"
    )
    wrong = [(title, anchor) for title, anchor in entries if anchor != slug(title)]
    assert not wrong, f"Contents entries whose anchor is not their heading's: {wrong}"
