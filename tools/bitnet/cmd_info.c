/*
 * cmd_info.c - `bitnet info`: describe a GGUF file (metadata and tensor table, as text
 * or JSON), or the machine (--system).
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "train_dist.h"

const char cmd_info_help[] =
    "usage: bitnet info [--json] [--all] FILE.gguf\n"
    "       bitnet info --system [--json]\n"
    "\n"
    "Describe a GGUF model file: its version, every metadata key with its type and\n"
    "value, and the tensor table (name, type, shape, bytes, offset). Long arrays (the\n"
    "tokenizer's vocabulary, say) show their first items and their length.\n"
    "\n"
    "With --system, describe this machine instead: processor, logical CPUs, the SIMD\n"
    "features detected at run time, the kernel family chosen, thread count, devices\n"
    "and memory, and whether 'bitnet train' can run on many processes over MPI (with\n"
    "--json: one object with the keys bitnet, cpu, arch, logical_cpus, features,\n"
    "kernels, threads, devices, memory_bytes, mpi).\n"
    "\n"
    "options:\n"
    "  --json       print the same as one JSON object\n"
    "  --all        print arrays in full\n"
    "  --system     describe the machine\n"
    "  -h, --help   show this help\n";

/* Items of an array shown unless --all. */
#define INFO_ARRAY_HEAD 8

/* ------------------------------------------------------------------ system */

typedef struct cpu_flag {
    const char *name;
    bool        on;
} cpu_flag;

/* The SIMD features of cpu, in a fixed order; returns how many there are. */
static size_t cpu_flags(const bn_cpu_info *cpu, cpu_flag *out)
{
    const cpu_flag flags[] = {
        {"sse3", cpu->sse3},         {"ssse3", cpu->ssse3},
        {"avx", cpu->avx},           {"avx2", cpu->avx2},
        {"fma", cpu->fma},           {"f16c", cpu->f16c},
        {"avx512f", cpu->avx512f},   {"avx512bw", cpu->avx512bw},
        {"avx512vl", cpu->avx512vl}, {"avx512vnni", cpu->avx512vnni},
        {"avx512vbmi", cpu->avx512vbmi}, {"avx512bf16", cpu->avx512bf16},
        {"avxvnni", cpu->avx_vnni},  {"amx-int8", cpu->amx_int8},  {"neon", cpu->neon},
        {"dotprod", cpu->dotprod},   {"gfni", cpu->gfni},
    };
    memcpy(out, flags, sizeof flags);
    return sizeof flags / sizeof flags[0];
}

/* Physical memory in bytes, 0 when unknown. */
static uint64_t system_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

static int info_system_json(void)
{
    const bn_cpu_info *cpu = bn_cpu_get_info();
    cpu_flag flags[32];
    size_t nf = cpu_flags(cpu, flags);
    json_t *feat = json_array(), *dev = json_array();
    for (size_t i = 0; i < nf; i++)
        if (flags[i].on)
            json_array_append_new(feat, json_string(flags[i].name));
    for (int i = 0; i < bn_device_count(); i++)
        json_array_append_new(dev, json_string(bn_device_name(bn_device_get(i))));
    json_t *root = json_pack("{s:s, s:s, s:s, s:i, s:o, s:s, s:i, s:o, s:I, s:b}",
                             "bitnet", bn_version(), "cpu", cpu->brand, "arch", cpu->arch,
                             "logical_cpus", cpu->n_logical, "features", feat,
                             "kernels", bn_kernels_name(), "threads", bn_get_num_threads(),
                             "devices", dev, "memory_bytes", (json_int_t)system_memory(),
                             "mpi", train_dist_built());
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (!text) {
        fprintf(stderr, "bitnet info: out of memory\n");
        return 1;
    }
    puts(text);
    free(text);
    return 0;
}

static int info_system(void)
{
    const bn_cpu_info *cpu = bn_cpu_get_info();
    printf("bitnet:    %s\n", bn_version());
    printf("cpu:       %s (%s)\n", cpu->brand[0] ? cpu->brand : "unknown processor",
           cpu->arch);
    printf("cores:     %d logical\n", cpu->n_logical);
    cpu_flag flags[32];
    size_t nf = cpu_flags(cpu, flags);
    int shown = 0;
    printf("features:  ");
    for (size_t i = 0; i < nf; i++) {
        if (flags[i].on) {
            printf("%s%s", shown ? " " : "", flags[i].name);
            shown++;
        }
    }
    printf("%s\n", shown ? "" : "(none beyond the baseline)");
    printf("kernels:   %s\n", bn_kernels_name());
    printf("threads:   %d\n", bn_get_num_threads());
    printf("devices:  ");
    for (int i = 0; i < bn_device_count(); i++)
        printf(" %s", bn_device_name(bn_device_get(i)));
    printf("\n");
    uint64_t mem = system_memory();
    if (mem)
        printf("memory:    %.1f GiB\n", (double)mem / (1024.0 * 1024 * 1024));
    printf("mpi:       %s\n", train_dist_built() ? "yes (mpirun -np N bitnet train ...)"
                                                  : "no (built without MPI)");
    return 0;
}

/* ------------------------------------------------------------------ text */

/* Prints a string value quoted, escaping control characters, cut at `max` bytes. */
static void print_string(const char *s, uint64_t len, uint64_t max)
{
    putchar('"');
    for (uint64_t i = 0; i < len && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            printf("\\n");
        else if (c == '\t')
            printf("\\t");
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('"');
    if (len > max)
        printf("...(%llu bytes)", (unsigned long long)len);
}

static void print_value(const bn_gguf *g, const bn_gguf_value *v, bool all);

static void print_array(const bn_gguf *g, const bn_gguf_value *v, bool all)
{
    uint64_t n = v->v.arr.n, shown = all || n <= INFO_ARRAY_HEAD ? n : INFO_ARRAY_HEAD;
    putchar('[');
    for (uint64_t i = 0; i < shown; i++) {
        bn_gguf_value e = bn_gguf_array_get(g, v, i);
        if (i)
            printf(", ");
        print_value(g, &e, all);
    }
    if (shown < n)
        printf(", ... %llu more", (unsigned long long)(n - shown));
    putchar(']');
}

static void print_value(const bn_gguf *g, const bn_gguf_value *v, bool all)
{
    switch (v->type) {
    case BN_GGUF_STRING: print_string(v->v.str.ptr, v->v.str.len, all ? UINT64_MAX : 200); break;
    case BN_GGUF_ARRAY: print_array(g, v, all); break;
    case BN_GGUF_BOOL: printf("%s", v->v.u64 ? "true" : "false"); break;
    case BN_GGUF_FLOAT32: case BN_GGUF_FLOAT64: printf("%.9g", v->v.f64); break;
    case BN_GGUF_INT8: case BN_GGUF_INT16: case BN_GGUF_INT32: case BN_GGUF_INT64:
        printf("%lld", (long long)v->v.i64); break;
    default: printf("%llu", (unsigned long long)v->v.u64); break;
    }
}

/* "array[string]" or the scalar type's name. */
static const char *type_label(const bn_gguf_value *v, char *buf, size_t cap)
{
    static const char *const names[] = {"uint8", "int8", "uint16", "int16", "uint32",
                                        "int32", "float32", "bool", "string", "array",
                                        "uint64", "int64", "float64"};
    if (v->type == BN_GGUF_ARRAY)
        snprintf(buf, cap, "array[%s]", names[v->v.arr.elem_type]);
    else
        snprintf(buf, cap, "%s", names[v->type]);
    return buf;
}

static void shape_text(const bn_gguf_tensor *t, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = 0;
    for (int d = 0; d < t->n_dims && len < cap; d++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%lld", d ? " x " : "",
                                (long long)t->ne[d]);
}

static void info_text(const char *path, const bn_gguf *g, bool all)
{
    char b1[32], b2[32], label[32];
    printf("file:      %s (%s, GGUF v%u, alignment %zu)\n", path,
           cli_bytes(bn_gguf_file_size(g), b1, sizeof b1), bn_gguf_version(g),
           bn_gguf_alignment(g));
    printf("metadata:  %lld keys\n", (long long)bn_gguf_n_kv(g));
    for (int64_t i = 0; i < bn_gguf_n_kv(g); i++) {
        bn_gguf_value v = bn_gguf_kv_value(g, i);
        printf("  %-46s %-14s ", bn_gguf_kv_key(g, i), type_label(&v, label, sizeof label));
        if (v.type == BN_GGUF_ARRAY)
            printf("(%llu) ", (unsigned long long)v.v.arr.n);
        print_value(g, &v, all);
        putchar('\n');
    }
    uint64_t total = 0;
    for (int64_t i = 0; i < bn_gguf_n_tensors(g); i++)
        total += bn_gguf_get_tensor(g, i)->nbytes;
    printf("tensors:   %lld (%s)\n", (long long)bn_gguf_n_tensors(g),
           cli_bytes(total, b2, sizeof b2));
    if (bn_gguf_n_tensors(g))
        printf("  %-36s %-6s %-20s %14s %14s\n", "name", "type", "shape", "bytes", "offset");
    for (int64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_get_tensor(g, i);
        char shape[96];
        shape_text(t, shape, sizeof shape);
        printf("  %-36s %-6s %-20s %14zu %14llu\n", t->name, bn_qtype_get(t->type)->name,
               shape, t->nbytes, (unsigned long long)t->offset);
    }
}

/* ------------------------------------------------------------------ JSON */

static json_t *json_value(const bn_gguf *g, const bn_gguf_value *v, bool all);

/* A GGUF string as JSON: itself when it is valid UTF-8, else {"hex": "..."} so that no
 * byte is lost or made up. */
static json_t *json_string_value_of(const bn_gguf_value *v)
{
    json_t *s = json_stringn(v->v.str.ptr, (size_t)v->v.str.len);
    if (s)
        return s;
    size_t n = (size_t)v->v.str.len;
    char *hex = malloc(2 * n + 1);
    if (!hex)
        return json_null();
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", (unsigned char)v->v.str.ptr[i]);
    json_t *o = json_pack("{s:s}", "hex", hex);
    free(hex);
    return o;
}

static json_t *json_array_value(const bn_gguf *g, const bn_gguf_value *v, bool all)
{
    json_t *arr = json_array();
    uint64_t n = v->v.arr.n, shown = all || n <= INFO_ARRAY_HEAD ? n : INFO_ARRAY_HEAD;
    for (uint64_t i = 0; i < shown; i++) {
        bn_gguf_value e = bn_gguf_array_get(g, v, i);
        json_array_append_new(arr, json_value(g, &e, all));
    }
    return arr;
}

static json_t *json_value(const bn_gguf *g, const bn_gguf_value *v, bool all)
{
    switch (v->type) {
    case BN_GGUF_STRING: return json_string_value_of(v);
    case BN_GGUF_ARRAY: return json_array_value(g, v, all);
    case BN_GGUF_BOOL: return json_boolean(v->v.u64);
    case BN_GGUF_FLOAT32: case BN_GGUF_FLOAT64: return json_real(v->v.f64);
    case BN_GGUF_INT8: case BN_GGUF_INT16: case BN_GGUF_INT32: case BN_GGUF_INT64:
        return json_integer(v->v.i64);
    default:
        /* a uint64 beyond INT64_MAX does not fit a JSON integer of jansson: as a string */
        if (v->v.u64 > (uint64_t)INT64_MAX) {
            char buf[32];
            snprintf(buf, sizeof buf, "%llu", (unsigned long long)v->v.u64);
            return json_string(buf);
        }
        return json_integer((json_int_t)v->v.u64);
    }
}

static int info_json(const char *path, const bn_gguf *g, bool all)
{
    json_t *root = json_object(), *meta = json_array(), *tensors = json_array();
    char label[32];
    json_object_set_new(root, "file", json_string(path));
    json_object_set_new(root, "size", json_integer((json_int_t)bn_gguf_file_size(g)));
    json_object_set_new(root, "version", json_integer(bn_gguf_version(g)));
    json_object_set_new(root, "alignment", json_integer((json_int_t)bn_gguf_alignment(g)));
    json_object_set_new(root, "data_offset",
                        json_integer((json_int_t)bn_gguf_data_offset(g)));
    for (int64_t i = 0; i < bn_gguf_n_kv(g); i++) {
        bn_gguf_value v = bn_gguf_kv_value(g, i);
        json_t *kv = json_object();
        json_object_set_new(kv, "key", json_string(bn_gguf_kv_key(g, i)));
        json_object_set_new(kv, "type", json_string(type_label(&v, label, sizeof label)));
        if (v.type == BN_GGUF_ARRAY) {
            json_object_set_new(kv, "n", json_integer((json_int_t)v.v.arr.n));
            json_object_set_new(kv, "truncated",
                                json_boolean(!all && v.v.arr.n > INFO_ARRAY_HEAD));
        }
        json_object_set_new(kv, "value", json_value(g, &v, all));
        json_array_append_new(meta, kv);
    }
    for (int64_t i = 0; i < bn_gguf_n_tensors(g); i++) {
        const bn_gguf_tensor *t = bn_gguf_get_tensor(g, i);
        json_t *jt = json_object(), *shape = json_array();
        for (int d = 0; d < t->n_dims; d++)
            json_array_append_new(shape, json_integer(t->ne[d]));
        json_object_set_new(jt, "name", json_string(t->name));
        json_object_set_new(jt, "type", json_string(bn_qtype_get(t->type)->name));
        json_object_set_new(jt, "type_id", json_integer(t->type));
        json_object_set_new(jt, "shape", shape);
        json_object_set_new(jt, "bytes", json_integer((json_int_t)t->nbytes));
        json_object_set_new(jt, "offset", json_integer((json_int_t)t->offset));
        json_array_append_new(tensors, jt);
    }
    json_object_set_new(root, "metadata", meta);
    json_object_set_new(root, "tensors", tensors);
    int rc = json_dumpf(root, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER) == 0 ? 0 : 1;
    putchar('\n');
    json_decref(root);
    return rc;
}

int cmd_info(int argc, char **argv)
{
    bool system = false, json = false, all = false;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--system") == 0)
            system = true;
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--all") == 0)
            all = true;
        else if (cli_is_help(argv[i]))
            return cli_help("info");
        else if (argv[i][0] == '-' && argv[i][1])
            return cli_usage_error("info", "unknown option '%s'", argv[i]);
        else if (path)
            return cli_usage_error("info", "one file at a time ('%s' and '%s')", path, argv[i]);
        else
            path = argv[i];
    }
    if (system && path)
        return cli_usage_error("info", "--system takes no file");
    if (system && all)
        return cli_usage_error("info", "--all applies to a file, not --system");
    if (system)
        return json ? info_system_json() : info_system();
    if (!path)
        return cli_usage_error("info", "name a GGUF file, or pass --system");
    bn_gguf *g = NULL;
    if (bn_gguf_open(path, &g) != BN_OK)
        return cli_fail("info");
    int rc = json ? info_json(path, g, all) : (info_text(path, g, all), 0);
    bn_gguf_close(g);
    return rc;
}
