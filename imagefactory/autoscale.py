"""Azure Monitor autoscale for scale sets: Azure's limits, the rules a setting must follow,
and the profiles the program sends. Pure, no Pulumi.

A scale set's `autoscale` becomes one autoscale setting (Microsoft.Insights/autoscaleSettings)
targeting it: a default profile (minimum, maximum, default capacity, a CPU rule to scale out
and one to scale in) and, per schedule, a recurring profile that starts at the schedule's
start and one that starts at its end and brings back the default capacity, as the Azure
portal writes a schedule with an end time.

Azure's rules, with their sources:

- at most 20 profiles per setting and 10 rules per profile; one setting per resource
  (Azure Monitor autoscale, "Autoscale settings schema",
  https://learn.microsoft.com/azure/azure-monitor/autoscale/autoscale-understanding-settings);
- a metric trigger's timeWindow is 5 minutes to 12 hours, its timeGrain 1 minute to 12 hours;
  a scale action's cooldown 1 minute to 1 week (REST MetricTrigger and ScaleAction; the same
  words in pulumi_azure_native.monitor MetricTriggerArgs and ScaleActionArgs);
- minimum <= default <= maximum, inclusive bounds; the default is used when metrics are
  missing and the current count is below it (ScaleCapacity);
- a recurring profile repeats weekly: days Sunday to Saturday, hours 0-23, minutes, and a
  Windows time zone name (RecurrentSchedule; `facts/time-zones.json`);
- a scale set of an Azure Compute Gallery image grows to at most 1,000 instances, beyond
  100 only with singlePlacementGroup false ("Working with large scale sets",
  https://learn.microsoft.com/azure/virtual-machine-scale-sets/
  virtual-machine-scale-sets-placement-groups);
- "Percentage CPU" is the scale set's host metric, averaged over instances, needing no agent
  ("Autoscale with host-based metrics",
  https://learn.microsoft.com/azure/virtual-machine-scale-sets/
  virtual-machine-scale-sets-autoscale-overview).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

TIME_ZONES_FILE = Path(__file__).resolve().parent / "facts" / "time-zones.json"

MAX_PROFILES = 20
MAX_RULES_PER_PROFILE = 10
MAX_INSTANCES = 1000
"""A Uniform scale set of a gallery image with singlePlacementGroup false."""
CPU_METRIC = "Percentage CPU"
CPU_NAMESPACE = "microsoft.compute/virtualmachinescalesets"
TIME_GRAIN = "PT1M"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DEFAULT_PROFILE = "default"
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_-]{0,38}[A-Za-z0-9])?$")


@cache
def time_zones() -> tuple[str, ...]:
    return tuple(json.loads(TIME_ZONES_FILE.read_text())["timeZones"])


def parse_time(text: str) -> tuple[int, int] | None:
    match = _TIME.match(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class Capacity:
    minimum: int
    maximum: int
    default: int

    def azure(self) -> dict[str, str]:
        # ScaleCapacity takes its numbers as strings.
        return {
            "minimum": str(self.minimum),
            "maximum": str(self.maximum),
            "default": str(self.default),
        }


@dataclass(frozen=True)
class Cpu:
    scale_out_above: int
    scale_in_below: int
    minutes: int
    step: int
    cooldown_minutes: int


@dataclass(frozen=True)
class Window:
    name: str
    days: tuple[str, ...]
    start: str
    end: str
    time_zone: str
    capacity: Capacity


# --- rules -----------------------------------------------------------------------------------


def capacity_problems(key: str, capacity: Capacity) -> list[str]:
    c = capacity
    if c.minimum <= c.default <= c.maximum:
        return []
    return [
        f"{key}: minimum {c.minimum}, default {c.default}, maximum {c.maximum}; autoscale "
        "needs minimum <= default <= maximum (the default is the count used when metrics "
        "are missing)"
    ]


def cpu_problems(key: str, cpu: Cpu) -> list[str]:
    if cpu.scale_in_below < cpu.scale_out_above:
        return []
    return [
        f"{key}: scaleInBelow {cpu.scale_in_below} is not below scaleOutAbove "
        f"{cpu.scale_out_above}; with no margin between them every scale-in would be "
        "followed by a scale-out (Azure then skips the scale-in: 'flapping'); leave a margin, "
        "e.g. scaleOutAbove: 70 and scaleInBelow: 30"
    ]


def schedule_problems(key: str, windows: Sequence[Window]) -> list[str]:
    """Names, times, time zones, overlaps and the profile limit of a setting's schedules."""
    problems: list[str] = []
    needed = 1 + 2 * len(windows)
    if needed > MAX_PROFILES:
        most = (MAX_PROFILES - 1) // 2
        problems.append(
            f"{key}: {len(windows)} schedules need {needed} autoscale profiles (the default, "
            f"and a start and an end profile per schedule); Azure allows {MAX_PROFILES} per "
            f"autoscale setting, so at most {most} schedules"
        )
    seen: dict[str, int] = {}
    zones = time_zones()
    for n, w in enumerate(windows):
        at = f"{key}[{n}]"
        if not _NAME.match(w.name) or w.name.lower() == DEFAULT_PROFILE:
            problems.append(
                f"{at}.name: {w.name!r} is not a schedule name; use 1-40 letters, digits, '-' "
                f"and '_', starting and ending with a letter or digit, other than "
                f"{DEFAULT_PROFILE!r}"
            )
        elif w.name.lower() in seen:
            problems.append(
                f"{at}.name: {w.name!r} is already the name of schedules[{seen[w.name.lower()]}]"
            )
        seen.setdefault(w.name.lower(), n)
        start, end = parse_time(w.start), parse_time(w.end)
        for field, value, parsed in (("start", w.start, start), ("end", w.end, end)):
            if parsed is None:
                problems.append(
                    f"{at}.{field}: {value!r} is not a time of day; use HH:MM on the 24-hour "
                    "clock, e.g. '08:00' (quote it: YAML reads 08:00 unquoted as a number)"
                )
        if start is not None and end is not None and end <= start:
            problems.append(
                f"{at}.end: {w.end!r} is not after start {w.start!r}; a schedule runs within "
                "one day (split an overnight window into two schedules)"
            )
        if w.time_zone not in zones:
            close = difflib.get_close_matches(w.time_zone, zones, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(
                f"{at}.timeZone: {w.time_zone!r} is not a time zone autoscale knows{hint}; use "
                "a Windows time zone name such as 'UTC', 'W. Europe Standard Time' or "
                "'Eastern Standard Time' (az monitor autoscale profile list-timezones)"
            )
        problems += capacity_problems(at, w.capacity)
    problems += _overlaps(key, windows)
    return problems


def _overlaps(key: str, windows: Sequence[Window]) -> list[str]:
    """Two schedules on one day whose hours intersect: whichever started last would win and
    the other's end would cut it short, so they must not overlap."""
    problems: list[str] = []
    for i, a in enumerate(windows):
        for j in range(i):
            b = windows[j]
            if a.time_zone != b.time_zone:
                continue  # compared only in one zone; different zones are the user's call
            times = [parse_time(t) for t in (a.start, a.end, b.start, b.end)]
            if any(t is None for t in times):
                continue
            a_start, a_end, b_start, b_end = times
            days = sorted(set(a.days) & set(b.days), key=WEEKDAYS.index)
            assert a_start and a_end and b_start and b_end
            if days and a_start < b_end and b_start < a_end:
                problems.append(
                    f"{key}[{i}]: {a.name!r} ({a.start}-{a.end}) overlaps {b.name!r} "
                    f"({b.start}-{b.end}) on {', '.join(days)}; one profile runs at a time, so "
                    "schedules must not overlap"
                )
    return problems


def most_instances(capacity: Capacity, windows: Sequence[Window]) -> int:
    return max([capacity.maximum, *(w.capacity.maximum for w in windows)])


# --- what Azure receives -------------------------------------------------------------------


def _minutes(n: int) -> str:
    """ISO 8601 duration: PT10M, PT2H, P7D."""
    if n % (24 * 60) == 0:
        return f"P{n // (24 * 60)}D"
    if n % 60 == 0:
        return f"PT{n // 60}H"
    return f"PT{n}M"


def rules(cpu: Cpu, target: Any) -> list[dict[str, Any]]:
    """Scale out above, in below: average CPU over `minutes`, `step` instances at a time.
    `target` is the scale set's id (a Pulumi Output in the program)."""
    out: list[dict[str, Any]] = []
    for direction, operator, threshold in (
        ("Increase", "GreaterThan", cpu.scale_out_above),
        ("Decrease", "LessThan", cpu.scale_in_below),
    ):
        out.append(
            {
                "metric_trigger": {
                    "metric_name": CPU_METRIC,
                    "metric_namespace": CPU_NAMESPACE,
                    "metric_resource_uri": target,
                    "time_grain": TIME_GRAIN,
                    "statistic": "Average",
                    "time_window": _minutes(cpu.minutes),
                    "time_aggregation": "Average",
                    "operator": operator,
                    "threshold": float(threshold),
                },
                "scale_action": {
                    "direction": direction,
                    "type": "ChangeCount",
                    "value": str(cpu.step),
                    "cooldown": _minutes(cpu.cooldown_minutes),
                },
            }
        )
    return out


def _recurrence(days: Sequence[str], at: str, zone: str) -> dict[str, Any]:
    parsed = parse_time(at)
    assert parsed is not None
    return {
        "frequency": "Week",
        "schedule": {
            # Azure's days are Sunday to Saturday; the config's order is kept.
            "days": list(days),
            "hours": [parsed[0]],
            "minutes": [parsed[1]],
            "time_zone": zone,
        },
    }


def profiles(
    capacity: Capacity, cpu: Cpu, windows: Sequence[Window], target: Any
) -> list[dict[str, Any]]:
    """The setting's profiles, as keyword arguments of AutoscaleProfileArgs."""
    cpu_rules = rules(cpu, target)
    out = [{"name": DEFAULT_PROFILE, "capacity": capacity.azure(), "rules": cpu_rules}]
    for w in windows:
        out.append(
            {
                "name": w.name,
                "capacity": w.capacity.azure(),
                "rules": cpu_rules,
                "recurrence": _recurrence(w.days, w.start, w.time_zone),
            }
        )
        # A recurring profile has no end: the next one to start ends it. This one brings the
        # default capacity back at the schedule's end (what the portal writes for an end time).
        out.append(
            {
                "name": f"{w.name}-end",
                "capacity": capacity.azure(),
                "rules": cpu_rules,
                "recurrence": _recurrence(w.days, w.end, w.time_zone),
            }
        )
    return out


def summary(capacity: Capacity, cpu: Cpu, windows: Sequence[Window]) -> str:
    """One line for the plan: 'autoscale 2-10 (default 3), CPU > 70% +1, < 30% -1 over 10 min;
    business-hours Mon-Fri 08:00-18:00 W. Europe Standard Time 4-12'."""
    text = (
        f"autoscale {capacity.minimum}-{capacity.maximum} (default {capacity.default}), CPU > "
        f"{cpu.scale_out_above}% +{cpu.step}, < {cpu.scale_in_below}% -{cpu.step} over "
        f"{cpu.minutes} min"
    )
    for w in windows:
        days = _days(w.days)
        text += (
            f"; {w.name} {days} {w.start}-{w.end} {w.time_zone} "
            f"{w.capacity.minimum}-{w.capacity.maximum}"
        )
    return text


def _days(days: Sequence[str]) -> str:
    short = [d[:3] for d in days]
    indexes = [WEEKDAYS.index(d) for d in days]
    if len(indexes) > 2 and indexes == list(range(indexes[0], indexes[0] + len(indexes))):
        return f"{short[0]}-{short[-1]}"
    return ",".join(short)
