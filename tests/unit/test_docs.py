"""
The documentation stands alone and stays true: every page is in the MkDocs nav, every relative
link (and its anchor) resolves, the `mlops.yaml` shown is the example's file, and nothing in the
repository points at files outside it.

`mkdocs build --strict` itself runs in scripts/test.sh (its own step); these checks also cover
README.md, which the site does not build.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml
from markdown.extensions.toc import slugify

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
EXAMPLE_CONFIG = REPO / "examples" / "breast-cancer" / "mlops.yaml"

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~)")


def _pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def _outside_fences(text: str) -> list[str]:
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _anchors(page: Path) -> set[str]:
    """The heading ids MkDocs' toc extension gives a page (duplicates get _1, _2, ...)."""
    ids: set[str] = set()
    for line in _outside_fences(page.read_text()):
        if m := re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line):
            slug = base = slugify(re.sub(r"[`*]", "", m[1]), "-")
            n = 0
            while slug in ids:
                n += 1
                slug = f"{base}_{n}"
            ids.add(slug)
    return ids


def _nav_files(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [f for item in nav for f in _nav_files(item)]
    if isinstance(nav, dict):
        return [f for value in nav.values() for f in _nav_files(value)]
    raise AssertionError(f"mkdocs.yml: unexpected nav entry {nav!r}; entries are 'Title: page.md' or sections")


def test_every_docs_page_is_in_the_mkdocs_nav_and_every_nav_entry_exists() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    assert config["docs_dir"] == "docs" and config["theme"]["name"] == "material"
    in_nav = _nav_files(config["nav"])
    on_disk = [page.name for page in _pages()]
    assert len(on_disk) >= 10, on_disk
    missing = sorted(set(on_disk) - set(in_nav))
    assert not missing, f"mkdocs.yml: pages missing from nav: {missing}; add each under nav:"
    absent = sorted(set(in_nav) - set(on_disk))
    assert not absent, f"mkdocs.yml: nav names pages that do not exist in docs/: {absent}"
    assert len(in_nav) == len(set(in_nav)), f"mkdocs.yml: a page is in the nav twice: {in_nav}"


def test_every_relative_link_in_readme_and_docs_resolves() -> None:
    broken = []
    checked = 0
    for source in [REPO / "README.md", *_pages()]:
        for line in _outside_fences(source.read_text()):
            for target in LINK.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                    continue
                checked += 1
                path, _, anchor = target.partition("#")
                resolved = (source.parent / path).resolve() if path else source
                if not resolved.exists():
                    broken.append(f"{source.relative_to(REPO)}: {target} (no file {resolved})")
                elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                    broken.append(f"{source.relative_to(REPO)}: {target} (no heading with id '{anchor}')")
    assert checked >= 40, f"only {checked} relative links found: the link pattern no longer matches"
    assert not broken, "broken links; point each at an existing page and heading:\n" + "\n".join(broken)


def test_the_mlops_yaml_shown_in_the_docs_is_the_example_file() -> None:
    example = EXAMPLE_CONFIG.read_text()
    shown = []
    for source in [REPO / "README.md", *_pages()]:
        for block in re.findall(r"^```yaml\n(.*?)^```$", source.read_text(), re.S | re.M):
            if re.search(r"^project: demo$", block, re.M) and re.search(r"^model: breast-cancer$", block, re.M):
                shown.append((source.relative_to(REPO), block))
    assert shown, "no page shows examples/breast-cancer/mlops.yaml (docs/configuration.md should)"
    for source, block in shown:
        assert block == example, f"{source}: the mlops.yaml excerpt differs from {EXAMPLE_CONFIG.relative_to(REPO)}; paste the file as it is"


def _repo_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                            cwd=REPO, capture_output=True, check=True, timeout=60).stdout
    return [REPO / name for name in listed.decode().split("\0") if name and (REPO / name).is_file()]


def test_nothing_in_the_repository_points_at_internal_files_outside_it() -> None:
    # Built from pieces, so this file does not match itself.
    internal = re.compile(
        "|".join([r"DESIGN" + r"\.md", r"STYLE" + r"\.md", r"shared/" + r"(DESIGN|STYLE)",
                  r"\.\./" + r"shared(?![\w./-])", r"/work/" + r"shared\b"])
    )
    files = _repo_files()
    assert len(files) > 100, f"git ls-files listed only {len(files)} files"
    found = []
    for path in files:
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue  # binary files
        for number, line in enumerate(text.splitlines(), 1):
            if internal.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:120]}")
    assert not found, (
        "the repository must stand alone: these lines point at documents outside it; say it in the "
        "line itself or link a page in docs/ (docs/architecture.md for the design):\n" + "\n".join(found)
    )
