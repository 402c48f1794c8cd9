#include "gen/spec.h"
#include "gen/sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *fg_dtype_name(fg_dtype d) { return d == FG_E4M3 ? "e4m3" : d == FG_BF16 ? "bf16" : "fp16"; }

const char *fg_causal_name(fg_causal c) {
    switch (c) {
    case FG_CAUSAL_NONE: return "none";
    case FG_CAUSAL_BOTTOM_RIGHT: return "bottom_right";
    case FG_CAUSAL_TOP_LEFT: return "top_left";
    }
    return "?";
}

void fg_config_unset(fg_config *c) {
    memset(c, 0, sizeof *c);
    c->q_in_regs = -1;
    c->wgmma = -1;
}

static int parse_int(const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < -1000000 || v > 1000000) return 0;
    *out = (int)v;
    return 1;
}

fg_status fg_spec_parse(const char *text, fg_variant *v, fg_causal *causal, fg_error *err) {
    memset(v, 0, sizeof *v);
    v->spec.dtype = FG_BF16;
    fg_config_unset(&v->cfg);
    *causal = FG_CAUSAL_NONE;
    if (!text) return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "empty SPEC\n%s", FG_SPEC_HELP);
    char *copy = fg_strdupf("%s", text);
    if (!copy) return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory");
    fg_status st = FG_OK;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') ++tok;
        char *eq = strchr(tok, '=');
        if (!eq) { st = fg_fail(err, FG_ERR_INVALID_ARGUMENT, "SPEC item '%s' is not key=value\n%s", tok, FG_SPEC_HELP); break; }
        *eq = 0;
        const char *key = tok, *val = eq + 1;
        int iv = 0, isint = parse_int(val, &iv);
        if (!strcmp(key, "hdim") || !strcmp(key, "head_dim")) {
            if (!isint) goto bad;
            v->spec.head_dim = iv;
        } else if (!strcmp(key, "hdim_v") || !strcmp(key, "head_dim_v")) {
            if (!isint || iv <= 0) goto bad;
            v->spec.head_dim_v = iv;
        } else if (!strcmp(key, "dtype")) {
            if (!strcmp(val, "bf16")) v->spec.dtype = FG_BF16;
            else if (!strcmp(val, "fp16")) v->spec.dtype = FG_FP16;
            else if (!strcmp(val, "e4m3")) v->spec.dtype = FG_E4M3;
            else goto bad;
        } else if (!strcmp(key, "out")) {
            if (!strcmp(val, "bf16")) v->spec.out_dtype = FG_BF16;
            else if (!strcmp(val, "fp16")) v->spec.out_dtype = FG_FP16;
            else goto bad;
        } else if (!strcmp(key, "causal")) {
            if (!strcmp(val, "none") || !strcmp(val, "0") || !strcmp(val, "off")) *causal = FG_CAUSAL_NONE;
            else if (!strcmp(val, "bottom_right") || !strcmp(val, "1") || !strcmp(val, "on")) *causal = FG_CAUSAL_BOTTOM_RIGHT;
            else if (!strcmp(val, "top_left")) *causal = FG_CAUSAL_TOP_LEFT;
            else goto bad;
            v->spec.causal = *causal != FG_CAUSAL_NONE;
        } else if (!strcmp(key, "kind")) {
            if (!strcmp(val, "fwd")) v->spec.kind = FG_KIND_FWD;
            else if (!strcmp(val, "bwd")) v->spec.kind = FG_KIND_BWD;
            else goto bad;
        } else if (!strcmp(key, "infer")) {
            if (!isint || (iv != 0 && iv != 1)) goto bad;
            v->spec.infer = iv;
        } else if (!strcmp(key, "mods")) {
            if (!fg_spec_mods_parse(val, &v->spec.mods)) goto bad;
        } else if (!strcmp(key, "sparse")) {
            if (!isint || (iv != 0 && iv != 1)) goto bad;
            v->spec.sparse = iv;
        } else if (!strcmp(key, "block_m")) { if (!isint) goto bad; v->cfg.block_m = iv;
        } else if (!strcmp(key, "block_n")) { if (!isint) goto bad; v->cfg.block_n = iv;
        } else if (!strcmp(key, "warps")) { if (!isint) goto bad; v->cfg.warps = iv;
        } else if (!strcmp(key, "stages")) { if (!isint) goto bad; v->cfg.stages = iv;
        } else if (!strcmp(key, "q_in_regs")) { if (!isint || iv < 0 || iv > 1) goto bad; v->cfg.q_in_regs = iv;
        } else if (!strcmp(key, "min_blocks")) { if (!isint) goto bad; v->cfg.min_blocks = iv;
        } else if (!strcmp(key, "pingpong") || !strcmp(key, "overlap") || !strcmp(key, "persistent")) {
            if (!isint || iv < 0 || iv > 1) goto bad;
            const int bit = key[0] == 'p' && key[1] == 'i' ? FG_WS_NO_PINGPONG : key[0] == 'o' ? FG_WS_NO_OVERLAP : FG_WS_NO_PERSISTENT;
            v->cfg.ws_off = iv ? v->cfg.ws_off & ~bit : v->cfg.ws_off | bit;
        } else if (!strcmp(key, "score")) {
            st = fg_fail(err, FG_ERR_UNSUPPORTED,
                         "SPEC key 'score': a score-expression variant is built from an fg_score (fg_score_create); its "
                         "key names the expression by a hash, which cannot be turned back into it");
            break;
        } else if (!strcmp(key, "mask")) {
            st = fg_fail(err, FG_ERR_UNSUPPORTED,
                         "SPEC key 'mask': a mask variant is built from a pattern's layout (fg_pattern_layout, flashgen explore); "
                         "its key names the mask by a hash, which cannot be turned back into the expression");
            break;
        } else if (!strcmp(key, "wgmma")) { if (!isint || iv < 0 || iv > 2) goto bad; v->cfg.wgmma = iv;
        } else {
            st = fg_fail(err, FG_ERR_INVALID_ARGUMENT, "unknown SPEC key '%s'\n%s", key, FG_SPEC_HELP);
            break;
        }
        continue;
    bad:
        st = fg_fail(err, FG_ERR_INVALID_ARGUMENT, "bad value '%s' for SPEC key '%s'\n%s", val, key, FG_SPEC_HELP);
        break;
    }
    if (st == FG_OK && v->spec.head_dim == 0)
        st = fg_fail(err, FG_ERR_INVALID_ARGUMENT, "SPEC needs hdim=N\n%s", FG_SPEC_HELP);
    free(copy);
    return st;
}

fg_mask_hash fg_mask_hash_of(const char *mask_cuda) {
    fg_mask_hash h;
    fg_sha256(mask_cuda, strlen(mask_cuda), h.sha256);
    if (!fg_mask_hash_set(&h)) h.sha256[31] = 1; /* all zero means "no mask" */
    return h;
}

int fg_mask_hash_set(const fg_mask_hash *h) {
    for (int i = 0; i < 32; ++i)
        if (h->sha256[i]) return 1;
    return 0;
}

static void hash_item(const char *prefix, const fg_mask_hash *h, char *buf, size_t n) {
    if (!n) return;
    buf[0] = 0;
    if (!fg_mask_hash_set(h) || n < strlen(prefix) + 65) return;
    size_t k = (size_t)snprintf(buf, n, "%s", prefix);
    for (int i = 0; i < 32; ++i, k += 2) snprintf(buf + k, n - k, "%02x", h->sha256[i]);
}

void fg_mask_hash_format(const fg_mask_hash *h, char *buf, size_t n) { hash_item(",mask=", h, buf, n); }
void fg_score_hash_format(const fg_mask_hash *h, char *buf, size_t n) { hash_item(",score=", h, buf, n); }

int fg_spec_head_dim_v(const fg_spec *s) { return s->head_dim_v ? s->head_dim_v : s->head_dim; }

fg_status fg_head_dims_check(int head_dim, int head_dim_v, fg_error *err) {
    const int dims[2] = {head_dim, head_dim_v};
    static const char *const names[2] = {"head_dim", "head_dim_v"};
    for (int i = 0; i < 2; ++i)
        if (dims[i] < 8 || dims[i] > 256 || dims[i] % 8)
            return fg_fail(err, FG_ERR_UNSUPPORTED,
                           "%s %d is not supported: it must be a multiple of 8 in 8..256 (head dims above 256, such as "
                           "MLA decode's 576/512, need a decode kernel flashgen does not have yet)",
                           names[i], dims[i]);
    return FG_OK;
}

void fg_spec_head_dim_v_item(const fg_spec *s, char *buf, size_t n) {
    if (!n) return;
    buf[0] = 0;
    const int dv = fg_spec_head_dim_v(s);
    if (dv != s->head_dim) snprintf(buf, n, ",hdim_v=%d", dv);
}

int fg_spec_equal(const fg_spec *a, const fg_spec *b) {
    return a->head_dim == b->head_dim && fg_spec_head_dim_v(a) == fg_spec_head_dim_v(b) && a->dtype == b->dtype &&
           a->causal == b->causal && a->sparse == b->sparse && a->kind == b->kind &&
           a->infer == b->infer && a->mods == b->mods && fg_spec_out_dtype(a) == fg_spec_out_dtype(b) &&
           !memcmp(&a->score_hash, &b->score_hash, sizeof a->score_hash) &&
           !memcmp(&a->mask_hash, &b->mask_hash, sizeof a->mask_hash);
}

/* The TMA family's switched-off options, ",pingpong=0,overlap=0,persistent=0"
 * (only those off; nothing for the defaults, so keys of other variants are
 * unchanged). */
static void fg_strlcat(char *dst, const char *src, size_t n) {
    const size_t l = strnlen(dst, n);
    if (l < n) snprintf(dst + l, n - l, "%s", src);
}

static void ws_format(const fg_config *c, char *buf, size_t n) {
    if (n) buf[0] = 0;
    if (c->ws_off & FG_WS_NO_PINGPONG) fg_strlcat(buf, ",pingpong=0", n);
    if (c->ws_off & FG_WS_NO_OVERLAP) fg_strlcat(buf, ",overlap=0", n);
    if (c->ws_off & FG_WS_NO_PERSISTENT) fg_strlcat(buf, ",persistent=0", n);
}

void fg_variant_format(const fg_variant *v, char *buf, size_t n) {
    char dv[32];
    fg_spec_head_dim_v_item(&v->spec, dv, sizeof dv);
    int k = snprintf(buf, n, "hdim=%d%s,dtype=%s,causal=%d,sparse=%d,wgmma=%d,block_m=%d,block_n=%d,warps=%d,stages=%d,q_in_regs=%d,min_blocks=%d",
             v->spec.head_dim, dv, fg_dtype_name(v->spec.dtype), v->spec.causal, v->spec.sparse, v->cfg.wgmma, v->cfg.block_m,
             v->cfg.block_n, v->cfg.warps, v->cfg.stages, v->cfg.q_in_regs, v->cfg.min_blocks);
    char ws[64];
    ws_format(&v->cfg, ws, sizeof ws);
    fg_strlcat(buf, ws, n);
    k = (int)strlen(buf);
    /* dense and plain sparse keys are unchanged; a mask adds its SHA-256,
     * a backward variant ",kind=bwd", an append variant ",kind=append" */
    if (k > 0 && (size_t)k < n) fg_mask_hash_format(&v->spec.mask_hash, buf + k, n - (size_t)k);
    if (v->spec.kind == FG_KIND_BWD) fg_strlcat(buf, ",kind=bwd", n);
    if (v->spec.infer) fg_strlcat(buf, ",infer=1", n);
    char mods[64];
    fg_spec_mods_item(v->spec.mods, mods, sizeof mods);
    fg_strlcat(buf, mods, n);
    /* a backward variant's kernel also inlines the derivative, which
     * flashgen's generator (not the templates) derives: folded into the
     * hash, so that a flashgen whose derivation changed does not reuse a
     * cached kernel built from the old one (same key length) */
    fg_mask_hash sh = v->spec.score_hash;
    if (v->spec.kind == FG_KIND_BWD && v->spec.score_cuda_d && fg_mask_hash_set(&sh)) {
        const size_t nd = strlen(v->spec.score_cuda_d);
        uint8_t *both = malloc(32 + nd);
        if (both) {
            memcpy(both, sh.sha256, 32);
            memcpy(both + 32, v->spec.score_cuda_d, nd);
            fg_sha256(both, 32 + nd, sh.sha256);
            free(both);
            if (!fg_mask_hash_set(&sh)) sh.sha256[31] = 1;
        } else {
            memset(&sh, 0xff, sizeof sh); /* no memory: a key no kernel has, never another variant's */
        }
    }
    char score[80];
    fg_score_hash_format(&sh, score, sizeof score);
    fg_strlcat(buf, score, n);
    if (v->spec.kind == FG_KIND_APPEND) fg_strlcat(buf, ",kind=append", n);
    if (v->spec.dtype == FG_E4M3) fg_strlcat(buf, fg_spec_out_dtype(&v->spec) == FG_BF16 ? ",out=bf16" : ",out=fp16", n);
}

fg_dtype fg_spec_out_dtype(const fg_spec *s) {
    return s->dtype == FG_E4M3 ? (s->out_dtype == FG_BF16 ? FG_BF16 : FG_FP16) : s->dtype;
}

static const char *const mod_names[4] = {"softcap", "alibi", "window", "sink"};

int fg_spec_has_mods(const fg_spec *s) { return s->mods || fg_mask_hash_set(&s->score_hash); }

const char *fg_spec_mod_name(int i) { return i >= 0 && i < 4 ? mod_names[i] : i == 4 ? "score" : ""; }

void fg_spec_mods_item(int mods, char *buf, size_t n) {
    if (!n) return;
    buf[0] = 0;
    for (int i = 0; i < 4; ++i)
        if (mods & (1 << i)) {
            fg_strlcat(buf, buf[0] ? "+" : ",mods=", n);
            fg_strlcat(buf, mod_names[i], n);
        }
}

int fg_spec_mods_parse(const char *text, int *mods) {
    int m = 0;
    for (const char *s = text; *s;) {
        const size_t len = strcspn(s, "+");
        int found = 0;
        for (int i = 0; i < 4; ++i)
            if (strlen(mod_names[i]) == len && !strncmp(s, mod_names[i], len)) { m |= 1 << i; found = 1; }
        if (!found) return 0;
        s += len;
        if (*s == '+') ++s;
    }
    *mods = m;
    return m != 0;
}

const char *fg_variant_template(const fg_variant *v) {
    if (v->spec.kind == FG_KIND_BWD) return v->cfg.wgmma >= 1 ? "bwd_wgmma" : "bwd_mma";
    if (v->spec.kind == FG_KIND_APPEND) return "kv_append";
    return v->cfg.wgmma == 2 ? "fwd_ws" : v->cfg.wgmma == 1 ? "fwd_wgmma" : "fwd_mma";
}

int fg_config_same_kernel(const fg_config *a, const fg_config *b) {
    fg_config x = *a, y = *b;
    x.ws_off &= ~FG_WS_NO_PERSISTENT;
    y.ws_off &= ~FG_WS_NO_PERSISTENT;
    return !memcmp(&x, &y, sizeof x);
}

void fg_variant_key(const fg_variant *v, const char *tpl_hash, int nvrtc_major, int nvrtc_minor,
                    const char *arch, char *buf, size_t n) {
    /* persistent=0 only changes the launch grid: one kernel serves both */
    fg_variant kv = *v;
    kv.cfg.ws_off &= ~FG_WS_NO_PERSISTENT;
    char spec[FG_VARIANT_TEXT_MAX];
    fg_variant_format(&kv, spec, sizeof spec);
    snprintf(buf, n, "%s:%s:tpl=%s:nvrtc=%d.%d:arch=%s", fg_variant_template(v), spec, tpl_hash,
             nvrtc_major, nvrtc_minor, arch);
}

void fg_config_format(const fg_config *c, char *buf, size_t n) {
    snprintf(buf, n, "wgmma=%d,block_m=%d,block_n=%d,warps=%d,stages=%d,q_in_regs=%d,min_blocks=%d", c->wgmma, c->block_m,
             c->block_n, c->warps, c->stages, c->q_in_regs, c->min_blocks);
    char ws[64];
    ws_format(c, ws, sizeof ws);
    fg_strlcat(buf, ws, n);
}

fg_status fg_config_parse(const char *text, fg_config *c, fg_error *err) {
    char *full = fg_strdupf("hdim=8,%s", text ? text : "");
    if (!full) return fg_fail(err, FG_ERR_OUT_OF_MEMORY, "out of memory");
    fg_variant v;
    fg_causal cz;
    fg_error e = {0};
    fg_status st = fg_spec_parse(full, &v, &cz, &e);
    free(full);
    fg_error_clear(&e);
    if (st != FG_OK || v.cfg.block_m <= 0 || v.cfg.block_n <= 0 || v.cfg.warps <= 0 || v.cfg.stages <= 0 ||
        v.cfg.q_in_regs < 0 || v.cfg.min_blocks <= 0 || v.cfg.wgmma < 0)
        return fg_fail(err, FG_ERR_INVALID_ARGUMENT, "'%s' is not a complete block configuration", text ? text : "");
    *c = v.cfg;
    return FG_OK;
}
