-- The notification outbox (store/outbox.py, sla/notify.py): every e-mail and webhook call
-- Keyline owes someone is first a row here, written in the same transaction as the change
-- that causes it (a ticket opened, escalated, resolved), so a notification exists exactly
-- when its cause was committed. The notifier delivers the rows and marks them; a row stays
-- until it was sent or gave up ('failed': kept, visible on the admin page, retried by hand).
--
-- `destination` is an e-mail address or the NAME of a webhook in the settings ([notify]
-- webhooks): never a URL, which may carry a token. `idempotency_key` is unique: queuing
-- the same notification twice keeps one row, and the receiver gets the key with every
-- attempt (delivery is at least once). `next_attempt_at` is when a pending row is due, and
-- for a row being sent ('sending') the end of its lease: a notifier killed mid-send leaves
-- the row 'sending', and it is due again once the lease is over. `ticket_id` names the
-- ticket a notification is about (no foreign key: the outbox outlives what it reports).

CREATE TABLE notification_outbox (
    id bigserial PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    channel text NOT NULL CHECK (channel IN ('email', 'webhook')),
    destination text NOT NULL CHECK (destination <> '' AND length(destination) <= 320),
    subject text NOT NULL,
    body text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    language text,
    idempotency_key text NOT NULL UNIQUE
        CHECK (idempotency_key <> '' AND length(idempotency_key) <= 500),
    ticket_id bigint,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text CHECK (length(last_error) <= 1000),
    sent_at timestamptz,
    CHECK ((state = 'sent') = (sent_at IS NOT NULL))
);

-- What the notifier claims: the due rows, pending or with a lease that ran out.
CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_at)
    WHERE state IN ('pending', 'sending');
-- The admin page and `keyline notify list`: newest first, per state.
CREATE INDEX notification_outbox_state ON notification_outbox (state, created_at DESC);
CREATE INDEX notification_outbox_ticket ON notification_outbox (ticket_id)
    WHERE ticket_id IS NOT NULL;
