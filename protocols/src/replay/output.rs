//! What `foresight replay` writes: `runs.jsonl` (every finished run, read
//! back by an interrupted replay), `summary.md` (the summary as a markdown
//! table) and `regret.svg`.

use foresight::error::{Error, Result};

use super::figures::{RunFigures, Summary, regret_curves};

/// Runs recorded one JSON object per line (what `foresight replay --out`
/// keeps in `runs.jsonl`, so that an interrupted replay resumes). A missing
/// file holds no runs; a truncated last line (a run cut off while being
/// written) is dropped; damage elsewhere is an error naming the line.
pub fn read_runs(path: &std::path::Path) -> Result<Vec<RunFigures>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut runs = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(r) => runs.push(r),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(e) => {
                return Err(Error::Format {
                    path: path.to_path_buf(),
                    line: i + 1,
                    field: String::new(),
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(runs)
}

/// The summary as a markdown table.
pub fn summary_table(summary: &[Summary]) -> String {
    let num = |v: f64| {
        if v.is_nan() {
            "—".to_string()
        } else if v.is_infinite() {
            "inf".to_string()
        } else if v == 0.0 || (0.01..1000.0).contains(&v.abs()) {
            format!("{v:.3}")
        } else {
            format!("{v:.2e}")
        }
    };
    let mut out = String::from(
        "| sampler | policy | r@10T | r@20T | r@50T | epochs to r≤0.1 | speedup | trials | false-stop rate |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in summary {
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.sampler,
            s.policy,
            num(s.r_10t),
            num(s.r_20t),
            num(s.r_50t),
            num(s.epochs_to_r01),
            num(s.speedup),
            num(s.trials_started),
            num(s.false_stop_rate)
        );
    }
    out
}

/// Writes `summary.md` and `regret.svg` (median normalised regret against
/// epochs in multiples of `T`, one line per sampler and policy) into `dir`.
pub fn write_outputs(
    runs: &[RunFigures],
    summary: &[Summary],
    dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>> {
    let io = |path: &std::path::Path, source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let md = dir.join("summary.md");
    std::fs::write(&md, summary_table(summary)).map_err(|e| io(&md, e))?;
    let floor = 1e-4f64;
    // log10 of the regret; the top of the axis stands for "none completed
    // yet" (an infinite regret).
    let y = |r: f64| {
        if r.is_nan() || r.is_infinite() {
            1.0
        } else {
            r.max(floor).log10().min(1.0)
        }
    };
    let series: Vec<(String, Vec<(f64, f64)>)> = regret_curves(runs)
        .into_iter()
        .map(|(label, points)| (label, points.into_iter().map(|(x, r)| (x, y(r))).collect()))
        .collect();
    // Regret falls from the top left: the legend in the top right is clear.
    let svg = foresight::plot::line_chart(&foresight::plot::LineChart {
        caption: "Median normalised regret",
        x_label: "epochs used, in multiples of T",
        y_label: "log10 regret (top: none completed yet)",
        x_range: (0.0, 50.0),
        y_range: (floor.log10(), 1.0),
        series: &series,
    })?;
    let plot = dir.join("regret.svg");
    std::fs::write(&plot, svg).map_err(|e| io(&plot, e))?;
    Ok(vec![md, plot])
}
