-- event_param reads one string parameter out of events.params, the
-- MessagePack map written by storage/postgres (EventParams: "ps" event
-- parameters, "pn" numeric parameters, "up" user properties), so reports can
-- group and filter by custom parameters without decoding rows in the
-- application. It returns NULL when the parameter is absent, is not a string
-- or the bytes are not MessagePack it understands (truncated, unknown type
-- codes); it raises only for a string that is not UTF-8, which the writer
-- never stores. The query engine (customEvent:, customUser: dimensions)
-- calls it.

-- event_param_head reads the MessagePack header at byte offset pos (0-based):
-- kind 's' for a string (len bytes from body), 'm' for a map (len entries
-- from body), 'x' for anything else or a truncated header.
CREATE FUNCTION event_param_head(b bytea, pos integer, OUT kind "char", OUT len bigint, OUT body integer)
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    n integer := length(b);
    t integer;
    w integer := 0; -- bytes of the length field
BEGIN
    kind := 'x';
    IF pos < 0 OR pos >= n THEN
        RETURN;
    END IF;
    t := get_byte(b, pos);
    IF t BETWEEN 160 AND 191 THEN          -- fixstr
        kind := 's'; len := t - 160; body := pos + 1;
    ELSIF t BETWEEN 128 AND 143 THEN       -- fixmap
        kind := 'm'; len := t - 128; body := pos + 1;
        RETURN;
    ELSIF t IN (217, 218, 219) THEN        -- str8, str16, str32
        kind := 's'; w := CASE t WHEN 217 THEN 1 WHEN 218 THEN 2 ELSE 4 END;
    ELSIF t IN (222, 223) THEN             -- map16, map32
        kind := 'm'; w := CASE t WHEN 222 THEN 2 ELSE 4 END;
    ELSE
        RETURN;
    END IF;
    IF w > 0 THEN
        IF pos + w >= n THEN
            kind := 'x';
            RETURN;
        END IF;
        len := 0;
        FOR i IN 1..w LOOP
            len := len * 256 + get_byte(b, pos + i);
        END LOOP;
        body := pos + 1 + w;
    END IF;
    IF kind = 's' AND body + len > n THEN
        kind := 'x';
    END IF;
END
$$;

-- event_param_skip returns the offset just past the MessagePack value at pos,
-- or -1 when the bytes end first or hold an unused type code.
CREATE FUNCTION event_param_skip(b bytea, pos integer) RETURNS integer
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    n integer := length(b);
    todo bigint := 1; -- values still to skip; containers add their members
    t integer;
    w integer;        -- bytes of a length or count field
    len bigint;
    p bigint := pos;
BEGIN
    WHILE todo > 0 LOOP
        IF p < 0 OR p >= n THEN
            RETURN -1;
        END IF;
        t := get_byte(b, p::integer);
        p := p + 1;
        todo := todo - 1;
        w := 0;
        IF t <= 127 OR t >= 224 OR t IN (192, 194, 195) THEN
            NULL;                               -- fixint, nil, false, true
        ELSIF t BETWEEN 128 AND 143 THEN
            todo := todo + 2 * (t - 128);       -- fixmap
        ELSIF t BETWEEN 144 AND 159 THEN
            todo := todo + (t - 144);           -- fixarray
        ELSIF t BETWEEN 160 AND 191 THEN
            p := p + (t - 160);                 -- fixstr
        ELSIF t IN (204, 208) THEN p := p + 1;  -- uint8, int8
        ELSIF t IN (205, 209) THEN p := p + 2;  -- uint16, int16
        ELSIF t IN (202, 206, 210) THEN p := p + 4; -- float32, uint32, int32
        ELSIF t IN (203, 207, 211) THEN p := p + 8; -- float64, uint64, int64
        ELSIF t BETWEEN 212 AND 216 THEN        -- fixext 1, 2, 4, 8, 16
            p := p + 1 + (1 << (t - 212));
        ELSE
            w := CASE
                WHEN t IN (196, 199, 217) THEN 1    -- bin8, ext8, str8
                WHEN t IN (197, 200, 218, 220, 222) THEN 2
                WHEN t IN (198, 201, 219, 221, 223) THEN 4
                ELSE 0 END;
            IF w = 0 OR p + w > n THEN
                RETURN -1;                      -- 193 (never used) or truncated
            END IF;
            len := 0;
            FOR i IN 0..w - 1 LOOP
                len := len * 256 + get_byte(b, (p + i)::integer);
            END LOOP;
            p := p + w;
            IF t IN (220, 221) THEN
                todo := todo + len;             -- array16, array32
            ELSIF t IN (222, 223) THEN
                todo := todo + 2 * len;         -- map16, map32
            ELSIF t IN (199, 200, 201) THEN
                p := p + 1 + len;               -- ext: type byte, then data
            ELSE
                p := p + len;                   -- bin, str
            END IF;
        END IF;
    END LOOP;
    IF p > n THEN
        RETURN -1;
    END IF;
    RETURN p::integer;
END
$$;

CREATE FUNCTION event_param(params bytea, section text, name text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    want_section bytea := convert_to(section, 'UTF8');
    want_name bytea := convert_to(name, 'UTF8');
    h record;
    pos integer;
    entries bigint;
BEGIN
    -- Most events lack a given parameter: a byte search settles them
    -- without walking the map.
    IF position(want_name IN params) = 0 THEN
        RETURN NULL;
    END IF;
    h := event_param_head(params, 0);
    IF h.kind <> 'm' THEN
        RETURN NULL;
    END IF;
    entries := h.len;
    pos := h.body;
    WHILE entries > 0 LOOP
        entries := entries - 1;
        h := event_param_head(params, pos);
        IF h.kind <> 's' THEN
            RETURN NULL;
        END IF;
        pos := h.body + h.len;
        IF substring(params FROM h.body + 1 FOR h.len::integer) = want_section THEN
            h := event_param_head(params, pos);
            IF h.kind <> 'm' THEN
                RETURN NULL;
            END IF;
            entries := h.len;
            pos := h.body;
            WHILE entries > 0 LOOP
                entries := entries - 1;
                h := event_param_head(params, pos);
                IF h.kind <> 's' THEN
                    RETURN NULL;
                END IF;
                pos := h.body + h.len;
                IF substring(params FROM h.body + 1 FOR h.len::integer) = want_name THEN
                    h := event_param_head(params, pos);
                    IF h.kind <> 's' THEN
                        RETURN NULL;
                    END IF;
                    RETURN convert_from(substring(params FROM h.body + 1 FOR h.len::integer), 'UTF8');
                END IF;
                pos := event_param_skip(params, pos);
                IF pos < 0 THEN
                    RETURN NULL;
                END IF;
            END LOOP;
            RETURN NULL;
        END IF;
        pos := event_param_skip(params, pos);
        IF pos < 0 THEN
            RETURN NULL;
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
