/* GETATTR or LOOKUP calls, or CREATE + REMOVE pairs, per second, and their latency, with the
 * libnfs client.
 *
 * tools/bench/nfs.py builds and runs this (cc -O2 nfsops.c -lnfs; Debian's libnfs-dev): a
 * client in C keeps its own cost per call small, so the numbers show the server's.
 *
 *   nfsops HOST NFSPORT MOUNTPORT EXPORT NAME getattr|lookup|create OUTSTANDING SECONDS
 *
 * MNTs EXPORT, LOOKUPs NAME in it, then keeps OUTSTANDING calls in flight on one connection
 * for SECONDS: GETATTR of NAME's handle, LOOKUP of NAME, or (create) a GUARDED CREATE of a file
 * of its own in the export followed, once answered, by its REMOVE: one "op" is the pair, and
 * its latency runs from the CREATE's call to the REMOVE's reply. Prints one line:
 *
 *   ops_per_s=... p50_us=... p90_us=... p99_us=... calls=...
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-mount.h>
#include <nfsc/libnfs-raw-nfs.h>

struct slot {
    double sent;
    int removing; /* create mode: its CREATE was answered, its REMOVE is in flight */
    char name[32];
};

static struct rpc_context *rpc;
static int lookup_calls, create_calls;
static nfs_fh3 dir_fh, file_fh;
static char *entry;
static double end_at;
static int inflight;
static long calls;
static double *latency;
static size_t latency_cap;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why) {
    fprintf(stderr, "nfsops: %s: %s\n", what, why ? why : "failed");
    exit(1);
}

static void service_once(void) {
    struct pollfd p = {.fd = rpc_get_fd(rpc), .events = rpc_which_events(rpc)};
    if (poll(&p, 1, 10000) <= 0) die("poll", "no answer in 10 s");
    if (rpc_service(rpc, p.revents) < 0) die("rpc", rpc_get_error(rpc));
}

static void run_until(int *flag) {
    while (!*flag) service_once();
}

static void copy_fh(nfs_fh3 *to, const char *data, u_int len) {
    to->data.data_len = len;
    to->data.data_val = malloc(len);
    memcpy(to->data.data_val, data, len);
}

static void on_connect(struct rpc_context *r, int status, void *data, void *flag) {
    (void)r;
    if (status != RPC_STATUS_SUCCESS) die("connect", data);
    *(int *)flag = 1;
}

static void on_mnt(struct rpc_context *r, int status, void *data, void *flag) {
    (void)r;
    mountres3 *res = data;
    if (status != RPC_STATUS_SUCCESS || res->fhs_status != MNT3_OK) die("MNT", "refused");
    fhandle3 *fh = &res->mountres3_u.mountinfo.fhandle;
    copy_fh(&dir_fh, fh->fhandle3_val, fh->fhandle3_len);
    *(int *)flag = 1;
}

static void on_first_lookup(struct rpc_context *r, int status, void *data, void *flag) {
    (void)r;
    LOOKUP3res *res = data;
    if (status != RPC_STATUS_SUCCESS || res->status != NFS3_OK) die("LOOKUP", entry);
    nfs_fh3 *fh = &res->LOOKUP3res_u.resok.object;
    copy_fh(&file_fh, fh->data.data_val, fh->data.data_len);
    *(int *)flag = 1;
}

static void issue(struct slot *s);
static void on_reply(struct rpc_context *r, int status, void *data, void *priv);

static void issue_remove(struct slot *s) {
    REMOVE3args a = {.object = {.dir = dir_fh, .name = s->name}};
    s->removing = 1;
    if (rpc_nfs3_remove_async(rpc, on_reply, &a, s) != 0) die("queue", rpc_get_error(rpc));
}

static void on_reply(struct rpc_context *r, int status, void *data, void *priv) {
    (void)r;
    struct slot *s = priv;
    /* every NFSv3 result starts with its nfsstat3 */
    if (status != RPC_STATUS_SUCCESS || *(nfsstat3 *)data != NFS3_OK) die("call", s->removing ? "REMOVE" : "failed");
    if (create_calls && !s->removing) {
        issue_remove(s);
        return;
    }
    s->removing = 0;
    double t = now();
    if ((size_t)calls < latency_cap) latency[calls] = t - s->sent;
    calls++;
    if (t < end_at)
        issue(s);
    else
        inflight--;
}

static void issue(struct slot *s) {
    s->sent = now();
    int rc;
    if (create_calls) {
        CREATE3args a = {.where = {.dir = dir_fh, .name = s->name}};
        a.how.mode = GUARDED;
        a.how.createhow3_u.obj_attributes.mode.set_it = 1;
        a.how.createhow3_u.obj_attributes.mode.set_mode3_u.mode = 0644;
        rc = rpc_nfs3_create_async(rpc, on_reply, &a, s);
    } else if (lookup_calls) {
        LOOKUP3args a = {.what = {.dir = dir_fh, .name = entry}};
        rc = rpc_nfs3_lookup_async(rpc, on_reply, &a, s);
    } else {
        GETATTR3args a = {.object = file_fh};
        rc = rpc_nfs3_getattr_async(rpc, on_reply, &a, s);
    }
    if (rc != 0) die("queue", rpc_get_error(rpc));
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(size_t n, double q) { return latency[(size_t)(q * (n - 1))] * 1e6; }

int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: nfsops HOST NFSPORT MOUNTPORT EXPORT NAME getattr|lookup|create OUTSTANDING SECONDS\n");
        return 2;
    }
    const char *host = argv[1];
    int nfs_port = atoi(argv[2]), mnt_port = atoi(argv[3]);
    entry = argv[5];
    lookup_calls = strcmp(argv[6], "lookup") == 0;
    create_calls = strcmp(argv[6], "create") == 0;
    int outstanding = atoi(argv[7]);
    double seconds = atof(argv[8]);
    int flag = 0;

    rpc = rpc_init_context();
    if (rpc_connect_port_async(rpc, host, mnt_port, MOUNT_PROGRAM, MOUNT_V3, on_connect, &flag) != 0)
        die("connect", rpc_get_error(rpc));
    run_until(&flag);
    flag = 0;
    if (rpc_mount3_mnt_async(rpc, on_mnt, argv[4], &flag) != 0) die("MNT", rpc_get_error(rpc));
    run_until(&flag);
    rpc_destroy_context(rpc);

    rpc = rpc_init_context();
    flag = 0;
    if (rpc_connect_port_async(rpc, host, nfs_port, NFS_PROGRAM, NFS_V3, on_connect, &flag) != 0)
        die("connect", rpc_get_error(rpc));
    run_until(&flag);
    flag = 0;
    LOOKUP3args first = {.what = {.dir = dir_fh, .name = entry}};
    if (rpc_nfs3_lookup_async(rpc, on_first_lookup, &first, &flag) != 0) die("LOOKUP", rpc_get_error(rpc));
    run_until(&flag);

    latency_cap = 1 << 24;
    latency = malloc(latency_cap * sizeof *latency);
    struct slot *slots = calloc(outstanding, sizeof *slots);
    double start = now();
    end_at = start + seconds;
    inflight = outstanding;
    for (int i = 0; i < outstanding; i++) {
        snprintf(slots[i].name, sizeof slots[i].name, "nfsops-%d-%d", (int)getpid(), i);
        issue(&slots[i]);
    }
    while (inflight > 0) service_once();
    double elapsed = now() - start;

    size_t n = (size_t)calls < latency_cap ? (size_t)calls : latency_cap;
    qsort(latency, n, sizeof *latency, by_value);
    printf("ops_per_s=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f max_us=%.1f calls=%ld\n", calls / elapsed,
           percentile(n, 0.5), percentile(n, 0.9), percentile(n, 0.99), n ? latency[n - 1] * 1e6 : 0.0, calls);
    rpc_destroy_context(rpc);
    return 0;
}
