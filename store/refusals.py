"""Why a person's action was refused, one error for every front end.

An action (acknowledge an alarm, declare a maintenance window, accept a device's new SSH
host key, open a ticket...) is one function with every rule it obeys; the command line, the
REST API and the pages only turn their input into its arguments, and an `ActionError` into
their own answer: an exit code and a message, an HTTP status and a JSON body naming the
field, a form's error. `Refusal` says which kind of answer: a bad argument, an object that
does not exist or that the viewer may not see (told apart from nothing, so that a refusal
never confirms another customer's object exists), a role that may not act, or a state that
forbids it. It lives beside the store so that every stage that acts (collectors.cli's host
keys, alarms.actions, sla) can raise it without importing a stage above its own.
"""

from __future__ import annotations

import enum


class Refusal(enum.StrEnum):
    """Why an action was refused: each front end maps it to its own answer."""

    INVALID = "invalid"  # a bad argument (CLI exit 2, HTTP 400, the form's error)
    NOT_FOUND = "not_found"  # no such object, or not one the viewer may see (404)
    FORBIDDEN = "forbidden"  # the viewer's role may not act (403)
    CONFLICT = "conflict"  # the object's state forbids it: a cleared alarm, a past window (409)


class ActionError(Exception):
    """An action refused: `field` names the offending argument (None when it is who acts),
    `message` says why in English, `refusal` what kind of refusal it is."""

    def __init__(self, field: str | None, message: str,
                 refusal: Refusal = Refusal.INVALID) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.refusal = refusal
