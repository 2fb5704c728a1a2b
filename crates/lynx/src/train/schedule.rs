//! Learning-rate and input-resolution schedules: linear warmup then cosine decay to `min_lr`
//! (the common practice of BLIP-2/LAVIS-style training), and the paper's 2.3 resolution switch
//! (100k steps at 224 px, then 420 px).
//!
//! Steps are counted from 1: update `t` is the t-th call of the optimiser (the same number
//! written as `step` in metrics.jsonl and in checkpoint names). With peak `lr`, `min_lr`,
//! warmup `W` and `max_steps` `T`:
//! - `t <= W`: `lr(t) = lr * t / W` (the first update uses lr / W, update W uses lr);
//! - `W < t <= T`: `p = (t - W) / (T - W)`, `lr(t) = min_lr + (lr - min_lr) * (1 + cos(pi p)) / 2`,
//!   so update T uses exactly `min_lr`;
//! - `t > T` (or `t = 0`, never used): `min_lr` (`lr / W` clamps to the warmup start at 0).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Linear warmup + cosine decay; see the module documentation for the exact formula.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrSchedule {
    /// Peak learning rate, reached at the end of warmup.
    pub lr: f64,
    /// Learning rate at `max_steps` and after.
    #[serde(default)]
    pub min_lr: f64,
    /// Number of warmup updates (0: start at the peak).
    #[serde(default)]
    pub warmup_steps: u64,
    /// Total number of updates.
    pub max_steps: u64,
}

impl LrSchedule {
    /// Checks the values; errors name the offending key.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::config("lr", format!("must be > 0, got {}", self.lr)));
        }
        if !(self.min_lr.is_finite() && self.min_lr >= 0.0 && self.min_lr <= self.lr) {
            return Err(Error::config(
                "min_lr",
                format!("must be in [0, lr = {}], got {}", self.lr, self.min_lr),
            ));
        }
        if self.max_steps == 0 {
            return Err(Error::config("max_steps", "must be > 0"));
        }
        if self.warmup_steps > self.max_steps {
            return Err(Error::config(
                "warmup_steps",
                format!("{} exceeds max_steps {}", self.warmup_steps, self.max_steps),
            ));
        }
        Ok(())
    }

    /// The learning rate of update `t` (1-based).
    pub fn lr(&self, t: u64) -> f64 {
        let w = self.warmup_steps;
        if t == 0 {
            return if w == 0 { self.lr } else { 0.0 };
        }
        if t <= w {
            return self.lr * t as f64 / w as f64;
        }
        if t >= self.max_steps {
            return self.min_lr;
        }
        let progress = (t - w) as f64 / (self.max_steps - w) as f64;
        self.min_lr
            + (self.lr - self.min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// One stage of the resolution schedule: `image_res` for updates `t <= until_step`
/// (no `until_step`: for all remaining updates).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolutionStage {
    #[serde(default)]
    pub until_step: Option<u64>,
    pub image_res: usize,
}

/// Checks a resolution schedule: increasing `until_step`s, only the last one open-ended.
pub fn validate_resolution_schedule(stages: &[ResolutionStage]) -> Result<()> {
    let mut prev = 0u64;
    for (i, s) in stages.iter().enumerate() {
        let key = format!("resolution_schedule[{i}]");
        match s.until_step {
            Some(u) if u <= prev && i > 0 => {
                return Err(Error::config(
                    format!("{key}.until_step"),
                    format!("{u} must exceed the previous stage's {prev}"),
                ))
            }
            Some(u) => prev = u,
            None if i + 1 != stages.len() => {
                return Err(Error::config(
                    format!("{key}.until_step"),
                    "only the last stage may omit until_step",
                ))
            }
            None => {}
        }
        if s.image_res == 0 {
            return Err(Error::config(format!("{key}.image_res"), "must be > 0"));
        }
    }
    Ok(())
}

/// The image resolution for update `t` (1-based): the first stage with `t <= until_step` or no
/// `until_step`; `default_res` (the config's `image_res`) when the schedule is empty or over.
pub fn image_res_at(stages: &[ResolutionStage], default_res: usize, t: u64) -> usize {
    stages
        .iter()
        .find(|s| s.until_step.is_none_or(|u| t <= u))
        .map_or(default_res, |s| s.image_res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn warmup_then_cosine_values() {
        let s = LrSchedule {
            lr: 1e-4,
            min_lr: 1e-5,
            warmup_steps: 10,
            max_steps: 110,
        };
        s.validate().unwrap();
        assert!(close(s.lr(1), 1e-5));
        assert!(close(s.lr(5), 5e-5));
        assert!(close(s.lr(10), 1e-4));
        // Half way through the decay the cosine is 0: the mean of lr and min_lr.
        assert!(close(s.lr(60), 5.5e-5));
        // A quarter: min + (max - min) * (1 + cos(pi/4)) / 2.
        let q = 1e-5 + 9e-5 * 0.5 * (1.0 + std::f64::consts::FRAC_1_SQRT_2);
        assert!(close(s.lr(35), q));
        assert!(close(s.lr(110), 1e-5));
        assert!(close(s.lr(500), 1e-5));
        for t in 11..110 {
            assert!(s.lr(t + 1) < s.lr(t), "not decreasing at {t}");
        }
    }

    #[test]
    fn no_warmup_starts_at_peak() {
        let s = LrSchedule {
            lr: 2.0,
            min_lr: 0.0,
            warmup_steps: 0,
            max_steps: 4,
        };
        assert!(close(s.lr(1), 1.0 + (std::f64::consts::PI / 4.0).cos()));
        assert!(close(s.lr(2), 1.0));
        assert_eq!(s.lr(4), 0.0);
    }

    #[test]
    fn validation_names_the_key() {
        let mut s = LrSchedule {
            lr: 1.0,
            min_lr: 2.0,
            warmup_steps: 0,
            max_steps: 4,
        };
        assert!(s.validate().unwrap_err().to_string().contains("min_lr"));
        s.min_lr = 0.0;
        s.warmup_steps = 5;
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("warmup_steps"));
        let e: std::result::Result<LrSchedule, _> =
            serde_yaml::from_str("lr: 1\nmax_steps: 2\nwarm: 3");
        assert!(e.unwrap_err().to_string().contains("warm"));
    }

    #[test]
    fn resolution_schedule_like_the_paper() {
        let stages: Vec<ResolutionStage> =
            serde_yaml::from_str("[{until_step: 100000, image_res: 224}, {image_res: 420}]")
                .unwrap();
        validate_resolution_schedule(&stages).unwrap();
        assert_eq!(image_res_at(&stages, 999, 1), 224);
        assert_eq!(image_res_at(&stages, 999, 100000), 224);
        assert_eq!(image_res_at(&stages, 999, 100001), 420);
        assert_eq!(image_res_at(&[], 420, 5), 420);
        let closed = [ResolutionStage {
            until_step: Some(3),
            image_res: 224,
        }];
        assert_eq!(image_res_at(&closed, 420, 4), 420);
        let bad: Vec<ResolutionStage> =
            serde_yaml::from_str("[{image_res: 224}, {until_step: 5, image_res: 420}]").unwrap();
        assert!(validate_resolution_schedule(&bad)
            .unwrap_err()
            .to_string()
            .contains("resolution_schedule[0].until_step"));
        let bad: Vec<ResolutionStage> = serde_yaml::from_str(
            "[{until_step: 5, image_res: 224}, {until_step: 5, image_res: 420}]",
        )
        .unwrap();
        assert!(validate_resolution_schedule(&bad).is_err());
    }
}
