"""Keelwatch's pySigma processing pipeline: Sigma log sources and field names → the event schema.

Each supported log source (see ``LOG_SOURCES``) does two things to a rule:

1. maps the rule's field names onto Keelwatch event fields (native names under the source's
   namespace for Kubernetes audit, CloudTrail and GCP; ECS names for the Linux categories);
2. ANDs a log-source condition onto the rule, written in Keelwatch fields (``event.dataset`` and
   a few native keys), which the engine indexes on.

Field names may use two path forms the engine resolves (see ``keelwatch.detect.matchers``):
``a.b[].c`` walks into the list kept whole at ``a.b`` and yields each element's ``c``;
``a.b{}`` is the object flattened under ``a.b.`` rendered back as JSON text.

Rules for ``product: keelwatch`` use Keelwatch field names as they are; ``service:`` (if given)
is the ``event.dataset`` they apply to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaTransformationError
from sigma.processing.conditions import LogsourceCondition
from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
from sigma.processing.transformations.base import (
    ConditionTransformation,
    DetectionItemTransformation,
)
from sigma.processing.transformations.fields import FieldFunctionTransformation
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaLogSource, SigmaRule
from sigma.types import SigmaBool, SigmaString

LOGSOURCE_DETECTION = "_keelwatch_logsource"
# Alternatives (OR) of field → value(s) maps (AND), in Sigma's own definition syntax.
Alternatives = Sequence[Mapping[str, Any]]
FieldNamer = Callable[[str], str | list[str] | None]


@dataclass(frozen=True)
class LogSource:
    """One Sigma log source Keelwatch supports."""

    name: str
    product: str
    category: str | None
    service: str | None
    alternatives: Alternatives
    fields: Mapping[str, str | list[str]] = field(default_factory=dict)
    # Called for fields not in ``fields``; None keeps the name, a raise rejects the rule.
    default: FieldNamer | None = None
    sources: str = ""  # which Keelwatch parsers feed it, for docs

    def condition(self) -> LogsourceCondition:
        return LogsourceCondition(
            category=self.category, product=self.product, service=self.service
        )


def _prefixed(prefix: str) -> FieldNamer:
    def name(field_name: str) -> str:
        return field_name if field_name.startswith(prefix) else prefix + field_name

    return name


def _strict(source: str, mapping: Mapping[str, Any]) -> FieldNamer:
    known = ", ".join(sorted(mapping))

    def name(field_name: str) -> str:
        raise SigmaTransformationError(
            f"field {field_name!r} is not available from {source} sources (known: {known})"
        )

    return name


# Cloud Audit Log field names, so a rule's mis-cased name (protoPayload.Servicename) still maps.
_AUDITLOG_KEYS = {
    key.lower(): key
    for key in (
        "serviceName", "methodName", "resourceName", "authenticationInfo", "authorizationInfo",
        "requestMetadata", "request", "response", "metadata", "status", "resourceLocation",
        "serviceData", "numResponseItems", "policyViolationInfo", "resourceOriginalState",
    )
}  # fmt: skip


def _gcp_field(field_name: str) -> str:
    name = field_name.removeprefix("data.")
    if name.startswith("gcp.audit."):
        return name
    head, _, rest = name.partition(".")
    if head == "protoPayload" and rest:
        first, dot, tail = rest.partition(".")
        name = f"protoPayload.{_AUDITLOG_KEYS.get(first.lower(), first)}{dot}{tail}"
    return "gcp.audit." + name


_K8S = "kubernetes.audit."
_POD_SPEC = _K8S + "requestObject.spec."
_CT = "aws.cloudtrail."

PROCESS_FIELDS = {
    "Image": "process.executable",
    "CommandLine": "process.command_line",
    "ParentImage": "process.parent.executable",
    "ParentCommandLine": "process.parent.command_line",
    "CurrentDirectory": "process.working_directory",
    "User": "user.name",
    "ProcessId": "process.pid",
    "ParentProcessId": "process.parent.pid",
    "ProcessGuid": "process.entity_id",
    "ParentProcessGuid": "process.parent.entity_id",
}
NETWORK_FIELDS = {
    "Image": "process.executable",
    "ParentImage": "process.parent.executable",
    "User": "user.name",
    "ProcessId": "process.pid",
    "ProcessGuid": "process.entity_id",
    "Protocol": "network.transport",
    "SourceIp": "source.ip",
    "SourcePort": "source.port",
    "SourceHostname": "source.domain",
    "DestinationIp": "destination.ip",
    "DestinationPort": "destination.port",
    "DestinationHostname": "destination.domain",
    "Initiated": "Initiated",  # replaced by _InitiatedCondition before mapping
}
# Initiated: true/false as what each source says about who opened the connection.
INITIATED = {
    True: [
        {"network.direction": "egress"},
        {"tetragon.type": "process_connect"},
        {"tetragon.function_name|contains": "connect"},
    ],
    False: [
        {"network.direction": "ingress"},
        {"tetragon.type": "process_accept"},
        {"tetragon.function_name|contains": "accept"},
    ],
}

LOG_SOURCES: tuple[LogSource, ...] = (
    LogSource(
        "kubernetes/audit", "kubernetes", None, "audit",
        [{"event.dataset": "kubernetes.audit"}],
        {
            "apiGroup": _K8S + "objectRef.apiGroup",
            "hostPath": _POD_SPEC + "volumes[].hostPath.path",
            "capabilities": [
                _POD_SPEC + "containers[].securityContext.capabilities.add",
                _POD_SPEC + "initContainers[].securityContext.capabilities.add",
            ],
        },
        _prefixed(_K8S),
        "k8s-audit (API server audit, EKS, GKE, AKS)",
    ),
    LogSource(
        "aws/cloudtrail", "aws", None, "cloudtrail",
        [{"event.dataset": "aws.cloudtrail"}],
        {
            "requestParameters": _CT + "requestParameters{}",
            "responseElements": _CT + "responseElements{}",
            "additionalEventData": _CT + "additionalEventData{}",
            "requestParameters.containerDefinitions.command": (
                _CT + "requestParameters.containerDefinitions[].command"
            ),
        },
        _prefixed(_CT),
        "cloudtrail",
    ),
    LogSource(
        "gcp/gcp.audit", "gcp", None, "gcp.audit",
        [{"event.dataset": "gcp.audit"}],
        {"gcp.audit.method_name": "gcp.audit.protoPayload.methodName"},
        _gcp_field,
        "gcp-audit (Cloud Audit Logs; GKE entries are kubernetes/audit)",
    ),
    LogSource(
        "linux/process_creation", "linux", "process_creation", None,
        [
            {"event.dataset": "tetragon.events", "tetragon.type": "process_exec"},
            {
                "event.dataset": "falco.alerts",
                "falco.output_fields.evt.type": ["execve", "execveat"],
            },
        ],
        PROCESS_FIELDS,
        _strict("linux/process_creation", PROCESS_FIELDS),
        "tetragon process_exec; falco alerts on execve/execveat",
    ),
    LogSource(
        "linux/network_connection", "linux", "network_connection", None,
        [
            {
                "event.dataset": "tetragon.events",
                "tetragon.type": ["process_connect", "process_accept"],
            },
            {
                "event.dataset": "tetragon.events",
                "tetragon.type": "process_kprobe",
                "tetragon.function_name|contains": ["connect", "accept"],
            },
            {"event.dataset": "hubble.flows"},
        ],
        NETWORK_FIELDS,
        _strict("linux/network_connection", NETWORK_FIELDS),
        "tetragon connect/accept events and kprobes; hubble flows",
    ),
)  # fmt: skip

KEELWATCH_PRODUCT = "keelwatch"


def log_source_for(logsource: SigmaLogSource) -> LogSource | None:
    """The supported log source a rule's ``logsource`` selects, or None."""
    if logsource.product == KEELWATCH_PRODUCT:
        alternatives = [{"event.dataset": logsource.service}] if logsource.service else []
        return LogSource("keelwatch", KEELWATCH_PRODUCT, None, logsource.service, alternatives)
    for source in LOG_SOURCES:
        if logsource in SigmaLogSource(source.category, source.product, source.service):
            return source
    return None


# Keelwatch's shared field names (docs/schema.md) and native namespaces: a correlation's
# group-by name that is one of them is read as it is, whatever the rule's log source.
SHARED_FIELDS = frozenset(
    {
        "@timestamp", "message", "event.id", "event.dataset", "event.kind", "event.action",
        "event.outcome", "event.severity", "event.category", "event.type", "event.reason",
        "orchestrator.cluster.name", "orchestrator.namespace", "orchestrator.resource.type",
        "orchestrator.resource.name", "orchestrator.resource.subresource",
        "orchestrator.api_version", "kubernetes.namespace", "kubernetes.pod.name",
        "kubernetes.pod.uid", "kubernetes.node.name", "container.id", "container.name",
        "container.image.name", "user.name", "user.id", "user.group.name",
        "user.effective.name", "source.ip", "source.port", "source.domain", "destination.ip",
        "destination.port", "destination.domain", "network.transport", "network.protocol",
        "network.direction", "network.type", "process.pid", "process.name",
        "process.executable", "process.command_line", "process.args", "process.entity_id",
        "process.working_directory", "process.parent.pid", "process.parent.name",
        "process.parent.executable", "process.parent.command_line", "process.parent.entity_id",
        "file.path", "host.name", "user_agent.original", "cloud.provider", "cloud.account.id",
        "cloud.region", "cloud.project.id", "url.original", "http.request.method",
        "http.response.status_code", "dns.question.name",
    }
)  # fmt: skip
NATIVE_PREFIXES = (
    "kubernetes.audit.", "kubernetes.labels.", "kubernetes.annotations.", "kubernetes.event.",
    "falco.", "tetragon.", "hubble.", "aws.cloudtrail.", "gcp.audit.", "container_log.",
)  # fmt: skip


def correlation_field(source_name: str, field: str) -> str:
    """A correlation's group-by (or alias) field for the events of a rule of ``source_name``.

    A Keelwatch field name (shared or native) is read as it is, so one name
    (``kubernetes.pod.name``) joins events of different log sources; any other name is the
    rule's own Sigma name and is mapped like the rule's fields (``User`` → ``user.name``,
    ``user.username`` → ``kubernetes.audit.user.username``).
    """
    if field in SHARED_FIELDS or field.startswith(NATIVE_PREFIXES):
        return field
    source = next((item for item in LOG_SOURCES if item.name == source_name), None)
    if source is None:
        return field
    mapped = source.fields.get(field)
    if isinstance(mapped, str):
        return mapped
    if mapped is not None:
        raise SigmaTransformationError(f"{field!r} maps to several fields; use an alias")
    found = source.default(field) if source.default is not None else None
    return found if isinstance(found, str) else field


def supported_names() -> list[str]:
    return [source.name for source in LOG_SOURCES] + ["keelwatch[/<event.dataset>]"]


@dataclass
class _AddLogSourceCondition(ConditionTransformation):
    """AND the log source's alternatives onto every condition of the rule."""

    alternatives: list[dict[str, Any]] = field(default_factory=list)

    def apply(self, rule: SigmaRule | SigmaCorrelationRule) -> None:
        if isinstance(rule, SigmaRule) and self.alternatives:
            definition: Any = (
                self.alternatives[0] if len(self.alternatives) == 1 else self.alternatives
            )
            detection = SigmaDetection.from_definition(definition)
            rule.detection.detections[LOGSOURCE_DETECTION] = detection
            self.processing_item_applied(detection)
            super().apply(rule)

    def apply_condition(self, cond: Any) -> None:
        cond.condition = (
            f"{LOGSOURCE_DETECTION} and ({cond.condition})"
            if cond.condition
            else LOGSOURCE_DETECTION
        )


@dataclass
class _InitiatedCondition(DetectionItemTransformation):
    """``Initiated: 'true'`` → who opened the connection, as each network source says it."""

    def apply_detection_item(
        self, detection_item: SigmaDetectionItem
    ) -> SigmaDetection | SigmaDetectionItem | None:
        if detection_item.field != "Initiated":
            return None
        if detection_item.modifiers or len(detection_item.value) != 1:
            raise SigmaTransformationError("Initiated takes one plain value, 'true' or 'false'")
        value = detection_item.value[0]
        if isinstance(value, SigmaBool):
            flag = bool(value)
        elif isinstance(value, SigmaString) and str(value).lower() in ("true", "false"):
            flag = str(value).lower() == "true"
        else:
            raise SigmaTransformationError(f"Initiated must be 'true' or 'false', not {value}")
        definition: Any = INITIATED[flag]  # pySigma accepts a list of maps (OR-ed)
        return SigmaDetection.from_definition(definition)


@cache
def keelwatch_pipeline() -> ProcessingPipeline:
    """The shared pipeline for every supported log source (built once, reused per rule)."""
    return build_pipeline()


def build_pipeline() -> ProcessingPipeline:
    """A new pipeline object (a backend that merges pipelines needs one of its own)."""
    items: list[ProcessingItem] = []
    for source in LOG_SOURCES:
        ident = "keelwatch_" + source.name.replace("/", "_").replace(".", "_")
        mapping: dict[str | None, str | list[str]] = {k: v for k, v in source.fields.items()}
        default: Any = source.default or (lambda name: name)  # None (keywords) passes through
        steps: list[tuple[str, Any]] = [
            ("fields", FieldFunctionTransformation(mapping=mapping, transform_func=default)),
        ]
        if source.name == "linux/network_connection":  # after mapping: it adds mapped fields
            steps.append(("initiated", _InitiatedCondition()))
        alternatives = [dict(alt) for alt in source.alternatives]
        steps.append(("logsource", _AddLogSourceCondition(alternatives=alternatives)))
        for suffix, transformation in steps:
            items.append(
                ProcessingItem(
                    transformation,
                    rule_conditions=[source.condition()],
                    identifier=f"{ident}_{suffix}",
                )
            )
    return ProcessingPipeline(items=items, name="keelwatch")


def keelwatch_only_pipeline(dataset: str | None) -> ProcessingPipeline:
    """For ``product: keelwatch`` rules: only the dataset condition, field names unchanged."""
    alternatives = [{"event.dataset": dataset}] if dataset else []
    item = ProcessingItem(
        _AddLogSourceCondition(alternatives=alternatives), identifier="keelwatch_native"
    )
    return ProcessingPipeline(items=[item], name="keelwatch-native")


def pipeline_for(logsource: SigmaLogSource) -> ProcessingPipeline | None:
    """The pipeline to apply to a rule with this log source; None if it is not supported."""
    if logsource.product == KEELWATCH_PRODUCT:
        return keelwatch_only_pipeline(logsource.service)
    return keelwatch_pipeline() if log_source_for(logsource) is not None else None
