//! Request budgets shared through Redis (issue 13 item 1): two servers on one
//! database and one private `redis-server` admit one key's budget once, not
//! twice; while Redis is down each admits its share (budget ÷ expected
//! nodes) and nothing answers 5xx; when Redis is back sharing resumes by
//! itself. SQLite then PostgreSQL.

mod common;

use common::services::Redis;
use common::{Engine, config};
use gengate_core::scope::Scope;
use gengate_server::app::{Running, start};
use gengate_store::RateOverrides;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const BUDGET: u32 = 40;

struct Tally {
    accepted: u32,
    refused: u32,
    elapsed: Duration,
}

/// Sends `n` creates (an invalid body: admitted ones answer 400 and cost
/// nothing) spread over `bases`, 8 at a time; checks every answer's headers.
async fn hammer(http: &reqwest::Client, bases: &[String], key: &str, n: usize) -> Tally {
    let started = Instant::now();
    let mut tally = Tally {
        accepted: 0,
        refused: 0,
        elapsed: Duration::ZERO,
    };
    let mut i = 0;
    while i < n {
        let batch: Vec<_> = (i..(i + 8).min(n))
            .map(|j| {
                let url = format!("{}/api/v1/generations", bases[j % bases.len()]);
                http.post(url).bearer_auth(key).json(&json!({})).send()
            })
            .collect();
        i += batch.len();
        for r in futures_util::future::join_all(batch).await {
            let r = r.expect("request");
            let status = r.status().as_u16();
            let h = |name: &str| -> Option<u64> {
                r.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
            };
            let (limit, remaining, reset) = (
                h("ratelimit-limit"),
                h("ratelimit-remaining"),
                h("ratelimit-reset"),
            );
            assert!(limit.is_some_and(|l| l >= 1), "RateLimit-Limit on {status}");
            let limit = limit.unwrap_or(0);
            assert!(
                remaining.is_some_and(|r| r <= limit),
                "RateLimit-Remaining {remaining:?} of {limit}"
            );
            assert!(reset.is_some_and(|s| s <= 60), "RateLimit-Reset {reset:?}");
            match status {
                429 => {
                    tally.refused += 1;
                    assert_eq!(remaining, Some(0));
                    let retry = h("retry-after");
                    assert!(
                        retry.is_some_and(|s| (1..=60).contains(&s)),
                        "Retry-After {retry:?}"
                    );
                    let body: Value = r.json().await.expect("JSON");
                    assert_eq!(body["error"]["code"], "rate_limited");
                }
                400 => tally.accepted += 1,
                other => panic!("unexpected {other}: {:?}", r.text().await),
            }
        }
    }
    tally.elapsed = started.elapsed();
    eprintln!(
        "{n} requests through {} node(s): {} admitted, {} refused in {:?}",
        bases.len(),
        tally.accepted,
        tally.refused,
        tally.elapsed
    );
    tally
}

/// Most a bucket of `budget` a minute can admit in `elapsed`: the full
/// bucket plus what refills meanwhile (and one for rounding).
fn ceiling(budget: u32, elapsed: Duration) -> u32 {
    budget + (f64::from(budget) * elapsed.as_secs_f64() / 60.0).ceil() as u32 + 1
}

async fn readyz(http: &reqwest::Client, base: &str) -> Value {
    http.get(format!("{base}/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("JSON")
}

async fn metric(http: &reqwest::Client, base: &str, name: &str) -> f64 {
    common::metrics_text(http, base)
        .await
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn a_budget_is_shared_by_the_nodes_and_survives_a_redis_outage(engine: Engine) {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let url = common::database_url(engine, dir.path()).await;
    let flags = [
        "--redis-url",
        &redis.url(),
        "--expected-nodes",
        "2",
        // Generous: one slow Redis answer on a busy machine would put a
        // node on its local fallback and break the shared-budget sums.
        // (A stopped Redis refuses at once, so the outage phases stay fast.)
        "--redis-timeout-ms",
        "2000",
        "--no-runner",
    ];
    let mut nodes: Vec<Running> = Vec::new();
    for i in 0..2 {
        let node_dir = dir.path().join(format!("n{i}"));
        let cfg = config(engine, &node_dir, &url, &flags);
        nodes.push(start(&cfg).await.expect("node starts"));
    }
    let bases: Vec<String> = nodes.iter().map(|n| format!("http://{}", n.addr)).collect();
    let http = reqwest::Client::new();
    let st = &nodes[0].engine;
    let (account, _) = common::seed_account(st.store.as_ref(), "limited", 0).await;
    let key = |label: &'static str| {
        let store = st.store.clone();
        let account = account.clone();
        async move {
            gengate_engine::accounts::issue_key(
                store.as_ref(),
                &account,
                label,
                Scope::ALL.to_vec(),
                None,
                RateOverrides {
                    create_per_min: Some(BUDGET),
                    ..Default::default()
                },
                gengate_core::clock::Clock::now(&gengate_core::clock::SystemClock),
            )
            .await
            .expect("key")
            .secret
        }
    };

    // Shared: through both nodes the key gets its budget once.
    let t = hammer(&http, &bases, &key("shared").await, 120).await;
    assert!(
        t.accepted >= BUDGET && t.accepted <= ceiling(BUDGET, t.elapsed),
        "shared budget {BUDGET}: {} admitted in {:?}",
        t.accepted,
        t.elapsed
    );
    assert_eq!(t.accepted + t.refused, 120);
    assert_eq!(
        readyz(&http, &bases[0]).await["rate_limits"]["shared"],
        true
    );

    // Redis gone: each node admits its share, answers stay quick, no 5xx.
    let errors_before = metric(&http, &bases[0], "gengate_ratelimit_backend_errors_total").await;
    redis.stop();
    let k = key("outage").await;
    let one = hammer(&http, &bases[..1], &k, 60).await;
    let share = BUDGET / 2;
    assert!(
        one.accepted >= share && one.accepted <= ceiling(share, one.elapsed),
        "one node during the outage admits its share {share}: {} in {:?}",
        one.accepted,
        one.elapsed
    );
    assert!(
        one.elapsed < Duration::from_secs(10),
        "an unreachable Redis slowed requests down: {:?}",
        one.elapsed
    );
    let both = hammer(&http, &bases, &k, 60).await;
    // Node 0's share is spent; node 1 still has its own.
    assert!(
        both.accepted <= ceiling(share, both.elapsed) + 2,
        "the second node admits at most its share: {}",
        both.accepted
    );
    for b in &bases {
        let r = readyz(&http, b).await;
        assert_eq!(r["status"], "ready");
        assert_eq!(r["rate_limits"]["shared"], false, "{r}");
    }
    let errors = metric(&http, &bases[0], "gengate_ratelimit_backend_errors_total").await;
    assert!(errors > errors_before, "backend errors counted: {errors}");

    // Redis back: sharing resumes by itself (a node's share is exceeded
    // through one node, which the fallback would not allow).
    redis.resume();
    let probe = key("probe").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        hammer(&http, &bases, &probe, 2).await;
        if readyz(&http, &bases[0]).await["rate_limits"]["shared"] == true
            && readyz(&http, &bases[1]).await["rate_limits"]["shared"] == true
        {
            break;
        }
        assert!(Instant::now() < deadline, "sharing did not resume");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let k = key("resumed").await;
    let t = hammer(&http, &bases[..1], &k, 60).await;
    assert!(
        t.accepted >= BUDGET && t.accepted <= ceiling(BUDGET, t.elapsed),
        "after recovery one node admits the whole shared budget: {}",
        t.accepted
    );
    let t2 = hammer(&http, &bases[1..], &k, 20).await;
    assert!(
        t2.accepted <= ceiling(BUDGET, t.elapsed + t2.elapsed) - BUDGET,
        "the other node sees the spent budget: {}",
        t2.accepted
    );
    for n in nodes {
        n.shutdown().await;
    }
}

/// A Redis that accepts connections and never answers (a black hole, not a
/// refusal) costs one `--redis-timeout-ms` a second, not one per request.
async fn a_silent_redis_costs_one_timeout_not_one_per_request(engine: Engine) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = silent.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            conns.push(c);
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let url = common::database_url(engine, dir.path()).await;
    let redis_url = format!("redis://{addr}");
    let cfg = config(
        engine,
        &dir.path().join("n"),
        &url,
        &[
            "--redis-url",
            &redis_url,
            "--redis-timeout-ms",
            "300",
            "--expected-nodes",
            "2",
            "--no-runner",
        ],
    );
    let node = start(&cfg)
        .await
        .expect("node starts while Redis is silent");
    let base = format!("http://{}", node.addr);
    let (account, _) = common::seed_account(node.engine.store.as_ref(), "silent", 0).await;
    let key = gengate_engine::accounts::issue_key(
        node.engine.store.as_ref(),
        &account,
        "k",
        Scope::ALL.to_vec(),
        None,
        RateOverrides {
            create_per_min: Some(BUDGET),
            ..Default::default()
        },
        gengate_core::clock::Clock::now(&gengate_core::clock::SystemClock),
    )
    .await
    .expect("key")
    .secret;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut slow = 0;
    let mut accepted = 0;
    for _ in 0..40 {
        let t = Instant::now();
        let r = http
            .post(format!("{base}/api/v1/generations"))
            .bearer_auth(&key)
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        match r.status().as_u16() {
            400 => accepted += 1,
            429 => {}
            s => panic!("unexpected {s}"),
        }
        if t.elapsed() >= Duration::from_millis(290) {
            slow += 1;
        }
    }
    let elapsed = started.elapsed();
    assert!(
        // One wait per ~1.3 s (1 s between tries + the 300 ms timeout), plus
        // one of slack for a request slow for some other reason; a Redis
        // asked on every request would make all 40 slow.
        slow <= 2 + elapsed.as_secs() as u32,
        "{slow} requests waited for the silent Redis in {elapsed:?}"
    );
    assert!(
        accepted >= BUDGET / 2 && accepted <= ceiling(BUDGET / 2, elapsed),
        "the node admits its share: {accepted}"
    );
    assert_eq!(readyz(&http, &base).await["rate_limits"]["shared"], false);
    node.shutdown().await;
    held.abort();
}

on_both_engines!(
    a_budget_is_shared_by_the_nodes_and_survives_a_redis_outage,
    a_silent_redis_costs_one_timeout_not_one_per_request,
);
