//! The learning-rate schedule of DESIGN §5: linear warm-up from 0 to the peak, then cosine
//! decay to a floor at the last step. A pure function of the step, so a resumed run gets
//! exactly the rates it would have had.
use std::f64::consts::PI;

/// Warm-up + cosine decay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub peak: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
    /// The rate at the last step, as a fraction of the peak.
    pub floor: f64,
}

impl Schedule {
    pub fn new(peak: f64, warmup_steps: usize, total_steps: usize) -> Self {
        Schedule {
            peak,
            warmup_steps,
            total_steps,
            floor: 0.1,
        }
    }

    /// The rate for optimizer step `step` (0-based).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let done = ((step - self.warmup_steps) as f64 / span as f64).min(1.0);
        let cosine = 0.5 * (1.0 + (PI * done).cos());
        self.peak * (self.floor + (1.0 - self.floor) * cosine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_the_floor() {
        let s = Schedule::new(1.0, 4, 14);
        let lrs: Vec<f64> = (0..14).map(|i| s.lr(i)).collect();
        assert_eq!(&lrs[..4], &[0.25, 0.5, 0.75, 1.0]);
        assert_eq!(lrs[4], 1.0, "decay starts at the peak");
        // Half-way through the decay: floor + (1 - floor) / 2.
        assert!((lrs[9] - 0.55).abs() < 1e-12, "{}", lrs[9]);
        assert!(lrs.windows(2).skip(4).all(|w| w[1] <= w[0]));
        assert!((s.lr(14) - 0.1).abs() < 1e-12);
        assert!((s.lr(1000) - 0.1).abs() < 1e-12, "clamped past the end");
    }

    #[test]
    fn no_warmup() {
        let s = Schedule::new(2e-4, 0, 10);
        assert_eq!(s.lr(0), 2e-4);
    }
}
