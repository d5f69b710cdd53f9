"""``/v1/incidents``: open, read, and run the response steps (the CLI's ``incident`` and ``respond``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field

from keyguard.api.deps import PrincipalDep, VaultDep
from keyguard.clock import parse_time
from keyguard.config import MAX_ID
from keyguard.incident.service import IncidentService
from keyguard.response.respond import respond
from keyguard.response.steps import Responder
from keyguard.vault.service import Vault

router = APIRouter(prefix="/v1/incidents", tags=["incidents"])

# Ids beyond a 64-bit integer are bad input (422), not an overflow in storage.
IncidentId = Annotated[int, Path(ge=1, le=MAX_ID)]


class IncidentCreate(BaseModel):
    """``POST /v1/incidents``: the leaked keys (``NAME`` or ``NAME@VERSION``) and when they leaked."""

    model_config = ConfigDict(extra="forbid", strict=True)

    keys: list[str] = Field(min_length=1)
    exposed_at: str
    detected_at: str | None = None
    source: str = ""
    jurisdictions: list[str] = []
    data_classes: list[str] = []
    flags: list[str] = []
    title: str | None = None


class RespondRequest(BaseModel):
    """``POST /v1/incidents/respond``: the whole playbook for the keys."""

    model_config = ConfigDict(extra="forbid", strict=True)

    keys: list[str] = Field(min_length=1)
    exposed_at: str
    jurisdictions: list[str] = []
    algorithm: str | None = None
    suspend_clients: bool = False


class StepRequest(BaseModel):
    """Options of the step endpoints."""

    model_config = ConfigDict(extra="forbid", strict=True)

    reversible: bool = False
    suspend_clients: bool = False
    algorithm: str | None = None


def _service(request: Request, vault: Vault) -> IncidentService:
    service: IncidentService | None = getattr(request.app.state, "incidents", None)
    if service is None:
        service = request.app.state.incidents = IncidentService(vault.engine, vault.clock)
    return service


def _refs(values: list[str]) -> list[tuple[str, int | None]]:
    from keyguard.vault.refs import parse_ref

    return [parse_ref(v) for v in values]


@router.post("", status_code=status.HTTP_201_CREATED, name="incident.open")
def open_incident(body: IncidentCreate, request: Request, vault: VaultDep, principal: PrincipalDep) -> dict[str, Any]:
    """Open an incident (``keyguard incident open``)."""
    refs = _refs(body.keys)
    with vault.audited(principal, "incident.open", refs[0][0], refs[0][1]) as ctx:
        principal.require("incident.write")
        for name, _version in refs:
            vault.key_info(name)
        incidents = _service(request, vault)
        incident = incidents.open(
            refs,
            parse_time(body.exposed_at),
            parse_time(body.detected_at) if body.detected_at else None,
            body.source,
            body.jurisdictions,
            body.data_classes,
            body.flags,
            title=body.title,
            actor=principal.actor,
        )
        ctx["reason"] = f"incident {incident.id}"
    return incident.to_dict(vault.clock.now())


@router.get("", name="incident.list")
def list_incidents(request: Request, vault: VaultDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    """Incidents, newest first."""
    with vault.audited(principal, "incident.list", None) as ctx:
        principal.require("incident.read")
        now = vault.clock.now()
        found = [i.to_dict(now) for i in _service(request, vault).list()]
        ctx["reason"] = f"{len(found)} incidents"
    return found


@router.get("/{incident_id}", name="incident.read")
def get_incident(incident_id: IncidentId, request: Request, vault: VaultDep, principal: PrincipalDep) -> dict[str, Any]:
    """One incident: phases, tasks, obligations with countdowns, timeline (SPEC §5)."""
    with vault.audited(principal, "incident.read", None) as ctx:
        ctx["reason"] = f"incident {incident_id}"
        principal.require("incident.read")
        return _service(request, vault).get(incident_id).to_dict(vault.clock.now())


@router.post("/{incident_id}/contain", name="incident.contain")
def contain(
    incident_id: IncidentId, body: StepRequest, request: Request, vault: VaultDep, principal: PrincipalDep
) -> dict[str, Any]:
    """Block the leaked versions on every node and record the proof that they are dead."""
    with vault.audited(principal, "incident.contain", None) as ctx:
        ctx["reason"] = f"incident {incident_id}"
        principal.require("key.compromise")
        return Responder(vault, _service(request, vault), principal).contain(
            incident_id, body.reversible, body.suspend_clients
        )


@router.post("/{incident_id}/assess", name="incident.assess")
def assess(incident_id: IncidentId, request: Request, vault: VaultDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    """Grade the risk from the audit log since the exposure."""
    with vault.audited(principal, "incident.assess", None) as ctx:
        ctx["reason"] = f"incident {incident_id}"
        principal.require("incident.write")
        return [a.to_dict() for a in Responder(vault, _service(request, vault), principal).assess(incident_id)]


@router.post("/{incident_id}/rotate", name="incident.rotate")
def rotate(
    incident_id: IncidentId, body: StepRequest, request: Request, vault: VaultDep, principal: PrincipalDep
) -> dict[str, Any]:
    """New version and re-wrap of every registered item."""
    with vault.audited(principal, "incident.rotate", None) as ctx:
        ctx["reason"] = f"incident {incident_id}"
        principal.require("key.rotate")
        return Responder(vault, _service(request, vault), principal).rotate(incident_id, body.algorithm)


@router.post("/respond", name="incident.respond")
def respond_all(body: RespondRequest, request: Request, vault: VaultDep, principal: PrincipalDep) -> dict[str, Any]:
    """The whole playbook (``keyguard respond``); ``attention`` lists what needs a person."""
    refs = _refs(body.keys)
    with vault.audited(principal, "incident.respond", refs[0][0], refs[0][1]) as ctx:
        principal.require("key.compromise")
        principal.require("key.rotate")
        result = respond(
            vault,
            _service(request, vault),
            principal,
            refs,
            parse_time(body.exposed_at),
            jurisdictions=body.jurisdictions,
            algorithm=body.algorithm,
            suspend_clients=body.suspend_clients,
        )
        ctx["reason"] = "respond to " + ", ".join(body.keys)[:200]
    return result.to_dict()
