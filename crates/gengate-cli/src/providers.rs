//! `gengate providers status`: the operator's view of the upstream accounts.
//!
//! It reads a running server's `/readyz` over HTTP rather than the database: account
//! health, slots and counters live in each node's memory (like its metrics), and
//! `/readyz` is where the node reports them. Point `--url` at each node to see each
//! node's view.

use anyhow::Context;
use serde_json::Value;

#[derive(clap::Subcommand, Debug)]
pub enum ProvidersCmd {
    /// The providers of one node and, for Kling, each account: rotation state, tasks in
    /// flight, slots, submits and failures (read from the node's /readyz).
    Status {
        /// The node to ask.
        #[arg(long, env = "GENGATE_URL", default_value = gengate_client::DEFAULT_BASE_URL)]
        url: String,
        /// Print the node's JSON instead of the table.
        #[arg(long, default_value_t = false, value_parser = clap::builder::BoolishValueParser::new())]
        json: bool,
    },
}

pub async fn run(cmd: ProvidersCmd) -> anyhow::Result<()> {
    let ProvidersCmd::Status { url, json } = cmd;
    let endpoint = format!("{}/readyz", url.trim_end_matches('/'));
    let resp = reqwest::Client::new()
        .get(&endpoint)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("asking {endpoint}"))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .with_context(|| format!("{endpoint} did not answer JSON ({status})"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        print!("{}", table(&body));
    }
    if !status.is_success() {
        anyhow::bail!("{endpoint} answered {status}: the node is not ready");
    }
    Ok(())
}

/// The table printed for a `/readyz` body.
pub fn table(readyz: &Value) -> String {
    let mut out = String::new();
    let Some(providers) = readyz["providers"].as_object() else {
        return "no provider information in the answer\n".into();
    };
    let mut names: Vec<&String> = providers.keys().collect();
    names.sort();
    for name in names {
        let p = &providers[name];
        let healthy = p["healthy"].as_bool().unwrap_or(false);
        out.push_str(&format!(
            "provider {name}: {}{}\n",
            if healthy { "healthy" } else { "UNHEALTHY" },
            p["reason"]
                .as_str()
                .map(|r| format!(" since {} ({r})", p["since"].as_str().unwrap_or("?")))
                .unwrap_or_default()
        ));
        let Some(accounts) = p["accounts"].as_array() else {
            continue;
        };
        let rows: Vec<[String; 7]> = accounts
            .iter()
            .map(|a| {
                let slots = match (a["slots"].as_u64(), a["slots_configured"].as_u64()) {
                    (Some(l), Some(_)) => format!("{l}"),
                    (Some(l), None) => format!("{l} (learned)"),
                    (None, _) => "unknown".into(),
                };
                let failures =
                    a["failures"]
                        .as_object()
                        .filter(|f| !f.is_empty())
                        .map_or("-".into(), |f| {
                            f.iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect::<Vec<_>>()
                                .join(",")
                        });
                let state = match a["since"].as_str() {
                    Some(since) => format!("{} since {since}", a["state"].as_str().unwrap_or("?")),
                    None => a["state"].as_str().unwrap_or("?").to_owned(),
                };
                [
                    a["name"].as_str().unwrap_or("?").to_owned(),
                    state,
                    a["in_flight"].to_string(),
                    slots,
                    a["weight"].to_string(),
                    a["submits"].to_string(),
                    failures,
                ]
            })
            .collect();
        let header = [
            "ACCOUNT",
            "STATE",
            "IN_FLIGHT",
            "SLOTS",
            "WEIGHT",
            "SUBMITS",
            "FAILURES",
        ];
        let mut widths = header.map(str::len);
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.len());
            }
        }
        let line = |cells: &[String]| {
            let mut l = String::from("  ");
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(c);
                } else {
                    l.push_str(&format!("{c:<w$}  ", w = widths[i]));
                }
            }
            l.push('\n');
            l
        };
        out.push_str(&line(&header.map(str::to_owned)));
        for r in &rows {
            out.push_str(&line(r));
        }
        for a in accounts {
            if let Some(reason) = a["reason"].as_str() {
                out.push_str(&format!(
                    "  {}: {reason}\n",
                    a["name"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_table_shows_every_account_and_why_one_is_out() {
        let body = json!({"status": "ready", "providers": {
            "sandbox": {"healthy": true},
            "kling": {"healthy": true, "unhealthy_accounts": ["b"], "accounts": [
                {"name": "a", "state": "in_rotation", "healthy": true, "since": null, "reason": null,
                 "in_flight": 2, "slots": 2, "slots_configured": 2, "weight": 1, "submits": 7, "failures": {}},
                {"name": "b", "state": "account_refused", "healthy": false, "since": "2026-01-01T00:00:00Z",
                 "reason": "kling refused creates for the account: 1102", "in_flight": 0, "slots": null,
                 "slots_configured": null, "weight": 3, "submits": 2, "failures": {"account_fatal": 2}}
            ]}
        }});
        let t = table(&body);
        assert!(t.contains("provider kling: healthy"), "{t}");
        assert!(t.contains("provider sandbox: healthy"), "{t}");
        let row_a = t
            .lines()
            .find(|l| l.trim_start().starts_with("a "))
            .expect(&t);
        assert!(
            row_a.contains("in_rotation") && row_a.contains(" 7 "),
            "{row_a}"
        );
        let row_b = t
            .lines()
            .find(|l| l.trim_start().starts_with("b "))
            .expect(&t);
        assert!(
            row_b.contains("account_refused since 2026-01-01T00:00:00Z"),
            "{row_b}"
        );
        assert!(
            row_b.contains("unknown") && row_b.contains("account_fatal=2"),
            "{row_b}"
        );
        assert!(
            t.contains("b: kling refused creates for the account: 1102"),
            "{t}"
        );
    }
}
