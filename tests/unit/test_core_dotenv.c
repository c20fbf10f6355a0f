/* tests/unit/test_core_dotenv.c: the .env parser and the environment-then-file lookup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/err.h"

/* Collects what the parser hands out. */
struct pairs {
    char text[16][128]; /* "KEY=VALUE" */
    size_t len;
    int fail_at; /* 1-based call that returns -77, 0 = never */
};

static int collect(void *ud, const char *key, const char *value)
{
    struct pairs *p = ud;
    assert_true(p->len < 16);
    snprintf(p->text[p->len], sizeof(p->text[0]), "%s=%s", key, value);
    p->len++;
    if (p->fail_at && (int)p->len == p->fail_at)
        return -77;
    return 0;
}

static int parse(const char *s, struct pairs *p, int *line)
{
    memset(p, 0, sizeof(*p));
    return va_dotenv_parse(s, strlen(s), collect, p, line);
}

static void test_forms(void **state)
{
    static const struct {
        const char *in;
        const char *want; /* KEY=VALUE, or NULL for a line that yields nothing */
    } cases[] = {
        {"A=1", "A=1"},
        {"A=1\n", "A=1"},
        {"A=1\r\n", "A=1"},
        {"export B=2", "B=2"},
        {"export\tB=2", "B=2"},
        {"  export   B=2", "B=2"},
        {"export=1", "export=1"},
        {"exportX=1", "exportX=1"},
        {"_x9=ok", "_x9=ok"},
        {"  C = 3  ", "C=3"},
        {"C\t=\t3\t", "C=3"},
        {"D=a b  c", "D=a b  c"},
        {"E=", "E="},
        {"E=   ", "E="},
        {"F=val # comment", "F=val"},
        {"F=val\t# comment", "F=val"},
        {"F= # only a comment", "F="},
        {"G=a#b", "G=a#b"},
        {"G=#x", "G=#x"},
        {"G=a=b=c", "G=a=b=c"},
        {"G=it's", "G=it's"},
        {"G=say \"hi\"", "G=say \"hi\""},
        {"H='x # y'", "H=x # y"},
        {"H='a\\nb'", "H=a\\nb"},
        {"H='  spaced  '", "H=  spaced  "},
        {"H=''", "H="},
        {"H = 'v' # c", "H=v"},
        {"H='v'#c", "H=v"},
        {"H='v'   ", "H=v"},
        {"H='say \"hi\"'", "H=say \"hi\""},
        {"I=\"a\\nb\"", "I=a\nb"},
        {"I=\"\\t\\r\\\"\\\\\"", "I=\t\r\"\\"},
        {"I=\"x # y\"", "I=x # y"},
        {"I=\"it's\"", "I=it's"},
        {"I=\"\"", "I="},
        {"I=\"v\" # c", "I=v"},
        {"I=\"v\"\r\n", "I=v"},
        {"", NULL},
        {"\n", NULL},
        {"\r\n", NULL},
        {"   \t ", NULL},
        {"# comment", NULL},
        {"   # indented comment", NULL},
        {"#A=1", NULL},
        {"\xEF\xBB\xBF"
         "A=bom",
         "A=bom"},
    };
    struct pairs p;
    int line = -1;
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int err = parse(cases[i].in, &p, &line);
        if (err)
            fail_msg("case %zu \"%s\": %d", i, cases[i].in, err);
        assert_int_equal(line, 0);
        if (cases[i].want) {
            assert_int_equal(p.len, 1);
            assert_string_equal(p.text[0], cases[i].want);
        } else {
            assert_int_equal(p.len, 0);
        }
    }
}

static void test_errors(void **state)
{
    static const char *const cases[] = {
        "=1",        "1A=2",          "A B=1",
        "A",         "A 1",           "A-B=1",
        "A.B=1",     "export",        "export A",
        "export =1", "A='x",          "A='x' y",
        "A='x''y'",  "A=\"x",         "A=\"x\\\"",
        "A=\"x\\",   "A=\"x\\q\"",    "A=\"x\\$\"",
        "A=\"x\"y",  "A=\"x\" \"y\"", "A=\"line one\nline two\"",
    };
    struct pairs p;
    int line = 0;
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int err = parse(cases[i], &p, &line);
        if (err != VA_EINVAL)
            fail_msg("case %zu \"%s\": %d", i, cases[i], err);
        assert_int_equal(line, 1);
        assert_int_equal(p.len, 0);
    }
    /* A lone byte order mark is an empty file. */
    assert_int_equal(parse("\xEF\xBB\xBF", &p, &line), 0);
    assert_int_equal(p.len, 0);

    /* A NUL byte inside a line. */
    static const char nul[] = "A=1\nB=x\0y\n";
    memset(&p, 0, sizeof(p));
    assert_int_equal(va_dotenv_parse(nul, sizeof(nul) - 1, collect, &p, &line), VA_EINVAL);
    assert_int_equal(line, 2);
    /* errline may be NULL. */
    assert_int_equal(va_dotenv_parse(nul, sizeof(nul) - 1, collect, &p, NULL), VA_EINVAL);
}

static void test_error_line_number(void **state)
{
    struct pairs p;
    int line = 0;
    (void)state;

    const char *s = "# header\r\nA=1\r\n\r\nexport B='2'\r\nC=\"unterminated\r\nD=4\r\n";
    assert_int_equal(parse(s, &p, &line), VA_EINVAL);
    assert_int_equal(line, 5);
    /* Lines before the bad one were delivered, none after. */
    assert_int_equal(p.len, 2);
    assert_string_equal(p.text[0], "A=1");
    assert_string_equal(p.text[1], "B=2");
}

static void test_many_lines_and_duplicates(void **state)
{
    struct pairs p;
    int line = 0;
    (void)state;

    const char *s = "A=1\nB=2\r\n\n# c\nA=3\nC='x'"; /* no newline at the end */
    assert_int_equal(parse(s, &p, &line), 0);
    assert_int_equal(p.len, 4);
    assert_string_equal(p.text[0], "A=1");
    assert_string_equal(p.text[1], "B=2");
    assert_string_equal(p.text[2], "A=3");
    assert_string_equal(p.text[3], "C=x");
    assert_int_equal(parse("", &p, &line), 0);
    assert_int_equal(p.len, 0);
    /* Not NUL-terminated: only [0, len) is read. */
    memset(&p, 0, sizeof(p));
    assert_int_equal(va_dotenv_parse("A=12345", 4, collect, &p, &line), 0);
    assert_string_equal(p.text[0], "A=12");
}

static void test_callback_error(void **state)
{
    struct pairs p;
    int line = 0;
    (void)state;

    memset(&p, 0, sizeof(p));
    p.fail_at = 2;
    const char *s = "A=1\n\nB=2\nC=3\n";
    assert_int_equal(va_dotenv_parse(s, strlen(s), collect, &p, &line), -77);
    assert_int_equal(line, 3);
    assert_int_equal(p.len, 2);
}

/* A temporary file holding text; the caller unlinks path. */
static void write_temp(char *path, size_t len, const char *text, size_t tlen)
{
    snprintf(path, len, "/tmp/va_dotenv_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, tlen), (ssize_t)tlen);
    close(fd);
}

static void test_env_file_and_precedence(void **state)
{
    char path[64];
    char err[256];
    struct va_env env;
    (void)state;

    const char *text = "VA_T_ONLY_FILE=from-file\n"
                       "VA_T_BOTH=from-file\n"
                       "VA_T_EMPTY_ENV=from-file\n"
                       "VA_T_DUP=first\n"
                       "VA_T_DUP=second\n";
    write_temp(path, sizeof(path), text, strlen(text));
    va_env_init(&env);
    assert_int_equal(va_env_load_file(&env, path, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(env.len, 4);

    unsetenv("VA_T_ONLY_FILE");
    assert_int_equal(setenv("VA_T_BOTH", "from-env", 1), 0);
    assert_int_equal(setenv("VA_T_EMPTY_ENV", "", 1), 0);
    assert_int_equal(setenv("VA_T_ONLY_ENV", "env-only", 1), 0);
    unsetenv("VA_T_DUP");
    unsetenv("VA_T_NOWHERE");

    assert_string_equal(va_env_lookup(&env, "VA_T_ONLY_FILE"), "from-file");
    assert_string_equal(va_env_lookup(&env, "VA_T_BOTH"), "from-env");
    /* An empty environment variable is unset: the file shows through. */
    assert_string_equal(va_env_lookup(&env, "VA_T_EMPTY_ENV"), "from-file");
    assert_string_equal(va_env_lookup(&env, "VA_T_ONLY_ENV"), "env-only");
    assert_string_equal(va_env_lookup(&env, "VA_T_DUP"), "second");
    assert_null(va_env_lookup(&env, "VA_T_NOWHERE"));
    /* Without a file it is getenv(). */
    assert_string_equal(va_env_lookup(NULL, "VA_T_BOTH"), "from-env");
    assert_null(va_env_lookup(NULL, "VA_T_ONLY_FILE"));
    unsetenv("VA_T_BOTH");
    assert_string_equal(va_env_lookup(&env, "VA_T_BOTH"), "from-file");

    /* A second file overrides the first where both set a key. */
    char path2[64];
    const char *text2 = "VA_T_DUP=third\nVA_T_NEW=new\n";
    write_temp(path2, sizeof(path2), text2, strlen(text2));
    assert_int_equal(va_env_load_file(&env, path2, err, sizeof(err)), 0);
    assert_int_equal(env.len, 5);
    assert_string_equal(va_env_lookup(&env, "VA_T_DUP"), "third");
    assert_string_equal(va_env_lookup(&env, "VA_T_NEW"), "new");

    unsetenv("VA_T_EMPTY_ENV");
    unsetenv("VA_T_ONLY_ENV");
    va_env_deinit(&env);
    assert_int_equal(env.len, 0);
    unlink(path);
    unlink(path2);
}

static void test_env_file_errors(void **state)
{
    char path[64];
    char err[256];
    struct va_env env;
    (void)state;

    va_env_init(&env);
    /* A missing file is no error: .env is optional. */
    assert_int_equal(va_env_load_file(&env, "/nonexistent/dir/.env", err, sizeof(err)), 0);
    assert_int_equal(env.len, 0);

    /* A directory cannot be read as a file. */
    int rc = va_env_load_file(&env, "/tmp", err, sizeof(err));
    assert_true(rc < 0 && rc > -1000);
    assert_non_null(strstr(err, "/tmp"));

    /* A malformed line: its number is reported, never its text, and env is unchanged. */
    const char *good = "VA_T_KEEP=1\n";
    write_temp(path, sizeof(path), good, strlen(good));
    assert_int_equal(va_env_load_file(&env, path, err, sizeof(err)), 0);
    unlink(path);
    const char *bad = "VA_T_A=1\nOPENAI_API_KEY=\"sk-supersecret\nVA_T_B=2\n";
    write_temp(path, sizeof(path), bad, strlen(bad));
    assert_int_equal(va_env_load_file(&env, path, err, sizeof(err)), VA_EINVAL);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, ":2:"));
    assert_null(strstr(err, "supersecret"));
    assert_int_equal(env.len, 1);
    assert_string_equal(env.keys[0], "VA_T_KEEP");
    /* err may be NULL. */
    assert_int_equal(va_env_load_file(&env, path, NULL, 0), VA_EINVAL);
    unlink(path);

    /* Past 1 MiB is not a .env. */
    size_t big = 1024 * 1024 + 1;
    char *text = malloc(big);
    assert_non_null(text);
    memset(text, '#', big);
    write_temp(path, sizeof(path), text, big);
    free(text);
    assert_int_equal(va_env_load_file(&env, path, err, sizeof(err)), VA_ETOOBIG);
    assert_int_equal(env.len, 1);
    unlink(path);

    /* An empty file is fine. */
    write_temp(path, sizeof(path), "", 0);
    assert_int_equal(va_env_load_file(&env, path, err, sizeof(err)), 0);
    assert_int_equal(env.len, 1);
    unlink(path);
    va_env_deinit(&env);
}

static void test_config_from_env_and_file(void **state)
{
    char path[64];
    char err[256];
    struct va_env env;
    struct va_cfg cfg;
    (void)state;

    const char *text = "PORT=9000\n"
                       "MCP_PORT=9001\n"
                       "export LOG_LEVEL=debug\n"
                       "APOLOGY_TEXT=\"Sorry, we are closed.\"\n"
                       "MAX_CALLS=\n";
    write_temp(path, sizeof(path), text, strlen(text));
    va_env_init(&env);
    assert_int_equal(va_env_load_file(&env, path, err, sizeof(err)), 0);
    unlink(path);

    /* Whatever the shell running the tests exports must not leak in. */
    size_t n;
    const struct va_cfg_var *vars = va_cfg_vars(&n);
    for (size_t i = 0; i < n; i++)
        unsetenv(vars[i].name);
    assert_int_equal(setenv("PORT", "9100", 1), 0);
    assert_int_equal(va_cfg_load(&cfg, va_env_lookup, &env, err, sizeof(err)), 0);
    assert_int_equal(cfg.port, 9100); /* the environment wins */
    assert_int_equal(cfg.mcp_port, 9001);
    assert_int_equal(cfg.log_level, VA_LOG_DEBUG);
    assert_string_equal(cfg.apology_text, "Sorry, we are closed.");
    assert_int_equal(cfg.max_calls, 100); /* empty in the file: the default */
    va_cfg_deinit(&cfg);

    /* A bad value in the environment is reported although the file is fine. */
    assert_int_equal(setenv("PORT", "70000", 1), 0);
    assert_int_equal(va_cfg_load(&cfg, va_env_lookup, &env, err, sizeof(err)), VA_EINVAL);
    assert_string_equal(err, "PORT: expected an integer 0..65535 (got \"70000\")");
    unsetenv("PORT");
    va_env_deinit(&env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_error_line_number),
        cmocka_unit_test(test_many_lines_and_duplicates),
        cmocka_unit_test(test_callback_error),
        cmocka_unit_test(test_env_file_and_precedence),
        cmocka_unit_test(test_env_file_errors),
        cmocka_unit_test(test_config_from_env_and_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
