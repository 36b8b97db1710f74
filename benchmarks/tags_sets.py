"""Multi-label tags predicted as one single-label choice among tag sets (issue 24, dev only).

    python benchmarks/tags_sets.py [CANDIDATE ...]     (names: "sets:" + CANDIDATES, shared:shipped,
                                                        shared:clean12; default: all)
    ORDERS=N python benchmarks/tags_sets.py: sets:single12, shared:shipped and shared:clean12 (PMI)
    under N orders of their demonstrations (order 0 as written, order i shuffled with seed i).
    CACHE=DIR: where the dev probabilities are kept (default /tmp/tags_sets); a candidate found
    there is not scored again.

Each "sets:" candidate is a single-label config whose labels are the tag sets seen in
benchmarks/data/support_tags/dev.jsonl's design (none, each tag, each pair: "billing+shipping"
answered " billing and shipping", " payment and delivery", ...). A label "a+b" stands for {a, b},
"other" for no tag. The "shared:" ones are the shipped approach (one
question over the tags and "other") for comparison: configs/support_tags.yaml, and the same with
this file's twelve demonstrations. Scored on dev under calibrations none/contextual/pmi, three rules:
  argmax: the most likely set is the answer (nothing fitted);
  argmax+pair bias: the same after one bias (nats) added to every pair label, fitted for exact-set;
  sum+thresholds: a tag's probability is the sum over the sets holding it, each tag given at or
      over its threshold (fitted for F1), as multi-label shared scoring does.
Fitted rules are 4-fold cross-validated (the mean over 10 random splits); "by kind" is exact-set
accuracy on the rows with no tag, one tag, several tags. Then the whole choice (candidate,
calibration, rule and its fit) is made on one half of the rows and scored on the other (both
halves by row index, and the mean over 20 random halvings both ways), since the same 64 rows
otherwise both choose and score.
"""
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from trust import read_rows  # noqa: E402

TAGS = ("billing", "bug", "account", "shipping")
WORDS = {"billing": [" billing", " payment", " refund"], "bug": [" bug", " error", " crash"],
         "account": [" account", " login", " password", " profile"], "shipping": [" shipping", " delivery", " parcel"]}
OTHER = [" other", " general", " feedback", " question"]
PROMPT = "Support ticket: {text}\nTopic (billing, bug, account, shipping or other):"
PROMPT_PAIRS = "Support ticket: {text}\nTopics (billing, bug, account, shipping, two of them, or other):"

# Demonstrations written for this experiment, kept away from the dev tickets' wording.
SINGLE_DEMOS = [
    ("Could you split the payment for my order into three instalments?", "billing"),
    ("The map in your app zooms out by itself every few seconds.", "bug"),
    ("How can I merge my two accounts into one?", "account"),
    ("Can I pick up my order at a collection point instead of home delivery?", "shipping"),
    ("Do you have a loyalty programme?", "other"),
    ("Why does my bill show a late fee when I paid on time?", "billing"),
    ("How do I update my phone number in my account settings?", "account"),
    ("Will my order come by post or by courier?", "shipping"),
    ("Cheers, all sorted now.", "other"),
    ("The calendar widget shows every date one day off.", "bug"),
    ("Your new catalogue looks amazing.", "other"),
    ("Buttons on the checkout screen overlap and can't be tapped.", "bug"),
]
PAIR_DEMOS = [
    ("I was billed for next-day delivery but the order came by standard post.", "billing+shipping"),
    ("The invoice PDF won't open, it just shows a broken file.", "billing+bug"),
    ("I was charged for a premium account I never created.", "account+billing"),
    ("The 'remember me' box on the sign-in page is broken, I have to log in every time.", "account+bug"),
    ("I can't see my past deliveries because my account was deactivated.", "account+shipping"),
    ("The delivery date in your app shows 1970 for every order.", "bug+shipping"),
]


def pair_completions(a: str, b: str, style: str) -> list[str]:
    wa, wb = WORDS[a], WORDS[b]
    if style == "one":
        return [f"{wa[0]} and{wb[0]}"]
    joiner = "," if style == "comma" else " and"
    # " billing and shipping", " payment and delivery", ..., and the other order of the first words
    pairs = [f"{x}{joiner}{y}" for x, y in zip(wa, wb, strict=False)]
    return [*pairs, f"{wb[0]}{joiner}{wa[0]}"]


def set_config(*, demos: str, prompt: str = PROMPT, style: str = "both", calibration: str = "pmi") -> dict:
    labels = {t: {"completions": WORDS[t]} for t in TAGS}
    for a, b in itertools.combinations(TAGS, 2):
        labels["+".join(sorted((a, b)))] = {"completions": pair_completions(a, b, style)}
    labels["other"] = {"completions": OTHER}
    examples = []
    if demos in ("single", "mixed"):
        examples += [{"text": t, "label": lab} for t, lab in SINGLE_DEMOS]
    if demos == "single+3pairs":  # three pair demonstrations spread among the twelve singles
        examples = [{"text": t, "label": lab} for t, lab in SINGLE_DEMOS]
        for i, (t, lab) in zip((3, 8, 13), PAIR_DEMOS[:3], strict=False):
            examples.insert(i, {"text": t, "label": lab})
    if demos == "mixed":  # the pairs spread among the singles
        pairs = iter({"text": t, "label": lab} for t, lab in PAIR_DEMOS)
        singles = iter({"text": t, "label": lab} for t, lab in SINGLE_DEMOS)
        examples = [next(pairs) if i % 3 == 2 else next(singles) for i in range(18)]
    return {"name": "support_tag_sets", "model": "default", "prompt": prompt, "labels": labels,
            "examples": examples, "scoring": {"calibration": calibration}, "decision": {"mode": "single"}}


CANDIDATES = {
    "zero": dict(demos="none"),
    "single12": dict(demos="single"),
    "single12-one": dict(demos="single", style="one"),
    "single12-comma": dict(demos="single", style="comma"),
    "single15": dict(demos="single+3pairs"),
    "mixed18": dict(demos="mixed"),
    "mixed18-pairprompt": dict(demos="mixed", prompt=PROMPT_PAIRS),
    "mixed18-one": dict(demos="mixed", style="one"),
    "zero-pairprompt": dict(demos="none", prompt=PROMPT_PAIRS),
}


def tag_sets(names: list[str]) -> np.ndarray:
    """(n_labels, n_tags) membership: which tags each set label stands for ("other": none)."""
    return np.array([[t in name.split("+") for t in TAGS] for name in names])


def metrics(chosen: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    exact = float((chosen == truth).all(axis=1).mean())
    tp = (chosen & truth).sum()
    f1 = 2 * tp / (chosen.sum() + truth.sum())
    return exact, float(f1)


def fit_thresholds_on(tag_probs: np.ndarray, truth: np.ndarray, idx: np.ndarray) -> np.ndarray:
    from lpclassify.calibration.thresholds import fit_thresholds
    return np.array(fit_thresholds(tag_probs[idx], truth[idx]))


PAIR_BIASES = np.round(np.arange(-2, 1.01, 0.25), 2)


def rule_argmax(probs, member, truth, idx):
    return member[probs.argmax(axis=1)]


def rule_pair_bias(probs, member, truth, idx):
    """The most likely set after one bias (nats) on every pair label, fitted on ``idx`` for exact-set."""
    pair = member.sum(axis=1) == 2
    log_probs = np.log(probs)
    scores = [(member[(log_probs[idx] + b * pair).argmax(axis=1)] == truth[idx]).all(axis=1).mean()
              for b in PAIR_BIASES]
    tied = [b for b, s in zip(PAIR_BIASES, scores, strict=False) if s == max(scores)]
    return member[(log_probs + float(np.median(tied)) * pair).argmax(axis=1)]


def rule_sum_thresholds(probs, member, truth, idx):
    """Each tag at or over its threshold (fitted for F1 on ``idx``); a tag's probability sums its sets."""
    tag_probs = probs @ member
    return tag_probs >= fit_thresholds_on(tag_probs, truth, idx)


RULES = {"argmax": rule_argmax, "argmax+pair bias": rule_pair_bias, "sum+thresholds": rule_sum_thresholds}


def kinds(truth: np.ndarray) -> dict[str, np.ndarray]:
    size = truth.sum(axis=1)
    return {"none": size == 0, "one": size == 1, "several": size >= 2}


def cross_validated(rule, probs, member, truth, repeats: int = 10) -> list[np.ndarray]:
    """The rule fitted on three quarters and applied to the fourth, for ``repeats`` random 4-fold splits."""
    rng = np.random.default_rng(0)  # the same splits for every row
    out = []
    for _ in range(repeats):
        fold = rng.permutation(len(truth)) % 4
        chosen = np.zeros_like(truth)
        for f in range(4):
            chosen[fold == f] = rule(probs, member, truth, fold != f)[fold == f]
        out.append(chosen)
    return out


def score(name: str, config_spec: dict, texts: list[str], cache: Path) -> list[str]:
    """Score the dev texts once under every calibration; the probabilities are kept in ``cache``."""
    from lpclassify import Classifier
    from lpclassify.backends.shared import shared_backend
    from lpclassify.config import load_config
    from lpclassify.evaluation import score_texts
    from lpclassify.models import resolve_model

    config = load_config(config_spec)
    clf = Classifier(config, shared_backend(resolve_model(config.model), n_ctx=config.runtime.n_ctx, threads=1))
    started = time.time()
    raw = score_texts(clf, texts)
    print(f"== {name}: scored in {time.time() - started:.0f}s, {len(config.examples)} demonstrations")
    for method in ("none", "contextual", "pmi"):
        np.save(cache / f"{name}-{method}.npy", clf.probabilities(raw, method=method))
    return list(config.label_names)


def shipped_as_single() -> dict:
    """configs/support_tags.yaml (the shared approach) read as a single-label config over tags + other."""
    import yaml
    spec = yaml.safe_load((ROOT / "configs" / "support_tags.yaml").read_text())
    for label in spec["labels"].values():
        label.pop("threshold", None)
    spec["decision"] = {"mode": "single"}
    return spec


def shared_clean() -> dict:
    """The shared approach (tags + other) with this file's twelve demonstrations instead of the shipped ones."""
    spec = set_config(demos="single")
    spec["labels"] = {name: v for name, v in spec["labels"].items() if "+" not in name}
    return spec


def by_order(n_orders: int, specs: dict, texts: list[str], truth: np.ndarray, cache: Path) -> None:
    """Each rule's cross-validated exact-set accuracy (PMI) per order of the demonstrations, then the mean."""
    import random

    from lpclassify.config import load_config
    for name in ("sets:single12", "shared:shipped", "shared:clean12"):
        results: dict[str, list[float]] = {rule: [] for rule in RULES}
        several = []
        for seed in range(n_orders):
            spec = dict(specs[name], examples=list(specs[name]["examples"]))
            if seed:
                random.Random(seed).shuffle(spec["examples"])
            key = f"{name}@{seed}"
            names = score(key, spec, texts, cache) if not (cache / f"{key}-pmi.npy").exists() else \
                list(load_config(spec).label_names)
            probs, member = np.load(cache / f"{key}-pmi.npy"), tag_sets(names)
            for rule_name, rule in RULES.items():
                cv = cross_validated(rule, probs, member, truth, repeats=1 if rule is rule_argmax else 10)
                results[rule_name].append(float(np.mean([metrics(c, truth)[0] for c in cv])))
                if rule is rule_pair_bias:
                    m = kinds(truth)["several"]
                    several.append(float(np.mean([(c[m] == truth[m]).all(axis=1).mean() for c in cv])))
            print(f"{name} order {seed}: " + ", ".join(f"{r} {v[-1]:.3f}" for r, v in results.items())
                  + f" (several-tag rows, pair bias: {several[-1]:.2f})", flush=True)
        print(f"{name} over {n_orders} orders: " + ", ".join(
            f"{r} mean {np.mean(v):.3f} ({min(v):.3f}-{max(v):.3f})" for r, v in results.items())
            + f"; several-tag rows, pair bias: mean {np.mean(several):.2f}")


def main() -> None:
    rows = read_rows(ROOT / "benchmarks" / "data" / "support_tags" / "dev.jsonl")
    truth = np.array([[t in r["label"] for t in TAGS] for r in rows])
    texts = [r["text"] for r in rows]
    cache = Path(os.environ.get("CACHE", "/tmp/tags_sets"))
    cache.mkdir(exist_ok=True)
    specs = {**{f"sets:{k}": set_config(**v) for k, v in CANDIDATES.items()},
             "shared:shipped": shipped_as_single(), "shared:clean12": shared_clean()}
    if os.environ.get("ORDERS"):
        by_order(int(os.environ["ORDERS"]), specs, texts, truth, cache)
        return
    table = {}  # (candidate, calibration) -> (probabilities, membership)
    for name in sys.argv[1:] or specs:
        names = score(name, specs[name], texts, cache) if not (cache / f"{name}-pmi.npy").exists() else \
            list(__import__("lpclassify.config", fromlist=["load_config"]).load_config(specs[name]).label_names)
        member = tag_sets(names)
        print(f"{name} ({len(names)} labels)")
        for method in ("none", "contextual", "pmi"):
            probs = np.load(cache / f"{name}-{method}.npy")
            table[name, method] = probs, member
            for rule_name, rule in RULES.items():
                cv = cross_validated(rule, probs, member, truth, repeats=1 if rule is rule_argmax else 10)
                exact = np.mean([metrics(c, truth)[0] for c in cv])
                f1 = np.mean([metrics(c, truth)[1] for c in cv])
                by_kind = {k: round(float(np.mean([(c[m] == truth[m]).all(axis=1).mean() for c in cv])), 2)
                           for k, m in kinds(truth).items()}
                print(f"  {method:10s} {rule_name:17s} exact {exact:.3f} microF1 {f1:.3f}  by kind {by_kind}")
        sys.stdout.flush()
    for family in ("sets:", "shared:"):
        held_apart({k: v for k, v in table.items() if k[0].startswith(family)}, truth, family)


def held_apart(table: dict, truth: np.ndarray, family: str) -> None:
    """The whole choice (candidate, calibration, rule and what the rule fits) made on one half, scored on the other."""
    if not table:
        return
    n = len(truth)

    def run(a: np.ndarray, b: np.ndarray) -> tuple:
        chosen = {(key, r): RULES[r](*table[key], truth, a) for key in table for r in RULES}
        best = max(chosen, key=lambda k: (chosen[k][a] == truth[a]).all(axis=1).mean())
        return best, float((chosen[best][b] == truth[b]).all(axis=1).mean())

    index = np.arange(n)
    for a, b, title in ((index < n // 2, index >= n // 2, "rows 1-32 choose, 33-64 score"),
                        (index >= n // 2, index < n // 2, "rows 33-64 choose, 1-32 score")):
        best, exact = run(a, b)
        print(f"held apart ({family}): {title}: chose {best}, exact {exact:.3f}")
    rng = np.random.default_rng(1)
    scores = []
    for _ in range(20):
        half = np.isin(index, rng.permutation(n)[: n // 2])
        scores += [run(half, ~half)[1], run(~half, half)[1]]
    print(f"held apart ({family}): 20 random halvings, both ways: mean exact {np.mean(scores):.3f}, "
          f"range {min(scores):.3f}-{max(scores):.3f}")


if __name__ == "__main__":
    main()
