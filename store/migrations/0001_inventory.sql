-- The inventory as imported from the YAML files (config/inventory).
--
-- Every inventory object gets a bigint id from one sequence, so an id names one object
-- whatever its kind: samples, alarms and outages refer to objects by that id alone.
-- `key` is the natural key the files use; `spec` is the object as declared (canonical JSON,
-- without file positions), which an import compares to decide "changed"; `source` is the
-- file:line it was last declared at. An object that leaves the files is retired
-- (`retired_at` set), never deleted, so its history stays readable; if its key comes back
-- the same row is restored.

CREATE SEQUENCE object_id_seq;

CREATE TABLE customers (
    id              bigint PRIMARY KEY DEFAULT nextval('object_id_seq'),
    key             text NOT NULL UNIQUE,
    name            text NOT NULL,
    account_manager text,
    contact_email   text,
    spec            jsonb NOT NULL,
    source          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    retired_at      timestamptz
);

CREATE TABLE sites (
    id          bigint PRIMARY KEY DEFAULT nextval('object_id_seq'),
    key         text NOT NULL UNIQUE,
    name        text NOT NULL,
    customer_id bigint REFERENCES customers (id),
    address     text,
    city        text,
    spec        jsonb NOT NULL,
    source      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);

-- Secrets are never stored: params holds the non-secret settings and the references
-- ({"source": "env", "name": "..."}) under "secrets".
CREATE TABLE credentials (
    id         bigint PRIMARY KEY DEFAULT nextval('object_id_seq'),
    key        text NOT NULL UNIQUE,
    kind       text NOT NULL CHECK (kind IN ('snmp_v2c', 'snmp_v3', 'ssh')),
    params     jsonb NOT NULL,
    spec       jsonb NOT NULL,
    source     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz
);

CREATE TABLE sla_contracts (
    id                      bigint PRIMARY KEY DEFAULT nextval('object_id_seq'),
    key                     text NOT NULL UNIQUE,
    name                    text NOT NULL,
    customer_id             bigint REFERENCES customers (id),
    availability_target_pct numeric(7, 4) NOT NULL
        CHECK (availability_target_pct > 0 AND availability_target_pct <= 100),
    latency_target_ms       double precision,
    jitter_target_ms        double precision,
    loss_target_pct         double precision,
    calendar                jsonb NOT NULL,
    priorities              jsonb NOT NULL,
    credits                 jsonb NOT NULL,
    monthly_charge          numeric(14, 2) NOT NULL,
    currency                text NOT NULL,
    spec                    jsonb NOT NULL,
    source                  text NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    retired_at              timestamptz
);

CREATE TABLE devices (
    id                 bigint PRIMARY KEY DEFAULT nextval('object_id_seq'),
    key                text NOT NULL UNIQUE,
    site_id            bigint REFERENCES sites (id),
    role               text NOT NULL,
    platform           text NOT NULL,
    management_address inet NOT NULL,
    snmp_port          integer NOT NULL CHECK (snmp_port BETWEEN 1 AND 65535),
    snmp_credential_id bigint NOT NULL REFERENCES credentials (id),
    cli_credential_id  bigint REFERENCES credentials (id),
    poller_group       text NOT NULL,
    spec               jsonb NOT NULL,
    source             text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    retired_at         timestamptz
);

CREATE TABLE ports (
    id          bigint PRIMARY KEY DEFAULT nextval('object_id_seq'),
    key         text NOT NULL UNIQUE,
    device_id   bigint NOT NULL REFERENCES devices (id),
    name        text NOT NULL,
    if_index    integer,
    speed_bps   bigint,
    description text,
    spec        jsonb NOT NULL,
    source      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz,
    UNIQUE (device_id, name)
);

CREATE TABLE links (
    id         bigint PRIMARY KEY DEFAULT nextval('object_id_seq'),
    key        text NOT NULL UNIQUE,
    a_port_id  bigint NOT NULL REFERENCES ports (id),
    z_port_id  bigint NOT NULL REFERENCES ports (id),
    cost       integer NOT NULL CHECK (cost > 0),
    spec       jsonb NOT NULL,
    source     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    retired_at timestamptz,
    CHECK (a_port_id <> z_port_id)
);

CREATE TABLE circuits (
    id              bigint PRIMARY KEY DEFAULT nextval('object_id_seq'),
    key             text NOT NULL UNIQUE,
    customer_id     bigint NOT NULL REFERENCES customers (id),
    service_type    text NOT NULL
        CHECK (service_type IN ('leased_line', 'mpls_l3vpn', 'e_line', 'internet_access')),
    bandwidth_bps   bigint NOT NULL CHECK (bandwidth_bps > 0),
    a_port_id       bigint NOT NULL REFERENCES ports (id),
    z_port_id       bigint NOT NULL REFERENCES ports (id),
    sla_contract_id bigint REFERENCES sla_contracts (id),
    monthly_charge  numeric(14, 2),
    description     text,
    spec            jsonb NOT NULL,
    source          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    retired_at      timestamptz
);

-- A circuit's declared path, hop by hop from the A end (seq 1) to the Z end.
CREATE TABLE circuit_hops (
    circuit_id  bigint NOT NULL REFERENCES circuits (id),
    seq         integer NOT NULL CHECK (seq > 0),
    device_id   bigint NOT NULL REFERENCES devices (id),
    in_port_id  bigint NOT NULL REFERENCES ports (id),
    out_port_id bigint NOT NULL REFERENCES ports (id),
    PRIMARY KEY (circuit_id, seq)
);

CREATE TABLE vpns (
    id          bigint PRIMARY KEY DEFAULT nextval('object_id_seq'),
    key         text NOT NULL UNIQUE,
    customer_id bigint NOT NULL REFERENCES customers (id),
    name        text NOT NULL,
    spec        jsonb NOT NULL,
    source      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);

CREATE TABLE vpn_sites (
    vpn_id  bigint NOT NULL REFERENCES vpns (id),
    site_id bigint NOT NULL REFERENCES sites (id),
    PRIMARY KEY (vpn_id, site_id)
);

CREATE TABLE vpn_circuits (
    vpn_id     bigint NOT NULL REFERENCES vpns (id),
    circuit_id bigint NOT NULL REFERENCES circuits (id),
    PRIMARY KEY (vpn_id, circuit_id)
);

-- Users come from the inventory (origin 'inventory': name, role, customer) or from
-- `keyline user add` (origin 'local', which an import leaves alone). Password hashes are set
-- only by `keyline user add/passwd`; an import never touches them.
CREATE TABLE users (
    id              bigint PRIMARY KEY DEFAULT nextval('object_id_seq'),
    key             text NOT NULL UNIQUE,
    role            text NOT NULL
        CHECK (role IN ('noc', 'engineer', 'account_manager', 'customer', 'admin')),
    customer_id     bigint REFERENCES customers (id),
    full_name       text,
    email           text,
    password_hash   text,
    password_set_at timestamptz,
    origin          text NOT NULL DEFAULT 'inventory' CHECK (origin IN ('inventory', 'local')),
    spec            jsonb NOT NULL,
    source          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    retired_at      timestamptz,
    CHECK ((role = 'customer') = (customer_id IS NOT NULL))
);

-- One row per import that changed something: when, from which files, and the summary.
CREATE TABLE import_runs (
    id          bigserial PRIMARY KEY,
    imported_at timestamptz NOT NULL DEFAULT now(),
    files       text[] NOT NULL,
    summary     jsonb NOT NULL
);

CREATE INDEX sites_customer ON sites (customer_id);
CREATE INDEX devices_site ON devices (site_id);
CREATE INDEX ports_device ON ports (device_id);
CREATE INDEX circuits_customer ON circuits (customer_id);
CREATE INDEX circuits_a_port ON circuits (a_port_id);
CREATE INDEX circuits_z_port ON circuits (z_port_id);
CREATE INDEX circuit_hops_device ON circuit_hops (device_id);
CREATE INDEX vpns_customer ON vpns (customer_id);
CREATE INDEX users_customer ON users (customer_id);
