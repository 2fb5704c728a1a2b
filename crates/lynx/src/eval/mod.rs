//! Evaluation (paper Section 3.1): Open-VQA, MME, OwlEval.
