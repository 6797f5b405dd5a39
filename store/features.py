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

`describe_features` says the same for a person (`keyline db status`): each feature recorded,
whether it is in force, and what it is or why it is off; `server_timescaledb` says what the
server offers now (installed? preloaded?), which can differ from what the database was given
when it was migrated (a database migrated without TimescaleDB keeps its plain tables).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from store.database import StoreError

FEATURES = ("timescaledb", "hypertable", "compression", "retention", "continuous_aggregates")
LABELS = {
    "timescaledb": "TimescaleDB extension",
    "hypertable": "samples as a hypertable (else partitioned by day)",
    "compression": "compression of old samples",
    "retention": "retention policy on samples (else old partitions dropped by Keyline)",
    "continuous_aggregates": "samples_5min as a continuous aggregate (else a table)",
    # recorded by 0019_rollups.sql
    "rollups": "rollups samples_5min, samples_hour, samples_day",
    "rollup_compression": "compression of old rollups",
}


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


@dataclass(frozen=True)
class FeatureState:
    """One row of store_features as a person reads it."""

    feature: str
    label: str
    in_force: bool
    detail: str  # what it is when on, why it is off otherwise


def describe_features(conn: psycopg.Connection) -> list[FeatureState]:
    """Every feature recorded in store_features (those of FEATURES first, confirmed by the
    catalog as detect_features does; those later migrations record, as recorded). Raises
    StoreError if the time-series schema is not there."""
    features = detect_features(conn)
    with conn.transaction():
        rows = conn.execute("SELECT feature, enabled, coalesce(detail, '')"
                            " FROM store_features").fetchall()
    states = []
    for feature, enabled, detail in sorted(
            rows, key=lambda row: (FEATURES.index(row[0]) if row[0] in FEATURES
                                   else len(FEATURES), row[0])):
        in_force = getattr(features, feature) if feature in FEATURES else bool(enabled)
        if enabled and not in_force:
            detail = (f"enabled at migration ({detail}), but what it needs is gone from the"
                      " database (extension dropped, or restored on a server without it)")
        elif feature == "timescaledb" and not in_force and timescaledb_preloaded(conn):
            detail += ("; the server preloads it now, but this database's time-series tables"
                       " were made without it and stay plain")
        states.append(FeatureState(feature, LABELS.get(feature, feature), in_force, detail))
    return states


def server_timescaledb(conn: psycopg.Connection) -> str:
    """What the server offers: TimescaleDB installed or not, preloaded or not."""
    with conn.transaction():
        version, preload = conn.execute(
            """SELECT (SELECT default_version FROM pg_catalog.pg_available_extensions
                        WHERE name = 'timescaledb'),
                      current_setting('shared_preload_libraries')""").fetchone()
    if version is None:
        return "TimescaleDB not installed"
    if timescaledb_preloaded(conn):
        return f"TimescaleDB {version} installed and preloaded"
    return (f"TimescaleDB {version} installed but not preloaded"
            f" (shared_preload_libraries = {preload!r})")


def timescaledb_preloaded(conn: psycopg.Connection) -> bool:
    """The server names TimescaleDB in shared_preload_libraries (bare or as $libdir/...)."""
    with conn.transaction():
        preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()[0]
    return "timescaledb" in {name.strip().strip('"').rsplit("/", 1)[-1]
                             for name in preload.split(",")}
