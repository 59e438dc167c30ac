//! The operator and audit SQL both engines share, expanded per engine like `engine.rs`.

pub(crate) const OPERATOR_COLS: &str =
    "id, name, role, visible_prefix, key_hash, created_at, expires_at, revoked_at, last_used_at";
pub(crate) const AUDIT_COLS: &str =
    "seq, id, at, actor, action, target, account_id, before_json, after_json, request_id";

macro_rules! impl_operator_store {
    ($store:ty, $db:ty) => {
        mod operator_sql {
            use super::*;
            use $crate::engine::{corrupt, json_text};
            use $crate::operator_engine::{AUDIT_COLS, OPERATOR_COLS};
            use $crate::engine::{KEY_READ, TASK_COLS};
            use $crate::webhooks::WebhookStore;
            use $crate::operators::*;
            use $crate::StoreResult;
            use gengate_core::Timestamp;
            use gengate_core::ids::{AccountId, AuditId, OperatorId};
            use gengate_core::operator::OperatorRole;
            use sqlx::{AssertSqlSafe, Row};

            type DbRow = <$db as sqlx::Database>::Row;

            fn opt_ts(v: Option<i64>) -> Option<Timestamp> {
                v.map(Timestamp::from_millis)
            }

            fn operator_from_row(r: &DbRow) -> StoreResult<OperatorRecord> {
                let role: String = r.try_get("role")?;
                Ok(OperatorRecord {
                    id: OperatorId::from_trusted(r.try_get("id")?),
                    name: r.try_get("name")?,
                    role: OperatorRole::parse(&role).ok_or_else(|| corrupt("operator role", &role))?,
                    visible_prefix: r.try_get("visible_prefix")?,
                    key_hash: r.try_get("key_hash")?,
                    created_at: Timestamp::from_millis(r.try_get("created_at")?),
                    expires_at: opt_ts(r.try_get("expires_at")?),
                    revoked_at: opt_ts(r.try_get("revoked_at")?),
                    last_used_at: opt_ts(r.try_get("last_used_at")?),
                })
            }

            fn json_col(r: &DbRow, col: &str) -> StoreResult<Option<serde_json::Value>> {
                r.try_get::<Option<String>, _>(col)?
                    .map(|t| serde_json::from_str(&t).map_err(|e| corrupt(col, e)))
                    .transpose()
            }

            fn audit_from_row(r: &DbRow) -> StoreResult<AuditEntry> {
                Ok(AuditEntry {
                    seq: r.try_get("seq")?,
                    id: AuditId::from_trusted(r.try_get("id")?),
                    at: Timestamp::from_millis(r.try_get("at")?),
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    account_id: r.try_get::<Option<String>, _>("account_id")?.map(AccountId::from_trusted),
                    before: json_col(r, "before_json")?,
                    after: json_col(r, "after_json")?,
                    request_id: r.try_get("request_id")?,
                })
            }

            fn admin_task_from_row(r: &DbRow) -> StoreResult<AdminTask> {
                Ok(AdminTask {
                    task: task_from_row(r)?,
                    api_key_id: r.try_get("api_key_id")?,
                    provider: r.try_get("provider")?,
                    upstream: json_col(r, "upstream")?,
                    price_version: r.try_get("price_version")?,
                })
            }

            /// `%`, `_` and the escape itself match literally.
            fn like_literal(s: &str) -> String {
                s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
            }

            #[async_trait::async_trait]
            impl OperatorStore for $store {
                async fn account_activity(
                    &self,
                    since: Timestamp,
                    account: Option<&AccountId>,
                ) -> StoreResult<std::collections::HashMap<AccountId, AccountActivity>> {
                    let account = account.map(|a| a.as_str().to_owned());
                    let mut out: std::collections::HashMap<AccountId, AccountActivity> = Default::default();
                    let later = |a: Option<Timestamp>, b: Option<i64>| match (a, b.map(Timestamp::from_millis)) {
                        (Some(x), Some(y)) => Some(x.max(y)),
                        (x, y) => x.or(y),
                    };
                    // Only the window's tasks (the created_at index): a key's last use
                    // already covers any older task, which was made with a key.
                    let rows = sqlx::query(
                        "SELECT account_id, CAST(COUNT(*) AS BIGINT) AS recent, MAX(created_at) AS last FROM tasks \
                         WHERE created_at >= $1 AND (CAST($2 AS TEXT) IS NULL OR account_id = $2) GROUP BY account_id",
                    )
                    .bind(since.as_millis())
                    .bind(account.clone())
                    .fetch_all(&self.reader)
                    .await?;
                    for r in &rows {
                        let e = out.entry(AccountId::from_trusted(r.try_get("account_id")?)).or_default();
                        e.tasks = r.try_get::<Option<i64>, _>("recent")?.unwrap_or(0);
                        e.last_activity = later(e.last_activity, r.try_get("last")?);
                    }
                    let rows = sqlx::query(
                        "SELECT account_id, CAST(SUM(-amount) AS BIGINT) AS net FROM ledger_entries \
                         WHERE kind IN ('reserve', 'refund') AND created_at >= $1 \
                           AND (CAST($2 AS TEXT) IS NULL OR account_id = $2) GROUP BY account_id",
                    )
                    .bind(since.as_millis())
                    .bind(account.clone())
                    .fetch_all(&self.reader)
                    .await?;
                    for r in &rows {
                        out.entry(AccountId::from_trusted(r.try_get("account_id")?)).or_default().credits =
                            r.try_get::<Option<i64>, _>("net")?.unwrap_or(0);
                    }
                    let rows = sqlx::query(
                        "SELECT account_id, MAX(last_used_at) AS last FROM api_keys \
                         WHERE CAST($1 AS TEXT) IS NULL OR account_id = $1 GROUP BY account_id",
                    )
                    .bind(account)
                    .fetch_all(&self.reader)
                        .await?;
                    for r in &rows {
                        let e = out.entry(AccountId::from_trusted(r.try_get("account_id")?)).or_default();
                        e.last_activity = later(e.last_activity, r.try_get("last")?);
                    }
                    Ok(out)
                }

                async fn open_tasks(&self) -> StoreResult<OpenTasks> {
                    // The open-deadline partial index holds exactly these rows.
                    let rows = sqlx::query(
                        "SELECT status, CAST(COUNT(*) AS BIGINT) AS n FROM tasks \
                         WHERE status IN ('queued', 'processing') GROUP BY status",
                    )
                    .fetch_all(&self.reader)
                    .await?;
                    let mut out = OpenTasks::default();
                    for r in &rows {
                        let n: i64 = r.try_get("n")?;
                        match r.try_get::<String, _>("status")?.as_str() {
                            "queued" => out.queued = n,
                            _ => out.processing = n,
                        }
                    }
                    Ok(out)
                }

                async fn recent_successes(&self, since: Timestamp, limit: u32) -> StoreResult<Vec<FinishedTask>> {
                    let rows = sqlx::query(
                        "SELECT provider, created_at, updated_at FROM tasks \
                         WHERE updated_at >= $1 AND status = 'succeeded' ORDER BY updated_at DESC LIMIT $2",
                    )
                    .bind(since.as_millis())
                    .bind(i64::from(limit))
                    .fetch_all(&self.reader)
                    .await?;
                    rows.iter()
                        .map(|r| {
                            Ok(FinishedTask {
                                provider: r.try_get("provider")?,
                                created_at: Timestamp::from_millis(r.try_get("created_at")?),
                                ended_at: Timestamp::from_millis(r.try_get("updated_at")?),
                            })
                        })
                        .collect()
                }

                async fn hourly_flow(&self, since: Timestamp) -> StoreResult<Vec<(i64, i64, i64)>> {
                    let rows = sqlx::query(
                        "SELECT h, CAST(SUM(c) AS BIGINT) AS created, CAST(SUM(e) AS BIGINT) AS ended FROM ( \
                           SELECT created_at - (created_at % 3600000) AS h, CAST(1 AS BIGINT) AS c, CAST(0 AS BIGINT) AS e \
                             FROM tasks WHERE created_at >= $1 \
                           UNION ALL \
                           SELECT updated_at - (updated_at % 3600000), CAST(0 AS BIGINT), CAST(1 AS BIGINT) \
                             FROM tasks WHERE updated_at >= $1 AND status IN ('succeeded', 'failed') \
                         ) f GROUP BY h ORDER BY h",
                    )
                    .bind(since.as_millis())
                    .fetch_all(&self.reader)
                    .await?;
                    rows.iter()
                        .map(|r| Ok((r.try_get("h")?, r.try_get("created")?, r.try_get("ended")?)))
                        .collect()
                }

                async fn report_node(&self, n: &NodeReport) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO node_reports (node, role, boot, reported_at, report) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (node) DO UPDATE SET role = excluded.role, boot = excluded.boot, \
                           reported_at = excluded.reported_at, report = excluded.report",
                    )
                    .bind(&n.node)
                    .bind(&n.role)
                    .bind(&n.boot)
                    .bind(n.reported_at.as_millis())
                    .bind(json_text(&n.report))
                    .execute(&self.writer)
                    .await?;
                    Ok(())
                }

                async fn prune_node_reports(&self, before: Timestamp) -> StoreResult<u64> {
                    let r = sqlx::query("DELETE FROM node_reports WHERE reported_at < $1")
                        .bind(before.as_millis())
                        .execute(&self.writer)
                        .await?;
                    Ok(r.rows_affected())
                }

                async fn get_api_key(&self, id: &gengate_core::ids::ApiKeyId) -> StoreResult<Option<$crate::ApiKeyRecord>> {
                    let r = sqlx::query(AssertSqlSafe(format!("SELECT {KEY_READ} FROM api_keys WHERE id = $1")))
                        .bind(id.as_str())
                        .fetch_optional(&self.reader)
                        .await?;
                    r.as_ref().map(key_from_row).transpose()
                }

                async fn node_reports(&self) -> StoreResult<Vec<NodeReport>> {
                    let rows = sqlx::query("SELECT node, role, boot, reported_at, report FROM node_reports ORDER BY node")
                        .fetch_all(&self.reader)
                        .await?;
                    rows.iter()
                        .map(|r| {
                            Ok(NodeReport {
                                node: r.try_get("node")?,
                                role: r.try_get("role")?,
                                boot: r.try_get("boot")?,
                                reported_at: Timestamp::from_millis(r.try_get("reported_at")?),
                                report: json_col(r, "report")?.unwrap_or_default(),
                            })
                        })
                        .collect()
                }

                async fn admin_tasks(&self, q: &AdminTaskQuery) -> StoreResult<(Vec<AdminTask>, bool)> {
                    let before: Option<i64> = match &q.starting_after {
                        None => None,
                        Some(id) => Some(
                            sqlx::query_scalar("SELECT seq FROM tasks WHERE id = $1")
                                .bind(id.as_str())
                                .fetch_optional(&self.reader)
                                .await?
                                .ok_or_else(|| $crate::StoreError::NotFound(format!("task {id}")))?,
                        ),
                    };
                    // The upstream state is compact JSON (`serde_json::to_string`), so an
                    // account is the literal text `"account":"<name>"` in it.
                    let upstream_like = q
                        .upstream_account
                        .as_ref()
                        .map(|a| format!("%{}%", like_literal(&format!("\"account\":{}", serde_json::Value::from(a.as_str())))));
                    let sql = format!(
                        "SELECT {TASK_COLS}, api_key_id, provider, upstream, price_version FROM tasks \
                         WHERE (CAST($1 AS BIGINT) IS NULL OR seq < $1) \
                           AND (CAST($2 AS TEXT) IS NULL OR account_id = $2) \
                           AND (CAST($3 AS TEXT) IS NULL OR status = $3) \
                           AND (CAST($4 AS TEXT) IS NULL OR model = $4) \
                           AND (CAST($5 AS TEXT) IS NULL OR provider = $5) \
                           AND (CAST($6 AS TEXT) IS NULL OR upstream LIKE $6 ESCAPE '\\') \
                           AND (CAST($7 AS BIGINT) IS NULL OR created_at >= $7) \
                           AND (CAST($8 AS BIGINT) IS NULL OR created_at < $8) \
                         ORDER BY seq DESC LIMIT $9"
                    );
                    let limit = q.limit.clamp(1, 100);
                    let rows = sqlx::query(AssertSqlSafe(sql))
                        .bind(before)
                        .bind(q.account.as_ref().map(|a| a.as_str().to_owned()))
                        .bind(q.status.map(|s| s.as_str().to_owned()))
                        .bind(q.model.clone())
                        .bind(q.provider.clone())
                        .bind(upstream_like)
                        .bind(q.created_after.map(|t| t.as_millis()))
                        .bind(q.created_before.map(|t| t.as_millis()))
                        .bind(i64::from(limit) + 1)
                        .fetch_all(&self.reader)
                        .await?;
                    let more = rows.len() > limit as usize;
                    let tasks = rows.iter().take(limit as usize).map(admin_task_from_row).collect::<StoreResult<Vec<_>>>()?;
                    Ok((tasks, more))
                }

                async fn admin_task(&self, id: &gengate_core::ids::TaskId) -> StoreResult<Option<AdminTask>> {
                    let r = sqlx::query(AssertSqlSafe(format!("SELECT {TASK_COLS}, api_key_id, provider, upstream, price_version FROM tasks WHERE id = $1")))
                        .bind(id.as_str())
                        .fetch_optional(&self.reader)
                        .await?;
                    r.as_ref().map(admin_task_from_row).transpose()
                }

                async fn task_ledger(&self, id: &gengate_core::ids::TaskId) -> StoreResult<Vec<$crate::LedgerEntry>> {
                    let rows = sqlx::query(
                        "SELECT seq, account_id, kind, amount, balance_after, task_id, reason, created_at FROM ledger_entries WHERE task_id = $1 ORDER BY seq",
                    )
                    .bind(id.as_str())
                    .fetch_all(&self.reader)
                    .await?;
                    rows.iter().map(ledger_from_row).collect()
                }

                async fn task_events(&self, id: &gengate_core::ids::TaskId) -> StoreResult<Vec<TaskEvent>> {
                    let rows = sqlx::query("SELECT id, type, created_at FROM webhook_events WHERE task_id = $1 ORDER BY created_at, id")
                        .bind(id.as_str())
                        .fetch_all(&self.reader)
                        .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for r in &rows {
                        let event: String = r.try_get("id")?;
                        let deliveries = self
                            .deliveries_of_event(&gengate_core::ids::EventId::from_trusted(event.clone()))
                            .await?
                            .into_iter()
                            .map(|(endpoint, status, attempts)| (endpoint.to_string(), status, attempts))
                            .collect();
                        out.push(TaskEvent {
                            id: event,
                            event_type: r.try_get("type")?,
                            created_at: Timestamp::from_millis(r.try_get("created_at")?),
                            deliveries,
                        });
                    }
                    Ok(out)
                }

                async fn create_operator(&self, op: &NewOperator) -> StoreResult<OperatorRecord> {
                    let sql = format!(
                        "INSERT INTO operators ({OPERATOR_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL) RETURNING {OPERATOR_COLS}"
                    );
                    let r = sqlx::query(AssertSqlSafe(sql))
                        .bind(OperatorId::generate().as_str())
                        .bind(&op.name)
                        .bind(op.role.as_str())
                        .bind(&op.visible_prefix)
                        .bind(&op.key_hash)
                        .bind(op.created_at.as_millis())
                        .bind(op.expires_at.map(|t| t.as_millis()))
                        .fetch_one(&self.writer)
                        .await?;
                    operator_from_row(&r)
                }

                async fn find_operator_by_prefix(&self, prefix: &str) -> StoreResult<Option<OperatorRecord>> {
                    let r = sqlx::query(AssertSqlSafe(format!("SELECT {OPERATOR_COLS} FROM operators WHERE visible_prefix = $1")))
                        .bind(prefix)
                        .fetch_optional(&self.reader)
                        .await?;
                    r.as_ref().map(operator_from_row).transpose()
                }

                async fn find_operator_by_name(&self, name: &str) -> StoreResult<Option<OperatorRecord>> {
                    let r = sqlx::query(AssertSqlSafe(format!("SELECT {OPERATOR_COLS} FROM operators WHERE name = $1")))
                        .bind(name)
                        .fetch_optional(&self.reader)
                        .await?;
                    r.as_ref().map(operator_from_row).transpose()
                }

                async fn list_operators(&self) -> StoreResult<Vec<OperatorRecord>> {
                    let rows = sqlx::query(AssertSqlSafe(format!("SELECT {OPERATOR_COLS} FROM operators ORDER BY created_at, id")))
                        .fetch_all(&self.reader)
                        .await?;
                    rows.iter().map(operator_from_row).collect()
                }

                async fn revoke_operator(&self, name: &str, now: Timestamp) -> StoreResult<bool> {
                    let r = sqlx::query("UPDATE operators SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL")
                        .bind(name)
                        .bind(now.as_millis())
                        .execute(&self.writer)
                        .await?;
                    Ok(r.rows_affected() == 1)
                }

                async fn touch_operator(&self, id: &OperatorId, now: Timestamp) -> StoreResult<()> {
                    sqlx::query("UPDATE operators SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)")
                        .bind(id.as_str())
                        .bind(now.as_millis())
                        .execute(&self.writer)
                        .await?;
                    Ok(())
                }

                async fn append_audit(&self, e: &NewAudit) -> StoreResult<AuditEntry> {
                    let sql = format!(
                        "INSERT INTO audit_log (id, at, actor, action, target, account_id, before_json, after_json, request_id) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {AUDIT_COLS}"
                    );
                    let r = sqlx::query(AssertSqlSafe(sql))
                        .bind(AuditId::generate().as_str())
                        .bind(e.at.as_millis())
                        .bind(&e.actor)
                        .bind(&e.action)
                        .bind(&e.target)
                        .bind(e.account_id.as_ref().map(|a| a.as_str().to_owned()))
                        .bind(e.before.as_ref().map(json_text))
                        .bind(e.after.as_ref().map(json_text))
                        .bind(e.request_id.as_deref())
                        .fetch_one(&self.writer)
                        .await?;
                    audit_from_row(&r)
                }

                async fn audit_page(&self, f: &AuditFilter) -> StoreResult<(Vec<AuditEntry>, bool)> {
                    // Unset filters bind NULL and match everything: one statement text.
                    let sql = format!(
                        "SELECT {AUDIT_COLS} FROM audit_log \
                         WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR account_id = $2) \
                           AND ($3 IS NULL OR action = $3) AND ($4 IS NULL OR seq < $4) \
                         ORDER BY seq DESC LIMIT $5"
                    );
                    let limit = f.limit.clamp(1, 500);
                    let rows = sqlx::query(AssertSqlSafe(sql))
                        .bind(f.actor.as_deref())
                        .bind(f.account.as_ref().map(|a| a.as_str().to_owned()))
                        .bind(f.action.as_deref())
                        .bind(f.before_seq)
                        .bind(i64::from(limit) + 1)
                        .fetch_all(&self.reader)
                        .await?;
                    let mut out = rows.iter().map(audit_from_row).collect::<StoreResult<Vec<_>>>()?;
                    let more = out.len() > limit as usize;
                    out.truncate(limit as usize);
                    Ok((out, more))
                }
            }
        }
    };
}

pub(crate) use impl_operator_store;
