"""`make benchmark`'s verdict on the performance issue's targets, from figures given here (the
benchmark itself is not run: its timings belong in BENCHMARKS.md, never in a test)."""

from __future__ import annotations

import pytest

from tools.benchmark import GB, Measure, targets

pytestmark = pytest.mark.fast


class Verdicts(dict):
    """Each target's row: its figure and "yes" / "**no**", found by the target's first words."""

    def __getitem__(self, start: str) -> tuple[str, str]:
        [row] = [v for what, v in self.items() if what.startswith(start)]
        return row


def verdicts(by_name: dict[str, Measure], days: int = 5) -> Verdicts:
    rows = [line.strip("|").split(" | ") for line in targets(by_name, days)[2:]]
    return Verdicts({what.strip(): (figure, met.strip()) for what, figure, met in rows})


def test_each_target_is_judged_on_the_figures_it_names():
    found = verdicts(
        {
            "bare": Measure("bare", wall_s=6.0),
            "one day, tiny": Measure("t", wall_s=30.0, jvms=1),
            "one day, small": Measure("s", wall_s=34.0, jvms=1),
            "one day, large": Measure(
                "l",
                wall_s=80.0,
                jvms=1,
                peak_rss_gb=2.9 * GB,
                steps={"silver_clickstream": 19.9, "silver_orders": 30.0},
            ),
            "the next day, large": Measure("n", wall_s=70.0, jvms=2, peak_rss_gb=3.01 * GB),
            "seed": Measure("seed", wall_s=240.0),
            # 30 + 1.3 x 5 x (200 / 5 - 30) = 95 s
            "apart": Measure("a", wall_s=200.0),
            "backfill": Measure("b", wall_s=95.04),  # shown 95.0 s: met
        }
    )
    assert found["a tiny day (main job, quality"] == ("30.0 s", "yes")  # at the bound: met
    assert found["a tiny day ≤ 5x one bare spark"] == ("5.0x", "yes")
    assert found["one JVM a day's run (dbt start"] == ("at most 2", "**no**")
    assert found["a 1 M-event day ≤ 75 s"] == ("80.0 s", "**no**")
    assert found["`silver_clickstream` ≤ 20 s at"] == ("19.9 s", "yes")  # that step, not Silver
    assert found["peak RSS of the tree ≤ 3 GB at"] == ("3.01 GB", "**no**")  # the next day's
    assert found["a 1 M-event day ≥ 3x faster th"] == ("3.00x", "yes")
    assert found["a 5-day backfill ≤ fixed overhe"] == ("95.0 s", "yes")
    assert not any(what.startswith("an xlarge") for what in found)  # not measured: not judged
    slower = verdicts(
        {
            "one day, tiny": Measure("t", wall_s=30.0),
            "apart": Measure("a", wall_s=140.0),  # each day less than a tiny one: 0 s each
            "backfill": Measure("b", wall_s=30.1),
        }
    )
    assert slower["a 5-day backfill"] == ("30.1 s", "**no**")


def test_nothing_measured_judges_nothing():
    assert targets({}, 5) == []
