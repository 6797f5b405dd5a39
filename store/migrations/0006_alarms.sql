-- Alarms, their timelines, maintenance windows, and where the alarm pipeline stopped reading
-- (see alarms/model.py and store/alarms.py).
--
-- An alarm is one occurrence of one condition on one object: (object_kind, object_id, type,
-- qualifier) is its key, and at most one alarm per key is active at a time (the partial
-- unique index below enforces what the pipeline's dedupe stage promises). A cleared alarm is
-- history and is never reopened: the same condition coming back is a new row. Like
-- observations, alarms have no foreign key to the inventory: they outlive the objects.
--
-- `alarm_timeline` holds every change of every alarm (raised, repeated, rooted, suppressed,
-- acknowledged, cleared...) with who or what made it.
--
-- A maintenance window covers a scope (devices, ports, circuits, customers) for an
-- interval. The SLA engine excludes those intervals from downtime, so a window that has
-- ended is history: the trigger below refuses to change or delete it, and refuses to move
-- the start of one that has begun. Ending a running window early (ends_at = now) is allowed.
--
-- `alarm_pipeline_state` records the id of the last "observation" event the pipeline
-- processed, written in the same transaction as the alarms it produced: after a restart the
-- pipeline reads on from there and neither misses nor repeats an observation.

CREATE TABLE alarms (
    id                 bigserial PRIMARY KEY,
    object_kind        text NOT NULL CHECK (object_kind IN ('device', 'port', 'link', 'circuit')),
    object_id          bigint NOT NULL,
    type               text NOT NULL CHECK (type <> ''),
    qualifier          text NOT NULL DEFAULT '',
    severity           text NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'warning')),
    state              text NOT NULL CHECK (state IN ('active', 'cleared')),
    summary            text NOT NULL DEFAULT '',
    first_seen         timestamptz NOT NULL,
    last_seen          timestamptz NOT NULL,
    count              integer NOT NULL DEFAULT 1 CHECK (count > 0),
    cleared_at         timestamptz,
    cleared_by         text,
    acknowledged_by    text,
    acknowledged_at    timestamptz,
    ack_comment        text,
    root_cause_id      bigint REFERENCES alarms (id),
    impacted_circuits  bigint[] NOT NULL DEFAULT '{}',
    impacted_customers bigint[] NOT NULL DEFAULT '{}',
    suppressed_by      bigint[] NOT NULL DEFAULT '{}',
    detail             jsonb NOT NULL DEFAULT '{}',
    CHECK ((state = 'cleared') = (cleared_at IS NOT NULL)),
    CHECK ((acknowledged_by IS NULL) = (acknowledged_at IS NULL))
);

CREATE UNIQUE INDEX alarms_one_active ON alarms (object_kind, object_id, type, qualifier)
    WHERE state = 'active';
CREATE INDEX alarms_active ON alarms (first_seen DESC) WHERE state = 'active';
CREATE INDEX alarms_object ON alarms (object_id, first_seen DESC);
CREATE INDEX alarms_root_cause ON alarms (root_cause_id);
CREATE INDEX alarms_impacted_circuits ON alarms USING gin (impacted_circuits);

CREATE TABLE alarm_timeline (
    id       bigserial PRIMARY KEY,
    alarm_id bigint NOT NULL REFERENCES alarms (id),
    time     timestamptz NOT NULL,
    action   text NOT NULL CHECK (action <> ''),
    actor    text NOT NULL CHECK (actor <> ''),
    comment  text,
    detail   jsonb NOT NULL DEFAULT '{}'
);

CREATE INDEX alarm_timeline_alarm ON alarm_timeline (alarm_id, id);

CREATE TABLE maintenance_windows (
    id          bigserial PRIMARY KEY,
    -- [{"kind": "device"|"port"|"circuit"|"customer", "id": object id, "key": natural key}]
    scope       jsonb NOT NULL CHECK (jsonb_typeof(scope) = 'array' AND scope <> '[]'),
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    reason      text NOT NULL CHECK (reason <> ''),
    declared_by text NOT NULL CHECK (declared_by <> ''),
    declared_at timestamptz NOT NULL DEFAULT now(),
    ended_by    text,
    CHECK (ends_at > starts_at)
);

CREATE INDEX maintenance_windows_time ON maintenance_windows (ends_at, starts_at);

CREATE FUNCTION maintenance_windows_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.ends_at <= now() THEN
        RAISE EXCEPTION 'maintenance window % ended at %: past windows are immutable',
            OLD.id, OLD.ends_at USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        IF OLD.starts_at <= now() THEN
            RAISE EXCEPTION 'maintenance window % has begun: end it instead of deleting it',
                OLD.id USING ERRCODE = 'check_violation';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.starts_at <= now() AND (NEW.starts_at IS DISTINCT FROM OLD.starts_at
            OR NEW.scope IS DISTINCT FROM OLD.scope OR NEW.reason IS DISTINCT FROM OLD.reason
            OR NEW.declared_by IS DISTINCT FROM OLD.declared_by
            OR NEW.declared_at IS DISTINCT FROM OLD.declared_at) THEN
        RAISE EXCEPTION 'maintenance window % has begun: only its end may change', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.starts_at <= now() AND NEW.ends_at < now() - interval '1 second' THEN
        RAISE EXCEPTION 'maintenance window % cannot end in the past', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER maintenance_windows_history BEFORE UPDATE OR DELETE ON maintenance_windows
    FOR EACH ROW EXECUTE FUNCTION maintenance_windows_history();

CREATE TABLE alarm_pipeline_state (
    name          text PRIMARY KEY,
    last_event_id bigint NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
