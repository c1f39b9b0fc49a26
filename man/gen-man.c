/* SPDX-License-Identifier: MIT */
/*
 * gen-man.c -- build-time generator of the man pages that list the shim's options.
 *
 *   gen-man TEMPLATE VERSION > PAGE
 *
 * Copies TEMPLATE to standard output, replacing a line "@OPTIONS@" with the options table as
 * lrvm-run's command-line options, a line "@ENVIRONMENT@" with it as environment variables, and
 * every "@VERSION@" with VERSION. The table is the shim's own (preload/env.c), the one that
 * parses the variables and prints `lrvm-run --help`, so the three cannot disagree.
 */
#include <stdio.h>
#include <string.h>

#include "shim.h"

/* put_line -- line with each @VERSION@ replaced by version */
static void put_line(const char *line, const char *version)
{
    const char *at;
    while ((at = strstr(line, "@VERSION@")) != NULL) {
        fwrite(line, 1, (size_t)(at - line), stdout);
        fputs(version, stdout);
        line = at + strlen("@VERSION@");
    }
    fputs(line, stdout);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: gen-man TEMPLATE VERSION > PAGE\n");
        return 2;
    }
    FILE *in = fopen(argv[1], "r");
    if (!in) {
        perror(argv[1]);
        return 1;
    }
    char line[4096];
    while (fgets(line, sizeof(line), in)) {
        int options = strcmp(line, "@OPTIONS@\n") == 0;
        if (options || strcmp(line, "@ENVIRONMENT@\n") == 0) {
            fflush(stdout);
            shim_env_man(1, options);
        } else {
            put_line(line, argv[2]);
        }
    }
    fclose(in);
    return fflush(stdout) == 0 ? 0 : 1;
}
