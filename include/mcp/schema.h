/* include/mcp/schema.h: validation against the JSON Schema subset our tools use. */
#ifndef VA_MCP_SCHEMA_H
#define VA_MCP_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "core/buf.h"

/*
 * Supported keywords (JSON Schema 2020-12 meaning):
 *   type (a name or an array of names: object, string, integer, number, boolean, array, null),
 *   properties, required, additionalProperties (boolean only; false refuses unlisted fields),
 *   minLength/maxLength (Unicode code points, not bytes), enum (deep equality),
 *   minimum/maximum (inclusive), items (one schema for every element).
 * Accepted as annotations, never enforced: title, description, default, examples, format,
 *   $schema, $id, $comment, and pattern: there is no regex engine here, so a pattern is
 *   documentation only and the tool must check what it needs itself.
 * Anything else (oneOf, $ref, additionalProperties as a schema, ...) is refused by
 * mcp_schema_check() so a constraint is never silently dropped.
 *
 * "integer" is a number with no fractional part (1.0 counts, as 2020-12 says). cJSON keeps
 * numbers as doubles: integers past 2^53 are not exact. A string with an escaped U+0000 is
 * cut there by cJSON, so lengths count up to the first NUL.
 */

#define MCP_SCHEMA_PATH_MAX 96 /* longer paths are cut, ending in "..." */
#define MCP_SCHEMA_MAX_ERRORS 8

enum mcp_schema_fault {
    MCP_SCHEMA_MISSING,    /* a required field is absent */
    MCP_SCHEMA_TYPE,       /* wrong JSON type */
    MCP_SCHEMA_UNEXPECTED, /* field not in properties while additionalProperties is false */
    MCP_SCHEMA_TOO_SHORT,  /* minLength */
    MCP_SCHEMA_TOO_LONG,   /* maxLength */
    MCP_SCHEMA_NOT_ENUM,   /* not one of enum */
    MCP_SCHEMA_BELOW_MIN,  /* minimum */
    MCP_SCHEMA_ABOVE_MAX,  /* maximum */
};

/* Bit per JSON Schema type name. */
enum mcp_schema_type {
    MCP_T_NULL = 1u << 0,
    MCP_T_BOOLEAN = 1u << 1,
    MCP_T_OBJECT = 1u << 2,
    MCP_T_ARRAY = 1u << 3,
    MCP_T_NUMBER = 1u << 4,
    MCP_T_STRING = 1u << 5,
    MCP_T_INTEGER = 1u << 6,
};

struct mcp_schema_error {
    enum mcp_schema_fault fault;
    char path[MCP_SCHEMA_PATH_MAX]; /* "memberId", "items[2].code"; "" for the value itself */
    unsigned expected;              /* MCP_T_* mask, for MCP_SCHEMA_TYPE */
    unsigned got;                   /* the one MCP_T_* of the value, for MCP_SCHEMA_TYPE */
    double limit;                   /* the bound, for lengths and minimum/maximum */
};

/* Errors in document order: an object's members as they appear, then its missing
 * required fields in the order "required" lists them. */
struct mcp_schema_report {
    size_t count;   /* entries used in err[] */
    size_t dropped; /* further errors past MCP_SCHEMA_MAX_ERRORS, counted only */
    struct mcp_schema_error err[MCP_SCHEMA_MAX_ERRORS];
};

/* Checks that schema is an object made only of the supported keywords with well-typed
 * values (recursively). 0, or VA_EINVAL with one line naming the problem appended to why
 * (why may be NULL). Run once when a tool registers. */
int mcp_schema_check(const cJSON *schema, struct va_buf *why);

/* Validates value against a schema that passed mcp_schema_check(). 0 when it conforms,
 * VA_EINVAL when not (rep filled; rep is always reset first). Pure, no allocation. */
int mcp_schema_validate(const cJSON *schema, const cJSON *value, struct mcp_schema_report *rep);

enum mcp_schema_style {
    /* "memberId: missing; code: expected string, got number; extra: unexpected field" */
    MCP_SCHEMA_STYLE_SHORT,
    /* "memberId must be a string; code is required" (read to a model or a person) */
    MCP_SCHEMA_STYLE_SENTENCE,
};

/* Appends the report's errors joined by "; " (the value itself is named "value").
 * 0 or VA_ETOOBIG. */
int mcp_schema_format(const struct mcp_schema_report *rep, enum mcp_schema_style style,
                      struct va_buf *out);

/* The MCP_T_* bit of a JSON value: a whole number is MCP_T_INTEGER, any other number
 * MCP_T_NUMBER ("number" in a schema accepts both). */
unsigned mcp_schema_type_of(const cJSON *v);

/* Name of one MCP_T_* bit ("string"); "?" for anything else. */
const char *mcp_schema_type_name(unsigned t);

#endif
