-- Observations: changes of state that a poll or a trap saw (see store/observations.py), and
-- each device's latest poll status.
--
-- An observation is one change of one object's state: port 4711's ifOperStatus went from
-- "up" to "down" at 10:05:03Z, seen by a trap; device 12 became "unreachable", seen by a
-- poll. They are the alarm pipeline's input, so they are kept as rows (the pipeline may start
-- later than the collector and read what it missed) and announced as events. Like samples,
-- they have no foreign key to the inventory: an observation is history and outlives the
-- object it is about; `object_id` alone names the object (inventory ids share one sequence).
--
-- `device_poll_status` is not history but the current picture: one row per polled device
-- with its last status (reachable, unreachable, auth-failed, error), why (`reason`), since
-- when (`changed_at`, moved only when the status changes) and when it was last polled
-- (`last_poll_at`), so the portal can show each device's reachability without reading
-- observations. No foreign key either: the poller must not fail a batch because the
-- inventory was reloaded under it; a row for a device that no longer exists is harmless.

CREATE TABLE observations (
    id        bigserial PRIMARY KEY,
    time      timestamptz NOT NULL,
    object_id bigint NOT NULL,
    kind      text NOT NULL CHECK (kind <> ''),
    old       text,
    new       text NOT NULL,
    source    text NOT NULL CHECK (source IN ('poll', 'trap')),
    detail    jsonb NOT NULL DEFAULT '{}'
);

-- "What happened to this object lately" is the common read.
CREATE INDEX observations_object_time ON observations (object_id, time DESC);
-- "What happened lately", across objects, and pruning by age.
CREATE INDEX observations_time ON observations (time);

CREATE TABLE device_poll_status (
    device_id    bigint PRIMARY KEY,
    status       text NOT NULL,
    reason       text,
    changed_at   timestamptz NOT NULL,
    last_poll_at timestamptz NOT NULL
);
