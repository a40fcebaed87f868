-- A FAIL's defect type as the bundle's classifier named it ("scratch",
-- "unknown"); NULL when none was named (as the SQLite history's schema 2;
-- docs/adr/0020). The grants of 0002 are on the whole table, and the
-- row-level policies on rows, so stations insert it and read their own
-- rows' types, engineers read every row's, with nothing more granted.
ALTER TABLE inspections ADD COLUMN defect_type text;
CREATE INDEX ix_inspections_type ON inspections (defect_type, epoch);
