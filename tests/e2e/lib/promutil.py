"""Prometheus helpers for test_alerts.py: parse Envoy's /stats/prometheus text, find the metric
names and label matchers a PromQL expression uses, turn scraped snapshots into promtool input
series, and locate promtool (Debian package `prometheus`; `make e2e-tools` installs it)."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field

PROMTOOL_MISSING = (
    "promtool not found on PATH: run `make e2e-tools` (as root: apt-get update && "
    "apt-get install -y --no-install-recommends prometheus), or set PROMTOOL"
)

_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
# Metric names this project's rules and dashboard may use (recording rules contain ':').
METRIC_RE = re.compile(r"\b((?:lf_webhook_guard|envoy)_[a-zA-Z0-9_]+)\b")
SELECTOR_RE = re.compile(r"\b((?:lf_webhook_guard|envoy)_[a-zA-Z0-9_]+)\s*\{([^}]*)\}")
MATCHER_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
BY_RE = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


def find_promtool() -> str | None:
    import os

    explicit = os.environ.get("PROMTOOL")
    if explicit:
        return explicit if shutil.which(explicit) else None
    return shutil.which("promtool")


SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class Scrape:
    """One /stats/prometheus answer: counters and gauges (histogram parts skipped)."""

    types: dict[str, str] = field(default_factory=dict)
    samples: dict[SeriesKey, float] = field(default_factory=dict)

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}

    def labels_of(self, name: str) -> list[dict[str, str]]:
        return [dict(lbls) for n, lbls in self.samples if n == name]

    def counters(self) -> dict[SeriesKey, float]:
        return {k: v for k, v in self.samples.items() if self.types.get(k[0]) == "counter"}


def parse_scrape(text: str) -> Scrape:
    out = Scrape()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            out.types[name] = kind.strip()
            continue
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            raise ValueError(f"unparsable /stats/prometheus line: {line!r}")
        name, raw_labels, value = m.groups()
        if out.types.get(name) not in ("counter", "gauge"):
            continue  # histogram _bucket/_sum/_count lines
        labels = tuple(sorted(_LABEL_RE.findall(raw_labels or "")))
        out.samples[(name, labels)] = float(value)
    return out


def series_text(key: SeriesKey, extra: dict[str, str]) -> str:
    name, labels = key
    all_labels = dict(labels) | extra
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(all_labels.items()))
    return f"{name}{{{inner}}}"


def metric_names(expr: str) -> set[str]:
    """Metric names in expr (label matchers and by/on/... label lists left out)."""
    bare = re.sub(r"\{[^}]*\}", "{}", expr)
    bare = BY_RE.sub("", bare)
    return set(METRIC_RE.findall(bare))


def selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """[(metric name, [(label, op, value), ...])] for every `name{...}` in expr."""
    return [(name, MATCHER_RE.findall(body)) for name, body in SELECTOR_RE.findall(expr)]


def grouping_labels(expr: str) -> set[str]:
    return {lbl.strip() for group in BY_RE.findall(expr) for lbl in group.split(",") if lbl.strip()}


def check_expr_against_scrape(expr: str, scrape: Scrape, *, scrape_labels=("job", "instance"),
                              recorded: set[str] = frozenset()) -> list[str]:
    """Problems: metric names not in the scrape, matchers on labels the series lacks, equality
    matchers on values no scraped series has, grouping by labels no used series has."""
    problems = []
    names = metric_names(expr)
    if not names and not any(r in expr for r in recorded):
        problems.append(f"no lf_webhook_guard_/envoy_ series in {expr!r}")
    for name in names:
        if name not in scrape.names():
            problems.append(f"{name} is not in Envoy's /stats/prometheus output")
    for name, matchers in selectors(expr):
        series = scrape.labels_of(name)
        for label, op, value in matchers:
            if label == "__name__":
                continue
            have = {s[label] for s in series if label in s}
            if not have:
                problems.append(f"{name} has no label {label!r} (has {sorted({k for s in series for k in s})})")
            elif op == "=" and value not in have:
                problems.append(f'{name}{{{label}="{value}"}} matches no scraped series ({sorted(have)})')
            elif op == "=~":
                alternatives = value.split("|")
                missing = [a for a in alternatives if re.fullmatch(r"[a-z0-9_]+", a) and a not in have]
                if missing:
                    problems.append(f"{name}{{{label}=~...}}: {missing} match no scraped series")
    used_labels = {k for n in names for s in scrape.labels_of(n) for k in s} | set(scrape_labels)
    for label in grouping_labels(expr):
        if label not in used_labels:
            problems.append(f"groups by {label!r}, which no series in {sorted(names)} has")
    return problems
