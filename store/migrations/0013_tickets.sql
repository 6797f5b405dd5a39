-- Trouble tickets, their circuits and their timeline (see sla/tickets.py and docs/tickets.md).
--
-- A ticket is one fault or complaint of one customer as the operator works it: opened by the
-- ticket service when a circuit leaves service (origin 'alarm'), by a customer from the
-- portal or by the NOC for a customer (origin 'customer' / 'noc'). An incident that hits
-- several customers has one 'incident' ticket for the NOC (no customer) that the customers'
-- tickets point to with `master_id`; a circuit whose state is unknown opens a
-- 'monitoring_gap' ticket for the NOC only. `incident_key` is what joins tickets of one
-- incident: the root-cause alarm ("alarm:17"), or the element a monitoring gap sits on.
--
-- Each ticket runs two SLA clocks (sla/clocks.py): response (met at the first
-- acknowledgement) and resolution (met when resolved), on the service calendar of its
-- contract, copied into the ticket when it opens so a later change of the contract never
-- moves a running deadline. `clocks` holds both as data; the due times and breach flags
-- are kept beside it for the queue's ordering and the escalation scan.
--
-- `ticket_events` is the timeline: every change, who or what made it, when, from which
-- alarm. It is history: the trigger below refuses to change or delete a row.

-- The language a customer's contact is written to (ticket notifications; NULL: the setting).
ALTER TABLE customers ADD COLUMN language text;

CREATE TABLE tickets (
    id                  bigserial PRIMARY KEY,
    kind                text NOT NULL
        CHECK (kind IN ('fault', 'complaint', 'incident', 'monitoring_gap')),
    origin              text NOT NULL CHECK (origin IN ('alarm', 'customer', 'noc')),
    customer_id         bigint REFERENCES customers (id),
    master_id           bigint REFERENCES tickets (id),
    -- a ticket found to be part of another's incident (its root cause was re-rooted under
    -- the other's) is closed into it: it counts in no SLA figure of its own
    merged_into         bigint REFERENCES tickets (id),
    incident_key        text,
    sla_contract_id     bigint REFERENCES sla_contracts (id),
    priority            text NOT NULL CHECK (priority IN ('P1', 'P2', 'P3', 'P4')),
    impact              text NOT NULL,
    state               text NOT NULL CHECK (state IN ('open', 'acknowledged', 'in_progress',
                                                       'pending_customer', 'resolved',
                                                       'closed')),
    title               text NOT NULL CHECK (title <> ''),
    description         text NOT NULL DEFAULT '',
    opened_at           timestamptz NOT NULL,
    opened_by           text NOT NULL,
    acknowledged_at     timestamptz,
    acknowledged_by     text,
    resolved_at         timestamptz,
    closed_at           timestamptz,
    calendar            jsonb NOT NULL,
    clocks              jsonb NOT NULL,
    response_due_at     timestamptz,
    resolution_due_at   timestamptz,
    response_breached   boolean NOT NULL DEFAULT false,
    resolution_breached boolean NOT NULL DEFAULT false,
    -- the escalation levels (percent of a deadline) already notified, per clock
    escalated           jsonb NOT NULL DEFAULT '{}',
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind IN ('fault', 'complaint')) = (customer_id IS NOT NULL))
);

-- One open ticket per customer and incident, and one open NOC ticket per incident: the
-- ticket service joins rather than opens a second.
CREATE UNIQUE INDEX tickets_one_open_per_incident
    ON tickets (coalesce(customer_id, 0), kind, incident_key)
    WHERE incident_key IS NOT NULL AND state NOT IN ('resolved', 'closed');
CREATE INDEX tickets_customer ON tickets (customer_id, opened_at DESC);
CREATE INDEX tickets_active_due ON tickets (resolution_due_at)
    WHERE state NOT IN ('resolved', 'closed');
CREATE INDEX tickets_master ON tickets (master_id) WHERE master_id IS NOT NULL;

CREATE TABLE ticket_circuits (
    ticket_id   bigint NOT NULL REFERENCES tickets (id),
    circuit_id  bigint NOT NULL REFERENCES circuits (id),
    added_at    timestamptz NOT NULL,
    -- the state that brought the circuit in, and the service alarm behind it
    state       text NOT NULL,
    alarm_id    bigint,
    -- when the circuit was back in service (NULL while it is not)
    restored_at timestamptz,
    PRIMARY KEY (ticket_id, circuit_id)
);
CREATE INDEX ticket_circuits_circuit ON ticket_circuits (circuit_id);

CREATE TABLE ticket_events (
    id          bigserial PRIMARY KEY,
    ticket_id   bigint NOT NULL REFERENCES tickets (id),
    time        timestamptz NOT NULL,
    actor       text NOT NULL,
    -- 'system' (the ticket service), 'staff' or 'customer'
    actor_kind  text NOT NULL CHECK (actor_kind IN ('system', 'staff', 'customer')),
    action      text NOT NULL,
    from_state  text,
    to_state    text,
    alarm_id    bigint,
    -- free text a person wrote; internal rows are never shown to the customer
    comment     text,
    internal    boolean NOT NULL DEFAULT false,
    -- the facts of the change as data (circuits, priority, deadlines, text codes)
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX ticket_events_ticket ON ticket_events (ticket_id, id);

CREATE FUNCTION ticket_events_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ticket timeline entry % is history: it cannot be changed or deleted',
        OLD.id USING ERRCODE = 'check_violation';
END $$;

CREATE TRIGGER ticket_events_immutable BEFORE UPDATE OR DELETE ON ticket_events
    FOR EACH ROW EXECUTE FUNCTION ticket_events_immutable();
