//! The study report: what `foresight report STUDY_DIR` shows.
//!
//! * [`summary`]: a plain-text summary of a [`Study`]: its settings, the
//!   best configuration, how the trials ended, the epochs early stopping
//!   saved, and a table of all trials.
//! * [`plots`] / [`plots_with_trace`]: two SVG figures, drawn with
//!   `plotters`' SVG backend:
//!   - `curves.svg`: every trial's learning curve, coloured by how it ended,
//!     with the predicted band (q05–q95 area and median) of every stopped
//!     trial from the epoch it was stopped to the horizon, and the
//!     incumbent's final score as a horizontal line;
//!   - `incumbent.svg`: the incumbent's score against the epochs used so
//!     far, a step line.
//! * [`incumbent_trace`]: the exact steps of the incumbent, from the
//!   journal's events in the order they happened.
//!
//! Text (captions, axis labels, the legend) is written as SVG `<text>`
//! elements, which the viewer renders with its own fonts; plotters only
//! estimates their size for layout (without its `ttf` feature it uses a
//! crude width per character), so no font files are needed.
//!
//! Odd studies do not make the report fail: no trials, no completed trial,
//! `NaN` scores (a curve is drawn in pieces around them) and huge losses (the
//! value axis is fitted to the bulk of the values; points beyond it are
//! drawn at its edge).
//!
//! ```no_run
//! use std::path::Path;
//! use foresight::journal::Journal;
//! use foresight::report;
//! use foresight::tuner::Study;
//!
//! let dir = Path::new("runs/toy");
//! let (header, events) = Journal::read(dir)?;
//! let mut study = Study::new(header.clone());
//! for e in &events {
//!     study.apply(e);
//! }
//! print!("{}", report::summary(&study));
//! let trace = report::incumbent_trace(&header, &events);
//! report::plots_with_trace(&study, &trace, dir)?;
//! # Ok::<(), foresight::Error>(())
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::curve::Metric;
use crate::error::{Error, Result};
use crate::journal::{Event, Header, Status};
use crate::progress::show_config;
use crate::tuner::{Study, TrialRecord};

/// File name of the learning-curve figure written by [`plots`].
pub const CURVES_FILE: &str = "curves.svg";

/// File name of the incumbent figure written by [`plots`].
pub const INCUMBENT_FILE: &str = "incumbent.svg";

/// Size of both figures, in pixels.
const SIZE: (u32, u32) = (960, 600);

const COMPLETED: RGBColor = RGBColor(31, 119, 180);
const STOPPED: RGBColor = RGBColor(255, 127, 14);
const FAILED: RGBColor = RGBColor(214, 39, 40);
const OTHER: RGBColor = RGBColor(150, 150, 150);
const INCUMBENT: RGBColor = RGBColor(44, 160, 44);

/// A plain-text summary of a study: sampler, policy, metric and horizon;
/// the best configuration with its final score and trial number; how many
/// trials completed, were stopped, failed, diverged or were cut; the epochs
/// used against the epochs the same trials would have used without early
/// stopping; and a table of the trials, by id.
pub fn summary(study: &Study) -> String {
    let h = &study.header;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "study: sampler {}, policy {}, metric {}, horizon {} epochs",
        h.sampler,
        h.policy,
        metric_name(h.metric),
        h.horizon
    );
    if study.trials.is_empty() {
        s.push_str("no trials\n");
        return s;
    }
    match study.best() {
        Some(best) => {
            let score = best
                .scores
                .last()
                .copied()
                .or(study.incumbent())
                .unwrap_or(f64::NAN);
            let _ = writeln!(
                s,
                "best: trial {}, final score {}: {}",
                best.id,
                number(score),
                show_config(&best.config)
            );
        }
        None => s.push_str("best: no completed trial\n"),
    }
    let running = study.count(None);
    let _ = writeln!(
        s,
        "trials: {} ({} completed, {} stopped, {} failed, {} diverged, {} cut{})",
        study.trials.len(),
        study.count(Some(Status::Completed)),
        study.count(Some(Status::Stopped)),
        study.count(Some(Status::Failed)),
        study.count(Some(Status::Diverged)),
        study.count(Some(Status::Cut)),
        if running > 0 {
            format!(", {running} unfinished")
        } else {
            String::new()
        }
    );
    let used = study.epochs_used;
    let without = study.epochs_without_stopping();
    let saved = without.saturating_sub(used);
    let fraction = if without > 0 {
        format!(" ({:.1}% saved)", 100.0 * saved as f64 / without as f64)
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "epochs: {used} used, {without} without early stopping{fraction}"
    );
    s.push('\n');
    s.push_str(&trial_table(study));
    let failures: Vec<&TrialRecord> = study
        .trials
        .iter()
        .filter(|t| t.status == Some(Status::Failed))
        .collect();
    if !failures.is_empty() {
        s.push_str("\nfailures:\n");
        for t in failures {
            let message = t.message.as_deref().unwrap_or("(no message)");
            let _ = writeln!(s, "  trial {}: {}", t.id, message.trim());
        }
    }
    s
}

/// The table of trials, columns aligned: id, status, epochs, last score,
/// what the sampler was told, and `P(better)` of the last prediction.
fn trial_table(study: &Study) -> String {
    let head = [
        "trial",
        "status",
        "epochs",
        "last score",
        "told",
        "P(better)",
    ];
    // Right-aligned columns (numbers); the others are left-aligned.
    let right = [true, false, true, true, true, true];
    let mut trials: Vec<&TrialRecord> = study.trials.iter().collect();
    trials.sort_by_key(|t| t.id);
    let rows: Vec<[String; 6]> = trials
        .iter()
        .map(|t| {
            let told = match t.told {
                None => "-".to_string(),
                Some((v, var)) if var > 0.0 => format!("{} ± {}", number(v), number(var.sqrt())),
                Some((v, _)) => number(v),
            };
            let p = t
                .predictions
                .last()
                .and_then(|p| p.p_better)
                .map_or("-".to_string(), |p| format!("{p:.3}"));
            [
                t.id.to_string(),
                status_name(t.status).to_string(),
                t.scores.len().to_string(),
                t.scores.last().map_or("-".to_string(), |&v| number(v)),
                told,
                p,
            ]
        })
        .collect();
    let mut widths = head.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut s = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if right[i] {
                l.push_str(&" ".repeat(pad));
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.push_str(&" ".repeat(pad));
            }
        }
        s.push_str(l.trim_end());
        s.push('\n');
    };
    line(&head);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells);
    }
    s
}

/// A score for the table: four decimals, or scientific notation for very
/// large or very small magnitudes.
fn number(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Accuracy => "accuracy (higher is better)",
        Metric::Loss => "loss (lower is better)",
    }
}

fn status_name(s: Option<Status>) -> &'static str {
    match s {
        Some(Status::Completed) => "completed",
        Some(Status::Stopped) => "stopped",
        Some(Status::Failed) => "failed",
        Some(Status::Diverged) => "diverged",
        Some(Status::Cut) => "cut",
        None => "unfinished",
    }
}

/// The steps of the incumbent over a study, from its journal's header and
/// events (as [`crate::journal::Journal::read`] returns them): one entry
/// `(epochs used so far, incumbent score)` for every trial end that set a
/// new incumbent, in the order they happened. Exact: the events are folded
/// into a [`Study`] one by one, so the incumbent and the epoch count are the
/// study's own (epochs lost to a crash count as used).
///
/// An end marked completed for a trial with no recorded score is skipped.
pub fn incumbent_trace(header: &Header, events: &[Event]) -> Vec<(usize, f64)> {
    let mut study = Study::new(header.clone());
    let mut trace: Vec<(usize, f64)> = Vec::new();
    for e in events {
        if let Event::End {
            trial,
            status: Status::Completed,
            ..
        } = e
            && study.trials.get(*trial).is_none_or(|t| t.scores.is_empty())
        {
            continue;
        }
        study.apply(e);
        if let (Event::End { .. }, Some(v)) = (e, study.incumbent())
            && trace.last().is_none_or(|&(_, last)| last != v)
        {
            trace.push((study.epochs_used, v));
        }
    }
    trace
}

/// The incumbent's steps estimated from a [`Study`] alone, which does not
/// record the order in which trials ended: trials are taken in the order
/// they started, each ending after the epochs of all trials up to it. Exact
/// for a study with one worker and no crash; [`incumbent_trace`] is exact
/// always.
fn estimated_trace(study: &Study) -> Vec<(usize, f64)> {
    let mut trials: Vec<&TrialRecord> = study.trials.iter().collect();
    trials.sort_by_key(|t| t.id);
    let mut epochs = 0;
    let mut best: Option<f64> = None;
    let mut trace = Vec::new();
    for t in trials {
        epochs += t.scores.len();
        if t.status != Some(Status::Completed) {
            continue;
        }
        let Some(&f) = t.scores.last() else { continue };
        if f.is_finite() && best.is_none_or(|b| study.header.metric.better(f, b)) {
            best = Some(f);
            trace.push((epochs, f));
        }
    }
    trace
}

/// Writes `curves.svg` and `incumbent.svg` into `out` (created if needed)
/// and returns their paths. The incumbent figure is estimated from the
/// study alone (trials in the order they started); use
/// [`plots_with_trace`] with [`incumbent_trace`] for the exact one.
///
/// Errors: [`Error::Io`] if `out` or a file cannot be written,
/// [`Error::Invalid`] if plotters fails to draw.
pub fn plots(study: &Study, out: &Path) -> Result<Vec<PathBuf>> {
    plots_with_trace(study, &estimated_trace(study), out)
}

/// [`plots`] with the incumbent's steps given, as [`incumbent_trace`]
/// computes them from the journal.
pub fn plots_with_trace(study: &Study, trace: &[(usize, f64)], out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let curves = render(|root| draw_curves(study, root))?;
    let incumbent = render(|root| draw_incumbent(study, trace, root))?;
    let mut written = Vec::new();
    for (name, svg) in [(CURVES_FILE, curves), (INCUMBENT_FILE, incumbent)] {
        let path = out.join(name);
        std::fs::write(&path, svg).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

type Root<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type DrawResult<T> = std::result::Result<T, Box<dyn std::error::Error + 'static>>;

/// Draws one figure into an SVG string.
fn render(draw: impl FnOnce(&Root<'_>) -> DrawResult<()>) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(|e| e.into())
            .and_then(|_| draw(&root))
            .and_then(|_| root.present().map_err(|e| e.into()));
        drawn.map_err(|e| Error::invalid("plot", e.to_string()))?;
    }
    Ok(svg)
}

/// The colour of a trial's curve.
fn colour(status: Option<Status>) -> RGBColor {
    match status {
        Some(Status::Completed) => COMPLETED,
        Some(Status::Stopped) => STOPPED,
        Some(Status::Failed) | Some(Status::Diverged) => FAILED,
        Some(Status::Cut) | None => OTHER,
    }
}

/// A predicted band to draw: `(epoch, q05, median, q95)`.
type Band = Vec<(f64, f64, f64, f64)>;

/// The band to draw for a stopped trial: `(epoch, q05, median, q95)` from
/// the epoch it was stopped to the horizon, starting at its last score.
fn stopped_band(t: &TrialRecord) -> Option<Band> {
    if t.status != Some(Status::Stopped) {
        return None;
    }
    let p = t.predictions.last()?;
    let stop = t.scores.len();
    let mut band: Band = p
        .band
        .iter()
        .filter(|b| b.0 >= stop && b.1.is_finite() && b.2.is_finite() && b.3.is_finite())
        .map(|&(e, lo, mid, hi)| (e as f64, lo.min(hi), mid, hi.max(lo)))
        .collect();
    if band.is_empty() {
        return None;
    }
    if let Some(&last) = t.scores.last()
        && last.is_finite()
        && band[0].0 > stop as f64
    {
        band.insert(0, (stop as f64, last, last, last));
    }
    Some(band)
}

/// The value axis: the range of the finite `values`, leaving out those far
/// outside the bulk (more than ten interquartile ranges beyond a quartile),
/// so that a few huge values (a diverging loss, a wide band) do not flatten
/// everything else; widened to include `keep`, padded by 5%.
fn value_range(values: &[f64], keep: &[f64]) -> (f64, f64) {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    let (mut lo, mut hi) = match (v.first(), v.last()) {
        (Some(&min), Some(&max)) => {
            let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
            // A generous fence around the middle half: only values orders
            // of magnitude away from the bulk are left out.
            let mut spread = q(0.75) - q(0.25);
            if !(spread > 0.0) {
                spread = q(0.95) - q(0.05);
            }
            if !(spread > 0.0) {
                spread = q(0.5).abs().max(1e-3);
            }
            let (fence_lo, fence_hi) = (q(0.25) - 10.0 * spread, q(0.75) + 10.0 * spread);
            if spread.is_finite() && fence_lo.is_finite() && fence_hi.is_finite() {
                let mut inside = v
                    .iter()
                    .copied()
                    .filter(|&x| fence_lo <= x && x <= fence_hi);
                let lo = inside.next().unwrap_or(min);
                (lo, inside.next_back().unwrap_or(lo))
            } else {
                (min, max)
            }
        }
        _ => (f64::INFINITY, f64::NEG_INFINITY),
    };
    for &k in keep.iter().filter(|k| k.is_finite()) {
        lo = lo.min(k);
        hi = hi.max(k);
    }
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let span = hi - lo;
    let pad = if span.is_finite() && span > 0.0 {
        0.05 * span
    } else {
        0.05 * lo.abs().max(1e-3)
    };
    let (lo, hi) = (lo - pad, hi + pad);
    if lo.is_finite() && hi.is_finite() && lo < hi {
        (lo, hi)
    } else {
        (0.0, 1.0)
    }
}

/// Axis tick labels: short, in scientific notation when needed.
fn tick(v: &f64) -> String {
    let a = v.abs();
    if a != 0.0 && !(1e-2..1e4).contains(&a) {
        format!("{v:.1e}")
    } else {
        format!("{v:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

/// Epoch-axis tick labels: whole numbers without decimals.
fn epoch_tick(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{:.0}", x.round())
    } else {
        tick(x)
    }
}

/// The runs of consecutive finite points of a curve (epochs from 1),
/// clamped to the value axis.
fn pieces(scores: &[f64], (lo, hi): (f64, f64)) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur = Vec::new();
    for (i, &v) in scores.iter().enumerate() {
        if v.is_finite() {
            cur.push(((i + 1) as f64, v.clamp(lo, hi)));
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn draw_curves(study: &Study, root: &Root<'_>) -> DrawResult<()> {
    let horizon = study
        .trials
        .iter()
        .map(|t| t.scores.len())
        .max()
        .unwrap_or(0)
        .max(study.header.horizon)
        .max(1);
    let bands: Vec<(&TrialRecord, Band)> = study
        .trials
        .iter()
        .filter_map(|t| stopped_band(t).map(|b| (t, b)))
        .collect();
    let mut values: Vec<f64> = study
        .trials
        .iter()
        .flat_map(|t| t.scores.iter().copied())
        .collect();
    for (_, b) in &bands {
        values.extend(b.iter().flat_map(|&(_, lo, mid, hi)| [lo, mid, hi]));
    }
    let incumbent = study.incumbent().filter(|v| v.is_finite());
    let keep: Vec<f64> = incumbent.into_iter().collect();
    let (lo, hi) = value_range(&values, &keep);
    let caption = if study.trials.is_empty() {
        "Learning curves (no trials)"
    } else {
        "Learning curves"
    };
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..horizon as f64, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(metric_axis(study.header.metric))
        .x_label_formatter(&epoch_tick)
        .y_label_formatter(&tick)
        .draw()?;

    // Bands first, so that curves stay on top.
    for (t, band) in &bands {
        let c = colour(t.status);
        let mut area: Vec<(f64, f64)> = band.iter().map(|b| (b.0, b.1.clamp(lo, hi))).collect();
        area.extend(band.iter().rev().map(|b| (b.0, b.3.clamp(lo, hi))));
        chart.draw_series(std::iter::once(Polygon::new(area, c.mix(0.15).filled())))?;
        let median: Vec<(f64, f64)> = band.iter().map(|b| (b.0, b.2.clamp(lo, hi))).collect();
        chart.draw_series(std::iter::once(PathElement::new(median, c.mix(0.6))))?;
    }

    let classes: [(&str, RGBColor, &[Option<Status>]); 4] = [
        ("completed", COMPLETED, &[Some(Status::Completed)]),
        ("stopped", STOPPED, &[Some(Status::Stopped)]),
        (
            "failed / diverged",
            FAILED,
            &[Some(Status::Failed), Some(Status::Diverged)],
        ),
        ("cut / unfinished", OTHER, &[Some(Status::Cut), None]),
    ];
    let mut legend = false;
    for (label, c, statuses) in classes {
        let trials: Vec<&TrialRecord> = study
            .trials
            .iter()
            .filter(|t| statuses.contains(&t.status))
            .collect();
        if trials.is_empty() {
            continue;
        }
        let mut labelled = false;
        for t in trials {
            let width = if Some(t.id) == study.best().map(|b| b.id) {
                3
            } else {
                1
            };
            for piece in pieces(&t.scores, (lo, hi)) {
                let series = chart.draw_series(std::iter::once(PathElement::new(
                    piece,
                    c.stroke_width(width),
                )))?;
                if !labelled {
                    series.label(label).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                    });
                    labelled = true;
                    legend = true;
                }
            }
        }
    }
    if let Some(v) = incumbent {
        let v = v.clamp(lo, hi);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(0.0, v), (horizon as f64, v)],
                INCUMBENT.stroke_width(1),
            )))?
            .label("incumbent")
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], INCUMBENT.stroke_width(2))
            });
        legend = true;
    }
    if !bands.is_empty() {
        chart
            .draw_series(std::iter::empty::<Polygon<(f64, f64)>>())?
            .label("predicted band (q05-q95)")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 20, y + 5)], STOPPED.mix(0.3).filled())
            });
    }
    if legend {
        chart
            .configure_series_labels()
            .position(legend_position(study.header.metric))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
    }
    Ok(())
}

/// Accuracy curves rise towards the top, loss curves fall towards the
/// bottom: the legend goes where the curves are not.
fn legend_position(metric: Metric) -> SeriesLabelPosition {
    match metric {
        Metric::Accuracy => SeriesLabelPosition::LowerRight,
        Metric::Loss => SeriesLabelPosition::UpperRight,
    }
}

fn metric_axis(metric: Metric) -> &'static str {
    match metric {
        Metric::Accuracy => "validation score (higher is better)",
        Metric::Loss => "validation loss (lower is better)",
    }
}

fn draw_incumbent(study: &Study, trace: &[(usize, f64)], root: &Root<'_>) -> DrawResult<()> {
    let steps: Vec<(f64, f64)> = trace
        .iter()
        .filter(|s| s.1.is_finite())
        .map(|&(e, v)| (e as f64, v))
        .collect();
    let last_step = steps.iter().map(|s| s.0).fold(0.0, f64::max);
    let x_max = (study.epochs_used as f64).max(last_step).max(1.0);
    let values: Vec<f64> = steps.iter().map(|s| s.1).collect();
    let (lo, hi) = value_range(&values, &[]);
    let caption = if steps.is_empty() {
        "Incumbent (no completed trial)"
    } else {
        "Incumbent"
    };
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc("epochs used (all trials)")
        .y_desc(match study.header.metric {
            Metric::Accuracy => "best final score",
            Metric::Loss => "best final loss",
        })
        .x_label_formatter(&epoch_tick)
        .y_label_formatter(&tick)
        .draw()?;
    if steps.is_empty() {
        return Ok(());
    }
    let mut line: Vec<(f64, f64)> = Vec::with_capacity(2 * steps.len() + 1);
    for (i, &(e, v)) in steps.iter().enumerate() {
        if i > 0 {
            line.push((e, steps[i - 1].1.clamp(lo, hi)));
        }
        line.push((e, v.clamp(lo, hi)));
    }
    if let Some(&(e, v)) = steps.last()
        && x_max > e
    {
        line.push((x_max, v.clamp(lo, hi)));
    }
    chart.draw_series(std::iter::once(PathElement::new(
        line,
        INCUMBENT.stroke_width(2),
    )))?;
    chart.draw_series(
        steps
            .iter()
            .map(|&(e, v)| Circle::new((e, v.clamp(lo, hi)), 4, INCUMBENT.filled())),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::VERSION;
    use crate::space::{Config, Space, Value};

    fn header(metric: Metric) -> Header {
        Header {
            version: VERSION,
            space: Space::builder()
                .float("lr", 1e-3, 1e-1, true)
                .build()
                .unwrap(),
            metric,
            horizon: 10,
            seed: 1,
            sampler: "gp-hedge".into(),
            policy: "lc".into(),
        }
    }

    fn config(lr: f64) -> Config {
        let mut c = Config::new();
        c.insert("lr".into(), Value::Float(lr));
        c
    }

    fn start(trial: usize, t: f64) -> Event {
        Event::Start {
            trial,
            config: config(0.01 * (trial + 1) as f64),
            seed: trial as u64,
            t,
        }
    }

    fn epochs(trial: usize, scores: &[Option<f64>], t0: f64) -> Vec<Event> {
        scores
            .iter()
            .enumerate()
            .map(|(i, &value)| Event::Epoch {
                trial,
                epoch: i + 1,
                value,
                t: t0 + i as f64,
            })
            .collect()
    }

    fn end(trial: usize, status: Status, value: Option<f64>, t: f64) -> Event {
        Event::End {
            trial,
            status,
            value,
            variance: value.map(|_| 0.0),
            message: (status == Status::Failed).then(|| "out of memory".to_string()),
            t,
        }
    }

    fn curve(n: usize, top: f64) -> Vec<Option<f64>> {
        (1..=n)
            .map(|e| Some(top * (1.0 - (-(e as f64) / 3.0).exp())))
            .collect()
    }

    fn prediction(trial: usize, epoch: usize, band: bool) -> Event {
        Event::Prediction {
            trial,
            epoch,
            p_better: Some(0.02),
            mean: Some(0.6),
            variance: Some(0.01),
            band: if band {
                (epoch + 1..=10)
                    .map(|e| (e, 0.4, 0.5 + 0.01 * e as f64, 0.7))
                    .collect()
            } else {
                Vec::new()
            },
            stop: true,
            t: 0.0,
        }
    }

    /// Trial 0 completes (0.8), trial 1 is stopped after 3 epochs (with or
    /// without a band), trial 2 completes better (0.9), trial 3 fails,
    /// trial 4 diverges (a NaN score).
    fn events(band: bool) -> Vec<Event> {
        let mut ev = vec![start(0, 0.0)];
        ev.extend(epochs(0, &curve(10, 0.8), 0.0));
        ev.push(end(
            0,
            Status::Completed,
            Some(0.8 * (1.0 - (-10.0f64 / 3.0).exp())),
            10.0,
        ));
        ev.push(start(1, 10.0));
        ev.extend(epochs(1, &curve(3, 0.5), 10.0));
        ev.push(prediction(1, 3, band));
        ev.push(end(1, Status::Stopped, Some(0.6), 13.0));
        ev.push(start(2, 13.0));
        ev.extend(epochs(2, &curve(10, 0.9), 13.0));
        ev.push(end(
            2,
            Status::Completed,
            Some(0.9 * (1.0 - (-10.0f64 / 3.0).exp())),
            23.0,
        ));
        ev.push(start(3, 23.0));
        ev.extend(epochs(3, &curve(2, 0.7), 23.0));
        ev.push(end(3, Status::Failed, None, 25.0));
        ev.push(start(4, 25.0));
        ev.extend(epochs(4, &[Some(0.3), None], 25.0));
        ev.push(end(4, Status::Diverged, Some(0.0), 27.0));
        ev
    }

    fn study(metric: Metric, events: &[Event]) -> Study {
        let mut s = Study::new(header(metric));
        for e in events {
            s.apply(e);
        }
        s
    }

    fn out_dir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("foresight-report-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn polygons(svg: &str) -> usize {
        svg.matches("<polygon").count()
    }

    #[test]
    fn summary_names_the_best_trial_and_the_counts() {
        let s = study(Metric::Accuracy, &events(true));
        let text = summary(&s);
        assert!(text.contains("sampler gp-hedge, policy lc"), "{text}");
        assert!(text.contains("horizon 10"), "{text}");
        assert!(text.contains("best: trial 2, final score 0.8679"), "{text}");
        assert!(text.contains("lr=3.000e-2"), "{text}");
        assert!(
            text.contains("5 (2 completed, 1 stopped, 1 failed, 1 diverged, 0 cut)"),
            "{text}"
        );
        // 10 + 3 + 10 + 2 + 2 used; the stopped trial would have used 7 more.
        assert!(
            text.contains("27 used, 34 without early stopping (20.6% saved)"),
            "{text}"
        );
        assert!(text.contains("trial 3: out of memory"), "{text}");
        // The table: one line per trial, by id, columns aligned.
        let table: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("trial  "))
            .take(6)
            .collect();
        assert_eq!(table.len(), 6, "{text}");
        let col = table[0].find("status").unwrap();
        for (i, row) in table[1..].iter().enumerate() {
            assert!(row.trim_start().starts_with(&i.to_string()), "{row}");
            let status = &row[col..];
            assert!(
                ["completed", "stopped", "failed", "diverged"]
                    .iter()
                    .any(|s| status.starts_with(s)),
                "{row}"
            );
        }
        let stopped = table[2];
        assert!(stopped.contains("0.6000"), "{stopped}");
        assert!(stopped.ends_with("0.020"), "{stopped}");
        let diverged = table[5];
        assert!(diverged.contains("NaN"), "{diverged}");
    }

    #[test]
    fn table_columns_line_up() {
        let s = study(Metric::Accuracy, &events(true));
        let text = trial_table(&s);
        let lines: Vec<&str> = text.lines().collect();
        // Every right-aligned "epochs" cell ends under the end of its header.
        let end = lines[0].find("epochs").unwrap() + "epochs".len();
        for l in &lines[1..] {
            assert!(l.as_bytes()[end - 1].is_ascii_digit(), "{l}");
            assert_eq!(l.as_bytes()[end], b' ', "{l}");
        }
    }

    #[test]
    fn plots_write_svg_files_and_draw_the_band_of_a_stopped_trial() {
        let with = study(Metric::Accuracy, &events(true));
        let without = study(Metric::Accuracy, &events(false));
        let d1 = out_dir("band");
        let d2 = out_dir("noband");
        let files = plots(&with, &d1).unwrap();
        assert_eq!(files, vec![d1.join(CURVES_FILE), d1.join(INCUMBENT_FILE)]);
        plots(&without, &d2).unwrap();
        for f in &files {
            let svg = std::fs::read_to_string(f).unwrap();
            assert!(svg.contains("<svg"), "{}", f.display());
            assert!(svg.contains("<polyline"), "{}", f.display());
        }
        let a = std::fs::read_to_string(d1.join(CURVES_FILE)).unwrap();
        let b = std::fs::read_to_string(d2.join(CURVES_FILE)).unwrap();
        assert_eq!(polygons(&a), polygons(&b) + 1);
        assert!(a.contains("predicted band"));
        assert!(!b.contains("predicted band"));
        // Text is drawn without font files: captions, axis names, legend.
        assert!(a.contains("<text"));
        assert!(a.contains("Learning curves"));
        assert!(a.contains("epoch"));
        assert!(a.contains("incumbent"));
        let inc = std::fs::read_to_string(d1.join(INCUMBENT_FILE)).unwrap();
        assert!(inc.contains("<circle"));
        let _ = std::fs::remove_dir_all(&d1);
        let _ = std::fs::remove_dir_all(&d2);
    }

    #[test]
    fn incumbent_trace_gives_the_steps() {
        let ev = events(true);
        let trace = incumbent_trace(&header(Metric::Accuracy), &ev);
        let f = |top: f64| top * (1.0 - (-10.0f64 / 3.0).exp());
        assert_eq!(trace, vec![(10, f(0.8)), (23, f(0.9))]);
        // The estimate from the study alone agrees here (one worker).
        assert_eq!(estimated_trace(&study(Metric::Accuracy, &ev)), trace);

        // Interleaved trials (two workers): the order of ends decides.
        let mut ev = vec![start(0, 0.0), start(1, 0.0)];
        for e in 1..=4 {
            for (trial, top) in [(0, 0.5), (1, 0.9)] {
                ev.push(Event::Epoch {
                    trial,
                    epoch: e,
                    value: Some(top * e as f64 / 4.0),
                    t: e as f64,
                });
            }
        }
        ev.push(end(1, Status::Completed, Some(0.9), 4.0));
        ev.push(end(0, Status::Completed, Some(0.5), 4.0));
        let mut h = header(Metric::Accuracy);
        h.horizon = 4;
        assert_eq!(incumbent_trace(&h, &ev), vec![(8, 0.9)]);

        // Loss: lower is better.
        let mut ev = vec![start(0, 0.0)];
        ev.extend(epochs(0, &[Some(3.0), Some(2.0)], 0.0));
        ev.push(end(0, Status::Completed, Some(2.0), 2.0));
        ev.push(start(1, 2.0));
        ev.extend(epochs(1, &[Some(3.0), Some(2.5)], 2.0));
        ev.push(end(1, Status::Completed, Some(2.5), 4.0));
        ev.push(start(2, 4.0));
        ev.extend(epochs(2, &[Some(2.0), Some(1.0)], 4.0));
        ev.push(end(2, Status::Completed, Some(1.0), 6.0));
        let mut h = header(Metric::Loss);
        h.horizon = 2;
        assert_eq!(incumbent_trace(&h, &ev), vec![(2, 2.0), (6, 1.0)]);

        // A completed end without any score is skipped, not a panic.
        let ev = vec![start(0, 0.0), end(0, Status::Completed, Some(1.0), 0.0)];
        assert!(incumbent_trace(&h, &ev).is_empty());
    }

    #[test]
    fn plots_with_the_exact_trace() {
        let ev = events(true);
        let s = study(Metric::Accuracy, &ev);
        let d = out_dir("trace");
        let trace = incumbent_trace(&s.header, &ev);
        let files = plots_with_trace(&s, &trace, &d).unwrap();
        let inc = std::fs::read_to_string(&files[1]).unwrap();
        assert_eq!(inc.matches("<circle").count(), 2);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_empty_study_is_reported() {
        let s = Study::new(header(Metric::Accuracy));
        let text = summary(&s);
        assert!(text.contains("no trials"), "{text}");
        let d = out_dir("empty");
        let files = plots(&s, &d).unwrap();
        for f in &files {
            let svg = std::fs::read_to_string(f).unwrap();
            assert!(svg.contains("<svg"));
        }
        assert!(incumbent_trace(&s.header, &[]).is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn odd_studies_do_not_fail() {
        // All trials failed or diverged; a running one with NaN in the middle.
        let mut ev = vec![start(0, 0.0)];
        ev.extend(epochs(0, &[Some(0.1)], 0.0));
        ev.push(end(0, Status::Failed, None, 1.0));
        ev.push(start(1, 1.0));
        ev.extend(epochs(1, &[None], 1.0));
        ev.push(end(1, Status::Diverged, None, 2.0));
        ev.push(start(2, 2.0));
        let s = study(Metric::Accuracy, &ev);
        let text = summary(&s);
        assert!(text.contains("no completed trial"), "{text}");
        assert!(text.contains("1 unfinished"), "{text}");
        let d = out_dir("odd");
        plots(&s, &d).unwrap();

        // A loss with huge values: the axis follows the bulk of the values.
        let mut ev = Vec::new();
        for trial in 0..5 {
            ev.push(start(trial, 0.0));
            let scores: Vec<Option<f64>> = (1..=10)
                .map(|e| {
                    if trial == 4 && e > 3 {
                        Some(1e300)
                    } else {
                        Some(2.0 / e as f64 + 0.1 * trial as f64)
                    }
                })
                .collect();
            ev.extend(epochs(trial, &scores, 0.0));
            let last = scores[9];
            ev.push(end(trial, Status::Completed, last, 10.0));
        }
        let s = study(Metric::Loss, &ev);
        assert_eq!(s.best().map(|b| b.id), Some(0));
        let text = summary(&s);
        assert!(text.contains("1.000e300"), "{text}");
        let files = plots(&s, &d).unwrap();
        let svg = std::fs::read_to_string(&files[0]).unwrap();
        assert!(svg.contains("<polyline"));
        assert!(
            !svg.contains("NaN") && !svg.contains("inf"),
            "no bad coordinates"
        );
        let (lo, hi) = value_range(
            &s.trials
                .iter()
                .flat_map(|t| t.scores.iter().copied())
                .collect::<Vec<_>>(),
            &[],
        );
        assert!(lo < 0.3 && hi < 100.0, "{lo} {hi}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn value_range_is_always_usable() {
        for (v, keep) in [
            (vec![], vec![]),
            (vec![f64::NAN, f64::INFINITY], vec![]),
            (vec![0.5, 0.5], vec![]),
            (vec![0.0], vec![]),
            (vec![-f64::MAX, f64::MAX], vec![]),
            (vec![0.1, 0.2], vec![0.9]),
        ] {
            let (lo, hi) = value_range(&v, &keep);
            assert!(
                lo.is_finite() && hi.is_finite() && lo < hi,
                "{v:?}: {lo} {hi}"
            );
            for k in keep {
                assert!(lo <= k && k <= hi);
            }
        }
    }
}
