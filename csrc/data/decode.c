/* decode.c — image bytes -> RGB uint8 (h, w, 3) with stb_image (the only stb implementation
 * unit). Formats: JPEG, PNG (8/16-bit; 16-bit keeps the high byte), BMP, GIF (first frame).
 * Grayscale, gray+alpha, palette and RGBA become RGB (alpha dropped, as tf.io.decode_image
 * with channels=3). Headers are checked against a pixel limit before anything is decoded. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "data/dataset.h"

#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_MAX_DIMENSIONS (1 << 16)
#ifndef STBI_ASSERT /* stb asserts invariants that corrupt files can break: never abort */
#define STBI_ASSERT(x) ((void)0)
#endif
/* Every allocation stb makes goes through a per-thread byte cap set from the pixel limit, so a
 * PNG chunk claiming a gigabyte or a zlib bomb fails cleanly instead of taking the memory. */
static _Thread_local size_t stb_alloc_cap = (size_t)1 << 30;
static void *capped_malloc(size_t n) { return n > stb_alloc_cap ? NULL : malloc(n); }
static void *capped_realloc(void *p, size_t n) { return n > stb_alloc_cap ? NULL : realloc(p, n); }
#define STBI_MALLOC(n) capped_malloc(n)
#define STBI_REALLOC(p, n) capped_realloc((p), (n))
#define STBI_FREE(p) free(p)
#define STB_IMAGE_IMPLEMENTATION
#include "third_party/stb/stb_image.h" /* vendored, pinned: csrc/third_party/stb/README.md */


/* stb (2.27 to 2.30) does pointer arithmetic on a NULL buffer when the first IDAT chunk of a
 * PNG is empty (undefined behaviour, found by the fuzz target): refuse such files (valid but
 * never written by real encoders). */
static int png_first_idat_empty(const uint8_t *b, size_t size) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (size < 8 || memcmp(b, sig, 8) != 0) return 0;
    for (size_t p = 8; p + 8 <= size;) {
        const uint32_t len = ((uint32_t)b[p] << 24) | ((uint32_t)b[p + 1] << 16) | ((uint32_t)b[p + 2] << 8) | b[p + 3];
        if (memcmp(b + p + 4, "IDAT", 4) == 0) return len == 0;
        if ((uint64_t)len + 12 > size - p) return 0;
        p += (size_t)len + 12;
    }
    return 0;
}

/* stbi_info behind the guards: 0 with a message in stbi_failure_reason() when refused. */
static int safe_info(const uint8_t *bytes, size_t size, int *w, int *h, int *comp) {
    if (size > INT_MAX) return stbi__err("too large", "file too large");
    if (png_first_idat_empty(bytes, size)) return stbi__err("empty IDAT", "PNG whose first IDAT chunk is empty");
    return stbi_info_from_memory(bytes, (int)size, w, h, comp);
}

cd_status cd_decode_image(const uint8_t *bytes, size_t size, size_t max_pixels, cd_image *out) {
    if (!out) return cd_fail(CD_ERR_VALUE, "cd_decode_image: out is NULL");
    out->height = out->width = 0;
    out->pixels = NULL;
    if (!bytes || size == 0) return cd_fail(CD_ERR_VALUE, "empty file (0 bytes)");
    if (size > INT_MAX) return cd_fail(CD_ERR_VALUE, "file too large (%zu bytes)", size);
    if (max_pixels == 0) max_pixels = CD_DEFAULT_MAX_PIXELS;
    /* 16-bit RGBA is 8 bytes a pixel (+ a filter byte per row), plus slack for tables. */
    stb_alloc_cap = max_pixels * 8 + ((size_t)1 << 16) * 8 + ((size_t)1 << 20);
    if (stb_alloc_cap < size + ((size_t)1 << 20)) stb_alloc_cap = size + ((size_t)1 << 20);

    int w = 0, h = 0, comp = 0;
    if (!safe_info(bytes, size, &w, &h, &comp))
        return cd_fail(CD_ERR_VALUE, "not a supported image (JPEG, PNG, BMP, GIF): %s",
                       stbi_failure_reason() ? stbi_failure_reason() : "unknown format");
    if (w <= 0 || h <= 0) return cd_fail(CD_ERR_VALUE, "image has no pixels (%dx%d)", w, h);
    if ((size_t)w * (size_t)h > max_pixels)
        return cd_fail(CD_ERR_VALUE, "image of %dx%d pixels is above the limit of %zu pixels", w, h,
                       max_pixels);

    int dw = 0, dh = 0, dc = 0;
    uint8_t *px = stbi_load_from_memory(bytes, (int)size, &dw, &dh, &dc, 3);
    if (!px)
        return cd_fail(CD_ERR_VALUE, "corrupt or unsupported image data: %s",
                       stbi_failure_reason() ? stbi_failure_reason() : "decoder failed");
    if (dw != w || dh != h) { /* header and data disagree (a GIF frame can): refuse */
        if ((size_t)dw * (size_t)dh > max_pixels || dw <= 0 || dh <= 0) {
            stbi_image_free(px);
            return cd_fail(CD_ERR_VALUE, "decoded size %dx%d disagrees with header %dx%d", dw, dh,
                           w, h);
        }
    }
    out->height = dh;
    out->width = dw;
    out->pixels = px;
    return CD_OK;
}

void cd_image_free(cd_image *img) {
    if (!img) return;
    if (img->pixels) stbi_image_free(img->pixels);
    img->pixels = NULL;
    img->height = img->width = 0;
}

/* Whole regular file into a malloc'd buffer. Non-blocking open so a FIFO never hangs. */
static cd_status read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *size) {
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return cd_fail(CD_ERR_IO, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return cd_fail(CD_ERR_IO, "cannot stat: %s", strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return cd_fail(CD_ERR_IO, "not a regular file");
    }
    if (st.st_size == 0) {
        close(fd);
        return cd_fail(CD_ERR_VALUE, "empty file (0 bytes)");
    }
    if ((uint64_t)st.st_size > (uint64_t)max_bytes) {
        close(fd);
        return cd_fail(CD_ERR_VALUE, "file of %lld bytes is above the limit of %zu bytes",
                       (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n);
    if (!buf) {
        close(fd);
        return cd_fail(CD_ERR_MEMORY, "out of memory reading %zu bytes", n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return cd_fail(CD_ERR_IO, "read error: %s", strerror(e));
        }
        if (r == 0) break; /* file shrank while reading: decode what we have */
        got += (size_t)r;
    }
    close(fd);
    *data = buf;
    *size = got;
    return CD_OK;
}

cd_status cd_decode_file(const char *path, size_t max_pixels, size_t max_bytes, cd_image *out) {
    if (!path || !out) return cd_fail(CD_ERR_VALUE, "cd_decode_file: NULL argument");
    out->height = out->width = 0;
    out->pixels = NULL;
    if (max_bytes == 0) max_bytes = CD_DEFAULT_MAX_FILE_BYTES;
    uint8_t *data;
    size_t size;
    CD_TRY(read_file(path, max_bytes, &data, &size));
    cd_status s = cd_decode_image(data, size, max_pixels, out);
    free(data);
    return s;
}

/* Header-only check used for samples that are not cached (dimensions within limit). */
cd_status cd_check_file_header(const char *path, size_t max_pixels, size_t max_bytes) {
    if (max_bytes == 0) max_bytes = CD_DEFAULT_MAX_FILE_BYTES;
    if (max_pixels == 0) max_pixels = CD_DEFAULT_MAX_PIXELS;
    uint8_t *data;
    size_t size;
    CD_TRY(read_file(path, max_bytes, &data, &size));
    int w = 0, h = 0, comp = 0;
    int ok = safe_info(data, size, &w, &h, &comp);
    free(data);
    if (!ok) return cd_fail(CD_ERR_VALUE, "not a supported image (JPEG, PNG, BMP, GIF)");
    if (w <= 0 || h <= 0 || (size_t)w * (size_t)h > max_pixels)
        return cd_fail(CD_ERR_VALUE, "image of %dx%d pixels is above the limit of %zu pixels", w, h,
                       max_pixels);
    return CD_OK;
}
