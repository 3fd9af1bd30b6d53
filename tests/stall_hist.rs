//! The stall benchmark's latency histogram (benches/stalls/hist.rs): bucket edges and the text
//! form its probes print. Benchmarks run no test harness, so its checks live here.

#[path = "../benches/stalls/hist.rs"]
#[allow(dead_code)]
mod hist;

use hist::*;

#[test]
fn buckets_are_monotonic_and_narrow() {
    let mut last = 0;
    for ns in (1..10_000_000u64).step_by(97) {
        let b = bucket(ns);
        assert!(b >= last, "{ns}");
        assert!(
            upper_ns(b) >= ns,
            "{ns} above its bucket's edge {}",
            upper_ns(b)
        );
        assert!(
            upper_ns(b) as f64 <= ns as f64 * 1.126 + 1.0,
            "{ns}: {}",
            upper_ns(b)
        );
        last = b;
    }
}

#[test]
fn text_round_trip_and_quantiles() {
    let mut t = Timeline::new(1_000_000_000);
    for i in 0..1000u64 {
        t.record(1_000_000_000 + i * 10_000, 1_000 + i);
    }
    t.record(1_005_000_000, 5_000_000);
    let u = Timeline::from_text(&t.to_text()).unwrap();
    let s = u.span(1_000_000_000, 1_010_000_000);
    assert_eq!(s.n(), 1001);
    assert_eq!(s.max_ns, 5_000_000);
    let p50 = s.quantile_ns(0.5).unwrap();
    assert!((1_400..1_600).contains(&p50), "{p50}");
    // The window of the long sample alone.
    let w = u.span(1_005_000_000, 1_006_000_000);
    assert_eq!(w.max_ns, 5_000_000);
}

#[test]
fn above_counts_only_buckets_wholly_past_the_bound() {
    let mut t = Timeline::new(0);
    for ns in [1_000, 2_000, 4_000, 8_000, 8_000, 100_000] {
        t.record(0, ns);
    }
    let s = t.span(0, 1_000_000);
    assert_eq!(s.above(0), 6);
    assert_eq!(s.above(3_000), 4, "4 us, 8 us twice, 100 us");
    assert_eq!(s.above(50_000), 1);
    assert_eq!(s.above(200_000), 0);
    // The bucket holding the bound itself is left out: 8 us is not above 7.9 us's bucket.
    assert_eq!(s.above(7_900), 1);
}
