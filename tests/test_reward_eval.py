"""`eval reviewer` across years and venues (evaluate/splits.py)."""

from __future__ import annotations

import json

import pytest

from cycleresearcher.errors import InputError
from cycleresearcher.evaluate.splits import split_rows


def _rows(n=40):
    rows = []
    for i in range(n):
        year = 2017 if i % 2 else 2018
        accepted = i % 3 == 0
        words = 40 + (60 if accepted else 0) + i
        rows.append({"paper_id": f"p{i}", "title": f"Paper {i}", "abstract": "word " * words, "text": "",
                     "venue": "ICLR", "year": year, "group": f"ICLR-{year}-main",
                     "ratings": [6, 7] if accepted else [3, 4], "decision": "Accept" if accepted else "Reject"})
    return rows


def test_split_rows_by_year_and_venue():
    rows = _rows()
    train, test = split_rows(rows, by_year=2018)
    assert {r["year"] for r in test} == {2018} and {r["year"] for r in train} == {2017}
    train, test = split_rows(rows, train_venue="ICLR-2017", test_venue="ICLR-2018")
    assert {r["group"] for r in train} == {"ICLR-2017-main"} and {r["group"] for r in test} == {"ICLR-2018-main"}
    with pytest.raises(InputError, match="leaves"):
        split_rows(rows, by_year=2030)


def test_cli_eval_reviewer_split_by_year(tmp_path):
    from datasets import Dataset, DatasetDict
    from typer.testing import CliRunner

    from cycleresearcher.cli import app

    data = tmp_path / "review"
    rows = _rows()
    DatasetDict({"train": Dataset.from_list(rows[:20]), "test": Dataset.from_list(rows[20:])}).save_to_disk(str(data))
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["eval", "reviewer", "--reviewer", "length", "--data", str(data),
                                      "--split-by-year", "2018", "--out", str(out), "--resamples", "50"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["split"].startswith("test year 2018") and report["n_papers"] == 20 and report["n_train"] == 20
    assert {"constant", "single_human", "length"} <= set(report["systems"])
    assert report["systems"]["length"]["roc_auc"]["value"] > 0.9  # accepted papers are longer here by design
