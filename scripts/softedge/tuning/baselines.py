"""Baselines an adapter must beat: what a user would do instead of tuning one."""
from __future__ import annotations

import math
import re
from collections import Counter

from softedge.tuning.tasks import classification_metrics


def naive_bayes(train: list[dict], evalrows: list[dict], labels: list[str]) -> dict:
    """Multinomial naive Bayes on lower-cased words, add-one smoothing: the 20-line bag-of-words classifier."""
    words = lambda t: re.findall(r"[a-z0-9']+", t.lower())  # noqa: E731
    counts = {l: Counter() for l in labels}
    prior = Counter(r["label"] for r in train)
    for r in train:
        counts[r["label"]].update(words(r["text"]))
    vocab = set().union(*counts.values())
    totals = {l: sum(c.values()) for l, c in counts.items()}
    pred = []
    for r in evalrows:
        best = max(
            labels,
            key=lambda l: math.log(prior[l] + 1)
            + sum(math.log((counts[l][w] + 1) / (totals[l] + len(vocab))) for w in words(r["text"])),
        )
        pred.append(best)
    return classification_metrics([r["label"] for r in evalrows], pred, labels)
