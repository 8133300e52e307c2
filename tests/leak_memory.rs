//! The leak analysis of a 7-day watch stays in bounded memory: 1 Hz RSS
//! samples (the default `sample_interval`) in 30 s windows (the default
//! `window`), analysed under a counting global allocator that refuses to
//! grow past the bound. Its own test binary, so the allocator counts only
//! this test.
//!
//! Figures print with `cargo test --test leak_memory -- --nocapture`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use sidewatch::check::leak::{analyse, LeakParams};
use sidewatch::check::result::MemPoint;

struct Counting;

static NOW: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Allocations that would take `NOW` past this fail (the process aborts
/// with "memory allocation of N bytes failed"), so a quadratic analysis
/// cannot take the machine's memory down with the test.
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !reserve(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() {
            NOW.fetch_sub(layout.size(), SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc`/`realloc` with this layout.
        unsafe { System.dealloc(ptr, layout) };
        NOW.fetch_sub(layout.size(), SeqCst);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && !reserve(new_size - layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        match (p.is_null(), new_size > layout.size()) {
            (true, true) => {
                NOW.fetch_sub(new_size - layout.size(), SeqCst);
            }
            (false, false) => {
                NOW.fetch_sub(layout.size() - new_size, SeqCst);
            }
            _ => {}
        }
        p
    }
}

/// Counts `n` more bytes unless that passes the limit.
fn reserve(n: usize) -> bool {
    let now = NOW.fetch_add(n, SeqCst) + n;
    if now > LIMIT.load(SeqCst) {
        NOW.fetch_sub(n, SeqCst);
        return false;
    }
    PEAK.fetch_max(now, SeqCst);
    true
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const MB: f64 = 1e6;

/// `seconds` 1 Hz samples of a service that leaks `per_minute` bytes a
/// minute, with a sawtooth and deterministic noise on top.
fn week(seconds: u32, per_minute: f64) -> Vec<MemPoint> {
    let mut seed = 11u64;
    let mut json = String::with_capacity(seconds as usize * 96);
    json.push('[');
    for i in 0..seconds {
        let t = f64::from(i);
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let noise = ((seed >> 33) as f64 / f64::from(1u32 << 31) - 0.5) * 4.0 * MB;
        let saw = (t % 90.0) / 90.0 * 8.0 * MB;
        let rss = 300.0 * MB + per_minute * t / 60.0 + saw + noise;
        let sep = if i == 0 { "" } else { "," };
        json.push_str(&format!(
            r#"{sep}{{"t":{t},"rss":{rss},"cpu_seconds":{},"processes":1,"start":1}}"#,
            t * 0.01
        ));
    }
    json.push(']');
    serde_json::from_str(&json).expect("MemPoints")
}

#[test]
fn a_seven_day_leak_analysis_stays_in_bounded_memory() {
    const BOUND: usize = 32 << 20;
    let seconds = 7 * 24 * 3600;
    let points = week(seconds, 0.5 * MB);
    let params = LeakParams {
        warmup: 300.0,
        window: 30.0,
        min_slope: 0.1 * MB / 60.0,
        min_step: 16.0 * 1024.0 * 1024.0,
        alpha: 0.05,
    };
    let base = NOW.load(SeqCst);
    PEAK.store(base, SeqCst);
    LIMIT.store(base + BOUND, SeqCst);
    let began = std::time::Instant::now();
    let r = analyse(&points, &params, "svc");
    let took = began.elapsed();
    LIMIT.store(usize::MAX, SeqCst);
    let peak = PEAK.load(SeqCst) - base;
    eprintln!(
        "7 days of 1 Hz samples ({} windows): peak {:.1} MB allocated by the analysis, {took:.1?}",
        r.windows,
        peak as f64 / MB
    );
    // What the list of every pairwise slope held before, with the sorted
    // copy `median` made of it.
    let pairs = (r.windows * (r.windows - 1) / 2) as f64;
    eprintln!(
        "the O(n²) analysis listed {pairs:.0} pairwise slopes: {:.0} MB, twice",
        pairs * 8.0 / MB
    );
    assert!(peak <= BOUND, "peak {peak} bytes");
    assert!(r.windows > 20_000, "{}", r.windows);
    assert!(r.suspected, "{}", r.reason);
    let per_minute = r.slope_bytes_per_second * 60.0;
    assert!((per_minute - 0.5 * MB).abs() < 0.01 * MB, "{}", r.reason);

    // A flat week is not a leak, in the same bound.
    let flat = week(seconds, 0.0);
    let base = NOW.load(SeqCst);
    LIMIT.store(base + BOUND, SeqCst);
    let r = analyse(&flat, &params, "svc");
    LIMIT.store(usize::MAX, SeqCst);
    assert!(!r.suspected, "{}", r.reason);
}
