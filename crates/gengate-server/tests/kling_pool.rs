//! A pool of Kling accounts (issue 14), end to end over loopback HTTP: gengate (in process,
//! or the real binary for kill -9) with an accounts file naming two instances of the
//! in-repo fake Kling, each with its own keys and a concurrency limit of 2.
//!
//! Metrics are one registry per test process, so every test names its accounts apart.

mod common;

use common::{Engine, TestApp, kling};
use gengate_core::ids::TaskId;
use gengate_kling::fake::{FakeConfig, FakeHandle, FakeKling};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

on_both_engines!(
    ten_tasks_use_both_accounts_within_their_slots_each_submitted_once,
    kill_9_with_tasks_on_both_accounts_reconciles_each_at_its_own_account,
    an_account_out_of_balance_leaves_rotation_and_its_probe_brings_it_back,
    a_callback_from_b_and_a_poll_of_a_are_matched_to_their_own_tasks,
    every_node_shows_an_unhealthy_account_the_same,
);

/// One node finds an account's keys refused; the admin API's providers answer, read
/// from the nodes' reports, shows it unhealthy, with the reason, from either node.
async fn every_node_shows_an_unhealthy_account_the_same(engine: Engine) {
    let tag = format!("cluster-{engine:?}").to_lowercase();
    let (good, bad) = (format!("{tag}-good"), format!("{tag}-bad"));
    let (fg, fb) = (fake_account("g").await, fake_account("b").await);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_accounts(
        dir.path(),
        &[
            account_toml(&good, &fg, 2, None),
            account_toml(&bad, &fb, 2, Some("not-the-secret")),
        ],
    );
    let app = start(engine, &file, &[]).await;
    // A second node on the same database that runs nothing: it makes no Kling call.
    let other = gengate_server::app::start(&common::config(
        engine,
        &dir.path().join("other"),
        &app.database_url,
        &["--no-runner", "--kling-accounts", &file],
    ))
    .await
    .expect("second node");
    let st = &app.running.engine;
    let op = app
        .operator("ops", gengate_core::operator::OperatorRole::Viewer)
        .await;
    let (_, key) = app.account("pool", 10_000).await;
    for i in 0..4 {
        submit(&app, &key, &format!("cluster task {i}")).await;
    }
    let http = reqwest::Client::new();
    let providers = |base: String| {
        let (http, op) = (http.clone(), op.clone());
        async move {
            let v: Value = http
                .get(format!("{base}/api/admin/v1/providers"))
                .bearer_auth(op)
                .send()
                .await
                .expect("providers")
                .json()
                .await
                .expect("json");
            v
        }
    };
    let bases = [app.base.clone(), format!("http://{}", other.addr)];
    let mut seen = None;
    wait_until(
        "both nodes show the bad account unhealthy",
        30,
        async || {
            let views = [
                providers(bases[0].clone()).await,
                providers(bases[1].clone()).await,
            ];
            let accounts = |v: &Value| {
                v["providers"]
                    .as_array()
                    .and_then(|ps| ps.iter().find(|p| p["name"] == "kling"))
                    .map(|p| p["accounts"].clone())
            };
            let (a, b) = (accounts(&views[0]), accounts(&views[1]));
            let unhealthy = a.as_ref().and_then(|a| a.as_array()).is_some_and(|list| {
                list.iter()
                    .any(|x| x["name"] == bad.as_str() && x["healthy"] == false)
            });
            if unhealthy && a == b {
                seen = a;
                true
            } else {
                false
            }
        },
    )
    .await;
    let accounts = seen.expect("accounts");
    let bad_view = accounts
        .as_array()
        .and_then(|l| l.iter().find(|x| x["name"] == bad.as_str()))
        .expect("bad account");
    assert!(bad_view["reason"].is_string(), "{bad_view}");
    assert_eq!(bad_view["seen_by"], st.node.node.as_str(), "{bad_view}");
    let good_view = accounts
        .as_array()
        .and_then(|l| l.iter().find(|x| x["name"] == good.as_str()))
        .expect("good account");
    assert_eq!(good_view["healthy"], true, "{good_view}");
    let nodes = providers(bases[1].clone()).await["nodes"].clone();
    assert_eq!(nodes.as_array().map(Vec::len), Some(2), "{nodes}");
    assert!(
        nodes
            .as_array()
            .expect("nodes")
            .iter()
            .all(|n| n["live"] == true),
        "{nodes}"
    );
    other.shutdown().await;
}

// ---------------------------------------------------------------------------------------
// Harness

/// A fake Kling account: its own keys, 2 concurrent tasks, quick progress.
async fn fake_account(tag: &str) -> FakeHandle {
    FakeKling::start(FakeConfig {
        access_key: format!("ak-{tag}"),
        secret_key: format!("sk-{tag}"),
        concurrency_limit: 2,
        submitted_for: Duration::from_millis(40),
        processing_for: Duration::from_millis(250),
        ..FakeConfig::default()
    })
    .await
    .expect("fake kling starts")
}

/// One `[[account]]` table for `fake`; `secret` overrides the right secret.
fn account_toml(
    name: &str,
    fake: &FakeHandle,
    max_in_flight: usize,
    secret: Option<&str>,
) -> String {
    let creds = fake.credentials();
    format!(
        "[[account]]\nname = \"{name}\"\naccess_key = \"{}\"\nsecret_key = \"{}\"\nbase_url = \"{}\"\nmax_in_flight = {max_in_flight}\nweight = 1\n\n",
        creds.access_key,
        secret.unwrap_or(&creds.secret_key),
        fake.base_url()
    )
}

fn write_accounts(dir: &std::path::Path, tables: &[String]) -> String {
    let path = dir.join("kling-accounts.toml");
    std::fs::write(&path, tables.concat()).expect("write accounts file");
    path.display().to_string()
}

async fn start(engine: Engine, accounts_file: &str, extra: &[&str]) -> TestApp {
    let mut flags = vec![
        "--kling-accounts",
        accounts_file,
        "--kling-poll-ms",
        "200",
        "--kling-retry-ms",
        "100",
        "--rate-create-per-min",
        "100000",
    ];
    flags.extend_from_slice(extra);
    TestApp::spawn_with(engine, &flags).await
}

async fn submit(app: &TestApp, key: &str, prompt: &str) -> String {
    let r = app
        .post("/api/v1/generations", key, &kling(prompt, json!({})))
        .send()
        .await
        .expect("post");
    let status = r.status();
    let v: Value = r.json().await.expect("json");
    assert_eq!(status, 202, "{v}");
    v["id"].as_str().expect("id").to_owned()
}

/// Which fake holds our task `id` (exactly one fake, exactly one task there).
fn holder<'a>(fakes: &[(&'a str, &FakeHandle)], id: &str) -> &'a str {
    let found: Vec<(&str, usize)> = fakes
        .iter()
        .map(|(n, f)| (*n, f.tasks_by_external_id(id)))
        .filter(|(_, c)| *c > 0)
        .collect();
    assert_eq!(found.len(), 1, "{id} is at {found:?}");
    assert_eq!(found[0].1, 1, "{id} was created twice at {}", found[0].0);
    found[0].0
}

async fn readyz_kling(base: &str) -> Value {
    let v: Value = reqwest::get(format!("{base}/readyz"))
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    v["providers"]["kling"].clone()
}

fn account<'a>(kling: &'a Value, name: &str) -> &'a Value {
    kling["accounts"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("no account {name} in {kling}"))
}

async fn metric(app: &TestApp, line_start: &str) -> Option<f64> {
    common::metrics_text(&app.http, &app.base)
        .await
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn wait_until(what: &str, secs: u64, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn creates_at(fake: &FakeHandle) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count()
}

// ---------------------------------------------------------------------------------------
// 1. Ten tasks, two accounts of two slots

/// 10 tasks at once over two accounts of 2 slots: both are used, neither ever runs more
/// than 2, every task succeeds, each was created exactly once (at one account). Account
/// `a` has its 2 slots configured, so it never hears a create it must refuse; `b` learns
/// them from its 1303s. The operator's table (`gengate providers status`) shows both.
async fn ten_tasks_use_both_accounts_within_their_slots_each_submitted_once(engine: Engine) {
    let tag = format!("ten-{engine:?}").to_lowercase();
    let (a, b) = (format!("{tag}-a"), format!("{tag}-b"));
    let (fa, fb) = (fake_account("a").await, fake_account("b").await);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_accounts(
        dir.path(),
        &[
            account_toml(&a, &fa, 2, None),
            account_toml(&b, &fb, 0, None),
        ],
    );
    let app = start(engine, &file, &[]).await;
    let (acc, key) = app.account("pool", 10_000).await;
    let started = Instant::now();
    let ids: Vec<String> = futures_util::future::join_all((0..10).map(|i| {
        let (app, key) = (&app, &key);
        async move { submit(app, key, &format!("pool task {i}")).await }
    }))
    .await;
    for id in &ids {
        let v = app.wait_terminal(&key, id, 60).await;
        assert_eq!(v["status"], "succeeded", "{v}");
    }
    eprintln!("POOL 10 tasks over 2x2 slots in {:?}", started.elapsed());
    let fakes = [(a.as_str(), &fa), (b.as_str(), &fb)];
    let mut per: HashMap<&str, usize> = HashMap::new();
    for id in &ids {
        *per.entry(holder(&fakes, id)).or_default() += 1;
    }
    assert!(per.get(a.as_str()).copied().unwrap_or(0) >= 1, "{per:?}");
    assert!(per.get(b.as_str()).copied().unwrap_or(0) >= 1, "{per:?}");
    assert_eq!(fa.tasks().len() + fb.tasks().len(), 10);
    assert!(fa.max_concurrent_observed() <= 2 && fb.max_concurrent_observed() <= 2);
    // Configured slots: not one create refused at `a`. Learned slots at `b`: only the
    // tasks that raced there before its first 1303 answer (10 - 2 at a - 2 at b) are
    // refused, each once; the learned limit holds every later one back.
    assert_eq!(creates_at(&fa), per[a.as_str()], "a refused nothing");
    let refused_b = creates_at(&fb) - per[b.as_str()];
    assert!(refused_b <= 6, "{refused_b} creates refused (1303) at b");
    eprintln!("POOL per account {per:?}; 1303s at b: {refused_b}");

    // The admin API finds each account's tasks by the upstream account they went to.
    let op = app
        .operator("ops", gengate_core::operator::OperatorRole::Viewer)
        .await;
    for (name, _) in fakes {
        let list = app
            .get_json(
                &format!("/api/admin/v1/generations?upstream_account={name}&limit=100"),
                &op,
            )
            .await;
        let mut found: Vec<&str> = list["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|t| {
                assert_eq!(t["provider"], "kling", "{t}");
                assert!(t["upstream_task_id"].is_string(), "{t}");
                t["id"].as_str().unwrap_or("")
            })
            .collect();
        let mut expected: Vec<&str> = ids
            .iter()
            .filter(|id| holder(&fakes, id) == name)
            .map(String::as_str)
            .collect();
        found.sort_unstable();
        expected.sort_unstable();
        assert_eq!(found, expected, "tasks at {name}");
    }
    let story = app
        .get_json(&format!("/api/admin/v1/generations/{}", ids[0]), &op)
        .await;
    let steps: Vec<&str> = story["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|s| s["what"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        steps,
        ["created", "charged", "submitted", "succeeded"],
        "{story}"
    );
    assert_eq!(story["account"], acc.as_str());
    assert_eq!(story["credits_charged"], 90);

    // Observability: per-account submits match what each account received.
    assert_eq!(
        metric(
            &app,
            &format!("gengate_kling_account_submits_total{{account=\"{a}\"}}")
        )
        .await,
        Some(creates_at(&fa) as f64)
    );
    let k = readyz_kling(&app.base).await;
    assert_eq!(k["healthy"], true, "{k}");
    assert_eq!(k["unhealthy_accounts"], json!([]), "{k}");
    assert_eq!(account(&k, &a)["slots"], 2, "{k}");
    assert_eq!(account(&k, &b)["slots"], 2, "learned from 1303: {k}");
    assert_eq!(account(&k, &a)["submits"], creates_at(&fa), "{k}");
    assert!(!k.to_string().contains("sk-"), "no secret in /readyz: {k}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gengate"))
        .args(["providers", "status", "--url", &app.base])
        .output()
        .expect("gengate providers status");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{table} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in [&a, &b] {
        let row = table
            .lines()
            .find(|l| l.trim_start().starts_with(name.as_str()))
            .unwrap_or_else(|| panic!("no row for {name}:\n{table}"));
        assert!(row.contains("in_rotation"), "{row}");
    }
    eprintln!("{table}");
    assert_eq!(
        app.balance(&acc).await,
        10_000 - 10 * 90,
        "each task charged once"
    );
    app.assert_ledger_balances().await;
}

// ---------------------------------------------------------------------------------------
// 2. An account runs out of balance (1102)

/// Account `a` answers 1102 to every create: it leaves rotation after its first refusals,
/// the refused tasks (nothing was created) go to `b` and succeed; no task fails. When the
/// fake recovers, `a`'s probe (one real create per back-off) brings it back and it takes
/// tasks again.
async fn an_account_out_of_balance_leaves_rotation_and_its_probe_brings_it_back(engine: Engine) {
    let tag = format!("bal-{engine:?}").to_lowercase();
    let (a, b) = (format!("{tag}-a"), format!("{tag}-b"));
    let (a, b) = (a.as_str(), b.as_str());
    let (fa, fb) = (fake_account("a").await, fake_account("b").await);
    fa.set_create_refusal(Some(1102));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_accounts(
        dir.path(),
        &[account_toml(a, &fa, 2, None), account_toml(b, &fb, 2, None)],
    );
    let app = start(engine, &file, &[]).await;
    let (acc, key) = app.account("balance", 10_000).await;
    let started = Instant::now();
    let mut ids = vec![];
    for i in 0..6 {
        ids.push(submit(&app, &key, &format!("balance {i}")).await);
    }
    for id in &ids {
        let v = app.wait_terminal(&key, id, 60).await;
        assert_eq!(v["status"], "succeeded", "{v}");
    }
    let fakes = [(a, &fa), (b, &fb)];
    for id in &ids {
        assert_eq!(holder(&fakes, id), b);
    }
    // Before it was out: at most its 2 slots' creates. After: one create probe per
    // back-off, doubling from 100 ms (and only while a task needed an account).
    let elapsed = started.elapsed();
    let bound = 2 + (elapsed.as_millis() as f64 / 100.0).log2().ceil() as usize + 1;
    let refused_at_a = fa.creates_received();
    eprintln!("POOL balance: a heard {refused_at_a} creates in {elapsed:?} (bound {bound})");
    assert!(
        (1..=bound).contains(&refused_at_a),
        "a heard {refused_at_a} creates in {elapsed:?} while out of balance"
    );
    let k = readyz_kling(&app.base).await;
    assert_eq!(k["healthy"], true, "b is in rotation: {k}");
    assert_eq!(k["unhealthy_accounts"], json!([a]), "{k}");
    assert_eq!(account(&k, a)["state"], "account_refused", "{k}");
    assert!(
        account(&k, a)["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("1102"),
        "{k}"
    );
    assert_eq!(
        metric(
            &app,
            &format!("gengate_kling_account_healthy{{account=\"{a}\"}}")
        )
        .await,
        Some(0.0)
    );

    // The pack is refilled: the next probe (a real create) succeeds and `a` is back.
    fa.set_create_refusal(None);
    let recovered_at = Instant::now();
    let mut more = vec![];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        more.push(submit(&app, &key, "after the refill").await);
        tokio::time::sleep(Duration::from_millis(150)).await;
        if readyz_kling(&app.base).await["unhealthy_accounts"] == json!([]) {
            break;
        }
        assert!(Instant::now() < deadline, "a did not come back");
    }
    eprintln!(
        "POOL balance: a back {:?} after the refill",
        recovered_at.elapsed()
    );
    for id in &more {
        let v = app.wait_terminal(&key, id, 60).await;
        assert_eq!(v["status"], "succeeded", "{v}");
        holder(&fakes, id);
    }
    assert!(!fa.tasks().is_empty(), "a takes tasks again");
    assert_eq!(
        metric(
            &app,
            &format!("gengate_kling_account_healthy{{account=\"{a}\"}}")
        )
        .await,
        Some(1.0)
    );
    let charged = 90 * (ids.len() + more.len()) as i64;
    assert_eq!(app.balance(&acc).await, 10_000 - charged);
    app.assert_ledger_balances().await;
}

// ---------------------------------------------------------------------------------------
// 3. An account with a wrong secret

/// Account `a` is configured with a wrong secret. Its first refusals take it out of
/// rotation; from then on it hears only one probe per back-off (a list call), not a retry
/// per task: its request count stays bounded while 10 tasks flow to `b`. New creates are
/// never refused (the provider stays healthy). Fixing the secret at Kling brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_secret_costs_one_probe_cycle_not_a_storm() {
    let (a, b) = ("creds-a", "creds-b");
    let (fa, fb) = (fake_account("a").await, fake_account("b").await);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_accounts(
        dir.path(),
        &[
            account_toml(a, &fa, 2, Some("not-the-secret")),
            account_toml(b, &fb, 2, None),
        ],
    );
    let app = start(Engine::Sqlite, &file, &[]).await;
    let (_, key) = app.account("creds", 10_000).await;
    let started = Instant::now();
    let mut ids = vec![];
    for i in 0..10 {
        ids.push(submit(&app, &key, &format!("creds {i}")).await);
    }
    for id in &ids {
        let v = app.wait_terminal(&key, id, 60).await;
        assert_eq!(v["status"], "succeeded", "{v}");
        assert_eq!(holder(&[(a, &fa), (b, &fb)], id), b);
    }
    let elapsed = started.elapsed();
    let k = readyz_kling(&app.base).await;
    assert_eq!(k["healthy"], true, "{k}");
    assert_eq!(account(&k, a)["state"], "credentials_refused", "{k}");
    // Before it was out: at most its 2 slots' creates, each re-minted and retried once —
    // whatever the number of tasks. After: one list probe per back-off (doubling from
    // 100 ms), each also re-minted and retried once by the client.
    let requests = fa.requests();
    let posts = requests.iter().filter(|r| r.method == "POST").count();
    let lists = requests.len() - posts;
    let probes_bound = (elapsed.as_millis() as f64 / 100.0).log2().ceil() as usize + 2;
    eprintln!(
        "POOL wrong secret: {} requests to a in {elapsed:?} for 10 tasks: {posts} creates, {lists} probe requests (bound {})",
        requests.len(),
        2 * probes_bound
    );
    assert!(posts <= 4, "{posts} creates sent to a refusing account");
    assert!(
        lists <= 2 * probes_bound,
        "{lists} probe requests to a in {elapsed:?}"
    );
    assert_eq!(fa.creates_received(), 0, "no create got past auth at a");
    // While `a` is out, creates are taken (b has room): no 503.
    let extra = submit(&app, &key, "while a is out").await;
    assert_eq!(
        app.wait_terminal(&key, &extra, 60).await["status"],
        "succeeded"
    );

    fa.set_secret_key("not-the-secret");
    wait_until("a back in rotation", 90, || async {
        readyz_kling(&app.base).await["unhealthy_accounts"] == json!([])
    })
    .await;
    app.assert_ledger_balances().await;
}

// ---------------------------------------------------------------------------------------
// 4. kill -9 with tasks in flight on both accounts

/// The real binary is killed while both accounts hold tasks whose create answers were
/// dropped (state `submitting`, with the account recorded). Answers stay dropped after the
/// restart, so any second create would make a second task. After the restart each task is
/// looked up at its own account and adopted: no account receives a create again, no task
/// exists twice across the pool, every task succeeds, the ledger balances.
async fn kill_9_with_tasks_on_both_accounts_reconciles_each_at_its_own_account(engine: Engine) {
    const N: usize = 4;
    let tag = format!("kill-{engine:?}").to_lowercase();
    let (a, b) = (format!("{tag}-a"), format!("{tag}-b"));
    let (fa, fb) = (fake_account("a").await, fake_account("b").await);
    fa.set_drop_create_answers(true);
    fb.set_drop_create_answers(true);
    let db = common::seeded(engine, 10_000).await;
    let file = write_accounts(
        db.dir.path(),
        &[
            account_toml(&a, &fa, 2, None),
            account_toml(&b, &fb, 2, None),
        ],
    );
    let (store, key) = (db.store.clone(), db.key.clone());
    let flags = [
        "--kling-accounts",
        file.as_str(),
        "--lease-ms",
        "1500",
        "--runner-poll-ms",
        "50",
        "--kling-poll-ms",
        "200",
        // The retry after a dropped answer comes after the kill.
        "--kling-retry-ms",
        "4000",
    ];
    let mut server = common::Binary::new(&db, &flags);
    server.start().await;
    let http = reqwest::Client::new();
    let mut ids = vec![];
    for i in 0..N {
        let r = http
            .post(server.url("/api/v1/generations"))
            .bearer_auth(&key)
            .json(&kling(&format!("crash {i}"), json!({})))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 202);
        let v: Value = r.json().await.expect("json");
        ids.push(v["id"].as_str().expect("id").to_owned());
    }
    wait_until("every create reached an account", 30, || async {
        fa.tasks().len() + fb.tasks().len() == N
    })
    .await;
    server.kill9();
    assert!(
        !fa.tasks().is_empty() && !fb.tasks().is_empty(),
        "both accounts hold tasks"
    );
    let fakes = [(a.as_str(), &fa), (b.as_str(), &fb)];
    for id in &ids {
        let up = store
            .load_upstream(&TaskId::parse(id).expect("id"))
            .await
            .expect("load")
            .unwrap_or(Value::Null);
        assert_eq!(up["phase"], "submitting", "killed mid-submit: {up}");
        assert_eq!(
            up["account"],
            holder(&fakes, id),
            "the account was stored before the create: {up}"
        );
    }
    let creates_before = (creates_at(&fa), creates_at(&fb));
    assert_eq!(creates_before.0 + creates_before.1, N);

    server.start().await;
    for id in &ids {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let t = store
                .get_task_unscoped(&TaskId::parse(id).expect("id"))
                .await
                .expect("get")
                .expect("task");
            if t.status.is_terminal() {
                assert_eq!(
                    t.status,
                    gengate_core::generation::TaskStatus::Succeeded,
                    "{id}"
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "task {id} did not end after restart"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        holder(&fakes, id);
    }
    server.kill9();
    assert_eq!(
        (creates_at(&fa), creates_at(&fb)),
        creates_before,
        "no account received a create after the restart"
    );
    assert_eq!(fa.tasks().len() + fb.tasks().len(), N);
    assert!(store.ledger_mismatches().await.expect("audit").is_empty());
}

// ---------------------------------------------------------------------------------------
// 5. Callbacks and polls go to the right account

/// Two tasks, one per account, whose Kling task ids are the same string (each fake counts
/// from 1). `b` calls back; `a` never does (only polling finds its end). `b`'s task is
/// finished while `a`'s same-id task is still processing: the callback's re-query must go
/// to `b`, and the task ends long before a poll. Then `a`'s task finishes and a poll of
/// `a` ends it. Each result is the bytes of the account that made it.
async fn a_callback_from_b_and_a_poll_of_a_are_matched_to_their_own_tasks(engine: Engine) {
    let tag = format!("match-{engine:?}").to_lowercase();
    let (a, b) = (format!("{tag}-a"), format!("{tag}-b"));
    let (a, b) = (a.as_str(), b.as_str());
    let (fa, fb) = (fake_account("a").await, fake_account("b").await);
    for (f, bytes) in [
        (&fa, "video made by account a"),
        (&fb, "video made by account b"),
    ] {
        f.hold_progress(true);
        f.set_video_bytes(bytes.as_bytes().to_vec());
    }
    fa.set_callbacks(false);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_accounts(
        dir.path(),
        &[account_toml(a, &fa, 2, None), account_toml(b, &fb, 2, None)],
    );
    // Polls every 10 s: a task that ends within five seconds ended by its callback
    // (five, not one, because CI's two cores are busy).
    let app = TestApp::spawn_with(
        engine,
        &[
            "--kling-accounts",
            &file,
            "--kling-poll-ms",
            "10000",
            "--kling-retry-ms",
            "100",
            "--rate-create-per-min",
            "100000",
        ],
    )
    .await;
    let (_, key) = app.account("matching", 10_000).await;
    let fakes = [(a, &fa), (b, &fb)];
    // Weighted round-robin over two equal accounts: the first task to one, the next to
    // the other.
    let t1 = submit(&app, &key, "first").await;
    wait_until("t1 at an account", 30, || async {
        fa.tasks().len() + fb.tasks().len() == 1
    })
    .await;
    let t2 = submit(&app, &key, "second").await;
    wait_until("t2 at an account", 30, || async {
        fa.tasks().len() + fb.tasks().len() == 2
    })
    .await;
    let (on_a, on_b) = match (holder(&fakes, &t1), holder(&fakes, &t2)) {
        (x, y) if x == a && y == b => (t1, t2),
        (x, y) if x == b && y == a => (t2, t1),
        other => panic!("both tasks went to one account: {other:?}"),
    };
    let kid = fa.tasks()[0].task_id.clone();
    assert_eq!(
        fb.tasks()[0].task_id,
        kid,
        "the two accounts use the same task id"
    );
    let store = app.running.engine.store.clone();
    for id in [&on_a, &on_b] {
        let tid = TaskId::parse(id).expect("id");
        wait_until("the task id is stored", 30, || async {
            store
                .load_upstream(&tid)
                .await
                .ok()
                .flatten()
                .is_some_and(|u| u["phase"] == "submitted")
        })
        .await;
    }

    // b finishes its task and calls back; a's task of the same id is still running.
    let finished = Instant::now();
    assert!(fb.finish_task(&kid));
    let vb = app.wait_terminal(&key, &on_b, 30).await;
    let took = finished.elapsed();
    assert_eq!(vb["status"], "succeeded", "{vb}");
    assert!(
        took < Duration::from_secs(5),
        "b's task ended by a poll, not its callback: {took:?}"
    );
    let va: Value = app
        .get_json(&format!("/api/v1/generations/{on_a}"), &key)
        .await;
    assert_eq!(
        va["status"], "processing",
        "a's task is not touched by b's callback: {va}"
    );
    eprintln!("POOL callback from b ended its task in {took:?}");

    // a finishes without a callback: a poll of a ends it.
    assert!(fa.finish_task(&kid));
    let va = app.wait_terminal(&key, &on_a, 60).await;
    assert_eq!(va["status"], "succeeded", "{va}");
    for (v, bytes) in [
        (&va, "video made by account a"),
        (&vb, "video made by account b"),
    ] {
        let url = v["result"]["primary_url"].as_str().expect("url");
        let got = app
            .http
            .get(url)
            .send()
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(got.as_ref(), bytes.as_bytes(), "{v}");
    }
    let gets = |f: &FakeHandle| {
        f.requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with(&kid))
            .count()
    };
    assert!(
        gets(&fa) >= 1 && gets(&fb) >= 1,
        "each account was asked about its own task"
    );
    assert_eq!(fa.callbacks_sent(), 0);
    app.assert_ledger_balances().await;
}

// ---------------------------------------------------------------------------------------
// Configuration

/// A malformed accounts file stops the start with its line and field named; a good one
/// starts with the accounts' names and base URLs in the log, and never a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_accounts_file_is_checked_at_start_and_keys_are_never_logged() {
    let db = common::seeded(Engine::Sqlite, 0).await;
    let bad = db.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[account]]\nname = \"sg-main\"\naccess_key = \"AK-NEVER-SHOWN\"\nsecret_key_env = \"GENGATE_TEST_UNSET_SECRET\"\nweight = 0\n",
    )
    .expect("write");
    let serve = |file: &std::path::Path| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_gengate"));
        c.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-bootstrap",
            "--database-url",
        ])
        .arg(&db.url)
        .arg("--data-dir")
        .arg(db.dir.path())
        .arg("--kling-accounts")
        .arg(file)
        .env("GENGATE_LOG", "info")
        .env("GENGATE_LOG_FORMAT", "text");
        c
    };
    let out = serve(&bad).output().expect("run gengate");
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a bad file must stop the start: {err}"
    );
    assert!(
        err.contains("line 4")
            && err.contains("account[0].secret_key_env")
            && err.contains("GENGATE_TEST_UNSET_SECRET"),
        "{err}"
    );
    assert!(!err.contains("AK-NEVER-SHOWN"), "{err}");

    let good = db.dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[[account]]\nname = \"sg-main\"\naccess_key = \"AK-NEVER-SHOWN\"\nsecret_key_env = \"GENGATE_TEST_POOL_SECRET\"\nbase_url = \"http://127.0.0.1:9/\"\n",
    )
    .expect("write");
    let log = db.dir.path().join("serve.log");
    let mut child = serve(&good)
        .env("GENGATE_TEST_POOL_SECRET", "SK-NEVER-SHOWN")
        .stdout(std::fs::File::create(&log).expect("log"))
        .stderr(std::process::Stdio::from(
            std::fs::OpenOptions::new()
                .append(true)
                .open(&log)
                .expect("log"),
        ))
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("kling account configured") || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains("sg-main") && text.contains("http://127.0.0.1:9/"),
        "{text}"
    );
    assert!(
        !text.contains("AK-NEVER-SHOWN") && !text.contains("SK-NEVER-SHOWN"),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// No account in rotation

/// Both accounts refuse our credentials: the provider is unhealthy, with the one policy of
/// the provider-health work — new creates `503 provider_unavailable` (nothing charged),
/// the queued tasks fail `upstream_unavailable`, refunded, after the bound. `/readyz`
/// names both accounts and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_no_account_in_rotation_the_provider_health_policy_applies() {
    let (a, b) = ("none-a", "none-b");
    let (fa, fb) = (fake_account("a").await, fake_account("b").await);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_accounts(
        dir.path(),
        &[
            account_toml(a, &fa, 2, Some("wrong-a")),
            account_toml(b, &fb, 2, Some("wrong-b")),
        ],
    );
    let app = start(
        Engine::Sqlite,
        &file,
        &["--provider-unhealthy-fail-after-ms", "1500"],
    )
    .await;
    let (acc, key) = app.account("none", 1000).await;
    let mut queued = vec![];
    for i in 0..3 {
        queued.push(submit(&app, &key, &format!("queued {i}")).await);
    }
    wait_until("no account in rotation", 30, || async {
        readyz_kling(&app.base).await["healthy"] == json!(false)
    })
    .await;
    let k = readyz_kling(&app.base).await;
    assert_eq!(k["unhealthy_accounts"], json!([a, b]), "{k}");
    assert!(
        k["reason"].as_str().unwrap_or_default().contains(a)
            && k["reason"].as_str().unwrap_or_default().contains(b),
        "{k}"
    );
    let r = app
        .post("/api/v1/generations", &key, &kling("refused", json!({})))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 503);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["code"], "provider_unavailable", "{v}");
    for id in &queued {
        let v = app.wait_terminal(&key, id, 30).await;
        assert_eq!(v["status"], "failed", "{v}");
        assert_eq!(v["error"]["code"], "upstream_unavailable", "{v}");
    }
    assert_eq!(app.balance(&acc).await, 1000, "every queued task refunded");
    assert_eq!(fa.creates_received() + fb.creates_received(), 0);
    app.assert_ledger_balances().await;
}

// ---------------------------------------------------------------------------------------
// Fair waiting

/// Six tasks queue behind an account with one slot. Each waiting task looks again on its
/// own jittered timer, so without the waiting line the slot would go to whichever looks
/// first; with it, Kling receives the creates in the order the tasks were accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_tasks_get_free_slots_oldest_first() {
    let fa = fake_account("a").await;
    fa.set_timings(Duration::from_millis(20), Duration::from_millis(150));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write_accounts(dir.path(), &[account_toml("fair-a", &fa, 1, None)]);
    let app = start(Engine::Sqlite, &file, &[]).await;
    let (_, key) = app.account("fair", 10_000).await;
    let mut ids = vec![];
    for i in 0..6 {
        ids.push(submit(&app, &key, &format!("fair {i}")).await);
        // Distinct acceptance times, closer together than the waiting tasks' jitter.
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    for id in &ids {
        let v = app.wait_terminal(&key, id, 60).await;
        assert_eq!(v["status"], "succeeded", "{v}");
    }
    let order: Vec<String> = fa
        .create_bodies()
        .iter()
        .filter_map(|b| b["external_task_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(order, ids, "creates reached Kling oldest first");
    assert_eq!(fa.max_concurrent_observed(), 1);
}
