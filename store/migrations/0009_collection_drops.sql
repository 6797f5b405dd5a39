-- What a collector's full spool dropped (store/collection.py): never silent, a gap with its
-- time range. `device_id` is the device whose data was lost (NULL when it could not be told);
-- `first_time` and `last_time` the time range of the lost data, which the SLA figures count as
-- unknown time. No foreign key: history outlives the inventory.

CREATE TABLE collection_drops (
    id          bigserial PRIMARY KEY,
    device_id   bigint,
    kind        text NOT NULL CHECK (kind <> ''),
    rows        bigint NOT NULL CHECK (rows > 0),
    first_time  timestamptz,
    last_time   timestamptz,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX collection_drops_device ON collection_drops (device_id, first_time);

-- Each running service's heartbeat (store/collection.py): what `keyline status` and
-- /api/v1/health show of the processes that are not this one. `detail` is the service's own
-- figures (spool, polls, traps, events processed); `updated_at` says whether it is alive.
CREATE TABLE service_heartbeats (
    name       text PRIMARY KEY,
    host       text NOT NULL,
    pid        integer NOT NULL,
    started_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    detail     jsonb NOT NULL DEFAULT '{}'
);

-- The spool's batches already stored (collectors/spool.py): a batch is stored in one
-- transaction with its id here, so one tried again after a commit whose confirmation was
-- lost (the connection dropped right then) is skipped: exactly once. Pruned by age.
CREATE TABLE spool_batches (
    id        text PRIMARY KEY,
    stored_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX spool_batches_stored_at ON spool_batches (stored_at);
