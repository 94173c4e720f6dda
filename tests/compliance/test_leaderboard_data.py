"""The leaderboard's data side, with the checks replaced by their reports as plain data: one
entry cannot break the board, refuse another student, or take two rows; plausibility rests on
rules.yaml's device classes, not on the entry's probe alone. Fast: no submission is checked."""
import json
from pathlib import Path

import pytest

from compliance import leaderboard

REACT = "nano-react / Offline / closed"
REF_RATE = 68.30  # rules.yaml checker.reference_results nano-react Offline (2 cores)


def _row(value=50.0, system="cpu", accel="none", declared=2, probed=2, accelerators=0,
         bench="nano-react", scenario="Offline"):
    return {"system": system, "benchmark": bench, "scenario": scenario, "division": "closed",
            "metric": "samples_per_second", "value": value, "quality": 0.9,
            "quality_metric": "exact_match", "system_name": "box", "accelerator": accel,
            "declared_cores": declared, "probe_cores": probed,
            "probe_accelerators": accelerators, "override": False}


def _res(submitter, *rows, valid=True):
    rows = rows or (_row(),)
    return {"valid": valid, "p99s": {}, "findings": [],
            "meta": {"rows": [{**r, "submitter": submitter} for r in rows],
                     "submitters": [submitter], "evidence": {}, "episode_prints": []}}


def _course(tmp_path, monkeypatch, entries: dict) -> Path:
    """A course folder of entries {file or dir name: its report}, checked as reported."""
    course = tmp_path / "course"
    course.mkdir(exist_ok=True)
    for name in entries:
        if name.endswith(".tar.gz"):
            (course / name).write_bytes(b"")
        else:
            (course / name).mkdir()
    monkeypatch.setattr(leaderboard, "reference_evidence",
                        lambda: {"evidence": set(), "prints": set(), "profile": None})
    monkeypatch.setattr(leaderboard, "_check_all",
                        lambda paths, *a, **kw: [entries[p.name] for p in paths])
    return course


def _collect(tmp_path, monkeypatch, entries: dict) -> dict:
    return leaderboard.collect(_course(tmp_path, monkeypatch, entries), "smoke", workers=1,
                               replay=0, replay_seed=1)


def _ranked(data, key=REACT):
    return [r["submission"] for r in data["boards"].get(key, [])]


def _invalid(data):
    return {i["submission"]: " ".join(i["reasons"]) for i in data["invalid"]}


def test_an_upload_named_after_another_student_refuses_only_itself(tmp_path, monkeypatch):
    data = _collect(tmp_path, monkeypatch, {"bob": _res("bob"),
                                            "bob.tar.gz": _res("mallory")})
    assert _ranked(data) == ["bob"]
    assert list(_invalid(data)) == ["bob"] and "B704" in _invalid(data)["bob"]
    assert "B703" not in _invalid(data)["bob"]


def test_one_person_under_three_spellings_is_one_submitter(tmp_path, monkeypatch):
    data = _collect(tmp_path, monkeypatch, {"alice": _res("alice"), "Alice": _res("Alice"),
                                            "\u0430lice": _res("\u0430lice")})  # Cyrillic а
    assert _ranked(data) == []
    assert sorted(_invalid(data)) == sorted(["alice", "Alice", "\u0430lice"])
    assert all("B703" in why for why in _invalid(data).values())


def test_a_name_spelt_otherwise_in_the_results_is_still_its_submitter(tmp_path, monkeypatch):
    data = _collect(tmp_path, monkeypatch, {"Alice": _res("alice")})
    assert _ranked(data) == ["Alice"] and not data["invalid"]


@pytest.mark.parametrize("value", [1e300, 1.6e308, float("inf"), float("nan"), -4.0, 0.0])
def test_an_unbounded_figure_is_never_ranked(tmp_path, monkeypatch, value):
    data = _collect(tmp_path, monkeypatch, {"alice": _res("alice"),
                                            "eve": _res("eve", _row(value))})
    assert _ranked(data) == ["alice"] and "G313" in _invalid(data)["eve"]


def test_every_output_is_written_when_a_figure_overflows(tmp_path, monkeypatch):
    course = _course(tmp_path, monkeypatch, {"alice": _res("alice"),
                                             "eve": _res("eve", _row(1.6e308))})
    out = tmp_path / "board"
    leaderboard.build_leaderboard(course, out, "smoke", 1, replay=0)
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.json", "index.html"):
        assert (out / name).stat().st_size > 0
    data = json.loads((out / "leaderboard.json").read_text())
    assert _ranked(data) == ["alice"] and "G313" in _invalid(data)["eve"]


def test_a_chart_that_cannot_draw_one_entry_is_that_entrys_finding(tmp_path, monkeypatch):
    real = leaderboard._draw_chart

    def fragile(key, rows, *a, **kw):
        if any(r["submission"] == "eve" for r in rows):
            raise OverflowError("cannot convert float infinity to integer")
        return real(key, rows, *a, **kw)
    monkeypatch.setattr(leaderboard, "_draw_chart", fragile)
    data = _collect(tmp_path, monkeypatch, {"alice": _res("alice"), "eve": _res("eve")})
    assert _ranked(data) == ["alice"] and "X901" in _invalid(data)["eve"]
    assert "<svg" in leaderboard.to_html(data)


def test_one_submission_gets_one_row_per_board(tmp_path, monkeypatch):
    data = _collect(tmp_path, monkeypatch, {
        "alice": _res("alice", _row(40.0, system="a"), _row(60.0, system="b"))})
    rows = data["boards"][REACT]
    assert len(rows) == 1 and rows[0]["value"] == 60.0 and "also: a" in rows[0]["notes"]


@pytest.mark.parametrize("row, flagged", [
    (_row(REF_RATE * 2), False),                                   # within 3x on 2 cores
    (_row(REF_RATE * 4), True),                                    # beyond 3x on 2 cores
    (_row(REF_RATE * 4, declared=64, probed=64), False),           # 64 cores: 96x allowed
    (_row(REF_RATE * 4, declared=2, probed=64), True),             # min(declared, probed)
    (_row(REF_RATE * 4, declared=64, probed=2), True),             # a forged declaration
    (_row(REF_RATE * 4, declared=None, probed=64), True),          # missing: one core
    (_row(REF_RATE * 1.1, accel="TPU v9", accelerators=1), True),  # not in the table
    (_row(REF_RATE * 1.1, accel="none", accelerators=1), True),    # probe found an undeclared one
    (_row(REF_RATE * 100, accel="NVIDIA H100 80GB", accelerators=1), False),  # bandwidth bound
    (_row(REF_RATE * 600, accel="NVIDIA H100 80GB", accelerators=1), True),
])
def test_plausibility_rests_on_the_device_class_table(tmp_path, monkeypatch, row, flagged):
    data = _collect(tmp_path, monkeypatch, {"alice": _res("alice", row)})
    notes = data["boards"][REACT][0]["notes"]
    assert notes.startswith("B701") == flagged, notes
