//! Percentiles of measured times, with `hdrhistogram` (microseconds, three
//! significant figures): the one place the benchmarks compute them.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Times recorded for one figure.
pub struct Times(Histogram<u64>);

impl Default for Times {
    fn default() -> Times {
        // 1 µs to one hour, three significant figures.
        Times(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds"))
    }
}

impl Times {
    pub fn record(&mut self, d: Duration) {
        self.0.saturating_record((d.as_micros() as u64).max(1));
    }

    /// The value at quantile `q` (0.5: the median).
    pub fn at(&self, q: f64) -> Duration {
        Duration::from_micros(self.0.value_at_quantile(q))
    }

    pub fn max(&self) -> Duration {
        Duration::from_micros(self.0.max())
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<Duration> for Times {
    fn from_iter<I: IntoIterator<Item = Duration>>(it: I) -> Times {
        let mut t = Times::default();
        for d in it {
            t.record(d);
        }
        t
    }
}

/// Microseconds recorded as integers (the soak's per-route latencies).
impl Extend<u64> for Times {
    fn extend<I: IntoIterator<Item = u64>>(&mut self, it: I) {
        for us in it {
            self.0.saturating_record(us.max(1));
        }
    }
}

/// Milliseconds, for the tables.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Time `f` `k` times and return the median.
pub fn median_of(k: usize, mut f: impl FnMut()) -> Duration {
    (0..k)
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed()
        })
        .collect::<Times>()
        .at(0.5)
}
