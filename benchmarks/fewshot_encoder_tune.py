"""How the few-shot encoder's design was chosen: HELP's split only (docs/predictors.md).

Pretrains a prior with an encoder on HELP's nine meta-train devices, then adapts it
as is on HELP's six meta-test devices (N = 5, 10, 20; seeded repeats; designed
selection), once per adapter variant. Prints one line per variant: mean Spearman,
share within +-10 % and band coverage per N, Spearman per target at N = 10, and how
often each model was chosen.

Run (LATBENCH_HOME holding HELP's 27 imported sets; one thread, minutes per config):
  python benchmarks/fewshot_encoder_tune.py TAG '{"epochs": 60, "hidden": 32}' \
      '{"enc": {"encoder_models": ["encoder"]}}' [REPEATS]
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    from latbench.predictors.fewshot import pretrain, source_matrix
    from latbench.predictors.fewshot.evaluate import HELP_META_TEST, HELP_META_TRAIN, evaluate_adapt

    tag, opts, variants = argv[0], json.loads(argv[1]), json.loads(argv[2])
    reps = int(argv[3]) if len(argv) > 3 else 5
    m = source_matrix([*HELP_META_TRAIN, *HELP_META_TEST])
    t = time.perf_counter()
    prior = pretrain(m[list(HELP_META_TRAIN)], encoder=opts)
    print(tag, "pretrain s", round(time.perf_counter() - t, 1), prior.meta.get("encoder"))
    for name, ao in variants.items():
        res = evaluate_adapt(m, HELP_META_TEST, protocol="shipped", prior=prior, ns=(5, 10, 20),
                             repeats=reps, methods=("adapter",), adapter_options=ao)  # fmt: skip
        g = res.groupby("n")[["spearman", "within_10pct", "coverage_90"]].mean().round(3)
        pt = res[res.n == 10].groupby("target").spearman.mean().round(3).to_dict()
        models = res.groupby("n").model.value_counts().to_dict()
        print(tag, name, g.to_dict("index"), pt, models, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
