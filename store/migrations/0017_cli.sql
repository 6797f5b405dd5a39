-- CLI collection over SSH (collectors/cli.py, store/cli.py): each device's latest CLI status
-- and the SSH host keys Keyline trusts.
--
-- `device_cli_status` is the current picture, like `device_poll_status`: one row per device
-- polled over the CLI with its last status (ok, auth-failed, timeout, host-key-changed,
-- unexpected-prompt, unparseable-output, privilege-too-low, unreachable, error, no-profile),
-- why (`reason`), since when (`changed_at`, moved only when the status changes), when it was
-- last tried (`last_run_at`), and for a status an engineer has to read the device's words to
-- understand (unparseable output, an unexpected prompt) the raw output of that run,
-- size-bounded by the collector (settings cli.raw_output_max_bytes), never a configuration.
-- No foreign key: a batch must not fail because the inventory was reloaded under it.
--
-- `device_host_keys` is the trust record of every host key a device offered, never deleted:
-- the key first seen is trusted on first use (`trusted_by` 'first-use'); a different key
-- offered later is refused before any password is sent and kept as 'offered' until an
-- engineer accepts it (`keyline cli accept-host-key DEVICE`, `trusted_by` their name), which
-- retires the key trusted before. One trusted key per device at a time.

CREATE TABLE device_cli_status (
    device_id     bigint PRIMARY KEY,
    status        text NOT NULL CHECK (status <> ''),
    reason        text,
    changed_at    timestamptz NOT NULL,
    last_run_at   timestamptz NOT NULL,
    raw_output    text
);

CREATE TABLE device_host_keys (
    id            bigserial PRIMARY KEY,
    device_id     bigint NOT NULL REFERENCES devices (id),
    key_type      text NOT NULL CHECK (key_type <> ''),
    key_base64    text NOT NULL CHECK (key_base64 <> ''),
    fingerprint   text NOT NULL CHECK (fingerprint LIKE 'SHA256:%'),
    state         text NOT NULL CHECK (state IN ('trusted', 'offered', 'retired')),
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    trusted_by    text CHECK (trusted_by <> ''),  -- 'first-use' or the engineer who accepted
    trusted_at    timestamptz,
    CHECK ((state = 'offered') = (trusted_by IS NULL)),
    CHECK ((trusted_by IS NULL) = (trusted_at IS NULL)),
    UNIQUE (device_id, key_type, key_base64)
);

CREATE UNIQUE INDEX device_host_keys_one_trusted ON device_host_keys (device_id)
    WHERE state = 'trusted';

INSERT INTO metrics (name, unit, description) VALUES
    ('cli_response_ms', 'ms', 'how long one CLI poll of a device took (commands and answers)')
ON CONFLICT (name) DO NOTHING;
