-- Customer-facing and internal text kept apart (portal/alarm_access.py), and a circuit's own
-- traffic where its end is a shared operator port.
--
-- People's actions on alarms and maintenance windows carry two texts: the internal note
-- (staff only) and an optional customer note, the only free text a customer ever reads. The
-- existing columns are the internal notes, so every row written before this migration stays
-- internal: `alarms.ack_comment`, `alarm_timeline.comment` (also the pipeline's own notes,
-- such as an impact count) and `maintenance_windows.reason`. The new columns hold the
-- customer notes and start empty.
--
-- A circuit end may name a per-circuit sub-interface of its port (the inventory's
-- `sub_interface`, a port of the same device): the customer's traffic figures of that end
-- come from it, as the physical port of a shared PE carries other customers' traffic too.

ALTER TABLE alarms ADD COLUMN ack_customer_note text;
ALTER TABLE alarm_timeline ADD COLUMN customer_note text;
ALTER TABLE maintenance_windows ADD COLUMN customer_note text;

ALTER TABLE circuits ADD COLUMN a_sub_port_id bigint REFERENCES ports (id);
ALTER TABLE circuits ADD COLUMN z_sub_port_id bigint REFERENCES ports (id);

-- A begun window's customer note is history like its reason.
CREATE OR REPLACE FUNCTION maintenance_windows_history() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.ends_at <= now() THEN
        RAISE EXCEPTION 'maintenance window % ended at %: past windows are immutable',
            OLD.id, OLD.ends_at USING ERRCODE = 'check_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        IF OLD.starts_at <= now() THEN
            RAISE EXCEPTION 'maintenance window % has begun: end it instead of deleting it',
                OLD.id USING ERRCODE = 'check_violation';
        END IF;
        RETURN OLD;
    END IF;
    IF OLD.starts_at <= now() AND (NEW.starts_at IS DISTINCT FROM OLD.starts_at
            OR NEW.scope IS DISTINCT FROM OLD.scope OR NEW.reason IS DISTINCT FROM OLD.reason
            OR NEW.customer_note IS DISTINCT FROM OLD.customer_note
            OR NEW.declared_by IS DISTINCT FROM OLD.declared_by
            OR NEW.declared_at IS DISTINCT FROM OLD.declared_at) THEN
        RAISE EXCEPTION 'maintenance window % has begun: only its end may change', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.starts_at <= now() AND NEW.ends_at < now() - interval '1 second' THEN
        RAISE EXCEPTION 'maintenance window % cannot end in the past', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
