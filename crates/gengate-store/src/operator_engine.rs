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

            #[async_trait::async_trait]
            impl OperatorStore for $store {
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
