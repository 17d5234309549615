/* replay_main.c — runs the fuzz target (fuzz_decode.c) on the files named on the command
 * line, without libFuzzer, so any C compiler with sanitizers can replay reproducers:
 *   gcc -fsanitize=address,undefined ... fuzz_decode.c replay_main.c decode.c resize.c error.c
 * Prints one line per file (its size and cd_decode_image's verdict) and exits 0; a sanitizer
 * report aborts the process instead. Exit 2 when a file cannot be read. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "catdog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            fprintf(stderr, "replay: cannot open %s\n", argv[i]);
            return 2;
        }
        size_t cap = 1 << 16, n = 0;
        uint8_t *buf = malloc(cap);
        size_t got;
        while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
            n += got;
            if (n == cap) {
                uint8_t *bigger = realloc(buf, cap *= 2);
                if (!bigger) free(buf);
                buf = bigger;
            }
        }
        fclose(f);
        if (!buf) {
            fprintf(stderr, "replay: out of memory reading %s\n", argv[i]);
            return 2;
        }
        /* The fuzz target first, exactly as libFuzzer calls it (crop and resize included)... */
        LLVMFuzzerTestOneInput(buf, n);
        /* ...then the library's verdict, with the default pixel limit, for the log. */
        cd_image img;
        if (cd_decode_image(buf, n, 0, &img) == CD_OK) {
            printf("%s: %zu bytes: decoded %dx%d\n", argv[i], n, img.height, img.width);
            cd_image_free(&img);
        } else {
            printf("%s: %zu bytes: refused: %s\n", argv[i], n, cd_last_error());
        }
        free(buf);
    }
    return 0;
}
