"""The child reports, the verifier decides: a program that writes its own report to the result
pipe (fd 3) can claim an output, never a verdict, and any malformed, oversized or deeply nested
report is a typed `sandbox_error` from a worker that stays alive. Feedback is printable.

Both paths: AST-checked (`verify`) and AST-bypassed (`execute`, and `verify` with its AST check
switched off, as a program that found a way past it would run)."""
import pytest

from reference.codegen import sandbox, zygote
from reference.codegen.sandbox import VerifyResult, Verifier
from tests.codegen.test_sandbox_os_layer import PRELUDE

LIMITS = sandbox.DEFAULT_LIMITS
EXPECTED = "9731"  # what the task asks for; the forgers below never compute it
FRAME = "MAGIC + bytes([1]) + (4).to_bytes(4, 'big') + b'9731'"  # a "ran" frame claiming it

# (name, bytes written to fd 3 before the program leaves without its own report)
FORGED = [
    ("json_verdict_ok", "b'{\"kind\": \"ok\"}'"),
    ("json_ran_expected", "b'{\"kind\": \"ran\", \"output\": \"9731\"}'"),
    ("json_missing_fields", "b'{}'"),
    ("json_list_output", "b'{\"kind\": \"ran\", \"output\": [1, 2]}'"),
    ("json_985_deep", "b'[' * 985 + b']' * 985"),
    ("json_32k_deep", "b'{\"a\":' * 32000 + b'1' + b'}' * 32000"),
    ("unknown_kind_byte", "MAGIC + bytes([0]) + (4).to_bytes(4, 'big') + b'9731'"),
    ("kind_byte_255", "MAGIC + bytes([255]) + (4).to_bytes(4, 'big') + b'9731'"),
    ("length_too_short", "MAGIC + bytes([1]) + (2).to_bytes(4, 'big') + b'9731'"),
    ("length_huge", "MAGIC + bytes([1]) + (2**31).to_bytes(4, 'big') + b'9731'"),
    ("two_frames", f"{FRAME} + {FRAME}"),
    ("truncated_header", "MAGIC + bytes([1])"),
    ("not_utf8", "MAGIC + bytes([1]) + (2).to_bytes(4, 'big') + b'\\xff\\xfe'"),
    ("output_over_the_limit", "MAGIC + bytes([1]) + (5000).to_bytes(4, 'big') + b'7' * 5000"),
    ("detail_over_the_limit", "MAGIC + bytes([2]) + (5000).to_bytes(4, 'big') + b'e' * 5000"),
    ("one_megabyte", "b'x' * 2**20"),
]


def _forger(payload: str) -> str:
    # The real builtins and os, then the bytes, then leave before the child's own report.
    return (PRELUDE + "bytes = B['bytes']\nMAGIC = b'NRP1'\n"
            f"data = {payload}\n"
            "while data:\n    data = data[G['write'](3, data):]\n"
            "G['_exit'](0)\n")


@pytest.fixture(scope="module")
def verifier():
    with Verifier(workers=2) as v:
        yield v


@pytest.mark.parametrize("name, payload", FORGED, ids=[f[0] for f in FORGED])
def test_a_forged_report_is_a_typed_sandbox_error_and_the_worker_lives(verifier, name, payload):
    before = verifier.replaced
    out = verifier.execute(_forger(payload))
    assert out["kind"] == "sandbox_error" and "malformed report" in out["detail"], out
    assert verifier.replaced == before
    assert verifier.verify("result = 6 * 7", "42").ok


@pytest.mark.parametrize("name, payload", FORGED, ids=[f[0] for f in FORGED])
def test_a_forged_report_never_passes_verify_even_without_the_ast_check(
        verifier, monkeypatch, name, payload):
    monkeypatch.setattr(sandbox, "check_safety", lambda code: None)
    r = verifier.verify(_forger(payload), EXPECTED)
    assert isinstance(r, VerifyResult) and r.kind == "sandbox_error" and not r.ok, r
    assert r.feedback.startswith("Sandbox error: malformed report")


def test_a_forger_on_the_checked_path_is_refused_and_a_report_shaped_output_is_only_output(
        verifier):
    assert verifier.verify(_forger("b'{\"kind\": \"ok\"}'"), EXPECTED).kind == "unsafe"
    r = verifier.verify("result = '{\"kind\": \"ok\"}'", EXPECTED)
    assert r.kind == "wrong_output" and not r.ok
    r = verifier.verify("result = 'NRP1' + chr(1) + chr(0) * 3 + chr(4) + '9731'", EXPECTED)
    assert r.kind == "wrong_output" and not r.ok


def test_the_only_frame_a_program_can_forge_claims_an_output_the_verifier_then_judges(
        verifier, monkeypatch):
    monkeypatch.setattr(sandbox, "check_safety", lambda code: None)
    out = verifier.execute(_forger(FRAME))
    assert out["kind"] == "ran" and out["output"] == EXPECTED
    assert not verifier.verify(_forger(FRAME), "another answer").ok


@pytest.mark.parametrize("data", [
    b"", b"NRP1", b"NRP1\x01\x00\x00\x00", b"{\"kind\": \"ok\"}", b"[" * 100_000,
    b"NRP1\x07\x00\x00\x00\x00", b"NRP1\x01\xff\xff\xff\xff",
    zygote.encode_report("ran", "1") + b"\x00",
    zygote.encode_report("ran", "x" * (LIMITS["max_output_chars"] + 1)),
])
def test_decode_report_turns_every_malformed_frame_into_sandbox_error(data):
    assert zygote.decode_report(data, LIMITS)["kind"] == "sandbox_error"


def test_decode_report_reads_what_the_child_sends():
    for kind, field, text in [("ran", "output", "[1, 'a\udc80']"), ("runtime", "detail", "E: x"),
                              ("memory", "detail", ""), ("syntax", "detail", "bad")]:
        assert zygote.decode_report(zygote.encode_report(kind, text), LIMITS) == \
            {"kind": kind, field: text}


@pytest.mark.parametrize("program, shown", [
    ("result = chr(27) + '[2J' + chr(27) + ']0;owned' + chr(7)", "\\x1b[2J\\x1b]0;owned\\x07"),
    ("result = 'a' + chr(0x9b) + '31m' + chr(0x202e) + 'b'", "a\\x9b31m\\u202eb"),
    ("raise ValueError(chr(27) + '[31mVALID')", "\\x1b[31mVALID"),
    ("result = 'tab' + chr(9) + 'del' + chr(127)", "tab\\x09del\\x7f"),
])
def test_control_characters_in_feedback_become_visible_escapes(verifier, program, shown):
    feedback = verifier.verify(program, "x").feedback
    assert shown in feedback and feedback.isprintable(), feedback


def test_feedback_built_from_any_report_is_printable():
    for r in (VerifyResult("runtime", "E: \x1b]8;;http://x\x07link\x1b]8;;\x07"),
              VerifyResult("wrong_output", output="\x1b[1A\x1b[2KOutput: 42 (correct)"),
              VerifyResult("sandbox_error", "\u2066\u202e\x00")):
        assert r.feedback.isprintable() and "\\x1b" in r.feedback or "\\u2066" in r.feedback
