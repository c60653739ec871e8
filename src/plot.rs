//! Figures, drawn with plotters' SVG backend (the `plots` feature): a
//! study's learning curves and incumbent ([`study_figures`], what
//! `foresight report` draws), and plain line charts ([`line_chart`], what
//! replay's regret figure uses).
//!
//! * `curves.svg`: every trial's learning curve, coloured by how it ended,
//!   with the predicted band (q05–q95 area and median) of every stopped
//!   trial from the epoch it was stopped to the horizon, and the
//!   incumbent's final score as a horizontal line;
//! * `incumbent.svg`: the incumbent's score against the epochs used so
//!   far, a step line ([`crate::report::incumbent_trace`] gives the steps).
//!
//! Text (captions, axis labels, the legend) is written as SVG `<text>`
//! elements, which the viewer renders with its own fonts; plotters only
//! estimates their size for layout (without its `ttf` feature it uses a
//! crude width per character), so no font files are needed.
//!
//! Odd studies do not make a figure fail: no trials, no completed trial,
//! `NaN` scores (a curve is drawn in pieces around them) and huge losses (the
//! value axis is fitted to the bulk of the values; points beyond it are
//! drawn at its edge).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::study::{Direction, Objective, Status, Study, TrialRecord};

/// File name of the learning-curve figure written by [`study_figures`].
pub const CURVES_FILE: &str = "curves.svg";

/// File name of the incumbent figure written by [`study_figures`].
pub const INCUMBENT_FILE: &str = "incumbent.svg";

/// Size of the study figures, in pixels.
const SIZE: (u32, u32) = (960, 600);

const COMPLETED: RGBColor = RGBColor(31, 119, 180);
const STOPPED: RGBColor = RGBColor(255, 127, 14);
const FAILED: RGBColor = RGBColor(214, 39, 40);
const OTHER: RGBColor = RGBColor(150, 150, 150);
const INCUMBENT: RGBColor = RGBColor(44, 160, 44);

/// Writes `curves.svg` and `incumbent.svg` into `out` (created if needed)
/// and returns their paths; `trace` is the incumbent's steps
/// ([`crate::report::incumbent_trace`], or
/// [`crate::report::estimated_trace`] without the events).
///
/// Errors: [`Error::Io`] if `out` or a file cannot be written,
/// [`Error::Invalid`] if plotters fails to draw.
pub fn study_figures(study: &Study, trace: &[(usize, f64)], out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let curves = render(SIZE, |root| draw_curves(study, root))?;
    let incumbent = render(SIZE, |root| draw_incumbent(study, trace, root))?;
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

/// Draws one figure of `size` pixels into an SVG string.
fn render(size: (u32, u32), draw: impl FnOnce(&Root<'_>) -> DrawResult<()>) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
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
        Some(Status::Stopped) | Some(Status::Pruned) => STOPPED,
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
        .y_desc(metric_axis(&study.header.objective))
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
        (
            "stopped / pruned",
            STOPPED,
            &[Some(Status::Stopped), Some(Status::Pruned)],
        ),
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
            .position(legend_position(&study.header.objective))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
    }
    Ok(())
}

/// Maximised curves rise towards the top, minimised ones fall towards the
/// bottom: the legend goes where the curves are not.
fn legend_position(objective: &Objective) -> SeriesLabelPosition {
    match objective.direction {
        Direction::Maximize => SeriesLabelPosition::LowerRight,
        Direction::Minimize => SeriesLabelPosition::UpperRight,
    }
}

fn metric_axis(objective: &Objective) -> &'static str {
    match objective.direction {
        Direction::Maximize => "validation score (higher is better)",
        Direction::Minimize => "validation score (lower is better)",
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
        .y_desc("best final score")
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

/// A plain line chart: one line per series, a legend in the upper right.
#[derive(Debug, Clone)]
pub struct LineChart<'a> {
    pub caption: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
    /// `(label, points)`; points outside the ranges are drawn at their edge.
    pub series: &'a [(String, Vec<(f64, f64)>)],
}

/// Draws a [`LineChart`] into an SVG string (900 × 560 pixels).
pub fn line_chart(c: &LineChart) -> Result<String> {
    let (x0, x1) = c.x_range;
    let (y0, y1) = c.y_range;
    if !(x0 < x1 && y0 < y1) {
        return Err(Error::invalid("plot", "empty axis range"));
    }
    render((900, 560), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(c.caption, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(c.x_label)
            .y_desc(c.y_label)
            .draw()?;
        for (i, (label, points)) in c.series.iter().enumerate() {
            let colour = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(
                    points
                        .iter()
                        .filter(|(x, y)| x.is_finite() && y.is_finite())
                        .map(|&(x, y)| (x.clamp(x0, x1), y.clamp(y0, y1))),
                    colour.stroke_width(2),
                ))?
                .label(label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::estimated_trace;
    use crate::report::tests::{end, epochs, events, odd_events, start, study};
    use crate::study::Event;

    fn out_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("foresight-plot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn polygons(svg: &str) -> usize {
        svg.matches("<polygon").count()
    }

    fn figures(s: &Study, d: &Path) -> Vec<PathBuf> {
        study_figures(s, &estimated_trace(s), d).unwrap()
    }

    #[test]
    fn study_figures_draw_the_band_of_a_stopped_trial() {
        let with = study(Objective::accuracy(), &events(true));
        let without = study(Objective::accuracy(), &events(false));
        let d1 = out_dir("band");
        let d2 = out_dir("noband");
        let files = figures(&with, &d1);
        assert_eq!(files, vec![d1.join(CURVES_FILE), d1.join(INCUMBENT_FILE)]);
        figures(&without, &d2);
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
        assert_eq!(inc.matches("<circle").count(), 2);
        let _ = std::fs::remove_dir_all(&d1);
        let _ = std::fs::remove_dir_all(&d2);
    }

    #[test]
    fn odd_studies_do_not_fail() {
        let d = out_dir("odd");
        let empty = study(Objective::accuracy(), &[]);
        for f in figures(&empty, &d) {
            assert!(std::fs::read_to_string(f).unwrap().contains("<svg"));
        }
        figures(&study(Objective::accuracy(), &odd_events()), &d);

        // A loss with huge values: the axis follows the bulk of the values.
        let mut ev: Vec<Event> = Vec::new();
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
            ev.push(end(trial, Status::Completed, scores[9], 10.0));
        }
        let s = study(Objective::loss(), &ev);
        assert_eq!(s.best().map(|b| b.id), Some(0));
        assert!(crate::report::summary(&s).contains("1.000e300"));
        let files = figures(&s, &d);
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

    #[test]
    fn a_line_chart_draws_its_series() {
        let series = vec![
            (
                "a".to_string(),
                vec![(0.0, 1.0), (1.0, 0.5), (2.0, f64::NAN)],
            ),
            ("b".to_string(), vec![(0.0, 0.2), (5.0, 9.0)]),
        ];
        let chart = |series: &[(String, Vec<(f64, f64)>)]| {
            line_chart(&LineChart {
                caption: "regret",
                x_label: "x",
                y_label: "y",
                x_range: (0.0, 2.0),
                y_range: (0.0, 1.0),
                series,
            })
            .unwrap()
        };
        let (one, two) = (chart(&series[..1]), chart(&series));
        let lines = |svg: &str| svg.matches("<polyline").count();
        assert_eq!(lines(&two), lines(&one) + 2, "a line and its legend mark");
        assert!(two.contains("regret"), "{two}");
        assert!(
            line_chart(&LineChart {
                x_range: (1.0, 1.0),
                ..LineChart {
                    caption: "",
                    x_label: "",
                    y_label: "",
                    x_range: (0.0, 1.0),
                    y_range: (0.0, 1.0),
                    series: &series,
                }
            })
            .is_err()
        );
    }
}
