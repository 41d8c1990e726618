"""A second opinion on the audit: detect-secrets (Yelp's scanner, from PyPI, with its default
plugins: private keys, AWS, Azure storage, GitHub, GitLab, npm, PyPI, Slack, Stripe, JWT,
basic-auth URLs, secret keywords, high-entropy strings) reads the generalized trees.

Its scope is the audit's, computed here independently: every regular file except what dpkg
installed unchanged (md5sums and conffile checksums, hashed here again), Python byte code
compiled from those, and dpkg's and apt's own databases. Whatever it finds must be in a file
the final audit named, or be one of the reviewed false positives below, line for line.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from detect_secrets import SecretsCollection
from detect_secrets.settings import default_settings

from .conftest import OPS_USER, GeneralizedTree

pytestmark = [pytest.mark.slow, pytest.mark.guest]

SKIPPED_DIRS = ("proc", "sys", "dev", "run", "var/lib/dpkg", "var/lib/apt/lists", "var/cache/apt")

# Reviewed: what detect-secrets reports that is not a secret, with the exact line.
FALSE_POSITIVES = {
    # NSS's source list for the passwd database (Secret Keyword on "passwd:").
    ("Secret Keyword", "/etc/nsswitch.conf", "passwd:         files"),
}


@dataclass(frozen=True)
class Hit:
    type: str
    path: str
    line: str


def unchanged_package_files(root: Path) -> set[Path]:
    """Files whose content is what dpkg installed (paths resolved inside root)."""
    expected: list[tuple[str, str]] = []
    for sums in (root / "var/lib/dpkg/info").glob("*.md5sums"):
        for line in sums.read_text(errors="replace").splitlines():
            md5, _, path = line.partition("  ")
            expected.append((md5, path))
    in_conffiles = False
    for line in (root / "var/lib/dpkg/status").read_text(errors="replace").splitlines():
        if line.startswith("Conffiles:"):
            in_conffiles = True
            continue
        if not line.startswith(" "):
            in_conffiles = False
        parts = line.split()
        if in_conffiles and len(parts) >= 2 and len(parts[1]) == 32:
            expected.append((parts[1], parts[0].lstrip("/")))
    unchanged = set()
    for md5, path in expected:
        real = Path(os.path.realpath(root / path))
        if not real.is_relative_to(root) or real.is_symlink() or not real.is_file():
            continue
        if hashlib.md5(real.read_bytes()).hexdigest() == md5:
            unchanged.add(real)
    return unchanged


def files_in_scope(root: Path) -> list[Path]:
    unchanged = unchanged_package_files(root)
    skipped = {root / d for d in SKIPPED_DIRS}
    files = []
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d not in skipped and not (here / d).is_symlink()]
        for name in names:
            path = here / name
            if path.is_symlink() or not path.is_file() or path in unchanged:
                continue
            source = path.parent.parent / (name.split(".")[0] + ".py")
            if path.parent.name == "__pycache__" and path.suffix == ".pyc" and source in unchanged:
                continue
            files.append(path)
    return sorted(files)


def _scan(paths: list[str]) -> list[tuple[str, str, int]]:
    collection = SecretsCollection()
    with default_settings():
        for path in paths:
            collection.scan_file(path)
    return [(s.type, name, s.line_number) for name, s in collection]


def detect_secrets_hits(root: Path) -> set[Hit]:
    files = [str(p) for p in files_in_scope(root)]
    print(f"detect-secrets: scanning {len(files)} files under {root}", flush=True)
    chunks = [files[i::2] for i in range(2)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        found = [hit for result in pool.map(_scan, chunks) for hit in result]
    hits = set()
    for kind, name, number in found:
        text = Path(name).read_bytes().decode(errors="replace").splitlines()[number - 1]
        hits.add(Hit(kind, "/" + str(Path(name).relative_to(root)), text.strip()))
    return hits


def named_paths(output: str) -> set[str]:
    return {
        line.removeprefix("audit: FINDING ").split(": ", 1)[0]
        for line in output.splitlines()
        if line.startswith("audit: FINDING ")
    }


def unexplained(hits: set[Hit], named: set[str]) -> list[Hit]:
    return sorted(
        (
            h
            for h in hits
            if h.path not in named and (h.type, h.path, h.line) not in FALSE_POSITIVES
        ),
        key=lambda h: (h.path, h.type),
    )


@pytest.fixture(scope="module")
def second_opinion(generalized_tree: GeneralizedTree) -> Iterator[tuple[set[Hit], set[Hit]]]:
    yield (
        detect_secrets_hits(generalized_tree.root),
        detect_secrets_hits(generalized_tree.dirty.root),
    )


def test_scope_is_the_audits(generalized_tree: GeneralizedTree) -> None:
    """The independently computed scope has as many files as the audit says it scanned."""
    for root, output in (
        (generalized_tree.root, generalized_tree.generalize.stdout),
        (generalized_tree.dirty.root, generalized_tree.dirty.generalize.stdout),
    ):
        scope = next(line for line in output.splitlines() if line.startswith("audit: scope: "))
        assert scope.endswith(f"; {len(files_in_scope(root))} to scan"), scope


def test_nothing_in_the_clean_image(
    second_opinion: tuple[set[Hit], set[Hit]], generalized_tree: GeneralizedTree
) -> None:
    clean, _ = second_opinion
    assert unexplained(clean, set()) == []
    # The reviewed false positives are still what it reports (else the list is stale).
    assert {(h.type, h.path, h.line) for h in clean} == FALSE_POSITIVES


def test_everything_it_finds_in_the_dirty_build_the_audit_named(
    second_opinion: tuple[set[Hit], set[Hit]], generalized_tree: GeneralizedTree
) -> None:
    _, dirty = second_opinion
    named = named_paths(generalized_tree.dirty.generalize.stdout)
    assert unexplained(dirty, named) == []
    # Not a vacuous pass: it does find the token formats it knows.
    kinds = {(h.type, h.path) for h in dirty}
    assert {
        ("AWS Access Key", "/opt/app/.env.production"),
        ("GitHub Token", "/etc/profile.d/app.sh"),
        ("GitLab Token", "/opt/app/.git/config"),
        ("NPM tokens", f"/home/{OPS_USER}/.npmrc"),
        ("Azure Storage Account access key", "/opt/app/appsettings.json"),
        ("Basic Auth Credentials", "/etc/pip.conf"),
        ("Slack Token", "/usr/local/bin/notify"),
        ("Stripe Access Key", "/opt/app/config/app.yaml"),
        ("JSON Web Token", "/var/lib/app/session.json"),
        ("Private Key", "/opt/app/tls/server.key"),
        ("Secret Keyword", "/etc/environment"),
    } <= kinds
