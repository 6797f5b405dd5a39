"""What this database can do for time series: the features the rest of the code branches on.

The timeseries migration (0002) tries TimescaleDB's features one by one and records in the
`store_features` table which ones it could enable: the extension itself, samples as a
hypertable, compression, a retention policy, continuous aggregates. They come apart: an
Apache-licensed TimescaleDB build does hypertables but refuses the other three. So code asks
"is samples a hypertable?" or "is samples_5min a continuous aggregate?", never "is the
extension installed?":

    features = detect_features(conn)
    if features.hypertable:
        ...  # drop_chunks
    else:
        ...  # daily partitions

The recorded rows are checked against the catalog (the extension could have been dropped
since, or a dump restored on a server without it), so a feature is reported only if it is
recorded as enabled *and* the objects behind it are really there.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from store.database import StoreError

FEATURES = ("timescaledb", "hypertable", "compression", "retention", "continuous_aggregates")


@dataclass(frozen=True)
class StoreFeatures:
    timescaledb: bool = False  # the extension is installed in this database
    hypertable: bool = False  # samples is a hypertable (else: a table partitioned by day)
    compression: bool = False  # old chunks of samples are compressed by a policy
    retention: bool = False  # a policy drops old chunks of samples
    continuous_aggregates: bool = False  # samples_5min is a continuous aggregate (else: a table)

    @property
    def partitioned(self) -> bool:
        """samples is a plain table partitioned by day, whose partitions Keyline creates."""
        return not self.hypertable


def detect_features(conn: psycopg.Connection) -> StoreFeatures:
    """Read the features from store_features, confirmed by the catalog. Raises StoreError if
    the time-series schema is not there (migrations not applied)."""
    with conn.transaction():
        if conn.execute("SELECT to_regclass('store_features')").fetchone()[0] is None:
            raise StoreError("the database has no time-series schema: run 'keyline db migrate'")
        recorded = dict(conn.execute("SELECT feature, enabled FROM store_features").fetchall())
        catalog = conn.execute(
            """SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'),
                      EXISTS (SELECT 1 FROM pg_partitioned_table
                               WHERE partrelid = to_regclass('samples')),
                      (SELECT relkind FROM pg_class WHERE oid = to_regclass('samples_5min'))"""
        ).fetchone()
    extension, partitioned, rollup_kind = catalog
    timescaledb = bool(recorded.get("timescaledb")) and extension
    hypertable = bool(recorded.get("hypertable")) and timescaledb and not partitioned
    return StoreFeatures(
        timescaledb=timescaledb,
        hypertable=hypertable,
        compression=bool(recorded.get("compression")) and hypertable,
        retention=bool(recorded.get("retention")) and hypertable,
        continuous_aggregates=(bool(recorded.get("continuous_aggregates")) and hypertable
                               and rollup_kind == "v"),
    )
