//! The operator commands against a running server (issue 22): with an operator key
//! (`--operator-key` or `GENGATE_OPERATOR_KEY`; and no `--database-url`/`--data-dir` on
//! the command line), `accounts`, `keys`, `credits` and `audit-log` call the admin API
//! at `--url` (else `GENGATE_URL`, else `http://127.0.0.1:8080`) instead of opening the
//! database. Their output is the same as on the database. What the admin API does not
//! offer (keys created with rate overrides or a spend limit, `credits audit`,
//! `operators`) says so and changes nothing.

use super::{AccountsCmd, AuditLogArgs, Command, CreditsArgs, CreditsCmd, KeysCmd};
use anyhow::{Context, bail};
use serde_json::{Value, json};

pub struct Remote {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Remote {
    /// The server at `url` (else `GENGATE_URL`, else the default port on this machine).
    pub fn new(url: Option<String>, key: String) -> Self {
        let base = url
            .or_else(|| std::env::var("GENGATE_URL").ok())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned());
        Self {
            base: base.trim_end_matches('/').to_owned(),
            key: key.trim().to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method.parse()?, format!("{}/api/admin/v1{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            // One key per command run: a retried request (a timeout) cannot apply twice.
            req = req
                .header("Idempotency-Key", gengate_core::ids::random_token(24))
                .json(&b);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("calling {}", self.base))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let e = &v["error"];
            let details: Vec<String> = e["details"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    format!(
                        "{}: {}",
                        d["field"].as_str().unwrap_or("?"),
                        d["message"].as_str().unwrap_or("")
                    )
                })
                .collect();
            bail!(
                "{} {} ({status}){}",
                e["code"].as_str().unwrap_or("error"),
                e["message"].as_str().unwrap_or(""),
                if details.is_empty() {
                    String::new()
                } else {
                    format!(": {}", details.join("; "))
                }
            );
        }
        Ok(v)
    }

    /// Every page of a list.
    async fn all(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let page = match &after {
                None => {
                    self.call("GET", &format!("{path}{sep}limit=100"), None)
                        .await?
                }
                Some(a) => {
                    self.call(
                        "GET",
                        &format!("{path}{sep}limit=100&starting_after={a}"),
                        None,
                    )
                    .await?
                }
            };
            let data = page["data"].as_array().cloned().unwrap_or_default();
            after = data
                .last()
                .and_then(|d| d["id"].as_str())
                .map(str::to_owned);
            out.extend(data);
            if page["has_more"] != Value::Bool(true) || after.is_none() {
                return Ok(out);
            }
        }
    }

    /// The id of the account of that exact name.
    async fn account_id(&self, name: &str) -> anyhow::Result<String> {
        let found = self
            .all(&format!("/accounts?query={}", urlencode(name)))
            .await?;
        found
            .iter()
            .find(|a| a["name"] == name)
            .and_then(|a| a["id"].as_str())
            .map(str::to_owned)
            .with_context(|| format!("no account named {name:?}"))
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn account_line(a: &Value) -> String {
    format!(
        "{}\t{}\t{} credits\t{}\t{}\tcreated {}",
        a["id"].as_str().unwrap_or(""),
        a["name"].as_str().unwrap_or(""),
        a["balance"],
        if a["sandbox"] == true {
            "sandbox"
        } else {
            "live"
        },
        a["status"].as_str().unwrap_or(""),
        a["created_at"].as_str().unwrap_or("")
    )
}

fn database_only(what: &str) -> anyhow::Result<()> {
    bail!(
        "{what} works on the database only, not through the admin API: drop the operator key (--operator-key, GENGATE_OPERATOR_KEY) and give --database-url or --data-dir"
    )
}

/// Runs `command` remotely; `None` when it is not an operator command.
pub async fn run(r: &Remote, command: &Command) -> Option<anyhow::Result<()>> {
    Some(match command {
        Command::Accounts(c) => accounts(r, c).await,
        Command::Keys(c) => keys(r, c).await,
        Command::Credits(CreditsArgs { op: Some(c), .. }) => credits(r, c).await,
        Command::AuditLog(a) => audit_log(r, a).await,
        Command::Operators(_) => database_only("`operators`"),
        _ => return None,
    })
}

async fn accounts(r: &Remote, c: &AccountsCmd) -> anyhow::Result<()> {
    match c {
        AccountsCmd::Create {
            name,
            credits,
            sandbox,
            ..
        } => {
            let a = r
                .call(
                    "POST",
                    "/accounts",
                    Some(json!({"name": name, "credits": credits, "sandbox": sandbox})),
                )
                .await?;
            println!("{}", account_line(&a));
        }
        AccountsCmd::Set {
            name,
            sandbox,
            price_adjustment,
            ..
        } => {
            if sandbox.is_none() && price_adjustment.is_none() {
                bail!(
                    "nothing to set: give --sandbox true|false and/or --price-adjustment PERCENT"
                );
            }
            let id = r.account_id(name).await?;
            let a = r
                .call(
                    "PATCH",
                    &format!("/accounts/{id}"),
                    Some(json!({"sandbox": sandbox, "price_adjustment": price_adjustment})),
                )
                .await?;
            println!(
                "{}",
                super::account_set_line(
                    name,
                    a["sandbox"].as_bool().unwrap_or(false),
                    a["price_adjustment"]
                        .as_i64()
                        .and_then(|p| i32::try_from(p).ok())
                        .unwrap_or(0)
                )
            );
        }
        AccountsCmd::List { .. } => {
            let mut all = r.all("/accounts").await?;
            all.reverse();
            for a in &all {
                println!("{}", account_line(a));
            }
        }
    }
    Ok(())
}

async fn keys(r: &Remote, c: &KeysCmd) -> anyhow::Result<()> {
    match c {
        KeysCmd::Create {
            account,
            name,
            scopes,
            expires_at,
            rate_create_per_min,
            rate_read_per_min,
            rate_upload_per_min,
            spend_limit,
            ..
        } => {
            if rate_create_per_min.is_some()
                || rate_read_per_min.is_some()
                || rate_upload_per_min.is_some()
                || spend_limit.is_some()
            {
                return database_only("a key with rate overrides or a spend limit");
            }
            let id = r.account_id(account).await?;
            let mut body = json!({"name": name});
            if let Some(s) = scopes {
                body["scopes"] = json!(s.split(',').map(str::trim).collect::<Vec<_>>());
            }
            if let Some(e) = expires_at {
                body["expires_at"] = json!(e);
            }
            let k = r
                .call("POST", &format!("/accounts/{id}/keys"), Some(body))
                .await?;
            println!(
                "{}\t{}",
                k["id"].as_str().unwrap_or(""),
                k["name"].as_str().unwrap_or("")
            );
            println!(
                "secret (shown once): {}",
                k["secret"].as_str().unwrap_or("")
            );
        }
        KeysCmd::List {
            account: Some(account),
            ..
        } => {
            let id = r.account_id(account).await?;
            let keys = r.call("GET", &format!("/accounts/{id}/keys"), None).await?;
            for k in keys["data"].as_array().into_iter().flatten() {
                println!(
                    "{}\t{}\t{}…\t{}\t{}",
                    k["id"].as_str().unwrap_or(""),
                    k["name"].as_str().unwrap_or(""),
                    k["prefix"].as_str().unwrap_or(""),
                    k["scopes"]
                        .as_array()
                        .map(|s| s
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(","))
                        .unwrap_or_default(),
                    k["revoked_at"]
                        .as_str()
                        .map_or("active".to_owned(), |t| format!("revoked {t}"))
                );
            }
        }
        KeysCmd::List { account: None, .. } => {
            bail!("through the admin API, keys list needs --account")
        }
        KeysCmd::Revoke { key_id, .. } => {
            r.call("DELETE", &format!("/keys/{key_id}"), None).await?;
            println!("revoked {key_id}");
        }
        KeysCmd::Limit {
            key_id,
            spend_limit,
            spend_window,
            clear,
            ..
        } => {
            let body = match (spend_limit, clear) {
                (_, true) | (None, _) => json!({"spend_limit": null}),
                (Some(l), false) => json!({"spend_limit": {"limit": l, "window": spend_window}}),
            };
            let k = r
                .call("PATCH", &format!("/keys/{key_id}"), Some(body))
                .await?;
            match k["spend_limit"].as_object() {
                Some(l) => println!(
                    "{key_id}: spend limit {} ({} spent)",
                    l.get("limit").unwrap_or(&Value::Null),
                    l.get("spent").unwrap_or(&Value::Null)
                ),
                None => println!("{key_id}: no spend limit"),
            }
        }
    }
    Ok(())
}

async fn credits(r: &Remote, c: &CreditsCmd) -> anyhow::Result<()> {
    let change = |account: String, amount: i64, kind: &'static str, reason: String| async move {
        let id = r.account_id(&account).await?;
        let v = r
            .call(
                "POST",
                &format!("/accounts/{id}/credits"),
                Some(json!({"amount": amount, "kind": kind, "reason": reason})),
            )
            .await?;
        println!("balance {}", v["balance"]);
        Ok(())
    };
    match c {
        CreditsCmd::Grant {
            account,
            amount,
            reason,
            ..
        } => change(account.clone(), *amount, "grant", reason.clone()).await,
        CreditsCmd::Adjust {
            account,
            delta,
            reason,
            ..
        } => change(account.clone(), *delta, "adjustment", reason.clone()).await,
        CreditsCmd::Show { account, .. } => {
            let id = r.account_id(account).await?;
            let a = r.call("GET", &format!("/accounts/{id}"), None).await?;
            println!("{account}: {} credits", a["balance"]);
            let mut rows = r.all(&format!("/accounts/{id}/transactions")).await?;
            rows.reverse();
            for e in &rows {
                println!(
                    "{}\t{}\t{:>8}\tbalance {}\t{}{}",
                    e["created_at"].as_str().unwrap_or(""),
                    e["kind"].as_str().unwrap_or(""),
                    e["amount"],
                    e["balance_after"],
                    e["reason"].as_str().unwrap_or(""),
                    e["task_id"]
                        .as_str()
                        .map(|t| format!("\t{t}"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        CreditsCmd::Audit { .. } => database_only("`credits audit`"),
    }
}

async fn audit_log(r: &Remote, a: &AuditLogArgs) -> anyhow::Result<()> {
    let mut path = format!("/audit?limit={}", a.limit.clamp(1, 100));
    if let Some(actor) = &a.actor {
        path.push_str(&format!("&actor={}", urlencode(actor)));
    }
    if let Some(action) = &a.action {
        path.push_str(&format!("&action={}", urlencode(action)));
    }
    let v = r.call("GET", &path, None).await?;
    for e in v["data"].as_array().into_iter().flatten() {
        let text = |k: &str| e[k].as_str().unwrap_or("");
        println!(
            "{}",
            super::audit_line(
                text("at"),
                text("actor"),
                text("action"),
                text("target"),
                e.get("before"),
                e.get("after")
            )
        );
    }
    Ok(())
}
