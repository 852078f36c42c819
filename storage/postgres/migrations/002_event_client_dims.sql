-- Client dimensions the agent derives (language, screen, geo, browser, OS,
-- device) as dims ids, 0 = absent, kinds 6..13 of the dims table. Adding
-- columns with a constant default is instant and keeps rows narrow (4 bytes each).
ALTER TABLE events
    ADD COLUMN language_id integer NOT NULL DEFAULT 0,
    ADD COLUMN screen_id   integer NOT NULL DEFAULT 0,
    ADD COLUMN country_id  integer NOT NULL DEFAULT 0,
    ADD COLUMN region_id   integer NOT NULL DEFAULT 0,
    ADD COLUMN city_id     integer NOT NULL DEFAULT 0,
    ADD COLUMN browser_id  integer NOT NULL DEFAULT 0,
    ADD COLUMN os_id       integer NOT NULL DEFAULT 0,
    ADD COLUMN device_id   integer NOT NULL DEFAULT 0;
