-- Configuration history: the running configuration of each device, version by version
-- (see store/configs.py and collectors/config_history.py).
--
-- `device_configs` holds a version each time a fetch found text different from the latest
-- version of that device: version 1 is the first fetch, and a fetch that finds the same
-- text only moves the latest version's `last_seen_at`. The text is the configuration as
-- fetched, normalised and with every secret masked by its platform's rules
-- (collectors/cli_profiles.py mask_config): a secret is never stored. `sha256` and
-- `size_bytes` are those of that stored text (UTF-8). A change happened between the
-- previous version's `last_seen_at` and this version's `fetched_at`.
--
-- A version is history that the alarm timeline and the engineers' diffs rely on: the
-- trigger below refuses to change anything but the latest version's `last_seen_at`
-- (forward only), and refuses deletes.
--
-- `device_config_fetches` is the outcome of each device's last fetch attempt (ok, or the
-- CLI status that stopped it and why), one row per device.

CREATE TABLE device_configs (
    device_id    bigint NOT NULL REFERENCES devices (id),
    version      integer NOT NULL CHECK (version >= 1),
    fetched_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    fetched_by   text NOT NULL CHECK (fetched_by <> ''),
    sha256       text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes   integer NOT NULL CHECK (size_bytes >= 0),
    text         text NOT NULL,
    PRIMARY KEY (device_id, version),
    CHECK (last_seen_at >= fetched_at)
);

CREATE INDEX device_configs_fetched ON device_configs (fetched_at);

CREATE FUNCTION device_configs_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'configuration version % of device % is history: it cannot be'
            ' deleted', OLD.version, OLD.device_id USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.device_id IS DISTINCT FROM OLD.device_id OR NEW.version IS DISTINCT FROM OLD.version
            OR NEW.fetched_at IS DISTINCT FROM OLD.fetched_at
            OR NEW.fetched_by IS DISTINCT FROM OLD.fetched_by
            OR NEW.sha256 IS DISTINCT FROM OLD.sha256
            OR NEW.size_bytes IS DISTINCT FROM OLD.size_bytes
            OR NEW.text IS DISTINCT FROM OLD.text
            OR NEW.last_seen_at < OLD.last_seen_at THEN
        RAISE EXCEPTION 'configuration version % of device % is history: only its last_seen_at'
            ' may move forward', OLD.version, OLD.device_id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER device_configs_history BEFORE UPDATE OR DELETE ON device_configs
    FOR EACH ROW EXECUTE FUNCTION device_configs_history();

CREATE TABLE device_config_fetches (
    device_id    bigint PRIMARY KEY REFERENCES devices (id),
    attempted_at timestamptz NOT NULL,
    status       text NOT NULL CHECK (status <> ''),
    reason       text,
    version      integer
);

-- The installation's key for the fingerprints that replace secrets in stored configurations
-- (collectors/cli_profiles.py mask_config: HMAC-SHA256, so a fingerprint on a page cannot be
-- tested against a list of likely passwords). Made once, at first use, by
-- store.configs.mask_key, the same for every collector of the store; never shown.
CREATE TABLE config_mask_key (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key       bytea NOT NULL CHECK (length(key) >= 32)
);
