//! The OwlEval human evaluation of the paper's Section 3.1 as a web app: annotators score every
//! model's answer 1-5 under the paper's tie rules (`lynx rate serve`), and the report averages
//! the scores per model as in the paper's Figure 4 (`lynx rate report`).

pub mod answers;
pub mod api;
pub mod db;
mod render;
pub mod report;
pub mod rules;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use answers::{AnswerSet, Question};
pub use report::Report;
pub use rules::{Rules, Violation};

use crate::{Error, Result};

/// What `lynx rate serve` is started with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// OwlEval answer files (JSONL), one or more models each.
    pub answers: Vec<PathBuf>,
    /// Optional OwlEval `questions.jsonl`: the question texts and images to show.
    pub questions: Option<PathBuf>,
    /// Optional folder with the images (OwlEval's `cases/`).
    pub images: Option<PathBuf>,
    /// The SQLite ratings database (created if missing).
    pub db: PathBuf,
}

/// A loaded rating run, ready to serve.
pub struct RatingApp {
    state: Arc<api::AppState>,
}

impl RatingApp {
    /// Reads and checks the answer files, then opens the database, with the paper's rules.
    pub fn open(config: &ServeConfig) -> Result<RatingApp> {
        let rules = Rules::PAPER;
        let set = AnswerSet::load(
            &config.answers,
            config.questions.as_deref(),
            config.images.as_deref(),
        )?;
        if set.models.len() > rules.max_models() {
            return Err(Error::Invalid(format!(
                "{} models cannot be scored {}-{} with at most {} sharing a score; rate at most {} at once",
                set.models.len(),
                rules.min_score,
                rules.max_score,
                rules.max_tied_models,
                rules.max_models()
            )));
        }
        let db = db::Db::open(&config.db, &set.models, &set.question_ids(), &rules)?;
        Ok(RatingApp {
            state: Arc::new(api::AppState { set, db, rules }),
        })
    }

    /// The questions and answers being rated.
    pub fn answers(&self) -> &AnswerSet {
        &self.state.set
    }

    /// The HTTP routes (for embedding in another server).
    pub fn router(&self) -> axum::Router {
        api::router(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Invalid(format!("listener: {e}")))?;
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| Error::Invalid(format!("serving on {addr}: {e}")))
    }

    /// Binds `addr`, calls `on_ready` with the bound address and serves until Ctrl-C.
    pub fn run(self, addr: SocketAddr, on_ready: impl FnOnce(SocketAddr)) -> Result<()> {
        let runtime = runtime()?;
        runtime.block_on(async move {
            let listener = bind(addr).await?;
            let bound = listener
                .local_addr()
                .map_err(|e| Error::Invalid(format!("{addr}: {e}")))?;
            on_ready(bound);
            self.serve(listener, async {
                // If the signal cannot be installed, serve until the process is killed.
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            })
            .await
        })
    }

    /// Serves on `addr` (port 0 picks a free one) from a thread of its own; for tests and tools.
    pub fn spawn(self, addr: SocketAddr) -> Result<RunningServer> {
        let runtime = runtime()?;
        let listener = runtime.block_on(bind(addr))?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::Invalid(format!("{addr}: {e}")))?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(self.serve(listener, async {
                let _ = stopped.await;
            }))
        });
        Ok(RunningServer {
            addr: bound,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// A server started by [`RatingApp::spawn`]; stopped on drop.
pub struct RunningServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl RunningServer {
    /// `http://ADDR` of the server.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits for it to finish.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::Invalid("the server thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start the async runtime: {e}")))
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Invalid(format!("cannot listen on {addr}: {e}")))
}
