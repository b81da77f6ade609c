-- Warehouse (PostgreSQL): the schema as the business runs it.
CREATE TABLE locations (
    code        varchar(8) PRIMARY KEY,
    name        text       NOT NULL,
    city        text       NOT NULL,
    country     char(2)    NOT NULL,
    timezone    text       NOT NULL
);

CREATE TABLE items (
    sku           varchar(20) PRIMARY KEY,
    name          text        NOT NULL,
    description   text,
    unit          varchar(8)  NOT NULL DEFAULT 'EA',
    weight_grams  integer,
    active        boolean     NOT NULL DEFAULT true,
    updated_at    timestamptz NOT NULL
);

CREATE TABLE stock (
    sku            varchar(20) NOT NULL REFERENCES items (sku),
    location_code  varchar(8)  NOT NULL REFERENCES locations (code),
    on_hand        integer     NOT NULL,
    reserved       integer     NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (sku, location_code)
);

CREATE TABLE movements (
    id             bigserial   PRIMARY KEY,
    sku            varchar(20) NOT NULL REFERENCES items (sku),
    location_code  varchar(8)  NOT NULL REFERENCES locations (code),
    qty            integer     NOT NULL,
    kind           varchar(12) NOT NULL,
    reference      varchar(32),
    moved_at       timestamptz NOT NULL
);

CREATE INDEX movements_reference_idx ON movements (reference);
CREATE INDEX movements_sku_moved_at_idx ON movements (sku, moved_at);
CREATE INDEX items_lower_name_idx ON items (lower(name));
