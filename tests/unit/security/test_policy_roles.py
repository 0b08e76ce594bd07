"""Roles, permissions and the operation table: who may do what."""

from __future__ import annotations

import pytest

from modelyard.errors import InvalidInputError
from modelyard.security.policy import (
    GRPC_OPERATIONS,
    OPERATIONS,
    Permission,
    Role,
    allows,
    parse_role,
    required,
)

# role -> the permissions it holds; written out, not derived from the ranks.
HOLDS = {
    Role.VIEWER: {Permission.PUBLIC, Permission.VIEW},
    Role.PREDICTOR: {Permission.PUBLIC, Permission.VIEW, Permission.PREDICT},
    Role.DEPLOYER: {Permission.PUBLIC, Permission.VIEW, Permission.PREDICT, Permission.DEPLOY},
    Role.ADMIN: set(Permission),
}


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.label)
@pytest.mark.parametrize("permission", list(Permission), ids=lambda p: p.label)
def test_allows(role: Role, permission: Permission) -> None:
    assert allows(role, permission) is (permission in HOLDS[role])


@pytest.mark.parametrize(("operation", "permission"), [
    ("server.live", Permission.PUBLIC),
    ("server.ready", Permission.PUBLIC),
    ("server.metadata", Permission.VIEW),
    ("server.metrics", Permission.VIEW),
    ("server.openapi", Permission.VIEW),
    ("server.health", Permission.VIEW),
    ("model.metadata", Permission.VIEW),
    ("repository.index", Permission.VIEW),
    ("model.infer", Permission.PREDICT),
    ("model.feedback", Permission.DEPLOY),
    ("repository.load", Permission.DEPLOY),
    ("repository.unload", Permission.DEPLOY),
    ("alias.move", Permission.DEPLOY),
    ("rollout.manage", Permission.DEPLOY),
    ("keys.manage", Permission.ADMIN),
    ("model.delete", Permission.ADMIN),
    ("", Permission.ADMIN),
    ("brand.new", Permission.ADMIN),
], ids=lambda v: v if isinstance(v, str) else None)
def test_required(operation: str, permission: Permission) -> None:
    assert required(operation) is permission


def test_only_the_probes_are_public() -> None:
    public = {op for op, p in OPERATIONS.items() if p is Permission.PUBLIC}
    assert public == {"server.live", "server.ready"}


def test_every_grpc_method_names_a_listed_operation() -> None:
    assert set(GRPC_OPERATIONS.values()) <= set(OPERATIONS)
    assert GRPC_OPERATIONS["ModelInfer"] == "model.infer"


def test_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        OPERATIONS["model.infer"] = Permission.PUBLIC  # type: ignore[index]


@pytest.mark.parametrize(("text", "role"), [
    ("viewer", Role.VIEWER), ("Predictor", Role.PREDICTOR), (" DEPLOYER ", Role.DEPLOYER),
    ("admin", Role.ADMIN), (Role.ADMIN, Role.ADMIN),
], ids=["viewer", "mixed-case", "spaces", "admin", "enum"])
def test_parse_role(text: object, role: Role) -> None:
    assert parse_role(text) is role


@pytest.mark.parametrize("text", ["root", "", None, 3], ids=["unknown", "empty", "none", "int"])
def test_parse_role_rejects(text: object) -> None:
    with pytest.raises(InvalidInputError,
                       match="role must be one of viewer, predictor, deployer, admin"):
        parse_role(text)


def test_least_role() -> None:
    assert Permission.PUBLIC.least_role is None
    assert [p.least_role for p in list(Permission)[1:]] == list(Role)
