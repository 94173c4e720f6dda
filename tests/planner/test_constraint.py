"""Constrained decoding: schema violations are impossible, whatever the logits say."""
import json
import random

import jsonschema
import pytest
import torch

from reference.planner.constraint import ConstraintViolation, StepConstraint, constrained_pick
from reference.planner.schema import MAX_STEP_BYTES, STEP_SCHEMA, parse_step
from reference.planner.tasks import generate

# the constraint's library; a skip (reported with -rs) until pyproject.toml lists it
pytest.importorskip("outlines_core", reason="needs outlines-core==0.2.14, not yet in "
                                            "pyproject.toml (reference/planner/README.md)")

CTRL = list(range(0, 32)) + [127]
HIGH = list(range(128, 256))


@pytest.fixture(scope="module")
def sc():
    return StepConstraint()


def _decode(sc, logits_fn, rng):
    """Drive one step to completion; returns its bytes. Checks the decoder is never stuck."""
    m = sc.matcher()
    for n in range(MAX_STEP_BYTES + 1):
        if m.is_done():
            return bytes(m.bytes)
        mask = m.allowed_mask()
        assert mask.any(), f"no allowed byte after {bytes(m.bytes)!r}"
        m.advance(constrained_pick(logits_fn(m, rng), m))
    raise AssertionError(f"not done within {MAX_STEP_BYTES} bytes: {bytes(m.bytes)[:80]!r}")


def _prefer(bytes_set, boost=100.0):
    """Logits that always rank the given bytes (mostly forbidden ones) first."""
    def fn(m, rng):
        logits = torch.randn(256, generator=torch.Generator().manual_seed(rng.randrange(2**31)))
        logits[list(bytes_set)] += boost
        return logits
    return fn


def _prefer_forbidden(m, rng):
    """Every forbidden byte above every allowed one: the worst a model could want."""
    logits = torch.rand(256, generator=torch.Generator().manual_seed(rng.randrange(2**31)))
    return logits + 10.0 * (~m.allowed_mask()).float()


ADVERSARIES = {
    "random": lambda m, rng: torch.randn(
        256, generator=torch.Generator().manual_seed(rng.randrange(2**31))),
    "forbidden_first": _prefer_forbidden,
    "close_brace_early": _prefer(b"}"),
    "quotes": _prefer(b'"\''),
    "backslash_and_quote": _prefer(b'\\"'),
    "non_ascii": _prefer(HIGH),
    "control_bytes": _prefer(CTRL),
    "never_stop_a_string": _prefer(b"abcxyz "),
    "final_answer_keys": _prefer(b'{"final_answer'),
}


@pytest.mark.parametrize("name", sorted(ADVERSARIES))
def test_adversarial_logits_never_produce_a_schema_violation(sc, name):
    rng = random.Random(name)
    for _ in range(40):
        out = _decode(sc, ADVERSARIES[name], rng)
        obj = json.loads(out)
        jsonschema.validate(obj, STEP_SCHEMA)
        step, why = parse_step(out.decode("ascii"))
        assert step is not None, why
        assert len(out) <= MAX_STEP_BYTES


def test_the_automaton_has_no_stuck_state_and_a_bounded_longest_step(sc):
    # checked exhaustively when built; the longest path is exactly the schema's bound
    assert sc.longest == MAX_STEP_BYTES
    assert all(sc.allowed[s].any() != sc.final[s] for s in range(sc.n_states))


def test_every_oracle_step_is_accepted_and_completes_exactly_at_its_end(sc):
    for traj in generate(5, 60, p_detour=0.5):
        for role, text in traj.segments:
            if role not in ("agent", "agent_masked"):
                continue
            m = sc.matcher()
            for i, b in enumerate(text.encode()):
                assert not m.is_done(), text
                assert m.allowed_mask()[b], (text, i)
                m.advance(b)
            assert m.is_done() and m.text() == text


def test_advance_refuses_a_forbidden_byte(sc):
    m = sc.matcher()
    for bad in (ord("}"), ord(" "), 0x80, 0xFF, 0, 256, -1):
        with pytest.raises(ConstraintViolation):
            m.advance(bad)
    for b in b'{"final_answer":"':
        m.advance(b)
    for bad in (ord('"'), ord("\\"), 0x0A, 0xC3):  # an empty answer, escapes, control, UTF-8
        with pytest.raises(ConstraintViolation):
            m.advance(bad)


def test_a_string_at_its_bound_can_only_close(sc):
    m = sc.matcher()
    for b in b'{"final_answer":"' + b"7" * 40:
        m.advance(b)
    assert m.allowed_mask().nonzero().flatten().tolist() == [ord('"')]


def test_batch_mask_is_the_rows_masks_in_one_gather(sc):
    rng = random.Random(0)
    matchers = []
    for _ in range(16):
        m = sc.matcher()
        for _ in range(rng.randrange(0, 60)):
            if m.is_done():
                break
            m.advance(rng.choice(m.allowed_mask().nonzero().flatten().tolist()))
        matchers.append(m)
    batch = sc.batch_mask(torch.tensor([m.state for m in matchers]))
    filled = torch.zeros(16, 256, dtype=torch.bool)
    for r, m in enumerate(matchers):
        m.fill(filled, r)
        assert torch.equal(batch[r], m.allowed_mask())
    assert torch.equal(batch, filled)


def test_the_logit_bias_table_is_the_mask_table(sc):
    bias = sc.bias("cpu")
    assert torch.equal(bias == 0, sc.allowed) and torch.isneginf(bias[~sc.allowed]).all()
    assert sc.bias("cpu") is bias
