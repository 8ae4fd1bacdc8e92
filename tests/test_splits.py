"""The one split of the project (``neonet_ext.data.split_cases``) in each of its calling modes."""

from __future__ import annotations

import pytest

from neonet_ext.data.splits import split_cases

#: Twelve cases, four of them PNI+ (c0, c3, c6, c9).
CASES = [{"case_id": f"c{i}", "pni": int(i % 3 == 0)} for i in range(12)]


def _ids(parts):
    return [[item["case_id"] for item in part] for part in parts]


# The expected parts were computed with the three functions this one replaced (NeoSeg's and NeoGen's
# ``split_cases``, NeoCls's ``stratified_split``, the study's ``stratified_folds``), so the bundles'
# training splits and the study's folds stay what they were.
@pytest.mark.parametrize("kwargs, expected", [
    ({"val_fraction": 0.25, "seed": 0},
     [["c4", "c5", "c11", "c0", "c3", "c6", "c10", "c8", "c1"], ["c9", "c2", "c7"]]),
    ({"val_fraction": 0.2, "seed": 7},
     [["c10", "c0", "c1", "c3", "c8", "c7", "c2", "c5", "c9", "c11"], ["c4", "c6"]]),
    ({"val_fraction": 0.25, "seed": 0, "stratify_by": "pni"},
     [["c5", "c10", "c8", "c1", "c2", "c11", "c6", "c0", "c9"], ["c4", "c7", "c3"]]),
    ({"val_fraction": 0.2, "seed": 3, "stratify_by": "pni"},
     [["c4", "c2", "c7", "c8", "c5", "c1", "c0", "c6", "c9"], ["c10", "c11", "c3"]]),
    ({"seed": 0, "stratify_by": "pni", "n_folds": 3},
     [["c4", "c10", "c2", "c6"], ["c7", "c8", "c11", "c0"], ["c5", "c1", "c3", "c9"]]),
])
def test_split_is_the_one_the_bundles_and_the_study_drew_before(kwargs, expected):
    assert _ids(split_cases(CASES, **kwargs)) == expected


def test_folds_of_uneven_classes_are_the_ones_the_study_drew_before():
    cases = CASES + [{"case_id": f"p{i}", "pni": 1} for i in range(3)]
    folds = split_cases(cases, seed=1, stratify_by="pni", n_folds=5)
    assert _ids(folds) == [["c8", "c10", "c6"], ["c1", "c5", "c9"], ["c2", "c11", "p0"], ["c7", "c3", "p1"],
                           ["c4", "p2", "c0"]]


def test_split_is_seeded_and_keeps_a_validation_case():
    items = [{"image": str(i)} for i in range(10)]
    train, val = split_cases(items, 0.2, seed=0)
    assert len(train) == 8 and len(val) == 2
    assert sorted(d["image"] for d in train + val) == sorted(d["image"] for d in items)
    assert split_cases(items, 0.2, seed=0) == (train, val)
    assert split_cases(items, 0.2, seed=1) != (train, val)
    assert [len(part) for part in split_cases(items[:2], 0.01)] == [1, 1]
    assert [len(part) for part in split_cases(items[:3], 0.99)] == [1, 2]
    with pytest.raises(ValueError, match="at least two cases"):
        split_cases(items[:1])


def _patients(n_neg: int, n_pos: int) -> list[dict]:
    negatives = [{"case_id": f"n{i}", "pni": 0} for i in range(n_neg)]
    return negatives + [{"case_id": f"p{i}", "pni": 1} for i in range(n_pos)]


def test_stratified_split_keeps_class_proportions_and_is_seeded():
    items = _patients(84, 44)  # the study's cohort: 128 patients, 44 PNI+
    train, val = split_cases(items, 0.2, seed=3, stratify_by="pni")
    assert sum(i["pni"] for i in val) == 9 and len(val) == 17 + 9
    assert {i["case_id"] for i in train}.isdisjoint(i["case_id"] for i in val)
    assert len(train) + len(val) == 128
    assert split_cases(items, 0.2, seed=3, stratify_by="pni") == (train, val)
    assert split_cases(items, 0.2, seed=4, stratify_by="pni") != (train, val)
    with pytest.raises(ValueError, match="synthetic items must not be split"):
        split_cases([*items, {"case_id": "s", "pni": 1, "synthetic": True}], stratify_by="pni")


def test_stratified_folds_are_disjoint_balanced_and_seeded():
    items = [{"case_id": f"c{i}", "pni": int(i % 3 == 0)} for i in range(64)]  # 22 positives
    folds = split_cases(items, seed=0, stratify_by="pni", n_folds=5)
    ids = [item["case_id"] for fold in folds for item in fold]
    assert sorted(ids) == sorted(i["case_id"] for i in items)  # a partition
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    positives = [sum(i["pni"] for i in fold) for fold in folds]
    assert max(positives) - min(positives) <= 1
    assert folds == split_cases(items, seed=0, stratify_by="pni", n_folds=5)
    assert folds != split_cases(items, seed=1, stratify_by="pni", n_folds=5)
    with pytest.raises(ValueError, match="fewer than the 5 folds"):
        split_cases(items[:9], stratify_by="pni", n_folds=5)
    with pytest.raises(ValueError, match="synthetic"):
        split_cases([*items, {"case_id": "s", "pni": 1, "synthetic": True}], stratify_by="pni", n_folds=5)
    with pytest.raises(ValueError, match="its own case_id"):
        split_cases([*items, items[0]], stratify_by="pni", n_folds=5)
