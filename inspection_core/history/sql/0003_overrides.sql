-- Overrides as rows of their own, appended, never updated: who (operator and
-- login) and when (the server's clock) of every decision are kept, and a
-- station's operator may override its own verdicts without any right to
-- UPDATE. The newest row of an inspection is the one in force; a row with a
-- NULL verdict clears the override. The override columns of inspections
-- (schema 1 and 2) move here.
CREATE TABLE overrides (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    inspection_id bigint      NOT NULL REFERENCES inspections (id),
    verdict       text        CHECK (verdict IN ('PASS', 'REVIEW', 'FAIL', 'INVALID')),
    operator      text        NOT NULL DEFAULT '',
    login         name        NOT NULL DEFAULT current_user,
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_overrides_inspection ON overrides (inspection_id, id DESC);

INSERT INTO overrides (inspection_id, verdict, operator, login, at)
    SELECT id, override_verdict, COALESCE(override_operator, ''), COALESCE(override_login, 'unknown'),
           COALESCE(override_time, now())
    FROM inspections WHERE override_verdict IS NOT NULL ORDER BY override_time, id;

DROP POLICY engineer_overrides ON inspections;
ALTER TABLE inspections DROP COLUMN override_verdict, DROP COLUMN override_operator, DROP COLUMN override_login,
    DROP COLUMN override_time;

REVOKE ALL ON overrides FROM PUBLIC;
GRANT SELECT, INSERT ON overrides TO inspector_station, inspector_engineer;
ALTER TABLE overrides ENABLE ROW LEVEL SECURITY;
-- a station: the overrides of its own inspections (the subquery sees only those), and its own new ones
CREATE POLICY station_reads_own ON overrides FOR SELECT TO inspector_station
    USING (EXISTS (SELECT 1 FROM inspections i WHERE i.id = inspection_id));
CREATE POLICY station_overrides_own ON overrides FOR INSERT TO inspector_station
    WITH CHECK (login = current_user AND EXISTS (SELECT 1 FROM inspections i WHERE i.id = inspection_id));
CREATE POLICY engineer_reads_all ON overrides FOR SELECT TO inspector_engineer USING (true);
CREATE POLICY engineer_overrides ON overrides FOR INSERT TO inspector_engineer WITH CHECK (login = current_user);
