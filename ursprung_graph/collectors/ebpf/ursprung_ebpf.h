/* What the eBPF program (ursprung.bpf.c), its loader (loader.c) and the Python reader
 * (records.py: BinaryParser, REC) share: the record layout and the syscall kinds. */
#ifndef URSPRUNG_EBPF_H
#define URSPRUNG_EBPF_H

#define MAX_NR 1024          /* syscall numbers below this */
#define MAP_KEYS 65536       /* threads followed, calls in flight */
#define SCRATCH 16384        /* bytes of strings per record (two paths, or exec's argv) */
#define PATH_MAX_LEN 4096    /* one name, with its NUL (PATH_MAX) */
#define ARG_MAX_LEN 1024     /* one argv element, with its NUL */
#define MAX_ARGS 64          /* argv elements per exec */
#define FLAG_CUT 1           /* a string was longer than what was read */
#define WAKE_BYTES (256 << 10) /* records waiting before the reader is woken */
#define POLL_MS 50           /* the reader looks anyway this often */

/* record types */
#define REC_CALL 'S'   /* a syscall that succeeded, with its strings */
#define REC_EXEC 'V'   /* an exec asked for (at enter): file name, then argv, NUL-separated */
#define REC_EXECED 'E' /* an exec succeeded (ret: the old tid) */
#define REC_TASK 'N'   /* a new task (ret: its tid, a[0]: clone flags) */
#define REC_EXIT 'X'   /* a task ended (ret: status or -1, a[0]: the process is gone) */
#define REC_MARK 'R'   /* the ready process called getpgid */
#define REC_LOST 'L'   /* from the loader: ret records did not fit in the ring buffer */
#define REC_READY 'A'  /* from the loader: every probe is attached */

/* what a syscall's arguments are */
#define K_NONE 0
#define K_PATH0 1    /* a name at arg 0 */
#define K_PATH1 2    /* a name at arg 1 */
#define K_OPENAT2 3  /* a name at arg 1, open_how at arg 2 (x[0]: its flags) */
#define K_PATH01 4   /* names at args 0 and 1 */
#define K_PATH13 5   /* names at args 1 and 3 */
#define K_PATH02 6   /* names at args 0 and 2 */
#define K_FD 7       /* descriptors only */
#define K_FCNTL 8    /* fcntl: only F_DUPFD(_CLOEXEC) */
#define K_PIPE 9     /* x[0], x[1]: the two descriptors */
#define K_SOCK 10    /* x[0..2]: the first 24 bytes of the sockaddr at arg 1 */
#define K_CONNECT 11 /* as K_SOCK; EINPROGRESS counts as success */
#define K_EXECVE 12
#define K_EXECVEAT 13
#define K_EXIT_GROUP 14
#define K_MARK 15    /* getpgid */

/* 96 bytes, little-endian, then len1 + len2 bytes of strings (each with its NUL; exec:
 * len1 bytes of file name, then argv's len2 elements) */
struct rec {
	__u16 size;  /* of the whole record */
	__u8 type;
	__u8 flags;
	__u32 nr;
	__u32 tid;
	__u32 pid;
	__u64 ts;    /* CLOCK_MONOTONIC ns */
	__s64 ret;
	__u64 a[4];
	__s64 x[3];
	__u16 len1;
	__u16 len2;
	__u32 pad;
};

#endif
