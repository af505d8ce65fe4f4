"""Table S2's GCN campaign on an accelerator: many GCNs trained at once (JAX port).

A port of :mod:`latbench.predictors.gcn` (same network, init, AdamW, schedule, targets,
and the same protocol splits as ``latbench-predict evaluate``) that trains every repeat
of every device *together*, stacked along a model axis with ``jax.vmap``, so that 100
repeats of the full Table S1 protocol on six devices fit in minutes on one GPU. Each
model keeps its own learning rate, plateau and early-stopping state; a stopped model's
best-validation weights are frozen, and the run ends when every model has stopped.

Two steps, so the machine that trains needs only numpy, pandas and JAX::

    # here (latbench installed): encodings, latencies and the protocol's splits
    python benchmarks/gcn_campaign.py prepare --data-home DIR --repeats 100 -o pack.npz
    # anywhere with JAX (GPU or CPU): one CSV per variant, evaluate's columns
    python benchmarks/gcn_campaign.py run pack.npz --variant paper --out results/

Variants (``VARIANTS``) are the experiments of docs/predictors.md's GCN table; each
changes one thing from ``baseline``. The CSVs read like ``latbench-predict evaluate -o``
output: ``python -m latbench.analysis.paper results/paper.csv``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

DEVICES = {
    "D.CPU": "desktop-cpu-i7-7820x-fp32",
    "D.GPU": "desktop-gpu-gtx-1080-ti-fp32",
    "E.GPU": "jetson-nano-fp32",
    "E.TPU": "edgetpu-int8",
    "M.GPU": "snapdragon-675-gpu-int8",
    "M.DSP": "snapdragon-855-dsp-int8",
}


GCN_SHARED = (
    "batch_size", "learning_rate", "weight_decay", "dropout", "hidden", "layers",
    "max_epochs", "patience", "plateau_patience",
)  # fmt: skip
"""Fields a :class:`Variant` shares with ``latbench.predictors.gcn.GCNConfig``: ``None``
in a variant means GCNConfig's default, which ``prepare`` stores in the pack (so that
``run`` needs no latbench)."""


@dataclass(frozen=True)
class Variant:
    """One training recipe (defaults: the predictor before issue 25, whose loss, target
    and schedule differ from today's; the :data:`GCN_SHARED` fields are GCNConfig's)."""

    target: str = "zlog"
    """``zlog`` (standardised log latency), ``log`` (log latency), ``raw`` (ms, Eagle)."""
    loss: str = "mse"
    """``mse`` or ``l1`` (Eagle's), for training and the validation monitor."""
    plateau_threshold: float = 0.0
    """Relative improvement the plateau needs (Eagle/PyTorch ``threshold=0.01``)."""
    delay: int = 0
    """Epochs before the plateau and early stopping start counting (Eagle: 21)."""
    batch_size: int | None = None
    learning_rate: float | None = None
    weight_decay: float | None = None
    dropout: float | None = None
    hidden: int | None = None
    layers: int | None = None
    f64: bool = False
    max_epochs: int | None = None
    patience: int | None = None
    plateau_patience: int | None = None
    eps: float = 1e-7


def with_defaults(v: Variant, gcn_config: dict) -> Variant:
    """``v`` with every unset :data:`GCN_SHARED` field taken from ``gcn_config``."""
    return replace(v, **{k: gcn_config[k] for k in GCN_SHARED if getattr(v, k) is None})


def _typed(overrides: dict, base: Variant) -> dict:
    """``FIELD=VALUE`` strings as the types of ``base``'s fields (a resolved variant)."""
    out = {}
    for k, val in overrides.items():
        if not isinstance(val, str):
            out[k] = val
        elif not hasattr(base, k):
            raise SystemExit(f"gcn_campaign: error: no Variant field {k!r}")
        elif type(getattr(base, k)) is bool:
            if val not in ("0", "1", "false", "true", "False", "True"):
                raise SystemExit(f"gcn_campaign: error: {k}={val!r} is not a boolean")
            out[k] = val in ("1", "true", "True")
        else:
            kind = type(getattr(base, k))
            try:
                out[k] = kind(val)
            except ValueError:
                raise SystemExit(
                    f"gcn_campaign: error: {k}={val!r} is not {kind.__name__}"
                ) from None
    return out


BASE = Variant()
VARIANTS = {
    "baseline": BASE,
    "l1": replace(BASE, loss="l1"),
    "threshold": replace(BASE, plateau_threshold=0.01, delay=21),
    "f64": replace(BASE, f64=True),
    "raw-l1": replace(BASE, target="raw", loss="l1"),
    "bs1-lr4e-4": replace(BASE, batch_size=1, learning_rate=4e-4),
    "l1-threshold": replace(BASE, loss="l1", plateau_threshold=0.01, delay=21),
    "eagle": replace(BASE, target="raw", loss="l1", plateau_threshold=0.01, delay=21, f64=True),
    "raw-l1-threshold": replace(BASE, target="raw", loss="l1", plateau_threshold=0.01, delay=21),
    "no-dropout": replace(BASE, dropout=0.0),
    "wd0": replace(BASE, weight_decay=0.0),
}
CANDIDATES = ("baseline", "l1", "threshold", "raw-l1", "l1-threshold", "raw-l1-threshold")
"""Variants the campaign may adopt: none costs more per run than the baseline (f64 and
batch 1 would make a run on 2 CPU cores several times slower)."""


# -- prepare (needs latbench) ----------------------------------------------------------------


def prepare(data_home: str, repeats: int, seeds: list[int], train: int, val: int, out: str) -> None:
    """Write the encodings, each device's latencies and its protocol splits to ``out``."""
    from latbench.predictors.data import split_rows, usable_rows
    from latbench.predictors.encoding import gcn_inputs
    from latbench.predictors.gcn import GCNConfig
    from latbench.predictors.protocol import repeat_seeds

    adj, feat = gcn_inputs("pruned")
    arrays: dict[str, np.ndarray] = {"adj": adj, "feat": feat}
    meta = {"devices": [], "repeats": repeats, "seeds": seeds, "train": train, "val": val,
            "gcn_config": {k: getattr(GCNConfig(), k) for k in GCN_SHARED}}  # fmt: skip
    for label, key in DEVICES.items():
        try:
            rows = usable_rows(key, data_home)
        except Exception as exc:  # a device missing from the data home is left out
            print(f"skip {label}: {exc}", file=sys.stderr)
            continue
        meta["devices"].append(label)
        arrays[f"{label}/ids"] = rows["arch_id"].to_numpy(np.int32)
        arrays[f"{label}/y"] = rows["latency_ms"].to_numpy(np.float64)
        for s in seeds:
            for n_train in (train, 100):  # Table S2's two GCN rows
                tr, va, ms = [], [], []
                for r in range(repeats):
                    split_seed, model_seed = repeat_seeds(s, r)
                    sp = split_rows(rows, n_train, val, split_seed)
                    tr.append(sp.train)
                    va.append(sp.val)
                    ms.append(model_seed)
                at = f"{label}/s{s}/n{n_train}"
                arrays[f"{at}/train"] = np.asarray(tr, np.int32)
                arrays[f"{at}/val"] = np.asarray(va, np.int32)
                arrays[f"{at}/model_seed"] = np.asarray(ms, np.uint32)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez_compressed(out, **arrays)
    print(f"wrote {out}: {meta['devices']}, {repeats} repeats, seeds {seeds}")


# -- run (numpy + JAX only) -------------------------------------------------------------------


def _within(t: np.ndarray, p: np.ndarray, pct: float) -> float:
    return float(np.mean(np.abs(p - t) <= pct / 100 * t * (1 + 1e-12)))


def _score(t: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from scipy import stats

    return {
        "within_1pct": _within(t, p, 1),
        "within_5pct": _within(t, p, 5),
        "within_10pct": _within(t, p, 10),
        "spearman": float(stats.spearmanr(t, p).statistic),
        "kendall": float(stats.kendalltau(t, p).statistic),
        "rmse_ms": float(np.sqrt(np.mean((p - t) ** 2))),
        # Eagle's own scoring: measured within +-k % of the *prediction*
        "eagle_within_1pct": float(np.mean(np.abs(t - p) <= 0.01 * p)),
    }


SHARED = ("f64", "batch_size", "hidden", "layers", "patience", "plateau_patience", "eps")
"""Fields one stacked batch of models must share (the rest may differ per model)."""


def train_many(
    vs: list[Variant],
    adj: np.ndarray,
    feat: np.ndarray,
    tr_ids: np.ndarray,
    tr_y: np.ndarray,
    va_ids: np.ndarray,
    va_y: np.ndarray,
    seeds: np.ndarray,
    log=print,
) -> tuple[object, dict]:
    """Train ``len(vs)`` models at once, model ``i`` with recipe ``vs[i]``.

    ``tr_ids``/``va_ids`` (M, n) index ``adj``/``feat``; ``tr_y``/``va_y`` (M, n) in ms.
    Returns ``(predict, info)``: ``predict(ids)`` gives (M, len(ids)) latencies in ms.
    """
    import jax
    import jax.numpy as jnp

    v = vs[0]
    for f in SHARED:
        if any(getattr(w, f) != getattr(v, f) for w in vs):
            raise ValueError(f"one batch of models needs one {f}")
    dt = jnp.float64 if v.f64 else jnp.float32
    M, n = tr_ids.shape
    col = lambda f: np.array([getattr(w, f) for w in vs])  # noqa: E731
    logt = col("target") != "raw"
    # Per-model target transform (from the model's own training set).
    mu = np.where(col("target") == "zlog", np.log(tr_y).mean(1), 0.0)
    sd = np.where(col("target") == "zlog", np.log(tr_y).std(1), 1.0)

    def fwd_t(y):  # ms -> target space
        base = np.where(logt[:, None], np.log(y), y)
        return (base - mu[:, None]) / sd[:, None]

    A = jnp.asarray(adj, dt)
    F = jnp.asarray(feat, dt)
    ytr = jnp.asarray(fwd_t(tr_y), dt)
    yva = jnp.asarray(fwd_t(va_y), dt)
    tri = jnp.asarray(tr_ids)
    vai = jnp.asarray(va_ids)
    is_l1 = jnp.asarray(col("loss") == "l1")
    wd = jnp.asarray(col("weight_decay"), dt)
    keep_p = jnp.asarray(1 - col("dropout"), dt)

    def init_one(key):
        b = 1.0 / np.sqrt(v.hidden)
        ks = jax.random.split(key, 2 * v.layers + 2)
        p = {"W": [], "b": [], "g": [], "beta": []}
        fan = feat.shape[-1]
        for i in range(v.layers):
            p["W"].append(jax.random.uniform(ks[2 * i], (fan, v.hidden), dt, -b, b))
            p["b"].append(jax.random.uniform(ks[2 * i + 1], (v.hidden,), dt, -b, b))
            p["g"].append(jnp.ones(v.hidden, dt))
            p["beta"].append(jnp.zeros(v.hidden, dt))
            fan = v.hidden
        p["fw"] = jax.random.uniform(ks[-2], (v.hidden, 1), dt, -b, b)
        p["fb"] = jax.random.uniform(ks[-1], (1,), dt, -b, b)
        return p

    def net(p, a, h, key, keep):
        for i in range(v.layers):
            if i == v.layers - 1:
                a = a[:, :1, :]
            h = jnp.matmul(jnp.matmul(a, h), p["W"][i]) + p["b"][i]
            m = h.mean(-1, keepdims=True)
            var = ((h - m) ** 2).mean(-1, keepdims=True)
            h = (h - m) / jnp.sqrt(var + 1e-5) * p["g"][i] + p["beta"][i]
            h = jax.nn.relu(h)
            if key is not None:
                u = jax.random.uniform(jax.random.fold_in(key, i), h.shape, dt)
                h = jnp.where(u < keep, h / keep, 0)
        return (h[:, 0, :] @ p["fw"] + p["fb"])[:, 0]

    def lossf(pred, y, l1):
        d = pred - y
        return jnp.where(l1, jnp.mean(jnp.abs(d)), jnp.mean(d * d))

    def step_one(p, m, s, t, lr, wd, keep, l1, ids, y, key):
        def f(p):
            return lossf(net(p, A[ids], F[ids], key, keep), y, l1)

        loss, g = jax.value_and_grad(f)(p)
        t = t + 1
        b1, b2 = 0.9, 0.999
        m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
        s = jax.tree.map(lambda s, g: b2 * s + (1 - b2) * g * g, s, g)
        c1, c2 = 1 - b1**t, 1 - b2**t

        def upd(p, m, s):
            p = p * (1 - lr * wd)  # decoupled weight decay, as AdamW in Keras and PyTorch
            return p - lr * (m / c1) / (jnp.sqrt(s / c2) + v.eps)

        p = jax.tree.map(upd, p, m, s)
        return p, m, s, t, loss

    vstep = jax.vmap(step_one, in_axes=(0, 0, 0, None, 0, 0, 0, 0, 0, 0, 0))

    @jax.jit
    def run_epoch(p, m, s, t, lr, order, keys):
        # order: (steps, M, B) positions into each model's training set; keys: (M, 2),
        # each model's own for this epoch, so variants of one repeat draw alike
        def body(carry, xs):
            p, m, s, t = carry
            pos, i = xs
            ids = jnp.take_along_axis(tri, pos, axis=1)
            y = jnp.take_along_axis(ytr, pos, axis=1)
            ks = jax.vmap(lambda k: jax.random.fold_in(k, i))(keys)
            p, m, s, t2, loss = vstep(p, m, s, t, lr, wd, keep_p, is_l1, ids, y, ks)
            return (p, m, s, t2[0]), loss

        (p, m, s, t), losses = jax.lax.scan(body, (p, m, s, t), (order, jnp.arange(order.shape[0])))
        return p, m, s, t, losses.mean(0)

    @jax.jit
    def val_loss(p):
        pred = jax.vmap(lambda p, i: net(p, A[i], F[i], None, None))(p, vai)
        d = pred - yva
        return jnp.where(is_l1, jnp.mean(jnp.abs(d), 1), jnp.mean(d * d, 1))

    @jax.jit
    def keep_best(best, p, better):
        def sel(b, q):
            return jnp.where(better.reshape((-1,) + (1,) * (q.ndim - 1)), q, b)

        return jax.tree.map(sel, best, p)

    keys = jnp.stack([jax.random.PRNGKey(int(s)) for s in seeds])
    params = jax.vmap(init_one)(keys)
    mom = jax.tree.map(jnp.zeros_like, params)
    sec = jax.tree.map(jnp.zeros_like, params)
    t = jnp.asarray(0, dt)
    best_w = params
    lr = col("learning_rate").astype(float)
    thr, delay, max_ep = col("plateau_threshold"), col("delay"), col("max_epochs")
    best = np.full(M, np.inf)  # best-weights tracking (from epoch 1)
    es_best = np.full(M, np.inf)
    pl_best = np.full(M, np.inf)
    es_wait = np.zeros(M, int)
    pl_wait = np.zeros(M, int)
    active = np.ones(M, bool)
    epochs = np.zeros(M, int)
    best_epoch = np.zeros(M, int)
    rngs = [np.random.default_rng(int(sd_)) for sd_ in seeds]  # per model: paired variants
    steps = n // v.batch_size
    t0 = time.perf_counter()
    for epoch in range(1, int(max_ep.max()) + 1):
        order = np.stack([r.permutation(n)[: steps * v.batch_size] for r in rngs])
        order = order.reshape(M, steps, v.batch_size).transpose(1, 0, 2)
        ekeys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, epoch)
        # a stopped model gets learning rate 0: no update, its best weights are kept
        params, mom, sec, t, _ = run_epoch(
            params, mom, sec, t, jnp.asarray(lr * active, dt), jnp.asarray(order), ekeys
        )
        vl = np.asarray(val_loss(params), np.float64)
        better = active & (vl < best)
        if better.any():
            best_w = keep_best(best_w, params, jnp.asarray(better))
        best = np.where(better, vl, best)
        best_epoch = np.where(better, epoch, best_epoch)
        epochs = np.where(active, epoch, epochs)
        counting = active & (epoch > delay)
        # plateau (PyTorch ReduceLROnPlateau semantics where threshold > 0)
        pl_improved = vl < pl_best * (1 - thr)
        pl_best = np.where(counting & pl_improved, vl, pl_best)
        pl_wait = np.where(counting, np.where(pl_improved, 0, pl_wait + 1), pl_wait)
        cut = counting & (pl_wait >= v.plateau_patience + (thr > 0))
        lr = np.where(cut, lr * 0.5, lr)
        pl_wait = np.where(cut, 0, pl_wait)
        # early stopping
        es_improved = vl < es_best
        es_best = np.where(counting & es_improved, vl, es_best)
        es_wait = np.where(counting, np.where(es_improved, 0, es_wait + 1), es_wait)
        active &= ~(counting & (es_wait >= v.patience)) & (epoch < max_ep)
        if epoch % 25 == 0 or not active.any():
            log(f"  epoch {epoch}: {active.sum()}/{M} active, {time.perf_counter() - t0:.0f} s")
        if not active.any():
            break

    @jax.jit
    def predict_chunk(p, a, f):
        return jax.vmap(lambda p: net(p, a, f, None, None))(p)

    def predict(ids_all: np.ndarray) -> np.ndarray:
        out = []
        for i in range(0, len(ids_all), 2048):
            chunk = ids_all[i : i + 2048]
            pad = np.zeros(2048, int)
            pad[: len(chunk)] = chunk
            z = np.asarray(predict_chunk(best_w, A[pad], F[pad]), np.float64)[:, : len(chunk)]
            out.append(z)
        z = np.concatenate(out, 1) * sd[:, None] + mu[:, None]
        return np.where(logt[:, None], np.exp(np.minimum(z, 50)), z)

    info = {"epochs": epochs, "best_epoch": best_epoch, "seconds": time.perf_counter() - t0}
    return predict, info


def run(pack: str, jobs: list[tuple[str, str, list[str], int, int, dict]],
        train: int | None = None) -> list[str]:  # fmt: skip
    """Train every job's models in one stacked batch; write one CSV per job.

    A job is ``(csv_path, variant, devices, repeats, seed, overrides)``.
    """
    import pandas as pd

    data = np.load(pack)
    meta = json.loads(bytes(data["meta"]).decode())
    adj, feat = data["adj"], data["feat"]
    if "gcn_config" not in meta:
        raise SystemExit(f"gcn_campaign: error: {pack} has no GCN defaults; rerun prepare")
    base = with_defaults(BASE, meta["gcn_config"])
    # GCN_CAMPAIGN_SET="hidden=32,max_epochs=2": a smoke test of the whole pipeline
    env = dict(
        kv.partition("=")[::2] for kv in os.environ.get("GCN_CAMPAIGN_SET", "").split(",") if kv
    )
    env_over = _typed(env, base)
    parts = []  # (job index, device, ids, y, tr, va, ms, variant)
    for j, (_, variant, devices, repeats, seed, overrides) in enumerate(jobs):
        v = with_defaults(VARIANTS[variant], meta["gcn_config"])
        v = replace(v, **{**_typed(overrides, base), **env_over})
        for d in devices:
            if d not in meta["devices"]:
                print(f"skip {d}: not in the pack", file=sys.stderr)
                continue
            at = f"{d}/s{seed}/n{train or meta['train']}"
            tr = data[f"{at}/train"][:repeats]
            va = data[f"{at}/val"][:repeats]
            ms = data[f"{at}/model_seed"][:repeats]
            parts.append((j, d, data[f"{d}/ids"], data[f"{d}/y"], tr, va, ms, v))
    tr_ids = np.concatenate([ids[tr] for _, _, ids, _, tr, *_ in parts])
    tr_y = np.concatenate([y[tr] for _, _, _, y, tr, *_ in parts])
    va_ids = np.concatenate([ids[va] for _, _, ids, _, _, va, *_ in parts])
    va_y = np.concatenate([y[va] for _, _, _, y, _, va, *_ in parts])
    seeds = np.concatenate([ms for *_, ms, _ in parts])
    vs = [p[-1] for p in parts for _ in range(len(p[4]))]
    names = ", ".join(f"{jobs[j][1]}/{d}x{len(tr)}" for j, d, _, _, tr, *_ in parts)
    print(f"batch of {len(seeds)} models: {names}", flush=True)
    predict, info = train_many(vs, adj, feat, tr_ids, tr_y, va_ids, va_y, seeds)
    rows: dict[int, list] = {}
    k = 0
    for j, d, ids, y, tr, va, _, v in parts:
        uniq = np.unique(ids)
        pred_all = predict(uniq)  # every model predicts; this part's models are k..k+R
        for r in range(len(tr)):
            test = np.setdiff1d(np.arange(len(ids)), np.concatenate([tr[r], va[r]]))
            p = pred_all[k + r, np.searchsorted(uniq, ids[test])]
            rows.setdefault(j, []).append({
                "dataset": d, "predictor": "gcn", "repeat": r, "seed": jobs[j][4],
                "unit": "models", "n_train": tr.shape[1], "n_val": va.shape[1],
                "n_test": len(test), **_score(y[test], p),
                "train_seconds": info["seconds"] / len(seeds),
                "epochs": int(info["epochs"][k + r]),
                "best_epoch": int(info["best_epoch"][k + r]),
                "variant": jobs[j][1], "config": json.dumps(asdict(v)),
            })  # fmt: skip
        k += len(tr)
    paths = []
    for j, job_rows in rows.items():
        frame = pd.DataFrame(job_rows)
        os.makedirs(os.path.dirname(jobs[j][0]) or ".", exist_ok=True)
        frame.to_csv(jobs[j][0], index=False)
        paths.append(jobs[j][0])
        cols = ["within_1pct", "within_5pct", "within_10pct", "epochs"]
        print(f"{jobs[j][0]} ({jobs[j][1]}):")
        print(frame.groupby("dataset")[cols].mean().round(4).to_string(), flush=True)
    print(f"  batch done in {info['seconds']:.0f} s", flush=True)
    return paths


def campaign(
    pack: str, out: str, repeats: int, budget_s: float, ablation_repeats: int = 10
) -> None:
    """The whole experiment, in stacked batches (``out``/<part>/<variant>.csv).

    1. One batch: ``baseline`` capped at 60 epochs, 5 repeats, seed 0, D. CPU and
       E. TPU (``portcheck``: the TensorFlow predictor's stored figures are for the same
       splits), and the ablation: every float32, batch-10 variant on the *seed-1*
       splits (not the reported ones), 10 repeats, D. CPU and E. GPU, full protocol.
    2. The candidate (``CANDIDATES``) with the best mean +-1 % in the ablation is
       adopted; its and the baseline's Table S2 on the seed-0 splits, ``repeats``
       repeats, every device, 900 training points (``table_s2``), then 100.
    3. Time permitting (``budget_s``): the costlier ablation rows (float64, Eagle's
       whole recipe, batch 1).
    """
    import pandas as pd

    t0 = time.perf_counter()

    def left() -> float:
        return budget_s - (time.perf_counter() - t0)

    abl = f"{out}/ablation"
    # float32 at GCNConfig's batch size (batch 1 is the costly one)
    cheap = [n for n in VARIANTS if not VARIANTS[n].f64 and VARIANTS[n].batch_size is None]
    jobs = [(f"{out}/portcheck/baseline-60ep.csv", "baseline", ["D.CPU", "E.TPU"], min(5, repeats), 0,
             {"max_epochs": 60})]  # fmt: skip
    jobs += [(f"{abl}/{n}.csv", n, ["D.CPU", "E.GPU"], ablation_repeats, 1, {}) for n in cheap]
    run(pack, jobs)
    _pack_up(out)
    scores = {n: pd.read_csv(f"{abl}/{n}.csv")["within_1pct"].mean() for n in CANDIDATES}
    best = max(scores, key=scores.__getitem__)
    print(f"adopted: {best} ({scores})", flush=True)
    final = sorted({best, "baseline"})
    s2 = f"{out}/table_s2"
    run(pack, [(f"{s2}/{n}.csv", n, list(DEVICES), repeats, 0, {}) for n in final])
    _pack_up(out)
    run(pack, [(f"{s2}/{n}-100pts.csv", n, list(DEVICES), repeats, 0, {}) for n in final],
        train=100)  # fmt: skip
    _pack_up(out)
    if left() > 90:
        run(
            pack,
            [
                (f"{abl}/{n}.csv", n, ["D.CPU", "E.GPU"], ablation_repeats, 1, {})
                for n in ("f64", "eagle")
            ],
        )
        _pack_up(out)
    if left() > 150:
        run(pack, [(f"{abl}/bs1-lr4e-4.csv", "bs1-lr4e-4", ["D.CPU"], ablation_repeats, 1, {})])
        _pack_up(out)


def _pack_up(out: str) -> None:
    """Tar ``out`` to $GCN_CAMPAIGN_TAR (if set), so a run cut short still returns results."""
    dest = os.environ.get("GCN_CAMPAIGN_TAR")
    if dest:
        import tarfile

        with tarfile.open(dest + ".tmp", "w:gz") as tar:
            tar.add(out, arcname=os.path.basename(out.rstrip("/")))
        os.replace(dest + ".tmp", dest)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--data-home", required=True)
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("-o", "--out", required=True)
    r = sub.add_parser("run")
    r.add_argument("pack")
    r.add_argument("--variant", action="append", required=True, choices=sorted(VARIANTS))
    r.add_argument("--devices", default=",".join(DEVICES))
    r.add_argument("--repeats", type=int, default=10)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--train", type=int, default=None, help="100: the GCN (100 pts.) rows")
    r.add_argument("--max-epochs", type=int, default=None)
    r.add_argument("--set", action="append", default=[], help="FIELD=VALUE of Variant")
    r.add_argument("--out", default="campaign")
    c = sub.add_parser("campaign")
    c.add_argument("pack")
    c.add_argument("--repeats", type=int, default=30)
    c.add_argument("--budget", type=float, default=480, help="seconds; optional runs skipped")
    c.add_argument("--ablation-repeats", type=int, default=10)
    c.add_argument("--out", default="campaign")
    a = ap.parse_args(argv)
    if a.cmd == "prepare":
        prepare(a.data_home, a.repeats, [int(s) for s in a.seeds.split(",")], 900, 100, a.out)
        return 0
    import jax

    jax.config.update("jax_enable_x64", True)
    # float32 means float32 (no TF32 matmuls on GPUs), as in the TensorFlow predictor
    jax.config.update("jax_default_matmul_precision", "highest")
    if a.cmd == "campaign":
        campaign(a.pack, a.out, a.repeats, a.budget, a.ablation_repeats)
        return 0
    over: dict = {} if a.max_epochs is None else {"max_epochs": a.max_epochs}
    for item in a.set:  # typed in run(), once the pack gives GCNConfig's defaults
        k, _, val = item.partition("=")
        over[k] = val
    devices = a.devices.split(",")
    suffix = f"-{a.train}pts" if a.train else ""
    jobs = [(f"{a.out}/{n}{suffix}.csv", n, devices, a.repeats, a.seed, over) for n in a.variant]
    run(a.pack, jobs, train=a.train)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
