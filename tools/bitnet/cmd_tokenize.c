/*
 * cmd_tokenize.c - `bitnet tokenize` and `bitnet detokenize`: text to token ids and
 * back with a model's tokenizer (a .gguf file, a tokenizer.json or a SentencePiece
 * tokenizer.model).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

const char cmd_tokenize_help[] =
    "usage: bitnet tokenize -m FILE [-p TEXT] [--json] [--pieces] [--bos] [--no-special]\n"
    "\n"
    "Print the token ids of TEXT, or of standard input read exactly as given (no\n"
    "trailing newline is removed). FILE is a GGUF model, a Hugging Face tokenizer.json\n"
    "or a SentencePiece tokenizer.model.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE   the tokenizer to use\n"
    "  -p, --prompt TEXT  the text (default: standard input)\n"
    "  --json             print one JSON array of integers\n"
    "  --pieces           print each id with the text it stands for\n"
    "  --bos              start with the BOS token\n"
    "  --no-special       treat special-token strings in the text as plain text\n"
    "  -h, --help         show this help\n";

const char cmd_detokenize_help[] =
    "usage: bitnet detokenize -m FILE [--ids 1,2,3] [--no-special]\n"
    "\n"
    "Print the text of token ids given with --ids or on standard input (separated by\n"
    "commas, white space, or as a JSON array), exactly as bytes, with no newline added.\n"
    "\n"
    "options:\n"
    "  -m, --model FILE   the tokenizer to use\n"
    "  --ids LIST         the ids (default: standard input)\n"
    "  --no-special       leave special tokens (BOS, EOS...) out of the text\n"
    "  -h, --help         show this help\n";

/* Reads all of standard input, NUL-terminated (*len excludes the NUL); NULL on
 * failure. */
static char *read_stdin(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t k = fread(buf + n, 1, cap - 1 - n, stdin);
        n += k;
        buf[n] = '\0';
        if (k == 0)
            break;
        if (n == cap - 1) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown)
                free(buf);
            buf = grown;
        }
    }
    if (buf && ferror(stdin)) {
        free(buf);
        buf = NULL;
    }
    *len = n;
    return buf;
}

/* Length of the valid UTF-8 character at s[0, n) (2 to 4 bytes), or 0. */
static size_t utf8_char_len(const unsigned char *s, size_t n)
{
    size_t k = s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : s[0] >= 0xe0 && s[0] < 0xf0 ? 3
             : s[0] >= 0xf0 && s[0] < 0xf5 ? 4 : 0;
    if (k == 0 || k > n)
        return 0;
    for (size_t j = 1; j < k; j++)
        if ((s[j] & 0xc0) != 0x80)
            return 0;
    return k;
}

/* Prints bytes with C-style escapes for what a terminal would not show plainly: control
 * characters, and bytes that are not part of a whole UTF-8 character (a token may hold
 * half of one) as \xNN. */
static void print_escaped(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        size_t k = c >= 0x80 ? utf8_char_len(s + i, n - i) : 1;
        if (c == '\n') printf("\\n");
        else if (c == '\t') printf("\\t");
        else if (c == '\r') printf("\\r");
        else if (c == '\\' || c == '\'') printf("\\%c", c);
        else if (c < 0x20 || c == 0x7f || k == 0) printf("\\x%02x", c);
        else {
            fwrite(s + i, 1, k, stdout);
            i += k - 1;
        }
    }
}

static int print_ids(const bn_tokenizer *t, const bn_token *ids, size_t n, bool json,
                     bool pieces)
{
    if (json && !pieces) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_integer(ids[i]));
        json_dumpf(arr, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(arr);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!pieces) {
            printf("%s%d", i ? " " : "", ids[i]);
            continue;
        }
        char *text = NULL;
        size_t len = 0;
        if (bn_detokenize(t, &ids[i], 1, true, &text, &len) != BN_OK)
            return cli_fail("tokenize");
        printf("%d\t'", ids[i]);
        print_escaped(text, len);
        printf("'\n");
        bn_free(text);
    }
    if (!pieces)
        putchar('\n');
    return 0;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL;
    bool json = false, pieces = false;
    bn_tokenize_params p = bn_tokenize_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool v = i + 1 < argc;
        if (cli_is_help(a))
            return cli_help("tokenize");
        else if ((strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) && v)
            model = argv[++i];
        else if ((strcmp(a, "-p") == 0 || strcmp(a, "--prompt") == 0) && v)
            prompt = argv[++i];
        else if (strcmp(a, "--json") == 0)
            json = true;
        else if (strcmp(a, "--pieces") == 0)
            pieces = true;
        else if (strcmp(a, "--bos") == 0)
            p.add_bos = true;
        else if (strcmp(a, "--no-special") == 0)
            p.parse_special = false;
        else
            return cli_usage_error("tokenize", "unknown option or missing value '%s'", a);
    }
    if (!model)
        return cli_usage_error("tokenize", "name the tokenizer with -m FILE");
    bn_tokenizer *t = NULL;
    if (bn_tokenizer_load_file(model, &t) != BN_OK)
        return cli_fail("tokenize");
    size_t len = 0;
    char *input = NULL;
    if (!prompt && !(input = read_stdin(&len))) {
        bn_tokenizer_free(t);
        fprintf(stderr, "bitnet tokenize: cannot read standard input\n");
        return 1;
    }
    bn_token *ids = NULL;
    size_t n = 0;
    int rc = bn_tokenize(t, prompt ? prompt : input, prompt ? strlen(prompt) : len, &p, &ids,
                         &n) == BN_OK ? print_ids(t, ids, n, json, pieces)
                                      : cli_fail("tokenize");
    bn_free(ids);
    free(input);
    bn_tokenizer_free(t);
    return rc;
}

/* Parses ids separated by commas, white space or JSON brackets. */
static int parse_ids(const char *s, bn_token **ids, size_t *n)
{
    size_t cap = 64;
    *ids = malloc(cap * sizeof **ids);
    *n = 0;
    while (*ids && *s) {
        if (strchr(" \t\r\n,[]", *s)) {
            s++;
            continue;
        }
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > INT32_MAX || !strchr(" \t\r\n,[]", *end ? *end : ' '))
            return cli_usage_error("detokenize", "not a token id: '%.20s'", s);
        if (*n == cap) {
            bn_token *grown = realloc(*ids, (cap *= 2) * sizeof **ids);
            if (!grown)
                return 1;
            *ids = grown;
        }
        (*ids)[(*n)++] = (bn_token)v;
        s = end;
    }
    return *ids ? 0 : 1;
}

int cmd_detokenize(int argc, char **argv)
{
    const char *model = NULL, *list = NULL;
    bool special = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool v = i + 1 < argc;
        if (cli_is_help(a))
            return cli_help("detokenize");
        else if ((strcmp(a, "-m") == 0 || strcmp(a, "--model") == 0) && v)
            model = argv[++i];
        else if (strcmp(a, "--ids") == 0 && v)
            list = argv[++i];
        else if (strcmp(a, "--no-special") == 0)
            special = false;
        else
            return cli_usage_error("detokenize", "unknown option or missing value '%s'", a);
    }
    if (!model)
        return cli_usage_error("detokenize", "name the tokenizer with -m FILE");
    size_t len = 0;
    char *input = list ? NULL : read_stdin(&len);
    if (!list && !input) {
        fprintf(stderr, "bitnet detokenize: cannot read standard input\n");
        return 1;
    }
    bn_token *ids = NULL;
    size_t n = 0;
    int rc = parse_ids(list ? list : input, &ids, &n);
    free(input);
    bn_tokenizer *t = NULL;
    if (rc == 0 && bn_tokenizer_load_file(model, &t) != BN_OK)
        rc = cli_fail("detokenize");
    char *text = NULL;
    if (rc == 0 && bn_detokenize(t, ids, n, special, &text, &len) != BN_OK)
        rc = cli_fail("detokenize");
    if (rc == 0 && fwrite(text, 1, len, stdout) != len)
        rc = 1;
    bn_free(text);
    free(ids);
    bn_tokenizer_free(t);
    return rc;
}
