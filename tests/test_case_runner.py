"""CaseRunner: one bad case never stops a batch, tables survive interruption, re-runs keep what is done."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import torch
from monai.data import MetaTensor

from neonet_ext.engines import CaseRunner
from neonet_ext.utils.writers import CASE_ID_META_KEY, case_name, case_output_name


class Interrupted(BaseException):
    """Stands for Ctrl-C or a killed job: not an ``Exception``, so the runner does not catch it."""


class FakePipeline:
    """Loads a text file as the 'image', writes ``<case>/<case>_out.txt`` holding its text and a
    setting; records which cases it processed; fails or stops on request."""

    def __init__(self, output_dir: Path, fail: set[str] = frozenset(), stop_at: str | None = None) -> None:
        self.output_dir, self.fail, self.stop_at = output_dir, set(fail), stop_at
        self.processed: list[str] = []

    def preprocessing(self, item: dict) -> dict:
        return {**item, "image": MetaTensor(torch.zeros(1), meta={"filename_or_obj": item["image"]}),
                "text": Path(item["image"]).read_text()}

    def postprocessing(self, data: dict) -> dict:
        case = data["image"].meta[CASE_ID_META_KEY]
        if case == self.stop_at:
            raise Interrupted
        out = self.output_dir / case / f"{case}_out.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(data["text"])
        if case in self.fail:
            raise ValueError("broken after writing")
        self.processed.append(case)
        return {**data, "out": str(out), "length": float(len(data["text"]))}

    def runner(self, inputs: Path, **kwargs) -> CaseRunner:
        items = [{"case_id": p.stem, "image": str(p)} for p in sorted(inputs.glob("*.txt"))]
        options = {"saved_keys": ("out",), "case_flags": {"length": lambda d: d["length"]}, "output_table": "table.csv",
                   "settings": {"threshold": 0.5}, **kwargs}
        return CaseRunner(items, self.preprocessing, None, None, self.postprocessing, self.output_dir, **options)


def table(folder: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO((folder / "table.csv").read_text())))


@pytest.fixture
def inputs(tmp_path) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir()
    for name, text in [("a", "alpha"), ("b", "bravo!"), ("c", "charlie")]:
        (folder / f"{name}.txt").write_text(text)
    return folder


def test_table_has_a_row_per_case_with_errors_and_failed_cases_leave_no_files(inputs, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="1 of 3 cases failed"):
        FakePipeline(out, fail={"b"}).runner(inputs).run()
    rows = table(out)
    assert [r["case"] for r in rows] == ["a", "b", "c"]
    assert rows[0] == {"case": "a", "length": "5.000000", "error": ""}
    assert rows[1]["length"] == "" and "b.txt: broken after writing" in rows[1]["error"]
    assert not (out / "b").exists()  # what the failed case wrote is gone
    entries = json.loads((out / "datalist.json").read_text())["testing"]
    assert [e["case_id"] for e in entries] == ["a", "c"] and entries[0]["out"] == "a/a_out.txt"


def test_an_interrupted_run_keeps_its_table_and_a_rerun_ends_as_one_uninterrupted_run(inputs, tmp_path):
    whole = tmp_path / "whole"
    FakePipeline(whole).runner(inputs).run()

    out = tmp_path / "out"
    with pytest.raises(Interrupted):
        FakePipeline(out, stop_at="b").runner(inputs).run()
    assert [r["case"] for r in table(out)] == ["a"]  # written as case a finished
    assert [e["case_id"] for e in json.loads((out / "datalist.json").read_text())["testing"]] == ["a"]

    rerun = FakePipeline(out)
    rerun.runner(inputs).run()
    assert rerun.processed == ["b", "c"]  # a was kept
    assert (out / "table.csv").read_text() == (whole / "table.csv").read_text()
    assert (out / "datalist.json").read_text() == (whole / "datalist.json").read_text()


def test_a_second_interruption_loses_nothing_done_before(inputs, tmp_path):
    out = tmp_path / "out"
    FakePipeline(out).runner(inputs).run()
    (inputs / "a.txt").write_text("alpha, edited")
    with pytest.raises(Interrupted):
        FakePipeline(out, stop_at="a").runner(inputs).run()
    rerun = FakePipeline(out)
    rerun.runner(inputs).run()
    assert rerun.processed == ["a"]  # b and c were still on record after the interruption


def test_rerun_processes_again_what_changed(inputs, tmp_path, capsys):
    out = tmp_path / "out"
    FakePipeline(out).runner(inputs).run()

    same = FakePipeline(out)
    same.runner(inputs).run()
    assert same.processed == []
    assert "done by an earlier run with the same input and weights; kept" in capsys.readouterr().out

    (inputs / "b.txt").write_text("bravo, edited")
    (out / "c" / "c_out.txt").unlink()
    edited = FakePipeline(out)
    edited.runner(inputs).run()
    assert edited.processed == ["b", "c"]
    assert (out / "b" / "b_out.txt").read_text() == "bravo, edited"

    other_settings = FakePipeline(out)
    other_settings.runner(inputs, settings={"threshold": 0.6}).run()
    assert other_settings.processed == ["a", "b", "c"]

    weights = tmp_path / "model.pt"
    weights.write_bytes(b"weights 1")
    FakePipeline(out).runner(inputs, model_files=[weights]).run()
    weights.write_bytes(b"weights 2")
    new_weights = FakePipeline(out)
    new_weights.runner(inputs, model_files=[weights]).run()
    assert new_weights.processed == ["a", "b", "c"]

    no_resume = FakePipeline(out)
    no_resume.runner(inputs, model_files=[weights], resume=False).run()
    assert no_resume.processed == ["a", "b", "c"]


def test_a_case_that_now_fails_leaves_no_stale_outputs_beside_its_row(inputs, tmp_path):
    out = tmp_path / "out"
    FakePipeline(out).runner(inputs).run()
    assert (out / "b" / "b_out.txt").is_file()
    (inputs / "b.txt").write_text("bravo, now broken")
    with pytest.raises(SystemExit):
        FakePipeline(out, fail={"b"}).runner(inputs).run()
    assert not (out / "b").exists()
    assert "broken" in table(out)[1]["error"]
    assert [e["case_id"] for e in json.loads((out / "datalist.json").read_text())["testing"]] == ["a", "c"]


def test_removing_earlier_outputs_never_touches_files_outside_the_output_folder(inputs, tmp_path):
    out = tmp_path / "out"
    FakePipeline(out).runner(inputs).run()
    datalist = json.loads((out / "datalist.json").read_text())
    datalist["testing"][0]["out"] = str(inputs / "a.txt")  # a hand-edited datalist pointing at an input
    (out / "datalist.json").write_text(json.dumps(datalist))
    FakePipeline(out).runner(inputs).run()
    assert (inputs / "a.txt").read_text() == "alpha"


def test_an_unreadable_earlier_datalist_is_named_and_every_case_processed(inputs, tmp_path):
    out = tmp_path / "out"
    FakePipeline(out).runner(inputs).run()
    (out / "datalist.json").write_text("{not json")
    rerun = FakePipeline(out)
    with pytest.warns(UserWarning, match="datalist.json is not a datalist an earlier run wrote"):
        rerun.runner(inputs).run()
    assert rerun.processed == ["a", "b", "c"]


@pytest.mark.parametrize(
    "meta, name",
    [
        ({"filename_or_obj": "/data/CASE_7.NII.GZ"}, "CASE_7"),
        ({"filename_or_obj": "/data/scan.nii"}, "scan"),
        ({"filename_or_obj": "/data/series/1.2.840.113619"}, "1.2.840.113619"),
        ({"filename_or_obj": "/data/a.nii.gz", CASE_ID_META_KEY: "patient_3_t1"}, "patient_3_t1"),
        ({}, "case"),
    ],
)
def test_outputs_are_named_after_the_case(meta, name, tmp_path):
    assert case_name(meta) == name
    from monai.transforms import SaveImage

    saver = SaveImage(output_dir=tmp_path, output_postfix="seg", output_name_formatter=case_output_name,
                      separate_folder=True, print_log=False, savepath_in_metadict=True)
    saved = saver(MetaTensor(torch.zeros(1, 2, 2, 2), meta=dict(meta)))
    assert Path(saved.meta["saved_to"]) == tmp_path / name / f"{name}_seg.nii.gz"
