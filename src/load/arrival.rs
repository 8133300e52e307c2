//! Schedules: when requests are *meant* to start (open model), or how many
//! users are meant to be active (closed model), as functions of time.
//!
//! Arrival times are exact: with a rate that ramps linearly within a stage,
//! the number of arrivals by time t is the integral of the rate, and the k-th
//! arrival is where that integral reaches k. Latency is measured from these
//! instants, so a stalled target (or a stalled engine) shows up in the
//! numbers instead of silently slowing the schedule.

use std::time::Duration;

use crate::units::parse_rate;

/// One stage: ramp linearly from the previous target to `target` over `duration`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Stage {
    pub(crate) duration: Duration,
    pub(crate) target: f64,
}

/// Targets over time: requests per second (open) or active users (closed).
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub(crate) start: f64,
    pub(crate) stages: Vec<Stage>,
}

impl Profile {
    /// A constant target for `duration`.
    pub(crate) fn constant(target: f64, duration: Duration) -> Profile {
        Profile {
            start: target,
            stages: vec![Stage { duration, target }],
        }
    }

    pub(crate) fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    pub(crate) fn peak(&self) -> f64 {
        self.stages
            .iter()
            .map(|s| s.target)
            .fold(self.start, f64::max)
    }

    /// The target at `t` seconds; 0 after the end.
    pub(crate) fn at(&self, t: f64) -> f64 {
        let mut from = self.start;
        let mut begin = 0.0;
        for s in &self.stages {
            let len = s.duration.as_secs_f64();
            if t < begin + len {
                return from + (s.target - from) * (t - begin) / len;
            }
            begin += len;
            from = s.target;
        }
        0.0
    }

    /// Scales every target, e.g. by 1/N for one of N shards.
    pub(crate) fn scaled(&self, factor: f64) -> Profile {
        Profile {
            start: self.start * factor,
            stages: self
                .stages
                .iter()
                .map(|s| Stage {
                    duration: s.duration,
                    target: s.target * factor,
                })
                .collect(),
        }
    }

    /// Multiplies every stage's length by `factor` (`--time-scale`).
    pub(crate) fn stretched(&self, factor: f64) -> Profile {
        Profile {
            start: self.start,
            stages: self
                .stages
                .iter()
                .map(|s| Stage {
                    duration: s.duration.mul_f64(factor),
                    target: s.target,
                })
                .collect(),
        }
    }

    /// Expected arrivals over the whole profile (the integral of the rate).
    pub(crate) fn total(&self) -> f64 {
        let mut from = self.start;
        let mut n = 0.0;
        for s in &self.stages {
            n += (from + s.target) / 2.0 * s.duration.as_secs_f64();
            from = s.target;
        }
        n
    }
}

/// Walks an open-model profile arrival by arrival.
#[derive(Debug)]
pub(crate) struct Arrivals {
    profile: Profile,
    stage: usize,
    stage_begin: f64,
    stage_from: f64,
    /// Arrivals before the current stage.
    before: f64,
    next: u64,
}

impl Arrivals {
    pub(crate) fn new(profile: Profile) -> Arrivals {
        let from = profile.start;
        Arrivals {
            profile,
            stage: 0,
            stage_begin: 0.0,
            stage_from: from,
            before: 0.0,
            next: 0,
        }
    }

    /// The intended start of the next request, in seconds from the start of
    /// the run, or `None` when the profile is over.
    pub(crate) fn next_time(&mut self) -> Option<f64> {
        // The k-th arrival (k from 1) is where the integral reaches k.
        let k = (self.next + 1) as f64;
        loop {
            let s = self.profile.stages.get(self.stage)?;
            let len = s.duration.as_secs_f64();
            let (r0, r1) = (self.stage_from, s.target);
            let in_stage = (r0 + r1) / 2.0 * len;
            let need = k - self.before;
            if need <= in_stage + 1e-9 && len > 0.0 {
                self.next += 1;
                return Some(self.stage_begin + solve(r0, r1, len, need));
            }
            self.before += in_stage;
            self.stage_begin += len;
            self.stage_from = r1;
            self.stage += 1;
        }
    }
}

/// The time within a stage at which `n` arrivals have happened, for a rate
/// ramping linearly from r0 to r1 over `len` seconds.
fn solve(r0: f64, r1: f64, len: f64, n: f64) -> f64 {
    let a = (r1 - r0) / (2.0 * len);
    if a.abs() < 1e-12 {
        return n / r0;
    }
    // a t² + r0 t - n = 0, the root in [0, len].
    let disc = (r0 * r0 + 4.0 * a * n).max(0.0);
    ((-r0 + disc.sqrt()) / (2.0 * a)).clamp(0.0, len)
}

/// Parses `1m:100/s,30s:1000/s` (open model) or `1m:50,30s:200` (closed
/// model, users) into stages.
pub(crate) fn parse_stages(s: &str, rates: bool) -> Result<Vec<Stage>, String> {
    s.split(',')
        .map(|part| {
            let (d, t) = part
                .trim()
                .split_once(':')
                .ok_or_else(|| format!("stage `{part}` is not DURATION:TARGET"))?;
            let duration = crate::units::parse_duration(d)?;
            let target = if rates {
                parse_rate(t)?
            } else {
                parse_users(t)?
            };
            Ok(Stage { duration, target })
        })
        .collect()
}

/// A whole, finite number of users: `inf`, `nan` and `-4` are not.
fn parse_users(t: &str) -> Result<f64, String> {
    match t.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 && n.fract() == 0.0 => Ok(n),
        _ => Err(format!(
            "`{}` is not a number of users (a whole number, 0 or more)",
            t.trim()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let mut a = Arrivals::new(Profile::constant(100.0, secs(1)));
        let times: Vec<f64> = std::iter::from_fn(|| a.next_time()).collect();
        assert_eq!(times.len(), 100);
        assert!((times[0] - 0.01).abs() < 1e-9);
        assert!((times[99] - 1.0).abs() < 1e-9);
    }

    #[test]
    fn ramps_follow_the_integral() {
        // 0 → 100/s over 10 s: 500 arrivals; by 5 s, 125 of them.
        let p = Profile {
            start: 0.0,
            stages: vec![Stage {
                duration: secs(10),
                target: 100.0,
            }],
        };
        assert_eq!(p.total(), 500.0);
        let mut a = Arrivals::new(p);
        let times: Vec<f64> = std::iter::from_fn(|| a.next_time()).collect();
        assert_eq!(times.len(), 500);
        let by5 = times.iter().filter(|t| **t <= 5.0).count();
        assert_eq!(by5, 125);
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn stages_chain_and_profiles_scale() {
        let stages = parse_stages("1s:100/s, 1s:100/s, 2s:0/s", true).unwrap();
        let p = Profile {
            start: 100.0,
            stages,
        };
        assert_eq!(p.total(), 300.0);
        assert_eq!(p.at(0.5), 100.0);
        assert_eq!(p.at(3.0), 50.0);
        let half = p.scaled(0.5);
        let mut a = Arrivals::new(half);
        assert_eq!(std::iter::from_fn(|| a.next_time()).count(), 150);
    }

    #[test]
    fn parses_rates_and_user_stages() {
        assert_eq!(parse_rate("6000/m").unwrap(), 100.0);
        assert!(parse_rate("100").is_err());
        assert!(parse_rate("5/d").is_err());
        let s = parse_stages("30s:50,1m:200", false).unwrap();
        assert_eq!(
            s[1],
            Stage {
                duration: secs(60),
                target: 200.0
            }
        );
        assert!(parse_stages("30s", true).is_err());
    }
}
