-- Rollups for years: samples averaged into 5-minute, hourly and daily buckets, each kept for
-- its own number of days (store.timeseries, StoreSettings' *_retention_days).
--
-- `samples_5min` exists since 0002. This file adds `samples_hour` and `samples_day` with the
-- same columns (bucket, object_id, metric_id, avg_value, min_value, max_value, sample_count),
-- each built from the next finer one: hour from 5 minutes, day from hour (avg_value is the
-- mean weighted by sample_count, so a coarser bucket's mean is the mean of its samples).
--
-- Where samples_5min is a continuous aggregate (0002 on TimescaleDB), the new two are
-- hierarchical continuous aggregates on it, each refreshed by a policy over its recent
-- buckets, with real-time aggregation (materialized_only = false: the buckets not yet
-- materialised are computed from the finer level when read) and compression of old chunks;
-- each step is tried on its own and what it did is recorded in store_features ("rollups",
-- "rollup_compression"). Otherwise they are plain tables that keyline_refresh_samples_hour
-- and keyline_refresh_samples_day recompute (delete then insert, like
-- keyline_refresh_samples_5min), called by the store's refresh job. Same names either way.
--
-- `rollup_pending` holds the time ranges of late samples (a spool replay, a device with a
-- slow clock): the writer records there, in the batch's transaction, the whole hours holding
-- its samples older than the refresh job's recent window; the job refreshes those buckets at
-- every level and deletes the rows it processed.
--
-- `store_policies` records the retention each table has been given (days), so readers know
-- how far back each resolution goes (the retention job replaces a TimescaleDB policy only
-- when the days it keeps differ from the setting), and where the refresh job's last run
-- ended ('refresh:rollups_to'). Seeded with the defaults of config.settings.StoreSettings;
-- raw samples' 90 days is the policy 0002 made.

CREATE TABLE store_policies (
    name       text PRIMARY KEY,
    value      text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO store_policies (name, value) VALUES
    ('retention:samples', '90'),
    ('retention:samples_5min', '400'),
    ('retention:samples_hour', '1830'),
    ('retention:samples_day', '3660');

CREATE TABLE rollup_pending (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    from_ts      timestamptz NOT NULL,  -- [from_ts, to_ts): whole hours
    to_ts        timestamptz NOT NULL,
    -- the level the rebuild starts from: raw samples (every rollup rebuilt), or the 5-minute
    -- rollup (hours and days only: the history this file's new rollups start without)
    rebuild_from text NOT NULL DEFAULT 'samples'
                 CHECK (rebuild_from IN ('samples', 'samples_5min')),
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (from_ts < to_ts)
);

DO $rollups$
DECLARE
    five_min_cagg boolean := (SELECT relkind = 'v' FROM pg_class
                               WHERE oid = 'samples_5min'::regclass);
    have_hour_cagg boolean := false;
    have_day_cagg boolean := false;
    compressed text[] := '{}';
    refused text := NULL;
BEGIN
    IF five_min_cagg THEN
        -- Reads of the recent, not yet materialised buckets compute them from samples.
        BEGIN
            ALTER MATERIALIZED VIEW samples_5min SET (timescaledb.materialized_only = false);
        EXCEPTION WHEN OTHERS THEN
            refused := SQLERRM;
        END;
        BEGIN
            CREATE MATERIALIZED VIEW samples_hour
                WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
                SELECT time_bucket(INTERVAL '1 hour', bucket) AS bucket,
                       object_id, metric_id,
                       sum(avg_value * sample_count) / sum(sample_count) AS avg_value,
                       min(min_value) AS min_value, max(max_value) AS max_value,
                       sum(sample_count)::bigint AS sample_count
                  FROM samples_5min
                 GROUP BY 1, 2, 3
                WITH NO DATA;
            PERFORM add_continuous_aggregate_policy('samples_hour',
                start_offset => INTERVAL '2 days', end_offset => INTERVAL '1 hour',
                schedule_interval => INTERVAL '30 minutes');
            have_hour_cagg := true;
        EXCEPTION WHEN OTHERS THEN
            refused := SQLERRM;
        END;
    END IF;
    IF have_hour_cagg THEN
        BEGIN
            CREATE MATERIALIZED VIEW samples_day
                WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
                SELECT time_bucket(INTERVAL '1 day', bucket) AS bucket,
                       object_id, metric_id,
                       sum(avg_value * sample_count) / sum(sample_count) AS avg_value,
                       min(min_value) AS min_value, max(max_value) AS max_value,
                       sum(sample_count)::bigint AS sample_count
                  FROM samples_hour
                 GROUP BY 1, 2, 3
                WITH NO DATA;
            PERFORM add_continuous_aggregate_policy('samples_day',
                start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 day',
                schedule_interval => INTERVAL '6 hours');
            have_day_cagg := true;
        EXCEPTION WHEN OTHERS THEN
            refused := SQLERRM;
        END;
    END IF;

    IF NOT have_hour_cagg THEN
        CREATE TABLE samples_hour (
            bucket       timestamptz NOT NULL,
            object_id    bigint NOT NULL,
            metric_id    smallint NOT NULL,
            avg_value    double precision NOT NULL,
            min_value    double precision NOT NULL,
            max_value    double precision NOT NULL,
            sample_count bigint NOT NULL,
            PRIMARY KEY (object_id, metric_id, bucket)
        );
        CREATE INDEX samples_hour_bucket ON samples_hour (bucket);
    END IF;
    IF NOT have_day_cagg THEN
        CREATE TABLE samples_day (
            bucket       timestamptz NOT NULL,
            object_id    bigint NOT NULL,
            metric_id    smallint NOT NULL,
            avg_value    double precision NOT NULL,
            min_value    double precision NOT NULL,
            max_value    double precision NOT NULL,
            sample_count bigint NOT NULL,
            PRIMARY KEY (object_id, metric_id, bucket)
        );
        CREATE INDEX samples_day_bucket ON samples_day (bucket);
    END IF;

    IF have_day_cagg THEN
        INSERT INTO store_features VALUES ('rollups', true,
            'continuous aggregates: samples_5min on samples, samples_hour on samples_5min,'
            ' samples_day on samples_hour, refreshed by policies');
    ELSIF five_min_cagg THEN
        INSERT INTO store_features VALUES ('rollups', true,
            'samples_5min a continuous aggregate; '
            || CASE WHEN have_hour_cagg THEN 'samples_hour a continuous aggregate; '
                    ELSE 'samples_hour a table; ' END
            || 'samples_day a table (refreshed by the scheduler): '
            || coalesce(refused, '?'));
    ELSE
        INSERT INTO store_features VALUES ('rollups', true,
            'tables samples_5min, samples_hour, samples_day refreshed by the scheduler');
    END IF;

    -- Compression of the rollups' old chunks, segmented by series (the continuous
    -- aggregates' default: their GROUP BY columns but the bucket). After the refresh
    -- policies' windows, so a policy's refresh never meets a compressed chunk; a late
    -- batch's explicit refresh may (TimescaleDB decompresses what it rewrites).
    IF five_min_cagg THEN
        BEGIN
            ALTER MATERIALIZED VIEW samples_5min SET (timescaledb.compress = true);
            PERFORM add_compression_policy('samples_5min', compress_after => INTERVAL '7 days');
            compressed := compressed || 'samples_5min after 7 days'::text;
        EXCEPTION WHEN OTHERS THEN
            refused := SQLERRM;
        END;
    END IF;
    IF have_hour_cagg THEN
        BEGIN
            ALTER MATERIALIZED VIEW samples_hour SET (timescaledb.compress = true);
            PERFORM add_compression_policy('samples_hour', compress_after => INTERVAL '30 days');
            compressed := compressed || 'samples_hour after 30 days'::text;
        EXCEPTION WHEN OTHERS THEN
            refused := SQLERRM;
        END;
    END IF;
    IF have_day_cagg THEN
        BEGIN
            ALTER MATERIALIZED VIEW samples_day SET (timescaledb.compress = true);
            PERFORM add_compression_policy('samples_day', compress_after => INTERVAL '90 days');
            compressed := compressed || 'samples_day after 90 days'::text;
        EXCEPTION WHEN OTHERS THEN
            refused := SQLERRM;
        END;
    END IF;
    IF cardinality(compressed) > 0 THEN
        INSERT INTO store_features VALUES ('rollup_compression', true,
            'chunks of ' || array_to_string(compressed, ', '));
    ELSIF five_min_cagg THEN
        INSERT INTO store_features VALUES ('rollup_compression', false, coalesce(refused, '?'));
    ELSE
        INSERT INTO store_features VALUES ('rollup_compression', false,
            'rollups are plain tables');
    END IF;
END
$rollups$;

-- Recompute the hourly rollup for the hours overlapping [from_ts, to_ts) from samples_5min
-- (delete then insert, so it can be run again over the same range). Returns the number of
-- rows written; 0 without doing anything when samples_hour is a continuous aggregate.
CREATE FUNCTION keyline_refresh_samples_hour(from_ts timestamptz, to_ts timestamptz)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    bucket_from timestamptz;
    bucket_to timestamptz;
    written bigint;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'samples_hour'::regclass) <> 'r' THEN
        RETURN 0;
    END IF;
    bucket_from := date_bin(INTERVAL '1 hour', from_ts, TIMESTAMPTZ '2000-01-01 00:00:00+00');
    bucket_to := date_bin(INTERVAL '1 hour', to_ts, TIMESTAMPTZ '2000-01-01 00:00:00+00');
    IF bucket_to < to_ts THEN
        bucket_to := bucket_to + INTERVAL '1 hour';
    END IF;
    DELETE FROM samples_hour WHERE bucket >= bucket_from AND bucket < bucket_to;
    INSERT INTO samples_hour
        (bucket, object_id, metric_id, avg_value, min_value, max_value, sample_count)
    SELECT date_bin(INTERVAL '1 hour', bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
           object_id, metric_id, sum(avg_value * sample_count) / sum(sample_count),
           min(min_value), max(max_value), sum(sample_count)
      FROM samples_5min
     WHERE bucket >= bucket_from AND bucket < bucket_to
     GROUP BY 1, 2, 3;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;

-- The same for the daily rollup (UTC days) from samples_hour.
CREATE FUNCTION keyline_refresh_samples_day(from_ts timestamptz, to_ts timestamptz)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    bucket_from timestamptz;
    bucket_to timestamptz;
    written bigint;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'samples_day'::regclass) <> 'r' THEN
        RETURN 0;
    END IF;
    bucket_from := date_bin(INTERVAL '1 day', from_ts, TIMESTAMPTZ '2000-01-01 00:00:00+00');
    bucket_to := date_bin(INTERVAL '1 day', to_ts, TIMESTAMPTZ '2000-01-01 00:00:00+00');
    IF bucket_to < to_ts THEN
        bucket_to := bucket_to + INTERVAL '1 day';
    END IF;
    DELETE FROM samples_day WHERE bucket >= bucket_from AND bucket < bucket_to;
    INSERT INTO samples_day
        (bucket, object_id, metric_id, avg_value, min_value, max_value, sample_count)
    SELECT date_bin(INTERVAL '1 day', bucket, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
           object_id, metric_id, sum(avg_value * sample_count) / sum(sample_count),
           min(min_value), max(max_value), sum(sample_count)
      FROM samples_hour
     WHERE bucket >= bucket_from AND bucket < bucket_to
     GROUP BY 1, 2, 3;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;

-- The history samples_5min already holds goes into the new hourly and daily rollups at the
-- refresh job's first run (a continuous aggregate cannot be refreshed inside this file's
-- transaction; tables take the same path).
INSERT INTO rollup_pending (from_ts, to_ts, rebuild_from)
SELECT date_bin(INTERVAL '1 day', min(bucket), TIMESTAMPTZ '2000-01-01 00:00:00+00'),
       date_bin(INTERVAL '1 day', max(bucket), TIMESTAMPTZ '2000-01-01 00:00:00+00')
           + INTERVAL '1 day',
       'samples_5min'
  FROM samples_5min
HAVING count(*) > 0;
