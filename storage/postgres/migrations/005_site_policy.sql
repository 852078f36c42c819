-- Per-site edge policy, pushed to agents with the site config.
-- dnt: what a browser hit with DNT: 1 or Sec-GPC: 1 becomes on this site
-- ('drop', 'cookieless', 'ignore'); '' leaves it to the agent's --dnt.
-- keep_params: page and referrer query parameters kept beyond utm_* and
-- gclid (lower case names).
ALTER TABLE sites
    ADD COLUMN dnt         text   NOT NULL DEFAULT ''
        CHECK (dnt IN ('', 'drop', 'cookieless', 'ignore')),
    ADD COLUMN keep_params text[] NOT NULL DEFAULT '{}';
