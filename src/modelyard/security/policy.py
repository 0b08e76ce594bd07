"""Who may do what: roles, permissions, and the permission every server operation needs.

Pure tables and functions, no I/O. The REST and gRPC adapters name each route by an
*operation* (``model.infer``, ``repository.load``...); :data:`OPERATIONS` says which
:class:`Permission` it needs, and a role holds a permission when it ranks at least as high:

    viewer < predictor < deployer < admin

=============  ======================================================================
permission     operations
=============  ======================================================================
``public``     ``server.live``, ``server.ready`` (probes cannot carry keys)
``view``       metadata, readiness of a model, server version and health, /metrics,
               the repository index, the OpenAPI document, the dashboard
``predict``    inference on any protocol (OIP v2 REST and gRPC, MLflow, v1, TorchServe)
``deploy``     feedback labels, repository load/unload, alias moves, rollouts
``admin``      API keys, deletes; and any operation this table does not name
=============  ======================================================================

An operation missing from the table needs ``admin``: a route added without a policy entry is
closed, not open.

>>> allows(Role.PREDICTOR, required("model.infer"))
True
>>> allows(Role.VIEWER, required("model.infer"))
False
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum
from types import MappingProxyType

from modelyard.errors import InvalidInputError

__all__ = [
    "GRPC_OPERATIONS",
    "OPERATIONS",
    "Permission",
    "Role",
    "allows",
    "parse_role",
    "required",
]


class Role(IntEnum):
    """What a key may do; each role includes every lower one."""

    VIEWER = 1
    PREDICTOR = 2
    DEPLOYER = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        """The name users type and see: ``viewer``, ``predictor``..."""
        return self.name.lower()


class Permission(IntEnum):
    """What an operation needs. The value is the rank of the lowest role holding it."""

    PUBLIC = 0
    VIEW = 1
    PREDICT = 2
    DEPLOY = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def least_role(self) -> Role | None:
        """The lowest role holding this permission; None for a public one."""
        return None if self is Permission.PUBLIC else Role(self.value)


OPERATIONS: Mapping[str, Permission] = MappingProxyType({
    # Orchestrators' probes and the container HEALTHCHECK cannot carry keys.
    "server.live": Permission.PUBLIC,
    "server.ready": Permission.PUBLIC,
    # Reading: metadata and metrics.
    "server.metadata": Permission.VIEW,
    "server.version": Permission.VIEW,
    "server.health": Permission.VIEW,  # MLflow's /ping and /health
    "server.metrics": Permission.VIEW,
    "server.openapi": Permission.VIEW,
    "model.metadata": Permission.VIEW,
    "model.ready": Permission.VIEW,
    "model.status": Permission.VIEW,  # TF-Serving's GET /v1/models/{name}
    "model.rollout": Permission.VIEW,  # GET /v2/models/{name}/rollout: live rollout stats
    "repository.index": Permission.VIEW,
    "dashboard.view": Permission.VIEW,
    # Inference.
    "model.infer": Permission.PREDICT,
    "server.null": Permission.PREDICT,  # the benchmark's fixed answer, shaped like inference
    # Changing what is served.
    "model.feedback": Permission.DEPLOY,
    "repository.load": Permission.DEPLOY,
    "repository.unload": Permission.DEPLOY,
    "alias.move": Permission.DEPLOY,
    "rollout.manage": Permission.DEPLOY,
    # Administration.
    "keys.manage": Permission.ADMIN,
    "audit.read": Permission.ADMIN,  # the dashboard's /audit page
    "model.delete": Permission.ADMIN,
})
"""The permission each named operation needs."""

GRPC_OPERATIONS: Mapping[str, str] = MappingProxyType({
    "ServerLive": "server.live",
    "ServerReady": "server.ready",
    "ServerMetadata": "server.metadata",
    "ModelReady": "model.ready",
    "ModelMetadata": "model.metadata",
    "ModelInfer": "model.infer",
    "RepositoryIndex": "repository.index",
    "RepositoryModelLoad": "repository.load",
    "RepositoryModelUnload": "repository.unload",
})
"""The operation of each method of ``inference.GRPCInferenceService`` (by its short name)."""


def required(operation: str) -> Permission:
    """The permission ``operation`` needs; ``admin`` for an operation the table does not name.

    >>> required("model.feedback").label
    'deploy'
    >>> required("something.new").label
    'admin'
    """
    return OPERATIONS.get(operation, Permission.ADMIN)


def allows(role: Role, permission: Permission) -> bool:
    """Whether ``role`` holds ``permission``.

    >>> allows(Role.DEPLOYER, Permission.PREDICT), allows(Role.DEPLOYER, Permission.ADMIN)
    (True, False)
    """
    return role.value >= permission.value


def parse_role(text: object) -> Role:
    """The role named ``text`` (case-insensitive).

    >>> parse_role("Predictor")
    <Role.PREDICTOR: 2>
    """
    if isinstance(text, Role):
        return text
    if isinstance(text, str):
        try:
            return Role[text.strip().upper()]
        except KeyError:
            pass
    names = ", ".join(r.label for r in Role)
    raise InvalidInputError(
        f"The role must be one of {names}. Got {text!r} instead.",
        hint="Example: --role predictor (inference and metadata).",
    )
