"""Screening for issue 24, third entailment pass: P(hypothesis | instruction, premise, connective) for
many connectives at once (one config whose two labels carry every connective as a completion), so
that sets of connectives, normalizations and thresholds can be compared in numpy on one model pass.

    python benchmarks/reports/dev-compare/ent3_screen.py VARIANT OUT.pkl   (1 llama.cpp thread)
"""
import pickle
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from trust import model_input, read_rows  # noqa: E402

ENT = [" In other words,", " That is,", " Indeed,", " So", " Therefore,", " In short,", " Put simply,",
       " This means that", " Of course,", " In fact,", " Namely,", " To put it another way,", " Yes,"]
NOT = [" On the contrary,", " However,", " But", " Instead,", " Actually,", " Yet", " Rather,",
       " No,", " Nevertheless,", " Wrong:", " In fact, no:", " Not so:", " Contrary to that,"]
LINES = {
    "none": "",
    "i": "After each sentence comes a second one that either says the same thing or says the opposite.\n\n",
    "f": "Each statement below is followed by a restatement of it or by a contradiction of it.\n\n",
    "t": "Each sentence is followed by a second sentence that is either true or false given the first.\n\n",
    "s": "After each sentence comes a second one that either says the same thing or says the opposite.\n\n"
         "A man is cooking dinner. In other words, Someone is making food.\n\n"
         "A man is cooking dinner. On the contrary, The man is asleep.\n\n",
}


def main() -> None:
    from lpclassify import Classifier
    from lpclassify.backends.shared import shared_backend
    from lpclassify.config import load_config
    from lpclassify.models import resolve_model

    variant, out = sys.argv[1], sys.argv[2]
    config = load_config({
        "name": "entailment", "model": "default",
        "prompt": LINES[variant] + "{premise} {label} {hypothesis}",
        "labels": {"entailment": {"completions": ENT}, "not_entailment": {"completions": NOT}},
        "runtime": {"shorten_field": "premise"},
        "scoring": {"direction": "channel", "calibration": "none"},
    })
    rows = read_rows(ROOT / "benchmarks" / "data" / "entailment" / "dev.jsonl")
    rt = config.runtime
    backend = shared_backend(resolve_model(config.model), n_ctx=rt.n_ctx, batch_size=rt.batch_size, threads=1)
    clf = Classifier(config, backend)
    raw = clf.raw_scores([model_input(r, config.fields) for r in rows])
    Path(out).write_bytes(pickle.dumps({"ent": ENT, "not": NOT, "line": LINES[variant], "rows": rows,
                                        "logprobs": raw.logprobs, "n_tokens": raw.n_tokens}))


if __name__ == "__main__":
    main()
