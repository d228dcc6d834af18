/* ursprung-ebpf: loads the eBPF tracer (ursprung.bpf.c, embedded as a libbpf skeleton),
 * attaches it, and copies its ring buffer's records (struct rec, ursprung_ebpf.h) to stdout
 * as they come, unchanged. Built by `make ebpf`; run by collectors/ebpf/capture.py.
 *
 *   ursprung-ebpf --ready PID [--root PID | [--uid U]... [--cgroup ID]... [--exclude PID]...]
 *                 [--ring-kb N]
 *
 * --root: follow that task's subtree; without it the whole node (except this process and
 * the --exclude'd ones), filtered by uid and cgroup id when given. After attaching it
 * writes one REC_READY record; records the kernel could not put in the ring buffer are
 * reported as REC_LOST records with their count. SIGINT/SIGTERM: read what is left, end.
 * Errors: one line on stderr, exit status 1 (2: bad arguments). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/types.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include "ursprung_ebpf.h"
#include "ursprung.skel.h"

static volatile sig_atomic_t stopping;

static void on_signal(int sig) { (void)sig; stopping = 1; }

static int on_record(void *ctx, void *data, size_t size)
{
	(void)ctx;
	return fwrite(data, 1, size, stdout) == size ? 0 : -1;
}

static void control(__u8 type, __s64 value)
{
	struct rec r;
	struct timespec now;
	memset(&r, 0, sizeof(r));
	clock_gettime(CLOCK_MONOTONIC, &now);
	r.size = sizeof(r);
	r.type = type;
	r.tid = r.pid = (__u32)getpid();
	r.ts = (__u64)now.tv_sec * 1000000000ull + (__u64)now.tv_nsec;
	r.ret = value;
	fwrite(&r, 1, sizeof(r), stdout);
}

static __u64 lost_total(int fd)
{
	int cpus = libbpf_num_possible_cpus();
	__u64 values[cpus > 0 ? cpus : 1];
	__u32 zero = 0;
	__u64 sum = 0;
	if (cpus <= 0 || bpf_map_lookup_elem(fd, &zero, values))
		return 0;
	for (int i = 0; i < cpus; i++)
		sum += values[i];
	return sum;
}

struct kind { int nr; __u32 kind; };

static const struct kind KINDS[] = {
#ifdef SYS_open
	{SYS_open, K_PATH0},
#endif
#ifdef SYS_creat
	{SYS_creat, K_PATH0},
#endif
	{SYS_openat, K_PATH1},
#ifdef SYS_openat2
	{SYS_openat2, K_OPENAT2},
#endif
	{SYS_close, K_FD}, {SYS_dup, K_FD},
#ifdef SYS_dup2
	{SYS_dup2, K_FD},
#endif
	{SYS_dup3, K_FD}, {SYS_fcntl, K_FCNTL},
#ifdef SYS_pipe
	{SYS_pipe, K_PIPE},
#endif
	{SYS_pipe2, K_PIPE},
#ifdef SYS_rename
	{SYS_rename, K_PATH01},
#endif
	{SYS_renameat, K_PATH13},
#ifdef SYS_renameat2
	{SYS_renameat2, K_PATH13},
#endif
#ifdef SYS_unlink
	{SYS_unlink, K_PATH0},
#endif
	{SYS_unlinkat, K_PATH1},
#ifdef SYS_rmdir
	{SYS_rmdir, K_PATH0},
#endif
#ifdef SYS_link
	{SYS_link, K_PATH01},
#endif
	{SYS_linkat, K_PATH13},
#ifdef SYS_symlink
	{SYS_symlink, K_PATH01},
#endif
	{SYS_symlinkat, K_PATH02},
	{SYS_truncate, K_PATH0}, {SYS_ftruncate, K_FD},
	{SYS_chdir, K_PATH0}, {SYS_fchdir, K_FD},
	{SYS_connect, K_CONNECT}, {SYS_bind, K_SOCK},
#ifdef SYS_accept
	{SYS_accept, K_SOCK},
#endif
	{SYS_accept4, K_SOCK},
	{SYS_execve, K_EXECVE}, {SYS_execveat, K_EXECVEAT},
	{SYS_exit_group, K_EXIT_GROUP}, {SYS_getpgid, K_MARK},
};

static int quiet(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level != LIBBPF_WARN || getenv("URSPRUNG_EBPF_DEBUG") == NULL)
		return 0;
	return vfprintf(stderr, fmt, args);
}

#define MAX_LIST 256

static int die(const char *what, int err)
{
	fprintf(stderr, "ursprung-ebpf: %s: %s\n", what, strerror(err < 0 ? -err : err));
	return 1;
}

int main(int argc, char **argv)
{
	long ready = 0, root = 0, ring_kb = 16384;
	__u32 uid_list[MAX_LIST], excl[MAX_LIST];
	__u64 cg_list[MAX_LIST];
	int nuid = 0, ncg = 0, nexcl = 0;
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		if (!val) {
			fprintf(stderr, "ursprung-ebpf: %s needs a value\n", opt);
			return 2;
		}
		i++;
		char *end;
		unsigned long long v = strtoull(val, &end, 10);
		if (*end || !*val) {
			fprintf(stderr, "ursprung-ebpf: %s %s: not a number\n", opt, val);
			return 2;
		}
		if (!strcmp(opt, "--ready")) ready = (long)v;
		else if (!strcmp(opt, "--root")) root = (long)v;
		else if (!strcmp(opt, "--ring-kb")) ring_kb = (long)v;
		else if (!strcmp(opt, "--uid") && nuid < MAX_LIST) uid_list[nuid++] = (__u32)v;
		else if (!strcmp(opt, "--cgroup") && ncg < MAX_LIST) cg_list[ncg++] = v;
		else if (!strcmp(opt, "--exclude") && nexcl < MAX_LIST) excl[nexcl++] = (__u32)v;
		else {
			fprintf(stderr, "ursprung-ebpf: unknown option %s\n", opt);
			return 2;
		}
	}
	if (ready <= 0 || ring_kb < 4 || (ring_kb & (ring_kb - 1))) {
		fprintf(stderr, "ursprung-ebpf: --ready PID is needed; --ring-kb is a power of 2, "
			"at least 4\n");
		return 2;
	}
	libbpf_set_print(quiet);
	struct ursprung_bpf *skel = ursprung_bpf__open();
	if (!skel)
		return die("the eBPF program could not be opened", errno);
	skel->rodata->cfg_root = (__u32)root;
	skel->rodata->cfg_ready_pid = (__u32)ready;
	skel->rodata->cfg_filter_uid = nuid > 0;
	skel->rodata->cfg_filter_cgroup = ncg > 0;
	int err = bpf_map__set_max_entries(skel->maps.rb, (__u32)(ring_kb << 10));
	if (err)
		return die("ring buffer size", err);
	err = ursprung_bpf__load(skel);
	if (err)
		return die("the eBPF program did not load", err);
	__u8 one = 1;
	for (size_t i = 0; i < sizeof(KINDS) / sizeof(KINDS[0]); i++) {
		__u32 nr = (__u32)KINDS[i].nr;
		if (nr < MAX_NR)
			bpf_map__update_elem(skel->maps.kinds, &nr, sizeof(nr), &KINDS[i].kind,
					     sizeof(__u32), BPF_ANY);
	}
	if (root) {
		__u32 r = (__u32)root;
		bpf_map__update_elem(skel->maps.tracked, &r, sizeof(r), &one, 1, BPF_ANY);
	} else {
		__u32 self = (__u32)getpid();
		bpf_map__update_elem(skel->maps.excluded, &self, sizeof(self), &one, 1, BPF_ANY);
		for (int i = 0; i < nexcl; i++)
			bpf_map__update_elem(skel->maps.excluded, &excl[i], sizeof(__u32), &one, 1,
					     BPF_ANY);
		for (int i = 0; i < nuid; i++)
			bpf_map__update_elem(skel->maps.uids, &uid_list[i], sizeof(__u32), &one, 1,
					     BPF_ANY);
		for (int i = 0; i < ncg; i++)
			bpf_map__update_elem(skel->maps.cgroups, &cg_list[i], sizeof(__u64), &one, 1,
					     BPF_ANY);
	}
	struct ring_buffer *rb = ring_buffer__new(bpf_map__fd(skel->maps.rb), on_record, NULL,
						  NULL);
	if (!rb)
		return die("ring buffer", errno);
	err = ursprung_bpf__attach(skel);
	if (err)
		return die("the eBPF program could not be attached", err);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	static char out[1 << 20];
	setvbuf(stdout, out, _IOFBF, sizeof(out));
	control(REC_READY, 0);
	fflush(stdout);
	int lost_fd = bpf_map__fd(skel->maps.lost);
	__u64 lost_seen = 0;
	int status = 0;
	while (!stopping) {
		err = ring_buffer__poll(rb, POLL_MS);
		if (err < 0 && err != -EINTR) {
			status = die("reading the ring buffer", err);
			break;
		}
		/* Records below the wake-up threshold wake nobody, and epoll reports the ring
		 * only after a wake-up: without this they would wait for 256 KiB more or the end
		 * (a quiet command's, or a quiet node's, events held back indefinitely). */
		if (err == 0 && ring_buffer__consume(rb) < 0) {
			status = die("reading the ring buffer", errno);
			break;
		}
		__u64 n = lost_total(lost_fd);
		if (n > lost_seen) {
			control(REC_LOST, (__s64)(n - lost_seen));
			lost_seen = n;
		}
		if (fflush(stdout) != 0)
			break; /* the reader is gone */
	}
	ring_buffer__consume(rb);
	__u64 n = lost_total(lost_fd);
	if (n > lost_seen)
		control(REC_LOST, (__s64)(n - lost_seen));
	fflush(stdout);
	ring_buffer__free(rb);
	ursprung_bpf__destroy(skel);
	return status;
}
