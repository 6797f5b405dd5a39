"""Tickets live: a small "ticket" message to the rooms that may know of a changed ticket.

Every change of a ticket is one timeline entry, announced by the store as a "ticket.<action>"
event (store/tickets.py) whose payload names the ticket, the entry, the ticket's kind, its
customer (None for the NOC's incident and monitoring-gap tickets) and whether the entry is an
internal note. `TicketRooms`, a companion of the live bridge (portal/live.py: it follows the
"ticket." topics on the bridge's own consumer, no connection of its own), turns each into a
Socket.IO event "ticket" ``{"ticket_id", "state", "entry_id"}`` sent to

- ``"noc"``, for every ticket: the staff's queue and pages;
- ``"customer:<id>"``, only for that customer's own fault and complaint tickets, and never for
  an internal note (a customer is not even told that one was written): the customer's list
  and ticket page, and the account managers of that customer.

The message carries nothing to show, no title and no comment: the page that hears it fetches
itself again through its own route (portal/tickets_views.py), which reads the store with the
viewer's scope. So the scoping lives in one place, and a message that reached a room by
mistake would show nothing the viewer may not read. A message heard twice (a redelivery
after the bridge recovered) only makes the page fetch itself once more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask

from portal.live import CUSTOMER_ROOM, NOC_ROOM
from store.events import Event
from store.tickets import CUSTOMER_KINDS, TOPIC_PREFIX

log = logging.getLogger(__name__)

EVENT = "ticket"  # the Socket.IO event name the pages listen to (portal/static/tickets.js)


def ticket_messages(payload: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(room, message) for one "ticket.*" event's payload: see the module docstring."""
    ticket_id, entry_id = payload.get("ticket_id"), payload.get("entry_id")
    if not isinstance(ticket_id, int) or not isinstance(entry_id, int):
        return []
    message = {"ticket_id": ticket_id, "state": payload.get("state"), "entry_id": entry_id}
    found = [(NOC_ROOM, message)]
    customer_id = payload.get("customer_id")
    if (isinstance(customer_id, int) and payload.get("kind") in CUSTOMER_KINDS
            and payload.get("internal") is False):
        found.append((CUSTOMER_ROOM.format(customer_id), message))
    return found


class TicketRooms:
    """The bridge's companion for tickets: `topics` it follows, `on_event(event)` for each
    of their events, `tick(conn)` on the bridge's ticks (nothing to do on a tick).
    `emit(event, data, room)` sends one Socket.IO message (Flask-SocketIO's emit)."""

    topics = (TOPIC_PREFIX,)

    def __init__(self, emit: Callable[[str, Any, str], None]) -> None:
        self._emit = emit
        self.sent_messages = 0

    def on_event(self, event: Event) -> None:
        for room, message in ticket_messages(event.payload):
            self._emit(EVENT, message, room)
            self.sent_messages += 1

    def tick(self, conn: Any) -> None:
        return None


def init_live_tickets(app: Flask) -> TicketRooms:
    """Put the ticket companion on the app's live bridge (portal.live.init_live made both):
    app.extensions["keyline.live_tickets"]."""
    socketio = app.extensions["keyline.socketio"]
    rooms = TicketRooms(lambda event, data, room: socketio.emit(event, data, to=room))
    app.extensions["keyline.live"].companions.append(rooms)
    app.extensions["keyline.live_tickets"] = rooms
    return rooms
