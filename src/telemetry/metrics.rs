//! A small Prometheus registry: request counts and latency histograms per
//! route, rendered in the text exposition format.
//!
//! Kept in-house because the node needs a handful of series, not a metrics
//! framework; latencies are integer microseconds until rendering.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in microseconds.
const BUCKETS_US: [u64; 12] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    10_000_000,
];

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum_us: u64,
    buckets: [u64; BUCKETS_US.len()],
}

/// Process-wide metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (method, route, status) → latency series.
    http: Mutex<BTreeMap<(String, String, u16), Series>>,
    /// Named counters of background work (e.g. `idempotency_purged`).
    counters: Mutex<BTreeMap<&'static str, u64>>,
    /// Named gauges with one label (e.g. `chain_quotes_refused{chain_id}`).
    gauges: Mutex<BTreeMap<(&'static str, &'static str, String), i64>>,
}

impl Metrics {
    /// Records one finished HTTP request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let Ok(mut http) = self.http.lock() else {
            return;
        };
        let series = http
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default();
        series.count += 1;
        series.sum_us = series.sum_us.saturating_add(us);
        for (bucket, bound) in series.buckets.iter_mut().zip(BUCKETS_US) {
            if us <= bound {
                *bucket += 1;
            }
        }
    }

    /// Adds `n` to a named counter.
    pub fn add(&self, name: &'static str, n: u64) {
        if let Ok(mut counters) = self.counters.lock() {
            *counters.entry(name).or_default() += n;
        }
    }

    /// Sets a gauge: `name{label.0="label.1"}` is `value`.
    pub fn set_gauge(&self, name: &'static str, label: (&'static str, String), value: i64) {
        if let Ok(mut gauges) = self.gauges.lock() {
            gauges.insert((name, label.0, label.1), value);
        }
    }

    /// The Prometheus text exposition of every series.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP epg_http_requests_total HTTP requests answered."
        );
        let _ = writeln!(out, "# TYPE epg_http_requests_total counter");
        let http = self.http.lock().map(|h| h.clone()).unwrap_or_default();
        for ((method, route, status), s) in &http {
            let _ = writeln!(
                out,
                "epg_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                s.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP epg_http_request_duration_seconds Time to answer."
        );
        let _ = writeln!(out, "# TYPE epg_http_request_duration_seconds histogram");
        for ((method, route, status), s) in &http {
            let labels = format!(
                "method=\"{method}\",route=\"{}\",status=\"{status}\"",
                escape(route)
            );
            for (bound, n) in BUCKETS_US.iter().zip(s.buckets) {
                let _ = writeln!(
                    out,
                    "epg_http_request_duration_seconds_bucket{{{labels},le=\"{}\"}} {n}",
                    seconds(*bound)
                );
            }
            let _ = writeln!(
                out,
                "epg_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "epg_http_request_duration_seconds_sum{{{labels}}} {}",
                seconds(s.sum_us)
            );
            let _ = writeln!(
                out,
                "epg_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        let counters = self.counters.lock().map(|c| c.clone()).unwrap_or_default();
        for (name, value) in counters {
            let _ = writeln!(out, "# TYPE epg_{name}_total counter");
            let _ = writeln!(out, "epg_{name}_total {value}");
        }
        let gauges = self.gauges.lock().map(|g| g.clone()).unwrap_or_default();
        let mut typed = None;
        for ((name, label, label_value), value) in gauges {
            if typed != Some(name) {
                let _ = writeln!(out, "# TYPE epg_{name} gauge");
                typed = Some(name);
            }
            let _ = writeln!(
                out,
                "epg_{name}{{{label}=\"{}\"}} {value}",
                escape(&label_value)
            );
        }
        out
    }
}

/// Integer microseconds as a decimal number of seconds.
fn seconds(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let m = Metrics::default();
        m.observe_request("GET", "/v1/account", 200, Duration::from_millis(3));
        m.observe_request("GET", "/v1/account", 200, Duration::from_millis(30));
        let text = m.render();
        assert!(text.contains(
            "epg_http_requests_total{method=\"GET\",route=\"/v1/account\",status=\"200\"} 2"
        ));
        assert!(text.contains("le=\"0.005000\"} 1"), "{text}");
        assert!(text.contains("le=\"0.050000\"} 2"), "{text}");
        assert!(
            text.contains("_sum{method=\"GET\",route=\"/v1/account\",status=\"200\"} 0.033000")
        );
    }

    #[test]
    fn gauges_are_typed_once_and_keep_the_last_value_per_label() {
        let m = Metrics::default();
        m.set_gauge("chain_quotes_refused", ("chain_id", "1".into()), 1);
        m.set_gauge("chain_quotes_refused", ("chain_id", "5".into()), 1);
        m.set_gauge("chain_quotes_refused", ("chain_id", "1".into()), 0);
        let text = m.render();
        assert_eq!(
            text.matches("# TYPE epg_chain_quotes_refused gauge")
                .count(),
            1
        );
        assert!(
            text.contains("epg_chain_quotes_refused{chain_id=\"1\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("epg_chain_quotes_refused{chain_id=\"5\"} 1"),
            "{text}"
        );
    }
}
