//! The background loops of a node: the runner, the deadline sweeper, the
//! webhook dispatcher and housekeeping. Each stops when the stop signal flips.

use crate::Engine;
use crate::config::{EngineArgs, Role};
use crate::runner::{Runner, RunnerConfig, fail, timeout_error};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Runs renders and upstream calls: `all` and `worker` nodes, unless `--no-runner`.
pub fn runs_runner(cfg: &EngineArgs) -> bool {
    cfg.role != Role::Api && !cfg.no_runner
}

/// Sends webhook deliveries: `all` and `worker` nodes (deliveries are
/// leased, so any number of them may).
pub fn runs_dispatcher(cfg: &EngineArgs) -> bool {
    cfg.role != Role::Api
}

pub fn spawn(st: &Engine, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    let cfg = &st.args;
    // The deadline sweeper and housekeeping run on every node: a task must
    // end by its deadline even when no worker is up.
    let mut out = vec![
        tokio::spawn(deadline_sweeper(
            st.clone(),
            Duration::from_millis(cfg.sweep_ms),
            stop.clone(),
        )),
        tokio::spawn(housekeeping(st.clone(), stop.clone())),
        // The admin API's cluster view reads every node's report.
        tokio::spawn(crate::admin::cluster::reporter(st.clone(), stop.clone())),
        // Alerts on money are due whichever node moved the balance.
        tokio::spawn(crate::alerts::sweeper(st.clone(), stop.clone())),
    ];
    if cfg.role != Role::Worker {
        // Keys are checked here: a revocation or suspension made anywhere empties
        // this node's key cache within one poll.
        out.push(tokio::spawn(auth_feed(
            st.clone(),
            Duration::from_millis(cfg.change_feed_ms.max(10)),
            stop.clone(),
        )));
        // Long polls are answered here: wake them for changes made by workers.
        out.push(tokio::spawn(change_feed(
            st.clone(),
            Duration::from_millis(cfg.change_feed_ms.max(10)),
            stop.clone(),
        )));
    }
    if cfg.role == Role::Api {
        // An api node calls no vendor and no webhook receiver.
        return out;
    }
    out.push(tokio::spawn(crate::webhooks::dispatcher(
        st.clone(),
        stop.clone(),
    )));
    // A node that calls a provider learns its health from those calls and
    // probes its way back (docs/RELIABILITY.md).
    out.push(tokio::spawn(provider_prober(st.clone(), stop.clone())));
    if !runs_runner(cfg) {
        return out;
    }
    let runner_cfg = RunnerConfig {
        lease: Duration::from_millis(cfg.lease_ms),
        idle_poll: Duration::from_millis(cfg.runner_poll_ms),
        max_output_bytes: cfg.max_output_bytes,
    };
    out.push(tokio::spawn(Runner::new(st.clone(), runner_cfg).run(stop)));
    out
}

/// Fails open tasks past their deadline, whoever was (or was not) working on
/// them: a task ends even if every worker was down for a while.
async fn deadline_sweeper(st: Engine, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        match st.store.overdue_tasks(st.clock.now(), 100).await {
            Ok(ids) => {
                for id in ids {
                    if let Ok(Some(task)) = st.store.get_task_unscoped(&id).await
                        && let Err(e) = fail(&st, &id, timeout_error(&task)).await
                    {
                        tracing::warn!(task = %id, error = %e, "could not time out task");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "deadline sweep failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}

/// While a provider is unhealthy, checks it one probe at a time on its
/// back-off (`providers/health.rs`); nothing is sent while it is healthy.
async fn provider_prober(st: Engine, mut stop: watch::Receiver<bool>) {
    const TICK: Duration = Duration::from_millis(100);
    loop {
        for p in st.providers.all() {
            p.maintain().await;
            let Some(h) = p.health() else { continue };
            if h.begin_probe(st.clock.now().as_millis()) {
                let ok = p.probe().await;
                h.end_probe(st.clock.now().as_millis(), ok);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn housekeeping(st: Engine, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = st.store.purge_expired_idempotency(st.clock.now()).await {
            tracing::warn!(error = %e, "purging idempotency keys failed");
        }
        st.files.sweep_expired().await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(300)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Empties the key cache when the auth epoch moves: a key was revoked or an
/// account suspended or resumed, on any node or by an operator command. One
/// indexed single-row read per `every` (`--change-feed-ms`).
async fn auth_feed(st: Engine, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut seen = st.store.auth_epoch().await.ok();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        match st.store.auth_epoch().await {
            Ok(epoch) if Some(epoch) != seen => {
                st.keys.clear();
                seen = Some(epoch);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading the auth epoch failed"),
        }
    }
}

/// Wakes long polls for task changes made by any node: one query every
/// `every` (`--change-feed-ms`) over the recent changes, and only while
/// polls are open, however many. The window overlaps the previous one by
/// `SKEW` so a node whose clock is a little behind is not missed; a change
/// already seen in an earlier window is not announced again.
async fn change_feed(st: Engine, every: Duration, mut stop: watch::Receiver<bool>) {
    const SKEW: Duration = Duration::from_secs(2);
    const PAGE: u32 = 5_000;
    let mut since = st.clock.now();
    let mut seen: std::collections::HashSet<(gengate_core::ids::TaskId, gengate_core::Timestamp)> =
        Default::default();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let started = st.clock.now();
        if st.events.waiting() == 0 {
            since = started;
            seen.clear();
            continue;
        }
        let mut from = since.minus(SKEW);
        // What is older than the window cannot come back.
        seen.retain(|(_, at)| *at >= from);
        loop {
            match st.store.tasks_changed_since(from, PAGE).await {
                Ok(changes) => {
                    st.events.changed_elsewhere(
                        changes
                            .iter()
                            .filter(|(id, at)| seen.insert((id.clone(), *at)))
                            .map(|(id, _)| id),
                    );
                    match changes.last() {
                        Some((_, last)) if changes.len() == PAGE as usize && *last > from => {
                            from = *last;
                        }
                        _ => break,
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading task changes for long polls failed");
                    break;
                }
            }
        }
        since = started;
    }
}
