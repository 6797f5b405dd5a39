-- Customer-caused time and issued SLA reports (see sla/ and docs/sla-statement.md).
--
-- `customer_caused_marks`: an operator's statement that a circuit's outage over
-- [starts_at, ends_at) was caused by its customer (a power cut at the customer's premises,
-- a customer's own change); the SLA figures then exclude that time like maintenance. A mark
-- changes what the operator pays, so it is an audit trail: it is never deleted or edited,
-- only withdrawn once, with who withdrew it, when and why. The trigger below enforces that.
--
-- `sla_reports`: a monthly SLA report as issued, for one customer (`kind` 'customer',
-- `subject` the customer's key) or for an account manager's customers ('account_manager',
-- `subject` the manager's login). `statement` is the whole statement with its figures as
-- sla/statement.py produced it; the store treats it as opaque JSON. An issued report is
-- immutable: a correction (a late customer-caused mark) issues the next `version` with its
-- `reason` and its `difference` from the version before, and version 1 stays as it was.

CREATE TABLE customer_caused_marks (
    id              bigserial PRIMARY KEY,
    circuit_id      bigint NOT NULL REFERENCES circuits (id),
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    reason          text NOT NULL CHECK (reason <> ''),
    marked_by       text NOT NULL CHECK (marked_by <> ''),
    marked_at       timestamptz NOT NULL DEFAULT now(),
    withdrawn_at    timestamptz,
    withdrawn_by    text CHECK (withdrawn_by <> ''),
    withdraw_reason text CHECK (withdraw_reason <> ''),
    CHECK (ends_at > starts_at),
    -- a withdrawal is whole: when, who and why, or nothing
    CHECK ((withdrawn_at IS NULL) = (withdrawn_by IS NULL)
           AND (withdrawn_at IS NULL) = (withdraw_reason IS NULL))
);

CREATE INDEX customer_caused_marks_circuit ON customer_caused_marks (circuit_id, starts_at);

CREATE FUNCTION customer_caused_marks_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'customer-caused mark % is in the audit trail: withdraw it instead of'
            ' deleting it', OLD.id USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.withdrawn_at IS NOT NULL THEN
        RAISE EXCEPTION 'customer-caused mark % was withdrawn at %: it cannot change again',
            OLD.id, OLD.withdrawn_at USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.id IS DISTINCT FROM OLD.id OR NEW.circuit_id IS DISTINCT FROM OLD.circuit_id
            OR NEW.starts_at IS DISTINCT FROM OLD.starts_at
            OR NEW.ends_at IS DISTINCT FROM OLD.ends_at
            OR NEW.reason IS DISTINCT FROM OLD.reason
            OR NEW.marked_by IS DISTINCT FROM OLD.marked_by
            OR NEW.marked_at IS DISTINCT FROM OLD.marked_at THEN
        RAISE EXCEPTION 'customer-caused mark % is in the audit trail: only its withdrawal may'
            ' be recorded (withdraw it and mark the corrected time)', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.withdrawn_at IS NULL OR NEW.withdrawn_by IS NULL OR NEW.withdrawn_by = ''
            OR coalesce(NEW.withdraw_reason, '') = '' THEN
        RAISE EXCEPTION 'withdrawing customer-caused mark % needs its time, who withdrew it and'
            ' a reason', OLD.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER customer_caused_marks_history BEFORE UPDATE OR DELETE ON customer_caused_marks
    FOR EACH ROW EXECUTE FUNCTION customer_caused_marks_history();

CREATE TABLE sla_reports (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('customer', 'account_manager')),
    subject     text NOT NULL CHECK (subject <> ''),
    customer_id bigint REFERENCES customers (id),
    month       text NOT NULL CHECK (month ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
    version     integer NOT NULL CHECK (version >= 1),
    issued_at   timestamptz NOT NULL,
    issued_by   text NOT NULL CHECK (issued_by <> ''),
    -- why this version was issued: NULL for version 1 (and where a later one's issuer
    -- gave no reason: its difference still says what changed)
    reason      text CHECK (reason <> ''),
    statement   jsonb NOT NULL,
    -- the change from the version before: NULL for version 1
    difference  jsonb,
    UNIQUE (kind, subject, month, version),
    CHECK ((kind = 'customer') = (customer_id IS NOT NULL)),
    -- version 1 has nothing to differ from; a later one states its difference
    CHECK ((version = 1) = (difference IS NULL) AND (version > 1 OR reason IS NULL))
);

CREATE INDEX sla_reports_customer_month ON sla_reports (customer_id, month);

CREATE FUNCTION sla_reports_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'SLA report % (% %, version %) was issued: issued reports are immutable:'
        ' issue a new version', OLD.id, OLD.subject, OLD.month, OLD.version
        USING ERRCODE = 'check_violation';
END $$;

CREATE TRIGGER sla_reports_immutable BEFORE UPDATE OR DELETE ON sla_reports
    FOR EACH ROW EXECUTE FUNCTION sla_reports_immutable();
