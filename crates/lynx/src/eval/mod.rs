//! Evaluation (paper Section 3.1): Open-VQA with a rule or LLM judge, MME scoring and running,
//! OwlEval answering, the paper's result tables, the teacher-forced loss of a dataset, and
//! linear probes of what a model's vision and bridge tokens hold about a generated world.

pub mod judge;
pub mod loss;
pub mod mme;
pub mod mme_run;
pub mod open_vqa;
pub mod owleval;
pub mod owleval_run;
pub mod probe;
pub mod report;
pub mod rule_judge;
pub mod scoring;

pub use judge::{judge_prompt, parse_verdict, JudgeCache, LlmJudge, LlmJudgeConfig};
pub use loss::{dataset_loss, loss_table, DatasetLoss, LossOptions};
pub use mme::{score_results_dir, MmeReport, SubtaskScore};
pub use mme_run::{discover, run_mme, MmeItem, MmeRunSummary, MmeSubtask};
pub use open_vqa::{load_annotations, load_predictions, Annotation, Prediction, SampleIndex};
pub use owleval::{
    dialogue_request, dialogues, load_padded, load_questions, pad_image, parse_color, Dialogue,
    OwlAnswer, OwlQuestion,
};
pub use owleval_run::{read_answers, run_owleval, OwlEvalOptions, OwlEvalSummary, QuestionError};
pub use probe::{probe_scenes, probe_table, ProbeOptions, ProbeReport};
pub use report::{agreement, markdown, Agreement};
pub use rule_judge::RuleJudge;
pub use scoring::{
    score, score_files, ClassScore, ItemVerdict, Judge, JudgeOutcome, JudgeQuery, OpenVqaReport,
    OpenVqaRun, Status,
};
