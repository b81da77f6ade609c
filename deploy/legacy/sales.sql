-- Sales (MariaDB, utf8mb4): the schema as the business runs it.
CREATE TABLE customers (
    id          INT AUTO_INCREMENT PRIMARY KEY,
    name        VARCHAR(200) NOT NULL,
    email       VARCHAR(254),
    country     CHAR(2),
    created_at  DATETIME     NOT NULL,
    acct_no     VARCHAR(10)
) DEFAULT CHARSET = utf8mb4;

CREATE TABLE products (
    id          INT PRIMARY KEY,
    title       VARCHAR(200)  NOT NULL,
    sku         VARCHAR(20),
    list_price  DECIMAL(12,2) NOT NULL,
    currency    CHAR(3)       NOT NULL
) DEFAULT CHARSET = utf8mb4;

CREATE TABLE orders (
    order_no     VARCHAR(20) PRIMARY KEY,
    customer_id  INT         NOT NULL,
    status       ENUM('draft','confirmed','shipped','delivered','cancelled') NOT NULL,
    ordered_at   DATETIME    NOT NULL,
    ship_from    VARCHAR(8),
    currency     CHAR(3)     NOT NULL,
    CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id)
) DEFAULT CHARSET = utf8mb4;

CREATE TABLE order_lines (
    order_no      VARCHAR(20)   NOT NULL,
    line_no       SMALLINT      NOT NULL,
    product_id    INT           NOT NULL,
    qty           INT           NOT NULL,
    unit_price    DECIMAL(12,2) NOT NULL,
    discount_pct  DECIMAL(5,2)  NOT NULL DEFAULT 0,
    PRIMARY KEY (order_no, line_no),
    CONSTRAINT order_lines_order_fk FOREIGN KEY (order_no) REFERENCES orders (order_no),
    CONSTRAINT order_lines_product_fk FOREIGN KEY (product_id) REFERENCES products (id)
) DEFAULT CHARSET = utf8mb4;

CREATE INDEX orders_customer_id_idx ON orders (customer_id);
CREATE INDEX orders_ordered_at_idx ON orders (ordered_at);
CREATE INDEX products_sku_idx ON products (sku);
CREATE INDEX customers_acct_no_idx ON customers (acct_no);
