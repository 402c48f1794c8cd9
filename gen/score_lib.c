/* score_lib.c: the built-in score modifications (see score_lib.h). */
#include "gen/score_lib.h"

#include <string.h>

static const fg_score_name cap[] = {{"cap", FG_SCORE_FLOAT}};
static const fg_score_name slope[] = {{"slope", FG_SCORE_FLOAT}};
static const fg_score_name rel_consts[] = {{"L", FG_SCORE_INT}};
static const fg_score_name rel_tables[] = {{"bias", FG_SCORE_FLOAT}};
static const fg_score_name t5_consts[] = {{"L", FG_SCORE_INT}, {"nb", FG_SCORE_INT}};
static const fg_score_name t5_tables[] = {{"bucket", FG_SCORE_INT}, {"bias", FG_SCORE_FLOAT}};

static const fg_score_builtin builtins[] = {
    {"softcap", "cap * tanh(score / cap)", "1.0 - tanh(score / cap) * tanh(score / cap)", cap, 1, NULL, 0,
     "logit soft-capping (Gemma 2, Grok): cap > 0, a float constant"},
    {"alibi", "score - slope[h] * abs(q_idx - kv_idx)", "1.0", NULL, 0, slope, 1,
     "ALiBi, symmetric: slope, a float table of one slope per head"},
    {"alibi_causal", "score + slope[h] * (kv_idx - q_idx)", "1.0", NULL, 0, slope, 1,
     "ALiBi as in causal models (equal to alibi where kv_idx <= q_idx): slope, a float table of one slope per head"},
    {"rel_bias", "score + bias[h * (2 * L - 1) + min(max(kv_idx - q_idx, 1 - L), L - 1) + L - 1]", "1.0", rel_consts, 1,
     rel_tables, 1,
     "relative-position bias: bias, a float table [heads, 2L - 1] indexed by kv_idx - q_idx + L - 1; L >= 1, an int "
     "constant; distances beyond L - 1 use the edge entries"},
    {"t5_bias", "score + bias[h * nb + bucket[min(max(kv_idx - q_idx, 1 - L), L - 1) + L - 1]]", "1.0", t5_consts, 2,
     t5_tables, 2,
     "T5-style bucketed bias: bucket, an int table [2L - 1] mapping kv_idx - q_idx + L - 1 to a bucket in [0, nb) "
     "(T5's log buckets, computed by the caller); bias, a float table [heads, nb]; L, nb >= 1, int constants"},
};

const fg_score_builtin *fg_score_builtins(int *n) {
    *n = (int)(sizeof builtins / sizeof builtins[0]);
    return builtins;
}

const fg_score_builtin *fg_score_builtin_find(const char *name) {
    for (size_t i = 0; name && i < sizeof builtins / sizeof builtins[0]; ++i)
        if (!strcmp(builtins[i].name, name)) return &builtins[i];
    return NULL;
}

fg_status fg_score_builtin_parse(const fg_score_builtin *bi, int which, fg_score_expr **out, fg_error *err) {
    return fg_score_expr_parse(which ? bi->dscore : bi->expr, bi->consts, bi->nconst, bi->tables, bi->ntables, out, err);
}
