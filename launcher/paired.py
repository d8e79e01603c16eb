"""Paired comparison of two runs of one task, item by item: flips and an exact McNemar test
(a two-sided binomial test on the discordant pairs, with math.comb: no SciPy)."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any

import attrs

ALPHA = 0.05


class Verdict(enum.StrEnum):
    BETTER = "better"
    WORSE = "worse"
    SAME = "no significant difference"
    UNPAIRED = "no paired samples"


def mcnemar_p(pass_to_fail: int, fail_to_pass: int) -> float:
    """Exact two-sided McNemar p-value: P(X <= min(b, c)) * 2 for X ~ Binomial(b + c, 1/2),
    capped at 1; 1.0 when no pair is discordant."""
    n = pass_to_fail + fail_to_pass
    if n == 0:
        return 1.0
    k = min(pass_to_fail, fail_to_pass)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)


@attrs.frozen
class Paired:
    paired: int  # samples present in both runs
    both_pass: int
    both_fail: int
    pass_to_fail: int  # passed in the base, fails in the candidate
    fail_to_pass: int
    only_base: int  # samples of one run the other lacks (not tested)
    only_candidate: int
    p_value: float
    verdict: Verdict
    flipped_to_fail: tuple[str, ...] = ()  # item ids (first few), for people to look at
    flipped_to_pass: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["verdict"] = str(self.verdict)
        data["flipped_to_fail"] = list(self.flipped_to_fail)
        data["flipped_to_pass"] = list(self.flipped_to_pass)
        return data


def pair(base: Mapping[tuple[str, int], bool], candidate: Mapping[tuple[str, int], bool],
         alpha: float = ALPHA, keep: int = 10) -> Paired:
    """Match samples by (item id, response index) and count how each pair moved."""
    keys = [k for k in base if k in candidate]
    counts = {(True, True): 0, (False, False): 0, (True, False): 0, (False, True): 0}
    to_fail: list[str] = []
    to_pass: list[str] = []
    for key in sorted(keys):
        moved = (base[key], candidate[key])
        counts[moved] += 1
        name = key[0] if key[1] == 0 else f"{key[0]}#{key[1]}"
        if moved == (True, False) and len(to_fail) < keep:
            to_fail.append(name)
        elif moved == (False, True) and len(to_pass) < keep:
            to_pass.append(name)
    b, c = counts[(True, False)], counts[(False, True)]
    p = mcnemar_p(b, c)
    if not keys:
        verdict = Verdict.UNPAIRED
    elif p < alpha:
        verdict = Verdict.BETTER if c > b else Verdict.WORSE
    else:
        verdict = Verdict.SAME
    return Paired(len(keys), counts[(True, True)], counts[(False, False)], b, c,
                  sum(1 for k in base if k not in candidate),
                  sum(1 for k in candidate if k not in base), p, verdict,
                  tuple(to_fail), tuple(to_pass))
