//! Webhook deliveries already accepted: replay protection that survives a
//! restart (GHL: "reject any requests with duplicate `webhookId` values").

use chrono::{DateTime, Utc};

use super::error::{op_err, Result};
use super::sql::us;
use super::Store;

impl Store {
    /// Records a delivery; `false` if `(source, delivery_id)` was already
    /// accepted (a replay). One statement, so two concurrent deliveries of
    /// the same id cannot both be accepted.
    pub async fn accept_delivery(
        &self,
        source: &str,
        delivery_id: &str,
        received_at: DateTime<Utc>,
    ) -> Result<bool> {
        let inserted = on_pool!(self, |p| {
            sqlx::query(
                "INSERT INTO webhook_deliveries (source, delivery_id, received_at) \
                 VALUES ($1, $2, $3) ON CONFLICT (source, delivery_id) DO NOTHING",
            )
            .bind(source)
            .bind(delivery_id)
            .bind(us(received_at))
            .execute(p)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(op_err(|| {
            format!("accept_delivery(source={source}, id={delivery_id})")
        }))?;
        Ok(inserted == 1)
    }

    /// Forgets deliveries received before `before`; returns how many.
    pub async fn prune_deliveries(&self, before: DateTime<Utc>) -> Result<u64> {
        on_pool!(self, |p| {
            sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
                .bind(us(before))
                .execute(p)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(op_err(|| "prune_deliveries".to_owned()))
    }
}
