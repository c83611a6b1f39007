"""A transformers sequence-classification folder behind the estimator interface.

`TextClassifier` has the face every other artifact has (`predict`, `predict_proba`,
`classes_`), so the handler, cache, batcher and lifecycle serve it as they serve a Pipeline.
It is given a whole merged batch of texts by the batcher and cuts it itself: texts are
tokenized (truncated to the model's maximum length, never padded), sorted by token count and
run in chunks whose padded size stays within a token budget, so one long text never pads a
batch of short ones. Torch and transformers are imported only when this family is loaded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

# What one more forward pass costs, in padded tokens' worth of compute: small (a pass of a
# DistilBERT-base on a CPU core costs about what a dozen tokens do), so long outliers get a
# pass of their own rather than padding the short texts.
_PASS_COST_TOKENS = 12


class TextClassifier:
    """A loaded `AutoModelForSequenceClassification` and its tokenizer.

    `job` is classification (softmax, or sigmoid for a multi-label head; `classes_` are the
    model's `id2label` in index order) or regression (the raw outputs)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        job: str,
        max_length: int,
        token_budget: int,
        device: Any,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.job = job
        self.max_length = max_length
        self.token_budget = max(token_budget, max_length)
        self.device = device
        config = model.config
        self.multi_label = config.problem_type == "multi_label_classification"
        self.labels = [str(config.id2label[i]) for i in range(config.num_labels)]
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    # --- the estimator interface -------------------------------------------------------

    @property
    def classes_(self) -> np.ndarray:
        if self.job != "classification":
            raise AttributeError("classes_ is only defined for job classification")
        return np.asarray(self.labels, dtype=object)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if self.job != "classification":
            raise AttributeError("predict_proba is only available for job classification")
        logits = self.logits(texts)
        if self.multi_label:
            return 1.0 / (1.0 + np.exp(-logits))
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        logits = self.logits(texts)
        if self.job == "classification":  # the most likely label (for multi-label too)
            return np.asarray(self.labels, dtype=object)[logits.argmax(axis=1)]
        return logits[:, 0] if logits.shape[1] == 1 else logits

    # --- tokens and forward passes ------------------------------------------------------

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        encoded = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_length, padding=False,
            return_attention_mask=False, return_token_type_ids=False,
        )  # fmt: skip
        return list(encoded["input_ids"])

    def chunks(self, lengths: Sequence[int]) -> Iterator[np.ndarray]:
        """Row positions, shortest texts first, cut where padding would cost more than
        another forward pass: each chunk is padded to its longest text, holds at most
        `token_budget` tokens, and the cuts minimise the padded tokens plus a fixed cost
        per pass (a dynamic programme over the sorted lengths)."""
        order = np.argsort(np.asarray(lengths), kind="stable")
        ordered = [lengths[i] for i in order]
        count = len(ordered)
        best = [0.0] + [math.inf] * count  # best[j]: cost of the first j texts
        cut = [0] * (count + 1)
        for end in range(1, count + 1):
            longest = ordered[end - 1]
            for start in range(end - 1, -1, -1):
                size = (end - start) * longest
                if size > self.token_budget and start < end - 1:
                    break
                cost = best[start] + _PASS_COST_TOKENS + size
                if cost < best[end]:
                    best[end], cut[end] = cost, start
        bounds = []
        end = count
        while end > 0:
            bounds.append((cut[end], end))
            end = cut[end]
        for start, end in reversed(bounds):
            yield order[start:end]

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        ids = self.tokenize(texts)
        lengths = [len(row) for row in ids]
        out = np.empty((len(ids), len(self.labels)), dtype=np.float64)
        with torch.inference_mode():
            for rows in self.chunks(lengths):
                width = max(lengths[i] for i in rows)
                batch = np.full((len(rows), width), self.pad_id, dtype=np.int64)
                mask = np.zeros((len(rows), width), dtype=np.int64)
                for slot, row in enumerate(rows):
                    batch[slot, : lengths[row]] = ids[row]
                    mask[slot, : lengths[row]] = 1
                result = self.model(
                    input_ids=torch.from_numpy(batch).to(self.device),
                    attention_mask=torch.from_numpy(mask).to(self.device),
                ).logits
                out[rows] = result.to("cpu", torch.float64).numpy()
        return out
