"""Vapour recovery per nozzle: which fuellings count, the daily verdicts of both rule sets, the alarms, and a
restart that changes nothing."""

from __future__ import annotations

import datetime
import statistics
from collections.abc import Sequence
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vapour_story import DAY_MS, FIRST_DAY, GOOD, LOW_FAST, START_MS, STARVED, transaction, vapour_story

from agent.contract.decode import decode_as
from agent.contract.records import JsonValue, RecordIntent, RecordType, VapourBody
from agent.station.alarms import AlarmBook
from agent.station.vapour import VapourWatch, al_mean_permille, al_stdev_permille
from agent.station.vapour_settings import VapourSettings

Shape = dict[str, int]


def alarms(made: Sequence[RecordIntent]) -> list[tuple[str, str]]:
    return [(str(i.body.kind), str(i.body.state)) for i in made if i.type is RecordType.ALARM]


def days_of(made: Sequence[RecordIntent]) -> list[dict[str, JsonValue]]:
    """The vapour records' bodies as sealed."""
    return [i.body.as_json() for i in made if i.type is RecordType.VAPOUR]


def read_back(bodies: Sequence[dict[str, JsonValue]]) -> list[VapourBody]:
    """Vapour bodies as a restart reads them from the outbox."""
    return [decode_as(VapourBody, body) for body in bodies]


def cursors(made: Sequence[RecordIntent]) -> dict[str, int]:
    return {cursor.key: cursor.value for i in made for cursor in i.cursors}


def fuel(watch: VapourWatch, day: int, shapes: Sequence[Shape], nozzle: str = "D01-N1") -> list[RecordIntent]:
    made: list[RecordIntent] = []
    for slot, shape in enumerate(shapes):
        start = START_MS + day * DAY_MS + (8 * 60 + slot * 10) * 60_000
        made += watch.on_transaction(transaction(start, nozzle=nozzle, txn_no=slot + 1, **shape), start + 100_000)
    return made


def run_days(rules: VapourSettings, days: Sequence[Sequence[Shape]]) -> list[RecordIntent]:
    watch = VapourWatch(rules, AlarmBook({}), [])
    made: list[RecordIntent] = []
    for index, shapes in enumerate(days):
        made += fuel(watch, index, shapes)
        made += watch.close_day(FIRST_DAY + datetime.timedelta(days=index), START_MS + (index + 1) * DAY_MS)
    return made


# -- GB 20952 rules --------------------------------------------------------------------------------------------


def test_the_story_raises_and_clears_each_alarm_once_in_order() -> None:
    made = vapour_story()
    assert alarms(made) == [
        ("vapour_pump_fault", "raised"),
        ("vapour_pump_fault", "cleared"),
        ("vapour_al_warning", "raised"),
        ("slow_dispenser", "raised"),
        ("slow_dispenser", "cleared"),
        ("vapour_al_alarm", "raised"),
        ("vapour_al_warning", "cleared"),
        ("vapour_al_alarm", "cleared"),
    ]
    verdicts = [(body["verdict"], body["warning_days"]) for body in days_of(made)]
    assert verdicts == [("warning", 1), ("warning", 2), ("warning", 3), ("warning", 4), ("alarm", 5), ("pass", 0)]


def test_clean_days_pass_without_alarms() -> None:
    made = run_days(VapourSettings(), [[GOOD] * 8] * 3)
    assert alarms(made) == []
    first = days_of(made)[0]
    assert first["verdict"] == "pass" and first["pass_share_permille"] == 1000
    counts = (first["fuellings"], first["counted"], first["passed"], first["slow"], first["pump_fault"])
    assert counts == (8, 8, 8, 0, 0)
    assert first["al_mean_permille"] == 1100 and first["al_stdev_permille"] == 0
    assert first["day"] == "2026-03-01" and first["dispenser"] == "D01" and first["grade"] == "92"


def test_only_whole_fuellings_of_the_minimum_volume_count() -> None:
    small = {"volume_ml": 14_999}
    unmeasured = {"al_permille": None}
    made = run_days(VapourSettings(), [[GOOD] * 5 + [small, unmeasured, {**small, **STARVED}]])
    (day,) = days_of(made)
    assert (day["fuellings"], day["counted"], day["passed"]) == (8, 5, 5)


def test_warning_follows_the_pass_share_threshold_exactly() -> None:
    """3 of 4 is 750 per mille, not below the threshold; 2 of 4 is."""
    rules = VapourSettings(min_fuellings_per_day=4)
    made = run_days(rules, [[GOOD] * 3 + [LOW_FAST], [GOOD] * 2 + [LOW_FAST] * 2])
    assert [body["verdict"] for body in days_of(made)] == ["pass", "warning"]
    assert [body["pass_share_permille"] for body in days_of(made)] == [750, 500]


def test_an_inconclusive_day_neither_clears_nor_counts_as_a_warning_day() -> None:
    rules = VapourSettings(alarm_warning_days=2)
    failing = [GOOD] * 2 + [LOW_FAST] * 3
    made = run_days(rules, [failing, [GOOD], failing])
    bodies = days_of(made)
    assert [(b["verdict"], b["warning_days"]) for b in bodies] == [("warning", 1), ("inconclusive", 1), ("alarm", 2)]
    assert alarms(made) == [("vapour_al_warning", "raised"), ("vapour_al_alarm", "raised")]
    # the thin day's fuelling joined the third day's judgement
    assert (bodies[2]["carried_fuellings"], bodies[2]["judged_fuellings"], bodies[2]["judged_passed"]) == (1, 6, 3)


def test_thin_days_roll_into_the_next_until_enough_are_counted() -> None:
    made = run_days(VapourSettings(), [[GOOD, LOW_FAST], [GOOD, GOOD], [GOOD]])
    bodies = days_of(made)
    assert [b["verdict"] for b in bodies] == ["inconclusive", "inconclusive", "pass"]
    assert [(b["carried_fuellings"], b["carried_passed"], b["carried_days"]) for b in bodies] == [
        (0, 0, 0),
        (2, 1, 1),
        (4, 3, 2),
    ]
    assert [b["rolled_over"] for b in bodies] == [True, True, False]
    assert bodies[2]["pass_share_permille"] == 800  # 4 of 5
    assert all(b["pass_share_permille"] is None for b in bodies[:2])


def test_a_pool_of_thin_days_is_dropped_after_max_carry_days() -> None:
    rules = VapourSettings(max_carry_days=100, min_fuellings_per_day=200)
    made = run_days(rules, [[GOOD]] * 101 + [[GOOD] * 200])
    bodies = days_of(made)
    assert bodies[98]["carried_days"] == 98 and bodies[98]["rolled_over"] is True
    assert bodies[99]["carried_days"] == 99 and bodies[99]["rolled_over"] is False
    assert bodies[99]["judged_fuellings"] == 100
    assert bodies[100]["carried_days"] == 0 and bodies[100]["carried_fuellings"] == 0
    assert bodies[101]["verdict"] == "pass" and bodies[101]["judged_fuellings"] == 201
    assert {b["verdict"] for b in bodies[:101]} == {"inconclusive"}


def test_slow_dispenser_is_raised_when_most_failures_were_slow_and_cleared_when_not() -> None:
    slow = {**LOW_FAST, "duration_s": 200}  # 30 L in 200 s: 9 L/min
    made = run_days(VapourSettings(), [[GOOD] * 2 + [slow] * 2 + [LOW_FAST], [GOOD] * 2 + [slow] + [LOW_FAST] * 2])
    assert alarms(made) == [
        ("vapour_al_warning", "raised"),
        ("slow_dispenser", "raised"),
        ("slow_dispenser", "cleared"),
    ]
    raised = next(i for i in made if i.type is RecordType.ALARM and i.body.kind == "slow_dispenser")
    assert raised.body.evidence == {"day": "2026-03-01", "out_of_band": 3, "slow": 2, "slow_flow_ml_per_min": 10_000}
    assert [b["slow"] for b in days_of(made)] == [2, 1]


def test_slow_fuellings_on_a_pass_day_raise_nothing() -> None:
    slow = {**LOW_FAST, "duration_s": 200}
    made = run_days(VapourSettings(), [[GOOD] * 8 + [slow] * 2])
    assert alarms(made) == [] and days_of(made)[0]["slow"] == 2


# -- the vacuum pump, fuelling by fuelling ----------------------------------------------------------------------


def test_pump_fault_needs_the_configured_run_of_starved_fuellings() -> None:
    watch = VapourWatch(VapourSettings(), AlarmBook({}), [])
    assert fuel(watch, 0, [STARVED, STARVED, GOOD, STARVED, STARVED]) == []
    made = fuel(watch, 1, [STARVED])
    assert alarms(made) == [("vapour_pump_fault", "raised")]
    assert made[0].body.evidence["consecutive"] == 3  # type: ignore[index, call-overload]


def test_fuellings_that_do_not_count_neither_extend_nor_break_the_run() -> None:
    small = {**STARVED, "volume_ml": 10_000}
    unseen = {**GOOD, "duration_s": 0}  # the agent saw neither start nor end: flows unknown
    made = run_days(VapourSettings(), [[STARVED, small, {"al_permille": None}, STARVED, unseen, STARVED]])
    assert alarms(made)[:1] == [("vapour_pump_fault", "raised")]
    assert days_of(made)[0]["pump_fault"] == 3 and days_of(made)[0]["pump_fault_run"] == 3


def test_replaying_the_open_day_raises_nothing_and_resumes_the_run() -> None:
    first = VapourWatch(VapourSettings(), AlarmBook({}), [])
    made = fuel(first, 0, [STARVED] * 3)
    assert alarms(made) == [("vapour_pump_fault", "raised")]
    restarted = VapourWatch(VapourSettings(), AlarmBook(cursors(made)), [])
    for slot in range(3):
        restarted.replay_transaction(transaction(START_MS + slot * 600_000, txn_no=slot + 1, **STARVED))
    assert fuel(restarted, 0, [STARVED]) == []
    assert alarms(fuel(restarted, 0, [GOOD])) == [("vapour_pump_fault", "cleared")]


# -- CARB ISD rules -------------------------------------------------------------------------------------------

CARB = VapourSettings(rule_set="carb")


def test_carb_daily_mean_out_of_band_warns_then_alarms_and_too_few_is_inconclusive() -> None:
    """A daily mean out of its band is a warning, the second in a row an alarm; 14 fuellings judge nothing."""
    low = {"al_permille": 300}
    daily_only = VapourSettings(rule_set="carb", carb_weekly_min_fuellings=1_000)
    made = run_days(daily_only, [[low] * 14, [low] * 15, [low] * 15, [GOOD] * 15])
    bodies = days_of(made)
    assert [(b["verdict"], b["daily_fail_days"]) for b in bodies] == [
        ("inconclusive", 0),
        ("warning", 1),
        ("alarm", 2),
        ("pass", 0),
    ]
    assert alarms(made) == [
        ("vapour_al_warning", "raised"),
        ("vapour_al_alarm", "raised"),
        ("vapour_al_warning", "cleared"),
        ("vapour_al_alarm", "cleared"),
    ]
    assert all(b["warning_days"] == 0 and b["pass_share_permille"] is None for b in bodies)


def test_carb_weekly_mean_decides_once_thirty_fuellings_gather() -> None:
    """Daily means of 1.40 are in the daily band but not in the weekly one; days of ten fuellings are too thin
    to judge alone, so the week decides once it has thirty: warnings, short of the eighth day's alarm."""
    high = {"al_permille": 1_400}
    made = run_days(CARB, [[high] * 10] * 3 + [[]] * 5 + [[GOOD] * 15])
    bodies = days_of(made)
    assert [b["verdict"] for b in bodies] == [
        "inconclusive",
        "inconclusive",
        *["warning"] * 5,
        "inconclusive",
        "pass",
    ]
    assert [b["weekly_fail_days"] for b in bodies] == [0, 0, 1, 2, 3, 4, 5, 5, 5]
    assert [b["week_counted"] for b in bodies] == [10, 20, 30, 30, 30, 30, 30, 20, 25]
    assert bodies[2]["week_al_mean_permille"] == 1_400


def test_carb_week_mean_matches_the_mean_of_its_fuellings() -> None:
    made = run_days(CARB, [[{"al_permille": 900}] * 20, [{"al_permille": 1_000}] * 10])
    assert days_of(made)[1]["week_al_mean_permille"] == round(Fraction(900 * 20 + 1_000 * 10, 30))


# -- the edges, with their sources (docs/detection.md, "Vapour recovery rules: the edges") ---------------------


@pytest.mark.parametrize(("breaks", "expected"), [(False, [1, 1, 2]), (True, [1, 0, 1])])
def test_edge_a_an_inconclusive_day_leaves_the_run_of_warning_days(breaks: bool, expected: list[int]) -> None:
    """Edge (a), GB 20952-2020 Annex E as vendors implement it ("5 consecutive warning days"): no source says
    whether a day too thin to judge breaks the run; by default it leaves it, so that keeping a failing nozzle
    idle one day in five cannot hide it; `thin_day_breaks_run` makes it break the run."""
    rules = VapourSettings(alarm_warning_days=2, thin_day_breaks_run=breaks)
    failing = [LOW_FAST] * 5
    bodies = days_of(run_days(rules, [failing, [], failing]))
    assert [b["warning_days"] for b in bodies] == expected
    assert [b["verdict"] for b in bodies] == ["warning", "inconclusive", "alarm" if expected[2] == 2 else "warning"]


def test_edge_b_the_carry_ages_from_its_oldest_fuelling() -> None:
    """Edge (b), the vendors' 100-day roll-over (DOMAIN brief; no published clause found): the limit bounds the
    age of the pooled evidence, so days before the pool's first counted fuelling do not age it, while empty days
    after it do."""
    rules = VapourSettings(max_carry_days=3)
    idle_then_thin = days_of(run_days(rules, [[GOOD] * 5] + [[]] * 5 + [[LOW_FAST] * 2, [LOW_FAST] * 3]))
    assert [b["carried_days"] for b in idle_then_thin] == [0, 0, 0, 0, 0, 0, 0, 1]
    assert all(b["rolled_over"] for b in idle_then_thin[1:7])
    assert (idle_then_thin[7]["judged_fuellings"], idle_then_thin[7]["verdict"]) == (5, "warning")
    # the same five fuellings with two empty days between them: the pool is three days old and dropped
    gap = days_of(run_days(rules, [[LOW_FAST] * 2, [], [], [LOW_FAST] * 3]))
    assert [(b["carried_days"], b["rolled_over"]) for b in gap] == [(0, True), (1, True), (2, False), (0, True)]
    assert gap[3]["verdict"] == "inconclusive" and gap[3]["judged_fuellings"] == 3


@pytest.mark.parametrize(("weekly_min", "verdict"), [(30, "pass"), (31, "inconclusive")])
def test_edge_c_carb_a_thin_day_with_a_passing_week_is_a_pass(weekly_min: int, verdict: str) -> None:
    """Edge (c), Veeder-Root ISD manual (TLS-350R Plus, ISD reports, "Assist Systems - Hose Pass Result"): "If
    the Gross test did not run (no test), but the Degradation test passed, the result is a PASS"; with neither
    run it is No Test (inconclusive)."""
    rules = VapourSettings(rule_set="carb", carb_weekly_min_fuellings=weekly_min)
    bodies = days_of(run_days(rules, [[GOOD] * 20, [GOOD] * 10]))
    assert bodies[1]["counted"] == 10 and bodies[1]["week_counted"] == 30
    assert bodies[1]["verdict"] == verdict


def test_edge_d_carb_warns_first_and_fails_on_the_2nd_daily_or_8th_weekly_assessment() -> None:
    """Edge (d), Veeder-Root ISD manual (TLS-350R Plus, "Assist Daily Detail Status Codes"): a failing gross
    (daily) or degradation (weekly) test is first a warning; "a gross test will convert to a failure and shut
    down on the 2nd day and the degradation test ... on the 8th day". A day without a daily test between two
    failing ones does not restart the count."""
    low = {"al_permille": 300}
    daily_only = VapourSettings(rule_set="carb", carb_weekly_min_fuellings=1_000)
    made = run_days(daily_only, [[low] * 15, [low] * 5, [low] * 15])
    assert [days_of(made)[i]["verdict"] for i in range(3)] == ["warning", "inconclusive", "alarm"]
    assert alarms(made) == [("vapour_al_warning", "raised"), ("vapour_al_alarm", "raised")]
    # daily means of 1.40 pass the daily band but fail the weekly one from the second day (30 fuellings) on
    high = {"al_permille": 1_400}
    bodies = days_of(run_days(VapourSettings(rule_set="carb"), [[high] * 15] * 10))
    assert [b["weekly_fail_days"] for b in bodies] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert [b["verdict"] for b in bodies] == ["pass", *["warning"] * 7, "alarm", "alarm"]


# -- statistics, records, settings ----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=5_000), min_size=0, max_size=60))
def test_al_statistics_match_the_reference(values: list[int]) -> None:
    total, squares = sum(values), sum(v * v for v in values)
    mean = al_mean_permille(total, len(values))
    stdev = al_stdev_permille(total, squares, len(values))
    if not values:
        assert mean is None and stdev is None
        return
    assert mean == round(statistics.mean(Fraction(v) for v in values))
    if len(values) < 2:
        assert stdev is None
    else:
        assert stdev is not None and abs(stdev - statistics.stdev(values)) <= 0.5 + 1e-9


def test_a_nozzle_seen_before_gets_its_record_on_a_day_without_fuellings() -> None:
    made = run_days(VapourSettings(), [[GOOD] * 5, []])
    quiet = days_of(made)[1]
    assert (quiet["fuellings"], quiet["verdict"], quiet["al_mean_permille"], quiet["rolled_over"]) == (
        0,
        "inconclusive",
        None,
        True,
    )


def test_a_day_is_closed_once() -> None:
    watch = VapourWatch(VapourSettings(), AlarmBook({}), [])
    fuel(watch, 0, [GOOD] * 5)
    assert len(watch.close_day(FIRST_DAY, START_MS + DAY_MS)) == 1
    assert watch.close_day(FIRST_DAY, START_MS + DAY_MS) == []
    history = read_back(days_of(run_days(VapourSettings(), [[GOOD] * 5])))
    assert VapourWatch(VapourSettings(), AlarmBook({}), history).close_day(FIRST_DAY, START_MS + DAY_MS) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"al_low_permille": 1_200}, "vapour.al_low_permille = 1200 must be at least 0 and below vapour.al_high"),
        ({"carb_weekly_high_permille": 800}, "vapour.carb_weekly_low_permille = 810 must be at least 0 and below"),
        ({"min_fuellings_per_day": 0}, "vapour.min_fuellings_per_day = 0: must be at least 1"),
        ({"warning_pass_share_permille": 1_001}, "a share is at most 1000"),
        ({"rule_set": "epa"}, "vapour.rule_set = 'epa': use 'gb20952' or 'carb'"),
    ],
)
def test_settings_that_contradict_each_other_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        VapourSettings(**change)  # type: ignore[arg-type]


# -- a restart changes nothing --------------------------------------------------------------------------------

day_shapes = st.lists(st.sampled_from([GOOD, LOW_FAST, STARVED, {**LOW_FAST, "duration_s": 240}]), max_size=8)


@settings(max_examples=40, deadline=None)
@given(
    rule_set=st.sampled_from(["gb20952", "carb"]),
    days=st.lists(day_shapes, min_size=1, max_size=12),
    restarts=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 8)), max_size=4),
)
def test_a_restart_resumes_from_the_records_alone(
    rule_set: str, days: list[list[Shape]], restarts: list[tuple[int, int]]
) -> None:
    """Restarting at any point, fed the last week's vapour records and the open day's transactions again, the
    watch makes exactly the records an uninterrupted run makes."""
    rules = VapourSettings(
        rule_set=rule_set,  # type: ignore[arg-type]
        min_fuellings_per_day=3,
        alarm_warning_days=2,
        carb_daily_min_fuellings=3,
        carb_weekly_min_fuellings=6,
    )
    expected = run_days(rules, days)
    stops = set(restarts)
    made: list[RecordIntent] = []
    watch = VapourWatch(rules, AlarmBook({}), [])
    for index, shapes in enumerate(days):
        for slot, shape in enumerate(shapes):
            if (index, slot) in stops:
                history = read_back(
                    [b for b in days_of(made) if str(b["day"]) >= str(FIRST_DAY + datetime.timedelta(index - 7))]
                )
                watch = VapourWatch(rules, AlarmBook(cursors(made)), history)
                for earlier, before in enumerate(shapes[:slot]):
                    start = START_MS + index * DAY_MS + (8 * 60 + earlier * 10) * 60_000
                    watch.replay_transaction(transaction(start, txn_no=earlier + 1, **before))
            start = START_MS + index * DAY_MS + (8 * 60 + slot * 10) * 60_000
            made += watch.on_transaction(transaction(start, txn_no=slot + 1, **shape), start + 100_000)
        made += watch.close_day(FIRST_DAY + datetime.timedelta(days=index), START_MS + (index + 1) * DAY_MS)
    assert made == expected
