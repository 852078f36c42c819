-- Per-site Data API quotas (GA4's property quotas). A NULL column takes the
-- aggregator's default (GA4's limits for a standard property, see README).
CREATE TABLE site_quotas (
    site_id                            integer PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
    tokens_per_day                     bigint CHECK (tokens_per_day > 0),
    tokens_per_hour                    bigint CHECK (tokens_per_hour > 0),
    tokens_per_project_per_hour        bigint CHECK (tokens_per_project_per_hour > 0),
    concurrent_requests                bigint CHECK (concurrent_requests > 0),
    server_errors_per_project_per_hour bigint CHECK (server_errors_per_project_per_hour > 0)
);
