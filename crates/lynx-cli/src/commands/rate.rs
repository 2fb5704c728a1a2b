//! `lynx rate`: the OwlEval human evaluation of the paper's Section 3.1 (`serve`: the rating web
//! page for annotators) and its Figure 4 (`report`: mean score per model, table and bar chart).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use clap::{Args, Subcommand};
use lynx_serve::rating::{RatingApp, Report, ServeConfig};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Text in PNG charts is drawn with this font so that no system font is needed.
const FONT: &[u8] = include_bytes!("../../../../assets/fonts/DejaVuSans.ttf");
const CHART_SIZE: (u32, u32) = (1000, 560);

/// Rate model answers on OwlEval with people, and report the scores.
#[derive(Debug, Args)]
pub struct RateArgs {
    #[command(subcommand)]
    pub command: RateCommand,
}

#[derive(Debug, Subcommand)]
pub enum RateCommand {
    /// Serve the rating page: annotators score every model's answer 1-5 under the paper's rules.
    Serve(ServeArgs),
    /// Average score per model (the paper's Figure 4), chart and inter-annotator agreement.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// OwlEval answer files (JSONL: image, question_id, question, answer, model_id).
    #[arg(long, num_args = 1.., required = true)]
    pub answers: Vec<PathBuf>,
    /// The SQLite ratings database (created if missing; reopen it to resume).
    #[arg(long)]
    pub db: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Folder with the question images (OwlEval's `cases/`).
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// OwlEval `questions.jsonl`: question texts and images shown instead of the answer files'.
    #[arg(long)]
    pub questions: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The ratings database written by `lynx rate serve`.
    #[arg(long)]
    pub db: PathBuf,
    /// Folder for report.md, scores.png and scores.svg [default: DB-STEM-report beside the db].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `lynx rate ...`.
pub fn run(args: RateArgs) -> anyhow::Result<()> {
    match args.command {
        RateCommand::Serve(a) => serve(a),
        RateCommand::Report(a) => report(a),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = ServeConfig {
        answers: args.answers,
        questions: args.questions,
        images: args.images,
        db: args.db,
    };
    let app = RatingApp::open(&config)?;
    let (models, questions) = (app.answers().models.len(), app.answers().questions.len());
    app.run(SocketAddr::new(args.host, args.port), |addr| {
        eprintln!(
            "rating {questions} questions x {models} models; ratings in {}\nopen http://{addr}/ (Ctrl-C stops)",
            config.db.display()
        );
    })?;
    Ok(())
}

fn report(args: ReportArgs) -> anyhow::Result<()> {
    let report = Report::load(&args.db)?;
    print!("{}", report.to_text());
    let out = args.out.unwrap_or_else(|| default_out(&args.db));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let md = out.join("report.md");
    std::fs::write(&md, report.to_markdown())
        .with_context(|| format!("writing {}", md.display()))?;
    let (png, svg) = (out.join("scores.png"), out.join("scores.svg"));
    write_charts(&report, &png, &svg)?;
    eprintln!(
        "wrote {}, {} and {}",
        md.display(),
        png.display(),
        svg.display()
    );
    Ok(())
}

fn default_out(db: &Path) -> PathBuf {
    let stem = db
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ratings".into());
    db.with_file_name(format!("{stem}-report"))
}

/// Draws the mean score per model as a bar chart into a PNG and an SVG file.
pub fn write_charts(report: &Report, png: &Path, svg: &Path) -> anyhow::Result<()> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow!("the embedded DejaVu Sans font cannot be read"))?;
    let (w, h) = CHART_SIZE;
    let mut pixels = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, CHART_SIZE).into_drawing_area();
        draw(&root, report).map_err(|e| anyhow!("drawing {}: {e}", png.display()))?;
    }
    image::RgbImage::from_raw(w, h, pixels)
        .ok_or_else(|| anyhow!("chart buffer has the wrong size"))?
        .save(png)
        .with_context(|| format!("writing {}", png.display()))?;
    let root = SVGBackend::new(svg, CHART_SIZE).into_drawing_area();
    draw(&root, report).map_err(|e| anyhow!("drawing {}: {e}", svg.display()))?;
    Ok(())
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw<B: DrawingBackend>(root: &DrawingArea<B, Shift>, report: &Report) -> DrawResult
where
    B::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let n = report.models.len();
    let names: Vec<String> = report.models.iter().map(|m| m.model.clone()).collect();
    let caption = format!(
        "OwlEval human evaluation: mean score over {} questions, {} annotator{}",
        report.total_questions,
        report.annotators.len(),
        if report.annotators.len() == 1 {
            ""
        } else {
            "s"
        }
    );
    let mut chart = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(56)
        // A segmented range over 0..=last gives one segment per model.
        .build_cartesian_2d((0..n.saturating_sub(1)).into_segmented(), 0.0f64..5.0)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(TRANSPARENT)
        .x_labels(n.max(1))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_label_style(("sans-serif", 15))
        .y_desc("mean score (1-5)")
        .y_label_style(("sans-serif", 15))
        .draw()?;
    let bar = RGBColor(0x24, 0x56, 0xa6);
    let height = |m: f64| if m.is_finite() { m } else { 0.0 };
    chart.draw_series(report.models.iter().enumerate().map(|(i, m)| {
        let mut r = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), height(m.mean)),
            ],
            bar.filled(),
        );
        r.set_margin(0, 0, 14, 14);
        r
    }))?;
    let label = ("sans-serif", 16)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Center, VPos::Bottom));
    chart.draw_series(report.models.iter().enumerate().map(|(i, m)| {
        let text = if m.mean.is_finite() {
            format!("{:.2}", m.mean)
        } else {
            "n/a".into()
        };
        Text::new(
            text,
            (SegmentValue::CenterOf(i), height(m.mean) + 0.06),
            label.clone(),
        )
    }))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lynx_serve::rating::Rules;

    fn crafted() -> Report {
        let models = ["alpha".to_string(), "beta".to_string(), "gamma".to_string()];
        let annotators = ["ann".to_string(), "bob".to_string()];
        let mut ratings = Vec::new();
        for q in 1..=4i64 {
            ratings.push((0, q, "alpha".to_string(), 5));
            ratings.push((0, q, "beta".to_string(), 3));
            ratings.push((0, q, "gamma".to_string(), 1));
            ratings.push((1, q, "alpha".to_string(), 4));
            ratings.push((1, q, "beta".to_string(), 2));
            ratings.push((1, q, "gamma".to_string(), 1));
        }
        Report::from_ratings(&models, 4, &Rules::PAPER, &annotators, &ratings)
    }

    #[test]
    fn charts_have_bars_and_text() {
        let dir = tempfile::tempdir().unwrap();
        let (png, svg) = (dir.path().join("s.png"), dir.path().join("s.svg"));
        let report = crafted();
        write_charts(&report, &png, &svg).unwrap();
        let img = image::open(&png).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), CHART_SIZE);
        let bar = img.pixels().filter(|p| p.0 == [0x24, 0x56, 0xa6]).count();
        assert!(bar > 10_000, "bars are drawn ({bar} bar pixels)");
        // The caption band above the plot holds only text: dark pixels there are glyphs.
        let glyphs = (0..CHART_SIZE.0)
            .flat_map(|x| (0..40).map(move |y| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&c| c < 100))
            .count();
        assert!(
            glyphs > 200,
            "the caption is rendered with the embedded font ({glyphs} dark pixels)"
        );
        let svg = std::fs::read_to_string(&svg).unwrap();
        for needle in [
            "alpha",
            "beta",
            "gamma",
            "4.50",
            "2.50",
            "1.00",
            "mean score (1-5)",
        ] {
            assert!(svg.contains(needle), "svg lacks {needle}");
        }
    }

    #[test]
    fn report_goes_beside_the_db_by_default() {
        assert_eq!(
            default_out(Path::new("/x/ratings.sqlite")),
            PathBuf::from("/x/ratings-report")
        );
    }

    #[test]
    fn serve_defaults_to_localhost() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            rate: RateCommand,
        }
        let cli = Cli::try_parse_from([
            "lynx",
            "serve",
            "--answers",
            "a.jsonl",
            "b.jsonl",
            "--db",
            "r.sqlite",
        ])
        .unwrap();
        let RateCommand::Serve(s) = cli.rate else {
            panic!("not serve")
        };
        assert_eq!(s.host, IpAddr::from([127, 0, 0, 1]));
        assert_eq!(s.port, 8080);
        assert_eq!(
            s.answers,
            vec![PathBuf::from("a.jsonl"), PathBuf::from("b.jsonl")]
        );
    }
}
