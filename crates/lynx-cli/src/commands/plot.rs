//! `lynx plot METRICS.jsonl [MORE.jsonl ...] --out FILE.png|svg`: loss and learning-rate curves
//! of training runs (train/metrics.rs lines), one colour per run, in two panels.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use lynx::train::metrics::read_metrics;
use plotters::coord::Shift;
use plotters::prelude::*;

const FONT: &[u8] = include_bytes!("../../../../assets/fonts/DejaVuSans.ttf");

/// Arguments of `lynx plot`.
#[derive(Debug, Args)]
pub struct PlotArgs {
    /// metrics.jsonl files, one curve each (labelled by their folder, or file name).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Output image: .png or .svg.
    #[arg(long)]
    pub out: PathBuf,
    /// Image width in pixels.
    #[arg(long, default_value_t = 1200)]
    pub width: u32,
    /// Image height in pixels.
    #[arg(long, default_value_t = 900)]
    pub height: u32,
    /// Moving-average window over the loss (1: raw values).
    #[arg(long, default_value_t = 1)]
    pub smooth: usize,
}

/// One run's curves.
struct Run {
    label: String,
    loss: Vec<(f64, f64)>,
    lr: Vec<(f64, f64)>,
}

fn label_for(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent = path.canonicalize().ok().and_then(|p| {
        p.parent()
            .and_then(|d| d.file_name())
            .map(|d| d.to_string_lossy().into_owned())
    });
    match parent {
        Some(dir) if stem == "metrics" => dir,
        _ => stem,
    }
}

fn moving_average(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    if window <= 1 {
        return points.to_vec();
    }
    let mut out = Vec::with_capacity(points.len());
    let mut sum = 0.0;
    for (i, &(x, y)) in points.iter().enumerate() {
        sum += y;
        if i >= window {
            sum -= points[i - window].1;
        }
        out.push((x, sum / (i + 1).min(window) as f64));
    }
    out
}

fn load_runs(args: &PlotArgs) -> anyhow::Result<Vec<Run>> {
    let mut runs: Vec<Run> = Vec::new();
    for path in &args.files {
        let records = read_metrics(path)?;
        let finite = |v: f64| v.is_finite();
        let loss: Vec<(f64, f64)> = records
            .iter()
            .filter(|r| finite(r.loss))
            .map(|r| (r.step as f64, r.loss))
            .collect();
        let lr = records
            .iter()
            .filter(|r| finite(r.lr))
            .map(|r| (r.step as f64, r.lr))
            .collect();
        let mut label = label_for(path);
        if runs.iter().any(|r| r.label == label) {
            label = format!("{label} ({})", runs.len() + 1);
        }
        runs.push(Run {
            label,
            loss: moving_average(&loss, args.smooth),
            lr,
        });
    }
    if runs.iter().all(|r| r.loss.is_empty() && r.lr.is_empty()) {
        bail!("no finite loss or lr values in {} file(s)", runs.len());
    }
    Ok(runs)
}

/// A padded range over all runs' values (`pick` chooses the curve).
fn range(runs: &[Run], pick: impl Fn(&Run) -> &Vec<(f64, f64)>, y: bool) -> (f64, f64) {
    let vals = runs
        .iter()
        .flat_map(|r| pick(r).iter().map(|p| if y { p.1 } else { p.0 }));
    let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        (hi - lo) * 0.05
    } else {
        lo.abs().max(1e-12) * 0.1
    };
    if y {
        (
            (lo - pad).max(if lo >= 0.0 { 0.0 } else { f64::NEG_INFINITY }),
            hi + pad,
        )
    } else {
        (lo, if hi > lo { hi } else { lo + 1.0 })
    }
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    runs: &[Run],
    title: &str,
    pick: impl Fn(&Run) -> &Vec<(f64, f64)> + Copy,
    scientific: bool,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let (x0, x1) = range(runs, pick, false);
    let (y0, y1) = range(runs, pick, true);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    // Enough decimals to tell ticks apart (about 8 per axis).
    let decimals = (-((y1 - y0) / 8.0).log10()).ceil().clamp(0.0, 6.0) as usize;
    let fmt_y = move |v: &f64| {
        if scientific {
            format!("{v:.1e}")
        } else {
            format!("{v:.decimals$}")
        }
    };
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(title)
        .y_label_formatter(&fmt_y)
        .x_label_formatter(&|v: &f64| format!("{v:.0}"))
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, run) in runs.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points = pick(run).clone();
        chart
            .draw_series(std::iter::once(PathElement::new(
                points,
                color.stroke_width(2),
            )))?
            .label(run.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, runs: &[Run]) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let panels = root.split_evenly((2, 1));
    panel(&panels[0], runs, "loss", |r| &r.loss, false)?;
    panel(&panels[1], runs, "lr", |r| &r.lr, true)?;
    root.present()?;
    Ok(())
}

/// Runs `lynx plot`.
pub fn run(args: PlotArgs) -> anyhow::Result<()> {
    let runs = load_runs(&args)?;
    let ext = args
        .out
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let size = (args.width.max(200), args.height.max(200));
    // Both backends measure text with the font (the PNG one also draws it).
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow::anyhow!("the embedded font could not be read"))?;
    match ext.as_str() {
        "png" => draw(
            BitMapBackend::new(&args.out, size).into_drawing_area(),
            &runs,
        ),
        "svg" => draw(SVGBackend::new(&args.out, size).into_drawing_area(), &runs),
        _ => bail!("--out {}: use a .png or .svg file name", args.out.display()),
    }
    .with_context(|| format!("drawing {}", args.out.display()))?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lynx::train::metrics::{MetricsLog, MetricsRecord};

    fn write_run(dir: &Path, name: &str, steps: u64, scale: f64) -> PathBuf {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        let mut log = MetricsLog::create(&d).unwrap();
        let sched = lynx::train::schedule::LrSchedule {
            lr: 1e-4,
            min_lr: 1e-6,
            warmup_steps: 10,
            max_steps: steps,
        };
        for t in 1..=steps {
            let loss = scale * (3.0 / (1.0 + t as f64 / 20.0)) + 0.05 * ((t as f64) * 0.7).sin();
            log.log(&MetricsRecord::new(t, loss, sched.lr(t)).with("grad_norm", 1.0))
                .unwrap();
        }
        log.path().to_path_buf()
    }

    fn args(files: Vec<PathBuf>, out: PathBuf) -> PlotArgs {
        PlotArgs {
            files,
            out,
            width: 900,
            height: 700,
            smooth: 5,
        }
    }

    #[test]
    fn png_with_two_runs_is_a_real_image() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_run(dir.path(), "run-a", 120, 1.0);
        let b = write_run(dir.path(), "run-b", 80, 1.3);
        let out = dir.path().join("curves.png");
        run(args(vec![a, b], out.clone())).unwrap();
        let img = image::open(&out).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (900, 700));
        // Curves in both palette colours and dark text pixels are there; the rest is white.
        let count = |c: [u8; 3]| img.pixels().filter(|p| p.0 == c).count();
        let c0 = Palette99::pick(0).to_rgba();
        let c1 = Palette99::pick(1).to_rgba();
        assert!(
            count([c0.0, c0.1, c0.2]) > 200,
            "first run's colour missing"
        );
        assert!(
            count([c1.0, c1.1, c1.2]) > 200,
            "second run's colour missing"
        );
        let dark = img.pixels().filter(|p| p.0.iter().all(|&v| v < 80)).count();
        assert!(dark > 1000, "text and axes missing ({dark} dark pixels)");
        assert!(count([255, 255, 255]) > (900 * 700) / 2);
    }

    #[test]
    fn svg_names_the_runs_and_panels() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_run(dir.path(), "baseline", 30, 1.0);
        let b = write_run(dir.path(), "no-diverse-prompts", 30, 1.1);
        let out = dir.path().join("curves.svg");
        run(args(vec![a, b], out.clone())).unwrap();
        let svg = std::fs::read_to_string(&out).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60]);
        let texts: Vec<&str> = svg
            .split("<text")
            .skip(1)
            .filter_map(|t| {
                t.split_once('>')
                    .and_then(|(_, rest)| rest.split("</text>").next())
            })
            .map(str::trim)
            .collect();
        for text in ["baseline", "no-diverse-prompts", "loss", "lr", "step"] {
            assert!(texts.contains(&text), "missing {text} in {texts:?}");
        }
        assert!(
            svg.matches("<polyline").count() >= 4,
            "two curves per panel"
        );
    }

    #[test]
    fn bad_inputs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_run(dir.path(), "x", 5, 1.0);
        let e = run(args(vec![a.clone()], dir.path().join("c.jpg")))
            .unwrap_err()
            .to_string();
        assert!(e.contains(".png or .svg"), "{e}");
        let bad = dir.path().join("bad.jsonl");
        std::fs::write(
            &bad,
            "{\"step\":1,\"loss\":1,\"lr\":1}\n[]\n{\"step\":2,\"loss\":1,\"lr\":1}\n",
        )
        .unwrap();
        let e = format!(
            "{:#}",
            run(args(vec![bad], dir.path().join("c.png"))).unwrap_err()
        );
        assert!(e.contains("bad.jsonl:2"), "{e}");
        assert_eq!(
            moving_average(&[(1.0, 2.0), (2.0, 4.0), (3.0, 6.0)], 2),
            vec![(1.0, 2.0), (2.0, 3.0), (3.0, 5.0)]
        );
    }
}
