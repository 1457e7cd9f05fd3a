/*
 * cmd_chat.c - `bitnet chat`: an interactive conversation with a model through its chat
 * template. The conversation lives in the library's chat session (bn_chat), which
 * renders it before each reply, reuses what the KV cache holds and drops the oldest
 * exchanges when the context is full; this file reads messages and commands, streams
 * replies to stdout and puts notices and figures on stderr. Lines come from libedit on
 * a terminal and from plain reads otherwise, so that a session can be scripted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>
#include <jansson.h>

#include "run_common.h"

const char cmd_chat_help[] =
    "usage: bitnet chat [-m MODEL] [options]\n"
    "\n"
    "Talk with the model. Each line you type is a message; the model's reply is\n"
    "streamed to stdout. A line ending in \\ continues on the next line. Lines starting\n"
    "with / are commands (/help lists them; // starts a message with /). Ctrl-C stops\n"
    "a reply (what it said so far is kept); /exit or Ctrl-D ends the session.\n"
    "\n"
    "The whole conversation is kept while it fits in the context (-c). When it and room\n"
    "for the next reply (-n tokens, or a quarter of the context without -n; at most\n"
    "half of it) no longer fit, the oldest exchanges are dropped, the system message is\n"
    "kept, and a notice is printed. A message that does not fit even alone (with the\n"
    "system message) is refused with a message and the session goes on.\n"
    "\n"
    "Standard input need not be a terminal: then no prompt is shown and the session\n"
    "reads lines until /exit or the end of the input.\n"
    "\n"
    "options:\n"
    "  -sys, --system-prompt, --system TEXT\n"
    "                       the system message\n"
    "  --template NAME      the chat template: llama3 or bitnet (the 2B-4T format);\n"
    "                       default: the model's own, and llama3 with a notice when\n"
    "                       the model has none this version knows\n"
    "  -n, --n-predict N    most tokens per reply (default -1: until the end of the\n"
    "                       turn or a full context)\n"
    "  -h, --help           show this help\n"
    "\n"
    "exit status: 0; 1 when the model cannot be loaded, or when standard input is not a\n"
    "terminal and a message or command failed (the session still runs to its end);\n"
    "2 for bad usage.\n"
    "\n";

const char cmd_chat_commands_help[] =
    "commands:\n"
    "  /help         this list\n"
    "  /clear        forget the conversation (the system message stays)\n"
    "  /history      print the conversation\n"
    "  /save FILE    write the conversation as JSON ([{\"role\": ..., \"content\": ...}])\n"
    "  /load FILE    replace the conversation with one written by /save\n"
    "  /stats        context use, the last reply's speed, memory\n"
    "  /exit         end the session (also Ctrl-D)\n"
    "A line ending in \\ continues on the next one; // starts a message with /.\n"
    "Ctrl-C stops a reply; at the prompt it does nothing (use /exit or Ctrl-D).\n";

static const char *const chat_cmd = "chat";

/* ------------------------------------------------------------------ session */

typedef struct chat_session {
    const run_opts *o;
    bn_model       *m;
    bn_context     *c;
    bn_chat        *chat;
    const char     *tmpl;       /* the template's name; NULL: the model's */
    int64_t         n_predict;  /* most tokens per reply; -1: no limit */
    int32_t         n_ctx;
    bool            failed;     /* a message or command failed */
    /* figures of the last reply, for /stats */
    int64_t         last_tokens, last_prompt_eval, last_prompt_reused;
    double          last_seconds;
} chat_session;

/* Index of the first message that may be dropped or cleared: 1 after a system
 * message, else 0. */
static size_t chat_first_turn(const bn_chat *chat)
{
    return bn_chat_n_messages(chat) > 0 &&
           strcmp(bn_chat_get_message(chat, 0).role, "system") == 0 ? 1 : 0;
}

/* A reply's text, to the terminal as it comes; Ctrl-C stops after it. */
static bool chat_print_piece(bn_token id, const char *text, size_t len, void *user)
{
    (void)id;
    (void)user;
    if (fwrite(text, 1, len, stdout) != len || !cli_flush_stdout())
        return false;                    /* the reply cannot be shown: stop it */
    return !run_interrupted;
}

/* Why a reply was cut short, for "[reply ...]"; NULL when it ended by itself. */
static const char *chat_cut_words(bn_stop_reason why)
{
    switch (why) {
    case BN_STOP_CANCELLED:    return "interrupted (Ctrl-C)";
    case BN_STOP_MAX_TOKENS:   return "cut at the -n token limit";
    case BN_STOP_CONTEXT_FULL: return "cut: the context is full (the next message drops "
                                      "the oldest ones)";
    case BN_STOP_EOG:
    case BN_STOP_TEXT:         break;
    }
    return NULL;
}

/* Brings the context up to the conversation (its last message the new user message),
 * saying what was dropped to fit. False with a message when it cannot. */
static bool chat_prefill(chat_session *s)
{
    bn_chat_prefill_info info;
    bn_status st = bn_chat_prefill(s->chat, (int32_t)s->n_predict, &info);
    if (st == BN_ERR_CONTEXT_FULL) {
        fprintf(stderr, "bitnet chat: %s; use a larger -c or a shorter message%s\n",
                bn_last_error(), chat_first_turn(s->chat) ? " or system message" : "");
        return false;
    }
    if (st != BN_OK) {
        cli_fail(chat_cmd);
        return false;
    }
    if (info.n_dropped)
        fprintf(stderr, "bitnet chat: the conversation outgrew the context (%d positions, "
                "%d kept for the reply): dropped the oldest %zu message%s\n", s->n_ctx,
                info.n_reserved, info.n_dropped, info.n_dropped == 1 ? "" : "s");
    s->last_prompt_reused = info.n_reused;
    s->last_prompt_eval = info.n_evaluated;
    return true;
}

/* Streams the reply after a prefill; the session keeps it even when it was cut short.
 * False when generation failed. */
static bool chat_reply(chat_session *s)
{
    bn_generate_params gp = bn_generate_default_params();
    gp.max_tokens = (int32_t)s->n_predict;
    gp.sampling = s->o->sp;
    gp.stops = s->o->stops;
    gp.n_stops = s->o->n_stops;
    gp.on_token = chat_print_piece;
    bn_generate_result r = {.stop = BN_STOP_CANCELLED};
    bn_status st = BN_OK;
    if (run_interrupted) {
        /* Ctrl-C while the conversation was evaluated: an empty reply */
        if (bn_chat_add_message(s->chat, "assistant", "") != BN_OK)
            st = bn_last_status();
    } else {
        st = bn_chat_reply(s->chat, &gp, &r);
    }
    fputc('\n', stdout);
    cli_flush_stdout();
    if (st != BN_OK) {
        cli_fail(chat_cmd);
        return false;
    }
    s->last_seconds = r.generate_seconds;
    s->last_tokens = r.n_generated;
    const char *why = chat_cut_words(r.stop);
    if (why)
        fprintf(stderr, "[reply %s]\n", why);
    return true;
}

/* One exchange: the user's message, then the model's reply. A message that cannot be
 * evaluated is taken back out of the conversation. */
static bool chat_turn(chat_session *s, const char *text)
{
    if (bn_chat_add_message(s->chat, "user", text) != BN_OK) {
        fprintf(stderr, "bitnet chat: out of memory\n");
        return false;
    }
    if (!chat_prefill(s)) {
        bn_chat_remove_messages(s->chat, bn_chat_n_messages(s->chat) - 1, 1);
        return false;
    }
    return chat_reply(s);
}

/* ------------------------------------------------------------------ commands */

static void chat_history(const chat_session *s)
{
    size_t n = bn_chat_n_messages(s->chat);
    if (n == 0)
        printf("(the conversation is empty)\n");
    for (size_t i = 0; i < n; i++) {
        bn_chat_message msg = bn_chat_get_message(s->chat, i);
        printf("%s: %s\n", msg.role, msg.content);
    }
    cli_flush_stdout();
}

static void chat_stats(const chat_session *s)
{
    size_t n_msg = bn_chat_n_messages(s->chat);
    fprintf(stderr, "context: %d / %d tokens (%zu message%s)\n", bn_context_n_past(s->c),
            s->n_ctx, n_msg, CLI_S(n_msg));
    fprintf(stderr, "last reply: %lld token%s in %.2f s (%.2f tokens/s); its prompt: %lld "
            "token%s evaluated, %lld reused from the cache\n", (long long)s->last_tokens,
            CLI_S(s->last_tokens), s->last_seconds,
            s->last_seconds > 0 ? (double)s->last_tokens / s->last_seconds : 0.0,
            (long long)s->last_prompt_eval, CLI_S(s->last_prompt_eval),
            (long long)s->last_prompt_reused);
    run_print_memory(s->m, s->c);
}

/* A copy of text with each byte that is not part of valid UTF-8 replaced by U+FFFD
 * (replies may end inside a character); NULL when out of memory. */
static char *utf8_repair(const char *text)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t n = strlen(text);
    char *out = malloc(n * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t need = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
                      : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        bool valid = need > 0 && i + need <= n;
        for (size_t k = 1; valid && k < need; k++)
            valid = (p[i + k] & 0xc0) == 0x80;
        /* overlong forms, surrogates and code points past U+10FFFF */
        if (valid && need == 3)
            valid = !(c == 0xe0 && p[i + 1] < 0xa0) && !(c == 0xed && p[i + 1] >= 0xa0);
        if (valid && need == 4)
            valid = !(c == 0xf0 && p[i + 1] < 0x90) && !(c == 0xf4 && p[i + 1] >= 0x90);
        if (valid) {
            memcpy(o, p + i, need);
            o += need;
            i += need;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    *o = '\0';
    return out;
}

/* The conversation as a JSON array of {"role", "content"} objects; NULL when out of
 * memory. *repaired counts messages whose invalid UTF-8 was replaced. */
static json_t *chat_to_json(const bn_chat *chat, int *repaired)
{
    json_t *arr = json_array();
    *repaired = 0;
    for (size_t i = 0; arr && i < bn_chat_n_messages(chat); i++) {
        bn_chat_message m = bn_chat_get_message(chat, i);
        json_t *content = json_string(m.content);
        if (!content) {
            char *fixed = utf8_repair(m.content);
            content = fixed ? json_string(fixed) : NULL;
            free(fixed);
            (*repaired)++;
        }
        json_t *msg = json_object();
        if (!content || !msg || json_object_set_new(msg, "role",
                                                    json_string(m.role)) != 0 ||
            json_object_set_new(msg, "content", content) != 0 ||
            json_array_append_new(arr, msg) != 0) {
            if (!msg)
                json_decref(content);
            json_decref(msg);
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

/* /save: the conversation to path, whole or not at all (bn_out_file). */
static bool chat_save(const chat_session *s, const char *path)
{
    int repaired = 0;
    json_t *arr = chat_to_json(s->chat, &repaired);
    char *text = arr ? json_dumps(arr, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(arr);
    if (!text) {
        fprintf(stderr, "bitnet chat: /save: out of memory\n");
        return false;
    }
    bn_out_file *f = NULL;
    bn_status st = bn_out_file_open(path, &f);
    if (st == BN_OK)
        st = bn_out_file_write(f, text, strlen(text));
    if (st == BN_OK)
        st = bn_out_file_write(f, "\n", 1);
    if (st == BN_OK)
        st = bn_out_file_commit(f);
    else
        bn_out_file_discard(f);
    free(text);
    if (st != BN_OK) {
        fprintf(stderr, "bitnet chat: /save: %s\n", bn_last_error());
        return false;
    }
    fprintf(stderr, "saved %zu messages to %s\n", bn_chat_n_messages(s->chat), path);
    if (repaired)
        fprintf(stderr, "bitnet chat: /save: %d message%s had bytes that are not "
                "UTF-8; they were saved as U+FFFD\n", repaired, repaired == 1 ? "" : "s");
    return true;
}

/* Reads a file written by /save into *root (json_decref it); false with a message on
 * anything else: not JSON, not an array of objects with a known "role" and a string
 * "content", a system message that is not the first. */
static bool chat_read_log(const char *path, json_t **root_out)
{
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root && jerr.line < 0) {   /* not read at all: jansson's text says why */
        fprintf(stderr, "bitnet chat: /load: %s\n", jerr.text);
        return false;
    }
    if (!root) {
        fprintf(stderr, "bitnet chat: /load: %s: line %d, column %d: %s\n", path,
                jerr.line, jerr.column, jerr.text);
        return false;
    }
    const char *bad = json_is_array(root) ? NULL : "not a JSON array of messages";
    size_t i = 0;
    for (; !bad && i < json_array_size(root); i++) {
        json_t *msg = json_array_get(root, i);
        const char *role = json_string_value(json_object_get(msg, "role"));
        const char *content = json_string_value(json_object_get(msg, "content"));
        if (!json_is_object(msg))
            bad = "is not an object";
        else if (!role || !content)
            bad = "needs the strings \"role\" and \"content\"";
        else if (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0 &&
                 strcmp(role, "system") != 0)
            bad = "has a role that is not system, user or assistant";
        else if (strcmp(role, "system") == 0 && i > 0)
            bad = "is a system message after the first message";
    }
    if (bad) {
        /* i counts from 1 here: the loop stepped past the bad message */
        if (json_is_array(root))
            fprintf(stderr, "bitnet chat: /load: %s: message %zu %s\n", path, i, bad);
        else
            fprintf(stderr, "bitnet chat: /load: %s: %s\n", path, bad);
        json_decref(root);
        return false;
    }
    *root_out = root;
    return true;
}

/* /load: replaces the conversation with the file's; the current system message stays
 * when the file has none. The old conversation stays when the file is bad. */
static bool chat_load(chat_session *s, const char *path)
{
    json_t *root;
    if (!chat_read_log(path, &root))
        return false;
    size_t n_file = json_array_size(root), n = 0;
    bn_chat_message *msgs = malloc((n_file + 1) * sizeof *msgs);
    if (!msgs) {
        fprintf(stderr, "bitnet chat: /load: out of memory\n");
        json_decref(root);
        return false;
    }
    bool file_system = n_file > 0 &&
        strcmp(json_string_value(json_object_get(json_array_get(root, 0), "role")),
               "system") == 0;
    if (!file_system && chat_first_turn(s->chat))
        msgs[n++] = bn_chat_get_message(s->chat, 0);   /* keep our system message */
    for (size_t i = 0; i < n_file; i++) {
        json_t *msg = json_array_get(root, i);
        msgs[n].role = json_string_value(json_object_get(msg, "role"));
        msgs[n].content = json_string_value(json_object_get(msg, "content"));
        n++;
    }
    bool ok = bn_chat_set_messages(s->chat, msgs, n) == BN_OK;
    free(msgs);
    json_decref(root);
    if (!ok) {
        fprintf(stderr, "bitnet chat: /load: out of memory\n");
        return false;
    }
    fprintf(stderr, "loaded %zu messages from %s\n", bn_chat_n_messages(s->chat), path);
    return true;
}

/* Runs a /command line; false when it failed. *quit is set by /exit. */
static bool chat_command(chat_session *s, char *line, bool *quit)
{
    const char *name = line + 1;
    size_t name_len = strcspn(name, " \t");
    const char *arg = name + name_len;
    arg += strspn(arg, " \t");
    char *end = line + strlen(line);
    while (end > arg && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
#define IS(cmd) (name_len == strlen(cmd) && strncmp(name, cmd, name_len) == 0)
    bool takes_file = IS("save") || IS("load");
    if (takes_file && !*arg) {
        fprintf(stderr, "bitnet chat: /%.*s needs a file name\n", (int)name_len, name);
        return false;
    }
    if (!takes_file && *arg) {
        fprintf(stderr, "bitnet chat: /%.*s takes no argument\n", (int)name_len, name);
        return false;
    }
    if (IS("help")) {
        fputs(cmd_chat_commands_help, stdout);
        cli_flush_stdout();
    } else if (IS("exit") || IS("quit")) {
        *quit = true;
    } else if (IS("clear")) {
        size_t first = chat_first_turn(s->chat);
        bn_chat_remove_messages(s->chat, first, bn_chat_n_messages(s->chat) - first);
        fprintf(stderr, "the conversation is cleared%s\n",
                first ? " (the system message stays)" : "");
    } else if (IS("history")) {
        chat_history(s);
    } else if (IS("stats")) {
        chat_stats(s);
    } else if (IS("save")) {
        return chat_save(s, arg);
    } else if (IS("load")) {
        return chat_load(s, arg);
    } else {
        fprintf(stderr, "bitnet chat: unknown command '/%.*s'; /help lists the commands\n",
                (int)name_len, name);
        return false;
    }
#undef IS
    return true;
}

/* ------------------------------------------------------------------ input */

typedef enum chat_read { CHAT_READ_LINE, CHAT_READ_EOF, CHAT_READ_INTERRUPT } chat_read;

typedef struct chat_input {
    bool   tty;        /* stdin is a terminal: libedit */
    char  *buf;        /* the message being read */
    size_t len, cap;
    char  *line;       /* getline's buffer */
    size_t line_cap;
} chat_input;

/* libedit's character reader: a plain read that gives up (EOF) on Ctrl-C, so that
 * readline returns and the prompt starts over. */
static int chat_getc(FILE *in)
{
    unsigned char ch;
    for (;;) {
        ssize_t n = read(fileno(in), &ch, 1);
        if (n == 1)
            return ch;
        if (n == 0 || errno != EINTR || run_interrupted)
            return EOF;
    }
}

/* One line without its newline into a malloc'd *line (NULL at EOF). */
static chat_read input_line(chat_input *in, const char *prompt, char **line)
{
    *line = NULL;
    if (in->tty) {
        *line = readline(prompt);
        if (run_interrupted) {
            free(*line);
            *line = NULL;
            return CHAT_READ_INTERRUPT;
        }
        return *line ? CHAT_READ_LINE : CHAT_READ_EOF;
    }
    errno = 0;
    ssize_t n = getline(&in->line, &in->line_cap, stdin);
    if (n < 0) {
        if (run_interrupted || errno == EINTR) {
            clearerr(stdin);
            return CHAT_READ_INTERRUPT;
        }
        return CHAT_READ_EOF;
    }
    while (n > 0 && (in->line[n - 1] == '\n' || in->line[n - 1] == '\r'))
        in->line[--n] = '\0';
    *line = strdup(in->line);
    return *line ? CHAT_READ_LINE : CHAT_READ_EOF;
}

/* Appends n bytes to the message being read. */
static bool input_append(chat_input *in, const char *text, size_t n)
{
    if (in->len + n + 1 > in->cap) {
        size_t cap = (in->len + n + 1) * 2;
        char *grown = realloc(in->buf, cap);
        if (!grown)
            return false;
        in->buf = grown;
        in->cap = cap;
    }
    memcpy(in->buf + in->len, text, n);
    in->len += n;
    in->buf[in->len] = '\0';
    return true;
}

/* One message into in->buf: lines joined while they end in a backslash. */
static chat_read input_message(chat_input *in)
{
    in->len = 0;
    bool more = false;
    for (;;) {
        char *line;
        chat_read r = input_line(in, more ? "... " : "> ", &line);
        if (r == CHAT_READ_INTERRUPT)
            return r;
        if (r == CHAT_READ_EOF)
            return more && in->len ? CHAT_READ_LINE : CHAT_READ_EOF;
        size_t n = strlen(line);
        more = n > 0 && line[n - 1] == '\\';
        bool ok = input_append(in, line, more ? n - 1 : n) &&
                  (!more || input_append(in, "\n", 1));
        free(line);
        if (!ok) {
            fprintf(stderr, "bitnet chat: out of memory for the message\n");
            return CHAT_READ_EOF;
        }
        if (!more)
            break;
    }
    if (in->tty && in->len)
        add_history(in->buf);
    return CHAT_READ_LINE;
}

/* ------------------------------------------------------------------ the command */

/* The template to use in *tmpl: the one named, else the model's (NULL), else llama3
 * with a notice. False with a message when the named one is unknown. */
static bool chat_pick_template(const bn_tokenizer *tok, const char *name, const char **tmpl)
{
    char *text = NULL;
    size_t len;
    *tmpl = name;
    if (bn_chat_format(tok, name, NULL, 0, false, &text, &len) == BN_OK) {
        bn_free(text);
        return true;
    }
    if (name) {
        fprintf(stderr, "bitnet chat: %s\n", bn_last_error());
        return false;
    }
    fprintf(stderr, "bitnet chat: %s; using the llama3 template (choose one with "
            "--template)\n", bn_last_error());
    *tmpl = "llama3";
    return true;
}

/* Reads and answers messages until /exit or the end of the input. */
static void chat_loop(chat_session *s, chat_input *in)
{
    if (in->tty)
        fprintf(stderr, "chatting with %s (template %s, context %d); /help for commands, "
                "/exit or Ctrl-D to quit\n", s->o->model, s->tmpl ? s->tmpl : "the model's",
                s->n_ctx);
    bool quit = false;
    while (!quit) {
        run_interrupted = 0;
        chat_read r = input_message(in);
        if (r == CHAT_READ_EOF)
            break;
        if (r == CHAT_READ_INTERRUPT) {
            fprintf(stderr, "\n(use /exit or Ctrl-D to quit)\n");
            continue;
        }
        char *text = in->buf;
        if (text[strspn(text, " \t\n")] == '\0')
            continue;
        bool ok;
        if (text[0] == '/' && text[1] != '/')
            ok = chat_command(s, text, &quit);
        else
            ok = chat_turn(s, text[0] == '/' ? text + 1 : text);
        if (!ok)
            s->failed = true;
    }
    if (in->tty && !quit)
        fputc('\n', stderr);
}

int cmd_chat(int argc, char **argv)
{
    run_opts o;
    run_opts_init(&o);
    const char *system_msg = NULL, *tmpl_name = NULL;
    int64_t n_predict = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = run_parse_opt(chat_cmd, argc, argv, &i, &o, true);
        if (r == 1)
            continue;
        if (r != 0)
            return EXIT_USAGE;
        if (cli_is_help(a)) {
            return cli_help("chat");
        } else if ((!strcmp(a, "--system") || !strcmp(a, "-sys") ||
                    !strcmp(a, "--system-prompt")) && i + 1 < argc) {
            system_msg = argv[++i];
        } else if (!strcmp(a, "--template") && i + 1 < argc) {
            tmpl_name = argv[++i];
        } else if ((!strcmp(a, "-n") || !strcmp(a, "--n-predict")) && i + 1 < argc) {
            if (!cli_parse_int(argv[++i], -1, INT32_MAX, &n_predict) || n_predict == 0)
                return cli_usage_error(chat_cmd, "invalid token count '%s' (-1, or 1 or "
                                       "more)", argv[i]);
        } else if (a[0] == '-') {
            return cli_usage_error(chat_cmd, "unknown option '%s' (or it needs a value)",
                                   a);
        } else {
            return cli_usage_error(chat_cmd, "unexpected argument '%s'", a);
        }
    }
    if (!run_model_or_default(chat_cmd, &o))
        return EXIT_USAGE;

    int rc = 1;
    chat_session s;
    memset(&s, 0, sizeof s);
    s.o = &o;
    s.n_predict = n_predict;
    chat_input in;
    memset(&in, 0, sizeof in);
    in.tty = isatty(STDIN_FILENO);
    if (!run_load(chat_cmd, &o, false, &s.m, &s.c, NULL))
        goto done;
    run_pick_seed(&o);              /* after the load: no seed line on a failure */
    const bn_tokenizer *tok = bn_model_tokenizer(s.m);
    if (!tok) {
        fprintf(stderr, "bitnet chat: the model has no tokenizer (no tokenizer.ggml.* "
                "metadata)\n");
        goto done;
    }
    if (!chat_pick_template(tok, tmpl_name, &s.tmpl)) {
        rc = EXIT_USAGE;
        goto done;
    }
    s.n_ctx = bn_context_n_ctx(s.c);
    bn_chat_params chp = bn_chat_default_params();
    chp.template_name = s.tmpl;
    if (bn_chat_create(s.c, &chp, &s.chat) != BN_OK ||
        (system_msg && bn_chat_add_message(s.chat, "system", system_msg) != BN_OK)) {
        cli_fail(chat_cmd);
        goto done;
    }
    if (in.tty) {
        rl_readline_name = "bitnet";
        rl_getc_function = chat_getc;
        if (!isatty(STDOUT_FILENO))
            rl_outstream = stderr;   /* the prompt is not part of the output */
    }
    run_catch_sigint(true);
    chat_loop(&s, &in);
    run_catch_sigint(false);
    rc = s.failed && !in.tty ? 1 : 0;
done:
    free(in.buf);
    free(in.line);
    bn_chat_free(s.chat);
    bn_context_free(s.c);
    bn_model_free(s.m);
    return rc;
}
