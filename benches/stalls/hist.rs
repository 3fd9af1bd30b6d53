//! Latency samples kept cheaply enough for a page-fault loop: one log-scale histogram per
//! millisecond of CLOCK_MONOTONIC, so a sample can be attributed afterwards to the repair phase
//! it started in, and percentiles taken over any span of windows.
//!
//! Buckets: 8 per power of two (so a bucket is at most 12.5% wide), up to about 8 s;
//! the exact maximum of each window is kept beside them. The text form is what a probe child
//! writes to its stdout when told to stop, and what the bench parses.

/// Sub-buckets per power of two.
const SUB: u64 = 8;
/// Buckets in all: powers of two up to 2^33 ns (8.6 s); anything longer is in the last.
pub const BUCKETS: usize = 34 * SUB as usize;
/// The width of a window of the timeline (ns).
pub const WINDOW_NS: u64 = 1_000_000;

/// The bucket of a latency of `ns` nanoseconds: the power of two below it and the next three
/// bits (below 8 ns each value has a bucket of its own).
pub fn bucket(ns: u64) -> usize {
    let v = ns.max(1);
    let p = 63 - v.leading_zeros() as u64;
    let frac = if p >= 3 {
        (v >> (p - 3)) & (SUB - 1)
    } else {
        (v << (3 - p)) & (SUB - 1)
    };
    ((p * SUB + frac) as usize).min(BUCKETS - 1)
}

/// The upper edge (ns) of bucket `b`: every sample in it is at most this.
pub fn upper_ns(b: usize) -> u64 {
    let (p, frac) = (b as u64 / SUB, b as u64 % SUB);
    ((SUB + frac + 1) << p) / SUB
}

/// One window: sample count per bucket and the largest sample.
#[derive(Clone)]
pub struct Window {
    pub counts: Vec<u32>,
    pub max_ns: u64,
}

impl Window {
    fn new() -> Window {
        Window {
            counts: vec![0; BUCKETS],
            max_ns: 0,
        }
    }
}

/// A timeline of windows from `origin_ns` (CLOCK_MONOTONIC).
pub struct Timeline {
    pub origin_ns: u64,
    pub windows: Vec<Window>,
}

impl Timeline {
    pub fn new(origin_ns: u64) -> Timeline {
        Timeline {
            origin_ns,
            windows: Vec::new(),
        }
    }

    /// A sample that started at `start_ns` and took `ns`.
    pub fn record(&mut self, start_ns: u64, ns: u64) {
        let w = (start_ns.saturating_sub(self.origin_ns) / WINDOW_NS) as usize;
        if w >= self.windows.len() {
            self.windows.resize(w + 1, Window::new());
        }
        let win = &mut self.windows[w];
        win.counts[bucket(ns)] += 1;
        win.max_ns = win.max_ns.max(ns);
    }

    /// Text form: `origin NS`, then one line per non-empty window: `W MAX B:N B:N ...`.
    pub fn to_text(&self) -> String {
        let mut s = format!("origin {}\n", self.origin_ns);
        for (w, win) in self.windows.iter().enumerate() {
            if win.max_ns == 0 && win.counts.iter().all(|&c| c == 0) {
                continue;
            }
            s.push_str(&format!("{w} {}", win.max_ns));
            for (b, &c) in win.counts.iter().enumerate().filter(|(_, &c)| c > 0) {
                s.push_str(&format!(" {b}:{c}"));
            }
            s.push('\n');
        }
        s
    }

    pub fn from_text(text: &str) -> Result<Timeline, String> {
        let mut lines = text.lines();
        let origin_ns = lines
            .next()
            .and_then(|l| l.strip_prefix("origin "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("probe output without its origin line: {text:.80}"))?;
        let mut t = Timeline::new(origin_ns);
        for line in lines {
            let mut f = line.split_whitespace();
            let bad = || format!("bad probe line {line:?}");
            let w: usize = f.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            let max: u64 = f.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            if w >= t.windows.len() {
                t.windows.resize(w + 1, Window::new());
            }
            t.windows[w].max_ns = max;
            for pair in f {
                let (b, c) = pair.split_once(':').ok_or_else(bad)?;
                let b: usize = b.parse().map_err(|_| bad())?;
                let c: u32 = c.parse().map_err(|_| bad())?;
                *t.windows[w].counts.get_mut(b).ok_or_else(bad)? += c;
            }
        }
        Ok(t)
    }

    /// Everything recorded in windows starting within `[from_ns, to_ns)` (CLOCK_MONOTONIC).
    pub fn span(&self, from_ns: u64, to_ns: u64) -> Summary {
        let first = (from_ns.saturating_sub(self.origin_ns) / WINDOW_NS) as usize;
        let last = (to_ns.saturating_sub(self.origin_ns)).div_ceil(WINDOW_NS) as usize;
        let mut sum = Summary {
            counts: vec![0; BUCKETS],
            max_ns: 0,
        };
        for win in self.windows.iter().take(last).skip(first) {
            for (a, &c) in sum.counts.iter_mut().zip(&win.counts) {
                *a += c as u64;
            }
            sum.max_ns = sum.max_ns.max(win.max_ns);
        }
        sum
    }
}

/// A merged histogram.
pub struct Summary {
    pub counts: Vec<u64>,
    pub max_ns: u64,
}

impl Summary {
    pub fn n(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Samples slower than `ns`, to the bucket: those in buckets whose lower edge is at least
    /// `ns` (a sample in the bucket holding `ns` itself is not counted).
    pub fn above(&self, ns: u64) -> u64 {
        self.counts
            .iter()
            .enumerate()
            .filter(|&(b, _)| b > 0 && upper_ns(b - 1) >= ns)
            .map(|(_, &c)| c)
            .sum()
    }

    /// The `q` quantile (0..1), as the upper edge of its bucket (at most the maximum); None
    /// without samples.
    pub fn quantile_ns(&self, q: f64) -> Option<u64> {
        let n = self.n();
        if n == 0 {
            return None;
        }
        let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(upper_ns(b).min(self.max_ns));
            }
        }
        Some(self.max_ns)
    }
}
