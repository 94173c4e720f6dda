"""Supervised fine-tuning pieces: label masking and a from-scratch masked cross-entropy.

Only agent-written tokens (Thought / Action / Action Input / Final Answer) carry loss; question
and observation tokens, and the agent text of an error-recovery detour, get label -100. With
`mask=False` every token is learned (the unmasked baseline of the bot-with-plan study).

Limits: the loss is the mean over unmasked positions of the whole batch (as
F.cross_entropy(ignore_index=-100) computes it); a batch with no unmasked position has loss 0.
"""
from __future__ import annotations

import torch

from reference.model import encode

IGNORE_INDEX = -100
LEARNED_ROLES = {"agent"}


def build_sft_labels(segments: list[tuple[str, str]], mask: bool = True
                     ) -> tuple[list[int], list[int]]:
    """(role, text) segments -> (token ids, labels); labels[i] is ids[i] or IGNORE_INDEX.

    labels are aligned with ids: the model predicts labels[1:] from ids[:-1]."""
    ids: list[int] = []
    labels: list[int] = []
    for role, text in segments:
        toks = encode(text)
        ids.extend(toks)
        learned = role in LEARNED_ROLES or not mask
        labels.extend(toks if learned else [IGNORE_INDEX] * len(toks))
    return ids, labels


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of labels over positions whose label is not -100.

    logits (..., V), labels (...); equals F.cross_entropy(logits, labels, ignore_index=-100)
    where any label is unmasked, and is 0 (not NaN) where none is."""
    logits = logits.reshape(-1, logits.size(-1)).float()  # (N, V)
    labels = labels.reshape(-1)                             # (N,)
    keep = labels != IGNORE_INDEX
    safe = torch.where(keep, labels, torch.zeros_like(labels))
    log_z = torch.logsumexp(logits, dim=-1)                 # (N,)
    picked = logits.gather(1, safe.unsqueeze(1)).squeeze(1)  # (N,)
    nll = (log_z - picked) * keep
    return nll.sum() / keep.sum().clamp(min=1)
