//! The operator's overview: what is waiting and running now, and how long tasks take
//! from create to result (p50/p95) per hour and per provider over a recent window.
//! Percentiles are computed here, not in SQL: SQLite has no percentile function, and
//! a bounded sample of the newest successes keeps the read small on a busy day.

use gengate_core::Timestamp;
use gengate_store::StoreResult;
use gengate_store::operators::{FinishedTask, OpenTasks, OperatorStore};
use std::collections::BTreeMap;
use std::time::Duration;

/// At most this many of the window's newest successes are read for the latencies.
pub const SAMPLE: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Latency {
    pub tasks: usize,
    pub p50_ms: i64,
    pub p95_ms: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HourLatency {
    /// The start of the UTC hour the tasks ended in.
    pub hour: Timestamp,
    #[serde(flatten)]
    pub latency: Latency,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProviderLatency {
    pub provider: String,
    #[serde(flatten)]
    pub latency: Latency,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Overview {
    pub queued: i64,
    pub processing: i64,
    pub window_hours: u32,
    /// How many successes the latencies are computed from (at most [`SAMPLE`], the newest).
    pub sampled: usize,
    /// Over the whole sample; `None` when nothing succeeded in the window.
    pub latency: Option<Latency>,
    /// One entry per hour that had a success, oldest first.
    pub hourly: Vec<HourLatency>,
    pub by_provider: Vec<ProviderLatency>,
    /// Open tasks (queued + processing) at the end of each hour of the window, oldest
    /// first, the last point being now: counted back from the open tasks now with each
    /// hour's creates and ends.
    pub open_tasks: Vec<OpenPoint>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpenPoint {
    pub at: Timestamp,
    pub open: i64,
}

pub async fn overview(
    store: &dyn OperatorStore,
    now: Timestamp,
    hours: u32,
) -> StoreResult<Overview> {
    let since = now.minus(Duration::from_secs(u64::from(hours) * 3600));
    let OpenTasks { queued, processing } = store.open_tasks().await?;
    let done = store.recent_successes(since, SAMPLE).await?;
    let flow = store.hourly_flow(since).await?;
    let mut o = summarise(queued, processing, hours, &done);
    o.open_tasks = open_history(queued + processing, now, hours, &flow);
    Ok(o)
}

const HOUR_MS: i64 = 3_600_000;

/// Walks back from `open_now`: at the start of an hour, the open tasks were those open at
/// its end, less the hour's creates, plus the hour's ends.
fn open_history(
    open_now: i64,
    now: Timestamp,
    hours: u32,
    flow: &[(i64, i64, i64)],
) -> Vec<OpenPoint> {
    let by_hour: BTreeMap<i64, (i64, i64)> = flow.iter().map(|&(h, c, e)| (h, (c, e))).collect();
    let current = now.as_millis().div_euclid(HOUR_MS) * HOUR_MS;
    let mut points = vec![OpenPoint {
        at: now,
        open: open_now,
    }];
    let mut open = open_now;
    for i in 0..i64::from(hours) {
        let start = current - i * HOUR_MS;
        let (created, ended) = by_hour.get(&start).copied().unwrap_or((0, 0));
        open = (open - created + ended).max(0);
        points.push(OpenPoint {
            at: Timestamp::from_millis(start),
            open,
        });
    }
    points.reverse();
    points
}

/// The nearest-rank percentile of sorted durations (`p` in 1..=100).
fn percentile(sorted: &[i64], p: usize) -> i64 {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn latency(mut ms: Vec<i64>) -> Option<Latency> {
    if ms.is_empty() {
        return None;
    }
    ms.sort_unstable();
    Some(Latency {
        tasks: ms.len(),
        p50_ms: percentile(&ms, 50),
        p95_ms: percentile(&ms, 95),
    })
}

fn summarise(queued: i64, processing: i64, hours: u32, done: &[FinishedTask]) -> Overview {
    let took = |f: &FinishedTask| (f.ended_at.as_millis() - f.created_at.as_millis()).max(0);
    let mut hourly: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut providers: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for f in done {
        let hour = f.ended_at.as_millis().div_euclid(3_600_000) * 3_600_000;
        hourly.entry(hour).or_default().push(took(f));
        providers.entry(&f.provider).or_default().push(took(f));
    }
    Overview {
        queued,
        processing,
        window_hours: hours,
        sampled: done.len(),
        latency: latency(done.iter().map(took).collect()),
        hourly: hourly
            .into_iter()
            .filter_map(|(h, ms)| {
                latency(ms).map(|latency| HourLatency {
                    hour: Timestamp::from_millis(h),
                    latency,
                })
            })
            .collect(),
        open_tasks: Vec::new(),
        by_provider: providers
            .into_iter()
            .filter_map(|(p, ms)| {
                latency(ms).map(|latency| ProviderLatency {
                    provider: p.to_owned(),
                    latency,
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(provider: &str, created: i64, took: i64) -> FinishedTask {
        FinishedTask {
            provider: provider.into(),
            created_at: Timestamp::from_millis(created),
            ended_at: Timestamp::from_millis(created + took),
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), 50);
        assert_eq!(percentile(&v, 95), 95);
        assert_eq!(percentile(&[7], 95), 7);
        assert_eq!(percentile(&[1, 2], 50), 1);
        assert_eq!(percentile(&[1, 2], 95), 2);
    }

    #[test]
    fn groups_by_the_hour_a_task_ended_and_by_provider() {
        let h = 3_600_000;
        let tasks = vec![
            done("kling", 10 * h + 1000, 60_000),
            done("kling", 10 * h + 2000, 120_000),
            done("sandbox", 11 * h - 2000, 1000),
        ];
        let o = summarise(3, 2, 24, &tasks);
        assert_eq!((o.queued, o.processing, o.sampled), (3, 2, 3));
        assert_eq!(o.latency.as_ref().map(|l| l.p50_ms), Some(60_000));
        assert_eq!(o.latency.as_ref().map(|l| l.p95_ms), Some(120_000));
        assert_eq!(o.hourly.len(), 1, "all three ended in hour 10");
        assert_eq!(o.hourly[0].hour, Timestamp::from_millis(10 * h));
        assert_eq!(
            o.by_provider
                .iter()
                .map(|p| (p.provider.as_str(), p.latency.tasks, p.latency.p95_ms))
                .collect::<Vec<_>>(),
            vec![("kling", 2, 120_000), ("sandbox", 1, 1000)]
        );
    }

    #[test]
    fn open_tasks_are_counted_back_hour_by_hour() {
        let h = 3_600_000;
        let now = Timestamp::from_millis(12 * h + h / 2);
        // Hour 12 (now): 4 created, 1 ended; hour 11: 2 created, 5 ended; hour 10: none.
        let flow = [(11 * h, 2, 5), (12 * h, 4, 1)];
        let points = open_history(7, now, 3, &flow);
        let got: Vec<(i64, i64)> = points.iter().map(|p| (p.at.as_millis(), p.open)).collect();
        assert_eq!(
            got,
            vec![(10 * h, 7), (11 * h, 7), (12 * h, 4), (12 * h + h / 2, 7)]
        );
    }

    #[test]
    fn nothing_done_is_no_latency_not_zero() {
        let o = summarise(0, 0, 24, &[]);
        assert_eq!(o.latency, None);
        assert!(o.hourly.is_empty() && o.by_provider.is_empty());
    }
}
