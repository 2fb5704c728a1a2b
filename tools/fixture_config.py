"""Settings of the tiny Lynx fixtures: sizes, seeds, prompts and generation cases.

Shared by make_fixtures.py and fixture_records.py; documented in tools/README.md.
"""

SEED = 20230705
VOCAB = 400
IMAGE_RES = 56
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
VIT = dict(patch_size=14, embed_dim=32, depth=2, num_heads=4, mlp_ratio=4.3637, layer_norm_eps=1e-6, pretrain_grid=3)
LLM = dict(hidden_size=64, intermediate_size=172, num_hidden_layers=4, num_attention_heads=4,
           rms_norm_eps=1e-6, max_position_embeddings=128)
TRAINED = dict(vision_width=32, text_width=64, num_bridge_tokens=32, bridge_depth=3, num_layers=4,
               adapter_freq=2, num_frames=5)
PROMPT = "User: {question}\nBot:"
MAX_INPUT_TOKENS = 40
BATCH_SIZE_TEST = 4
BOS, EOS = 1, 2

COMMON = dict(do_sample=False, top_p=0.9, top_k=3, temperature=1.0, max_new_tokens=16, min_length=2,
              length_penalty=-2.0, num_return_sequences=1)
SETTINGS = {
    "greedy": dict(COMMON, num_beams=1, repetition_penalty=1.0, no_repeat_ngram_size=0),
    "beam": dict(COMMON, num_beams=3, repetition_penalty=1.0, no_repeat_ngram_size=2),
    "greedy_rep": dict(COMMON, num_beams=1, repetition_penalty=1.3, no_repeat_ngram_size=0),
}
# (eos_shift, lm_head std) tried in order until every sanity check passes.
VARIANTS = [(s, h) for h in (0.5, 0.6) for s in (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)]
NOISE = 1e-3  # logit noise every recorded generation must be robust to
MIN_MARGIN = 5e-3  # smallest top-1 minus top-2 processed score allowed at any greedy step

TOKENIZER_TEXTS = [
    "hello world",
    "what is the man holding in his left hand?",
    "  two  leading spaces and  double  gaps ",
    "digits 12345 and 3.14, year 2023",
    "caf\u00e9 na\u00efve \u2603 \u65e5\u672c \U0001F600",
    "tab\tand\nnewline",
    "The Quick Brown Fox, the THE tthe",
    "",
]
