"""Who may read a simulated agent: its device's SNMP credential, resolved from the inventory.

A device names one SNMP credential. For `snmp_v2c` the agent answers the community of that
credential (and no other); for `snmp_v3` it knows one USM user with the credential's
security level, protocols and keys. The secrets are resolved here from their references
(environment variable or owner-only file) and are handed to snmpsim through an owner-only
file, never on a command line where any local user could read them.

snmpsim has its own limits, checked here so that the error names the credential: USM keys
of at least 8 characters, and no blank in any name or key (its argument file is split on
white space).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from config.inventory.model import Credential, Device, Inventory
from config.secrets import resolve_secret

NO_AUTH, NO_PRIV = "NONE", "NONE"
LAB_SECRET_PREFIX = "KEYLINE_LAB_"


@dataclass(frozen=True)
class AgentAccess:
    """How a simulated agent is read: SNMPv2c with a community, or SNMPv3 with a USM user."""

    credential: str  # the inventory credential's key, for messages
    version: str  # "2c" or "3"
    community: SecretStr | None = None
    user: str | None = None
    auth_protocol: str = NO_AUTH  # MD5, SHA, SHA224 ... as in the inventory
    auth_key: SecretStr | None = None
    priv_protocol: str = NO_PRIV  # DES, AES, AES192, AES256, AES192B, AES256B
    priv_key: SecretStr | None = None


def _check_token(credential: str, name: str, value: str, min_length: int = 1) -> None:
    if len(value) < min_length:
        raise ValueError(f"credential {credential}: {name} must have at least {min_length} "
                         "characters for the simulator")
    if any(char.isspace() for char in value):
        raise ValueError(f"credential {credential}: the simulator cannot serve a {name} "
                         "that contains white space")


def _check_community(credential: str, community: str) -> None:
    # snmpsim takes the community from the data file's name
    _check_token(credential, "community", community)
    if "/" in community or "\0" in community or community == "self":
        raise ValueError(f"credential {credential}: the simulator cannot serve this "
                         "community (it must not contain '/' nor be 'self')")


def resolve_access(credential: Credential,
                   environ: Mapping[str, str] | None = None) -> AgentAccess:
    """Resolve an SNMP credential's secrets into what the simulated agent accepts."""
    if credential.kind == "snmp_v2c":
        community = resolve_secret(credential.secrets["community"], environ)
        _check_community(credential.key, community.get_secret_value())
        return AgentAccess(credential.key, "2c", community=community)
    if credential.kind != "snmp_v3":
        raise ValueError(f"credential {credential.key} is {credential.kind}, not SNMP")
    params = credential.params
    level = params.get("security_level", "authPriv")
    user = str(params["username"])
    _check_token(credential.key, "username", user)
    access = AgentAccess(credential.key, "3", user=user)
    if level in ("authNoPriv", "authPriv"):
        auth_key = resolve_secret(credential.secrets["auth_key"], environ)
        _check_token(credential.key, "auth_key", auth_key.get_secret_value(), 8)
        access = AgentAccess(credential.key, "3", user=user,
                             auth_protocol=str(params.get("auth_protocol", "SHA")).upper(),
                             auth_key=auth_key)
    if level == "authPriv":
        priv_key = resolve_secret(credential.secrets["priv_key"], environ)
        _check_token(credential.key, "priv_key", priv_key.get_secret_value(), 8)
        access = AgentAccess(credential.key, "3", user=user,
                             auth_protocol=access.auth_protocol, auth_key=access.auth_key,
                             priv_protocol=str(params.get("priv_protocol", "AES")).upper(),
                             priv_key=priv_key)
    return access


def device_access(inventory: Inventory, device: Device,
                  environ: Mapping[str, str] | None = None) -> AgentAccess:
    return resolve_access(inventory.credentials[device.snmp_credential], environ)


def pysnmp_auth(access: AgentAccess) -> object:
    """The pysnmp (v3arch hlapi) authentication object that reads this agent:
    CommunityData for SNMPv2c, UsmUserData for SNMPv3 (through the poller's own mapping,
    so the lab and the product can never disagree on a protocol name)."""
    from collectors.model import SnmpCredential
    from collectors.snmp import pysnmp_auth_data

    if access.version == "2c":
        return pysnmp_auth_data(SnmpCredential(version="v2c", community=access.community))
    has_auth = access.auth_protocol != NO_AUTH
    has_priv = access.priv_protocol != NO_PRIV
    level = "authPriv" if has_priv else "authNoPriv" if has_auth else "noAuthNoPriv"
    return pysnmp_auth_data(SnmpCredential(
        version="v3", username=access.user, security_level=level,
        auth_protocol=access.auth_protocol if has_auth else None, auth_key=access.auth_key,
        priv_protocol=access.priv_protocol if has_priv else None, priv_key=access.priv_key,
    ))


def with_lab_defaults(inventory: Inventory,
                      environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """`environ` (default: the process environment) plus a value for each unset variable
    named KEYLINE_LAB_* that a credential of `inventory` refers to: the example inventory's
    lab secrets, so that the simulator and the pollers of a demo agree without anyone
    exporting them. The value is derived from the name (KEYLINE_LAB_SNMP_COMMUNITY ->
    "keyline-lab-snmp-community"); other variables are never invented."""
    import os

    merged = dict(os.environ if environ is None else environ)
    for credential in inventory.credentials.values():
        for ref in credential.secrets.values():
            if ref.source == "env" and ref.name.startswith(LAB_SECRET_PREFIX) \
                    and not merged.get(ref.name):
                merged[ref.name] = lab_secret_default(ref.name)
    return merged


def lab_secret_default(name: str) -> str:
    """The lab's value of an unset KEYLINE_LAB_* secret: derived from its name
    (KEYLINE_LAB_SNMP_COMMUNITY -> "keyline-lab-snmp-community")."""
    suffix = name[len(LAB_SECRET_PREFIX):].lower().replace("_", "-")
    return f"keyline-lab-{suffix}"
