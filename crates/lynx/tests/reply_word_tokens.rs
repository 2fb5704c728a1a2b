//! Word tokens placed before the reply (`bridge_config.word_token_place: reply`, docs/lm-lookup.md
//! section 6): training and generation read them right after the prompt, and a row without media
//! answers as if they were not there. Checked against the LLM run on each row alone.

mod common;

use candle_core::{DType, Device, Tensor, D};
use common::{
    collate, image_sample, largest, text_sample, tiny_trainable, value, video_sample, Tiny,
};
use lynx::data::datasets::Sample;
use lynx::model::bridge::resampler::{BridgePrompt, WordTokenPlace};
use lynx::model::load::LoadedModel;
use lynx::model::lynx::Lynx;
use lynx::pipeline::{Engine, Media, Request};
use lynx::train::batch::Batch;
use lynx::train::config::LossReduction;
use lynx::train::params::TrainableParams;
use lynx::train::trainer::{
    batch_loss, batch_loss_with, objective_answers, short_word_answer_loss, word_answer_loss,
    word_answer_loss_of, Objective,
};
use lynx::train::word_teacher::{taught_rows, teach_word_tokens};

const WORDS: usize = 2;

/// The tiny fixture with two word tokens placed before the reply; `bridge.word_head` is in no
/// file, so it starts fresh as in a recipe's stage 1.
fn model(dtype: DType) -> Tiny {
    let tiny = tiny_trainable(dtype, |yaml| {
        yaml.bridge_config.word_tokens = WORDS;
        yaml.bridge_config.word_token_place = WordTokenPlace::Reply;
    });
    assert_eq!(tiny.model.reply_bridge_tokens(), WORDS);
    tiny
}

/// An image row, a text-only row and a video row.
fn mixed_batch(tiny: &Tiny) -> Batch {
    let samples: [Sample; 3] = [
        image_sample("a long platform by the red train"),
        text_sample(),
        video_sample(),
    ];
    collate(tiny, &samples, 7, false)
}

/// The LLM on one sequence of embeddings [S, D], all attended: hidden states [S, D].
fn hidden_alone(model: &Lynx, seq: &Tensor) -> Tensor {
    let s = seq.dim(0).unwrap();
    let mask = Tensor::ones((1, s), DType::U32, seq.device()).unwrap();
    model
        .llm()
        .forward_hidden(&seq.unsqueeze(0).unwrap(), &mask, None)
        .unwrap()
        .squeeze(0)
        .unwrap()
}

#[test]
fn training_reads_the_word_tokens_right_before_the_reply() {
    let tiny = model(DType::F64);
    let batch = mixed_batch(&tiny);
    let Tiny {
        cfg, params, model, ..
    } = tiny;
    let loss = batch_loss(&model, &batch, 0.0, LossReduction::Token).unwrap();

    // By hand, one row at a time and without padding: a row with media reads
    // [bridge tokens but the word tokens, prompt, word tokens, reply]; the text-only row reads
    // its text alone.
    let text = model.llm().embed(&batch.ids).unwrap();
    let out = common::bridge_of(&model, &batch);
    assert_eq!(out.media_rows, vec![true, false, true]);
    let l = cfg.bridge.num_bridge_tokens;
    let labels: Vec<u32> = batch.labels.to_vec1().unwrap();
    let lengths: Vec<u32> = batch.text_mask.sum(1).unwrap().to_vec1().unwrap();
    let mut nll = Vec::new();
    for (row, &length) in lengths.iter().enumerate() {
        let targets: Vec<(usize, u32)> = batch
            .targets
            .iter()
            .zip(&labels)
            .filter(|((r, _), _)| *r == row)
            .map(|(&(_, p), &label)| (p, label))
            .collect();
        let first = targets.iter().map(|t| t.0).min().unwrap();
        let words = text
            .get(row)
            .unwrap()
            .narrow(0, 0, length as usize)
            .unwrap();
        let (seq, offset) = if out.media_rows[row] {
            let bridge = out.tokens.get(row).unwrap();
            let n = words.dim(0).unwrap();
            let seq = Tensor::cat(
                &[
                    &bridge.narrow(0, 0, l - WORDS).unwrap(),
                    &words.narrow(0, 0, first + 1).unwrap(),
                    &bridge.narrow(0, l - WORDS, WORDS).unwrap(),
                    &words.narrow(0, first + 1, n - first - 1).unwrap(),
                ],
                0,
            )
            .unwrap();
            (seq, l)
        } else {
            (words, 0)
        };
        let hidden = hidden_alone(&model, &seq);
        for (p, label) in targets {
            let logits = model
                .llm()
                .logits(&hidden.get(offset + p).unwrap().unsqueeze(0).unwrap())
                .unwrap();
            let logp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
            let lp: Vec<f64> = logp.squeeze(0).unwrap().to_vec1().unwrap();
            nll.push(-lp[label as usize]);
        }
    }
    let expect = nll.iter().sum::<f64>() / nll.len() as f64;
    assert!(
        (value(&loss) - expect).abs() < 1e-9,
        "{} vs {expect}",
        value(&loss)
    );

    // The reply loss alone trains the word head through the word tokens, exactly.
    let grads = loss.backward().unwrap();
    let vars = params.vars();
    let head = &vars
        .iter()
        .find(|(n, _)| n == "bridge.word_head.weight")
        .unwrap()
        .1;
    let g = grads
        .get(head.as_tensor())
        .expect("the word head has a gradient");
    let size = largest(g);
    assert!(size > 1e-6, "{size}");
    common::assert_gradient_matches(
        "bridge.word_head.weight",
        head,
        &grads,
        1e-5,
        &[1.0],
        || value(&batch_loss(&model, &batch, 0.0, LossReduction::Token).unwrap()),
    );
}

#[test]
fn generation_reads_the_word_tokens_after_the_prompt() {
    let Tiny {
        yaml, cfg, model, ..
    } = model(DType::F32);
    let engine = Engine::from_parts(
        yaml,
        cfg,
        LoadedModel {
            model,
            unused: Vec::new(),
        },
        common::tokenizer(),
    )
    .unwrap();
    let image = Request {
        media: Some(Media::Image(common::tiny().join("data/images/img_a.jpg"))),
        history: Vec::new(),
        question: "What is in the image?".into(),
    };
    let text_only = Request {
        media: None,
        history: Vec::new(),
        question: "Say hello.".into(),
    };

    // The image request: [bridge tokens but the word tokens, prompt, word tokens].
    let mut rng = engine.rng();
    let (ids, logits) = engine.next_token_logits(&image, &mut rng).unwrap();
    let n = ids.len();
    let id_t = Tensor::from_vec(ids, (1, n), &Device::Cpu).unwrap();
    let text = engine.model.llm().embed(&id_t).unwrap();
    let ones = Tensor::ones((1, n), DType::U32, &Device::Cpu).unwrap();
    let mut rng = engine.rng();
    let px = engine
        .media_pixels(image.media.as_ref().unwrap(), &mut rng)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let out = engine
        .model
        .row_bridge_outputs(
            1,
            Some((&[0], &px)),
            None,
            Some(BridgePrompt {
                embeds: &text,
                mask: &ones,
            }),
        )
        .unwrap();
    let l = engine.model.config().bridge.num_bridge_tokens;
    let bridge = out.tokens.get(0).unwrap();
    let seq = Tensor::cat(
        &[
            &bridge.narrow(0, 0, l - WORDS).unwrap(),
            &text.get(0).unwrap(),
            &bridge.narrow(0, l - WORDS, WORDS).unwrap(),
        ],
        0,
    )
    .unwrap();
    let hidden = hidden_alone(&engine.model, &seq);
    let last = hidden.get(l + n - 1).unwrap().unsqueeze(0).unwrap();
    let expect: Vec<f32> = engine
        .model
        .llm()
        .logits(&last)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec1()
        .unwrap();
    let gap = logits
        .iter()
        .zip(&expect)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(gap < 1e-4, "{gap}");

    // A text-only request answers the same beside an image request as alone: its word tokens
    // are masked out and do not take its last position.
    let gen = {
        let mut g = engine.generation_config();
        g.max_new_tokens = 6;
        g.num_beams = 1;
        g.do_sample = false;
        g
    };
    let alone = engine
        .answer(std::slice::from_ref(&text_only), &gen, &mut engine.rng())
        .unwrap();
    let beside = engine
        .answer(&[image, text_only], &gen, &mut engine.rng())
        .unwrap();
    assert_eq!(alone[0].token_ids, beside[1].token_ids);
    assert!(!alone[0].token_ids.is_empty());
}

/// The gradient of `loss` with respect to `name`, zeros where none reaches it.
fn gradient(params: &TrainableParams, loss: &Tensor, name: &str) -> Tensor {
    let grads = loss.backward().unwrap();
    let vars = params.vars();
    let var = &vars.iter().find(|(n, _)| n == name).unwrap().1;
    match grads.get(var.as_tensor()) {
        Some(g) => g.clone(),
        None => var.as_tensor().zeros_like().unwrap(),
    }
}

fn largest_gap(a: &Tensor, b: &Tensor) -> f64 {
    largest(&(a - b).unwrap())
}

#[test]
fn detached_word_tokens_learn_only_from_the_answer_loss() {
    let tiny = model(DType::F64);
    let batch = mixed_batch(&tiny);
    let Tiny {
        cfg, params, model, ..
    } = tiny;
    let w = 0.3;
    let objective = |detach_word_tokens: bool| Objective {
        bridge_answer: w,
        detach_word_tokens,
        ..Objective::default()
    };
    let attached = batch_loss_with(&model, &batch, &objective(false)).unwrap();
    let detached = batch_loss_with(&model, &batch, &objective(true)).unwrap();
    // The LLM reads the same values either way.
    assert!(
        (value(&attached) - value(&detached)).abs() < 1e-12,
        "{} vs {}",
        value(&attached),
        value(&detached)
    );

    // The word head's gradient is the answer loss's alone once the word tokens are detached.
    let out = common::bridge_of(&model, &batch);
    let answer = word_answer_loss(out.word_logits.as_ref().unwrap(), &batch)
        .unwrap()
        .expect("rows with media and answers");
    let head = "bridge.word_head.weight";
    let from_answer = (gradient(&params, &answer, head) * w).unwrap();
    let scale = largest(&from_answer);
    assert!(scale > 1e-6, "{scale}");
    let gap = largest_gap(&gradient(&params, &detached, head), &from_answer);
    assert!(gap < 1e-9 * scale.max(1.0), "{gap}");
    // Attached, the reply loss reaches the word head as well.
    let gap = largest_gap(&gradient(&params, &attached, head), &from_answer);
    assert!(gap > 1e-6, "{gap}");

    // The word tokens' latents learn from the answer loss alone; the other latents still learn
    // from the reply loss.
    let latents = "bridge.latents";
    let free = cfg.bridge.num_bridge_tokens - WORDS;
    let detached_grad = gradient(&params, &detached, latents);
    let answer_grad = (gradient(&params, &answer, latents) * w).unwrap();
    let word_rows = |g: &Tensor| g.narrow(0, free, WORDS).unwrap();
    let gap = largest_gap(&word_rows(&detached_grad), &word_rows(&answer_grad));
    assert!(gap < 1e-9 * scale.max(1.0), "{gap}");
    let reply_reach = largest(&detached_grad.narrow(0, 0, free).unwrap());
    assert!(reply_reach > 1e-8, "{reply_reach}");
}

#[test]
fn without_the_reply_loss_only_the_answer_loss_trains() {
    let tiny = model(DType::F64);
    let batch = mixed_batch(&tiny);
    let text_only = collate(&tiny, &[text_sample()], 3, false);
    let Tiny { params, model, .. } = tiny;
    let w = 0.7;
    let objective = Objective {
        bridge_answer: w,
        reply: 0.0,
        ..Objective::default()
    };
    let loss = batch_loss_with(&model, &batch, &objective).unwrap();
    let out = common::bridge_of(&model, &batch);
    let answer = word_answer_loss(out.word_logits.as_ref().unwrap(), &batch)
        .unwrap()
        .expect("rows with media and answers");
    assert!(
        (value(&loss) - w * value(&answer)).abs() < 1e-12,
        "{} vs {}",
        value(&loss),
        w * value(&answer)
    );
    let head = "bridge.word_head.weight";
    let from_answer = (gradient(&params, &answer, head) * w).unwrap();
    let scale = largest(&from_answer);
    assert!(scale > 1e-6, "{scale}");
    let gap = largest_gap(&gradient(&params, &loss, head), &from_answer);
    assert!(gap < 1e-9 * scale.max(1.0), "{gap}");
    // Nothing reaches the adapters: the LLM never ran.
    let adapters: Vec<String> = params
        .vars()
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| n.contains("adapter"))
        .collect();
    assert!(!adapters.is_empty());
    for name in &adapters {
        assert_eq!(largest(&gradient(&params, &loss, name)), 0.0, "{name}");
    }

    // Half the reply loss is half of it, plus the same answer loss.
    let full = batch_loss_with(
        &model,
        &batch,
        &Objective {
            bridge_answer: w,
            ..Objective::default()
        },
    )
    .unwrap();
    let half = batch_loss_with(
        &model,
        &batch,
        &Objective {
            bridge_answer: w,
            reply: 0.5,
            ..Objective::default()
        },
    )
    .unwrap();
    let reply = value(&full) - w * value(&answer);
    assert!(
        (value(&half) - (0.5 * reply + w * value(&answer))).abs() < 1e-12,
        "{} vs {}",
        value(&half),
        0.5 * reply + w * value(&answer)
    );

    // A batch without media has no answer loss: zero, and it still backpropagates.
    let zero = batch_loss_with(&model, &text_only, &objective).unwrap();
    assert_eq!(value(&zero), 0.0);
    assert_eq!(largest(&gradient(&params, &zero, head)), 0.0);
}

#[test]
fn the_short_answer_loss_counts_only_answers_that_fit_the_word_tokens() {
    let tiny = model(DType::F64);
    let short = image_sample("red");
    let long = image_sample("a long platform by the red train");
    let batch = collate(
        &tiny,
        &[short.clone(), text_sample(), long.clone()],
        5,
        false,
    );
    let short_alone = collate(&tiny, &[short, text_sample()], 5, false);
    let long_alone = collate(&tiny, &[text_sample(), long], 5, false);
    let Tiny { model, .. } = tiny;
    let logits = |b: &Batch| common::bridge_of(&model, b).word_logits.unwrap();

    // The long answer is left out, and rows are averaged over what is left: the short row's
    // loss, as the full loss computes it on a batch without the long row.
    let short_only = short_word_answer_loss(&logits(&batch), &batch)
        .unwrap()
        .expect("the short answer counts");
    let expect = word_answer_loss(&logits(&short_alone), &short_alone)
        .unwrap()
        .unwrap();
    assert!(
        (value(&short_only) - value(&expect)).abs() < 1e-12,
        "{} vs {}",
        value(&short_only),
        value(&expect)
    );
    let all = word_answer_loss(&logits(&batch), &batch).unwrap().unwrap();
    assert!((value(&all) - value(&short_only)).abs() > 1e-9);
    assert!(short_word_answer_loss(&logits(&long_alone), &long_alone)
        .unwrap()
        .is_none());

    // The training objective picks it with `bridge_answer_short_only`.
    let objective = Objective {
        bridge_answer: 0.5,
        bridge_answer_short_only: true,
        reply: 0.0,
        ..Objective::default()
    };
    let loss = batch_loss_with(&model, &batch, &objective).unwrap();
    assert!((value(&loss) - 0.5 * value(&short_only)).abs() < 1e-12);
}

#[test]
fn teacher_forced_rows_read_their_answer_words() {
    let tiny = model(DType::F64);
    let short = image_sample("red");
    let long = image_sample("a long platform by the red train");
    let batch = collate(&tiny, &[short, text_sample(), long.clone()], 5, false);
    let untaught = collate(&tiny, &[text_sample(), long], 5, false);
    let Tiny { model, .. } = tiny;
    let out = common::bridge_of(&model, &batch);

    // Only the image row with a short answer can be taught; share 0 teaches none.
    let answers = batch.reply_answers().unwrap();
    assert_eq!(
        batch.word_answers(true).unwrap(),
        answers,
        "no short answers given"
    );
    let picked = taught_rows(&answers, &out.media_rows, WORDS, 1.0, 9);
    let words = picked[0].clone().expect("the short answer is taught");
    assert!(picked[1].is_none() && picked[2].is_none(), "{picked:?}");
    let labels: Vec<u32> = batch.labels.to_vec1().unwrap();
    let answer: Vec<u32> = batch
        .targets
        .iter()
        .zip(&labels)
        .filter(|((r, _), _)| *r == 0)
        .map(|(_, &l)| l)
        .collect();
    let answer = &answer[..answer.len() - 1];
    assert!(!answer.is_empty() && answer.len() <= WORDS, "{answer:?}");
    let expect: Vec<u32> = (0..WORDS).map(|i| answer[i % answer.len()]).collect();
    assert_eq!(words, expect);
    let none = taught_rows(&answers, &out.media_rows, WORDS, 0.0, 9);
    assert!(none.iter().all(Option::is_none));

    // The taught row reads the answer's embeddings as its word tokens; nothing else changes.
    let taught = teach_word_tokens(&model, &out, &answers, 1.0, 9).unwrap();
    let l = out.tokens.dim(1).unwrap();
    let ids = Tensor::new(expect.as_slice(), &Device::Cpu).unwrap();
    let embedded = model.llm().embed(&ids.unsqueeze(0).unwrap()).unwrap();
    let row0 = taught.tokens.narrow(0, 0, 1).unwrap();
    assert_eq!(
        largest(&(row0.narrow(1, l - WORDS, WORDS).unwrap() - &embedded).unwrap()),
        0.0
    );
    let same = |a: &Tensor, b: &Tensor| largest(&(a - b).unwrap());
    assert_eq!(
        same(
            &row0.narrow(1, 0, l - WORDS).unwrap(),
            &out.tokens
                .narrow(0, 0, 1)
                .unwrap()
                .narrow(1, 0, l - WORDS)
                .unwrap()
        ),
        0.0
    );
    assert_eq!(
        same(
            &taught.tokens.narrow(0, 1, 2).unwrap(),
            &out.tokens.narrow(0, 1, 2).unwrap()
        ),
        0.0
    );

    // The training loss reads them: it changes when a row is taught, and not when none can be.
    let loss = |teacher: f64, batch: &Batch| {
        let objective = Objective {
            bridge_answer: 0.3,
            detach_word_tokens: true,
            word_token_teacher: teacher,
            ..Objective::default()
        };
        value(&batch_loss_with(&model, batch, &objective).unwrap())
    };
    assert!((loss(1.0, &batch) - loss(0.0, &batch)).abs() > 1e-9);
    assert_eq!(loss(1.0, &untaught), loss(0.0, &untaught));
}

#[test]
fn the_teacher_picks_about_its_share_of_rows() {
    let tiny = model(DType::F32);
    let batch = collate(&tiny, &[image_sample("red")], 5, false);
    let answers = batch.reply_answers().unwrap();
    let media = [true];
    let share = 0.3;
    let picked = (0..2000u64)
        .filter(|&seed| taught_rows(&answers, &media, WORDS, share, seed)[0].is_some())
        .count();
    assert!((500..=700).contains(&picked), "{picked} of 2000");
    // The same seed picks the same rows.
    let again = |seed| taught_rows(&answers, &media, WORDS, share, seed);
    assert_eq!(again(17), again(17));
}

/// An image row whose reply explains the short answer `short`.
fn explained_sample(explanation: &str, short: &str) -> Sample {
    let mut s = image_sample(explanation);
    s.turns[0].short_answer = Some(short.into());
    s
}

#[test]
fn an_explained_row_teaches_its_short_answer() {
    let tiny = model(DType::F64);
    let explained = explained_sample("the train is red because its paint is red", "red");
    let batch = collate(&tiny, &[explained, text_sample()], 5, false);
    // The same row answered "red" outright: what the word tokens should learn from both.
    let plain = collate(&tiny, &[image_sample("red"), text_sample()], 5, false);
    // A dialog whose first turn explains "red" and whose second answers "a train" outright.
    let mut two = explained_sample("the train is red because its paint is red", "red");
    let mut second = two.turns[0].clone();
    second.response = "a train".into();
    second.short_answer = None;
    two.turns.push(second);
    let dialog = collate(&tiny, &[two], 5, false);
    let train = collate(&tiny, &[image_sample("a train")], 5, false);
    let Tiny { model, .. } = tiny;

    // The batch keeps the short answer's tokens; only `word_answers(true)` reads them.
    let red = plain.reply_answers().unwrap()[0].clone();
    assert!(!red.is_empty() && red.len() <= WORDS, "{red:?}");
    assert_eq!(batch.short_answers, vec![Some(red.clone()), None]);
    let replies = batch.reply_answers().unwrap();
    assert!(replies[0].len() > WORDS, "{replies:?}");
    let answers = batch.word_answers(true).unwrap();
    assert_eq!(answers, vec![red.clone(), replies[1].clone()]);
    assert_eq!(batch.word_answers(false).unwrap(), replies);

    // In a dialog a turn without a short answer keeps its reply; turns end with EOS as the
    // replies do, and the last EOS is left out.
    let eos = *plain.labels.to_vec1::<u32>().unwrap().last().unwrap();
    let mut expect = red.clone();
    expect.push(eos);
    expect.extend(&train.reply_answers().unwrap()[0]);
    assert_eq!(dialog.short_answers, vec![Some(expect)]);

    // The word-answer loss on the explained row is the plain row's (same image, same
    // bridge outputs once the prompt matches); short-only keeps it, as the answer fits.
    let out = common::bridge_of(&model, &batch);
    let words = out.word_logits.clone().unwrap();
    let plain_words = common::bridge_of(&model, &plain).word_logits.unwrap();
    let expect = value(&word_answer_loss(&plain_words, &plain).unwrap().unwrap());
    for short_only in [false, true] {
        let got = word_answer_loss_of(&words, &batch, &answers, short_only)
            .unwrap()
            .unwrap();
        assert!((value(&got) - expect).abs() < 1e-12, "{short_only}");
    }
    // Without the short answer, short-only leaves the explained row out.
    assert!(word_answer_loss_of(&words, &batch, &replies, true)
        .unwrap()
        .is_none());

    // The teacher teaches it, with the short answer's words.
    let picked = taught_rows(&answers, &out.media_rows, WORDS, 1.0, 9);
    let expect: Vec<u32> = (0..WORDS).map(|i| red[i % red.len()]).collect();
    assert_eq!(picked[0].as_ref(), Some(&expect));
    assert!(taught_rows(&replies, &out.media_rows, WORDS, 1.0, 9)[0].is_none());

    // The objective switches both with `word_tokens_from_short_answers`.
    let loss = |from_short: bool, short_only: bool| {
        let objective = Objective {
            bridge_answer: 0.3,
            bridge_answer_short_only: short_only,
            detach_word_tokens: true,
            word_token_teacher: 1.0,
            word_tokens_from_short_answers: from_short,
            ..Objective::default()
        };
        value(&batch_loss_with(&model, &batch, &objective).unwrap())
    };
    assert!((loss(true, false) - loss(false, false)).abs() > 1e-9);
    assert!((loss(true, true) - loss(false, true)).abs() > 1e-9);
}

#[test]
fn a_long_reply_teaches_its_opening() {
    let tiny = model(DType::F64);
    let samples = [
        image_sample("once upon a time a red train left the platform"),
        image_sample("red"),
        text_sample(),
    ];
    let batch = collate(&tiny, &samples, 5, false);
    let Tiny { model, .. } = tiny;
    let openings = Objective {
        bridge_answer: 0.7,
        reply: 0.0,
        word_tokens_from_reply_openings: true,
        ..Objective::default()
    };

    // Each reply is cut to its first WORDS tokens; one that fits is left as it is.
    let replies = batch.reply_answers().unwrap();
    assert!(replies[0].len() > WORDS && !replies[1].is_empty() && replies[1].len() <= WORDS);
    let cut: Vec<Vec<u32>> = replies
        .iter()
        .map(|r| r[..r.len().min(WORDS)].to_vec())
        .collect();
    assert_eq!(objective_answers(&model, &batch, &openings).unwrap(), cut);
    let whole = Objective {
        word_tokens_from_reply_openings: false,
        ..openings
    };
    assert_eq!(objective_answers(&model, &batch, &whole).unwrap(), replies);

    // The answer loss is the bag loss on the openings, not on the whole replies.
    let words = common::bridge_of(&model, &batch).word_logits.unwrap();
    let on_cut = value(
        &word_answer_loss_of(&words, &batch, &cut, false)
            .unwrap()
            .unwrap(),
    );
    let on_whole = value(
        &word_answer_loss_of(&words, &batch, &replies, false)
            .unwrap()
            .unwrap(),
    );
    assert!((on_cut - on_whole).abs() > 1e-9);
    let loss = |o: &Objective| value(&batch_loss_with(&model, &batch, o).unwrap());
    assert!((loss(&openings) - 0.7 * on_cut).abs() < 1e-12);
    assert!((loss(&whole) - 0.7 * on_whole).abs() < 1e-12);

    // The teacher can now teach the long row: its word tokens read the opening.
    let media = [true, true, false];
    let picked = taught_rows(&cut, &media, WORDS, 1.0, 3);
    assert_eq!(picked[0].as_ref(), Some(&cut[0]));
    assert!(taught_rows(&replies, &media, WORDS, 1.0, 3)[0].is_none());
}
