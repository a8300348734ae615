-- One database per owning service (docs/design.md §1); no service reads another's.
-- Run once by the postgres image on an empty data volume, as POSTGRES_USER, which
-- therefore owns them; each service's `migrate` job then builds its schema.
CREATE DATABASE auth;
CREATE DATABASE inventory;
CREATE DATABASE orders;
CREATE DATABASE notifications;
