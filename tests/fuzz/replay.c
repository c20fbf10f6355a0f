/* tests/fuzz/replay.c: main() for builds without libFuzzer. Runs every file of the
 * directories (or the files) named on the command line through LLVMFuzzerTestOneInput(),
 * so that the gcc ASan + UBSan test build replays the seed corpora and the regressions
 * on every `make test`.
 *
 * Each input sits in a heap block of exactly its size, as libFuzzer passes it, so a
 * read one byte past the end is an ASan report here too. Directories are walked in
 * name order; names starting with '.' (.gitkeep) are skipped. A missing path, an
 * unreadable file or no input at all fails: a typo must not pass as "nothing to do". */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Bigger than any seed or regression; libFuzzer's own inputs stay far below it. */
#define REPLAY_MAX_FILE (16 * 1024 * 1024)

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) || st.st_size < 0 || st.st_size > REPLAY_MAX_FILE) {
        fprintf(stderr, "replay: %s: cannot size it, or larger than %d bytes\n", path,
                REPLAY_MAX_FILE);
        fclose(f);
        return -1;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *data = malloc(size ? size : 1);
    if (!data || fread(data, 1, size, f) != size) {
        fprintf(stderr, "replay: %s: short read\n", path);
        free(data);
        fclose(f);
        return -1;
    }
    fclose(f);
    /* named before it runs: a crash report follows the name of its input */
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, size);
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    return 0;
}

static int replay_skip_dot(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/* Runs path (a file, or every file of a directory); adds what it ran to *count. */
static int replay_path(const char *path, size_t *count)
{
    struct stat st;
    if (stat(path, &st)) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (replay_file(path))
            return -1;
        (*count)++;
        return 0;
    }
    struct dirent **names = NULL;
    int n = scandir(path, &names, replay_skip_dot, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int err = 0;
    for (int i = 0; i < n; i++) {
        char sub[4096];
        int w = snprintf(sub, sizeof(sub), "%s/%s", path, names[i]->d_name);
        if (!err && (w < 0 || (size_t)w >= sizeof(sub))) {
            fprintf(stderr, "replay: %s/%s: path too long\n", path, names[i]->d_name);
            err = -1;
        }
        if (!err)
            err = replay_path(sub, count);
        free(names[i]);
    }
    free(names);
    return err;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (replay_path(argv[i], &count))
            return 1;
    }
    if (count == 0) {
        fprintf(stderr, "replay: no input in the paths given\n");
        return 1;
    }
    printf("replay: %zu inputs, no finding\n", count);
    return 0;
}
