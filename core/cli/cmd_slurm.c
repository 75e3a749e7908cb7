/* core/cli/cmd_slurm.c — `serbench slurm CONFIG [--results DIR] [--no-submit]
 * [--resubmit-failed]`: the config as Slurm job arrays (docs/cluster.md). It writes
 * RESULTS/slurm/<UTC stamp>/{items,merge-items,runs,merge-runs}.sbatch and plan.json and
 * submits them with `sbatch --parsable`, each job `--dependency=afterok` on the one before:
 * item shards (label + encode --items I/N) → merge → run shards (--shard I/N --base RESULTS)
 * → merge. The commands the scripts call do the work; this file only plans and submits. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

/* The four jobs, in submission order. */
enum { J_ITEMS, J_MERGE_ITEMS, J_RUNS, J_MERGE_RUNS, N_JOBS };
static const char *const job_name[N_JOBS] = { "items", "merge-items", "runs", "merge-runs" };

typedef struct slurm_opts {
    int no_submit, resubmit;
} slurm_opts;

/* One shard (array task) as plan.json records it: where it last ran. */
typedef struct shard_rec {
    char *job_id; /* the array job that last ran it, or NULL (never submitted) */
    char *log;    /* its log file, or NULL */
} shard_rec;

typedef struct job {
    int wanted;       /* part of this submission */
    int *tasks;       /* arrays: tasks[i] for shard i (1-based) is part of this submission */
    char *script;     /* path of the .sbatch file */
    char *id;         /* job id once submitted */
    char *log;        /* merges: the log file; arrays: the pattern */
    char *done;       /* merges: the file the job touches when it finished */
    int carried_done; /* merges: not resubmitted because an earlier one finished */
} job;

typedef struct slurm_ctx {
    const cli_args *a;
    const sbi_plan *plan;
    const sbi_slurm *sl;
    slurm_opts o;
    char *exe, *config, *results, *cwd;
    char *dir; /* RESULTS/slurm/<stamp> */
    char stamp[48];
    char *prev_stamp; /* --resubmit-failed: the plan it continues */
    char config_id[SB_HASH_HEX];
    int n[2]; /* shard counts: [0] items, [1] runs */
    int stage[2];
    int use_base;
    shard_rec *shards[2]; /* [k][i], i = 1..n[k] */
    job jobs[N_JOBS];
} slurm_ctx;

/* ---- small helpers ------------------------------------------------------------------- */

/* 'text' for sh, with ' as '\''. */
static void sh_quote(sbi_buf *b, const char *s)
{
    sbi_buf_puts(b, "'");
    for (const char *p = s; *p; p++)
        sbi_buf_puts(b, *p == '\'' ? "'\\''" : (char[]){ *p, 0 });
    sbi_buf_puts(b, "'");
}

/* A value on an #SBATCH line: sbatch splits those lines at blanks and honours "…". */
static int sbatch_ok(const char *s)
{
    return !strpbrk(s, "\"\n");
}

static void sbatch_line(sbi_buf *b, const char *opt, const char *val)
{
    if (strpbrk(val, " \t'"))
        sbi_buf_printf(b, "#SBATCH %s=\"%s\"\n", opt, val);
    else
        sbi_buf_printf(b, "#SBATCH %s=%s\n", opt, val);
}

/* The full path of `name` on PATH (or `name` itself when it has a slash), or NULL. */
static char *find_exe(const char *name)
{
    if (strchr(name, '/'))
        return access(name, X_OK) == 0 ? strdup(name) : NULL;
    const char *path = getenv("PATH");
    for (const char *p = path; p && *p;) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        char *cand = sbi_asprintf("%.*s/%s", (int)len, len ? p : ".", name);
        if (cand && access(cand, X_OK) == 0 && sbi_is_file(cand))
            return cand;
        free(cand);
        p = colon ? colon + 1 : p + len;
    }
    return NULL;
}

/* Cluster file systems by statfs f_type (linux/magic.h and the vendors' sources). FUSE is
 * counted as shared: it is how many sites mount GlusterFS, CephFS or BeeGFS clients. */
static const struct {
    unsigned long magic;
    const char *name;
} shared_fs[] = {
    { 0x6969, "nfs" },        { 0x0BD00BD0, "lustre" }, { 0x47504653, "gpfs" },
    { 0x19830326, "beegfs" }, { 0x00C36400, "cephfs" }, { 0xFE534D42, "smb2" },
    { 0xFF534D42, "cifs" },   { 0x517B, "smb" },        { 0x5346414F, "afs" },
    { 0x7461636F, "ocfs2" },  { 0x01161970, "gfs2" },   { 0xAAD7AAEA, "panfs" },
    { 0x65735546, "fuse" },   { 0x6B414653, "kafs" },   { 0x013111A8, "ibrix" },
};

/* 1 when `path` (or its nearest existing parent) is on a cluster file system; *fs_type gets
 * the f_type otherwise. -1 when statfs fails everywhere. */
static int on_shared_fs(const char *path, unsigned long *fs_type)
{
    char *p = strdup(path);
    struct statfs s;
    int rc = -1;
    while (p) {
        if (statfs(p, &s) == 0) {
            rc = 0;
            for (size_t i = 0; i < sizeof shared_fs / sizeof *shared_fs; i++)
                if ((unsigned long)s.f_type == shared_fs[i].magic)
                    rc = 1;
            *fs_type = (unsigned long)s.f_type;
            break;
        }
        char *up = sbi_path_dirname(p);
        int same = !up || strcmp(up, p) == 0;
        free(p);
        p = same ? (free(up), NULL) : up;
    }
    free(p);
    return rc;
}

/* "1-3,5" from the chosen tasks 1..n. */
static char *array_spec(const int *tasks, int n)
{
    sbi_buf b = { 0 };
    for (int i = 1; i <= n; i++) {
        if (!tasks[i])
            continue;
        int j = i;
        while (j < n && tasks[j + 1])
            j++;
        sbi_buf_printf(&b, "%s%d", b.len ? "," : "", i);
        if (j > i)
            sbi_buf_printf(&b, "-%d", j);
        i = j;
    }
    return b.s;
}

static char *shard_dir(const slurm_ctx *c, int k, int i)
{
    return sbi_asprintf("%s/shards/%s/%d", c->results, k ? "runs" : "items", i);
}

/* ---- scripts ------------------------------------------------------------------------- */

static void script_head(const slurm_ctx *c, sbi_buf *b, int j, const char *array)
{
    const sbi_slurm *sl = c->sl;
    sbi_buf_printf(b,
                   "#!/bin/bash\n"
                   "# %s.sbatch: written by `serbench slurm` (serbench %s) for\n"
                   "# %s; plan.json beside it. Submit in order with\n"
                   "# sbatch --dependency=afterok:<previous job id> (docs/cluster.md).\n",
                   job_name[j], sb_version(), c->config);
    sbi_buf_printf(b, "#SBATCH --job-name=serbench-%s\n", job_name[j]);
    if (array) {
        sbatch_line(b, "--array", array);
        char *log = sbi_asprintf("%s/logs/slurm-%%A_%%a.out", c->dir);
        sbatch_line(b, "--output", log);
        free(log);
    } else {
        char *log = sbi_asprintf("%s/logs/%s-%%j.out", c->dir, job_name[j]);
        sbatch_line(b, "--output", log);
        free(log);
    }
    sbatch_line(b, "--chdir", c->cwd);
    sbi_buf_printf(b, "#SBATCH --cpus-per-task=%d\n", sl->cpus_per_task);
    if (sl->partition)
        sbatch_line(b, "--partition", sl->partition);
    if (sl->time)
        sbatch_line(b, "--time", sl->time);
    if (sl->mem)
        sbatch_line(b, "--mem", sl->mem);
    /* A job whose dependency failed is cancelled instead of pending for ever. */
    if (j != J_ITEMS)
        sbi_buf_puts(b, "#SBATCH --kill-on-invalid-dep=yes\n");
    for (char **l = sl->extra; l && *l; l++)
        sbi_buf_printf(b, "%s\n", *l);
    sbi_buf_puts(b, "set -eu\nserbench=");
    sh_quote(b, c->exe);
    sbi_buf_puts(b, "\nconfig=");
    sh_quote(b, c->config);
    sbi_buf_puts(b, "\nresults=");
    sh_quote(b, c->results);
    sbi_buf_puts(b, "\n");
}

/* `"$serbench" CMD "$config" key=value... ` for every serbench call on the config. */
static void sb_call(const slurm_ctx *c, sbi_buf *b, const char *cmd)
{
    sbi_buf_printf(b, "\"$serbench\" %s \"$config\"", cmd);
    for (size_t i = 0; i < c->a->n_overrides; i++) {
        sbi_buf_puts(b, " ");
        sh_quote(b, c->a->overrides[i]);
    }
}

static char *script_text(const slurm_ctx *c, int j, const char *array)
{
    sbi_buf b = { 0 };
    script_head(c, &b, j, array);
    const int k = j >= J_RUNS; /* 0 items, 1 runs */
    const int n = c->n[k];
    const int th = c->sl->cpus_per_task;
    if (j == J_ITEMS || j == J_RUNS) {
        sbi_buf_printf(&b,
                       "i=$SLURM_ARRAY_TASK_ID\n"
                       "shard=\"$results/shards/%s/$i\"\n"
                       "echo \"serbench slurm: %s shard $i/%d on $(hostname) at $(date -u "
                       "+%%Y-%%m-%%dT%%H:%%M:%%SZ)\"\n",
                       k ? "runs" : "items", k ? "run" : "item", n);
        if (j == J_ITEMS) {
            sb_call(c, &b, "label");
            sbi_buf_printf(&b, " --items \"$i/%d\" --results \"$shard\" --threads %d\n", n, th);
            sb_call(c, &b, "encode");
            sbi_buf_printf(&b, " --items \"$i/%d\" --results \"$shard\" --threads %d\n", n, th);
        } else {
            sb_call(c, &b, "run");
            sbi_buf_printf(&b, " --shard \"$i/%d\" --results \"$shard\"%s --threads %d\n", n,
                           c->use_base ? " --base \"$results\"" : "", th);
        }
    } else {
        sbi_buf_printf(&b,
                       "set --\n"
                       "i=1\n"
                       "while [ \"$i\" -le %d ]; do\n"
                       "  set -- \"$@\" \"$results/shards/%s/$i\"\n"
                       "  i=$((i + 1))\n"
                       "done\n"
                       "\"$serbench\" merge \"$@\" --into \"$results\"\n",
                       n, k ? "runs" : "items");
        if (j == J_MERGE_ITEMS) {
            sbi_buf_puts(&b, "# Unsharded: finds every row merged, computes nothing, marks the "
                             "stages complete.\n");
            sb_call(c, &b, "label");
            sbi_buf_printf(&b, " --results \"$results\" --threads %d\n", th);
            sb_call(c, &b, "encode");
            sbi_buf_printf(&b, " --results \"$results\" --threads %d\n", th);
        }
        sbi_buf_puts(&b, "touch ");
        sh_quote(&b, c->jobs[j].done);
        sbi_buf_puts(&b, "\n");
    }
    return b.s;
}

/* ---- submission ---------------------------------------------------------------------- */

/* Run argv, its stdout into *out (stderr passes through). Returns the exit status, or -1
 * when it could not start. */
static int run_capture(char *const argv[], char **out)
{
    int fd[2];
    *out = NULL;
    if (pipe(fd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        close(fd[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(fd[1]);
    sbi_buf b = { 0 };
    char chunk[4096];
    ssize_t got;
    while ((got = read(fd[0], chunk, sizeof chunk)) > 0 || (got < 0 && errno == EINTR))
        if (got > 0)
            sbi_buf_add(&b, chunk, (size_t)got);
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    *out = b.s ? b.s : strdup("");
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* sbatch --parsable [--dependency=afterok:DEP] SCRIPT → the job id. */
static int submit(const char *script, const char *dep, char **id)
{
    char *depopt = dep ? sbi_asprintf("--dependency=afterok:%s", dep) : NULL;
    char *argv[] = { "sbatch", "--parsable", depopt ? depopt : (char *)script,
                     depopt ? (char *)script : NULL, NULL };
    char *out = NULL;
    int rc = run_capture(argv, &out);
    free(depopt);
    *id = NULL;
    if (rc == 0 && out) {
        size_t len = strspn(out, "0123456789"); /* "123" or "123;cluster" */
        if (len)
            *id = sbi_strndup(out, len);
    }
    if (!*id)
        fprintf(stderr, "serbench: error: sbatch %s failed (exit %d)%s%s\n", script, rc,
                out && *out ? ": " : "", out ? out : "");
    free(out);
    return *id ? 0 : -1;
}

/* Job ids still in the queue among `ids` (NULL-terminated), as "id, id", or NULL. */
static char *queued(const char *const *ids)
{
    char *argv[] = { "squeue", "-h", "-o", "%i", NULL };
    char *out = NULL;
    int rc = run_capture(argv, &out);
    sbi_buf b = { 0 };
    if (rc != 0) {
        fprintf(stderr,
                "serbench: warning: squeue failed (exit %d); not checking whether the plan's "
                "jobs are still queued\n",
                rc);
        free(out);
        return NULL;
    }
    for (const char *const *id = ids; *id; id++) {
        for (char *line = out; line && *line;) {
            char *nl = strchr(line, '\n');
            size_t len = strspn(line, "0123456789");
            if (len == strlen(*id) && !strncmp(line, *id, len) && !(b.s && strstr(b.s, *id))) {
                sbi_buf_printf(&b, "%s%s", b.len ? ", " : "", *id);
                break;
            }
            line = nl ? nl + 1 : NULL;
        }
    }
    free(out);
    return b.s;
}

/* ---- plan.json ----------------------------------------------------------------------- */

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static int write_plan_json(const slurm_ctx *c, sb_error *err)
{
    json_t *jobs = json_object(), *shards = json_object(), *stages = json_array();
    for (int k = 0; k < 2; k++)
        if (c->stage[k])
            json_array_append_new(stages, json_string(k ? "runs" : "items"));
    for (int j = 0; j < N_JOBS; j++) {
        const job *jb = &c->jobs[j];
        if (!c->stage[j >= J_RUNS])
            continue;
        json_t *o = json_pack("{s:b}", "included", jb->wanted);
        json_object_set_new(o, "script", str_or_null(jb->wanted ? jb->script : NULL));
        json_object_set_new(o, "job_id", str_or_null(jb->id));
        json_object_set_new(o, "log", str_or_null(jb->log));
        if (jb->done)
            json_object_set_new(o, "done_file", json_string(jb->done));
        json_object_set_new(jobs, job_name[j], o);
    }
    for (int k = 0; k < 2; k++) {
        if (!c->stage[k])
            continue;
        json_t *arr = json_array();
        for (int i = 1; i <= c->n[k]; i++) {
            char *d = shard_dir(c, k, i);
            json_array_append_new(arr,
                                  json_pack("{s:i, s:s, s:o, s:o}", "index", i, "dir", d ? d : "",
                                            "job_id", str_or_null(c->shards[k][i].job_id), "log",
                                            str_or_null(c->shards[k][i].log)));
            free(d);
        }
        json_object_set_new(shards, k ? "runs" : "items", arr);
    }
    json_t *root =
        json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:i, s:i, s:i, s:o, s:o, s:o}", "config",
                  c->config, "config_id", c->config_id, "results", c->results, "stamp", c->stamp,
                  "resubmit_of", str_or_null(c->prev_stamp), "serbench", c->exe, "serbench_version",
                  sb_version(), "item_shards", c->n[0], "run_shards", c->n[1], "cpus_per_task",
                  c->sl->cpus_per_task, "stages", stages, "jobs", jobs, "shards", shards);
    json_t *ov = json_array();
    for (size_t i = 0; i < c->a->n_overrides; i++)
        json_array_append_new(ov, json_string(c->a->overrides[i]));
    json_object_set_new(root, "overrides", ov);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    char *full = text ? sbi_asprintf("%s\n", text) : NULL;
    char *path = sbi_path_join(c->dir, "plan.json");
    sb_status st = full && path ? sbi_write_file_atomic(path, full, strlen(full), err)
                                : sb_error_set(err, SB_ERR_NOMEM, NULL, "out of memory");
    free(path);
    free(full);
    free(text);
    json_decref(root);
    return st == SB_OK ? 0 : -1;
}

/* ---- --resubmit-failed --------------------------------------------------------------- */

/* The newest RESULTS/slurm/<stamp> that holds a plan.json (stamps sort by time), or NULL. */
static char *last_plan_dir(const char *results)
{
    char *root = sbi_path_join(results, "slurm");
    DIR *d = root ? opendir(root) : NULL;
    char *best = NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || (best && strcmp(e->d_name, best) <= 0))
            continue;
        char *pj = sbi_asprintf("%s/%s/plan.json", root, e->d_name);
        if (pj && sbi_is_file(pj)) {
            free(best);
            best = strdup(e->d_name);
        }
        free(pj);
    }
    if (d)
        closedir(d);
    char *out = best ? sbi_path_join(root, best) : NULL;
    free(best);
    free(root);
    return out;
}

/* Why shard i of kind k has not completed, or NULL when it has (RESULTS/shards/.../shard.json
 * says complete for this config, kind, index and count, written by the task's last command:
 * `encode` for an item shard, `run` for a run shard). */
static const char *shard_problem(const slurm_ctx *c, int k, int i, char *buf, size_t size)
{
    char *d = shard_dir(c, k, i);
    char *path = d ? sbi_path_join(d, "shard.json") : NULL;
    free(d);
    json_error_t je;
    json_t *j = path && sbi_is_file(path) ? json_load_file(path, 0, &je) : NULL;
    const char *why = NULL;
    if (!path || !sbi_is_file(path))
        why = "no shard.json (the task did not start, or failed before its store opened)";
    else if (!j)
        why = "shard.json does not parse";
    else if (!json_is_true(json_object_get(j, "complete")))
        why = "shard.json says \"complete\": false (the task failed or was stopped)";
    else if (!sbi_streq(json_string_value(json_object_get(j, "config_id")), c->config_id))
        why = "shard.json is of another config (config_id differs)";
    else if (!sbi_streq(json_string_value(json_object_get(j, "kind")), k ? "runs" : "items") ||
             json_integer_value(json_object_get(j, "index")) != i ||
             json_integer_value(json_object_get(j, "count")) != c->n[k])
        why = "shard.json is of another shard (kind, index or count differ)";
    else if (!sbi_streq(json_string_value(json_object_get(j, "command")), k ? "run" : "encode"))
        /* Each command of the task writes shard.json: complete after `label` alone means the
         * task stopped before its `encode` (the last stage) began. */
        why = k ? "shard.json was not written by `run`"
                : "shard.json was written by `label`, not by `encode` (the task stopped "
                  "between its two stages)";
    if (why)
        snprintf(buf, size, "%s", why);
    json_decref(j);
    free(path);
    return why ? buf : NULL;
}

static int load_previous(slurm_ctx *c, json_t **prev_out)
{
    char *pdir = last_plan_dir(c->results);
    if (!pdir) {
        fprintf(stderr,
                "serbench: error: %s/slurm holds no plan.json; run serbench slurm %s first\n",
                c->results, c->a->config);
        return EXIT_USAGE;
    }
    char *pj = sbi_path_join(pdir, "plan.json");
    json_error_t je;
    json_t *prev = pj ? json_load_file(pj, 0, &je) : NULL;
    int rc = 0;
    if (!prev || !json_is_object(json_object_get(prev, "shards"))) {
        fprintf(stderr, "serbench: error: %s: not a plan.json of serbench slurm%s%s\n", pj,
                prev ? "" : ": ", prev ? "" : je.text);
        rc = EXIT_USAGE;
    } else if (!sbi_streq(json_string_value(json_object_get(prev, "config_id")), c->config_id)) {
        fprintf(stderr,
                "serbench: error: %s was made for another config (config_id %s, now %s: the "
                "runs changed); start a new plan with serbench slurm CONFIG, without "
                "--resubmit-failed\n",
                pj, json_string_value(json_object_get(prev, "config_id")), c->config_id);
        rc = EXIT_USAGE;
    }
    if (!rc) {
        const char *s = strrchr(pdir, '/');
        c->prev_stamp = strdup(s ? s + 1 : pdir);
        c->n[0] = (int)json_integer_value(json_object_get(prev, "item_shards"));
        c->n[1] = (int)json_integer_value(json_object_get(prev, "run_shards"));
        json_t *shards = json_object_get(prev, "shards");
        for (int k = 0; k < 2; k++) {
            json_t *arr = json_object_get(shards, k ? "runs" : "items");
            c->stage[k] = json_is_array(arr);
            if (c->stage[k] &&
                (c->n[k] < 1 || c->n[k] > 100000 || (int)json_array_size(arr) != c->n[k])) {
                fprintf(stderr, "serbench: error: %s: %zu %s shards listed, %d expected\n", pj,
                        json_array_size(arr), k ? "run" : "item", c->n[k]);
                rc = EXIT_USAGE;
            }
        }
    }
    free(pj);
    free(pdir);
    if (rc)
        json_decref(prev);
    else
        *prev_out = prev;
    return rc;
}

/* Carry the previous plan's records over, mark what to resubmit and report each failure. */
static int choose_resubmit(slurm_ctx *c, json_t *prev, int *n_todo)
{
    *n_todo = 0;
    json_t *shards = json_object_get(prev, "shards"), *jobs = json_object_get(prev, "jobs");
    /* Nothing may still be queued: a pending task has no shard.json yet either. */
    const char **ids = calloc((size_t)c->n[0] + (size_t)c->n[1] + N_JOBS + 1, sizeof *ids);
    size_t n_ids = 0;
    if (!ids) {
        fprintf(stderr, "serbench: error: out of memory\n");
        return EXIT_USAGE;
    }
    for (int k = 0; k < 2; k++) {
        json_t *arr = json_object_get(shards, k ? "runs" : "items"), *s;
        size_t idx;
        json_array_foreach(arr, idx, s)
        {
            const int i = (int)idx + 1;
            const char *id = json_string_value(json_object_get(s, "job_id"));
            if (i > c->n[k])
                break;
            c->shards[k][i].job_id = sbi_strdup(id);
            c->shards[k][i].log = sbi_strdup(json_string_value(json_object_get(s, "log")));
            if (id)
                ids[n_ids++] = id;
        }
    }
    const char *key;
    json_t *jb;
    json_object_foreach(jobs, key, jb)
    {
        const char *id = json_string_value(json_object_get(jb, "job_id"));
        if (id && n_ids < (size_t)c->n[0] + (size_t)c->n[1] + N_JOBS)
            ids[n_ids++] = id;
    }
    ids[n_ids] = NULL;
    char *q = queued(ids);
    free(ids);
    if (q) {
        fprintf(stderr,
                "serbench: error: jobs of plan %s are still queued or running (%s); wait for "
                "them, or scancel them, before --resubmit-failed\n",
                c->prev_stamp, q);
        free(q);
        return EXIT_USAGE;
    }
    char why[256];
    int any_shard[2] = { 0, 0 };
    for (int k = 0; k < 2; k++) {
        if (!c->stage[k])
            continue;
        job *arr = &c->jobs[k ? J_RUNS : J_ITEMS];
        for (int i = 1; i <= c->n[k]; i++) {
            if (!shard_problem(c, k, i, why, sizeof why))
                continue;
            arr->tasks[i] = 1;
            any_shard[k] = 1;
            const char *log = c->shards[k][i].log;
            fprintf(stderr, "serbench: %s shard %d/%d did not complete: %s; log: %s%s\n",
                    k ? "run" : "item", i, c->n[k], why, log ? log : "(never submitted)",
                    log && !sbi_is_file(log) ? " (absent: the task never started)" : "");
        }
        arr->wanted = any_shard[k];
        /* The merge: again when a shard reran or when the last one did not finish. */
        job *m = &c->jobs[k ? J_MERGE_RUNS : J_MERGE_ITEMS];
        json_t *pm = json_object_get(jobs, job_name[k ? J_MERGE_RUNS : J_MERGE_ITEMS]);
        const char *done = json_string_value(json_object_get(pm, "done_file"));
        int finished = done && sbi_is_file(done);
        m->wanted = any_shard[k] || !finished;
        if (!m->wanted) {
            free(m->done);
            m->done = strdup(done);
            free(m->log);
            m->log = sbi_strdup(json_string_value(json_object_get(pm, "log")));
            free(m->id);
            m->id = sbi_strdup(json_string_value(json_object_get(pm, "job_id")));
            m->carried_done = 1;
        } else if (!any_shard[k]) {
            fprintf(stderr, "serbench: the %s merge did not finish%s%s\n", k ? "runs" : "items",
                    pm && json_string_value(json_object_get(pm, "log")) ? "; log: " : "",
                    pm && json_string_value(json_object_get(pm, "log"))
                        ? json_string_value(json_object_get(pm, "log"))
                        : "");
        }
        *n_todo += arr->wanted + m->wanted;
    }
    return 0;
}

/* ---- main ---------------------------------------------------------------------------- */

static int take_flags(int argc, char **argv, char **rest, int *n_rest, slurm_opts *o)
{
    *n_rest = 0;
    for (int i = 0; i < argc; i++) {
        if (i >= 2 && !strcmp(argv[i], "--no-submit"))
            o->no_submit = 1;
        else if (i >= 2 && !strcmp(argv[i], "--resubmit-failed"))
            o->resubmit = 1;
        else
            rest[(*n_rest)++] = argv[i];
    }
    rest[*n_rest] = NULL;
    return 0;
}

static int make_stamp_dir(slurm_ctx *c)
{
    char base[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(base, sizeof base, "%Y%m%dT%H%M%SZ", &tm);
    char *root = sbi_path_join(c->results, "slurm");
    sb_error err = { 0 };
    if (!root || sbi_mkdir_p(root, &err) != SB_OK) {
        free(root);
        return cli_fail(&err);
    }
    for (int n = 1; n < 1000; n++) {
        if (n == 1)
            snprintf(c->stamp, sizeof c->stamp, "%s", base);
        else
            snprintf(c->stamp, sizeof c->stamp, "%s-%d", base, n);
        free(c->dir);
        c->dir = sbi_path_join(root, c->stamp);
        if (c->dir && mkdir(c->dir, 0777) == 0)
            break;
        if (!c->dir || errno != EEXIST) {
            fprintf(stderr, "serbench: error: %s: cannot create (%s)\n", c->dir ? c->dir : root,
                    strerror(errno));
            free(root);
            return EXIT_USAGE;
        }
    }
    free(root);
    char *logs = sbi_path_join(c->dir, "logs");
    sb_status st = logs ? sbi_mkdir_p(logs, &err) : SB_ERR_NOMEM;
    free(logs);
    return st == SB_OK ? 0 : cli_fail(&err);
}

static int prepare(slurm_ctx *c)
{
    const cli_args *a = c->a;
    if (a->shard_n || a->items_n || a->base || a->threads || a->jobs != 1 || a->force ||
        a->dry_run || a->plan_only || a->n_positional) {
        fprintf(stderr, "serbench: error: serbench slurm takes CONFIG, key=value overrides, "
                        "--results, --no-submit and --resubmit-failed; shards, threads and "
                        "bases come from the slurm: block (docs/cluster.md)\n");
        return EXIT_USAGE;
    }
    sb_error err = { 0 };
    if (sbi_plan_config_id(c->plan, c->config_id, &err) != SB_OK)
        return cli_fail(&err);
    c->config = realpath(a->config, NULL);
    c->cwd = getcwd(NULL, 0);
    if (!c->config || !c->cwd) {
        fprintf(stderr, "serbench: error: %s: %s\n", a->config, strerror(errno));
        return EXIT_USAGE;
    }
    /* The executable every job calls. */
    if (c->sl->serbench) {
        c->exe = strdup(c->sl->serbench);
        if (access(c->exe, X_OK) != 0) {
            fprintf(stderr, "serbench: error: slurm.serbench: %s is not an executable (%s)\n",
                    c->exe, strerror(errno));
            return EXIT_USAGE;
        }
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) {
            fprintf(stderr,
                    "serbench: error: cannot find this executable's path (%s); set "
                    "slurm.serbench\n",
                    strerror(errno));
            return EXIT_USAGE;
        }
        self[n] = '\0';
        c->exe = strdup(self);
    }
    /* Bad input first, before anything is written. */
    const char *results = cli_results_dir(a, c->plan);
    if (!sbatch_ok(results) || !sbatch_ok(c->cwd)) {
        fprintf(stderr,
                "serbench: error: %s: a path with \" or a line break cannot go on an "
                "#SBATCH line\n",
                sbatch_ok(results) ? c->cwd : results);
        return EXIT_USAGE;
    }
    if (!c->o.resubmit) {
        c->n[0] = c->sl->item_shards;
        c->n[1] = c->sl->run_shards;
        c->stage[0] = c->sl->stage_items;
        c->stage[1] = c->sl->stage_runs;
        if (c->stage[1] && (size_t)c->n[1] > c->plan->n_runs) {
            fprintf(stderr,
                    "serbench: error: slurm.run_shards is %d but the config has %zu run%s: "
                    "shards %zu to %d would be empty; set run_shards to at most %zu\n",
                    c->n[1], c->plan->n_runs, c->plan->n_runs == 1 ? "" : "s", c->plan->n_runs + 1,
                    c->n[1], c->plan->n_runs);
            return EXIT_USAGE;
        }
    }
    if (!c->o.no_submit) {
        char *sb = find_exe("sbatch");
        if (!sb) {
            fprintf(stderr, "serbench: error: sbatch not found on PATH (run this on a Slurm "
                            "login node, or load Slurm's module); --no-submit writes and "
                            "prints the job scripts without submitting\n");
            return EXIT_USAGE;
        }
        free(sb);
    }
    unsigned long type = 0;
    if (on_shared_fs(results, &type) == 0)
        fprintf(stderr,
                "serbench: warning: %s is not on a cluster file system (statfs type 0x%lx, "
                "not nfs, lustre, gpfs, beegfs, cephfs, ...): tasks on other nodes will not "
                "see it; fine on a single-node cluster\n",
                results, type);
    if (c->o.resubmit && !sbi_is_dir(results)) {
        fprintf(stderr,
                "serbench: error: %s does not exist: nothing to resubmit; run serbench "
                "slurm %s first\n",
                results, a->config);
        return EXIT_USAGE;
    }
    if (sbi_mkdir_p(results, &err) != SB_OK)
        return cli_fail(&err);
    c->results = realpath(results, NULL);
    if (!c->results) {
        fprintf(stderr, "serbench: error: %s: %s\n", results, strerror(errno));
        return EXIT_USAGE;
    }
    return 0;
}

static int alloc_ctx(slurm_ctx *c)
{
    for (int k = 0; k < 2; k++) {
        c->shards[k] = calloc((size_t)c->n[k] + 1, sizeof *c->shards[k]);
        c->jobs[k ? J_RUNS : J_ITEMS].tasks = calloc((size_t)c->n[k] + 1, sizeof(int));
        if (!c->shards[k] || !c->jobs[k ? J_RUNS : J_ITEMS].tasks)
            return -1;
    }
    return 0;
}

static void free_ctx(slurm_ctx *c)
{
    for (int k = 0; k < 2; k++) {
        for (int i = 0; c->shards[k] && i <= c->n[k]; i++) {
            free(c->shards[k][i].job_id);
            free(c->shards[k][i].log);
        }
        free(c->shards[k]);
    }
    for (int j = 0; j < N_JOBS; j++) {
        free(c->jobs[j].tasks);
        free(c->jobs[j].script);
        free(c->jobs[j].id);
        free(c->jobs[j].log);
        free(c->jobs[j].done);
    }
    free(c->exe);
    free(c->config);
    free(c->results);
    free(c->cwd);
    free(c->dir);
    free(c->prev_stamp);
}

/* Write the wanted scripts; print them with --no-submit. */
static int write_scripts(slurm_ctx *c)
{
    for (int j = 0; j < N_JOBS; j++) {
        job *jb = &c->jobs[j];
        if (!jb->wanted)
            continue;
        const int k = j >= J_RUNS;
        char *array = j == J_ITEMS || j == J_RUNS ? array_spec(jb->tasks, c->n[k]) : NULL;
        char *text = script_text(c, j, array);
        free(array);
        sb_error err = { 0 };
        sb_status st = text ? sbi_write_file_atomic(jb->script, text, strlen(text), &err)
                            : sb_error_set(&err, SB_ERR_NOMEM, NULL, "out of memory");
        if (st == SB_OK && chmod(jb->script, 0755) != 0)
            st = sb_error_set(&err, SB_ERR_IO, jb->script, "chmod: %s", strerror(errno));
        if (st == SB_OK && c->o.no_submit)
            printf("==> %s <==\n%s\n", jb->script, text);
        free(text);
        if (st != SB_OK)
            return cli_fail(&err);
    }
    return 0;
}

/* The job submitted before job j in this submission (its afterok dependency), or NULL. */
static const char *dep_before(const slurm_ctx *c, int j)
{
    for (int p = j - 1; p >= 0; p--)
        if (c->jobs[p].wanted)
            return c->jobs[p].id;
    return NULL;
}

static int submit_all(slurm_ctx *c)
{
    for (int j = 0; j < N_JOBS; j++) {
        job *jb = &c->jobs[j];
        if (!jb->wanted)
            continue;
        if (submit(jb->script, dep_before(c, j), &jb->id) != 0)
            return EXIT_USAGE;
        const int k = j >= J_RUNS;
        if (j == J_ITEMS || j == J_RUNS) {
            jb->log = sbi_asprintf("%s/logs/slurm-%s_%%a.out", c->dir, jb->id);
            for (int i = 1; i <= c->n[k]; i++) {
                if (!jb->tasks[i])
                    continue;
                free(c->shards[k][i].job_id);
                free(c->shards[k][i].log);
                c->shards[k][i].job_id = strdup(jb->id);
                c->shards[k][i].log = sbi_asprintf("%s/logs/slurm-%s_%d.out", c->dir, jb->id, i);
            }
        } else {
            jb->log = sbi_asprintf("%s/logs/%s-%s.out", c->dir, job_name[j], jb->id);
        }
        char *array = j == J_ITEMS || j == J_RUNS ? array_spec(jb->tasks, c->n[k]) : NULL;
        printf("%-12s job %s", job_name[j], jb->id);
        if (array)
            printf(", array %s", array);
        if (dep_before(c, j))
            printf(", after %s", dep_before(c, j));
        printf("; log %s\n", jb->log);
        free(array);
    }
    return 0;
}

int cmd_slurm(int argc, char **argv)
{
    slurm_opts o = { 0 };
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int n_rest = 0;
    if (!rest)
        return EXIT_USAGE;
    take_flags(argc, argv, rest, &n_rest, &o);
    cli_args a;
    int rc = cli_parse(n_rest, rest, 1, &a);
    sbi_plan *plan = NULL;
    if (!rc)
        rc = cli_load_plan(&a, &plan);
    slurm_ctx c = { .a = &a, .plan = plan, .sl = plan ? &plan->slurm : NULL, .o = o };
    json_t *prev = NULL;
    if (!rc)
        rc = prepare(&c);
    if (!rc && o.resubmit)
        rc = load_previous(&c, &prev);
    if (!rc && alloc_ctx(&c) != 0) {
        fprintf(stderr, "serbench: error: out of memory\n");
        rc = EXIT_USAGE;
    }
    int n_todo = 0;
    if (!rc && o.resubmit) {
        rc = choose_resubmit(&c, prev, &n_todo);
        if (!rc && n_todo == 0) {
            printf("nothing to resubmit: every shard of plan %s completed and its merges "
                   "finished\n",
                   c.prev_stamp);
            goto out;
        }
    } else if (!rc) {
        for (int j = 0; j < N_JOBS; j++)
            c.jobs[j].wanted = c.stage[j >= J_RUNS];
        for (int k = 0; k < 2; k++)
            for (int i = 1; i <= c.n[k]; i++)
                c.jobs[k ? J_RUNS : J_ITEMS].tasks[i] = 1;
    }
    /* Run shards start from the merged store when there is one to start from. */
    if (!rc) {
        char *db = sbi_path_join(c.results, "serbench.db");
        c.use_base = c.stage[0] || (db && sbi_is_file(db));
        free(db);
        if (c.stage[1] && !c.use_base)
            fprintf(stderr,
                    "serbench: note: stages has no items and %s has no store yet: "
                    "each run shard computes the labels and features it needs\n",
                    c.results);
    }
    /* The directory is only made now that every check passed. */
    if (!rc)
        rc = make_stamp_dir(&c);
    if (!rc) {
        /* Paths inside the stamp folder, now known. */
        for (int j = 0; j < N_JOBS; j++) {
            c.jobs[j].script = sbi_asprintf("%s/%s.sbatch", c.dir, job_name[j]);
            if ((j == J_MERGE_ITEMS || j == J_MERGE_RUNS) && !c.jobs[j].carried_done)
                c.jobs[j].done = sbi_asprintf("%s/%s.done", c.dir, job_name[j]);
        }
        rc = write_scripts(&c);
    }
    sb_error err = { 0 };
    if (!rc && write_plan_json(&c, &err) != 0)
        rc = cli_fail(&err);
    if (!rc && o.no_submit) {
        printf("%s/plan.json written; nothing submitted (--no-submit)\n", c.dir);
        goto out;
    }
    if (!rc) {
        printf("plan %s: %zu runs; %d item shards, %d run shards%s\n", c.dir, plan->n_runs,
               c.stage[0] ? c.n[0] : 0, c.stage[1] ? c.n[1] : 0,
               o.resubmit ? " (resubmitting what did not complete)" : "");
        int src = submit_all(&c);
        /* Record what was submitted even when a later submission failed. */
        if (write_plan_json(&c, &err) != 0)
            rc = cli_fail(&err);
        rc = src ? src : rc;
        if (src)
            fprintf(stderr,
                    "serbench: the jobs submitted so far are in %s/plan.json; scancel "
                    "them or fix the problem and run --resubmit-failed\n",
                    c.dir);
    }
    if (!rc)
        printf("watch with: squeue --me; when done: serbench report %s --results %s\n", a.config,
               c.results);
out:
    json_decref(prev);
    free_ctx(&c);
    sbi_plan_destroy(&plan);
    free(a.overrides);
    free(a.positional);
    free(rest);
    return rc;
}
