-- Topology discovery: what LLDP showed, run by run, and the links an operator accepted
-- (see topology/discovery.py, topology/reconcile.py and store/topology.py).
--
-- A discovery run walks the LLDP-MIB of some devices (all, or those named) and records
-- when it started and finished, how many devices it asked, which ones answered
-- (`walked_device_ids`: a link is judged only by runs that walked one of its ends), the
-- devices that did not answer with why (`failures`), the neighbours it could not place in
-- the inventory (`unresolved`) and the devices that answer with a name other than their
-- inventory key (`renamed`).
--
-- A discovered link is a pair of inventory ports LLDP showed to be adjacent, stored once
-- whichever end reported it (the lower port id first). `first_seen` / `last_seen` and the
-- runs that first and last saw it make a history: a link is current until a later run walks
-- one of its ends and does not see it.
--
-- An accepted link is a discovered link an operator declared real (`accepted_by`,
-- `accepted_at`) without editing the inventory files. It lives in its own table, not in
-- `links`, so an inventory import, which retires every link the files no longer declare,
-- never touches it: reconciliation treats accepted links as declared. Its id comes from the
-- inventory's sequence, so it names one object like any link does.

CREATE TABLE discovery_runs (
    id                bigserial PRIMARY KEY,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz NOT NULL,
    devices_asked     integer NOT NULL CHECK (devices_asked >= 0),
    walked_device_ids bigint[] NOT NULL DEFAULT '{}',
    failures          jsonb NOT NULL DEFAULT '[]',
    unresolved        jsonb NOT NULL DEFAULT '[]',
    renamed           jsonb NOT NULL DEFAULT '[]',
    CHECK (finished_at >= started_at)
);

CREATE TABLE discovered_links (
    a_port_id     bigint NOT NULL REFERENCES ports (id),
    z_port_id     bigint NOT NULL REFERENCES ports (id),
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    first_run_id  bigint NOT NULL REFERENCES discovery_runs (id),
    last_run_id   bigint NOT NULL REFERENCES discovery_runs (id),
    seen_by       text[] NOT NULL DEFAULT '{}',  -- device keys that reported it last time
    PRIMARY KEY (a_port_id, z_port_id),
    CHECK (a_port_id < z_port_id)
);

CREATE INDEX discovered_links_last_run ON discovered_links (last_run_id);

CREATE TABLE accepted_links (
    id          bigint PRIMARY KEY DEFAULT nextval('object_id_seq'),
    a_port_id   bigint NOT NULL REFERENCES ports (id),
    z_port_id   bigint NOT NULL REFERENCES ports (id),
    accepted_by text NOT NULL CHECK (accepted_by <> ''),
    accepted_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (a_port_id, z_port_id),
    CHECK (a_port_id < z_port_id)
);
