-- The demo domain's tables (PostgreSQL 15). Applied once by connectors/demo/migrate.py,
-- inside one transaction; recorded in public.schema_migrations as version '0001_init'.

CREATE TABLE public.customers (
    id          bigint      PRIMARY KEY,
    email       text        NOT NULL,
    full_name   text        NOT NULL,
    segment     text        NOT NULL CHECK (segment IN ('consumer', 'smb', 'enterprise')),
    tier        text        NOT NULL CHECK (tier IN ('bronze', 'silver', 'gold', 'platinum')),
    country     text        NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

CREATE TABLE public.orders (
    id            bigint      PRIMARY KEY,
    customer_id   bigint      NOT NULL REFERENCES public.customers (id),
    status        text        NOT NULL
                  CHECK (status IN ('created', 'paid', 'shipped', 'cancelled', 'refunded')),
    amount_cents  bigint      NOT NULL CHECK (amount_cents >= 0),
    currency      text        NOT NULL DEFAULT 'EUR',
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

CREATE INDEX orders_customer_id_idx ON public.orders (customer_id);

-- Debezium: UPDATE and DELETE events carry the whole old row, not only the key.
ALTER TABLE public.customers REPLICA IDENTITY FULL;
ALTER TABLE public.orders REPLICA IDENTITY FULL;
