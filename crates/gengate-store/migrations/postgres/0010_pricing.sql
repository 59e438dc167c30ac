-- Issue 23: an account's price adjustment in percent (-99 .. 1000; 0 = list
-- price), and the version of the model's price each task was priced with.
ALTER TABLE accounts ADD COLUMN price_adjustment INTEGER NOT NULL DEFAULT 0
    CHECK (price_adjustment BETWEEN -99 AND 1000);
ALTER TABLE tasks ADD COLUMN price_version TEXT;
