-- Who may do what. Two group roles (NOLOGIN); each station and each engineer
-- logs in with a role of its own that is a member of one of them
-- ("inspector history add-login"). Nothing at a station runs as the owner.
--   inspector_station   inserts verdicts and kept images, reads its own rows
--                       (login = current_user), reads the approvals;
--                       no UPDATE, DELETE, TRUNCATE or DDL
--   inspector_engineer  reads everything, writes overrides (who and when)
--                       and bundle approvals
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'inspector_station') THEN
        CREATE ROLE inspector_station NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'inspector_engineer') THEN
        CREATE ROLE inspector_engineer NOLOGIN;
    END IF;
END
$$;

REVOKE ALL ON inspections, kept_images, bundle_approvals, inspector_schema FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO inspector_station, inspector_engineer;
GRANT SELECT ON inspector_schema TO inspector_station, inspector_engineer;

GRANT SELECT, INSERT ON inspections, kept_images TO inspector_station;
GRANT SELECT ON bundle_approvals TO inspector_station;

GRANT SELECT ON inspections, kept_images, bundle_approvals TO inspector_engineer;
GRANT UPDATE (override_verdict, override_operator, override_login, override_time) ON inspections TO inspector_engineer;
GRANT INSERT ON bundle_approvals TO inspector_engineer;

ALTER TABLE inspections ENABLE ROW LEVEL SECURITY;
ALTER TABLE kept_images ENABLE ROW LEVEL SECURITY;

CREATE POLICY station_reads_own ON inspections FOR SELECT TO inspector_station USING (login = current_user);
CREATE POLICY station_inserts_own ON inspections FOR INSERT TO inspector_station WITH CHECK (login = current_user);
CREATE POLICY engineer_reads_all ON inspections FOR SELECT TO inspector_engineer USING (true);
CREATE POLICY engineer_overrides ON inspections FOR UPDATE TO inspector_engineer USING (true) WITH CHECK (true);

CREATE POLICY station_reads_own ON kept_images FOR SELECT TO inspector_station USING (login = current_user);
CREATE POLICY station_inserts_own ON kept_images FOR INSERT TO inspector_station
    WITH CHECK (login = current_user AND EXISTS (SELECT 1 FROM inspections i WHERE i.id = inspection_id));
CREATE POLICY engineer_reads_all ON kept_images FOR SELECT TO inspector_engineer USING (true);
