"""The peers' export (loadgen_harness/peers.py): the reference checkpoint as a Hugging Face
GPT-NeoX model gives our logits, and the HF agent loop our answers. Skips where transformers
is not installed (the test venv never has it; `make bench-peers` builds a venv that does)."""
import pytest
import torch

pytest.importorskip("transformers")

from loadgen_harness.peers import _HFModel, to_gpt_neox  # noqa: E402
from reference.checkpoint import load_model  # noqa: E402
from reference.episode import run_env  # noqa: E402
from reference.grading import load_tasks  # noqa: E402
from reference.model import GPT, GPTConfig, encode  # noqa: E402
from reference.rules import load_rules  # noqa: E402


@torch.no_grad()
def test_exported_gpt_neox_gives_our_logits_on_the_reference_checkpoint():
    rules = load_rules()
    model = load_model(rules.benchmark("nano-react").reference_checkpoint, "cpu")
    hf = to_gpt_neox(model)
    idx = torch.tensor([encode("Question: What is 17 * 23?\nThought: I need the calculator.")])
    ours = model(idx)
    theirs = hf(input_ids=idx).logits
    assert theirs.shape == ours.shape
    assert torch.allclose(theirs, ours, atol=1e-4, rtol=1e-4), (theirs - ours).abs().max()
    assert torch.equal(theirs.argmax(-1), ours.argmax(-1))


def test_a_learned_position_model_is_refused():
    with pytest.raises(ValueError, match="rotary"):
        to_gpt_neox(GPT(GPTConfig(n_layer=1, n_embd=32, n_head=2, block_size=16)))


def test_the_hf_agent_loop_answers_as_ours_on_a_few_episodes():
    from loadgen_harness.sut import EpisodeFactory
    rules = load_rules()
    bench = rules.benchmark("nano-react")
    model = load_model(bench.reference_checkpoint, "cpu")
    tasks = load_tasks("nano-react", bench.eval_set)[:3]
    make_env = EpisodeFactory(rules, "nano-react")
    try:
        hf = _HFModel(to_gpt_neox(model), model.config)
        for t in tasks:
            ours, theirs = run_env(model, make_env(t)), run_env(hf, make_env(t))
            assert [s.text for s in theirs.steps] == [s.text for s in ours.steps]
            assert theirs.answer == ours.answer
    finally:
        make_env.close()
