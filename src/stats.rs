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

/// Mann–Kendall on a series in time order, in O(n log n) time and O(n)
/// memory: S is the pairs that rise minus the pairs that fall, and the
/// pairs that fall are the series' inversions, counted by merge sort.
pub(crate) fn mann_kendall(ys: &[f64]) -> Trend {
    let n = ys.len();
    let nf = n as f64;
    let ties: Vec<f64> = tie_groups(ys).collect();
    let tied_pairs: f64 = ties.iter().map(|t| t * (t - 1.0) / 2.0).sum();
    let falling = inversions(&mut ys.to_vec(), false) as f64;
    let rising = nf * (nf - 1.0) / 2.0 - tied_pairs - falling;
    let s = rising - falling;
    let ties: f64 = ties.iter().map(|t| t * (t - 1.0) * (2.0 * t + 5.0)).sum();
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

/// Pairs `i < j` with `v[j] < v[i]`, or `v[j] <= v[i]` with `or_equal`;
/// sorts `v` (a bottom-up merge sort, one buffer of n).
fn inversions(v: &mut [f64], or_equal: bool) -> u64 {
    let mut keyed: Vec<(f64, u32)> = v.iter().map(|x| (*x, 0)).collect();
    let n = merge_count(&mut keyed, or_equal, None);
    for (a, b) in v.iter_mut().zip(&keyed) {
        *a = b.0;
    }
    n
}

/// Merge-sorts `v` by value and counts the inverted pairs (as
/// [`inversions`]); with `each`, calls `each(a, b)` with the tags of every
/// one: `a` came before `b` and is larger (or equal, with `or_equal`).
/// Listing costs O(pairs listed) on top of O(n log n).
fn merge_count(
    v: &mut [(f64, u32)],
    or_equal: bool,
    mut each: Option<&mut dyn FnMut(u32, u32)>,
) -> u64 {
    let n = v.len();
    let mut buf = v.to_vec();
    let mut count = 0u64;
    let mut width = 1;
    while width < n {
        for start in (0..n).step_by(2 * width) {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            let (mut i, mut j, mut k) = (start, mid, start);
            while i < mid && j < end {
                let inverted = if or_equal {
                    v[j].0 <= v[i].0
                } else {
                    v[j].0 < v[i].0
                };
                if inverted {
                    count += (mid - i) as u64;
                    if let Some(each) = each.as_mut() {
                        for left in &v[i..mid] {
                            each(left.1, v[j].1);
                        }
                    }
                    buf[k] = v[j];
                    j += 1;
                } else {
                    buf[k] = v[i];
                    i += 1;
                }
                k += 1;
            }
            buf[k..k + mid - i].copy_from_slice(&v[i..mid]);
            let k = k + mid - i;
            buf[k..k + end - j].copy_from_slice(&v[j..end]);
        }
        v.copy_from_slice(&buf);
        width *= 2;
    }
    count
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
/// Exact, in O(n) memory and O(n log n) time per order statistic: see
/// [`Slopes`]; no list of the n²/2 slopes is ever made.
pub(crate) fn theil_sen(xs: &[f64], ys: &[f64]) -> Slope {
    let n = xs.len().min(ys.len());
    let slopes = Slopes::new(&xs[..n], &ys[..n]);
    let m = slopes.count;
    if m == 0 {
        return Slope {
            slope: 0.0,
            intercept: median(ys),
            low: 0.0,
            high: 0.0,
        };
    }
    // As `median` interpolates: the middle one, or halfway between two.
    let (lo, hi) = ((m - 1) / 2, m / 2);
    let below = slopes.kth(lo);
    let slope = if hi == lo {
        below
    } else {
        below + (slopes.kth(hi) - below) * 0.5
    };
    let resid: Vec<f64> = (0..n).map(|i| ys[i] - slope * xs[i]).collect();
    // Sen (1968): the interval's ends are order statistics of the slopes,
    // C = z·sqrt(Var(S)) ranks either side of the middle.
    let c = Z95 * mann_kendall(&ys[..n]).var.sqrt();
    let mf = m as f64;
    let rank = |r: f64| slopes.kth((r.round().clamp(1.0, mf) as u64) - 1);
    Slope {
        slope,
        intercept: median(&resid),
        low: rank((mf - c) / 2.0),
        high: rank((mf + c) / 2.0 + 1.0),
    }
}

/// The pairwise slopes `(y[j] - y[i]) / (x[j] - x[i])` of points with
/// different x, as a sorted list that is never built. The slopes at or
/// below `t` are the pairs `i, j` (x[i] < x[j]) with `y[j] - t·x[j] <=
/// y[i] - t·x[i]`: the inversions of that sequence in x order, counted by
/// merge sort in O(n log n). `kth` bisects on t over the floats' bit
/// order (at most 64 steps) until a few n slopes are left between the
/// bounds, then lists those (the inversions at the upper bound that are
/// not at the lower one) and sorts them. Memory is O(n) throughout.
struct Slopes {
    /// The points in x order.
    pts: Vec<(f64, f64)>,
    /// Runs of equal x in `pts`, `start..end`: pairs inside one have no slope.
    ties: Vec<(usize, usize)>,
    count: u64,
    /// |slope| is below this.
    bound: f64,
}

impl Slopes {
    fn new(xs: &[f64], ys: &[f64]) -> Slopes {
        let mut pts: Vec<(f64, f64)> = xs.iter().copied().zip(ys.iter().copied()).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n = pts.len() as u64;
        let mut ties = Vec::new();
        let mut i = 0;
        while i < pts.len() {
            let j = i + pts[i..].iter().take_while(|p| p.0 == pts[i].0).count();
            if j - i > 1 {
                ties.push((i, j));
            }
            i = j;
        }
        let tied: u64 = ties
            .iter()
            .map(|(a, b)| ((b - a) * (b - a - 1) / 2) as u64)
            .sum();
        let gap = pts
            .windows(2)
            .map(|w| w[1].0 - w[0].0)
            .filter(|d| *d > 0.0)
            .fold(f64::INFINITY, f64::min);
        let (lo, hi) = pts
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| {
                (l.min(p.1), h.max(p.1))
            });
        Slopes {
            count: n * n.saturating_sub(1) / 2 - tied,
            bound: 2.0 * (hi - lo) / gap + 1.0,
            pts,
            ties,
        }
    }

    /// Slopes at or below `t`.
    fn at_most(&self, t: f64) -> u64 {
        let r: Vec<f64> = self.pts.iter().map(|(x, y)| y - t * x).collect();
        let within: u64 = self
            .ties
            .iter()
            .map(|&(a, b)| inversions(&mut r[a..b].to_vec(), true))
            .sum();
        inversions(&mut r.clone(), true) - within
    }

    /// The `k`-th smallest slope (from 0), `k < count`.
    fn kth(&self, k: u64) -> f64 {
        const FEW: u64 = 8;
        let budget = FEW * (self.pts.len() as u64).max(512);
        let (mut lo, mut hi) = (-self.bound, self.bound);
        let (mut below_lo, mut below_hi) = (self.at_most(lo), self.at_most(hi));
        // Rounding could leave the bounds a hair inside; widen if so.
        while below_lo > k && lo.is_finite() {
            lo *= 2.0;
            below_lo = self.at_most(lo);
        }
        while below_hi <= k && hi.is_finite() {
            hi *= 2.0;
            below_hi = self.at_most(hi);
        }
        while below_hi - below_lo > budget {
            let (a, b) = (order_key(lo), order_key(hi));
            if b - a <= 1 {
                // Nothing between the bounds but `hi`: every slope left is it.
                return hi;
            }
            let mid = from_order_key(a + (b - a) / 2);
            let c = self.at_most(mid);
            if c > k {
                (hi, below_hi) = (mid, c);
            } else {
                (lo, below_lo) = (mid, c);
            }
        }
        let mut between = self.between(lo, hi);
        between.sort_by(f64::total_cmp);
        let i = ((k - below_lo) as usize).min(between.len().saturating_sub(1));
        between.get(i).copied().unwrap_or(hi)
    }

    /// The slopes in `(lo, hi]`: in the order of `y - lo·x` (ties: larger x
    /// first), the pairs that `y - hi·x` inverts.
    fn between(&self, lo: f64, hi: f64) -> Vec<f64> {
        let mut order: Vec<u32> = (0..self.pts.len() as u32).collect();
        let r_lo = |i: u32| {
            let (x, y) = self.pts[i as usize];
            y - lo * x
        };
        order.sort_by(|a, b| {
            r_lo(*a)
                .total_cmp(&r_lo(*b))
                .then(self.pts[*b as usize].0.total_cmp(&self.pts[*a as usize].0))
        });
        let mut keyed: Vec<(f64, u32)> = order
            .iter()
            .map(|&i| {
                let (x, y) = self.pts[i as usize];
                (y - hi * x, i)
            })
            .collect();
        let mut out = Vec::new();
        let mut list = |a: u32, b: u32| {
            let ((xa, ya), (xb, yb)) = (self.pts[a as usize], self.pts[b as usize]);
            if xa != xb {
                out.push((yb - ya) / (xb - xa));
            }
        };
        merge_count(&mut keyed, true, Some(&mut list));
        out
    }
}

/// A float's place in `total_cmp` order, as an unsigned integer.
fn order_key(f: f64) -> u64 {
    let b = f.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | 1 << 63
    }
}

fn from_order_key(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
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

    /// The O(n²) Theil–Sen this module had: every slope in a list, sorted.
    fn theil_sen_reference(xs: &[f64], ys: &[f64]) -> Slope {
        let n = xs.len().min(ys.len());
        let mut slopes = Vec::new();
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
        let c = Z95 * mann_kendall_reference(&ys[..n]).var.sqrt();
        let m = slopes.len() as f64;
        let rank = |r: f64| slopes[(r.round().clamp(1.0, m) as usize) - 1];
        Slope {
            slope,
            intercept: median(&resid),
            low: rank((m - c) / 2.0),
            high: rank((m + c) / 2.0 + 1.0),
        }
    }

    /// The O(n²) Mann–Kendall S this module had, with the same variance.
    fn mann_kendall_reference(ys: &[f64]) -> Trend {
        let mut s = 0.0;
        for i in 0..ys.len() {
            for j in i + 1..ys.len() {
                s += (ys[j] - ys[i]).signum() * f64::from(u8::from(ys[j] != ys[i]));
            }
        }
        let fast = mann_kendall(ys);
        Trend { s, ..fast }
    }

    /// Deterministic noise in [-0.5, 0.5).
    fn noise(seed: &mut u64) -> f64 {
        *seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (*seed >> 33) as f64 / f64::from(1u32 << 31) - 0.5
    }

    /// Series the leak test meets, and the awkward ones: noisy drift,
    /// sawtooth, steps, ties in y (whole pages), ties in x, flat, short.
    fn series() -> Vec<(String, Vec<f64>, Vec<f64>)> {
        let mut seed = 3u64;
        let mut out = Vec::new();
        for n in [2usize, 3, 4, 5, 7, 10, 31, 64, 200, 401] {
            let xs: Vec<f64> = (0..n).map(|i| 15.0 + 30.0 * i as f64).collect();
            let drift: Vec<f64> = xs
                .iter()
                .map(|x| 2e8 + 1234.5 * x + 4e6 * noise(&mut seed))
                .collect();
            let pages: Vec<f64> = xs
                .iter()
                .map(|x| 4096.0 * ((5e4 + x / 7.0 + 20.0 * noise(&mut seed)).floor()))
                .collect();
            let saw: Vec<f64> = xs.iter().map(|x| 1e8 + (x % 900.0) * 1e4).collect();
            let step: Vec<f64> = (0..n)
                .map(|i| if i < n / 2 { 5e7 } else { 9e7 } + 10.0 * noise(&mut seed))
                .collect();
            let flat = vec![3e8; n];
            let random: Vec<f64> = (0..n).map(|_| noise(&mut seed) * 1e3).collect();
            let rx: Vec<f64> = (0..n).map(|_| (noise(&mut seed) * 20.0).round()).collect();
            for (name, x, y) in [
                ("drift", &xs, drift),
                ("pages", &xs, pages),
                ("saw", &xs, saw),
                ("step", &xs, step),
                ("flat", &xs, flat),
                ("random", &xs, random.clone()),
                ("tied x", &rx, random),
            ] {
                out.push((format!("{name} n={n}"), x.clone(), y));
            }
        }
        out
    }

    #[test]
    fn theil_sen_equals_the_quadratic_reference() {
        for (name, xs, ys) in series() {
            let (fast, slow) = (theil_sen(&xs, &ys), theil_sen_reference(&xs, &ys));
            assert_eq!(fast, slow, "{name}");
        }
    }

    #[test]
    fn every_order_statistic_of_the_slopes_is_exact() {
        for (name, xs, ys) in series().into_iter().filter(|s| s.1.len() <= 31) {
            let mut all = Vec::new();
            for i in 0..xs.len() {
                for j in i + 1..xs.len() {
                    if xs[i] != xs[j] {
                        all.push((ys[j] - ys[i]) / (xs[j] - xs[i]));
                    }
                }
            }
            all.sort_by(f64::total_cmp);
            let s = Slopes::new(&xs, &ys);
            assert_eq!(s.count, all.len() as u64, "{name}");
            for (k, want) in all.iter().enumerate() {
                assert_eq!(s.kth(k as u64), *want, "{name}: slope {k}");
            }
        }
    }

    #[test]
    fn mann_kendall_equals_the_quadratic_reference() {
        for (name, _, ys) in series() {
            assert_eq!(mann_kendall(&ys).s, mann_kendall_reference(&ys).s, "{name}");
        }
    }

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
