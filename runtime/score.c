/* score.c: user score expressions (fg_score_create; docs/SCORES.md): the
 * expression parsed and type-checked by gen/score_expr.c, its arguments
 * checked, its CUDA form rendered with the int constants' values and named
 * by its SHA-256, once, on the host. */
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gen/score_expr.h"
#include "runtime/internal.h"

static fg_status check_args(const fg_score_arg *args, int nargs, fg_error *e) {
    if (nargs < 0 || (nargs && !args))
        return fg_fail(e, FG_ERR_INVALID_ARGUMENT, "fg_score_create: args is NULL or nargs (%d) negative", nargs);
    for (int i = 0; i < nargs; ++i) {
        const fg_score_arg *a = &args[i];
        if (!a->name) return fg_fail(e, FG_ERR_INVALID_ARGUMENT, "score argument %d has no name", i);
        if ((int)a->kind < 0 || a->kind > FG_SCORE_TABLE_FLOAT)
            return fg_fail(e, FG_ERR_INVALID_ARGUMENT, "score argument '%s': kind %d is not one of FG_SCORE_*", a->name,
                           (int)a->kind);
        if (a->kind == FG_SCORE_CONST_FLOAT && !(fabs(a->f) <= 3.4028234663852886e38))
            return fg_fail(e, FG_ERR_INVALID_ARGUMENT, "score constant '%s' = %g is not a finite fp32 value", a->name, a->f);
        if (a->kind < FG_SCORE_TABLE_INT32) continue;
        if (!a->data || (uintptr_t)a->data % 4)
            return fg_fail(e, FG_ERR_INVALID_ARGUMENT, "score table '%s' needs a 4-byte aligned device pointer", a->name);
        if (a->n < 1 || a->n > FG_SCORE_MAX_TABLE_LEN)
            return fg_fail(e, FG_ERR_INVALID_ARGUMENT, "score table '%s' has %lld elements (1 .. 2^31 - 1)", a->name,
                           (long long)a->n);
    }
    return FG_OK;
}

/* Parses and renders; s->ci/cf/tables filled from args. */
static fg_status build(fg_score *s, const char *expr, const fg_score_arg *args, int nargs, fg_error *e) {
    fg_score_name consts[FG_SCORE_MAX_CONSTS + 1], tables[FG_SCORE_MAX_TABLES + 1];
    int nc = 0, nt = 0;
    for (int i = 0; i < nargs; ++i) {
        const fg_score_arg *a = &args[i];
        const fg_score_type ty = a->kind == FG_SCORE_CONST_FLOAT || a->kind == FG_SCORE_TABLE_FLOAT ? FG_SCORE_FLOAT : FG_SCORE_INT;
        if (a->kind <= FG_SCORE_CONST_FLOAT) {
            if (nc == FG_SCORE_MAX_CONSTS) return fg_fail(e, FG_ERR_PATTERN, "a score expression takes at most %d constants", nc);
            s->ci[nc] = a->i;
            s->cf[nc] = (float)a->f;
            consts[nc++] = (fg_score_name){a->name, ty};
        } else {
            if (nt == FG_SCORE_MAX_TABLES) return fg_fail(e, FG_ERR_PATTERN, "a score expression takes at most %d tables", nt);
            s->tdata[nt] = a->data;
            s->tn[nt] = a->n;
            s->tfloat[nt] = ty == FG_SCORE_FLOAT;
            tables[nt++] = (fg_score_name){a->name, ty};
        }
    }
    s->ntables = nt;
    fg_status st = fg_score_expr_parse(expr, consts, nc, tables, nt, &s->expr, e);
    if (st != FG_OK) return st;
    int64_t ci[FG_SCORE_MAX_CONSTS];
    for (int i = 0; i < FG_SCORE_MAX_CONSTS; ++i) ci[i] = s->ci[i];
    s->cuda = fg_score_expr_render(s->expr, FG_SCORE_RENDER_CUDA, ci);
    s->text = fg_score_expr_render(s->expr, FG_SCORE_RENDER_TEXT, NULL);
    if (!s->cuda || !s->text) return fg_fail(e, FG_ERR_OUT_OF_MEMORY, "out of memory rendering a score expression");
    s->hash = fg_mask_hash_of(s->cuda);
    /* the derivative, for the backward; an expression whose derivative is
     * too long still runs forward, and the backward says why it cannot */
    fg_error de = {0};
    if (fg_score_expr_derivative(s->expr, &s->deriv, &de) == FG_OK) {
        s->cuda_d = fg_score_expr_render(s->deriv, FG_SCORE_RENDER_CUDA, ci);
        if (!s->cuda_d) return fg_fail(e, FG_ERR_OUT_OF_MEMORY, "out of memory rendering a score derivative");
    } else {
        snprintf(s->deriv_err, sizeof s->deriv_err, "%s", de.msg ? de.msg : "no derivative");
        if (de.status == FG_ERR_OUT_OF_MEMORY) { fg_error_clear(&de); return fg_fail(e, FG_ERR_OUT_OF_MEMORY, "out of memory"); }
    }
    fg_error_clear(&de);
    return FG_OK;
}

fg_status fg_score_create(fg_context *ctx, const char *expr, const fg_score_arg *args, int nargs, fg_score **out) {
    fg_error e = {0};
    if (!ctx) return FG_ERR_INVALID_ARGUMENT;
    if (!out) { fg_fail(&e, FG_ERR_INVALID_ARGUMENT, "fg_score_create: out is NULL"); return fg_ctx_fail(ctx, &e); }
    *out = NULL;
    if (!expr) { fg_fail(&e, FG_ERR_INVALID_ARGUMENT, "fg_score_create: expr is NULL"); return fg_ctx_fail(ctx, &e); }
    fg_status st = check_args(args, nargs, &e);
    if (st != FG_OK) return fg_ctx_fail(ctx, &e);
    fg_score *s = calloc(1, sizeof *s);
    if (!s) { fg_fail(&e, FG_ERR_OUT_OF_MEMORY, "out of memory"); return fg_ctx_fail(ctx, &e); }
    if ((st = build(s, expr, args, nargs, &e)) != FG_OK) {
        fg_score_destroy(s);
        return fg_ctx_fail(ctx, &e);
    }
    *out = s;
    return FG_OK;
}

void fg_score_destroy(fg_score *s) {
    if (!s) return;
    fg_score_expr_free(s->expr);
    fg_score_expr_free(s->deriv);
    free(s->cuda_d);
    free(s->cuda);
    free(s->text);
    free(s);
}

const char *fg_score_text(const fg_score *s) { return s ? s->text : NULL; }
