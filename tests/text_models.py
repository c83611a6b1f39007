"""Transformer text classifiers built on the spot: nothing is ever downloaded from a hub.

A WordPiece tokenizer trained with `tokenizers` on a few sentences, wrapped as a fast
tokenizer, and a DistilBERT sequence-classification head with random weights, written with
`save_pretrained` as a fine-tuned model would be. The bench uses the same builder at
DistilBERT-base's size.
"""

import os
from pathlib import Path
from typing import Any

# No progress bars in test and bench output, and never a hub.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SENTENCES = [
    "a great film with wonderful acting",
    "an awful film with a boring plot",
    "loved it and would watch it again",
    "hated every minute of this dull and slow story",
    "superb and moving, the best of the year",
    "terrible acting and a silly ending",
    "the music was fine but the pacing dragged",
    "funny, warm and surprisingly clever",
]

# Small enough to build and run in a blink; DistilBERT-base is dim 768, 6 layers, 12 heads.
TINY = {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64, "max_position_embeddings": 128}
BASE = {
    "dim": 768,
    "n_layers": 6,
    "n_heads": 12,
    "hidden_dim": 3072,
    "max_position_embeddings": 512,
}


def build_tokenizer(sentences: list[str] = SENTENCES, vocab_size: int = 200) -> Any:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from tokenizers.trainers import WordPieceTrainer
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    core = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.decoder = decoders.WordPiece()
    core.train_from_iterator(
        sentences, WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials)
    )
    cls, sep = core.token_to_id("[CLS]"), core.token_to_id("[SEP]")
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )  # fmt: skip
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        model_input_names=["input_ids", "attention_mask"],  # DistilBERT takes no token types
        unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]",
    )  # fmt: skip


def build_text_classifier(
    folder: Path,
    *,
    labels: tuple[str, ...] = ("negative", "positive"),
    problem_type: str | None = None,
    size: dict[str, int] | None = None,
    vocab_size: int | None = None,
    seed: int = 0,
) -> Path:
    """A DistilBERT classifier (or regressor: `problem_type="regression"`, one label) with
    random weights saved in `folder` by `save_pretrained`, with its tokenizer."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    tokenizer = build_tokenizer()
    torch.manual_seed(seed)
    config = DistilBertConfig(
        vocab_size=vocab_size or len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type=problem_type,
        # Random weights far from zero, so different texts get clearly different answers.
        initializer_range=0.1 if size is None else 0.02,
        **(size or TINY),
    )
    model = DistilBertForSequenceClassification(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def forward(folder: Path, texts: list[str]) -> Any:
    """The saved model's own logits for each text alone (no batching, no padding): what
    every answer of the server is compared with."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    rows = []
    with torch.inference_mode():
        for text in texts:
            encoded = tokenizer(
                text, truncation=True, max_length=model.config.max_position_embeddings,
                return_tensors="pt",
            )  # fmt: skip
            rows.append(model(**encoded).logits[0].double().numpy())
    return np.stack(rows)
