"""Which checkpoint sounds best, and is the voice getting worse: pure rules over listening results.

Recommendation (best_by = listen, `BEST LISTEN`, the Results screen's recommended row):
  1. Intelligibility gate: a checkpoint qualifies when its mean CER is at most the base model's mean
     CER + CER_MARGIN (without a base row: the lowest CER of all checkpoints + CER_MARGIN), and no more
     of its sentences are flagged (tail/loop/truncated/token_limit) than the base's + FLAG_MARGIN.
  2. Among qualifying checkpoints: the highest mean speaker similarity (resemblyzer — independent of
     the model; the XTTS encoder also conditions the model and can flatter); ties (within 0.002) go to
     the lower CER.
  3. When none qualifies: the checkpoint with the lowest mean CER ("no checkpoint is as intelligible as
     the base").
Overtraining from listening: over the last K tests (K+1 points) similarity fell at every test, or
CER rose at every test, while the mean training loss at those tests fell by more than 2%.
"""

from __future__ import annotations

from itertools import pairwise

CER_MARGIN = 0.05
FLAG_MARGIN = 1
SIM_TIE = 0.002
TRAIN_FALL = 0.02


def _s(r: dict) -> dict:
    return r.get("summary") or {}


def recommend(results: list[dict]) -> dict | None:
    base = next((r for r in results if r.get("label") == "base"), None)
    cands = [r for r in results if r.get("label") != "base" and _s(r).get("cer") is not None]
    if not cands:
        return None
    if base is not None and _s(base).get("cer") is not None:
        gate, gate_note = _s(base)["cer"] + CER_MARGIN, f"CER within {CER_MARGIN} of the base"
        flag_gate = _s(base).get("flagged", 0) + FLAG_MARGIN
    else:
        gate = min(_s(r)["cer"] for r in cands) + CER_MARGIN
        gate_note, flag_gate = f"CER within {CER_MARGIN} of the best checkpoint (no base row)", None
    ok = [r for r in cands if _s(r)["cer"] <= gate + 1e-9
          and (flag_gate is None or _s(r).get("flagged", 0) <= flag_gate)]
    if ok:
        top = max((_s(r).get("similarity") or -1.0) for r in ok)
        tied = [r for r in ok if (_s(r).get("similarity") or -1.0) >= top - SIM_TIE]
        pick = min(tied, key=lambda r: (_s(r)["cer"], r.get("step") or 0))
        reason = f"highest speaker similarity ({top:.3f}) among checkpoints with {gate_note}"
    else:
        pick = min(cands, key=lambda r: (_s(r)["cer"], -(_s(r).get("similarity") or 0)))
        reason = f"no checkpoint has {gate_note}: the most intelligible one (CER {_s(pick)['cer']:.3f})"
    return {"label": pick["label"], "step": pick.get("step"), "weights": pick.get("weights"), "reason": reason,
            "cer": _s(pick)["cer"], "similarity": _s(pick).get("similarity")}


def overtraining(results: list[dict], k: int = 3) -> dict | None:
    """An alert dict when listening says the voice got worse over the last k tests while the
    training loss still fell; None otherwise."""
    tests = [r for r in results if r.get("label") != "base" and _s(r).get("cer") is not None]
    tests.sort(key=lambda r: r.get("step") or 0)
    if len(tests) < k + 1:
        return None
    last = tests[-(k + 1):]
    sims = [_s(r).get("similarity") for r in last]
    cers = [_s(r)["cer"] for r in last]
    losses = [r.get("train_loss") for r in last]
    if losses[0] is None or losses[-1] is None or losses[0] <= 0:
        return None
    fall = (losses[0] - losses[-1]) / losses[0]
    if fall <= TRAIN_FALL:
        return None
    sim_down = all(s is not None for s in sims) and all(b < a - 1e-4 for a, b in pairwise(sims))
    cer_up = all(b > a + 1e-4 for a, b in pairwise(cers))
    if not (sim_down or cer_up):
        return None
    what = " and ".join(x for x, on in (("speaker similarity fell", sim_down), ("CER rose", cer_up)) if on)
    return {"kind": "listen_overtraining",
            "msg": f"Listening: {what} over the last {k} tests while the training loss fell {fall * 100:.1f}%: "
                   "the voice is getting worse, a sign of overtraining. Consider stopping (BEST LISTEN is kept), "
                   "fewer epochs or a lower learning rate.",
            "tests": k, "train_fall": round(fall, 4), "similarity": sims, "cer": cers}
