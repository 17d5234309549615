/* fuzz_decode.c — libFuzzer target for the decoding entry point (cd_decode_image) and the
 * resize that follows it in the pipeline. Build and run with csrc/fuzz/run_fuzz.sh
 * (clang, -fsanitize=fuzzer,address,undefined). Any crash, leak, sanitizer report or
 * allocation above -malloc_limit_mb is a finding. */
#include <stdint.h>
#include <stdlib.h>

#include "catdog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cd_image img;
    /* A small pixel limit keeps each input fast; the limit check itself is what we test. */
    if (cd_decode_image(data, size, (size_t)1 << 22, &img) != CD_OK) return 0;
    float out[16 * 16 * 3];
    int y0 = 0, x0 = 0, ch = img.height, cw = img.width;
    cd_crop_box(img.height, img.width, 16, 16, &y0, &x0, &ch, &cw);
    cd_resize_rgb(img.pixels, img.height, img.width, y0, x0, ch, cw, out, 16, 16,
                  size & 1 ? CD_INTERP_NEAREST : CD_INTERP_BILINEAR);
    cd_image_free(&img);
    return 0;
}
