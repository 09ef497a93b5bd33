"""The real-photo evaluation split: whole LFW identities and part of UTKFace, from names alone."""

from __future__ import annotations

from pathlib import Path

from training.data.split import collection_of, holdout_files, is_holdout, person_of, training_files


def _tree(root: Path, people: int = 60, utk: int = 200) -> None:
    for i in range(people):
        name = f"Person_{i:03d}"
        (root / "lfw" / name).mkdir(parents=True)
        for j in range(1 + i % 4):
            (root / "lfw" / name / f"{name}_{j + 1:04d}.jpg").write_bytes(b"")
    (root / "utkface10k").mkdir()
    for i in range(utk):
        (root / "utkface10k" / f"{i % 90}_0_0_2017{i:09d}.jpg.chip.jpg").write_bytes(b"")
    (root / "celeba10k").mkdir()
    for i in range(30):
        (root / "celeba10k" / f"{i:06d}.jpg").write_bytes(b"")


def test_names():
    assert collection_of("lfw/A_B/A_B_0001.jpg") == "lfw" and person_of("lfw/A_B/A_B_0001.jpg") == "A_B"
    assert collection_of("utkface10k/1_0_0_x.jpg.chip.jpg") == "utkface" and person_of("utkface10k/x.jpg") is None
    assert collection_of("celeba10k/000001.jpg") == "celeba" and not is_holdout("celeba10k/000001.jpg")
    assert collection_of("mine/photo.jpg") == "other" and not is_holdout("mine/photo.jpg")


def test_split_is_disjoint_by_identity_and_stable(tmp_path):
    _tree(tmp_path)
    held = holdout_files(tmp_path, min_photos_per_person=1)
    train = training_files(tmp_path)
    assert held and train and not set(held) & set(train)
    held_people = {person_of(f) for f in held if person_of(f)}
    train_people = {person_of(f) for f in train if person_of(f)}
    assert held_people and not held_people & train_people  # whole identities
    # Roughly the advertised fractions (10 % of 60 people, 5 % of 200 photos), and not everything.
    assert 1 <= len(held_people) <= 15
    n_utk = sum(collection_of(f) == "utkface" for f in held)
    assert 2 <= n_utk <= 25
    assert not any(collection_of(f) == "celeba" for f in held)
    # The same names always give the same split, whatever the order of discovery.
    assert holdout_files(tmp_path, min_photos_per_person=1) == held


def test_subset_sizes_and_pairs(tmp_path):
    _tree(tmp_path, people=200)
    held = holdout_files(tmp_path, lfw_people=3, utk_photos=2)
    people = [person_of(f) for f in held if person_of(f)]
    assert len(set(people)) == 3 and all(people.count(p) >= 2 for p in set(people))
    assert sum(collection_of(f) == "utkface" for f in held) == 2
