-- Circuits' service state history, ports matched by name, monitored ports.
--
-- `circuit_states` is the history of every circuit's service state (alarms/service_state.py,
-- docs/service-state.md): one row per state taken, with the time it began (the time of the
-- facts behind it, not of the pipeline run that took it), the state before, and the cause in
-- words, as a code and as the topology elements behind it. A state lasts until the next row
-- of the same circuit: the SLA engine reads them as intervals. `underlying` is, for a
-- circuit in maintenance, the state it would otherwise have had (an outage inside a window is
-- recorded, and excluded, not hidden). `alarm_id` is the circuit's service alarm while it is
-- down. Rows are written by the alarm pipeline in the same transaction as its alarms and its
-- read position, so they are exactly once. Like alarms, no foreign key: history outlives the
-- inventory.
--
-- `port_matches` is the current picture of how the collector matched each inventory port to
-- an interface of its device at the last poll (by if_index, else ifName, else ifDescr, long
-- or short vendor forms: collectors/port_names.py), and the problem when it could not: a port
-- the device does not have, a name matching two interfaces, an if_index whose interface has
-- another name. `keyline topology diff`, `keyline poll --once` and the admin page report it.
--
-- `ports.monitor`: a port the inventory marks to raise alarms although it ends no circuit and
-- no link (alarms/stages.py: only monitored ports raise port alarms).

CREATE TABLE circuit_states (
    id           bigserial PRIMARY KEY,
    circuit_id   bigint NOT NULL,
    customer_id  bigint,
    time         timestamptz NOT NULL,
    state        text NOT NULL
        CHECK (state IN ('up', 'down', 'degraded', 'unknown', 'maintenance')),
    previous     text CHECK (previous IN ('up', 'down', 'degraded', 'unknown', 'maintenance')),
    underlying   text CHECK (underlying IN ('up', 'down', 'degraded', 'unknown')),
    cause        text NOT NULL,
    cause_kind   text NOT NULL,
    elements     text[] NOT NULL DEFAULT '{}',
    windows      bigint[] NOT NULL DEFAULT '{}',
    alarm_id     bigint,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'maintenance') = (underlying IS NOT NULL))
);

CREATE INDEX circuit_states_circuit_time ON circuit_states (circuit_id, time DESC, id DESC);
CREATE INDEX circuit_states_time ON circuit_states (time);

CREATE TABLE port_matches (
    port_id     bigint PRIMARY KEY,
    device_id   bigint NOT NULL,
    if_index    integer,
    matched_by  text,
    problem     text,
    message     text,
    seen_at     timestamptz NOT NULL,
    CHECK ((if_index IS NULL) = (matched_by IS NULL)),
    CHECK ((problem IS NULL) = (message IS NULL))
);

CREATE INDEX port_matches_device ON port_matches (device_id);

ALTER TABLE ports ADD COLUMN monitor boolean NOT NULL DEFAULT false;

-- SNMPv1 credentials (the poller walks v1 agents with GETNEXT: collectors/snmp.py).
ALTER TABLE credentials DROP CONSTRAINT credentials_kind_check;
ALTER TABLE credentials ADD CONSTRAINT credentials_kind_check
    CHECK (kind IN ('snmp_v1', 'snmp_v2c', 'snmp_v3', 'ssh'));

-- Device health (collectors/health.py) and interval gaps (collectors/service.py).
INSERT INTO metrics (name, unit, description) VALUES
    ('temperature_c', '°C', 'hottest chassis temperature sensor of a device'),
    ('optical_rx_dbm', 'dBm', 'optical receive power of a port''s transceiver'),
    ('optical_tx_dbm', 'dBm', 'optical transmit power of a port''s transceiver'),
    ('fan_failed_count', 'count', 'fans of a device reported failed'),
    ('psu_failed_count', 'count', 'power supplies of a device reported failed'),
    ('if_rate_gap', 'code', 'an interval whose rates were withheld; the value is the reason '
                            '(collectors/counters.py SkipCode)')
ON CONFLICT (name) DO UPDATE SET unit = EXCLUDED.unit, description = EXCLUDED.description;
