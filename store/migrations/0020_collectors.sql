-- Several collectors on one store (store/leases.py, docs/scaling.md).
--
-- `collector_instances` holds one row per running collector process: its name (`[collector]
-- name`), the poller groups it serves (NULL: every group) and until when it is alive
-- (`expires_at`, pushed `lease_s` ahead at every renewal). A process that stops renewing is
-- dead once `expires_at` has passed; its row stays a while (pruned an hour later) so that
-- the collector taking over its devices knows when it stopped.
--
-- `device_leases` says which collector instance polls each device. A lease is live while
-- its holder's instance row is alive: renewing one row renews all of an instance's leases.
-- A lease whose holder is NULL (released) or dead is free; the collector that takes it
-- polls the device no sooner than `poll_after` (set when a holder hands a device over: its
-- last poll plus the interval), or, for a dead holder, than its expiry plus the interval
-- minus the poll budget: so two collectors never poll one device in the same interval.

CREATE TABLE collector_instances (
    id            uuid PRIMARY KEY,
    name          text NOT NULL CHECK (name <> ''),
    poller_groups text[],
    host          text NOT NULL,
    pid           integer NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    renewed_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX collector_instances_name ON collector_instances (name);

CREATE TABLE device_leases (
    device_id   bigint PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    holder      uuid REFERENCES collector_instances (id) ON DELETE SET NULL,
    acquired_at timestamptz NOT NULL DEFAULT now(),
    poll_after  timestamptz
);
CREATE INDEX device_leases_holder ON device_leases (holder);
