//! The leak test on RSS samples: skip warm-up (also after a restart), take
//! each window's minimum (the lower envelope, free of GC sawtooth), remove
//! one-time level shifts, then fit a Theil–Sen slope and test it with
//! Mann–Kendall. A leak is suspected only when the trend is significant,
//! its slope and the lower end of its 95% interval are positive, the slope
//! is above the practical floor, and the later half of the series still
//! climbs at half that floor or more (a cache that filled and then
//! plateaued does not).

use crate::check::result::{LeakReport, MemPoint};
use crate::stats::{mann_kendall, remove_level_shifts, theil_sen};
use crate::units::show_slope;

/// How to judge a series; all in seconds and bytes.
#[derive(Clone, Copy, Debug)]
pub struct LeakParams {
    pub warmup: f64,
    pub window: f64,
    /// Bytes per second.
    pub min_slope: f64,
    pub min_step: f64,
    pub alpha: f64,
}

/// The fewest windows a verdict is drawn from.
pub(crate) const MIN_WINDOWS: usize = 6;

/// Each window's minimum RSS over the samples past warm-up (none from
/// before `warmup` after the first sample or after any restart): (window
/// middle, minimum), and the number of restarts. One pass, keeping only
/// the minima: a week of 1 Hz samples is not copied.
fn minima(points: &[MemPoint], warmup: f64, window: f64) -> (Vec<(f64, f64)>, usize) {
    let mut since: Option<(u64, f64)> = None;
    let mut restarts = 0;
    let mut t0 = None;
    let mut out: Vec<(u64, f64)> = Vec::new();
    for p in points.iter().filter(|p| p.processes > 0) {
        match since {
            Some((start, _)) if start == p.start => {}
            Some(_) => {
                restarts += 1;
                since = Some((p.start, p.t));
            }
            None => since = Some((p.start, p.t)),
        }
        if p.t < since.expect("set above").1 + warmup {
            continue;
        }
        let t0 = *t0.get_or_insert(p.t);
        let b = ((p.t - t0) / window).floor() as u64;
        match out.last_mut() {
            Some((last, m)) if *last == b => *m = m.min(p.rss),
            _ => out.push((b, p.rss)),
        }
    }
    let t0 = t0.unwrap_or(0.0);
    let mins = out
        .into_iter()
        .map(|(b, m)| (t0 + (b as f64 + 0.5) * window, m))
        .collect();
    (mins, restarts)
}

pub fn analyse(points: &[MemPoint], p: &LeakParams, process: &str) -> LeakReport {
    let (mins, restarts) = minima(points, p.warmup, p.window);
    let max_rss_bytes = points.iter().map(|p| p.rss).fold(0.0, f64::max);
    let mut r = LeakReport {
        process: process.to_string(),
        windows: mins.len(),
        restarts,
        max_rss_bytes,
        p_value: 1.0,
        ..LeakReport::default()
    };
    if mins.len() < MIN_WINDOWS {
        r.reason = format!(
            "too few windows after warm-up ({} < {MIN_WINDOWS}) to judge",
            mins.len()
        );
        return r;
    }
    let xs: Vec<f64> = mins.iter().map(|m| m.0).collect();
    let ys: Vec<f64> = mins.iter().map(|m| m.1).collect();
    let (adj, shifts) = remove_level_shifts(&ys, p.min_step);
    let fit = theil_sen(&xs, &adj);
    let trend = mann_kendall(&adj);
    let half = adj.len() / 2;
    let recent = theil_sen(&xs[half..], &adj[half..]);
    r.slope_bytes_per_second = fit.slope;
    r.slope_low = fit.low;
    r.slope_high = fit.high;
    r.intercept = fit.intercept;
    r.recent_slope_bytes_per_second = recent.slope;
    r.p_value = trend.p;
    r.level_shifts = shifts.len();
    r.growth_bytes = ys[ys.len() - 1] - ys[0];
    r.minima = mins
        .iter()
        .zip(&adj)
        .map(|((t, m), a)| (*t, *m, *a))
        .collect();
    let significant = trend.p < p.alpha && trend.s > 0.0 && fit.low > 0.0;
    let large = fit.slope >= p.min_slope;
    let ongoing = recent.slope >= p.min_slope / 2.0;
    r.suspected = significant && large && ongoing;
    r.reason = format!(
        "slope {} (95% CI {} .. {}), Mann-Kendall p={:.4}, later half {}; floor {}: {}",
        show_slope(fit.slope),
        show_slope(fit.low),
        show_slope(fit.high),
        trend.p,
        show_slope(recent.slope),
        show_slope(p.min_slope),
        match (significant, large, ongoing) {
            (true, true, true) => "leak suspected",
            (false, _, _) => "no significant upward trend",
            (true, false, _) => "significant but below the floor",
            (true, true, false) => "growth has levelled off",
        }
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: f64 = 1e6;

    fn params() -> LeakParams {
        LeakParams {
            warmup: 60.0,
            window: 30.0,
            min_slope: 0.5 * MB / 60.0,
            min_step: 16.0 * MB,
            alpha: 0.05,
        }
    }

    /// 1 Hz samples for `minutes` of `f(t)`, with deterministic noise.
    fn series(minutes: f64, f: impl Fn(f64) -> f64) -> Vec<MemPoint> {
        let mut seed = 7u64;
        (0..(minutes * 60.0) as u32)
            .map(|i| {
                let t = f64::from(i);
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let noise = ((seed >> 33) as f64 / f64::from(1u32 << 31) - 0.5) * 2.0 * MB;
                MemPoint {
                    t,
                    rss: 200.0 * MB + f(t) + noise,
                    cpu_seconds: 0.0,
                    processes: 1,
                    start: 1,
                }
            })
            .collect()
    }

    fn verdict(points: &[MemPoint]) -> LeakReport {
        analyse(points, &params(), "app")
    }

    #[test]
    fn a_linear_leak_of_1mb_per_minute_is_caught_in_10_minutes() {
        let r = verdict(&series(11.0, |t| t / 60.0 * MB));
        assert!(r.suspected, "{}", r.reason);
        assert!(
            (r.slope_bytes_per_second * 60.0 / MB - 1.0).abs() < 0.1,
            "{}",
            r.reason
        );
        assert!(r.slope_low * 60.0 / MB > 0.8);
    }

    #[test]
    fn sawtooth_around_a_flat_floor_is_not_a_leak() {
        // Fills 40 MB over 20 s, then a GC drops it.
        let r = verdict(&series(11.0, |t| (t % 20.0) * 2.0 * MB));
        assert!(!r.suspected, "{}", r.reason);
    }

    #[test]
    fn a_cache_that_fills_then_plateaus_is_not_a_leak() {
        let r = verdict(&series(11.0, |t| (t.min(240.0) / 240.0) * 60.0 * MB));
        assert!(!r.suspected, "{}", r.reason);
    }

    #[test]
    fn a_step_is_a_level_shift_not_a_leak() {
        let r = verdict(&series(11.0, |t| if t < 330.0 { 0.0 } else { 80.0 * MB }));
        assert!(!r.suspected, "{}", r.reason);
        assert_eq!(r.level_shifts, 1);
    }

    #[test]
    fn slow_oscillation_is_not_a_leak() {
        let r = verdict(&series(11.0, |t| {
            20.0 * MB * (t / 180.0 * std::f64::consts::TAU).sin()
        }));
        assert!(!r.suspected, "{}", r.reason);
    }

    #[test]
    fn a_restart_resets_warm_up_and_keeps_the_trend() {
        let mut pts = series(16.0, |t| t / 60.0 * 2.0 * MB);
        for p in pts.iter_mut().filter(|p| p.t >= 300.0) {
            p.start = 2;
            p.rss -= 10.0 * MB * 2.0;
        }
        let r = verdict(&pts);
        assert_eq!(r.restarts, 1);
        assert!(r.suspected, "{}", r.reason);
    }

    #[test]
    fn too_little_data_is_said_so() {
        let r = verdict(&series(2.0, |t| t * MB));
        assert!(!r.suspected);
        assert!(r.reason.contains("too few windows"), "{}", r.reason);
    }
}
