"""The fixed real-photo evaluation split, derived from file names alone.

The photo collections (``/work/shared/data/faces``: ``lfw/<Name>/<Name>_NNNN.jpg``,
``utkface10k/*.jpg``, ``celeba10k/*.jpg``) stay outside the repository, so the split is a
pure function of each file's path relative to the collection root — no list to ship, the
same on every machine:

- **LFW**: whole identities are held out. A person is held out when the SHA-256 of their
  folder name, read as an integer, falls in the lowest ``LFW_HOLDOUT_PERMILLE`` ‰ — no photo
  of a held-out person is ever trained on, so identity metrics measure unseen people.
- **UTKFace**: a photo is held out by the same rule on its file name (``UTK_HOLDOUT_PERMILLE``).
- **CelebA** and any other folder: never held out (training only).

:func:`person_of` gives the LFW identity of a path (None elsewhere), which the training
sampler uses for same-person pairs and the evaluation for same/different-person ROC AUC.
"""

from __future__ import annotations

import hashlib
from pathlib import Path, PurePosixPath

__all__ = ["LFW_HOLDOUT_PERMILLE", "UTK_HOLDOUT_PERMILLE", "collection_of", "person_of", "is_holdout",
           "holdout_files", "training_files", "training_subset"]

LFW_HOLDOUT_PERMILLE = 100
"""Per mille of LFW identities held out (about 575 of 5,749 people)."""

UTK_HOLDOUT_PERMILLE = 50
"""Per mille of UTKFace photos held out (about 500 of 10,000)."""

_SUFFIXES = (".jpg", ".jpeg", ".png")


def _permille(name: str) -> int:
    """Stable bucket in ``[0, 1000)`` of a string (SHA-256, platform independent)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") % 1000


def collection_of(rel: str) -> str:
    """``"lfw"``, ``"utkface"``, ``"celeba"`` or ``"other"`` from the path's first folder."""
    top = PurePosixPath(rel).parts[0].lower() if PurePosixPath(rel).parts else ""
    if top.startswith("lfw"):
        return "lfw"
    if top.startswith("utkface"):
        return "utkface"
    if top.startswith("celeba"):
        return "celeba"
    return "other"


def person_of(rel: str) -> str | None:
    """The LFW identity (folder name) of ``lfw/<Name>/<file>``; None for other collections."""
    parts = PurePosixPath(rel).parts
    if collection_of(rel) == "lfw" and len(parts) >= 3:
        return parts[1]
    return None


def is_holdout(rel: str) -> bool:
    """Whether the photo at ``rel`` (relative to the collection root, ``/``-separated) is evaluation-only."""
    coll = collection_of(rel)
    if coll == "lfw":
        person = person_of(rel)
        return person is not None and _permille(person) < LFW_HOLDOUT_PERMILLE
    if coll == "utkface":
        return _permille(PurePosixPath(rel).name) < UTK_HOLDOUT_PERMILLE
    return False


def _all_files(root: Path, collections: tuple[str, ...]) -> list[str]:
    out = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in _SUFFIXES:
            continue
        rel = path.relative_to(root).as_posix()
        if collection_of(rel) in collections and not any(p.startswith(".") for p in PurePosixPath(rel).parts):
            out.append(rel)
    return out


def holdout_files(root: str | Path, lfw_people: int | None = None, utk_photos: int | None = None,
                  min_photos_per_person: int = 2, max_photos_per_person: int = 4) -> list[str]:
    """The evaluation photos under ``root`` (relative paths, a deterministic order).

    Args:
        root: the collection root holding ``lfw/`` and ``utkface*/``.
        lfw_people: keep only this many held-out LFW people (those with at least
            ``min_photos_per_person`` photos, in hash order); None = all of them.
        utk_photos: keep only this many held-out UTKFace photos (hash order); None = all.
        min_photos_per_person: LFW people with fewer photos are left out (same-person pairs need 2).
        max_photos_per_person: at most this many photos per LFW person (the first by name).

    Returns:
        Relative ``/``-separated paths: the LFW part grouped by person, then the UTKFace part.
    """
    root = Path(root)
    files = [f for f in _all_files(root, ("lfw", "utkface")) if is_holdout(f)]
    people: dict[str, list[str]] = {}
    utk = []
    for f in files:
        person = person_of(f)
        if person is not None:
            people.setdefault(person, []).append(f)
        else:
            utk.append(f)
    chosen = sorted((p for p, v in people.items() if len(v) >= min_photos_per_person), key=lambda p: (_permille(p), p))
    if lfw_people is not None:
        chosen = chosen[:lfw_people]
    utk = sorted(utk, key=lambda f: (_permille(PurePosixPath(f).name), f))
    if utk_photos is not None:
        utk = utk[:utk_photos]
    return [f for p in chosen for f in sorted(people[p])[:max_photos_per_person]] + utk


def training_files(root: str | Path, collections: tuple[str, ...] = ("lfw", "utkface", "celeba")) -> list[str]:
    """Every photo under ``root`` of ``collections`` that is not held out (sorted relative paths)."""
    return [f for f in _all_files(Path(root), collections) if not is_holdout(f)]


def training_subset(root: str | Path, n: int, lfw_share: float = 0.5, max_photos_per_person: int = 4) -> list[str]:
    """A deterministic, balanced subset of ``n`` training photos (none held out).

    ``lfw_share`` of them are LFW photos of people with at least two training photos (up to
    ``max_photos_per_person`` each, people in hash order, so the identity term has pairs); the
    rest is split evenly between UTKFace and CelebA (hash order), whichever exist.
    """
    files = training_files(root)
    people: dict[str, list[str]] = {}
    others: dict[str, list[str]] = {"utkface": [], "celeba": []}
    for f in files:
        person = person_of(f)
        if person is not None:
            people.setdefault(person, []).append(f)
        elif collection_of(f) in others:
            others[collection_of(f)].append(f)
    lfw: list[str] = []
    n_lfw = int(round(n * lfw_share))
    for person in sorted((p for p, v in people.items() if len(v) >= 2), key=lambda p: (_permille(p), p)):
        if len(lfw) >= n_lfw:
            break
        lfw += sorted(people[person])[:max_photos_per_person]
    lfw = lfw[:n_lfw]
    rest = [sorted(v, key=lambda f: (_permille(PurePosixPath(f).name), f)) for v in others.values() if v]
    picked: list[str] = []
    i = 0
    while len(lfw) + len(picked) < n and any(i < len(v) for v in rest):
        picked += [v[i] for v in rest if i < len(v)]
        i += 1
    return lfw + picked[: n - len(lfw)]
