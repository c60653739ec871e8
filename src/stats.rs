//! Order statistics shared by the protocols, the policies and the reports.

/// Median of the values that are not NaN, with the midpoint of the two
/// middle values for an even count; `NaN` if none is left.
///
/// Infinities are ordinary values: the median of `[1, 2, inf]` is 2, that
/// of `[1, inf]` is `inf` (a regret that is infinite for half the seeds has
/// an infinite median).
///
/// ```
/// use foresight::stats::median;
/// assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
/// assert_eq!(median(&[4.0, 1.0, f64::NAN, 2.0, 3.0]), 2.5);
/// assert_eq!(median(&[1.0, f64::INFINITY]), f64::INFINITY);
/// assert!(median(&[f64::NAN]).is_nan());
/// ```
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

/// The `q`-quantile (`0 <= q <= 1`) of sorted values, interpolating
/// linearly between order statistics (numpy's default, "type 7" of Hyndman
/// & Fan 1996). `sorted` must be non-empty.
///
/// ```
/// use foresight::stats::percentile;
/// assert_eq!(percentile(&[0.0, 10.0, 20.0, 30.0], 0.5), 15.0);
/// assert_eq!(percentile(&[0.0, 10.0, 20.0, 30.0], 1.0), 30.0);
/// ```
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo])
}
