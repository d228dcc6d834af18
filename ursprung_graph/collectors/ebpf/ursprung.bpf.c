// SPDX-License-Identifier: GPL-2.0
/* The eBPF tracer's kernel side (libbpf CO-RE; built by `make ebpf` against a vmlinux.h that
 * bpftool generates from the running kernel's BTF). The loader (loader.c) fills the maps and
 * copies the ring buffer's records to stdout; records.py (BinaryParser) reads them.
 *
 * Which tasks: subtree mode (cfg_root != 0): the tids in `tracked` (seeded with the root,
 * every task it creates added at task_newtask, removed at exit); node mode: every task
 * whose process is not `excluded`, filtered by uid (`uids`) and cgroup (`cgroups`) when
 * those are set.
 *
 * Syscalls: `kinds` maps a syscall number to what its arguments are (K_*, set by the
 * loader from the architecture's numbers); enter saves the number and four arguments per
 * thread in `inflight`, exit emits one record with the result (failed calls emit nothing,
 * except a connect in progress). exec's file name and argv are emitted at enter (the
 * caller's memory is gone after a successful exec); sched_process_exec says it worked.
 * A record that does not fit in the ring buffer is counted in `lost`.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "ursprung_ebpf.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 cfg_root = 0;       /* subtree root (tid), 0: node mode */
const volatile __u32 cfg_ready_pid = 0;  /* its getpgid calls emit R markers */
const volatile __u32 cfg_filter_uid = 0; /* node mode: only the uids in `uids` */
const volatile __u32 cfg_filter_cgroup = 0;

struct args {
	__u64 kind;
	__u64 nr;
	__u64 a[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* resized by the loader */
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_NR);
	__type(key, __u32);
	__type(value, __u32);
} kinds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAP_KEYS);
	__type(key, __u32);
	__type(value, __u8);
} tracked SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} excluded SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} uids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAP_KEYS);
	__type(key, __u32);
	__type(value, struct args);
} inflight SEC(".maps");

/* exit status of a process (1 + code; 129 + signal), and a fatal signal sent to it */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAP_KEYS);
	__type(key, __u32);
	__type(value, __s64);
} status SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAP_KEYS);
	__type(key, __u32);
	__type(value, __s64);
} fatal_sent SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

struct scratch {
	struct rec h;
	char data[SCRATCH];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} buf SEC(".maps");

static __always_inline bool followed(__u32 tid, __u32 pid)
{
	if (cfg_root)
		return bpf_map_lookup_elem(&tracked, &tid) != NULL;
	if (bpf_map_lookup_elem(&excluded, &pid))
		return false;
	if (cfg_filter_uid) {
		__u32 uid = (__u32)bpf_get_current_uid_gid();
		if (!bpf_map_lookup_elem(&uids, &uid))
			return false;
	}
	if (cfg_filter_cgroup) {
		__u64 cg = bpf_get_current_cgroup_id();
		if (!bpf_map_lookup_elem(&cgroups, &cg))
			return false;
	}
	return true;
}

static __always_inline bool target_followed(__u32 tid)
{
	if (cfg_root)
		return bpf_map_lookup_elem(&tracked, &tid) != NULL;
	return true;
}

static __always_inline struct scratch *start(__u8 type, __u32 tid, __u32 pid)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&buf, &zero);
	if (!s)
		return NULL;
	__builtin_memset(&s->h, 0, sizeof(s->h));
	s->h.type = type;
	s->h.tid = tid;
	s->h.pid = pid;
	s->h.ts = bpf_ktime_get_ns();
	return s;
}

/* The reader is woken only when WAKE_BYTES (at most a quarter of the ring) are waiting, or
 * for a marker (it consumes what is there every POLL_MS anyway): a wake-up per record
 * would cost a context switch per call. */
static __always_inline void emit(struct scratch *s, __u32 len)
{
	__u32 size = sizeof(struct rec) + (len & (SCRATCH - 1));
	s->h.size = size;
	if (size > sizeof(struct scratch))
		return;
	__u64 threshold = bpf_ringbuf_query(&rb, BPF_RB_RING_SIZE) / 4;
	if (threshold > WAKE_BYTES)
		threshold = WAKE_BYTES;
	__u64 wake = s->h.type == REC_MARK || bpf_ringbuf_query(&rb, BPF_RB_AVAIL_DATA) >= threshold
		? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&rb, s, size, wake)) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&lost, &zero);
		if (n)
			*n += 1;
	}
}

/* a NUL-terminated user string at data[off..]: its length with the NUL, 0 if unreadable */
static __always_inline __u32 str_at(struct scratch *s, __u32 off, const void *p)
{
	if (!p)
		return 0;
	long n = bpf_probe_read_user_str(&s->data[off & (SCRATCH / 2 - 1)], PATH_MAX_LEN, p);
	if (n <= 0)
		return 0;
	if (n == PATH_MAX_LEN)
		s->h.flags |= FLAG_CUT;
	return (__u32)n;
}

struct argv_walk {
	const __u64 *argv;
	__u32 off;
	__u32 count;
};

/* one argv element (bpf_loop's callback: the verifier checks it once, not per element) */
static long argv_element(__u64 i, struct argv_walk *w)
{
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&buf, &zero); /* this CPU's, as the caller's */
	__u64 p = 0;
	if (!s || bpf_probe_read_user(&p, sizeof(p), &w->argv[i & (MAX_ARGS - 1)]) || !p)
		return 1;
	__u32 off = w->off;
	if (off >= SCRATCH / 2 - ARG_MAX_LEN) {
		s->h.flags |= FLAG_CUT;
		return 1;
	}
	long n = bpf_probe_read_user_str(&s->data[off & (SCRATCH / 2 - 1)], ARG_MAX_LEN,
					 (const void *)p);
	if (n <= 0)
		return 1;
	if (n == ARG_MAX_LEN)
		s->h.flags |= FLAG_CUT;
	w->off = off + (__u32)n;
	w->count++;
	return 0;
}

static __always_inline void exec_enter(__u32 tid, __u32 pid, struct args *a, __u32 kind)
{
	struct scratch *s = start(REC_EXEC, tid, pid);
	if (!s)
		return;
	const void *name = (const void *)(kind == K_EXECVE ? a->a[0] : a->a[1]);
	struct argv_walk w = {.argv = (const __u64 *)(kind == K_EXECVE ? a->a[1] : a->a[2])};
	s->h.nr = a->nr;
	s->h.a[0] = kind == K_EXECVE ? (__u64)-100 : a->a[0];
	w.off = str_at(s, 0, name);
	if (w.off == 0) {
		s->data[0] = 0;
		w.off = 1;
	}
	s->h.len1 = w.off;
	if (w.argv)
		bpf_loop(MAX_ARGS, argv_element, &w, 0);
	s->h.len2 = w.count;
	emit(s, w.off);
}

SEC("tracepoint/raw_syscalls/sys_enter")
int sys_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 nr = (__u32)ctx->id;
	__u32 *kind = bpf_map_lookup_elem(&kinds, &nr);
	if (!kind || !*kind)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, pid = id >> 32;
	/* the context is read once, at fixed offsets, before any branch (the verifier refuses
	 * a context pointer the compiler has moved) */
	struct args a = {.kind = *kind, .nr = nr};
	bpf_probe_read_kernel(a.a, sizeof(a.a), ctx->args);
	if (*kind == K_MARK) {
		if (pid == cfg_ready_pid) {
			struct scratch *s = start(REC_MARK, tid, pid);
			if (s)
				emit(s, 0);
		}
		return 0;
	}
	if (!followed(tid, pid))
		return 0;
	if (*kind == K_EXIT_GROUP) {
		__s64 code = 1 + (a.a[0] & 0xff);
		bpf_map_update_elem(&status, &pid, &code, BPF_ANY);
		return 0;
	}
	if (*kind == K_FCNTL && a.a[1] != 0 && a.a[1] != 1030)
		return 0; /* only F_DUPFD and F_DUPFD_CLOEXEC make a descriptor */
	if (*kind == K_EXECVE || *kind == K_EXECVEAT) {
		exec_enter(tid, pid, &a, *kind);
		return 0;
	}
	bpf_map_update_elem(&inflight, &tid, &a, BPF_ANY);
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_exit")
int sys_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, pid = id >> 32;
	struct args *saved = bpf_map_lookup_elem(&inflight, &tid);
	if (!saved)
		return 0;
	struct args a = *saved;
	bpf_map_delete_elem(&inflight, &tid);
	long ret = ctx->ret;
	if (ret < 0 && !(a.kind == K_CONNECT && ret == -115 /* EINPROGRESS */))
		return 0;
	struct scratch *s = start(REC_CALL, tid, pid);
	if (!s)
		return 0;
	s->h.nr = a.nr;
	s->h.ret = ret;
	s->h.a[0] = a.a[0];
	s->h.a[1] = a.a[1];
	s->h.a[2] = a.a[2];
	s->h.a[3] = a.a[3];
	const void *p1 = NULL, *p2 = NULL;
	switch (a.kind) {
	case K_PATH0:
		p1 = (const void *)a.a[0];
		break;
	case K_PATH1:
		p1 = (const void *)a.a[1];
		break;
	case K_OPENAT2:
		p1 = (const void *)a.a[1];
		bpf_probe_read_user(&s->h.x[0], 8, (const void *)a.a[2]);
		break;
	case K_PATH01:
		p1 = (const void *)a.a[0];
		p2 = (const void *)a.a[1];
		break;
	case K_PATH13:
		p1 = (const void *)a.a[1];
		p2 = (const void *)a.a[3];
		break;
	case K_PATH02:
		p1 = (const void *)a.a[0];
		p2 = (const void *)a.a[2];
		break;
	case K_PIPE: {
		int fds[2] = {0, 0};
		bpf_probe_read_user(fds, sizeof(fds), (const void *)a.a[0]);
		s->h.x[0] = fds[0];
		s->h.x[1] = fds[1];
		break;
	}
	case K_SOCK:
	case K_CONNECT: {
		const char *sa = (const char *)a.a[1];
		if (!sa)
			break;
		bpf_probe_read_user(s->h.x, sizeof(s->h.x), sa);
		if ((s->h.x[0] & 0xffff) == 1) { /* AF_UNIX: the path follows */
			char first = 0;
			bpf_probe_read_user(&first, 1, sa + 2);
			p1 = sa + 2;
			if (first == 0) { /* abstract */
				p1 = sa + 3;
				s->h.x[2] = -1;
			}
		}
		break;
	}
	default:
		break;
	}
	__u32 n1 = str_at(s, 0, p1);
	__u32 n2 = p2 ? str_at(s, n1, p2) : 0;
	s->h.len1 = n1;
	s->h.len2 = n2;
	emit(s, n1 + n2);
	return 0;
}

SEC("tracepoint/task/task_newtask")
int task_newtask(struct trace_event_raw_task_newtask *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, pid = id >> 32;
	if (!followed(tid, pid))
		return 0;
	__u32 child = ctx->pid;
	if (cfg_root) {
		__u8 one = 1;
		bpf_map_update_elem(&tracked, &child, &one, BPF_ANY);
	}
	struct scratch *s = start(REC_TASK, tid, pid);
	if (!s)
		return 0;
	s->h.ret = child;
	s->h.a[0] = ctx->clone_flags;
	emit(s, 0);
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int sched_process_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, pid = id >> 32;
	if (!followed(tid, pid))
		return 0;
	struct scratch *s = start(REC_EXECED, tid, pid);
	if (!s)
		return 0;
	s->h.ret = ctx->old_pid;
	emit(s, 0);
	return 0;
}

static __always_inline bool fatal(__s64 g)
{
	return (g >= 1 && g <= 16) || (g >= 24 && g <= 27) || (g >= 29 && g <= 31);
}

SEC("tracepoint/signal/signal_generate")
int signal_generate(struct trace_event_raw_signal_generate *ctx)
{
	__u32 target = ctx->pid;
	if (!target_followed(target))
		return 0;
	__s64 g = ctx->sig;
	if (fatal(g)) /* a fatal signal becomes a group SIGKILL when it is sent */
		bpf_map_update_elem(&fatal_sent, &target, &g, BPF_ANY);
	return 0;
}

SEC("tracepoint/signal/signal_deliver")
int signal_deliver(struct trace_event_raw_signal_deliver *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, pid = id >> 32;
	if (!followed(tid, pid))
		return 0;
	__s64 g = ctx->sig;
	if (g == 9) {
		__s64 *sent = bpf_map_lookup_elem(&fatal_sent, &pid);
		if (sent && *sent)
			g = *sent;
	}
	if (ctx->sa_handler == 0 && !bpf_map_lookup_elem(&status, &pid) && fatal(g)) {
		__s64 code = 129 + g;
		bpf_map_update_elem(&status, &pid, &code, BPF_ANY);
	}
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int sched_process_exit(struct trace_event_raw_sched_process_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, pid = id >> 32;
	if (!followed(tid, pid))
		return 0;
	bool group_dead = tid == pid;
	if (bpf_core_field_exists(ctx->group_dead))
		group_dead = BPF_CORE_READ(ctx, group_dead);
	__s64 code = 0;
	__s64 *c = bpf_map_lookup_elem(&status, &pid);
	if (c)
		code = *c;
	if (group_dead) {
		bpf_map_delete_elem(&status, &pid);
		bpf_map_delete_elem(&fatal_sent, &pid);
	}
	if (cfg_root)
		bpf_map_delete_elem(&tracked, &tid);
	bpf_map_delete_elem(&inflight, &tid);
	struct scratch *s = start(REC_EXIT, tid, pid);
	if (!s)
		return 0;
	s->h.ret = code - 1;
	s->h.a[0] = group_dead;
	emit(s, 0);
	return 0;
}
