/* src/mcp/schema.c: validation against the JSON Schema subset our tools use. */
#include "mcp/schema.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"

/* Deeper schemas are refused at registration, so validation (which follows the
 * schema, not the value) recurses at most this far. */
#define SCHEMA_MAX_DEPTH 32

static const char *const schema_annotations[] = {
    "title",   "description", "default",  "examples", "format",
    "$schema", "$id",         "$comment", "pattern", /* accepted, not enforced: no regex engine (see
                                                        schema.h) */
};

static const struct {
    const char *name;
    unsigned bit;
} schema_types[] = {
    /* the order names are listed in: "a string or null" */
    {"object", MCP_T_OBJECT},   {"array", MCP_T_ARRAY},   {"string", MCP_T_STRING},
    {"integer", MCP_T_INTEGER}, {"number", MCP_T_NUMBER}, {"boolean", MCP_T_BOOLEAN},
    {"null", MCP_T_NULL},
};

const char *mcp_schema_type_name(unsigned t)
{
    for (size_t i = 0; i < sizeof(schema_types) / sizeof(schema_types[0]); i++)
        if (schema_types[i].bit == t)
            return schema_types[i].name;
    return "?";
}

static unsigned schema_type_bit(const char *name)
{
    for (size_t i = 0; i < sizeof(schema_types) / sizeof(schema_types[0]); i++)
        if (strcmp(schema_types[i].name, name) == 0)
            return schema_types[i].bit;
    return 0;
}

static bool schema_is_whole(double d)
{
    return isfinite(d) && floor(d) == d;
}

unsigned mcp_schema_type_of(const cJSON *v)
{
    if (cJSON_IsNull(v))
        return MCP_T_NULL;
    if (cJSON_IsBool(v))
        return MCP_T_BOOLEAN;
    if (cJSON_IsObject(v))
        return MCP_T_OBJECT;
    if (cJSON_IsArray(v))
        return MCP_T_ARRAY;
    if (cJSON_IsString(v))
        return MCP_T_STRING;
    if (cJSON_IsNumber(v))
        return schema_is_whole(v->valuedouble) ? MCP_T_INTEGER : MCP_T_NUMBER;
    return 0;
}

/* ---- mcp_schema_check ---- */

static int schema_why(struct va_buf *why, const char *path, const char *what)
{
    if (why)
        va_buf_printf(why, "%s: %s", path[0] ? path : "schema", what);
    return VA_EINVAL;
}

static bool schema_is_annotation(const char *key)
{
    for (size_t i = 0; i < sizeof(schema_annotations) / sizeof(schema_annotations[0]); i++)
        if (strcmp(schema_annotations[i], key) == 0)
            return true;
    return false;
}

static bool schema_is_count(const cJSON *v)
{
    return cJSON_IsNumber(v) && schema_is_whole(v->valuedouble) && v->valuedouble >= 0;
}

static int schema_check_node(const cJSON *s, const char *path, int depth, struct va_buf *why)
{
    char sub[MCP_SCHEMA_PATH_MAX];
    const cJSON *k;
    int err;

    if (depth > SCHEMA_MAX_DEPTH)
        return schema_why(why, path, "nested too deeply");
    if (!cJSON_IsObject(s))
        return schema_why(why, path, "a schema must be an object");
    cJSON_ArrayForEach(k, s)
    {
        const char *key = k->string;
        if (strcmp(key, "type") == 0) {
            if (cJSON_IsString(k)) {
                if (!schema_type_bit(k->valuestring))
                    return schema_why(why, path, "unknown type name");
            } else if (cJSON_IsArray(k) && cJSON_GetArraySize(k) > 0) {
                const cJSON *t;
                cJSON_ArrayForEach(t, k)
                {
                    if (!cJSON_IsString(t) || !schema_type_bit(t->valuestring))
                        return schema_why(why, path, "unknown type name");
                }
            } else {
                return schema_why(why, path, "type must be a name or an array of names");
            }
        } else if (strcmp(key, "properties") == 0) {
            const cJSON *p;
            if (!cJSON_IsObject(k))
                return schema_why(why, path, "properties must be an object");
            cJSON_ArrayForEach(p, k)
            {
                snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", p->string);
                err = schema_check_node(p, sub, depth + 1, why);
                if (err)
                    return err;
            }
        } else if (strcmp(key, "required") == 0) {
            const cJSON *r;
            if (!cJSON_IsArray(k))
                return schema_why(why, path, "required must be an array of names");
            cJSON_ArrayForEach(r, k)
            {
                if (!cJSON_IsString(r))
                    return schema_why(why, path, "required must be an array of names");
            }
        } else if (strcmp(key, "additionalProperties") == 0) {
            if (!cJSON_IsBool(k))
                return schema_why(why, path, "additionalProperties must be a boolean");
        } else if (strcmp(key, "minLength") == 0 || strcmp(key, "maxLength") == 0) {
            if (!schema_is_count(k))
                return schema_why(why, path, "minLength/maxLength must be whole and >= 0");
        } else if (strcmp(key, "minimum") == 0 || strcmp(key, "maximum") == 0) {
            if (!cJSON_IsNumber(k))
                return schema_why(why, path, "minimum/maximum must be numbers");
        } else if (strcmp(key, "enum") == 0) {
            if (!cJSON_IsArray(k) || cJSON_GetArraySize(k) == 0)
                return schema_why(why, path, "enum must be a non-empty array");
        } else if (strcmp(key, "items") == 0) {
            snprintf(sub, sizeof(sub), "%s[]", path);
            err = schema_check_node(k, sub, depth + 1, why);
            if (err)
                return err;
        } else if (strcmp(key, "pattern") == 0 && !cJSON_IsString(k)) {
            return schema_why(why, path, "pattern must be a string");
        } else if (!schema_is_annotation(key)) {
            if (why)
                va_buf_printf(why, "%s: unsupported keyword %s", path[0] ? path : "schema", key);
            return VA_EINVAL;
        }
    }
    return 0;
}

int mcp_schema_check(const cJSON *schema, struct va_buf *why)
{
    return schema_check_node(schema, "", 0, why);
}

/* ---- mcp_schema_validate ---- */

struct schema_path {
    char s[MCP_SCHEMA_PATH_MAX];
    size_t len;
};

/* Appends to the path; on overflow the path ends in "..." and stays so. Returns the
 * previous length for schema_path_pop(). */
static size_t schema_path_push(struct schema_path *p, const char *name, int index)
{
    size_t old = p->len;
    size_t room = sizeof(p->s) - p->len;
    int n;
    if (name)
        n = snprintf(p->s + p->len, room, "%s%s", p->len ? "." : "", name);
    else
        n = snprintf(p->s + p->len, room, "[%d]", index);
    if (n < 0 || (size_t)n >= room) {
        memcpy(p->s + sizeof(p->s) - 4, "...", 4);
        p->len = sizeof(p->s) - 1;
    } else {
        p->len += (size_t)n;
    }
    return old;
}

static void schema_path_pop(struct schema_path *p, size_t old)
{
    p->len = old;
    p->s[old] = '\0';
}

static void schema_report(struct mcp_schema_report *rep, enum mcp_schema_fault fault,
                          const struct schema_path *p, unsigned expected, unsigned got,
                          double limit)
{
    if (rep->count == MCP_SCHEMA_MAX_ERRORS) {
        rep->dropped++;
        return;
    }
    struct mcp_schema_error *e = &rep->err[rep->count++];
    e->fault = fault;
    memcpy(e->path, p->s, p->len + 1);
    e->expected = expected;
    e->got = got;
    e->limit = limit;
}

static unsigned schema_expected(const cJSON *type)
{
    unsigned mask = 0;
    const cJSON *t;
    if (cJSON_IsString(type))
        return schema_type_bit(type->valuestring);
    cJSON_ArrayForEach(t, type)
    {
        mask |= schema_type_bit(t->valuestring);
    }
    return mask;
}

/* Unicode code points in a UTF-8 string: bytes that do not continue a sequence. */
static size_t schema_utf8_chars(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xc0) != 0x80)
            n++;
    return n;
}

static void schema_node(const cJSON *s, const cJSON *v, struct schema_path *p,
                        struct mcp_schema_report *rep)
{
    const cJSON *kw;
    unsigned got = mcp_schema_type_of(v);

    kw = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (kw) {
        unsigned want = schema_expected(kw);
        bool ok = (want & got) || (got == MCP_T_INTEGER && (want & MCP_T_NUMBER));
        if (!ok) {
            schema_report(rep, MCP_SCHEMA_TYPE, p, want, got, 0);
            return;
        }
    }

    kw = cJSON_GetObjectItemCaseSensitive(s, "enum");
    if (kw) {
        const cJSON *e;
        bool found = false;
        cJSON_ArrayForEach(e, kw)
        {
            if (cJSON_Compare(e, v, true)) {
                found = true;
                break;
            }
        }
        if (!found)
            schema_report(rep, MCP_SCHEMA_NOT_ENUM, p, 0, got, 0);
    }

    if (got == MCP_T_STRING) {
        size_t chars = schema_utf8_chars(v->valuestring);
        kw = cJSON_GetObjectItemCaseSensitive(s, "minLength");
        if (kw && (double)chars < kw->valuedouble)
            schema_report(rep, MCP_SCHEMA_TOO_SHORT, p, 0, got, kw->valuedouble);
        kw = cJSON_GetObjectItemCaseSensitive(s, "maxLength");
        if (kw && (double)chars > kw->valuedouble)
            schema_report(rep, MCP_SCHEMA_TOO_LONG, p, 0, got, kw->valuedouble);
    }

    if (got == MCP_T_INTEGER || got == MCP_T_NUMBER) {
        kw = cJSON_GetObjectItemCaseSensitive(s, "minimum");
        if (kw && v->valuedouble < kw->valuedouble)
            schema_report(rep, MCP_SCHEMA_BELOW_MIN, p, 0, got, kw->valuedouble);
        kw = cJSON_GetObjectItemCaseSensitive(s, "maximum");
        if (kw && v->valuedouble > kw->valuedouble)
            schema_report(rep, MCP_SCHEMA_ABOVE_MAX, p, 0, got, kw->valuedouble);
    }

    if (got == MCP_T_OBJECT) {
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
        const cJSON *extra = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
        bool closed = cJSON_IsFalse(extra);
        const cJSON *m;
        cJSON_ArrayForEach(m, v)
        {
            const cJSON *ps = props ? cJSON_GetObjectItemCaseSensitive(props, m->string) : NULL;
            size_t old;
            if (!ps && !closed)
                continue;
            old = schema_path_push(p, m->string, 0);
            if (ps)
                schema_node(ps, m, p, rep);
            else
                schema_report(rep, MCP_SCHEMA_UNEXPECTED, p, 0, 0, 0);
            schema_path_pop(p, old);
        }
        kw = cJSON_GetObjectItemCaseSensitive(s, "required");
        cJSON_ArrayForEach(m, kw)
        {
            if (!cJSON_GetObjectItemCaseSensitive(v, m->valuestring)) {
                size_t old = schema_path_push(p, m->valuestring, 0);
                schema_report(rep, MCP_SCHEMA_MISSING, p, 0, 0, 0);
                schema_path_pop(p, old);
            }
        }
    }

    if (got == MCP_T_ARRAY) {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
        const cJSON *e;
        int i = 0;
        if (items) {
            cJSON_ArrayForEach(e, v)
            {
                size_t old = schema_path_push(p, NULL, i++);
                schema_node(items, e, p, rep);
                schema_path_pop(p, old);
            }
        }
    }
}

int mcp_schema_validate(const cJSON *schema, const cJSON *value, struct mcp_schema_report *rep)
{
    struct schema_path p = {.len = 0};
    rep->count = 0;
    rep->dropped = 0;
    p.s[0] = '\0';
    schema_node(schema, value, &p, rep);
    return rep->count ? VA_EINVAL : 0;
}

/* ---- mcp_schema_format ---- */

static int schema_fmt_limit(struct va_buf *out, double d)
{
    if (schema_is_whole(d) && fabs(d) < 1e15)
        return va_buf_printf(out, "%.0f", d);
    return va_buf_printf(out, "%.17g", d);
}

/* "string or null" / "a string or null" */
static int schema_fmt_types(struct va_buf *out, unsigned mask, bool article)
{
    int err = 0;
    bool first = true;
    for (size_t i = 0; i < sizeof(schema_types) / sizeof(schema_types[0]) && !err; i++) {
        unsigned bit = schema_types[i].bit;
        const char *name = schema_types[i].name;
        if (!(mask & bit))
            continue;
        if (!first)
            err = va_buf_append_str(out, " or ");
        if (!err && article && bit != MCP_T_NULL)
            err = va_buf_append_str(
                out, (name[0] == 'a' || name[0] == 'i' || name[0] == 'o') ? "an " : "a ");
        if (!err)
            err = va_buf_append_str(out, name);
        first = false;
    }
    return err;
}

static int schema_fmt_one(const struct mcp_schema_error *e, enum mcp_schema_style style,
                          struct va_buf *out)
{
    const char *name = e->path[0] ? e->path : "value";
    bool sentence = style == MCP_SCHEMA_STYLE_SENTENCE;
    /* a whole number is a JSON number to the reader, whatever the schema calls it */
    const char *got = e->got == MCP_T_INTEGER ? "number" : mcp_schema_type_name(e->got);
    int err = va_buf_printf(out, sentence ? "%s " : "%s: ", name);
    if (err)
        return err;
    switch (e->fault) {
    case MCP_SCHEMA_MISSING:
        return va_buf_append_str(out, sentence ? "is required" : "missing");
    case MCP_SCHEMA_UNEXPECTED:
        return va_buf_append_str(out, sentence ? "is not allowed" : "unexpected field");
    case MCP_SCHEMA_NOT_ENUM:
        return va_buf_append_str(out, sentence ? "must be one of the allowed values"
                                               : "not one of the allowed values");
    case MCP_SCHEMA_TYPE:
        err = va_buf_append_str(out, sentence ? "must be " : "expected ");
        if (!err)
            err = schema_fmt_types(out, e->expected, sentence);
        if (!err && !sentence)
            err = va_buf_printf(out, ", got %s", got);
        return err;
    case MCP_SCHEMA_TOO_SHORT:
    case MCP_SCHEMA_TOO_LONG: {
        bool shrt = e->fault == MCP_SCHEMA_TOO_SHORT;
        if (sentence)
            err = va_buf_append_str(out, shrt ? "must be at least " : "must be at most ");
        else
            err = va_buf_append_str(out, shrt ? "shorter than " : "longer than ");
        if (!err)
            err = schema_fmt_limit(out, e->limit);
        if (!err)
            err = va_buf_append_str(out, e->limit == 1 ? " character" : " characters");
        if (!err && sentence)
            err = va_buf_append_str(out, " long");
        return err;
    }
    case MCP_SCHEMA_BELOW_MIN:
    case MCP_SCHEMA_ABOVE_MAX: {
        bool low = e->fault == MCP_SCHEMA_BELOW_MIN;
        if (sentence)
            err = va_buf_append_str(out, low ? "must be at least " : "must be at most ");
        else
            err = va_buf_append_str(out, low ? "below minimum " : "above maximum ");
        if (!err)
            err = schema_fmt_limit(out, e->limit);
        return err;
    }
    }
    return 0;
}

int mcp_schema_format(const struct mcp_schema_report *rep, enum mcp_schema_style style,
                      struct va_buf *out)
{
    int err = 0;
    for (size_t i = 0; i < rep->count && !err; i++) {
        if (i)
            err = va_buf_append_str(out, "; ");
        if (!err)
            err = schema_fmt_one(&rep->err[i], style, out);
    }
    if (!err && rep->dropped)
        err = va_buf_printf(out, "; and %zu more", rep->dropped);
    return err;
}
