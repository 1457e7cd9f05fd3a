/*
 * serve_engine.c - continuous batching for `bitnet serve`: one thread owns the context
 * and the library's generator, whose sequences are the server's slots. Connections
 * queue jobs (a bounded FIFO); between two steps the thread drops the jobs whose
 * client went away, moves queued jobs into free slots (their prompts are evaluated in
 * the next step, together with one token of every running generation), then runs the
 * step. The generator's callback appends each job's text under the engine's lock and
 * wakes the connections, which wait on one condition variable.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "run_common.h"
#include "serve.h"

struct serve_engine {
    bn_context      *ctx;
    bn_generator    *gen;
    int32_t          n_slots;
    pthread_t        thread;
    bool             thread_started;
    pthread_mutex_t  lock;
    pthread_cond_t   work;        /* the engine thread: a job came or was cancelled */
    pthread_cond_t   progress;    /* the connections: text, an end, a release */
    serve_job       *head, *tail; /* the queue */
    serve_job      **slot;        /* [n_slots] the job in each sequence, or NULL */
    serve_stats      st;
    bool             closed;      /* refuses new jobs */
    bool             quit;        /* the thread ends */
};

/* The generator's callback: the job's new text, kept for its connection. Returns false
 * (stop) when the client went away or the text cannot be kept. */
static bool engine_on_token(bn_token id, const char *text, size_t len, void *user)
{
    serve_job *job = user;
    serve_engine *e = job->engine;
    pthread_mutex_lock(&e->lock);
    job->n_generated += id >= 0;
    bool go_on = !job->cancelled && !job->oom;
    if (job->t_first == 0)
        job->t_first = run_now();
    if (len > 0 && job->len + len + 1 > job->cap) {
        size_t cap = (job->len + len + 1) * 2;
        char *p = realloc(job->text, cap);
        if (p) {
            job->text = p;
            job->cap = cap;
        } else {
            job->oom = true;
            go_on = false;
        }
    }
    if (len > 0 && !job->oom) {
        memcpy(job->text + job->len, text, len);
        job->len += len;
        job->text[job->len] = '\0';
        pthread_cond_broadcast(&e->progress);
    }
    pthread_mutex_unlock(&e->lock);
    return go_on;
}

/* The generator's logits callback, for a job that asked for log-probabilities: the
 * token's and its best alternatives' (computed before the lock is taken), and where
 * its text lies, kept for the connection. */
static void engine_on_logits(bn_token id, const float *logits, int32_t n_vocab,
                             const char *piece, size_t piece_len, void *user)
{
    (void)piece;
    serve_job *job = user;
    serve_engine *e = job->engine;
    serve_logprob lp = {.id = id};
    lp.n_top = bn_logprobs(logits, n_vocab, id, job->logprobs, &lp.logprob, lp.top_ids,
                           lp.top_logprobs);
    pthread_mutex_lock(&e->lock);
    if (job->n_lp == job->cap_lp && !job->oom) {
        size_t cap = job->cap_lp ? 2 * job->cap_lp : 64;
        serve_logprob *p = realloc(job->lp, cap * sizeof *p);
        if (p) {
            job->lp = p;
            job->cap_lp = cap;
        } else {
            job->oom = true;           /* on_token, called next, stops the generation */
        }
    }
    if (!job->oom) {
        lp.start = job->pieces_len;
        lp.len = piece_len;
        job->lp[job->n_lp++] = lp;
        job->pieces_len += piece_len;
    }
    pthread_mutex_unlock(&e->lock);
}

/* Marks the job finished and wakes its connection (lock held). */
static void engine_finish(serve_engine *e, serve_job *job)
{
    job->queued = false;
    job->running = false;
    job->finished = true;
    job->t_done = run_now();
    pthread_cond_broadcast(&e->progress);
}

/* Between steps (lock held): releases the slots of cancelled jobs and of jobs done in
 * the last step, then fills free slots from the queue. */
static void engine_admit(serve_engine *e)
{
    for (int32_t s = 0; s < e->n_slots; s++) {
        serve_job *job = e->slot[s];
        bn_generate_result res;
        if (!job)
            continue;
        if (bn_generator_done(e->gen, s, &res)) {
            job->result = res;
            e->st.prompt_tokens += (uint64_t)(res.n_prompt - res.n_prompt_reused);
            e->st.prompt_tokens_reused += (uint64_t)res.n_prompt_reused;
            e->st.generated_tokens += (uint64_t)res.n_generated;
            if (res.stop == BN_STOP_CANCELLED)
                e->st.jobs_cancelled++;
            else
                e->st.jobs_done++;
        } else if (job->cancelled) {
            /* dropped between two steps: what it had done still counts */
            job->result.stop = BN_STOP_CANCELLED;
            job->result.n_prompt = job->n_ids;
            job->result.n_prompt_reused = 0;
            job->result.n_generated = job->n_generated;
            e->st.prompt_tokens += (uint64_t)job->n_ids;
            e->st.generated_tokens += (uint64_t)job->n_generated;
            e->st.jobs_cancelled++;
        } else {
            continue;
        }
        bn_generator_release(e->gen, s);
        e->slot[s] = NULL;
        engine_finish(e, job);
    }
    while (e->head && bn_generator_n_free(e->gen) > 0) {
        serve_job *job = e->head;
        e->head = job->next;
        if (!e->head)
            e->tail = NULL;
        job->next = NULL;
        e->st.queue_len--;
        int32_t seq = -1;
        if (bn_generator_add(e->gen, job->ids, job->n_ids, &job->gp, &seq) != BN_OK) {
            snprintf(job->error, sizeof job->error, "%s", bn_last_error());
            engine_finish(e, job);
            continue;
        }
        job->queued = false;
        job->running = true;
        e->slot[seq] = job;
    }
    int32_t busy = 0;
    for (int32_t s = 0; s < e->n_slots; s++)
        busy += e->slot[s] != NULL;
    e->st.slots_busy = busy;
}

static void *engine_main(void *arg)
{
    serve_engine *e = arg;
    pthread_mutex_lock(&e->lock);
    while (!e->quit) {
        engine_admit(e);
        if (e->st.slots_busy == 0) {
            pthread_cond_wait(&e->work, &e->lock);
            continue;
        }
        pthread_mutex_unlock(&e->lock);
        double t0 = run_now();
        bn_status st = bn_generator_step(e->gen, NULL);
        double dt = run_now() - t0;
        pthread_mutex_lock(&e->lock);
        e->st.busy_seconds += dt;
        e->st.steps++;
        if (st != BN_OK) {
            /* an evaluation that failed fails again: end every running job with it */
            fprintf(stderr, "bitnet serve: %s\n", bn_last_error());
            for (int32_t s = 0; s < e->n_slots; s++) {
                if (!e->slot[s])
                    continue;
                snprintf(e->slot[s]->error, sizeof e->slot[s]->error, "%s",
                         bn_last_error());
                bn_generator_release(e->gen, s);
                engine_finish(e, e->slot[s]);
                e->slot[s] = NULL;
            }
        }
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

serve_engine *serve_engine_start(bn_context *ctx, int32_t queue_max, int32_t prefill_chunk)
{
    serve_engine *e = calloc(1, sizeof *e);
    if (!e) {
        fprintf(stderr, "bitnet serve: out of memory\n");
        return NULL;
    }
    e->ctx = ctx;
    e->n_slots = bn_context_n_seq(ctx);
    e->st.n_slots = e->n_slots;
    e->st.queue_max = queue_max;
    pthread_mutex_init(&e->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->work, NULL);
    pthread_cond_init(&e->progress, &ca);
    pthread_condattr_destroy(&ca);
    e->slot = calloc((size_t)e->n_slots, sizeof *e->slot);
    if (!e->slot) {
        fprintf(stderr, "bitnet serve: out of memory\n");
        serve_engine_free(e);
        return NULL;
    }
    if (bn_generator_create(ctx, &e->gen) != BN_OK) {
        cli_fail("serve");
        serve_engine_free(e);
        return NULL;
    }
    bn_generator_set_prefill_chunk(e->gen, prefill_chunk);
    int rc = pthread_create(&e->thread, NULL, engine_main, e);
    if (rc != 0) {
        fprintf(stderr, "bitnet serve: cannot start a thread: %s\n", strerror(rc));
        serve_engine_free(e);
        return NULL;
    }
    e->thread_started = true;
    return e;
}

bool serve_engine_submit(serve_engine *e, serve_job *job)
{
    pthread_mutex_lock(&e->lock);
    int32_t free_slots = e->n_slots - e->st.slots_busy;
    /* a job that a free slot takes at once does not count against the queue */
    bool ok = !e->closed && e->st.queue_len < e->st.queue_max + free_slots;
    if (ok) {
        job->engine = e;
        job->gp.on_token = engine_on_token;
        job->gp.on_logits = job->logprobs >= 0 ? engine_on_logits : NULL;
        job->gp.user = job;
        job->queued = true;
        job->t_submit = run_now();
        job->next = NULL;
        if (e->tail)
            e->tail->next = job;
        else
            e->head = job;
        e->tail = job;
        e->st.queue_len++;
        pthread_cond_signal(&e->work);
    }
    pthread_mutex_unlock(&e->lock);
    return ok;
}

void serve_engine_wait(serve_engine *e, serve_job *job, size_t seen, int ms)
{
    if (job->finished || job->len > seen)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&e->progress, &e->lock, &ts);
}

/* Takes a queued job out of the queue (lock held). */
static void engine_unqueue(serve_engine *e, serve_job *job)
{
    serve_job **p = &e->head, *prev = NULL;
    while (*p && *p != job) {
        prev = *p;
        p = &(*p)->next;
    }
    if (!*p)
        return;
    *p = job->next;
    if (e->tail == job)
        e->tail = prev;
    job->next = NULL;
    e->st.queue_len--;
}

void serve_engine_cancel(serve_engine *e, serve_job *job)
{
    pthread_mutex_lock(&e->lock);
    if (!job->finished && job->engine == e) {
        job->cancelled = true;
        if (job->queued) {
            engine_unqueue(e, job);
            e->st.jobs_cancelled++;
            job->result.stop = BN_STOP_CANCELLED;
            engine_finish(e, job);
        } else {
            pthread_cond_signal(&e->work);
            while (!job->finished)
                pthread_cond_wait(&e->progress, &e->lock);
        }
    }
    pthread_mutex_unlock(&e->lock);
}

void serve_engine_lock(serve_engine *e)
{
    pthread_mutex_lock(&e->lock);
}

void serve_engine_unlock(serve_engine *e)
{
    pthread_mutex_unlock(&e->lock);
}

void serve_engine_stats(serve_engine *e, serve_stats *s)
{
    pthread_mutex_lock(&e->lock);
    *s = e->st;
    pthread_mutex_unlock(&e->lock);
}

int32_t serve_engine_pending(serve_engine *e)
{
    pthread_mutex_lock(&e->lock);
    int32_t n = e->st.queue_len + e->st.slots_busy;
    pthread_mutex_unlock(&e->lock);
    return n;
}

void serve_engine_drain(serve_engine *e, bool cancel)
{
    pthread_mutex_lock(&e->lock);
    e->closed = true;
    if (cancel) {
        while (e->head) {
            serve_job *job = e->head;
            engine_unqueue(e, job);
            job->cancelled = true;
            job->result.stop = BN_STOP_CANCELLED;
            e->st.jobs_cancelled++;
            engine_finish(e, job);
        }
        for (int32_t s = 0; s < e->n_slots; s++)
            if (e->slot[s])
                e->slot[s]->cancelled = true;
        pthread_cond_signal(&e->work);
    }
    pthread_mutex_unlock(&e->lock);
}

void serve_engine_free(serve_engine *e)
{
    if (!e)
        return;
    if (e->thread_started) {
        pthread_mutex_lock(&e->lock);
        e->quit = true;
        pthread_cond_signal(&e->work);
        pthread_mutex_unlock(&e->lock);
        pthread_join(e->thread, NULL);
    }
    bn_generator_free(e->gen);
    free(e->slot);
    pthread_cond_destroy(&e->work);
    pthread_cond_destroy(&e->progress);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

void serve_job_free(serve_job *job)
{
    free(job->text);
    job->text = NULL;
    job->len = job->cap = 0;
    free(job->lp);
    job->lp = NULL;
    job->n_lp = job->cap_lp = 0;
}
