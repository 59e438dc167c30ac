//! The webhook SQL both engines share, expanded per engine like `engine.rs`.
//! Only the delivery lease differs (PostgreSQL adds `FOR UPDATE SKIP LOCKED`).

pub(crate) const ENDPOINT_COLS: &str = "id, account_id, name, url, event_types, status, secret, previous_secret, previous_secret_until, last_success_at, last_failure_at, failure_count, failing_since, created_at, updated_at, disabled_at, revoked_at";
pub(crate) const EVENT_COLS: &str = "id, account_id, type, task_id, endpoint_id, created_at, data";

macro_rules! impl_webhook_store {
    ($store:ty, $db:ty, delivery_lease_sql = $lease_sql:expr) => {
        mod webhook_sql {
            use super::*;
            use $crate::engine::{corrupt, json_text};
            use $crate::webhook_engine::{ENDPOINT_COLS, EVENT_COLS};
            use $crate::webhooks::*;
            use $crate::{StoreError, StoreResult};
            use gengate_core::Timestamp;
            use gengate_core::ids::{AccountId, DeliveryId, EventId, TaskId, WebhookEndpointId};
            use sqlx::{AssertSqlSafe, Row};

            type DbRow = <$db as sqlx::Database>::Row;

            fn ts(ms: i64) -> Timestamp {
                Timestamp::from_millis(ms)
            }

            fn opt_ts(v: Option<i64>) -> Option<Timestamp> {
                v.map(Timestamp::from_millis)
            }

            fn endpoint_from_row(r: &DbRow) -> StoreResult<EndpointRecord> {
                let types: String = r.try_get("event_types")?;
                let status: String = r.try_get("status")?;
                Ok(EndpointRecord {
                    id: WebhookEndpointId::from_trusted(r.try_get("id")?),
                    account_id: AccountId::from_trusted(r.try_get("account_id")?),
                    name: r.try_get("name")?,
                    url: r.try_get("url")?,
                    event_types: serde_json::from_str(&types).map_err(|e| corrupt("event_types", e))?,
                    enabled: status == "active",
                    secret: r.try_get("secret")?,
                    previous_secret: r.try_get("previous_secret")?,
                    previous_secret_until: opt_ts(r.try_get("previous_secret_until")?),
                    last_success_at: opt_ts(r.try_get("last_success_at")?),
                    last_failure_at: opt_ts(r.try_get("last_failure_at")?),
                    failure_count: r.try_get("failure_count")?,
                    failing_since: opt_ts(r.try_get("failing_since")?),
                    created_at: ts(r.try_get("created_at")?),
                    updated_at: ts(r.try_get("updated_at")?),
                    disabled_at: opt_ts(r.try_get("disabled_at")?),
                    revoked_at: opt_ts(r.try_get("revoked_at")?),
                })
            }

            fn event_from_row(r: &DbRow) -> StoreResult<EventRecord> {
                Ok(EventRecord {
                    id: EventId::from_trusted(r.try_get("id")?),
                    account_id: AccountId::from_trusted(r.try_get("account_id")?),
                    event_type: r.try_get("type")?,
                    task_id: r.try_get::<Option<String>, _>("task_id")?.map(TaskId::from_trusted),
                    endpoint_id: r
                        .try_get::<Option<String>, _>("endpoint_id")?
                        .map(WebhookEndpointId::from_trusted),
                    created_at: ts(r.try_get("created_at")?),
                    data: r
                        .try_get::<Option<String>, _>("data")?
                        .map(|d| serde_json::from_str(&d).map_err(|e| corrupt("event data", e)))
                        .transpose()?,
                })
            }

            fn subscribed(event_types_json: &str, event_type: &str) -> bool {
                serde_json::from_str::<Vec<String>>(event_types_json)
                    .map(|v| v.iter().any(|t| t == event_type))
                    .unwrap_or(false)
            }

            impl $store {
                async fn live_endpoint<'e, E>(
                    exec: E,
                    account: &AccountId,
                    id: &WebhookEndpointId,
                ) -> StoreResult<Option<EndpointRecord>>
                where
                    E: sqlx::Executor<'e, Database = $db>,
                {
                    let sql = format!(
                        "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL"
                    );
                    sqlx::query(AssertSqlSafe(sql))
                        .bind(id.as_str())
                        .bind(account.as_str())
                        .fetch_optional(exec)
                        .await?
                        .as_ref()
                        .map(endpoint_from_row)
                        .transpose()
                }
            }

            #[async_trait::async_trait]
            impl WebhookStore for $store {
                async fn create_endpoint(&self, e: &EndpointRecord) -> StoreResult<()> {
                    let sql = format!(
                        "INSERT INTO webhook_endpoints ({ENDPOINT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
                    );
                    sqlx::query(AssertSqlSafe(sql))
                        .bind(e.id.as_str())
                        .bind(e.account_id.as_str())
                        .bind(&e.name)
                        .bind(&e.url)
                        .bind(json_text(&e.event_types))
                        .bind(if e.enabled { "active" } else { "disabled" })
                        .bind(&e.secret)
                        .bind(e.previous_secret.clone())
                        .bind(e.previous_secret_until.map(|t| t.as_millis()))
                        .bind(e.last_success_at.map(|t| t.as_millis()))
                        .bind(e.last_failure_at.map(|t| t.as_millis()))
                        .bind(e.failure_count)
                        .bind(e.failing_since.map(|t| t.as_millis()))
                        .bind(e.created_at.as_millis())
                        .bind(e.updated_at.as_millis())
                        .bind(e.disabled_at.map(|t| t.as_millis()))
                        .bind(e.revoked_at.map(|t| t.as_millis()))
                        .execute(&self.writer)
                        .await?;
                    Ok(())
                }

                async fn get_endpoint(
                    &self,
                    account: &AccountId,
                    id: &WebhookEndpointId,
                ) -> StoreResult<Option<EndpointRecord>> {
                    Self::live_endpoint(&self.reader, account, id).await
                }

                async fn get_endpoint_unscoped(
                    &self,
                    id: &WebhookEndpointId,
                ) -> StoreResult<Option<EndpointRecord>> {
                    let sql = format!("SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE id = $1");
                    sqlx::query(AssertSqlSafe(sql))
                        .bind(id.as_str())
                        .fetch_optional(&self.reader)
                        .await?
                        .as_ref()
                        .map(endpoint_from_row)
                        .transpose()
                }

                async fn list_endpoints(
                    &self,
                    account: &AccountId,
                    starting_after: Option<&WebhookEndpointId>,
                    limit: u32,
                ) -> StoreResult<(Vec<EndpointRecord>, bool)> {
                    let cursor: Option<i64> = match starting_after {
                        None => None,
                        Some(id) => Some(
                            sqlx::query_scalar("SELECT created_at FROM webhook_endpoints WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL")
                                .bind(id.as_str())
                                .bind(account.as_str())
                                .fetch_optional(&self.reader)
                                .await?
                                .ok_or_else(|| StoreError::NotFound(format!("webhook endpoint {id}")))?,
                        ),
                    };
                    let sql = format!(
                        "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE account_id = $1 AND revoked_at IS NULL \
                         AND (CAST($2 AS BIGINT) IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3)) \
                         ORDER BY created_at DESC, id DESC LIMIT $4"
                    );
                    let rows = sqlx::query(AssertSqlSafe(sql))
                        .bind(account.as_str())
                        .bind(cursor)
                        .bind(starting_after.map(|i| i.as_str().to_owned()).unwrap_or_default())
                        .bind(i64::from(limit) + 1)
                        .fetch_all(&self.reader)
                        .await?;
                    let more = rows.len() > limit as usize;
                    let v = rows.iter().take(limit as usize).map(endpoint_from_row).collect::<StoreResult<Vec<_>>>()?;
                    Ok((v, more))
                }

                async fn update_endpoint(
                    &self,
                    account: &AccountId,
                    id: &WebhookEndpointId,
                    c: &EndpointChanges,
                    now: Timestamp,
                ) -> StoreResult<Option<EndpointRecord>> {
                    let mut tx = self.writer.begin().await?;
                    let Some(mut e) = Self::live_endpoint(&mut *tx, account, id).await? else {
                        return Ok(None);
                    };
                    if let Some(n) = &c.name {
                        e.name = n.clone();
                    }
                    if let Some(u) = &c.url {
                        e.url = u.clone();
                    }
                    if let Some(t) = &c.event_types {
                        e.event_types = t.clone();
                    }
                    match c.enabled {
                        Some(true) if !e.enabled => {
                            e.enabled = true;
                            e.disabled_at = None;
                            e.failing_since = None;
                        }
                        Some(false) if e.enabled => {
                            e.enabled = false;
                            e.disabled_at = Some(now);
                        }
                        _ => {}
                    }
                    e.updated_at = now;
                    sqlx::query(
                        "UPDATE webhook_endpoints SET name = $2, url = $3, event_types = $4, status = $5, \
                         disabled_at = $6, failing_since = $7, updated_at = $8 WHERE id = $1",
                    )
                    .bind(e.id.as_str())
                    .bind(&e.name)
                    .bind(&e.url)
                    .bind(json_text(&e.event_types))
                    .bind(if e.enabled { "active" } else { "disabled" })
                    .bind(e.disabled_at.map(|t| t.as_millis()))
                    .bind(e.failing_since.map(|t| t.as_millis()))
                    .bind(now.as_millis())
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(Some(e))
                }

                async fn rotate_endpoint_secret(
                    &self,
                    account: &AccountId,
                    id: &WebhookEndpointId,
                    new_secret: &str,
                    old_valid_until: Timestamp,
                    now: Timestamp,
                ) -> StoreResult<Option<EndpointRecord>> {
                    let mut tx = self.writer.begin().await?;
                    let r = sqlx::query(
                        "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = $3, \
                         secret = $4, updated_at = $5 WHERE id = $1 AND account_id = $2 AND revoked_at IS NULL",
                    )
                    .bind(id.as_str())
                    .bind(account.as_str())
                    .bind(old_valid_until.as_millis())
                    .bind(new_secret)
                    .bind(now.as_millis())
                    .execute(&mut *tx)
                    .await?;
                    if r.rows_affected() != 1 {
                        return Ok(None);
                    }
                    let e = Self::live_endpoint(&mut *tx, account, id).await?;
                    tx.commit().await?;
                    Ok(e)
                }

                async fn delete_endpoint(
                    &self,
                    account: &AccountId,
                    id: &WebhookEndpointId,
                    now: Timestamp,
                ) -> StoreResult<Option<EndpointRecord>> {
                    let mut tx = self.writer.begin().await?;
                    let Some(mut e) = Self::live_endpoint(&mut *tx, account, id).await? else {
                        return Ok(None);
                    };
                    e.enabled = false;
                    e.disabled_at = e.disabled_at.or(Some(now));
                    e.revoked_at = Some(now);
                    e.updated_at = now;
                    sqlx::query(
                        "UPDATE webhook_endpoints SET status = 'disabled', disabled_at = $2, revoked_at = $3, updated_at = $3 WHERE id = $1",
                    )
                    .bind(id.as_str())
                    .bind(e.disabled_at.map(|t| t.as_millis()))
                    .bind(now.as_millis())
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE webhook_deliveries SET status = 'canceled', next_attempt_at = NULL, updated_at = $2 \
                         WHERE endpoint_id = $1 AND status = 'pending'",
                    )
                    .bind(id.as_str())
                    .bind(now.as_millis())
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    Ok(Some(e))
                }

                async fn insert_event(&self, e: &EventRecord) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO webhook_events (id, account_id, type, task_id, endpoint_id, created_at, data) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(e.id.as_str())
                    .bind(e.account_id.as_str())
                    .bind(&e.event_type)
                    .bind(e.task_id.as_ref().map(|t| t.as_str().to_owned()))
                    .bind(e.endpoint_id.as_ref().map(|t| t.as_str().to_owned()))
                    .bind(e.created_at.as_millis())
                    .bind(e.data.as_ref().map(|d| d.to_string()))
                    .execute(&self.writer)
                    .await?;
                    Ok(())
                }

                async fn get_event(&self, id: &EventId) -> StoreResult<Option<EventRecord>> {
                    let sql = format!("SELECT {EVENT_COLS} FROM webhook_events WHERE id = $1");
                    sqlx::query(AssertSqlSafe(sql))
                        .bind(id.as_str())
                        .fetch_optional(&self.reader)
                        .await?
                        .as_ref()
                        .map(event_from_row)
                        .transpose()
                }

                async fn list_events(
                    &self,
                    account: &AccountId,
                    starting_after: Option<&EventId>,
                    event_type: Option<&str>,
                    limit: u32,
                ) -> StoreResult<(Vec<EventRecord>, bool)> {
                    let cursor: Option<i64> = match starting_after {
                        None => None,
                        Some(id) => Some(
                            sqlx::query_scalar("SELECT created_at FROM webhook_events WHERE id = $1 AND account_id = $2")
                                .bind(id.as_str())
                                .bind(account.as_str())
                                .fetch_optional(&self.reader)
                                .await?
                                .ok_or_else(|| StoreError::NotFound(format!("event {id}")))?,
                        ),
                    };
                    let sql = format!(
                        "SELECT {EVENT_COLS} FROM webhook_events WHERE account_id = $1 \
                         AND (CAST($2 AS BIGINT) IS NULL OR created_at < $2 OR (created_at = $2 AND id < $3)) \
                         AND (CAST($4 AS TEXT) IS NULL OR type = $4) \
                         ORDER BY created_at DESC, id DESC LIMIT $5"
                    );
                    let rows = sqlx::query(AssertSqlSafe(sql))
                        .bind(account.as_str())
                        .bind(cursor)
                        .bind(starting_after.map(|i| i.as_str().to_owned()).unwrap_or_default())
                        .bind(event_type.map(str::to_owned))
                        .bind(i64::from(limit) + 1)
                        .fetch_all(&self.reader)
                        .await?;
                    let more = rows.len() > limit as usize;
                    let v = rows.iter().take(limit as usize).map(event_from_row).collect::<StoreResult<Vec<_>>>()?;
                    Ok((v, more))
                }

                async fn fan_out_events(&self, now: Timestamp, limit: u32) -> StoreResult<u64> {
                    // Most rounds find nothing; ask a reader first so an idle
                    // dispatcher never takes SQLite's one writer.
                    let pending: Option<String> =
                        sqlx::query_scalar("SELECT id FROM webhook_events WHERE fanned_out = 0 LIMIT 1")
                            .fetch_optional(&self.reader)
                            .await?;
                    if pending.is_none() {
                        return Ok(0);
                    }
                    let mut tx = self.writer.begin().await?;
                    let sql = format!(
                        "SELECT {EVENT_COLS} FROM webhook_events WHERE fanned_out = 0 ORDER BY created_at LIMIT $1"
                    );
                    let events = sqlx::query(AssertSqlSafe(sql))
                        .bind(i64::from(limit))
                        .fetch_all(&mut *tx)
                        .await?
                        .iter()
                        .map(event_from_row)
                        .collect::<StoreResult<Vec<_>>>()?;
                    let mut created = 0;
                    for ev in &events {
                        // Endpoints created after the event never hear of it; a
                        // test event goes only to its own endpoint.
                        let targets = sqlx::query(
                            "SELECT id, event_types FROM webhook_endpoints WHERE account_id = $1 \
                             AND revoked_at IS NULL AND status = 'active' AND created_at <= $2 \
                             AND (CAST($3 AS TEXT) IS NULL OR id = $3)",
                        )
                        .bind(ev.account_id.as_str())
                        .bind(ev.created_at.as_millis())
                        .bind(ev.endpoint_id.as_ref().map(|e| e.as_str().to_owned()))
                        .fetch_all(&mut *tx)
                        .await?;
                        for t in &targets {
                            let endpoint: String = t.try_get("id")?;
                            let types: String = t.try_get("event_types")?;
                            if ev.endpoint_id.is_none() && !subscribed(&types, &ev.event_type) {
                                continue;
                            }
                            created += sqlx::query(
                                "INSERT INTO webhook_deliveries (id, event_id, endpoint_id, status, attempts, next_attempt_at, created_at, updated_at) \
                                 VALUES ($1, $2, $3, 'pending', 0, $4, $4, $4) ON CONFLICT (event_id, endpoint_id) DO NOTHING",
                            )
                            .bind(DeliveryId::generate().as_str())
                            .bind(ev.id.as_str())
                            .bind(&endpoint)
                            .bind(now.as_millis())
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        }
                        sqlx::query("UPDATE webhook_events SET fanned_out = 1 WHERE id = $1")
                            .bind(ev.id.as_str())
                            .execute(&mut *tx)
                            .await?;
                    }
                    tx.commit().await?;
                    Ok(created)
                }

                async fn lease_deliveries(
                    &self,
                    worker: &str,
                    now: Timestamp,
                    lease_for: std::time::Duration,
                    limit: u32,
                ) -> StoreResult<Vec<LeasedDelivery>> {
                    let due: Option<String> = sqlx::query_scalar(
                        "SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
                         AND (lease_until IS NULL OR lease_until < $1) LIMIT 1",
                    )
                    .bind(now.as_millis())
                    .fetch_optional(&self.reader)
                    .await?;
                    if due.is_none() {
                        return Ok(Vec::new());
                    }
                    let rows = sqlx::query($lease_sql)
                        .bind(worker)
                        .bind(now.plus(lease_for).as_millis())
                        .bind(now.as_millis())
                        .bind(i64::from(limit))
                        .fetch_all(&self.writer)
                        .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for r in &rows {
                        let event_id = EventId::from_trusted(r.try_get("event_id")?);
                        let Some(event) = self.get_event(&event_id).await? else {
                            return Err(corrupt("delivery", format!("event {event_id} is missing")));
                        };
                        out.push(LeasedDelivery {
                            id: DeliveryId::from_trusted(r.try_get("id")?),
                            event,
                            endpoint_id: WebhookEndpointId::from_trusted(r.try_get("endpoint_id")?),
                            attempts: r.try_get("attempts")?,
                        });
                    }
                    Ok(out)
                }

                async fn record_attempt(
                    &self,
                    d: &LeasedDelivery,
                    worker: &str,
                    attempt: Option<&NewAttempt>,
                    outcome: AttemptOutcome,
                    disable_after: std::time::Duration,
                    now: Timestamp,
                ) -> StoreResult<AttemptResult> {
                    let mut tx = self.writer.begin().await?;
                    let attempts: Option<i64> = sqlx::query_scalar(
                        "SELECT attempts FROM webhook_deliveries WHERE id = $1 AND lease_owner = $2 AND status = 'pending'",
                    )
                    .bind(d.id.as_str())
                    .bind(worker)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(attempts) = attempts else {
                        return Ok(AttemptResult { recorded: false, endpoint_disabled: false });
                    };
                    let number = attempts + i64::from(attempt.is_some());
                    if let Some(a) = attempt {
                        sqlx::query(
                            "INSERT INTO webhook_attempts (delivery_id, endpoint_id, event_id, attempt, status_code, duration_ms, error, response, created_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        )
                        .bind(d.id.as_str())
                        .bind(d.endpoint_id.as_str())
                        .bind(d.event.id.as_str())
                        .bind(number)
                        .bind(a.status_code)
                        .bind(a.duration_ms)
                        .bind(a.error.clone())
                        .bind(a.response.clone())
                        .bind(now.as_millis())
                        .execute(&mut *tx)
                        .await?;
                    }
                    let (status, next) = match outcome {
                        AttemptOutcome::Succeeded => ("succeeded", None),
                        AttemptOutcome::RetryAt(t) => ("pending", Some(t.as_millis())),
                        AttemptOutcome::GaveUp => ("failed", None),
                        AttemptOutcome::Canceled => ("canceled", None),
                    };
                    sqlx::query(
                        "UPDATE webhook_deliveries SET status = $2, attempts = $3, next_attempt_at = $4, \
                         lease_owner = NULL, lease_until = NULL, updated_at = $5 WHERE id = $1",
                    )
                    .bind(d.id.as_str())
                    .bind(status)
                    .bind(number)
                    .bind(next)
                    .bind(now.as_millis())
                    .execute(&mut *tx)
                    .await?;
                    let mut endpoint_disabled = false;
                    match outcome {
                        AttemptOutcome::Succeeded => {
                            sqlx::query(
                                "UPDATE webhook_endpoints SET last_success_at = $2, failure_count = 0, failing_since = NULL WHERE id = $1",
                            )
                            .bind(d.endpoint_id.as_str())
                            .bind(now.as_millis())
                            .execute(&mut *tx)
                            .await?;
                        }
                        AttemptOutcome::RetryAt(_) | AttemptOutcome::GaveUp => {
                            sqlx::query(
                                "UPDATE webhook_endpoints SET last_failure_at = $2, failure_count = failure_count + 1, \
                                 failing_since = COALESCE(failing_since, $2) WHERE id = $1",
                            )
                            .bind(d.endpoint_id.as_str())
                            .bind(now.as_millis())
                            .execute(&mut *tx)
                            .await?;
                            let cutoff = now.as_millis() - i64::try_from(disable_after.as_millis()).unwrap_or(i64::MAX);
                            endpoint_disabled = sqlx::query(
                                "UPDATE webhook_endpoints SET status = 'disabled', disabled_at = $2, updated_at = $2 \
                                 WHERE id = $1 AND status = 'active' AND failing_since <= $3",
                            )
                            .bind(d.endpoint_id.as_str())
                            .bind(now.as_millis())
                            .bind(cutoff)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected()
                                == 1;
                            if endpoint_disabled {
                                sqlx::query(
                                    "UPDATE webhook_deliveries SET status = 'canceled', next_attempt_at = NULL, updated_at = $2 \
                                     WHERE endpoint_id = $1 AND status = 'pending'",
                                )
                                .bind(d.endpoint_id.as_str())
                                .bind(now.as_millis())
                                .execute(&mut *tx)
                                .await?;
                            }
                        }
                        AttemptOutcome::Canceled => {}
                    }
                    tx.commit().await?;
                    Ok(AttemptResult { recorded: true, endpoint_disabled })
                }

                async fn list_attempts(
                    &self,
                    endpoint: &WebhookEndpointId,
                    starting_after: Option<i64>,
                    limit: u32,
                ) -> StoreResult<(Vec<AttemptRecord>, bool)> {
                    let rows = sqlx::query(
                        "SELECT a.id, a.delivery_id, a.endpoint_id, a.event_id, e.type, a.attempt, a.status_code, \
                         a.duration_ms, a.error, a.response, a.created_at \
                         FROM webhook_attempts a JOIN webhook_events e ON e.id = a.event_id \
                         WHERE a.endpoint_id = $1 AND (CAST($2 AS BIGINT) IS NULL OR a.id < $2) \
                         ORDER BY a.id DESC LIMIT $3",
                    )
                    .bind(endpoint.as_str())
                    .bind(starting_after)
                    .bind(i64::from(limit) + 1)
                    .fetch_all(&self.reader)
                    .await?;
                    let more = rows.len() > limit as usize;
                    let v = rows
                        .iter()
                        .take(limit as usize)
                        .map(|r| {
                            Ok(AttemptRecord {
                                seq: r.try_get("id")?,
                                delivery_id: DeliveryId::from_trusted(r.try_get("delivery_id")?),
                                endpoint_id: WebhookEndpointId::from_trusted(r.try_get("endpoint_id")?),
                                event_id: EventId::from_trusted(r.try_get("event_id")?),
                                event_type: r.try_get("type")?,
                                attempt: r.try_get("attempt")?,
                                status_code: r.try_get("status_code")?,
                                duration_ms: r.try_get("duration_ms")?,
                                error: r.try_get("error")?,
                                response: r.try_get("response")?,
                                created_at: ts(r.try_get("created_at")?),
                            })
                        })
                        .collect::<StoreResult<Vec<_>>>()?;
                    Ok((v, more))
                }

                async fn deliveries_of_event(
                    &self,
                    event: &EventId,
                ) -> StoreResult<Vec<(WebhookEndpointId, String, i64)>> {
                    let rows = sqlx::query(
                        "SELECT endpoint_id, status, attempts FROM webhook_deliveries WHERE event_id = $1 ORDER BY endpoint_id",
                    )
                    .bind(event.as_str())
                    .fetch_all(&self.reader)
                    .await?;
                    rows.iter()
                        .map(|r| {
                            Ok((
                                WebhookEndpointId::from_trusted(r.try_get("endpoint_id")?),
                                r.try_get("status")?,
                                r.try_get("attempts")?,
                            ))
                        })
                        .collect()
                }
            }
        }
    };
}

pub(crate) use impl_webhook_store;
