-- One refresh for every rollup table: keyline_refresh_rollup(target, source, width, from_ts,
-- to_ts) recomputes the buckets of `target` (`width` wide, on the 2000-01-01 UTC origin: a
-- day bucket is a UTC day) overlapping [from_ts, to_ts) from `source`, delete then insert,
-- so it can be run again over the same range, and returns the number of rows written; 0
-- without doing anything when `target` is not a table (a continuous aggregate, which its
-- policy and refresh_continuous_aggregate keep fresh: store.timeseries never calls it then).
--
-- The source is either raw samples (time, value) or a finer rollup (bucket, avg_value,
-- min_value, max_value, sample_count; told apart by its avg_value column): a rollup's mean
-- is the mean of the finer means weighted by their sample counts, so a coarser bucket's
-- mean is the mean of its samples.
--
-- 0002's keyline_refresh_samples_5min and 0019's keyline_refresh_samples_hour and
-- keyline_refresh_samples_day were three copies of this; they keep their names and
-- signatures (store.timeseries calls them by name) as one-line wrappers.

CREATE FUNCTION keyline_refresh_rollup(target regclass, source regclass, width interval,
                                       from_ts timestamptz, to_ts timestamptz)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    origin CONSTANT timestamptz := TIMESTAMPTZ '2000-01-01 00:00:00+00';
    bucket_from timestamptz;
    bucket_to timestamptz;
    time_column text := 'time';
    aggregates text := 'avg(value), min(value), max(value), count(*)';
    written bigint;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = target) <> 'r' THEN
        RETURN 0;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_attribute
                WHERE attrelid = source AND attname = 'avg_value' AND NOT attisdropped) THEN
        time_column := 'bucket';
        aggregates := 'sum(avg_value * sample_count) / sum(sample_count),'
                      ' min(min_value), max(max_value), sum(sample_count)';
    END IF;
    bucket_from := date_bin(width, from_ts, origin);
    bucket_to := date_bin(width, to_ts, origin);
    IF bucket_to < to_ts THEN
        bucket_to := bucket_to + width;
    END IF;
    EXECUTE format('DELETE FROM %s WHERE bucket >= $1 AND bucket < $2', target)
        USING bucket_from, bucket_to;
    EXECUTE format(
        'INSERT INTO %s'
        ' (bucket, object_id, metric_id, avg_value, min_value, max_value, sample_count)'
        ' SELECT date_bin($3, %I, $4), object_id, metric_id, %s'
        '   FROM %s WHERE %I >= $1 AND %I < $2 GROUP BY 1, 2, 3',
        target, time_column, aggregates, source, time_column, time_column)
        USING bucket_from, bucket_to, width, origin;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;

CREATE OR REPLACE FUNCTION keyline_refresh_samples_5min(from_ts timestamptz, to_ts timestamptz)
RETURNS bigint
LANGUAGE sql AS $$
    SELECT keyline_refresh_rollup('samples_5min', 'samples', INTERVAL '5 minutes', from_ts, to_ts)
$$;

CREATE OR REPLACE FUNCTION keyline_refresh_samples_hour(from_ts timestamptz, to_ts timestamptz)
RETURNS bigint
LANGUAGE sql AS $$
    SELECT keyline_refresh_rollup('samples_hour', 'samples_5min', INTERVAL '1 hour', from_ts,
                                  to_ts)
$$;

CREATE OR REPLACE FUNCTION keyline_refresh_samples_day(from_ts timestamptz, to_ts timestamptz)
RETURNS bigint
LANGUAGE sql AS $$
    SELECT keyline_refresh_rollup('samples_day', 'samples_hour', INTERVAL '1 day', from_ts, to_ts)
$$;
