"""Runtime security tools already decided: their alerts become Keelwatch alerts directly.

Falco alerts (``event.kind: alert``) keep their rule, priority and ATT&CK tags. Tracee
detections (``event.kind: alert`` from the tracee dataset) keep their signature's severity.
Tetragon events become alerts only when their TracingPolicy enforced something (SIGKILL,
override): most policies only observe (file access, connections), and those events are for
rules and searches, not alerts by themselves.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from keelwatch.model.alert import RuleInfo
from keelwatch.model.fields import Fields
from keelwatch.model.severity import HIGH, MEDIUM, severity_name

_ENFORCING_ACTIONS = ("SIGKILL", "OVERRIDE", "NOTIFY_ENFORCER")


def runtime_alerts(events: Sequence[Fields]) -> Iterator[tuple[RuleInfo, Sequence[Fields]]]:
    """(rule, [event]) for every event that a runtime tool already flagged."""
    for event in events:
        rule = _rule_for(event)
        if rule is not None:
            yield rule, (event,)


def _rule_for(event: Fields) -> RuleInfo | None:
    dataset = event.get("event.dataset")
    if event.get("event.kind") == "alert" and isinstance(dataset, str):
        origin = dataset.partition(".")[0]
        name = event.get("rule.name")
        if not isinstance(name, str) or not name:
            return None
        severity = event.get("event.severity")
        level = severity_name(severity if isinstance(severity, int) else MEDIUM)
        return RuleInfo(
            id=f"{origin}:{name}",
            title=name,
            level=level,
            severity=severity if isinstance(severity, int) else MEDIUM,
            techniques=_techniques(event),
            description=str(event.get("message") or "")[:1000],
            origin=origin,
        )
    policy = event.get("tetragon.policy_name")
    action = str(event.get("tetragon.action") or "")
    enforced = any(word in action for word in _ENFORCING_ACTIONS)
    if dataset == "tetragon.events" and isinstance(policy, str) and policy and enforced:
        return RuleInfo(
            id=f"tetragon:{policy}",
            title=f"Tetragon policy {policy} enforced",
            level=severity_name(HIGH),
            severity=HIGH,
            techniques=_techniques(event),
            description=f"TracingPolicy {policy} matched ({event.get('event.action')}, {action})",
            origin="tetragon",
        )
    return None


def _techniques(event: Fields) -> tuple[str, ...]:
    value = event.get("threat.technique.id")
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return (value,) if isinstance(value, str) else ()
