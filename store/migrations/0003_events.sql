-- Events between stages: a row per event, announced with NOTIFY (see store/events.py).
--
-- NOTIFY alone is fire-and-forget: a listener that is disconnected at that moment never sees
-- the message. So every event is first a row here, with an increasing id; the notification
-- only says "event N exists" (with the payload when it is small), and a subscriber that was
-- away reads what it missed from this table, from the last id it saw. Rows are kept for a
-- while (store.events.prune_events) so that a late subscriber can catch up.

CREATE TABLE events (
    id      bigserial PRIMARY KEY,
    time    timestamptz NOT NULL DEFAULT now(),
    topic   text NOT NULL CHECK (topic <> ''),
    payload jsonb NOT NULL DEFAULT '{}'
);

-- For pruning old events by age.
CREATE INDEX events_time ON events (time);
