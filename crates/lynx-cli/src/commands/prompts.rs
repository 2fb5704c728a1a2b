//! `lynx prompts check|expand`: validate prompt templates, or have an OpenAI-compatible chat
//! server write 15 more per task with the paper's meta-prompt (Section 2.4).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use lynx::data::prompts::{expand_templates, ExpandOptions, PromptTemplates};

/// Prompt templates per task (YAML `{TASK: [template, ...]}`).
#[derive(Debug, Args)]
pub struct PromptsArgs {
    #[command(subcommand)]
    pub command: PromptsCommand,
}

#[derive(Debug, Subcommand)]
pub enum PromptsCommand {
    /// Validate a templates file and list its tasks.
    Check {
        /// The templates file.
        file: PathBuf,
    },
    /// Ask an LLM for 15 more templates per task (paper 2.4 meta-prompt) and write them out.
    Expand {
        /// Input templates (at least 3 per task; the first 3 go into the meta-prompt).
        #[arg(long)]
        templates: PathBuf,
        /// Output file: the input templates plus up to 15 new, deduplicated ones per task.
        #[arg(long)]
        out: PathBuf,
        /// OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 (bearer token from
        /// OPENAI_API_KEY when set).
        #[arg(long)]
        url: String,
        /// Model name sent in the request.
        #[arg(long)]
        model: String,
        /// Expand only this task (the others are copied unchanged).
        #[arg(long)]
        task: Option<String>,
        /// Sampling temperature sent in the request (server default when absent).
        #[arg(long)]
        temperature: Option<f64>,
        /// Retries after a failed request (transport errors, HTTP 429 and 5xx).
        #[arg(long, default_value_t = 3)]
        retries: u32,
        /// Timeout of one request, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
}

/// Runs `lynx prompts ...`.
pub fn run(args: PromptsArgs) -> anyhow::Result<()> {
    match args.command {
        PromptsCommand::Check { file } => {
            let p = PromptTemplates::load(&file)?;
            for t in p.tasks() {
                let q = if t.has_question {
                    " (with {question})"
                } else {
                    ""
                };
                println!("{}: {} templates{q}", t.name, t.templates.len());
            }
            Ok(())
        }
        PromptsCommand::Expand {
            templates,
            out,
            url,
            model,
            task,
            temperature,
            retries,
            timeout,
        } => {
            let input = PromptTemplates::load(&templates)?;
            let opts = ExpandOptions {
                url,
                model,
                api_key: std::env::var("OPENAI_API_KEY")
                    .ok()
                    .filter(|k| !k.is_empty()),
                task,
                temperature,
                retries,
                retry_backoff: Duration::from_secs(1),
                timeout: Duration::from_secs(timeout),
            };
            let (expanded, _) = expand_templates(&input, &opts, |r| {
                eprintln!("{}: {} returned, {} added", r.task, r.returned, r.added);
            })?;
            let yaml = expanded.to_yaml()?;
            lynx::train::atomic::write_atomic(&out, yaml.as_bytes())
                .with_context(|| format!("writing {}", out.display()))?;
            eprintln!("wrote {}", out.display());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};

    /// Answers one chat request on 127.0.0.1 with `content`; returns the base URL.
    fn one_shot_server(content: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/v1", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut len = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if line.trim().is_empty() {
                    break;
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let reply =
                serde_json::json!({"choices": [{"message": {"content": content}}]}).to_string();
            let mut s = reader.into_inner();
            write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            )
            .unwrap();
            String::from_utf8(body).unwrap()
        });
        (base, handle)
    }

    #[test]
    fn expand_writes_the_merged_file() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.yaml");
        std::fs::write(
            &input,
            "caption:\n  - Describe it.\n  - Caption it.\n  - What is this?\n",
        )
        .unwrap();
        let (url, server) =
            one_shot_server("4) Summarise the image.\n5) Describe it\n6) Give a one-line caption.");
        let out = dir.path().join("out.yaml");
        run(PromptsArgs {
            command: PromptsCommand::Expand {
                templates: input,
                out: out.clone(),
                url,
                model: "m".into(),
                task: None,
                temperature: Some(0.7),
                retries: 0,
                timeout: 30,
            },
        })
        .unwrap();
        let body: serde_json::Value = serde_json::from_str(&server.join().unwrap()).unwrap();
        assert_eq!(body["temperature"], 0.7);
        let p = PromptTemplates::load(&out).unwrap();
        assert_eq!(
            p.task("caption").unwrap().templates,
            [
                "Describe it.",
                "Caption it.",
                "What is this?",
                "Summarise the image.",
                "Give a one-line caption."
            ]
        );
        run(PromptsArgs {
            command: PromptsCommand::Check { file: out },
        })
        .unwrap();
    }
}
