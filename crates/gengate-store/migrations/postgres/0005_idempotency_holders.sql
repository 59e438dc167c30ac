-- An in-flight idempotency key names the process holding it: the node (a
-- persistent id), the boot (a random id per process start) and a token of
-- the one request. `locked_until` becomes a short lease the request's
-- heartbeat extends. A restarted node releases the holds of its previous
-- boots at once; any node may take over a hold whose lease ran out. Every
-- later write on a hold is a compare-and-set on its token.
ALTER TABLE idempotency_keys ADD COLUMN holder_node TEXT;
ALTER TABLE idempotency_keys ADD COLUMN holder_boot TEXT;
ALTER TABLE idempotency_keys ADD COLUMN hold_token TEXT;
CREATE INDEX idempotency_holds ON idempotency_keys(holder_node) WHERE state = 'in_flight';
