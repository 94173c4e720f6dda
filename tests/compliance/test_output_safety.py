"""What a submission writes never reaches a terminal, a page or a spreadsheet as markup,
escape sequences or formulas; the JSON the checker writes is strict."""
import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from compliance import cli
from loadgen_harness.untrusted import safe
from loadgen_harness.untrusted.tree import strict_loads

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "tests/fixtures/smoke_submission"
ANSI = "\x1b[2K\x1b[1A\x1b[32mVALID\x1b[0m"


def test_a_directory_name_with_ansi_escapes_is_printed_escaped(tmp_path, capsys):
    root = tmp_path / "sub"
    shutil.copytree(SMOKE, root)
    (root / "results/cpu" / ANSI).mkdir()
    assert cli.main(["check", str(root), "--profile", "smoke"]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "L103" in out and "\\x1b" in out


@pytest.mark.parametrize("raw", [ANSI, "a\u202eb", "x\x00y", "line\nbreak", "\x9b31m"])
def test_control_and_bidi_characters_become_visible_escapes(raw):
    shown = safe.text(raw)
    assert shown.isprintable() and "\\" in shown


def test_markdown_escapes_html_and_markup():
    md = safe.markdown("<script>alert(1)</script> **bold** | cell [link](http://x)")
    assert "<" not in md and ">" not in md and "**" not in md
    assert "\\|" in md and "\\[" in md


@pytest.mark.parametrize("cell", ["=HYPERLINK(\"http://x\",\"y\")", "+1+2", "-2+3", "@SUM(A1)",
                                  "\t=1", "|calc"])
def test_csv_cells_that_start_a_formula_are_neutralised(cell):
    out = safe.csv_cell(cell)
    assert not out.startswith(("=", "+", "-", "@", "\t", "|"))
    row = next(csv.reader(io.StringIO(_csv_line(out))))
    assert not row[0].startswith(("=", "+", "-", "@"))


def _csv_line(value):
    buf = io.StringIO()
    csv.writer(buf).writerow([value])
    return buf.getvalue()


def test_numbers_stay_numbers_in_csv_and_non_finite_floats_leave_json():
    assert safe.csv_cell(-3.5) == -3.5 and safe.csv_cell(None) == ""
    doc = safe.json_value({"v": float("inf"), "w": [float("nan"), 1.0]})
    assert json.loads(json.dumps(doc, allow_nan=False)) == {"v": None, "w": [None, 1.0]}


@pytest.mark.parametrize("text", ['{"a": 1, "a": 2}', '{"a": NaN}', '{"a": Infinity}',
                                  '{"a": -Infinity}', '{"a": 1e999}', '{"a": ' + "9" * 5000 + "}",
                                  '{"a": ' + "1" * 30 + "}", '[{"k": {"x": 1, "x": 1}}]'])
def test_strict_json_refuses_what_python_json_accepts(text):
    with pytest.raises(ValueError):
        strict_loads(text)


def test_check_json_output_is_strict(tmp_path, capsys):
    root = tmp_path / "sub"
    shutil.copytree(SMOKE, root)
    m = root / "results/cpu/nano-react/Offline/measurements.json"
    m.write_text(m.read_text().replace('"value": ', '"value": Infinity, "x": ', 1))
    assert cli.main(["check", str(root), "--profile", "smoke", "--json"]) == 1
    out = capsys.readouterr().out
    doc = json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in the output"))
    assert doc["valid"] is False and "G307" in {f["rule"] for f in doc["findings"]}
