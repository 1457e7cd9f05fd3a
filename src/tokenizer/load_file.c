/*
 * load_file.c - a tokenizer from a file, its format told by its first bytes: a GGUF
 * model (load_gguf.c), a Hugging Face tokenizer.json (tok_bpe_hf.c) or, failing both,
 * a SentencePiece tokenizer.model (tok_spm_model.c). A file named .gguf is read as GGUF
 * whatever its first bytes, and an empty or too short file is refused as such, so that
 * neither is reported as a broken SentencePiece model.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "tokenizer/tokenizer_internal.h"

/* Reads a whole file into a bn_malloc'd buffer. */
static bn_status bn_read_file(const char *path, char **data, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return bn_error_set(BN_ERR_IO, "opening %s: %s", path, strerror(errno));
    bn_status st = BN_OK;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0)
        st = bn_error_set(BN_ERR_IO, "reading %s: not a regular file", path);
    char *buf = st == BN_OK ? bn_malloc((size_t)n + 1, "tokenizer") : NULL;
    if (st == BN_OK && !buf)
        st = bn_error_wrap(BN_OK, "reading %s", path);
    if (st == BN_OK && fread(buf, 1, (size_t)n, f) != (size_t)n)
        st = bn_error_set(BN_ERR_IO, "reading %s: short read", path);
    fclose(f);
    if (st != BN_OK) {
        bn_free(buf);
        return st;
    }
    buf[n] = '\0';
    *data = buf;
    *size = (size_t)n;
    return BN_OK;
}

/* The first bytes of a file, to tell its format. */
static bn_status bn_read_head(const char *path, char *head, size_t cap, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return bn_error_set(BN_ERR_IO, "opening %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return bn_error_set(BN_ERR_IO, "opening %s: is a directory", path);
    }
    *n = fread(head, 1, cap, f);
    bool failed = ferror(f);
    fclose(f);
    if (failed)
        return bn_error_set(BN_ERR_IO, "reading %s: %s", path, strerror(errno));
    return BN_OK;
}

/* Whether the file name ends in ".gguf" (in any case). */
static bool bn_named_gguf(const char *path)
{
    size_t n = strlen(path);
    return n >= 5 && strcasecmp(path + n - 5, ".gguf") == 0;
}

/* Every message names the file once: the GGUF reader's and the tokenizer.json
 * reader's name it themselves; the others get "loading a tokenizer from PATH". */
bn_status bn_tokenizer_load_file(const char *path, bn_tokenizer **out)
{
    char head[64];
    size_t n = 0;
    bn_status st = bn_read_head(path, head, sizeof head, &n);
    if (st != BN_OK)
        return st;
    size_t i = 0;
    while (i < n && (head[i] == ' ' || head[i] == '\n' || head[i] == '\r' || head[i] == '\t'))
        i++;
    if ((n >= 4 && memcmp(head, "GGUF", 4) == 0) || bn_named_gguf(path)) {
        /* a file named .gguf is read as one, so that a broken one is told so rather
         * than tried as a SentencePiece model */
        bn_gguf *g = NULL;
        st = bn_gguf_open(path, &g);
        if (st == BN_OK && bn_tokenizer_load_gguf(g, out) != BN_OK)
            st = bn_error_wrap(BN_OK, "loading a tokenizer from %s", path);
        bn_gguf_close(g);
        return st;
    }
    if (i < n && head[i] == '{')
        return bn_tok_load_hf_json(path, out);
    /* the shortest SentencePiece model (one piece of one byte) takes five bytes */
    if (n < 4)
        return bn_error_set(BN_ERR_FORMAT, "loading a tokenizer from %s: %s", path,
                            n == 0 ? "the file is empty"
                                   : "too short for a tokenizer (a GGUF model, a "
                                     "tokenizer.json or a tokenizer.model)");
    char *data = NULL;
    size_t size = 0;
    st = bn_read_file(path, &data, &size);
    if (st == BN_OK && bn_tok_load_spm_model(data, size, out) != BN_OK)
        st = bn_error_wrap(BN_OK, "loading a tokenizer from %s", path);
    bn_free(data);
    return st;
}
