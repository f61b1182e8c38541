"""Read a live cluster, read-only, with the official ``kubernetes`` Python client (extra ``k8s``).

Only ``list`` calls are made (the ``get``/``list`` verbs a read-only ClusterRole such as
``view`` grants), one per kind, across all namespaces or in one. Secrets are never read
(their data would come with them), so the Ingress TLS check runs only on files. A kind the
credentials may not list (HTTP 403) or the server does not serve (404) is skipped and
reported in :attr:`Snapshot.errors`; the other kinds are still read.

The client is imported lazily: ``knowbase diagnose FILE`` works without it.
"""

from __future__ import annotations

import json
from typing import Any

from knowbase.diagnose.inputs import Snapshot, _add_objects
from knowbase.diagnose.types import InputError
from knowbase.errors import InputFileError, KnowbaseError, ModelUnavailableError, UserError

# Kind -> (API class, list across namespaces, list in one namespace or None when cluster-scoped)
KINDS: dict[str, tuple[str, str, str | None]] = {
    "Pod": ("CoreV1Api", "list_pod_for_all_namespaces", "list_namespaced_pod"),
    "Event": ("CoreV1Api", "list_event_for_all_namespaces", "list_namespaced_event"),
    "Service": ("CoreV1Api", "list_service_for_all_namespaces", "list_namespaced_service"),
    "Endpoints": ("CoreV1Api", "list_endpoints_for_all_namespaces", "list_namespaced_endpoints"),
    "PersistentVolumeClaim": ("CoreV1Api", "list_persistent_volume_claim_for_all_namespaces",
                              "list_namespaced_persistent_volume_claim"),
    "Node": ("CoreV1Api", "list_node", None),
    "Deployment": ("AppsV1Api", "list_deployment_for_all_namespaces", "list_namespaced_deployment"),
    "ReplicaSet": ("AppsV1Api", "list_replica_set_for_all_namespaces", "list_namespaced_replica_set"),
    "StatefulSet": ("AppsV1Api", "list_stateful_set_for_all_namespaces", "list_namespaced_stateful_set"),
    "DaemonSet": ("AppsV1Api", "list_daemon_set_for_all_namespaces", "list_namespaced_daemon_set"),
    "Job": ("BatchV1Api", "list_job_for_all_namespaces", "list_namespaced_job"),
    "CronJob": ("BatchV1Api", "list_cron_job_for_all_namespaces", "list_namespaced_cron_job"),
    "Ingress": ("NetworkingV1Api", "list_ingress_for_all_namespaces", "list_namespaced_ingress"),
    "IngressClass": ("NetworkingV1Api", "list_ingress_class", None),
    "NetworkPolicy": ("NetworkingV1Api", "list_network_policy_for_all_namespaces", "list_namespaced_network_policy"),
    "HorizontalPodAutoscaler": ("AutoscalingV2Api", "list_horizontal_pod_autoscaler_for_all_namespaces",
                                "list_namespaced_horizontal_pod_autoscaler"),
    "PodDisruptionBudget": ("PolicyV1Api", "list_pod_disruption_budget_for_all_namespaces",
                            "list_namespaced_pod_disruption_budget"),
    "StorageClass": ("StorageV1Api", "list_storage_class", None),
}

MAX_ITEMS_PER_KIND = 5000
"""Most objects read per kind (``limit`` of the list call); larger clusters: give --namespace."""


def _client_module() -> Any:
    try:
        import kubernetes
    except ImportError as exc:
        raise ModelUnavailableError("reading a cluster needs the kubernetes client: pip install 'knowbase[k8s]'",
                                    package="kubernetes") from exc
    return kubernetes


def api_client_for(context: str | None) -> Any:
    """A ``kubernetes.client.ApiClient`` for a kubeconfig context (None: the current one).

    Raises:
        UserError: no kubeconfig, or no such context.
    """
    k8s = _client_module()
    try:
        return k8s.config.new_client_from_config(context=context)
    except (k8s.config.ConfigException, FileNotFoundError, OSError) as exc:
        raise UserError(f"cannot use kubeconfig context {context or '(current)'!r}: {exc}", field="context") from exc


def read_cluster(context: str | None = None, *, namespace: str | None = None, api_client: Any = None,
                 kinds: tuple[str, ...] | None = None) -> Snapshot:
    """Objects and events of a cluster, as ``kubectl get -o json`` would print them.

    Args:
        context: kubeconfig context (None: the current one); ignored when ``api_client`` is given.
        namespace: list only this namespace (cluster-scoped kinds are still listed).
        api_client: a ready ``kubernetes.client.ApiClient`` (tests use one pointed at a local
            server replaying recorded responses).
        kinds: the kinds to list (default: every kind in :data:`KINDS`).

    Raises:
        UserError: bad kubeconfig or context.
        KnowbaseError: the API server cannot be reached.
    """
    k8s = _client_module()
    api = api_client if api_client is not None else api_client_for(context)
    label = f"cluster:{context or 'current'}" + (f"/{namespace}" if namespace else "")
    snap = Snapshot(inputs=[label])
    apis: dict[str, Any] = {}
    for kind in kinds or tuple(KINDS):
        cls_name, all_ns, one_ns = KINDS[kind]
        if cls_name not in apis:
            apis[cls_name] = getattr(k8s.client, cls_name)(api)
        args: tuple[str, ...] = (namespace,) if namespace and one_ns else ()
        call = getattr(apis[cls_name], one_ns if args and one_ns else all_ns)
        try:
            resp = call(*args, limit=MAX_ITEMS_PER_KIND, _preload_content=False, _request_timeout=30)
            data = json.loads(resp.data)
        except k8s.client.exceptions.ApiException as exc:
            if exc.status in (403, 404):
                snap.errors.append(InputError(label, f"{kind}: HTTP {exc.status} {exc.reason} (skipped)"))
                continue
            raise KnowbaseError(f"{label}: listing {kind} failed: HTTP {exc.status} {exc.reason}",
                                status=exc.status) from exc
        except ValueError as exc:
            snap.errors.append(InputError(label, f"{kind}: the API server's answer is not JSON ({exc})"))
            continue
        except Exception as exc:  # urllib3 connection errors
            raise KnowbaseError(f"{label}: cannot reach the API server: {type(exc).__name__}: {exc}") from exc
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            snap.errors.append(InputError(label, f"{kind}: the answer holds no items"))
            continue
        try:
            _add_objects(snap, {"kind": f"{kind}List", "items": items}, f"{label}: {kind}")
        except InputFileError as exc:
            snap.errors.append(InputError(label, str(exc)))
    return snap
