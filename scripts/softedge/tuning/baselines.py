"""Baselines an adapter must beat: what a user would do instead of tuning one."""
from __future__ import annotations

import math
import re
from collections import Counter

from softedge.tuning.tasks import classification_metrics

BASELINES = {"nb": "naive Bayes", "tfidf-lr": "TF-IDF logistic regression"}  # tune's --method: no backbone, no adapter
# --method tfidf-lr's choices of C (the inverse L2 strength), chosen on the dev rows
TFIDF_LR_C = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


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


def tfidf_lr(train: list[dict], dev: list[dict], evalrows: list[dict], labels: list[str]) -> dict:
    """scikit-learn's text classifier as a user would set it up: word unigrams and bigrams, sublinear TF, IDF, L2
    rows, then L2-regularised logistic regression with C chosen on the dev rows (the first of equals: the strongest
    regularisation). Returns the eval metrics, plus the C chosen and each C's dev accuracy."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    X = vec.fit_transform([r["text"] for r in train])
    y = [r["label"] for r in train]
    Xdev, ydev = vec.transform([r["text"] for r in dev]), [r["label"] for r in dev]
    tried = {}
    for C in TFIDF_LR_C:
        model = LogisticRegression(C=C, max_iter=2000).fit(X, y)
        tried[C] = (model.score(Xdev, ydev), model)
    C = max(TFIDF_LR_C, key=lambda c: (tried[c][0], -c))
    pred = tried[C][1].predict(vec.transform([r["text"] for r in evalrows])).tolist()
    return {
        **classification_metrics([r["label"] for r in evalrows], pred, labels),
        "C": C,
        "dev": {str(c): round(acc, 4) for c, (acc, _) in tried.items()},
    }
