//! `lynx eval`: Open-VQA scoring with the rule or LLM judge and the paper's tables (Section
//! 3.1, Tables 1 and 2), MME answering and scoring in MME's official results format, OwlEval
//! answering for the human rating (`lynx rate serve`), dataset losses (`eval_loss.rs`) and
//! linear probes of the vision and bridge tokens (`eval_probe.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use lynx::eval::{self, mme, LlmJudge, LlmJudgeConfig, OpenVqaReport, OwlEvalOptions, RuleJudge};
use lynx::pipeline::{Media, Request};

use super::model_args::ModelArgs;

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
    /// Score MME results files (<subtask>.txt), answering MME's questions first with --root.
    Mme(MmeArgs),
    /// Answer OwlEval's questions (padded images, dialogues in order) into an answer file.
    Owleval(OwlEvalArgs),
    /// Teacher-forced loss per reply token of a model on training-format datasets.
    Loss(super::eval_loss::LossArgs),
    /// Linear probes: what the vision and bridge tokens hold about a generated world's scenes.
    Probe(super::eval_probe::ProbeArgs),
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
    /// The model that answers (with --root).
    #[command(flatten)]
    pub model: ModelArgs,
}

#[derive(Debug, Args)]
pub struct OwlEvalArgs {
    /// OwlEval's questions.jsonl (image, question_id, question, ability, category).
    #[arg(long)]
    pub questions: PathBuf,
    /// The folder of the images the questions name (OwlEval's cases/).
    #[arg(long)]
    pub images: PathBuf,
    /// The answer file to write (JSONL: image, question_id, question, answer, model_id).
    #[arg(long)]
    pub out: PathBuf,
    /// The model_id written on every answer (the name annotators' reports use).
    #[arg(long, default_value = "lynx")]
    pub model_id: String,
    /// Pixels of border added on each side of every image, as the paper does; 0: none.
    #[arg(long, default_value_t = lynx::eval::owleval::DEFAULT_PAD)]
    pub pad: u32,
    /// Border colour: white, black, gray, #rrggbb or r,g,b.
    #[arg(long, default_value = "white")]
    pub pad_color: String,
    /// Keep the answers already in --out and answer only the other questions.
    #[arg(long)]
    pub resume: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Runs `lynx eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    match args.command {
        EvalCommand::OpenVqa(a) => open_vqa(a),
        EvalCommand::Mme(a) => mme_cmd(a),
        EvalCommand::Owleval(a) => owleval(a),
        EvalCommand::Loss(a) => super::eval_loss::run(a),
        EvalCommand::Probe(a) => super::eval_probe::run(a),
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

pub(crate) fn write_file(path: &Path, text: &str) -> Result<()> {
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
        answer_mme(root, &a.results, &a.model)?;
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

/// Answers MME's questions under `root` into `results` with the model (resumable: questions
/// already in the results files are skipped).
fn answer_mme(root: &Path, results: &Path, model: &ModelArgs) -> Result<()> {
    // Layout errors first: they need no model.
    let subtasks = eval::discover(root)?;
    let n: usize = subtasks.iter().map(|s| s.items.len()).sum();
    eprintln!(
        "mme: {}: {} subtasks with {n} questions",
        root.display(),
        subtasks.len()
    );
    let engine = model.load()?;
    let gen = engine.generation_config();
    let mut rng = engine.rng();
    // Both questions of an image come one after the other: preprocess the image once.
    let mut last: Option<(PathBuf, Media)> = None;
    let mut answer = |image: &Path, question: &str| -> lynx::Result<String> {
        let media = match &last {
            Some((p, m)) if p == image => m.clone(),
            _ => {
                let px = engine.media_pixels(&Media::Image(image.to_path_buf()), &mut rng)?;
                let m = Media::ImagePixels(px);
                last = Some((image.to_path_buf(), m.clone()));
                m
            }
        };
        let req = Request {
            media: Some(media),
            history: Vec::new(),
            question: question.to_string(),
        };
        let a = engine.answer(std::slice::from_ref(&req), &gen, &mut rng)?;
        Ok(a.into_iter().next().map(|a| a.text).unwrap_or_default())
    };
    let s = eval::run_mme(root, results, &mut answer, true)
        .with_context(|| format!("answering MME into {}", results.display()))?;
    eprintln!(
        "mme: {} subtasks, {} questions answered, {} already in {}",
        s.subtasks,
        s.answered,
        s.skipped,
        results.display()
    );
    Ok(())
}

fn owleval(a: OwlEvalArgs) -> Result<()> {
    let pad_color = eval::parse_color(&a.pad_color)?;
    if a.model_id.trim().is_empty() {
        bail!("--model-id must not be empty");
    }
    let engine = a.model.load()?;
    let opts = OwlEvalOptions {
        model_id: a.model_id.trim().to_string(),
        pad: a.pad,
        pad_color,
        resume: a.resume,
        progress: true,
        ..OwlEvalOptions::new(&a.questions, &a.images, &a.out)
    };
    let s = eval::run_owleval(&engine, &engine.generation_config(), &opts)?;
    eprintln!(
        "owleval: {} questions: {} answered, {} already in {}, {} failed",
        s.questions,
        s.answered,
        s.skipped,
        a.out.display(),
        s.failed.len()
    );
    if !s.truncated.is_empty() {
        let mut ids = s.truncated.clone();
        ids.sort_unstable();
        eprintln!(
            "warning: {} prompt(s) were longer than max_input_tokens = {} and lost their start, \
             as in the release (for a later turn: the start of the dialogue so far), question \
             ids {ids:?}; raise the limit with --set max_input_tokens=N",
            ids.len(),
            engine.yaml.max_input_tokens,
        );
    }
    if !s.failed.is_empty() {
        for f in &s.failed {
            eprintln!("error: {f}");
        }
        bail!(
            "{} question(s) could not be answered (listed above); the other answers are in {} \
             (run again with --resume to answer only the missing ones)",
            s.failed.len(),
            a.out.display()
        );
    }
    Ok(())
}
