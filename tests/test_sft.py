import torch
import torch.nn.functional as F

from reference.model import encode
from reference.react.tasks import generate
from reference.sft import IGNORE_INDEX, build_sft_labels, masked_cross_entropy


def test_labels_mask_prompt_and_observations():
    segs = [("prompt", "Question: q\n"), ("agent", "Action: lookup\nAction Input: pi\n"),
            ("observation", "Observation: 3.14159\n"), ("agent_masked", "Action: bad\n"),
            ("agent", "Final Answer: 3\n")]
    ids, labels = build_sft_labels(segs)
    assert ids == encode("".join(t for _, t in segs))
    n_q = len(encode("Question: q\n"))
    assert labels[:n_q] == [IGNORE_INDEX] * n_q
    learned = [l for l in labels if l != IGNORE_INDEX]
    assert bytes(learned).decode() == "Action: lookup\nAction Input: pi\nFinal Answer: 3\n"


def test_no_mask_learns_every_token():
    traj = next(generate(1, 1))
    ids, labels = build_sft_labels(traj.segments, mask=False)
    assert ids == labels


def test_real_trajectory_masks_observation_text():
    traj = next(generate(3, 1))
    ids, labels = build_sft_labels(traj.segments)
    text = "".join(chr(l) if l != IGNORE_INDEX else "_" for l in labels)
    assert "Observation" not in text and "Question" not in text
    assert "Final Answer: " in text


def _case(seed=0, n=64, v=256):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, n // 2, v, generator=g)
    labels = torch.randint(0, v, (2, n // 2), generator=g)
    labels[0, :7] = IGNORE_INDEX
    labels[1, 10:20] = IGNORE_INDEX
    return logits, labels


def test_masked_cross_entropy_equals_torch():
    logits, labels = _case()
    ours = masked_cross_entropy(logits, labels)
    ref = F.cross_entropy(logits.view(-1, 256), labels.view(-1), ignore_index=IGNORE_INDEX)
    assert abs(ours.item() - ref.item()) < 1e-6


def test_masked_cross_entropy_gradient_equals_torch():
    logits, labels = _case(1)
    a = logits.clone().requires_grad_()
    b = logits.clone().requires_grad_()
    masked_cross_entropy(a, labels).backward()
    F.cross_entropy(b.view(-1, 256), labels.view(-1), ignore_index=IGNORE_INDEX).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-7)


def test_loss_unchanged_when_a_masked_token_changes():
    logits, labels = _case(2)
    base = masked_cross_entropy(logits, labels)
    logits2 = logits.clone()
    logits2[0, 3] += 5.0  # position 3 of row 0 is masked
    assert masked_cross_entropy(logits2, labels).item() == base.item()


def test_loss_changes_when_an_agent_token_changes():
    logits, labels = _case(3)
    base = masked_cross_entropy(logits, labels)
    labels2 = labels.clone()
    labels2[0, 20] = (labels2[0, 20] + 1) % 256
    assert masked_cross_entropy(logits, labels2).item() != base.item()


def test_loss_is_zero_when_all_tokens_are_masked():
    logits, labels = _case(4)
    labels[:] = IGNORE_INDEX
    out = masked_cross_entropy(logits, labels)
    assert out.item() == 0.0 and not torch.isnan(out)
