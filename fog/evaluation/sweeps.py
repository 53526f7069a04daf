"""What the evaluation runs, in what order, in parallel, and how the numbers are summarised.

A plan (`EvaluationPlan`) lists the points of every sweep and the seeds per
point; `run_evaluation` turns it into tasks, runs them in worker processes
(each with its own SUMO), shows progress, and returns raw results plus the
summaries the report prints. Every comparison is paired: for a given sweep
point and seed both methods see the same lot state, the same background
traffic and the same SUMO seed, so the interval of the *difference* is
tighter than the two intervals side by side.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from fog.evaluation.lot_document import LotDocument, write_document
from fog.evaluation.mcpr_eval import POLICIES, DayAssumptions, DayResult, hourly_means, simulate_day
from fog.evaluation.revenue import MonthRevenue, RevenueAssumptions, month_revenue
from fog.evaluation.stats import Interval, mean_ci, paired_difference
from fog.evaluation.sumo_net import read_sumo_network, write_sumo_network
from fog.evaluation.traci_runner import (
    BASELINE,
    FOGPARK,
    ProbeResult,
    ProbeTrial,
    PublishedResult,
    PublishedSetting,
    SimSetup,
    run_probe_trial,
    run_published_setting,
    write_vehicle_types,
)

__all__ = [
    "DEFAULT_PLAN",
    "QUICK_PLAN",
    "EvaluationPlan",
    "EvaluationResults",
    "Progress",
    "run_evaluation",
]

PUBLISHED_ARRIVAL_REDUCTION = (16.0, 46.0)
"""Published arrival-time reduction over the traditional search, in %."""
PUBLISHED_REVENUE_GAIN = (10.0, 15.0)
"""Published revenue gain of hybrid over fixed pricing, in %."""


@dataclass(frozen=True)
class EvaluationPlan:
    """Sweep points and seeds; `QUICK_PLAN` is sized for CI, `DEFAULT_PLAN` for the report."""

    name: str
    seeds: int
    congestion_points: tuple[float, ...]
    free_spot_points: tuple[int, ...]
    published_seeds: int
    published_duration_s: float
    revenue_points: tuple[float, ...]
    revenue_seeds: int
    mcpr_seeds: int
    free_spots_congestion: float = 0.8
    concentration: float | None = 4.0

    def with_seeds(self, seeds: int) -> EvaluationPlan:
        """Every part of the plan with ``seeds`` seeds per point."""
        from dataclasses import replace

        if seeds < 2:
            raise ValueError("at least 2 seeds are needed for a confidence interval")
        return replace(self, seeds=seeds, published_seeds=seeds, revenue_seeds=seeds, mcpr_seeds=seeds)


DEFAULT_PLAN = EvaluationPlan(
    name="default",
    seeds=30,
    congestion_points=tuple(round(0.1 * i, 1) for i in range(1, 10)),
    free_spot_points=tuple(range(1, 11)),
    published_seeds=10,
    published_duration_s=1800.0,
    revenue_points=tuple(round(0.1 * i, 1) for i in range(1, 11)),
    revenue_seeds=20,
    mcpr_seeds=5,
)
QUICK_PLAN = EvaluationPlan(
    name="quick",
    seeds=5,
    congestion_points=(0.1, 0.5, 0.9),
    free_spot_points=(1, 5, 10),
    published_seeds=3,
    published_duration_s=600.0,
    revenue_points=(0.2, 0.6, 1.0),
    revenue_seeds=5,
    mcpr_seeds=2,
)


# ---------------------------------------------------------------- progress
class Progress:
    """A progress bar on a terminal, a line per tenth elsewhere (CI logs stay short)."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._last_tenth = -1

    def advance(self, label: str, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.started
        fraction = self.done / self.total
        eta = elapsed / fraction - elapsed if fraction > 0 else 0.0
        if self.tty:
            width = 30
            filled = int(width * fraction)
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(
                f"\r[{bar}] {self.done}/{self.total} {fraction:5.1%} {elapsed:5.0f}s elapsed, ~{eta:4.0f}s left  {label[:32]:<32}"
            )
            if self.done >= self.total:
                self.stream.write("\n")
            self.stream.flush()
            return
        tenth = int(fraction * 10)
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            self.stream.write(f"progress: {self.done}/{self.total} ({fraction:.0%}) after {elapsed:.0f}s: {label}\n")
            self.stream.flush()


# ---------------------------------------------------------------- tasks
_SETUP: SimSetup | None = None


def _init_worker(setup: SimSetup) -> None:
    global _SETUP
    _SETUP = setup


@dataclass(frozen=True)
class _Task:
    kind: str  # "probe" | "published" | "revenue" | "mcpr"
    spec: Any
    label: str


def _run_task(task: _Task) -> tuple[_Task, Any, str | None]:
    """Run one task in a worker; an exception is returned, not raised, so the sweep goes on."""
    try:
        if task.kind == "probe":
            assert _SETUP is not None
            return task, run_probe_trial(_SETUP, task.spec), None
        if task.kind == "published":
            assert _SETUP is not None
            return task, run_published_setting(_SETUP, task.spec), None
        if task.kind == "revenue":
            occupancy, seed = task.spec
            return task, month_revenue(occupancy, seed, RevenueAssumptions()), None
        if task.kind == "mcpr":
            policy, seed = task.spec
            return task, simulate_day(policy, seed, DayAssumptions()), None
        raise ValueError(f"unknown task kind {task.kind!r}")
    except Exception as err:  # noqa: BLE001 - reported per task in the report
        return task, None, f"{type(err).__name__}: {err}"


def _tasks(plan: EvaluationPlan) -> list[_Task]:
    tasks: list[_Task] = []
    # Slow SUMO runs first so the pool's tail is made of short tasks.
    for seed in range(plan.published_seeds):
        for method in (FOGPARK, BASELINE):
            tasks.append(
                _Task("published", PublishedSetting(method, seed, duration_s=plan.published_duration_s),
                      f"published setting {method} seed {seed}")
            )
    for c in plan.congestion_points:
        for seed in range(plan.seeds):
            for method in (FOGPARK, BASELINE):
                tasks.append(
                    _Task("probe", ProbeTrial("a", c, seed, method, 1, c, plan.concentration), f"(a) c={c} {method}")
                )
    for k in plan.free_spot_points:
        for seed in range(plan.seeds):
            for method in (FOGPARK, BASELINE):
                tasks.append(
                    _Task(
                        "probe",
                        ProbeTrial("b", float(k), seed, method, k, plan.free_spots_congestion, plan.concentration),
                        f"(b) k={k} {method}",
                    )
                )
    for x in plan.revenue_points:
        for seed in range(plan.revenue_seeds):
            tasks.append(_Task("revenue", (x, seed), f"(c) occupancy {x:.0%}"))
    for seed in range(plan.mcpr_seeds):
        for policy in POLICIES:
            tasks.append(_Task("mcpr", (policy, seed), f"MCPR {policy} seed {seed}"))
    return tasks


def _execute(
    tasks: Sequence[_Task], setup: SimSetup, jobs: int, progress: Progress
) -> list[tuple[_Task, Any, str | None]]:
    done: list[tuple[_Task, Any, str | None]] = []
    if jobs <= 1:
        _init_worker(setup)
        for task in tasks:
            done.append(_run_task(task))
            progress.advance(task.label)
        return done
    with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker, initargs=(setup,)) as pool:
        pending: set[Future[tuple[_Task, Any, str | None]]] = set()
        queue = list(tasks)
        queue.reverse()
        while queue or pending:
            while queue and len(pending) < 4 * jobs:
                pending.add(pool.submit(_run_task, queue.pop()))
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                result = future.result()
                done.append(result)
                progress.advance(result[0].label)
    return done


# ---------------------------------------------------------------- summaries
@dataclass(frozen=True)
class Comparison:
    """FogPark vs baseline at one sweep point (or over the published setting)."""

    label: str
    point: float
    fogpark: Interval
    baseline: Interval
    difference: Interval  # baseline − FogPark, paired by seed
    fogpark_search: Interval
    baseline_search: Interval
    fogpark_parked: str
    baseline_parked: str
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def reduction(self) -> tuple[float, float, float]:
        """Arrival-time reduction in % of the baseline mean: (mean, low, high)."""
        base = self.baseline.mean
        if not base or math.isnan(base):
            return (math.nan, math.nan, math.nan)
        d = self.difference
        return (100.0 * d.mean / base, 100.0 * d.low / base, 100.0 * d.high / base)

    @property
    def verdict(self) -> str:
        d = self.difference
        if math.isnan(d.low):
            return "not enough seeds for an interval"
        if d.low > 0:
            return "FogPark faster"
        if d.high < 0:
            return "baseline faster"
        return "no significant difference"


def _probe_comparisons(results: Iterable[ProbeResult], sweep: str) -> list[Comparison]:
    by_point: dict[float, dict[str, dict[int, ProbeResult]]] = defaultdict(lambda: defaultdict(dict))
    for r in results:
        if r.trial.sweep == sweep:
            by_point[r.trial.point][r.trial.method][r.trial.seed] = r
    out = []
    for point in sorted(by_point):
        methods = by_point[point]
        seeds = sorted(set(methods[FOGPARK]) & set(methods[BASELINE]))
        fog = [methods[FOGPARK][s] for s in seeds]
        base = [methods[BASELINE][s] for s in seeds]
        out.append(
            Comparison(
                label=f"({sweep}) {point:g}",
                point=point,
                fogpark=mean_ci(r.arrival_time_s for r in fog),
                baseline=mean_ci(r.arrival_time_s for r in base),
                difference=paired_difference([r.arrival_time_s for r in base], [r.arrival_time_s for r in fog]),
                fogpark_search=mean_ci(r.searching_time_s for r in fog),
                baseline_search=mean_ci(r.searching_time_s for r in base),
                fogpark_parked=f"{sum(r.parked for r in fog)}/{len(fog)}",
                baseline_parked=f"{sum(r.parked for r in base)}/{len(base)}",
                extra={
                    "lane_density": _mean(r.lane_density for r in fog),
                    "cruiser_density": _mean(r.cruiser_density for r in fog),
                    "cruisers": _mean(r.cruisers for r in fog),
                    "fogpark_route_congestion": _mean(r.route_congestion for r in fog),
                    "baseline_route_congestion": _mean(r.route_congestion for r in base),
                    "fogpark_driven_m": _mean(r.driven_m for r in fog),
                    "baseline_driven_m": _mean(r.driven_m for r in base),
                    "teleported": float(sum(r.teleported for r in fog + base)),
                    "collisions": float(sum(r.collisions for r in fog + base)),
                    "fogpark_eta_s": _mean(r.engine_eta_s for r in fog),
                },
            )
        )
    return out


def _mean(values: Iterable[float]) -> float:
    data = [float(v) for v in values if math.isfinite(v)]
    return sum(data) / len(data) if data else math.nan


def _published_comparison(results: Iterable[PublishedResult]) -> Comparison | None:
    by_method: dict[str, dict[int, PublishedResult]] = defaultdict(dict)
    for r in results:
        by_method[r.setting.method][r.setting.seed] = r
    seeds = sorted(set(by_method[FOGPARK]) & set(by_method[BASELINE]))
    if not seeds:
        return None

    def per_seed(method: str, attr: str) -> list[float]:
        return [_mean(getattr(v, attr) for v in by_method[method][s].vehicles if v.parked) for s in seeds]

    fog_arrival, base_arrival = per_seed(FOGPARK, "arrival_time_s"), per_seed(BASELINE, "arrival_time_s")
    fog_runs = [by_method[FOGPARK][s] for s in seeds]
    base_runs = [by_method[BASELINE][s] for s in seeds]

    def parked(runs: list[PublishedResult]) -> str:
        total = sum(len(r.vehicles) for r in runs)
        return f"{sum(v.parked for r in runs for v in r.vehicles)}/{total}"

    return Comparison(
        label="published setting",
        point=math.nan,
        fogpark=mean_ci(fog_arrival),
        baseline=mean_ci(base_arrival),
        difference=paired_difference(base_arrival, fog_arrival),
        fogpark_search=mean_ci(per_seed(FOGPARK, "searching_time_s")),
        baseline_search=mean_ci(per_seed(BASELINE, "searching_time_s")),
        fogpark_parked=parked(fog_runs),
        baseline_parked=parked(base_runs),
        extra={
            "fogpark_driven_m": _mean(_mean(v.driven_m for v in r.vehicles) for r in fog_runs),
            "baseline_driven_m": _mean(_mean(v.driven_m for v in r.vehicles) for r in base_runs),
            "turned_away_per_run": _mean(r.turned_away for r in fog_runs + base_runs),
            "admitted_per_run": _mean(len(r.vehicles) for r in fog_runs + base_runs),
            "mean_occupancy": _mean(r.mean_occupancy for r in fog_runs + base_runs),
            "baseline_gave_up": float(sum(v.gave_up for r in base_runs for v in r.vehicles)),
            "fogpark_gave_up": float(sum(v.gave_up for r in fog_runs for v in r.vehicles)),
            "teleported": float(sum(v.teleported for r in fog_runs + base_runs for v in r.vehicles)),
            "collisions": float(sum(r.collisions for r in fog_runs + base_runs)),
            "sim_s_per_run": _mean(r.sim_s for r in fog_runs + base_runs),
        },
    )


@dataclass(frozen=True)
class RevenuePoint:
    """Revenue at one occupancy over the seeds, with paired gains in %."""

    occupancy: float
    fixed: Interval
    hybrid: Interval
    occupancy_priced: Interval
    hybrid_gain_pct: Interval
    occupancy_gain_pct: Interval
    subscription_gain_pct: Interval
    short_hybrid_gain_pct: Interval
    short_occupancy_gain_pct: Interval
    hybrid_break_even_demand_pct: Interval
    hours_sold: float
    auction_rate: float


def _revenue_points(months: Iterable[MonthRevenue]) -> list[RevenuePoint]:
    by_x: dict[float, list[MonthRevenue]] = defaultdict(list)
    for m in months:
        by_x[m.occupancy].append(m)
    out = []
    for x in sorted(by_x):
        ms = sorted(by_x[x], key=lambda m: m.seed)

        def pct(a: float, b: float) -> float:
            return 100.0 * (a / b - 1.0) if b else math.nan

        out.append(
            RevenuePoint(
                occupancy=x,
                fixed=mean_ci(m.fixed for m in ms),
                hybrid=mean_ci(m.hybrid for m in ms),
                occupancy_priced=mean_ci(m.occupancy_priced for m in ms),
                hybrid_gain_pct=mean_ci(pct(m.hybrid, m.fixed) for m in ms),
                occupancy_gain_pct=mean_ci(pct(m.occupancy_priced, m.fixed) for m in ms),
                subscription_gain_pct=mean_ci(pct(m.subscription_auction, m.subscription_fixed) for m in ms),
                short_hybrid_gain_pct=mean_ci(pct(m.short_hybrid, m.short_fixed) for m in ms),
                short_occupancy_gain_pct=mean_ci(pct(m.short_occupancy, m.short_fixed) for m in ms),
                hybrid_break_even_demand_pct=mean_ci(
                    pct(m.short_fixed + m.subscription_fixed - m.subscription_auction, m.short_hybrid) for m in ms
                ),
                hours_sold=_mean(m.hours_sold for m in ms),
                auction_rate=_mean(m.auction_rate if m.auction_rate is not None else math.nan for m in ms),
            )
        )
    return out


@dataclass(frozen=True)
class McprSummary:
    """Per policy: daily means with intervals over seeds, and per-hour means."""

    policy: str
    extra_driving_m: Interval
    walking_m: Interval
    price_per_hour: Interval
    rush_extra_driving_m: Interval
    rush_walking_m: Interval
    turned_away: float
    no_shows: float
    hourly: dict[int, dict[str, float]]
    hourly_ci: dict[int, dict[str, Interval]]


def _mcpr_summaries(days: Iterable[DayResult], rush: tuple[float, float]) -> list[McprSummary]:
    by_policy: dict[str, list[DayResult]] = defaultdict(list)
    for d in days:
        by_policy[d.policy].append(d)
    out = []
    for policy in POLICIES:
        runs = sorted(by_policy.get(policy, []), key=lambda d: d.seed)
        if not runs:
            continue

        def day_mean(run: DayResult, attr: str, hours: tuple[float, float] | None = None) -> float:
            return _mean(
                getattr(o, attr) for o in run.drivers
                if o.parked and (hours is None or hours[0] <= o.arrival_hour < hours[1])
            )

        hourly_ci: dict[int, dict[str, Interval]] = defaultdict(dict)
        per_run = [hourly_means([run]) for run in runs]
        for hour in sorted({h for table in per_run for h in table}):
            for key in ("extra_driving_m", "walking_m"):
                hourly_ci[hour][key] = mean_ci(t[hour][key] for t in per_run if hour in t)
        out.append(
            McprSummary(
                policy=policy,
                extra_driving_m=mean_ci(day_mean(r, "extra_driving_m") for r in runs),
                walking_m=mean_ci(day_mean(r, "walking_m") for r in runs),
                price_per_hour=mean_ci(day_mean(r, "price_per_hour") for r in runs),
                rush_extra_driving_m=mean_ci(day_mean(r, "extra_driving_m", rush) for r in runs),
                rush_walking_m=mean_ci(day_mean(r, "walking_m", rush) for r in runs),
                turned_away=_mean(r.turned_away for r in runs),
                no_shows=_mean(r.no_shows for r in runs),
                hourly=hourly_means(runs),
                hourly_ci=dict(hourly_ci),
            )
        )
    return out


@dataclass
class EvaluationResults:
    """Everything the report needs."""

    plan: EvaluationPlan
    lot_name: str
    lot_spots: int
    out_dir: Path
    network_files: dict[str, str]
    round_trip: str
    probes: list[ProbeResult]
    published: list[PublishedResult]
    months: list[MonthRevenue]
    days: list[DayResult]
    errors: list[str]
    wall_s: float
    jobs: int
    command: str = ""
    sweep_a: list[Comparison] = field(default_factory=list)
    sweep_b: list[Comparison] = field(default_factory=list)
    published_summary: Comparison | None = None
    revenue: list[RevenuePoint] = field(default_factory=list)
    mcpr: list[McprSummary] = field(default_factory=list)

    def summarise(self) -> None:
        self.sweep_a = _probe_comparisons(self.probes, "a")
        self.sweep_b = _probe_comparisons(self.probes, "b")
        self.published_summary = _published_comparison(self.published)
        self.revenue = _revenue_points(self.months)
        self.mcpr = _mcpr_summaries(self.days, DayAssumptions().rush_hours)


# ---------------------------------------------------------------- the whole evaluation
def prepare_network(doc: LotDocument, out_dir: Path) -> tuple[SimSetup, str]:
    """Write the lot file, the SUMO network and the vehicle types; check the reverse conversion."""
    sumo_dir = out_dir / "sumo"
    write_document(doc, sumo_dir / "lot.toml", header="The lot the evaluation ran on (fogpark-fog evaluate).")
    network = write_sumo_network(doc, sumo_dir, "lot")
    vtypes = write_vehicle_types(sumo_dir / "vtypes.add.xml")
    back, _notes = read_sumo_network(network.net_file, [network.parking_file], lot_id=str(doc["lot"]["id"]))
    a = {(e["from"], e["to"]): float(e["length_m"]) for e in doc["graph"]["edges"]}
    b = {(e["from"], e["to"]): float(e["length_m"]) for e in back["graph"]["edges"]}
    same_spots = [s["id"] for s in doc["spots"]] == [s["id"] for s in back["spots"]]
    worst = max((abs(a[k] - b[k]) for k in a if k in b), default=0.0)
    round_trip = (
        f"lot → SUMO → lot: {'same' if same_spots else 'DIFFERENT'} {len(back['spots'])} spots, "
        f"{'same' if a.keys() == b.keys() else 'DIFFERENT'} {len(b)} lanes, largest length change {worst:.3f} m"
    )
    return SimSetup(doc, network, vtypes), round_trip


def run_evaluation(
    plan: EvaluationPlan,
    doc: LotDocument,
    out_dir: Path,
    *,
    jobs: int = 1,
    lot_name: str = "",
    progress: bool = True,
    stream: TextIO | None = None,
    on_ready: Callable[[SimSetup], None] | None = None,
) -> EvaluationResults:
    """Run every sweep of ``plan`` on the lot ``doc``; raw results and summaries, no files but the network."""
    started = time.monotonic()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    setup, round_trip = prepare_network(doc, out_dir)
    if on_ready is not None:
        on_ready(setup)
    tasks = _tasks(plan)
    bar = Progress(len(tasks), stream=stream, enabled=progress)
    jobs = max(1, min(jobs, len(tasks)))
    done = _execute(tasks, setup, jobs, bar)
    results = EvaluationResults(
        plan=plan,
        lot_name=lot_name or str(doc["lot"].get("name", doc["lot"]["id"])),
        lot_spots=len(doc["spots"]),
        out_dir=out_dir,
        network_files={
            "net": os.path.relpath(setup.network.net_file, out_dir),
            "parking": os.path.relpath(setup.network.parking_file, out_dir),
            "lot": "sumo/lot.toml",
        },
        round_trip=round_trip,
        probes=[r for t, r, e in done if t.kind == "probe" and r is not None],
        published=[r for t, r, e in done if t.kind == "published" and r is not None],
        months=[r for t, r, e in done if t.kind == "revenue" and r is not None],
        days=[r for t, r, e in done if t.kind == "mcpr" and r is not None],
        errors=[f"{t.label}: {e}" for t, _r, e in done if e is not None],
        wall_s=0.0,
        jobs=jobs,
    )
    results.summarise()
    results.wall_s = time.monotonic() - started
    return results
