//! `lynx eval`: Open-VQA scoring with the rule or LLM judge and the paper's tables (Section
//! 3.1, Tables 1 and 2), and MME scoring from MME's official results format.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use lynx::eval::{self, mme, LlmJudge, LlmJudgeConfig, OpenVqaReport, RuleJudge};

/// `lynx eval ...`
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub command: EvalCommand,
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Score Open-VQA predictions with a rule or LLM judge, or tabulate reports (--compare).
    OpenVqa(OpenVqaArgs),
    /// Score MME results files (<subtask>.txt), or answer MME's questions (--root).
    Mme(MmeArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum JudgeKind {
    /// Offline string rule (normalised containment of the ground truth).
    Rule,
    /// An OpenAI-compatible chat model prompted as in the paper.
    Llm,
}

#[derive(Debug, Args)]
pub struct OpenVqaArgs {
    /// Open-VQA annotation JSONL (index, question, answer, class).
    #[arg(long, required_unless_present = "compare")]
    pub annotations: Option<PathBuf>,
    /// Predictions JSONL (index, text_output).
    #[arg(long, required_unless_present = "compare")]
    pub predictions: Option<PathBuf>,
    /// Who decides whether an answer implies the ground truth.
    #[arg(long, value_enum, required_unless_present = "compare")]
    pub judge: Option<JudgeKind>,
    /// OpenAI-compatible base URL (requests go to BASE/chat/completions); the bearer key is
    /// read from OPENAI_API_KEY when set.
    #[arg(long, default_value = "https://api.openai.com/v1")]
    pub judge_url: String,
    /// Judge model name.
    #[arg(long, default_value = "gpt-4")]
    pub judge_model: String,
    /// Judge requests in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Retries of a failed judge request (connection errors, timeouts, HTTP 429/5xx).
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// Wait before the first retry in milliseconds; doubled for each further retry.
    #[arg(long, default_value_t = 1000)]
    pub backoff_ms: u64,
    /// Limit for one judge request, in seconds.
    #[arg(long, default_value_t = 120.0)]
    pub timeout_s: f64,
    /// Verdict cache (JSONL, appended); default $XDG_CACHE_HOME/lynx/judge-cache.jsonl.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Row label in tables; default the predictions file's stem.
    #[arg(long)]
    pub name: Option<String>,
    /// Write the report JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write the markdown table here (it is printed to stdout in any case).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Report JSONs to put in one table (one row each) instead of scoring.
    #[arg(long, num_args = 1.., conflicts_with_all = ["annotations", "predictions", "judge", "out"])]
    pub compare: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MmeArgs {
    /// Folder of MME results files, one <subtask>.txt per subtask (written when --root is given).
    #[arg(long)]
    pub results: PathBuf,
    /// MME_Benchmark_release_version folder: answer its questions into --results first.
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Write the report JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `lynx eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    match args.command {
        EvalCommand::OpenVqa(a) => open_vqa(a),
        EvalCommand::Mme(a) => mme_cmd(a),
    }
}

fn default_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    match base {
        Some(b) => b.join("lynx").join("judge-cache.jsonl"),
        None => PathBuf::from(".lynx-judge-cache.jsonl"),
    }
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

const MAX_WARNINGS: usize = 50;

fn open_vqa(a: OpenVqaArgs) -> Result<()> {
    if !a.compare.is_empty() {
        let mut reports = Vec::new();
        for p in &a.compare {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            let r: OpenVqaReport = serde_json::from_str(&text)
                .with_context(|| format!("{}: not an Open-VQA report", p.display()))?;
            reports.push(r);
        }
        let md = eval::markdown(&reports);
        print!("{md}");
        if let Some(p) = &a.markdown {
            write_file(p, &md)?;
        }
        return Ok(());
    }
    let (Some(ann), Some(pred), Some(kind)) = (&a.annotations, &a.predictions, a.judge) else {
        bail!("--annotations, --predictions and --judge are required unless --compare is given");
    };
    let name = a.name.clone().unwrap_or_else(|| {
        pred.file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "model".into())
    });
    let run = match kind {
        JudgeKind::Rule => eval::score_files(ann, pred, &mut RuleJudge, &name)?,
        JudgeKind::Llm => {
            if !(a.timeout_s > 0.0 && a.timeout_s.is_finite()) {
                bail!("--timeout-s must be a positive number of seconds");
            }
            let cache_path = a.cache.clone().unwrap_or_else(default_cache);
            let mut judge = LlmJudge::new(LlmJudgeConfig {
                base_url: a.judge_url.clone(),
                model: a.judge_model.clone(),
                api_key: std::env::var("OPENAI_API_KEY")
                    .ok()
                    .filter(|k| !k.is_empty()),
                concurrency: a.concurrency.max(1),
                retries: a.retries,
                backoff: Duration::from_millis(a.backoff_ms),
                timeout: Duration::from_secs_f64(a.timeout_s),
                cache_path: cache_path.clone(),
                progress: true,
            })?;
            let run = eval::score_files(ann, pred, &mut judge, &name);
            if run.is_ok() {
                eprintln!(
                    "judge {}: {} requests sent, the other verdicts came from {}",
                    judge.url(),
                    judge.sent,
                    cache_path.display()
                );
            } else {
                eprintln!(
                    "judge {}: the {} verdicts received before the error are kept in {}",
                    judge.url(),
                    judge.sent,
                    cache_path.display()
                );
            }
            run?
        }
    };
    for w in run.warnings.iter().take(MAX_WARNINGS) {
        eprintln!("warning: {w}");
    }
    if run.warnings.len() > MAX_WARNINGS {
        eprintln!(
            "warning: ... and {} more (all indices are in the report)",
            run.warnings.len() - MAX_WARNINGS
        );
    }
    let r = &run.report;
    let problems = [
        ("missing", r.missing.len()),
        ("extra", r.extra.len()),
        ("duplicate", r.duplicates.len()),
        ("empty", r.empty.len()),
        ("unparseable", r.unparseable),
    ];
    let problems: Vec<String> = problems
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(w, n)| format!("{n} {w}"))
        .collect();
    if !problems.is_empty() {
        eprintln!("input problems (counted as wrong): {}", problems.join(", "));
    }
    let md = eval::markdown(std::slice::from_ref(r));
    print!("{md}");
    let (c, t) = r.totals();
    println!(
        "overall {c}/{t} = {:.2}% ({} judge{})",
        r.overall,
        r.judge,
        r.judge_model
            .as_ref()
            .map(|m| format!(" {m}"))
            .unwrap_or_default()
    );
    if let Some(p) = &a.out {
        write_file(p, &serde_json::to_string_pretty(r)?)?;
    }
    if let Some(p) = &a.markdown {
        write_file(p, &md)?;
    }
    Ok(())
}

fn mme_cmd(a: MmeArgs) -> Result<()> {
    if let Some(root) = &a.root {
        let subtasks = eval::discover(root)?;
        let n: usize = subtasks.iter().map(|s| s.items.len()).sum();
        bail!(
            "{}: found {} MME subtasks with {n} questions, but `lynx eval mme --root` cannot \
             answer them yet: the Lynx model is not connected to this command (the library's \
             lynx::eval::run_mme is ready for it). Score existing results with --results alone.",
            root.display(),
            subtasks.len()
        );
    }
    let r = eval::score_results_dir(&a.results)?;
    for s in &r.missing_subtasks {
        eprintln!(
            "warning: {}: no {s}.txt, subtask left out of the sums",
            a.results.display()
        );
    }
    for f in &r.ignored_files {
        eprintln!(
            "warning: {}: {f} is not an MME subtask, ignored",
            a.results.display()
        );
    }
    for (title, names, total, max) in [
        ("Perception", &mme::PERCEPTION[..], r.perception, 2000),
        ("Cognition", &mme::COGNITION[..], r.cognition, 800),
    ] {
        println!("{title}: {total:.2} / {max}");
        for name in names {
            if let Some(s) = r.subtasks.get(*name) {
                println!(
                    "  {name:<24} acc {:>6.2}  acc+ {:>6.2}  score {:>6.2}{}",
                    s.acc,
                    s.acc_plus,
                    s.score,
                    if s.other > 0 {
                        format!("  ({} other answers)", s.other)
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
    if let Some(p) = &a.out {
        write_file(p, &serde_json::to_string_pretty(&r)?)?;
    }
    Ok(())
}
