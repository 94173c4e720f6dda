import copy

import pytest

from loadgen_harness.system import (DeclarationError, load_system, mismatches, probe,
                                    schema_errors)


@pytest.mark.parametrize("name", ["cpu", "a100", "h100"])
def test_shipped_declarations_are_valid(name):
    load_system(name)


def test_cpu_declaration_matches_a_two_core_machine():
    decl = load_system("cpu")["declaration"]
    found = {**probe(), "host_processor_core_count": 2, "host_memory_capacity_gb": 23.5,
             "accelerators": [], "torch": "2.13.0+cpu"}
    assert mismatches(decl, found) == []


def test_declared_gpu_on_a_cpu_machine_is_a_mismatch():
    decl = load_system("a100")["declaration"]
    found = {**probe(), "host_processor_core_count": 16, "host_memory_capacity_gb": 125.0,
             "accelerators": [], "torch": "2.13.0+cpu"}
    assert any("accelerators: declared 1" in m for m in mismatches(decl, found))


def test_wrong_gpu_model_and_memory_are_mismatches():
    decl = load_system("a100")["declaration"]
    found = {**probe(), "host_processor_core_count": 16, "host_memory_capacity_gb": 125.0,
             "accelerators": [{"name": "NVIDIA H100 80GB HBM3", "memory_gb": 79.1}],
             "torch": "2.13.0+cu128"}
    out = mismatches(decl, found)
    assert any("accelerator: declared 'A100'" in m for m in out)


@pytest.mark.parametrize("path, value, fragment", [
    (("declaration", "host_processor_core_count"), "8", "is not of type 'integer'"),
    (("declaration", "host_memory_capacity_gb"), -1, "less than or equal to the minimum"),
    (("declaration", "system_type"), "mainframe", "is not one of"),
    (("declaration", "framework"), "tensorflow 2", "does not match"),
    (("declaration", "accelerator_model_name"), "A100", "was expected"),
    (("tuning", "device"), "tpu", "is not one of"),
    (("tuning", "draft"), -1, "less than the minimum"),
    (("tuning", "draft"), "8", "is not of type 'integer'"),
    (("declaration", "extra_field"), 1, "Additional properties"),
])
def test_schema_checks_types_enums_and_units(path, value, fragment):
    doc = copy.deepcopy(load_system("cpu"))
    doc[path[0]][path[1]] = value
    errs = schema_errors(doc)
    assert errs and any(fragment in e for e in errs), errs


def test_gpu_count_without_gpu_memory_is_invalid():
    doc = copy.deepcopy(load_system("a100"))
    doc["declaration"]["accelerator_memory_capacity_gb"] = 0
    assert schema_errors(doc)


def test_missing_or_malformed_declarations_are_clear_errors(tmp_path):
    with pytest.raises(DeclarationError, match="no declaration"):
        load_system("nope", tmp_path)
    (tmp_path / "dup.yaml").write_text("schema_version: 1\nschema_version: 1\n")
    with pytest.raises(DeclarationError, match="duplicate key"):
        load_system("dup", tmp_path)
    (tmp_path / "bad.yaml").write_text("declaration: [unclosed\n")
    with pytest.raises(DeclarationError, match="not valid YAML"):
        load_system("bad", tmp_path)
    with pytest.raises(DeclarationError, match="bad system name"):
        load_system("../etc/passwd", tmp_path)
