//! Minimum, median and the ratio of medians: all the statistics a row needs.

/// The minimum and median of some samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinMedian {
    /// The smallest sample.
    pub min: f64,
    /// The middle sample, or the mean of the two middle ones for an even count.
    pub median: f64,
}

/// Min and median of `samples`; `None` when there are none (every build failed or was dropped).
pub fn min_median(samples: &[f64]) -> Option<MinMedian> {
    let mut xs = samples.to_vec();
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => xs[n / 2],
        _ => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    };
    Some(MinMedian { min: xs[0], median })
}

/// The median alone.
pub fn median(samples: &[f64]) -> Option<f64> {
    min_median(samples).map(|m| m.median)
}

/// `a / b`, when both exist and `b` is positive.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_even_and_empty() {
        assert_eq!(min_median(&[]), None);
        let m = min_median(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((m.min, m.median), (1.0, 2.0));
        let m = min_median(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((m.min, m.median), (1.0, 2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
    }

    #[test]
    fn ratio_needs_both_and_a_positive_divisor() {
        assert_eq!(ratio(Some(1.0), Some(4.0)), Some(0.25));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(ratio(Some(1.0), None), None);
    }
}
