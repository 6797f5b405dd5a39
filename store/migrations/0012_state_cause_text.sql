-- A circuit's service state cause in the reader's language.
--
-- `circuit_states.cause` keeps the cause in English (the command line, the logs, the API).
-- `cause_text` keeps the same cause as data (alarms/texts.py: a "cause_reasons" text whose
-- parameter is the list of reasons, each a code and its parameters), so that the portal
-- renders it in each viewer's language as it does alarm summaries. Rows written before this
-- migration have none (NULL) and show their English cause.

ALTER TABLE circuit_states ADD COLUMN cause_text jsonb;
