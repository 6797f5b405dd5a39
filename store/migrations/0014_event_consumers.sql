-- Where each service that follows the store's events got to (store/consumer.py).
--
-- A consumer (the alarm pipeline, the ticket service...) handles a batch of events and
-- saves the id of the last one in the same transaction as the batch's effects, so that it
-- resumes exactly after the last batch it committed. The alarm pipeline kept its position in
-- `alarm_pipeline_state`, with the same columns: that table becomes the one for every
-- consumer, rows and all, so an install upgraded mid-stream resumes where it was. Its rows
-- were named by pipeline ("main"); a consumer's name says its service too ("alarms:main").

ALTER TABLE alarm_pipeline_state RENAME TO event_consumers;
ALTER INDEX alarm_pipeline_state_pkey RENAME TO event_consumers_pkey;
UPDATE event_consumers SET name = 'alarms:' || name;

COMMENT ON TABLE event_consumers IS
    'The id of the last event each consumer (store/consumer.py) handled, saved with its effects';
