-- Webhook deliveries already accepted, by (source, delivery id): a replayed
-- delivery is refused even after a restart. Rows older than the replay
-- window are pruned (a delivery that old is refused by its timestamp).
CREATE TABLE webhook_deliveries (
    source       TEXT NOT NULL,
    delivery_id  TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, delivery_id)
);

CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);
