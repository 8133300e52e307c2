//! Small, robust statistics for the leak detector and the baseline
//! comparison: Theil–Sen slope with its confidence interval, the
//! Mann–Kendall trend test, the Mann–Whitney U test, and level-shift
//! (change-point) removal. Everything is distribution-free: memory and
//! latency series are skewed and full of outliers, so means and least
//! squares would mislead.

/// The median of `xs` (NaN-free); 0 when empty.
pub(crate) fn median(xs: &[f64]) -> f64 {
    quantile(xs, 0.5)
}

/// The `q` quantile (0..=1) by linear interpolation; 0 when empty.
pub(crate) fn quantile(xs: &[f64], q: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// The median absolute deviation, scaled to estimate a normal σ.
pub(crate) fn mad(xs: &[f64]) -> f64 {
    let m = median(xs);
    let dev: Vec<f64> = xs.iter().map(|x| (x - m).abs()).collect();
    1.4826 * median(&dev)
}

/// The standard normal CDF, from the complementary error function
/// (Numerical Recipes' `erfcc`, fractional error < 1.2e-7).
pub(crate) fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x);
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * poly.exp();
    if z >= 0.0 {
        1.0 - 0.5 * erfc
    } else {
        0.5 * erfc
    }
}

/// z for a two-sided 95% interval.
pub(crate) const Z95: f64 = 1.959_964;

/// The Mann–Kendall trend test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Trend {
    /// Concordant minus discordant pairs.
    pub(crate) s: f64,
    /// Var(S), corrected for ties.
    pub(crate) var: f64,
    /// Continuity-corrected z score.
    pub(crate) z: f64,
    /// Two-sided p-value for "no monotone trend".
    pub(crate) p: f64,
}

/// Mann–Kendall on a series in time order.
pub(crate) fn mann_kendall(ys: &[f64]) -> Trend {
    let n = ys.len();
    let mut s = 0.0;
    for i in 0..n {
        for j in i + 1..n {
            s += (ys[j] - ys[i]).signum() * f64::from(u8::from(ys[j] != ys[i]));
        }
    }
    let nf = n as f64;
    let ties: f64 = tie_groups(ys)
        .map(|t| t * (t - 1.0) * (2.0 * t + 5.0))
        .sum();
    let var = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - ties) / 18.0;
    let z = if var <= 0.0 {
        0.0
    } else if s > 0.0 {
        (s - 1.0) / var.sqrt()
    } else if s < 0.0 {
        (s + 1.0) / var.sqrt()
    } else {
        0.0
    };
    Trend {
        s,
        var,
        z,
        p: (2.0 * (1.0 - normal_cdf(z.abs()))).clamp(0.0, 1.0),
    }
}

/// Sizes (> 1) of groups of equal values.
fn tie_groups(ys: &[f64]) -> impl Iterator<Item = f64> {
    let mut v = ys.to_vec();
    v.sort_by(f64::total_cmp);
    let mut sizes = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let j = v[i..].iter().take_while(|x| **x == v[i]).count();
        if j > 1 {
            sizes.push(j as f64);
        }
        i += j;
    }
    sizes.into_iter()
}

/// A Theil–Sen line with Sen's 95% confidence interval on the slope.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Slope {
    pub(crate) slope: f64,
    pub(crate) intercept: f64,
    pub(crate) low: f64,
    pub(crate) high: f64,
}

/// Theil–Sen: the median of all pairwise slopes. Robust to ~29% outliers.
pub(crate) fn theil_sen(xs: &[f64], ys: &[f64]) -> Slope {
    let n = xs.len().min(ys.len());
    let mut slopes = Vec::with_capacity(n * n.saturating_sub(1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            if xs[j] != xs[i] {
                slopes.push((ys[j] - ys[i]) / (xs[j] - xs[i]));
            }
        }
    }
    if slopes.is_empty() {
        return Slope {
            slope: 0.0,
            intercept: median(ys),
            low: 0.0,
            high: 0.0,
        };
    }
    slopes.sort_by(f64::total_cmp);
    let slope = median(&slopes);
    let resid: Vec<f64> = (0..n).map(|i| ys[i] - slope * xs[i]).collect();
    // Sen (1968): the interval's ends are order statistics of the slopes,
    // C = z·sqrt(Var(S)) ranks either side of the middle.
    let c = Z95 * mann_kendall(&ys[..n]).var.sqrt();
    let m = slopes.len() as f64;
    let rank = |r: f64| slopes[(r.round().clamp(1.0, m) as usize) - 1];
    Slope {
        slope,
        intercept: median(&resid),
        low: rank((m - c) / 2.0),
        high: rank((m + c) / 2.0 + 1.0),
    }
}

/// The one-sided Mann–Whitney U test: the p-value for "values in `b` tend
/// to be larger than in `a`" (normal approximation with tie correction).
pub(crate) fn mann_whitney_greater(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    if a.is_empty() || b.is_empty() {
        return 1.0;
    }
    let mut u = 0.0;
    for y in b {
        for x in a {
            u += if y > x {
                1.0
            } else if y == x {
                0.5
            } else {
                0.0
            };
        }
    }
    let all: Vec<f64> = a.iter().chain(b).copied().collect();
    let n = n1 + n2;
    let ties: f64 = tie_groups(&all).map(|t| t * t * t - t).sum();
    let var = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if var <= 0.0 {
        return if u > n1 * n2 / 2.0 { 0.0 } else { 1.0 };
    }
    let z = (u - n1 * n2 / 2.0 - 0.5) / var.sqrt();
    1.0 - normal_cdf(z)
}

/// Removes level shifts (a restart, a cache warmed in one go): a step
/// between neighbours that stands out from the typical step by more than
/// 6 MADs and by more than `min_step` is taken out of the series, so what
/// remains is the drift. Returns the adjusted series and the shift indices
/// (a shift at `i` lies between `ys[i]` and `ys[i + 1]`).
pub(crate) fn remove_level_shifts(ys: &[f64], min_step: f64) -> (Vec<f64>, Vec<usize>) {
    if ys.len() < 3 {
        return (ys.to_vec(), Vec::new());
    }
    let diffs: Vec<f64> = ys.windows(2).map(|w| w[1] - w[0]).collect();
    let m = median(&diffs);
    let spread = mad(&diffs);
    let mut out = Vec::with_capacity(ys.len());
    let mut shifts = Vec::new();
    let mut offset = 0.0;
    out.push(ys[0]);
    for (i, d) in diffs.iter().enumerate() {
        let dev = (d - m).abs();
        if dev > 6.0 * spread && dev > min_step {
            // Keep the typical step so a leak across a shift is not lost.
            offset += d - m;
            shifts.push(i);
        }
        out.push(ys[i + 1] - offset);
    }
    (out, shifts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_spread() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(quantile(&[0.0, 10.0], 0.95), 9.5);
        assert!((mad(&[1.0, 2.0, 3.0, 4.0, 100.0]) - 1.4826).abs() < 1e-9);
    }

    #[test]
    fn normal_cdf_matches_tables() {
        for (z, p) in [
            (0.0, 0.5),
            (1.0, 0.841_344_7),
            (1.959_964, 0.975),
            (-2.326_348, 0.01),
        ] {
            assert!((normal_cdf(z) - p).abs() < 1e-6, "{z}: {}", normal_cdf(z));
        }
    }

    #[test]
    fn mann_kendall_on_known_series() {
        // Hand-computed: S = 8, Var = 5·4·15/18 = 16.67, z = 7/4.08.
        let t = mann_kendall(&[1.0, 2.0, 4.0, 3.0, 5.0]);
        assert_eq!(t.s, 8.0);
        assert!((t.var - 16.666_67).abs() < 1e-3);
        assert!((t.z - 1.714_59).abs() < 1e-4);
        assert!((t.p - 0.0864).abs() < 1e-3);
        let flat = mann_kendall(&[5.0; 10]);
        assert_eq!((flat.s, flat.p), (0.0, 1.0));
        let down = mann_kendall(&(0..20).map(|i| -f64::from(i)).collect::<Vec<_>>());
        assert!(down.z < -5.0 && down.p < 1e-6);
    }

    #[test]
    fn theil_sen_ignores_outliers_and_brackets_the_slope() {
        let xs: Vec<f64> = (0..30).map(f64::from).collect();
        let mut ys: Vec<f64> = xs.iter().map(|x| 2.0 * x + 5.0).collect();
        ys[7] = 500.0;
        ys[20] = -300.0;
        let s = theil_sen(&xs, &ys);
        assert!((s.slope - 2.0).abs() < 1e-9, "{s:?}");
        assert!((s.intercept - 5.0).abs() < 1e-9, "{s:?}");
        assert!(s.low <= 2.0 && s.high >= 2.0 && s.low > 1.5, "{s:?}");
    }

    #[test]
    fn theil_sen_interval_widens_with_noise() {
        let xs: Vec<f64> = (0..40).map(f64::from).collect();
        // A slope of 1 plus deterministic pseudo-random noise in ±3.
        let mut seed = 42u64;
        let ys: Vec<f64> = xs
            .iter()
            .map(|x| {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                x + ((seed >> 33) as f64 / f64::from(1u32 << 31) - 0.5) * 6.0
            })
            .collect();
        let s = theil_sen(&xs, &ys);
        assert!((s.slope - 1.0).abs() < 0.2, "{s:?}");
        assert!(s.low < s.slope && s.high > s.slope && s.low > 0.5, "{s:?}");
    }

    #[test]
    fn mann_whitney_separates_shifted_samples_only() {
        let a: Vec<f64> = (0..20).map(|i| 10.0 + f64::from(i % 5)).collect();
        let same: Vec<f64> = (0..20).map(|i| 10.0 + f64::from((i + 2) % 5)).collect();
        let higher: Vec<f64> = a.iter().map(|x| x + 3.0).collect();
        assert!(mann_whitney_greater(&a, &same) > 0.3);
        assert!(mann_whitney_greater(&a, &higher) < 0.01);
        assert!(mann_whitney_greater(&higher, &a) > 0.99);
        assert_eq!(mann_whitney_greater(&[], &a), 1.0);
    }

    #[test]
    fn level_shifts_are_removed_but_drift_stays() {
        // Flat, one step of +50 at index 10, flat again.
        let step: Vec<f64> = (0..20)
            .map(|i| if i < 10 { 100.0 } else { 150.0 } + f64::from(i % 3))
            .collect();
        let (adj, shifts) = remove_level_shifts(&step, 10.0);
        assert_eq!(shifts, vec![9]);
        assert!(mann_kendall(&adj).p > 0.05, "{adj:?}");
        // A steady climb has no shift to remove.
        let climb: Vec<f64> = (0..20).map(|i| 100.0 + 2.0 * f64::from(i)).collect();
        let (adj, shifts) = remove_level_shifts(&climb, 10.0);
        assert!(shifts.is_empty());
        assert_eq!(adj, climb);
        // A climb with a restart (drop) keeps its slope.
        let restart: Vec<f64> = (0..20)
            .map(|i| {
                if i < 12 {
                    100.0 + 2.0 * f64::from(i)
                } else {
                    40.0 + 2.0 * f64::from(i)
                }
            })
            .collect();
        let (adj, shifts) = remove_level_shifts(&restart, 10.0);
        assert_eq!(shifts, vec![11]);
        let s = theil_sen(&(0..20).map(f64::from).collect::<Vec<_>>(), &adj);
        assert!((s.slope - 2.0).abs() < 1e-9);
    }
}
