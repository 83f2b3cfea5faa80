"""Benchmark the authorization check against a bare cedarpy call.

Run ``python bench/bench_authz.py``: prints markdown table rows and one JSON line.
``run()`` returns the same results for a common bench runner.

Each case is a realistic request under the baseline policy set: a random persona,
action, tenant scope and change history. Per case and round, in alternating order:

* Keel: ``PolicyEngine.check`` (builds the principal and resource entities, parses
  them with the schema, which supplies the action entities, evaluates, maps the
  diagnostics to a Decision);
* bare: ``cedarpy.is_authorized`` with the same pre-parsed policy set and schema and
  the same entity document (built before timing), parsed into an ``Entities`` handle
  the same way; i.e. the same Cedar work without Keel around it.

Target: p50(Keel) / p50(bare) <= 1.5. An informational row compares with a call
whose entities were parsed before timing, which no per-request check can match
(the principal and resource change with every request).
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

import cedarpy

try:
    from keel.authz.actions import ACTIONS
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from keel.authz.actions import ACTIONS

from keel.authz.baseline import baseline_policies, cedar_schema
from keel.authz.engine import PolicyEngine, Principal, Resource, _entities_json
from keel.identity.personas import Persona

CASES = 2_000
ROUNDS = 7
RATIO_TARGET = 1.5


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def _cases(n: int, rng: random.Random) -> list[tuple[Principal, str, Resource, bool, bool]]:
    personas = list(Persona)
    actions = sorted(ACTIONS)
    users = [f"u-{i}" for i in range(40)]
    cases = []
    for _ in range(n):
        persona = rng.choice(personas)
        uid = rng.choice(users)
        tenant = None if persona.is_provider else rng.choice(("T1", "T2"))
        principal = Principal(uid, tenant, frozenset({persona.value}))
        resource = Resource(
            rng.choice(("schema", "kpi", "workflow", "connector", "table", "user")),
            f"obj-{rng.randrange(10_000)}",
            rng.choice((None, "T1", "T2")),
            drafted_by=rng.choice((None, *users[:5])),
            approved_by=frozenset(rng.sample(users[:8], rng.randrange(3))),
            owner=rng.choice((uid, users[0])),
        )
        cases.append((principal, rng.choice(actions), resource, rng.random() < 0.5, rng.random() < 0.1))
    return cases


def run(cases: int = CASES, rounds: int = ROUNDS) -> list[dict]:
    """Interleave Keel and bare calls round after round; compare per-call p50."""
    text = baseline_policies()
    engine = PolicyEngine(text)
    policy_set = cedarpy.PolicySet.from_str(text)
    schema = cedarpy.Schema.from_str(cedar_schema())
    work = _cases(cases, random.Random(7_411))

    bare_inputs = []
    for principal, action, resource, dual, glass in work:
        resource_id = f"{resource.type}/{resource.id}"
        request = {
            "principal": {"type": "Keel::User", "id": principal.user_id},
            "action": {"type": "Keel::Action", "id": action},
            "resource": {"type": "Keel::Resource", "id": resource_id},
            "context": {"dual_signed": dual, "break_glass": glass},
        }
        entities_json = _entities_json(principal, resource, resource_id)
        prebuilt = cedarpy.Entities.from_json_str(entities_json, schema)
        bare_inputs.append((request, entities_json, prebuilt))

    # Same decisions, or the comparison means nothing.
    for (principal, action, resource, dual, glass), (request, entities_json, _) in zip(
        work, bare_inputs, strict=True
    ):
        keel = engine.check(principal, action, resource, dual_signed=dual, break_glass=glass)
        entities = cedarpy.Entities.from_json_str(entities_json, schema)
        bare = cedarpy.is_authorized(request, policy_set, entities)
        if keel.allowed != bare.allowed:
            raise AssertionError(f"Keel and bare Cedar disagree on {action} for {principal}")

    timer = time.perf_counter_ns
    check = engine.check
    is_authorized = cedarpy.is_authorized
    from_json_str = cedarpy.Entities.from_json_str
    keel_us: list[float] = []
    bare_us: list[float] = []
    floor_us: list[float] = []
    round_ratios: list[float] = []
    for r in range(rounds):
        keel_round: list[float] = []
        bare_round: list[float] = []
        for (principal, action, resource, dual, glass), (request, entities_json, prebuilt) in zip(
            work, bare_inputs, strict=True
        ):
            order = (0, 1, 2) if r % 2 == 0 else (2, 1, 0)
            for which in order:
                if which == 0:
                    start = timer()
                    check(principal, action, resource, dual_signed=dual, break_glass=glass)
                    keel_round.append((timer() - start) / 1e3)
                elif which == 1:
                    start = timer()
                    is_authorized(request, policy_set, from_json_str(entities_json, schema))
                    bare_round.append((timer() - start) / 1e3)
                else:
                    start = timer()
                    is_authorized(request, policy_set, prebuilt)
                    floor_us.append((timer() - start) / 1e3)
        round_ratios.append(statistics.median(keel_round) / statistics.median(bare_round))
        keel_us += keel_round
        bare_us += bare_round

    keel_us.sort()
    bare_us.sort()
    floor_us.sort()
    keel_p50, bare_p50, floor_p50 = (_percentile(v, 0.5) for v in (keel_us, bare_us, floor_us))
    keel_p99, bare_p99 = _percentile(keel_us, 0.99), _percentile(bare_us, 0.99)
    ratio = keel_p50 / bare_p50
    return [
        {
            "name": f"PolicyEngine.check p50 vs bare is_authorized ({cases:,} requests x {rounds} rounds)",
            "value": round(keel_p50, 2),
            "unit": "us",
            "baseline": round(bare_p50, 2),
            "ratio": round(ratio, 3),
            "target": f"keel/bare <= {RATIO_TARGET}",
            "pass": ratio <= RATIO_TARGET,
        },
        {
            "name": "PolicyEngine.check p99 vs bare p99 (informational)",
            "value": round(keel_p99, 2),
            "unit": "us",
            "baseline": round(bare_p99, 2),
            "ratio": round(keel_p99 / bare_p99, 3),
            "target": None,
            "pass": True,
        },
        {
            "name": "per-round p50 ratio, worst of rounds (informational)",
            "value": round(max(round_ratios), 3),
            "unit": "ratio",
            "baseline": None,
            "ratio": None,
            "target": None,
            "pass": True,
        },
        {
            "name": "PolicyEngine.check p50 vs is_authorized on pre-parsed entities (informational)",
            "value": round(keel_p50, 2),
            "unit": "us",
            "baseline": round(floor_p50, 2),
            "ratio": round(keel_p50 / floor_p50, 3),
            "target": None,
            "pass": True,
        },
    ]


if __name__ == "__main__":  # this benchmark alone, through the common runner (bench/run.py)
    from run import main as run_benches

    sys.exit(run_benches([Path(__file__).stem]))
