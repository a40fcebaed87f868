-- The verdicts of a line of stations: one row per inspection, written by the
-- stations, read by the line's engineers. Columns as in the SQLite history
-- (inspection_core/history/records.py), plus:
--   uid     the station-generated id of the verdict: a replay of the spool
--           inserts it ON CONFLICT (uid) DO NOTHING, so it is recorded once
--   login   the database login that recorded it (row-level security keys on it)
CREATE TABLE inspections (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    uid               text             NOT NULL UNIQUE,
    login             name             NOT NULL DEFAULT current_user,
    time              text             NOT NULL,  -- UTC ISO 8601 with ms, e.g. 2024-05-01T12:00:00.123Z
    epoch             double precision NOT NULL,  -- the same instant, seconds since 1970
    station           text             NOT NULL DEFAULT '',
    source            text             NOT NULL DEFAULT '',
    image_ref         text             NOT NULL DEFAULT '',
    bundle            text             NOT NULL DEFAULT '',
    bundle_id         text             NOT NULL DEFAULT '',
    score             double precision,
    threshold_high    double precision,
    threshold_low     double precision,
    verdict           text             NOT NULL CHECK (verdict IN ('PASS', 'REVIEW', 'FAIL', 'INVALID')),
    override_verdict  text             CHECK (override_verdict IN ('PASS', 'REVIEW', 'FAIL', 'INVALID')),
    override_operator text,
    override_login    name,
    override_time     timestamptz,
    latency_ms        double precision,
    note              text             NOT NULL DEFAULT '',
    recorded_at       timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX ix_inspections_epoch ON inspections (epoch);
CREATE INDEX ix_inspections_verdict ON inspections (verdict, epoch);
CREATE INDEX ix_inspections_bundle ON inspections (bundle, epoch);
CREATE INDEX ix_inspections_station ON inspections (station, epoch);
CREATE INDEX ix_inspections_login ON inspections (login, epoch);

-- A kept FAIL/REVIEW image: its path relative to the line's image folder (a
-- shared folder every station and engineer mounts; docs/adr/0018). A row of
-- its own, inserted after the verdict, so a station never needs UPDATE.
CREATE TABLE kept_images (
    inspection_id bigint NOT NULL PRIMARY KEY REFERENCES inspections (id),
    path          text   NOT NULL,
    login         name   NOT NULL DEFAULT current_user
);

-- The bundle the line's engineer approved; the newest row is the one in force.
CREATE TABLE bundle_approvals (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bundle      text        NOT NULL,
    bundle_id   text        NOT NULL,
    sha256      text        NOT NULL DEFAULT '',
    approved_by text        NOT NULL,
    login       name        NOT NULL DEFAULT current_user,
    approved_at timestamptz NOT NULL DEFAULT now()
);
