/* test_huff_bounds.c — the JPEG Huffman decoder's symbol lookup stays inside its table, checked
 * on stb's own code: this file includes the vendored stb_image.h as a private (static)
 * implementation and calls stbi__jpeg_huff_decode directly on crafted tables.
 *
 * Why: stb 2.27 computed the symbol index c = code + delta[k] and read h->values[c] without a
 * range check (issue 23: a heap out-of-bounds read found by the fuzz target). Which c a file
 * produces depended on uninitialised memory, so no single input reproduces it reliably; here
 * the table itself is made inconsistent, which is the state that read needed. The decoder
 * must answer -1 (corrupt data) for every index outside [0, 256).
 *
 * Each table lives in a heap block of exactly sizeof(stbi__huffman), and the crafted indices
 * reach past that block, so an unchecked read is a heap-buffer-overflow under ASan (and an
 * out-of-bounds index under UBSan's bounds check) rather than a silent read of a neighbour.
 * Built and run with sanitizers by tests/test_decode_hardening.py:
 *   gcc -std=c11 -fsanitize=address,undefined -Icsrc csrc/fuzz/test_huff_bounds.c
 * Exit 0 and "ok" when every case holds; 1 with the failing case otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STBI_ONLY_JPEG
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STB_IMAGE_STATIC
#define STBI_ASSERT(x) ((void)0) /* as in the library: corrupt tables break stb's invariants */
#define STB_IMAGE_IMPLEMENTATION
#include "third_party/stb/stb_image.h"

static int failures = 0;

static unsigned int seed = 12345u;
static unsigned int next_random(void) { /* a fixed LCG: the same cases every run */
    seed = seed * 1103515245u + 12345u;
    return seed >> 8;
}

static void expect(int cond, const char *what, long a, long b) {
    if (!cond) {
        fprintf(stderr, "test_huff_bounds: FAILED: %s (%ld, %ld)\n", what, a, b);
        failures++;
    }
}

/* A table of three 12-bit codes (000000000000, ...001, ...010) for symbols 7, 8, 9. No code
 * fits the 9-bit fast table, so lookups take the slow path, the one that computes c. */
static stbi__huffman *three_long_codes(void) {
    stbi__huffman *h = malloc(sizeof *h);
    if (!h) return NULL;
    memset(h, 0, sizeof *h);
    int count[16] = {0};
    count[11] = 3; /* count[i]: codes of length i + 1 */
    if (!stbi__build_huffman(h, count)) {
        free(h);
        return NULL;
    }
    h->values[0] = 7;
    h->values[1] = 8;
    h->values[2] = 9;
    return h;
}

/* Decode one symbol from a 32-bit code buffer (MSB first), with enough bits that stb never
 * reads the stream (code_bits >= 16 skips stbi__grow_buffer_unsafe). */
static int decode_one(stbi__huffman *h, unsigned int bits) {
    stbi__jpeg *j = calloc(1, sizeof *j);
    if (!j) return -2;
    j->code_buffer = bits;
    j->code_bits = 32;
    j->nomore = 1;
    int r = stbi__jpeg_huff_decode(j, h);
    free(j);
    return r;
}

int main(void) {
    int cases = 0;
    stbi__huffman *h = three_long_codes();
    if (!h) {
        fprintf(stderr, "test_huff_bounds: cannot build the table\n");
        return 1;
    }
    /* The consistent table decodes its codes: the check must not refuse valid data. */
    for (unsigned int code = 0; code < 3; code++, cases++) {
        int r = decode_one(h, code << 20); /* 12-bit code in the top bits */
        expect(r == (int)(7 + code), "valid code decodes to its symbol", (long)code, r);
    }
    /* delta[12] shifted so that c = code + delta leaves [0, 256): 256 (one past), far past the
     * heap block, and below zero. Every one must be refused. */
    const int base = h->delta[12];
    const int shifts[] = {256, 254, 300, 1000, 4096, 1 << 20, -1, -3, -300, -(1 << 20)};
    for (size_t i = 0; i < sizeof shifts / sizeof shifts[0]; i++) {
        h->delta[12] = base + shifts[i];
        for (unsigned int code = 0; code < 3; code++, cases++) {
            const long c = (long)code + base + shifts[i];
            int r = decode_one(h, code << 20);
            if (c >= 0 && c < 256)
                expect(r == h->values[c], "in-range index reads its value", c, r);
            else
                expect(r == -1, "out-of-range symbol index is refused", c, r);
        }
    }
    free(h);

    /* Arbitrary tables, the shape uninitialised memory gave stb 2.27: random fast table, codes,
     * deltas and maxcodes. Two fields keep what stbi__build_huffman always writes, as only the
     * index check is under test: code lengths within 0-16 and maxcode[17], the slow loop's
     * sentinel. Whatever the table, the answer is -1 or a byte of values[]. */
    for (int t = 0; t < 2000; t++) {
        stbi__huffman *g = malloc(sizeof *g);
        if (!g) return 1;
        unsigned char *raw = (unsigned char *)g;
        for (size_t b = 0; b < sizeof *g; b++) raw[b] = (unsigned char)next_random();
        if (t & 1) memset(g->fast, 255, sizeof g->fast); /* half of them: slow path only */
        for (int k = 0; k < 257; k++) g->size[k] = (stbi_uc)(next_random() % 17); /* code lengths 0-16 */
        for (int k = 0; k < 17; k++) g->delta[k] = (int)(next_random() % 200001u) - 100000;
        g->maxcode[17] = 0xffffffffu;
        for (int n = 0; n < 50; n++, cases++) {
            const unsigned int hi = next_random() << 8;
            const unsigned int bits = hi ^ next_random();
            int r = decode_one(g, bits);
            expect(r >= -1 && r < 256, "any table: -1 or a byte", t, r);
        }
        free(g);
    }
    if (failures) return 1;
    printf("test_huff_bounds: ok, %d cases\n", cases);
    return 0;
}
