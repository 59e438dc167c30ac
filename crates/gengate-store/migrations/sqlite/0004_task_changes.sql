-- Long polls learn of changes made on other nodes from one query per
-- second over recent changes, not one read per waiting request.
CREATE INDEX tasks_updated ON tasks(updated_at);
