//! Bounded containers for everything a followed run streams in, so a run that
//! writes events for days cannot grow the workbench's memory without limit.
//!
//! `Ring` keeps the newest `cap` items (logs, episodes). `Series` keeps a plot
//! line: when it reaches its cap it drops every second point, so the whole
//! history stays visible at half the resolution instead of the oldest part
//! vanishing — a loss curve's start matters as much as its end.
use std::collections::VecDeque;

/// The newest `cap` items, oldest first.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    items: VecDeque<T>,
    cap: usize,
    /// How many items were pushed out at the front, ever.
    dropped: u64,
}

impl<T> Ring<T> {
    pub fn new(cap: usize) -> Self {
        Ring {
            items: VecDeque::with_capacity(cap.min(1024)),
            cap: cap.max(1),
            dropped: 0,
        }
    }

    pub fn push(&mut self, item: T) {
        if self.items.len() == self.cap {
            self.items.pop_front();
            self.dropped += 1;
        }
        self.items.push_back(item);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        self.items.get(i)
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        self.items.get_mut(i)
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.items.iter()
    }

    pub fn back(&self) -> Option<&T> {
        self.items.back()
    }

    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Index of the last item matching `f` (searching from the newest).
    pub fn rposition(&self, f: impl Fn(&T) -> bool) -> Option<usize> {
        self.items.iter().rposition(f)
    }
}

/// One plot line of (step, value) points with decimation at the cap.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    points: Vec<(f64, f64)>,
    cap: usize,
}

impl Series {
    pub fn new(cap: usize) -> Self {
        Series {
            points: Vec::new(),
            // An odd cap would leave one point after halving; 2 is the least that plots a line.
            cap: cap.max(2),
        }
    }

    pub fn push(&mut self, x: f64, y: f64) {
        if !(x.is_finite() && y.is_finite()) {
            return;
        }
        if self.points.len() >= self.cap {
            let mut i = 0;
            self.points.retain(|_| {
                i += 1;
                i % 2 == 1
            });
        }
        self.points.push((x, y));
    }

    /// Drops every point with x greater than `x` (a resumed run replays those steps).
    pub fn truncate_after(&mut self, x: f64) {
        self.points.retain(|p| p.0 <= x);
    }

    pub fn points(&self) -> &[(f64, f64)] {
        &self.points
    }

    pub fn last(&self) -> Option<(f64, f64)> {
        self.points.last().copied()
    }

    /// (min, max) of x and of y, or `None` when empty.
    pub fn bounds(&self) -> Option<([f64; 2], [f64; 2])> {
        let first = self.points.first()?;
        let mut xb = [first.0, first.0];
        let mut yb = [first.1, first.1];
        for &(x, y) in &self.points {
            xb = [xb[0].min(x), xb[1].max(x)];
            yb = [yb[0].min(y), yb[1].max(y)];
        }
        Some((xb, yb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_and_counts_drops() {
        let mut r = Ring::new(3);
        for i in 0..5 {
            r.push(i);
        }
        assert_eq!(r.iter().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(r.dropped(), 2);
        assert_eq!(r.rposition(|&x| x == 3), Some(1));
    }

    #[test]
    fn series_halves_at_the_cap_and_keeps_its_span() {
        let mut s = Series::new(8);
        for i in 0..100 {
            s.push(f64::from(i), 1.0);
        }
        assert!(s.points().len() <= 8, "{}", s.points().len());
        assert_eq!(s.points().first().map(|p| p.0), Some(0.0));
        assert_eq!(s.last().map(|p| p.0), Some(99.0));
        s.push(f64::NAN, 1.0);
        assert_eq!(s.last().map(|p| p.0), Some(99.0));
        s.truncate_after(50.0);
        assert!(s.points().iter().all(|p| p.0 <= 50.0));
    }
}
