//! Per-tenant throttle of page reads (`timeline_get_throttle`): a token
//! bucket shared by all timelines of a tenant, consulted by the page service
//! before each batch of GetPage requests. It only delays requests, never
//! fails them, as Neon's does.
//!
//! The bucket holds at most `max` tokens, starts with `initial`, and gains
//! `refill_amount` every `refill_interval` (continuously, pro rata). A
//! request for `n` pages takes `n` tokens, going into debt if there are not
//! enough, and waits until the debt would be paid back; later requests queue
//! behind that debt, so waiting is fair in arrival order. The throttle is
//! off unless `task_kinds` names `PageRequestHandler` (Neon's task kind of
//! page service requests).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use pageserver_api::tenant_config::ThrottleConfig;

/// The task kind whose reads this throttle applies to.
pub const PAGE_REQUEST_TASK_KIND: &str = "PageRequestHandler";

#[derive(Debug, Default)]
pub struct Throttle {
    bucket: Mutex<Option<Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// The configuration the bucket was made for (a change resets it).
    conf: ThrottleConfig,
}

impl Throttle {
    /// How long a request for `n` pages must wait under `conf` (zero when
    /// the throttle is off); the tokens are taken.
    pub fn reserve(&self, conf: &ThrottleConfig, n: u32, now: Instant) -> Duration {
        if !conf.task_kinds.iter().any(|k| k == PAGE_REQUEST_TASK_KIND) {
            return Duration::ZERO;
        }
        let rate = conf.refill_amount.get() as f64 / conf.refill_interval.as_secs_f64().max(1e-6);
        let mut guard = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = match guard.as_mut() {
            Some(b) if b.conf == *conf => b,
            _ => guard.insert(Bucket {
                tokens: f64::from(conf.initial.min(conf.max)),
                at: now,
                conf: conf.clone(),
            }),
        };
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(f64::from(conf.max));
        bucket.at = now;
        bucket.tokens -= f64::from(n);
        if bucket.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-bucket.tokens / rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn conf(initial: u32, per_sec: u32, max: u32) -> ThrottleConfig {
        ThrottleConfig {
            task_kinds: vec![PAGE_REQUEST_TASK_KIND.to_owned()],
            initial,
            refill_interval: Duration::from_secs(1),
            refill_amount: NonZeroU32::new(per_sec).unwrap(),
            max,
        }
    }

    #[test]
    fn off_unless_page_requests_are_named() {
        let t = Throttle::default();
        let now = Instant::now();
        assert_eq!(
            t.reserve(&ThrottleConfig::disabled(), 1000, now),
            Duration::ZERO
        );
        let mut c = conf(0, 1, 1);
        c.task_kinds = vec!["Compaction".into()];
        assert_eq!(t.reserve(&c, 1000, now), Duration::ZERO);
    }

    #[test]
    fn bucket_refills_and_queues_debt() {
        let t = Throttle::default();
        let c = conf(10, 100, 20);
        let now = Instant::now();
        // The initial tokens go first, then debt.
        assert_eq!(t.reserve(&c, 10, now), Duration::ZERO);
        let w = t.reserve(&c, 50, now);
        assert!((w.as_secs_f64() - 0.5).abs() < 1e-6, "{w:?}");
        // A later request waits behind the debt.
        let w2 = t.reserve(&c, 10, now);
        assert!((w2.as_secs_f64() - 0.6).abs() < 1e-6, "{w2:?}");
        // After a long idle time the bucket is full again, but no fuller.
        let later = now + Duration::from_secs(60);
        assert_eq!(t.reserve(&c, 20, later), Duration::ZERO);
        assert!(t.reserve(&c, 1, later) > Duration::ZERO);
        // A new configuration starts a new bucket.
        assert_eq!(t.reserve(&conf(5, 1, 5), 5, later), Duration::ZERO);
    }
}
