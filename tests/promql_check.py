"""PromQL checks for rules and dashboards: parse with promql-parser, then walk the tree to find
every metric and every label an expression names, and report those that do not exist."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import promql_parser

# Grafana's macros and variables, replaced by something PromQL accepts before parsing.
GRAFANA_SUBSTITUTIONS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
LABEL_VALUES = re.compile(r"^label_values\((?P<expr>.+),\s*(?P<label>[A-Za-z_][A-Za-z0-9_]*)\)$")


def grafana_to_promql(expr: str) -> str:
    for macro, value in GRAFANA_SUBSTITUTIONS.items():
        expr = expr.replace(macro, value)
    return expr


@dataclass
class Names:
    """Metric names with the labels their selectors match on, and labels used in by/on/..."""

    selectors: list[tuple[str, set[str]]] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)


def _walk(node, names: Names) -> None:
    kind = type(node).__name__
    if kind == "VectorSelector":
        labels = {m.name for m in node.matchers.matchers} - {"__name__"}
        names.selectors.append((node.name, labels))
    elif kind == "MatrixSelector":
        _walk(node.vector_selector, names)
    elif kind in ("SubqueryExpr", "ParenExpr", "UnaryExpr"):
        _walk(node.expr, names)
    elif kind == "AggregateExpr":
        if node.modifier is not None:
            names.grouping |= set(node.modifier.labels)
        _walk(node.expr, names)
        if node.param is not None:
            _walk(node.param, names)
    elif kind == "BinaryExpr":
        modifier = node.modifier
        if modifier is not None:
            if modifier.matching is not None:
                names.grouping |= set(modifier.matching.labels)
            names.grouping |= set(modifier.group_labels or ())
        _walk(node.lhs, names)
        _walk(node.rhs, names)
    elif kind == "Call":
        for arg in node.args:
            _walk(arg, names)
    elif kind in ("NumberLiteral", "StringLiteral"):
        pass
    else:  # pragma: no cover - a node type this walker does not know yet
        raise AssertionError(f"unknown PromQL node {kind}")


def names_in(expr: str) -> Names:
    names = Names()
    _walk(promql_parser.parse(expr), names)
    return names


def violations(expr: str, known: Mapping[str, frozenset[str]], legend: str = "") -> list[str]:
    """Why `expr` does not query only metrics and labels that exist (empty: it does)."""
    try:
        names = names_in(expr)
    except (ValueError, RuntimeError) as error:
        return [f"does not parse: {error}"]
    problems = []
    available: set[str] = set()
    for metric, labels in names.selectors:
        if metric not in known:
            problems.append(f"unknown metric {metric}")
            continue
        available |= known[metric]
        problems += [f"{metric} has no label {label}" for label in sorted(labels - known[metric])]
    if not names.selectors:
        problems.append("queries no metric")
    problems += [f"no metric here has label {label}" for label in sorted(names.grouping - available)]
    problems += [
        f"legend names label {label} that no metric here has"
        for label in LEGEND_LABEL.findall(legend)
        if label not in available
    ]
    return problems


def dashboard_queries(dashboard: Mapping) -> Iterator[tuple[str, str, str]]:
    """(where, PromQL, legend) of every panel target and every query variable of a dashboard."""

    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield (
                    f"panel {panel.get('title')!r} {target.get('refId')}",
                    grafana_to_promql(target["expr"]),
                    target.get("legendFormat", ""),
                )
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = LABEL_VALUES.match(query)
        assert match, f"variable {variable['name']}: only label_values(metric, label) is checked, got {query}"
        yield f"variable {variable['name']}", match["expr"], "{{" + match["label"] + "}}"
