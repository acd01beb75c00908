/* pid detector: find the target process (a PID, a pid file, or a command line
 * pattern), watch it through a pidfd, and tell the core when it ended and how.
 *
 * The exit status comes from waitid() for our own children, else from the
 * kernel's process-events connector (needs CAP_NET_ADMIN), else it is unknown:
 * never guessed. Identity is (pid, start time) everywhere.
 *
 * The connector is one socket for every instance in the process (the plugin's
 * shared state): each exit on the machine is read once and handed, through a
 * pid -> instances table, to the instances watching that pid.
 *
 * The connector sends every fork, exec, exit... of the machine. Two filters
 * keep an idle monitor asleep: the kernel's own (Linux 6.6: the subscription
 * names the events wanted) and, everywhere, a classic BPF socket filter that
 * passes only acks, exits of the watched processes and, while a match target
 * waits, execs. Our own children need no connector at all: waitid() tells. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/filter.h>
#include <linux/netlink.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "lib/proc.h"
#include "vigil/plugin.h"

/* How long to wait for the connector's exit message once the pidfd said the
 * process is gone: the kernel sends it first, but it may still be in flight. */
#define PID_EXIT_GRACE_MS 100
/* Rescan period for match targets and missing pid file folders when the
 * kernel cannot tell us. */
#define PID_POLL_MS 1000
/* A pid file written this long before its process started names another process
 * (a reused PID). The slack covers clock-tick resolution and coarse mtimes. */
#define PID_FILE_SLACK_MS 2000
/* An empty pid file is usually being written right now: warn only if it stays so. */
#define PID_EMPTY_GRACE_MS 1000
/* What changes a pid file in its folder (IN_ATTRIB: a touch moves its mtime). */
#define PID_DIR_MASK                                                                      \
	(IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_MODIFY | IN_DELETE | IN_ATTRIB |   \
	 IN_ONLYDIR)
#define PID_CMDLINE_MAX 4096
#define PID_AMBIGUOUS_LIST 10
/* The connector's receive queue: 10,000 processes killed at once are about
 * 10,000 small messages, each costing a socket buffer of ~1 KiB. */
#define PID_CN_RCVBUF (8 << 20)
/* Datagrams read per recvmmsg() call, and the room for each (a proc event
 * message is under 100 bytes). */
#define PID_CN_BATCH 64
#define PID_CN_MSG_MAX 512
/* Exec events are collected for this long, then the new command lines are
 * read once for every waiting match target: an exec storm costs one pass per
 * period, not one /proc scan per exec and instance. */
#define PID_EXEC_BATCH_MS 50
/* More execs than this in one period: every waiting match target rescans. */
#define PID_EXEC_MAX 4096
/* Up to this many watched processes, the socket filter compares each exit's
 * PID with theirs; above, every exit passes and the pid table decides. */
#define PID_BPF_MAX_PIDS 64

/* The subscription that names the events wanted (Linux 6.6, struct
 * proc_input), spelled out so that older headers build it too; older kernels
 * ignore it, and the socket filter alone does the job there. */
struct pid_cn_input {
	uint32_t mcast_op;
	uint32_t event_type;
};
#ifdef PROC_EVENT_ALL
_Static_assert(sizeof(struct proc_input) == sizeof(struct pid_cn_input), "proc_input layout");
#endif

enum pid_mode { PID_BY_PID, PID_BY_FILE, PID_BY_MATCH };
enum pid_via { VIA_AUTO, VIA_WAITID, VIA_CONNECTOR, VIA_NONE };

struct pid_status {
	bool known;
	int code, sig, core;
};

struct pid_det;

/* The instances attached to one pid (several monitors may watch one process). */
struct pid_slot {
	pid_t pid; /* 0: empty */
	struct pid_det *head;
};

/* One per process (or per instance when the core offers no shared state). */
struct pid_shared {
	const struct vigil_host *host;
	struct vigil_ctx *ctx; /* the shared ctx: the socket and the exec timer */

	int cn_fd;        /* -1 while no started instance needs it */
	int cn_failed;    /* a lasting subscription failure (-EPERM...), else 0 */
	bool cn_told;     /* the failure was logged */
	bool lost_told;   /* an overflow was logged */
	uint32_t cn_seq;
	size_t users;     /* started instances relying on the socket */
	bool k_set, k_exec;     /* the kernel was told which events; execs too */
	bool bpf_all, bpf_exec; /* the socket filter passes every exit; execs */
	char *rbuf;       /* PID_CN_BATCH * PID_CN_MSG_MAX, while open */

	/* pid -> instances: open addressing, linear probing, load <= 1/2. */
	struct pid_slot *slots;
	size_t cap, n;

	/* Match targets, woken by exec events. */
	struct pid_det **matchers;
	size_t n_matchers, cap_matchers;
	pid_t *execs;
	size_t n_execs;
	bool execs_overflow;
	int64_t exec_timer;
};

struct pid_det {
	const struct vigil_host *host;
	struct vigil_ctx *ctx;
	enum pid_mode mode;
	enum pid_via via;
	bool ended; /* lost() was called: nothing more to do */

	pid_t want_pid;            /* pid */
	char *path, *dir, *base;   /* pid_file */
	char *pattern;             /* match */
	pcre2_code *re;
	pcre2_match_data *md;

	struct pid_shared *sh;
	bool own_sh;      /* sh is private: the core offers no shared state */
	bool cn_user;     /* counted in sh->users */
	bool in_table;    /* registered under pid in sh's table */
	struct pid_det *next_same; /* the next instance attached to the same pid */
	size_t matcher_idx;        /* in sh->matchers, when in_matchers */
	bool in_matchers, exec_hit;

	/* The attached process. */
	int pidfd;
	pid_t pid;
	uint64_t start;
	bool is_child;
	bool exit_seen, leader_seen;
	struct pid_status cn_status;
	int64_t grace_timer;
	bool grace_short; /* the grace timer was cut to 0: the status is here */

	/* The run last reported, so a pid file still naming it is not re-attached. */
	pid_t done_pid;
	uint64_t done_start;

	/* Waiting for the target. */
	int ino_fd;
	int64_t poll_timer, recheck_timer, empty_timer;
	bool empty_grace_over;
	char *warned; /* what was last warned about, to warn once per content */
};

static const struct vigil_option pid_options[] = {
	{ "pid", VIGIL_OPT_INT, 0, NULL, "the PID of a running process" },
	{ "pid_file", VIGIL_OPT_PATH, 0, NULL, "a pid file, waited for and re-read when it changes" },
	{ "match", VIGIL_OPT_REGEX, 0, NULL, "a pattern over /proc/*/cmdline matching one process" },
	{ "exit_via", VIGIL_OPT_STRING, 0, "auto",
	  "where the exit status comes from: auto, waitid, connector or none" },
	{ NULL, 0, 0, NULL, NULL },
};

static void pid_check_file(struct pid_det *d);
static void pid_rescan(struct pid_det *d);
static int pid_file_watch(struct pid_det *d, char *err, size_t errlen);
static int64_t pid_on_grace(void *data);
static int64_t pid_on_recheck(void *data);

/* ----------------------------------------------------------- pid table */

static size_t pid_hash(pid_t pid)
{
	uint32_t x = (uint32_t)pid;
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

/* The slot holding pid, or the empty one where it would go. */
static struct pid_slot *pid_table_probe(const struct pid_shared *s, pid_t pid)
{
	size_t mask = s->cap - 1;
	for (size_t i = pid_hash(pid) & mask;; i = (i + 1) & mask)
		if (s->slots[i].pid == pid || s->slots[i].pid == 0)
			return &s->slots[i];
}

static struct pid_det *pid_table_get(const struct pid_shared *s, pid_t pid)
{
	return s->cap ? pid_table_probe(s, pid)->head : NULL;
}

static int pid_table_grow(struct pid_shared *s)
{
	size_t cap = s->cap ? s->cap * 2 : 64;
	struct pid_slot *old = s->slots, *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	size_t old_cap = s->cap;
	s->slots = slots;
	s->cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].pid)
			*pid_table_probe(s, old[i].pid) = old[i];
	free(old);
	return 0;
}

static int pid_table_add(struct pid_shared *s, struct pid_det *d)
{
	if ((s->n + 1) * 2 > s->cap && pid_table_grow(s) < 0)
		return -ENOMEM;
	struct pid_slot *slot = pid_table_probe(s, d->pid);
	if (slot->pid == 0) {
		slot->pid = d->pid;
		s->n++;
	}
	d->next_same = slot->head;
	slot->head = d;
	d->in_table = true;
	return 0;
}

/* Empty slot i, shifting back the entries of its probe run that may move,
 * so that lookups never need tombstones. */
static void pid_table_clear(struct pid_shared *s, size_t i)
{
	size_t mask = s->cap - 1;
	for (size_t j = (i + 1) & mask; s->slots[j].pid; j = (j + 1) & mask) {
		size_t home = pid_hash(s->slots[j].pid) & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			s->slots[i] = s->slots[j];
			i = j;
		}
	}
	s->slots[i] = (struct pid_slot){ 0 };
	s->n--;
}

static void pid_table_del(struct pid_shared *s, struct pid_det *d)
{
	if (!d->in_table)
		return;
	d->in_table = false;
	struct pid_slot *slot = pid_table_probe(s, d->pid);
	for (struct pid_det **p = &slot->head; *p; p = &(*p)->next_same) {
		if (*p == d) {
			*p = d->next_same;
			break;
		}
	}
	d->next_same = NULL;
	if (!slot->head && slot->pid)
		pid_table_clear(s, (size_t)(slot - s->slots));
}

/* ------------------------------------------------------------ match list */

static int pid_matchers_add(struct pid_shared *s, struct pid_det *d)
{
	if (s->n_matchers == s->cap_matchers) {
		size_t cap = s->cap_matchers ? s->cap_matchers * 2 : 16;
		struct pid_det **m = realloc(s->matchers, cap * sizeof(*m));
		if (!m)
			return -ENOMEM;
		s->matchers = m;
		s->cap_matchers = cap;
	}
	d->matcher_idx = s->n_matchers;
	s->matchers[s->n_matchers++] = d;
	d->in_matchers = true;
	return 0;
}

static void pid_matchers_del(struct pid_shared *s, struct pid_det *d)
{
	if (!d->in_matchers)
		return;
	struct pid_det *last = s->matchers[--s->n_matchers];
	s->matchers[d->matcher_idx] = last;
	last->matcher_idx = d->matcher_idx;
	d->in_matchers = false;
}

static bool pid_waiting_match(const struct pid_det *d)
{
	return d->mode == PID_BY_MATCH && !d->ended && d->pidfd < 0;
}

/* Have d rescan /proc from its own timer: it may call lost(), and the core
 * may destroy it there, which must not happen inside a shared callback. */
static void pid_recheck_soon(struct pid_det *d)
{
	if (d->recheck_timer)
		return;
	int64_t id = d->host->add_timer(d->ctx, 0, pid_on_recheck, d);
	d->recheck_timer = id > 0 ? id : 0;
}

/* The batch of exec'd processes: read each new command line once and wake
 * only the match targets it satisfies (they then rescan and decide). */
static int64_t pid_on_execs(void *data)
{
	struct pid_shared *s = data;
	char cmdline[PID_CMDLINE_MAX];
	s->exec_timer = 0;
	for (size_t i = 0; i < s->n_execs && !s->execs_overflow; i++) {
		if (proc_cmdline(s->execs[i], cmdline, sizeof(cmdline)) < 0 || !cmdline[0])
			continue;
		for (size_t k = 0; k < s->n_matchers; k++) {
			struct pid_det *d = s->matchers[k];
			if (!d->exec_hit && pid_waiting_match(d) &&
			    pcre2_match(d->re, (PCRE2_SPTR)cmdline, strlen(cmdline), 0, 0, d->md,
					NULL) >= 0)
				d->exec_hit = true;
		}
	}
	for (size_t k = 0; k < s->n_matchers; k++) {
		struct pid_det *d = s->matchers[k];
		if ((d->exec_hit || s->execs_overflow) && pid_waiting_match(d))
			pid_recheck_soon(d);
		d->exec_hit = false;
	}
	s->n_execs = 0;
	s->execs_overflow = false;
	return VIGIL_TIMER_DONE;
}

static void pid_exec_note(struct pid_shared *s, pid_t pid, bool overflow)
{
	if (!s->n_matchers)
		return;
	if (!s->execs && !overflow)
		s->execs = malloc(PID_EXEC_MAX * sizeof(*s->execs));
	if (overflow || !s->execs || s->n_execs == PID_EXEC_MAX)
		s->execs_overflow = true;
	else
		s->execs[s->n_execs++] = pid;
	if (!s->exec_timer) {
		int64_t id = s->host->add_timer(s->ctx, PID_EXEC_BATCH_MS, pid_on_execs, s);
		s->exec_timer = id > 0 ? id : 0;
	}
}

/* ------------------------------------------------------------- connector */

static void pid_status_from_wait(struct pid_status *st, int status)
{
	*st = (struct pid_status){ .known = true, .code = -1, .sig = -1 };
	if (WIFEXITED(status)) {
		st->code = WEXITSTATUS(status);
	} else if (WIFSIGNALED(status)) {
		st->sig = WTERMSIG(status);
		st->core = WCOREDUMP(status) ? 1 : 0;
	} else {
		st->known = false;
	}
}

/* The status arrived while d waits out its grace period: end the wait now,
 * from d's own timer (reporting here could destroy instances mid-dispatch). */
static void pid_grace_cut(struct pid_det *d)
{
	if (!d->grace_timer || d->grace_short)
		return;
	int64_t id = d->host->add_timer(d->ctx, 0, pid_on_grace, d);
	if (id <= 0)
		return; /* the 100 ms timer still reports it */
	d->host->cancel_timer(d->ctx, d->grace_timer);
	d->grace_timer = id;
	d->grace_short = true;
}

/* Keep the exit of a thread of d's process. The last one to exit carries the
 * group's status (a leader that called pthread_exit() reports 0 early), so a
 * later event replaces an earlier one; a second leader exit can only be
 * another process that reused the PID, and is ignored. */
static void pid_cn_exit(struct pid_det *d, const struct proc_event *ev)
{
	pid_t tid = ev->event_data.exit.process_pid;
	pid_t tgid = ev->event_data.exit.process_tgid;
	if (tid == tgid) {
		if (d->leader_seen)
			return;
		d->leader_seen = true;
	}
	pid_status_from_wait(&d->cn_status, (int)ev->event_data.exit.exit_code);
	d->exit_seen = true;
	pid_grace_cut(d);
}

/* One connector message. Returns -errno from a subscription ack, else 0. */
static int pid_cn_message(struct pid_shared *s, const struct cn_msg *cn)
{
	struct proc_event ev;
	if (cn->id.idx != CN_IDX_PROC || cn->id.val != CN_VAL_PROC ||
	    cn->len < offsetof(struct proc_event, event_data))
		return 0;
	/* The payload sits 4 bytes past an 8-byte boundary: copy it out. */
	memset(&ev, 0, sizeof(ev));
	memcpy(&ev, cn->data, cn->len < sizeof(ev) ? cn->len : sizeof(ev));
	switch (ev.what) {
	case PROC_EVENT_EXIT:
		for (struct pid_det *d = pid_table_get(s, ev.event_data.exit.process_tgid); d;
		     d = d->next_same)
			pid_cn_exit(d, &ev);
		break;
	case PROC_EVENT_EXEC:
		pid_exec_note(s, ev.event_data.exec.process_tgid, false);
		break;
	case PROC_EVENT_NONE:
		if (cn->seq == s->cn_seq && ev.event_data.ack.err)
			return -(int)ev.event_data.ack.err;
		break;
	default:
		break;
	}
	return 0;
}

/* One datagram from the kernel. */
static int pid_cn_datagram(struct pid_shared *s, const char *buf, size_t len)
{
	int ret = 0;
	for (const struct nlmsghdr *nh = (const void *)buf; NLMSG_OK(nh, len);
	     nh = NLMSG_NEXT(nh, len)) {
		if (nh->nlmsg_type == NLMSG_ERROR || nh->nlmsg_type == NLMSG_NOOP)
			continue;
		if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct cn_msg)))
			continue;
		int r = pid_cn_message(s, NLMSG_DATA(nh));
		if (r < 0)
			ret = r;
	}
	return ret;
}

/* The queue overflowed: some exits may be lost. Those instances end as
 * unknown after their grace period (never guessed); match targets rescan,
 * since an exec may be lost too. */
static void pid_cn_overflow(struct pid_shared *s)
{
	if (!s->lost_told)
		s->host->log(s->ctx, VIGIL_LOG_WARN,
			     "process events lost (the kernel's queue overflowed): an exit "
			     "status missed is reported as unknown");
	s->lost_told = true;
	pid_exec_note(s, 0, true);
}

/* Read everything queued, many datagrams per system call. Returns -errno
 * from a subscription ack or a socket error, else 0. */
static int pid_cn_drain(struct pid_shared *s)
{
	struct mmsghdr msgs[PID_CN_BATCH];
	struct iovec iov[PID_CN_BATCH];
	struct sockaddr_nl from[PID_CN_BATCH];
	int ret = 0;
	if (s->cn_fd < 0)
		return 0;
	for (;;) {
		memset(msgs, 0, sizeof(msgs));
		for (size_t i = 0; i < PID_CN_BATCH; i++) {
			iov[i] = (struct iovec){ s->rbuf + i * PID_CN_MSG_MAX, PID_CN_MSG_MAX };
			msgs[i].msg_hdr = (struct msghdr){ .msg_name = &from[i],
							   .msg_namelen = sizeof(from[i]),
							   .msg_iov = &iov[i],
							   .msg_iovlen = 1 };
		}
		int n = recvmmsg(s->cn_fd, msgs, PID_CN_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ENOBUFS) {
			pid_cn_overflow(s);
			continue;
		}
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? ret : -errno;
		for (int i = 0; i < n; i++) {
			if (from[i].nl_pid != 0 || (msgs[i].msg_hdr.msg_flags & MSG_TRUNC))
				continue; /* only the kernel speaks here */
			int r = pid_cn_datagram(s, iov[i].iov_base, msgs[i].msg_len);
			if (r < 0)
				ret = r;
		}
	}
}

/* A subscription message (the operation, alone or with the events wanted). */
static int pid_cn_send(struct pid_shared *s, const void *data, size_t len)
{
	_Alignas(struct nlmsghdr) char buf[NLMSG_SPACE(sizeof(struct cn_msg) +
						       sizeof(struct pid_cn_input))];
	memset(buf, 0, sizeof(buf));
	struct nlmsghdr *nh = (void *)buf;
	nh->nlmsg_len = NLMSG_LENGTH(sizeof(struct cn_msg) + len);
	nh->nlmsg_type = NLMSG_DONE;
	struct cn_msg *cn = NLMSG_DATA(nh);
	cn->id.idx = CN_IDX_PROC;
	cn->id.val = CN_VAL_PROC;
	cn->seq = s->cn_seq;
	cn->len = (uint16_t)len;
	memcpy(cn->data, data, len);
	return send(s->cn_fd, buf, nh->nlmsg_len, 0) < 0 ? -errno : 0;
}

static int pid_cn_send_listen(struct pid_shared *s)
{
	uint32_t op = PROC_CN_MCAST_LISTEN;
	int r = pid_cn_send(s, &op, sizeof(op));
	/* The kernel answers synchronously; an EPERM comes back in the ack. */
	return r < 0 ? r : pid_cn_drain(s);
}

/* Kernel-side filtering (Linux 6.6): only exits, and execs when asked. The
 * kernel sends no ack for it (its own filter drops the ack), and an older one
 * ignores the message: either way nothing to wait for. */
static void pid_cn_kernel_events(struct pid_shared *s, bool exec)
{
	struct pid_cn_input in = {
		.mcast_op = PROC_CN_MCAST_LISTEN,
		.event_type = (uint32_t)PROC_EVENT_EXIT | (exec ? (uint32_t)PROC_EVENT_EXEC : 0),
	};
	if (pid_cn_send(s, &in, sizeof(in)) == 0) {
		s->k_set = true;
		s->k_exec = exec;
	}
}

/* ----------------------------------------------------------- socket filter */

/* Byte offsets in a datagram: nlmsghdr, cn_msg, then the proc_event. */
#define PID_BPF_CN(field) (NLMSG_HDRLEN + offsetof(struct cn_msg, field))
#define PID_BPF_EV(field)                                                                 \
	(NLMSG_HDRLEN + offsetof(struct cn_msg, data) + offsetof(struct proc_event, field))
/* Jump targets while building, resolved by pid_bpf_finish(). */
#define PID_BPF_ACCEPT 0xfe
#define PID_BPF_DROP 0xff

struct pid_bpf {
	struct sock_filter insn[PID_BPF_MAX_PIDS + 16];
	unsigned short n;
};

static void pid_bpf_emit(struct pid_bpf *b, uint16_t code, uint8_t jt, uint8_t jf, uint32_t k)
{
	b->insn[b->n++] = (struct sock_filter){ .code = code, .jt = jt, .jf = jf, .k = k };
}

static void pid_bpf_load(struct pid_bpf *b, size_t off)
{
	pid_bpf_emit(b, BPF_LD | BPF_W | BPF_ABS, 0, 0, (uint32_t)off);
}

/* Classic BPF loads packet words big-endian (ntohl of what the kernel wrote
 * in host order): compare with htonl() of the value. */
static void pid_bpf_eq(struct pid_bpf *b, uint32_t value, uint8_t jt, uint8_t jf)
{
	pid_bpf_emit(b, BPF_JMP | BPF_JEQ | BPF_K, jt, jf, htonl(value));
}

/* Append the two returns and point the markers at them. */
static void pid_bpf_finish(struct pid_bpf *b)
{
	unsigned drop = b->n, accept = b->n + 1u;
	for (unsigned i = 0; i < b->n; i++) {
		struct sock_filter *f = &b->insn[i];
		if (BPF_CLASS(f->code) != BPF_JMP)
			continue;
		if (f->jt >= PID_BPF_ACCEPT)
			f->jt = (uint8_t)((f->jt == PID_BPF_ACCEPT ? accept : drop) - i - 1);
		if (f->jf >= PID_BPF_ACCEPT)
			f->jf = (uint8_t)((f->jf == PID_BPF_ACCEPT ? accept : drop) - i - 1);
	}
	pid_bpf_emit(b, BPF_RET | BPF_K, 0, 0, 0);
	pid_bpf_emit(b, BPF_RET | BPF_K, 0, 0, 0xffffffffu);
}

/* Pass acks, execs when wanted, and exits: all of them, or only those of the
 * watched processes (the table, plus `extra`, being attached). */
static void pid_bpf_build(struct pid_bpf *b, const struct pid_shared *s, pid_t extra, bool exec,
			  bool all)
{
	b->n = 0;
	pid_bpf_load(b, PID_BPF_CN(id.idx));
	pid_bpf_eq(b, CN_IDX_PROC, 0, PID_BPF_DROP);
	pid_bpf_load(b, PID_BPF_CN(id.val));
	pid_bpf_eq(b, CN_VAL_PROC, 0, PID_BPF_DROP);
	pid_bpf_load(b, PID_BPF_EV(what));
	pid_bpf_eq(b, PROC_EVENT_NONE, PID_BPF_ACCEPT, 0);
	pid_bpf_eq(b, PROC_EVENT_EXEC, exec ? PID_BPF_ACCEPT : PID_BPF_DROP, 0);
	pid_bpf_eq(b, (uint32_t)PROC_EVENT_EXIT, all ? PID_BPF_ACCEPT : 0, PID_BPF_DROP);
	if (!all) {
		pid_bpf_load(b, PID_BPF_EV(event_data.exit.process_tgid));
		if (extra)
			pid_bpf_eq(b, (uint32_t)extra, PID_BPF_ACCEPT, 0);
		for (size_t i = 0; i < s->cap; i++)
			if (s->slots[i].pid && s->slots[i].pid != extra)
				pid_bpf_eq(b, (uint32_t)s->slots[i].pid, PID_BPF_ACCEPT, 0);
	}
	pid_bpf_finish(b);
}

static bool pid_exec_wanted(const struct pid_shared *s)
{
	for (size_t k = 0; k < s->n_matchers; k++)
		if (pid_waiting_match(s->matchers[k]))
			return true;
	return false;
}

/* Attach the filter for what is wanted now. If the kernel refuses it, none:
 * more wakeups, but no exit missed. */
static void pid_cn_bpf(struct pid_shared *s, pid_t extra, bool exec)
{
	bool all = s->n + (extra != 0) > PID_BPF_MAX_PIDS;
	if (all && s->bpf_all && exec == s->bpf_exec)
		return; /* the same program */
	struct pid_bpf b;
	pid_bpf_build(&b, s, extra, exec, all);
	struct sock_fprog prog = { .len = b.n, .filter = b.insn };
	if (setsockopt(s->cn_fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0) {
		s->host->log(s->ctx, VIGIL_LOG_DEBUG, "process events filter: %s",
			     strerror(errno));
		(void)setsockopt(s->cn_fd, SOL_SOCKET, SO_DETACH_FILTER, NULL, 0);
		s->bpf_all = false;
		return;
	}
	s->bpf_all = all;
	s->bpf_exec = exec;
}

/* The watched set or the match targets' wait changed: filter anew (one
 * setsockopt, and a message to the kernel when execs come or go). `extra`
 * is a PID about to be watched, 0 for none. */
static void pid_cn_filter(struct pid_shared *s, pid_t extra)
{
	if (s->cn_fd < 0)
		return;
	bool exec = pid_exec_wanted(s);
	if (!s->k_set || exec != s->k_exec)
		pid_cn_kernel_events(s, exec);
	pid_cn_bpf(s, extra, exec);
}

static void pid_on_cn(void *data, int fd, uint32_t revents)
{
	struct pid_shared *s = data;
	int r = pid_cn_drain(s);
	if (r < 0 && r != -EPERM)
		s->host->log(s->ctx, VIGIL_LOG_DEBUG, "process events: %s", strerror(-r));
}

static void pid_cn_close(struct pid_shared *s)
{
	if (s->cn_fd < 0)
		return;
	s->host->unwatch_fd(s->ctx, s->cn_fd);
	close(s->cn_fd);
	s->cn_fd = -1;
	free(s->rbuf);
	s->rbuf = NULL;
	s->k_set = s->bpf_all = false;
}

/* A big queue loses fewer events when many processes end at once. Forcing
 * past net.core.rmem_max needs CAP_NET_ADMIN, which the connector needs too. */
static void pid_cn_rcvbuf(int fd)
{
	int size = PID_CN_RCVBUF;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

/* Subscribe to process events, once for the whole process. */
static int pid_cn_open(struct pid_shared *s)
{
	s->cn_fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR);
	if (s->cn_fd < 0)
		return -errno;
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC };
	int r = 0;
	s->rbuf = malloc(PID_CN_BATCH * PID_CN_MSG_MAX);
	if (!s->rbuf)
		r = -ENOMEM;
	/* Filtered before it joins the group: no flood reaches the queue. */
	if (r == 0)
		pid_cn_bpf(s, 0, false);
	if (r == 0 && bind(s->cn_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		r = -errno;
	if (r == 0)
		pid_cn_rcvbuf(s->cn_fd);
	s->cn_seq = (uint32_t)getpid() ^ (uint32_t)(uintptr_t)s;
	if (r == 0)
		r = pid_cn_send_listen(s);
	/* The plain subscription asked for everything: narrow it again. */
	s->k_set = false;
	if (r == 0)
		pid_cn_filter(s, 0);
	if (r == 0)
		r = s->host->watch_fd(s->ctx, s->cn_fd, EPOLLIN, pid_on_cn, s);
	if (r < 0) {
		close(s->cn_fd);
		s->cn_fd = -1;
		free(s->rbuf);
		s->rbuf = NULL;
	}
	return r;
}

static bool pid_cn_lasting(int r)
{
	return r == -EPERM || r == -EACCES || r == -EPROTONOSUPPORT || r == -EAFNOSUPPORT;
}

/* d will rely on the connector: subscribe if nobody has yet. Done before
 * attaching, so no exit is missed. */
static int pid_cn_acquire(struct pid_det *d, char *err, size_t errlen)
{
	struct pid_shared *s = d->sh;
	int r = s->cn_failed;
	if (r == 0 && s->cn_fd < 0) {
		r = pid_cn_open(s);
		if (pid_cn_lasting(r))
			s->cn_failed = r;
	}
	if (r < 0) {
		snprintf(err, errlen, "process events connector: %s%s", strerror(-r),
			 r == -EPERM ? " (needs CAP_NET_ADMIN)" : "");
		return r;
	}
	s->users++;
	d->cn_user = true;
	if (d->mode == PID_BY_MATCH && pid_matchers_add(s, d) < 0)
		d->host->log(d->ctx, VIGIL_LOG_WARN, "out of memory: polling for \"%s\"",
			     d->pattern);
	pid_cn_filter(s, 0); /* execs, before the first scan: none missed */
	return 0;
}

/* d no longer needs process events; the last one out unsubscribes. */
static void pid_cn_release(struct pid_det *d)
{
	struct pid_shared *s = d->sh;
	if (!s)
		return; /* create() failed before it had one */
	pid_table_del(s, d);
	pid_matchers_del(s, d);
	if (!d->cn_user)
		return;
	d->cn_user = false;
	if (--s->users == 0)
		pid_cn_close(s);
	else
		pid_cn_filter(s, 0);
}

static bool pid_cn_on(const struct pid_det *d)
{
	return d->cn_user && d->sh->cn_fd >= 0;
}

/* ----------------------------------------------------------- shared state */

static int pid_shared_create(const struct vigil_host *host, struct vigil_ctx *ctx,
			     void **shared, char *err, size_t errlen)
{
	struct pid_shared *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->host = host;
	s->ctx = ctx;
	s->cn_fd = -1;
	*shared = s;
	return 0;
}

static void pid_shared_destroy(void *shared)
{
	struct pid_shared *s = shared;
	if (!s)
		return;
	if (s->exec_timer)
		s->host->cancel_timer(s->ctx, s->exec_timer);
	pid_cn_close(s);
	free(s->slots);
	free(s->matchers);
	free(s->execs);
	free(s);
}

/* ------------------------------------------------------------- attaching */

static bool pid_uses_waitid(const struct pid_det *d)
{
	return d->via == VIA_AUTO || d->via == VIA_WAITID;
}

/* A child of ours can be waited for: waitid() does not say ECHILD. */
static bool pid_fd_is_child(int pidfd)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	return waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

static void pid_on_pidfd(void *data, int fd, uint32_t revents);
static void pid_cn_unavailable(struct pid_det *d, const char *why);

/* A child of ours, by PID (no pidfd yet): waitid() does not say ECHILD. */
static bool pid_is_child(pid_t pid)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

/* exit_via = auto subscribes only while attached to a process that is not
 * our child (waitid tells about children). Match targets subscribe at start,
 * for execs; exit_via = connector too, to fail early. */
static bool pid_cn_lazy(const struct pid_det *d)
{
	return d->via == VIA_AUTO && d->mode != PID_BY_MATCH;
}

/* Before opening pid: subscribe if it needs the connector, and let its exits
 * through the filter, so that none is missed once the pidfd is open. */
static void pid_cn_prepare(struct pid_det *d, pid_t pid)
{
	char why[256];
	if (pid_cn_lazy(d) && !d->cn_user && !pid_is_child(pid) &&
	    pid_cn_acquire(d, why, sizeof(why)) < 0)
		pid_cn_unavailable(d, why);
	if (!pid_cn_on(d))
		return;
	pid_cn_filter(d->sh, pid);
	/* What is still queued about this PID is about an earlier process. */
	(void)pid_cn_drain(d->sh);
}

/* Not attached after all: drop a lazy subscription, narrow the filter. */
static void pid_cn_unprepare(struct pid_det *d)
{
	if (pid_cn_lazy(d))
		pid_cn_release(d);
	else if (pid_cn_on(d))
		pid_cn_filter(d->sh, 0);
}

/* Attach to (pid, start). -ESRCH when that process is gone (or a zombie we
 * cannot wait for), another -errno otherwise; the reason goes into err. */
static int pid_attach(struct pid_det *d, pid_t pid, uint64_t start, char *err, size_t errlen)
{
	pid_cn_prepare(d, pid);
	int fd = (int)syscall(SYS_pidfd_open, pid, 0); /* always close-on-exec */
	if (fd < 0 && errno != ESRCH) {
		int e = errno;
		snprintf(err, errlen, "pidfd_open(%d): %s", (int)pid, strerror(e));
		pid_cn_unprepare(d);
		return -e;
	}
	/* Opened, check identity again: the PID may have been reused meanwhile. */
	bool child = fd >= 0 && pid_fd_is_child(fd);
	if (fd < 0 || !proc_is_same(pid, start) || (proc_state(pid) == 'Z' && !child)) {
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "process %d does not exist (already exited?)", (int)pid);
		pid_cn_unprepare(d);
		return -ESRCH;
	}
	int r = d->host->watch_fd(d->ctx, fd, EPOLLIN, pid_on_pidfd, d);
	if (r < 0) {
		close(fd);
		snprintf(err, errlen, "cannot watch process %d: %s", (int)pid, strerror(-r));
		pid_cn_unprepare(d);
		return r;
	}
	d->pidfd = fd;
	d->pid = pid;
	d->start = start;
	d->is_child = child;
	d->exit_seen = d->leader_seen = d->grace_short = false;
	/* Events queued since the drain above stay queued until the next one:
	 * registered now, none about this process is missed. */
	if (pid_cn_on(d) && pid_table_add(d->sh, d) < 0)
		d->host->log(d->ctx, VIGIL_LOG_WARN,
			     "out of memory: the exit status of process %d will be unknown",
			     (int)pid);
	if (pid_cn_on(d))
		pid_cn_filter(d->sh, 0); /* a match target found: no more execs */
	char cmdline[PID_CMDLINE_MAX];
	if (proc_cmdline(pid, cmdline, sizeof(cmdline)) < 0)
		cmdline[0] = '\0';
	d->host->attached(d->ctx, pid, start, cmdline);
	return 0;
}

/* ------------------------------------------------------------ the ending */

static int64_t pid_on_recheck(void *data)
{
	struct pid_det *d = data;
	d->recheck_timer = 0;
	if (d->mode == PID_BY_FILE)
		pid_check_file(d);
	else if (d->mode == PID_BY_MATCH)
		pid_rescan(d);
	return VIGIL_TIMER_DONE;
}

/* Tell the core. host->exited() is the last thing done: the core may end the
 * monitor, and destroy this instance, from inside it. */
static void pid_report(struct pid_det *d, struct pid_status st)
{
	if (d->grace_timer)
		d->host->cancel_timer(d->ctx, d->grace_timer);
	d->grace_timer = 0;
	d->grace_short = false;
	if (d->pidfd >= 0) {
		d->host->unwatch_fd(d->ctx, d->pidfd);
		close(d->pidfd);
	}
	d->pidfd = -1;
	pid_table_del(d->sh, d);
	d->done_pid = d->pid;
	d->done_start = d->start;
	d->pid = 0;
	/* pid_file and match targets are recurring jobs: look for the next run. */
	if (d->mode != PID_BY_PID && !d->recheck_timer) {
		int64_t id = d->host->add_timer(d->ctx, 0, pid_on_recheck, d);
		d->recheck_timer = id > 0 ? id : 0;
	}
	if (d->mode == PID_BY_PID || pid_cn_lazy(d))
		pid_cn_release(d); /* nothing more to hear until the next run */
	else if (pid_cn_on(d))
		pid_cn_filter(d->sh, 0); /* a match target waits again: execs */
	if (!st.known)
		st.code = st.sig = -1, st.core = 0;
	d->host->exited(d->ctx, st.code, st.sig, st.core);
}

static int64_t pid_on_grace(void *data)
{
	struct pid_det *d = data;
	d->grace_timer = 0;
	(void)pid_cn_drain(d->sh);
	if (!d->exit_seen)
		d->host->log(d->ctx, VIGIL_LOG_DEBUG, "no exit message for process %d",
			     (int)d->pid);
	pid_report(d, d->exit_seen ? d->cn_status : (struct pid_status){ 0 });
	return VIGIL_TIMER_DONE;
}

/* The pidfd is readable: the process has exited. Find out how. */
static void pid_on_pidfd(void *data, int fd, uint32_t revents)
{
	struct pid_det *d = data;
	d->host->unwatch_fd(d->ctx, fd);
	if (d->is_child && pid_uses_waitid(d)) {
		siginfo_t si;
		memset(&si, 0, sizeof(si));
		if (waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG) == 0 &&
		    si.si_pid != 0) {
			struct pid_status st = { .known = true, .code = -1, .sig = -1 };
			if (si.si_code == CLD_EXITED)
				st.code = si.si_status;
			else
				st.sig = si.si_status, st.core = si.si_code == CLD_DUMPED;
			pid_report(d, st);
			return;
		}
		/* ECHILD: reaped elsewhere; the connector may still know. */
	}
	if (!pid_cn_on(d)) {
		pid_report(d, (struct pid_status){ 0 });
		return;
	}
	/* The kernel queued the exit message before waking the pidfd, but it
	 * may still be in flight: read what is there, then wait a little. */
	(void)pid_cn_drain(d->sh);
	if (d->exit_seen) {
		pid_report(d, d->cn_status);
		return;
	}
	int64_t id = d->host->add_timer(d->ctx, PID_EXIT_GRACE_MS, pid_on_grace, d);
	if (id <= 0)
		pid_report(d, (struct pid_status){ 0 });
	else
		d->grace_timer = id;
}

/* -------------------------------------------------------------- pid files */

/* Warn once per distinct complaint (it includes the file's content). */
__attribute__((format(printf, 3, 4))) static void pid_warn_once(struct pid_det *d,
								 const char *key,
								 const char *fmt, ...)
{
	if (d->warned && strcmp(d->warned, key) == 0)
		return;
	free(d->warned);
	d->warned = strdup(key);
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	d->host->log(d->ctx, VIGIL_LOG_WARN, "%s", msg);
}

/* The raw content of the pid file (bounded), as the key of its warnings. */
static void pid_file_key(const struct pid_det *d, int verdict, char *key, size_t len)
{
	int n = snprintf(key, len, "%d:", verdict);
	int fd = open(d->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0 || n < 0 || (size_t)n >= len)
		goto out;
	ssize_t got = read(fd, key + n, len - 1 - (size_t)n);
	if (got > 0)
		for (ssize_t i = 0; i < got; i++)
			if (key[n + i] == '\0')
				key[n + i] = '\1';
	key[n + (got > 0 ? got : 0)] = '\0';
out:
	if (fd >= 0)
		close(fd);
}

static int64_t pid_on_empty(void *data)
{
	struct pid_det *d = data;
	d->empty_timer = 0;
	d->empty_grace_over = true;
	pid_check_file(d);
	return VIGIL_TIMER_DONE;
}

/* An empty file is normally one being written: complain only if it stays so. */
static bool pid_file_empty_wait(struct pid_det *d, const char *err)
{
	if (strcmp(err, "empty pid file") != 0 || d->empty_grace_over)
		return false;
	if (!d->empty_timer) {
		int64_t id = d->host->add_timer(d->ctx, PID_EMPTY_GRACE_MS, pid_on_empty, d);
		d->empty_timer = id > 0 ? id : 0;
	}
	return d->empty_timer != 0;
}

/* Did the process start after the pid file was last written? Then the file
 * names an earlier process whose PID was reused: an impostor. */
static bool pid_file_impostor(const struct stat *st, uint64_t start)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	int64_t started_ms = now_ms - proc_age_ms(start);
	int64_t mtime_ms = (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
	return started_ms > mtime_ms + PID_FILE_SLACK_MS;
}

/* A valid PID read from the file: attach to it unless it is not the writer. */
static void pid_file_try(struct pid_det *d, pid_t pid, const char *key)
{
	char err[256];
	uint64_t start;
	struct stat st;
	if (proc_start_time(pid, &start) < 0 || stat(d->path, &st) < 0) {
		if (pid != d->done_pid)
			pid_warn_once(d, key, "pid file %s names process %d, which does not exist",
				      d->path, (int)pid);
		return;
	}
	if (pid == d->done_pid && start == d->done_start)
		return; /* the run just reported; wait for the next one */
	if (pid_file_impostor(&st, start)) {
		pid_warn_once(d, key,
			      "pid file %s names process %d, which started after the file was "
			      "written (a reused PID): not attaching",
			      d->path, (int)pid);
		return;
	}
	int r = pid_attach(d, pid, start, err, sizeof(err));
	if (r < 0 && pid != d->done_pid)
		pid_warn_once(d, key, "pid file %s: %s", d->path, err);
	if (r == 0) {
		free(d->warned);
		d->warned = NULL;
	}
}

static void pid_check_file(struct pid_det *d)
{
	char err[256], key[200];
	pid_t pid;
	if (d->ended || d->pidfd >= 0)
		return; /* attached: re-read after it ends */
	int r = proc_read_pid_file(d->path, &pid, err, sizeof(err));
	if (r == -ENOENT) {
		free(d->warned);
		d->warned = NULL;
		return;
	}
	if (r == -EINVAL && pid_file_empty_wait(d, err))
		return;
	d->empty_grace_over = false;
	pid_file_key(d, r, key, sizeof(key));
	if (r < 0)
		pid_warn_once(d, key, "pid file %s: %s; waiting for it to change", d->path, err);
	else
		pid_file_try(d, pid, key);
}

static void pid_on_inotify(void *data, int fd, uint32_t revents)
{
	struct pid_det *d = data;
	_Alignas(struct inotify_event) char buf[4096];
	bool relevant = false, gone = false;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;
			if ((ev->len && strcmp(ev->name, d->base) == 0) ||
			    (ev->mask & IN_Q_OVERFLOW))
				relevant = true;
			if (ev->mask & IN_IGNORED)
				gone = true; /* the folder went away */
			p += sizeof(*ev) + ev->len;
		}
	}
	char err[256];
	if (gone && pid_file_watch(d, err, sizeof(err)) < 0)
		d->host->log(d->ctx, VIGIL_LOG_WARN, "%s", err);
	if (relevant || gone)
		pid_check_file(d);
}

static int64_t pid_on_dir_poll(void *data);

/* Watch the pid file's folder; while it does not exist, look every second. */
static int pid_file_watch(struct pid_det *d, char *err, size_t errlen)
{
	if (inotify_add_watch(d->ino_fd, d->dir, PID_DIR_MASK) >= 0)
		return 0;
	if (errno != ENOENT && errno != ENOTDIR) {
		snprintf(err, errlen, "cannot watch %s: %s", d->dir, strerror(errno));
		return -errno;
	}
	if (!d->poll_timer) {
		d->host->log(d->ctx, VIGIL_LOG_INFO, "folder %s does not exist yet", d->dir);
		int64_t id = d->host->add_timer(d->ctx, PID_POLL_MS, pid_on_dir_poll, d);
		if (id < 0) {
			snprintf(err, errlen, "timer: %s", strerror((int)-id));
			return (int)id;
		}
		d->poll_timer = id;
	}
	return 0;
}

static int64_t pid_on_dir_poll(void *data)
{
	struct pid_det *d = data;
	if (inotify_add_watch(d->ino_fd, d->dir, PID_DIR_MASK) < 0)
		return PID_POLL_MS;
	d->poll_timer = 0;
	pid_check_file(d);
	return VIGIL_TIMER_DONE;
}

static int pid_file_start(struct pid_det *d, char *err, size_t errlen)
{
	d->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (d->ino_fd < 0) {
		snprintf(err, errlen, "inotify: %s", strerror(errno));
		return -errno;
	}
	int r = d->host->watch_fd(d->ctx, d->ino_fd, EPOLLIN, pid_on_inotify, d);
	if (r < 0) {
		snprintf(err, errlen, "inotify: %s", strerror(-r));
		close(d->ino_fd);
		d->ino_fd = -1;
		return r;
	}
	r = pid_file_watch(d, err, errlen);
	if (r == 0)
		pid_check_file(d);
	return r;
}

/* ------------------------------------------------------------------ match */

struct pid_found {
	pid_t pid;
	uint64_t start;
	char cmdline[64];
};

/* Does this /proc entry run a command line matching the pattern? */
static bool pid_matches(struct pid_det *d, pid_t pid, struct pid_found *f)
{
	char cmdline[PID_CMDLINE_MAX];
	if (proc_cmdline(pid, cmdline, sizeof(cmdline)) < 0 || !cmdline[0])
		return false; /* gone, a kernel thread, or a zombie */
	if (pcre2_match(d->re, (PCRE2_SPTR)cmdline, strlen(cmdline), 0, 0, d->md, NULL) < 0)
		return false;
	if (proc_start_time(pid, &f->start) < 0)
		return false;
	if (pid == d->done_pid && f->start == d->done_start)
		return false;
	f->pid = pid;
	/* Kept short for the ambiguity message; "..." marks a cut. */
	size_t len = strlen(cmdline), max = sizeof(f->cmdline) - 1;
	if (len > max) {
		memcpy(f->cmdline, cmdline, max - 3);
		memcpy(f->cmdline + max - 3, "...", 4);
	} else {
		memcpy(f->cmdline, cmdline, len + 1);
	}
	return true;
}

/* All matching processes but ourselves and our parent; the first few kept. */
static size_t pid_scan(struct pid_det *d, struct pid_found *found, size_t max)
{
	DIR *proc = opendir("/proc");
	if (!proc)
		return 0;
	pid_t self = getpid(), parent = getppid();
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(proc))) {
		char *end;
		long v = strtol(de->d_name, &end, 10);
		if (*end || v <= 0 || v == self || v == parent)
			continue;
		struct pid_found f;
		if (!pid_matches(d, (pid_t)v, &f))
			continue;
		if (n < max)
			found[n] = f;
		n++;
	}
	closedir(proc);
	return n;
}

/* Several processes match: which one is meant cannot be known. */
static void pid_ambiguous(struct pid_det *d, const struct pid_found *found, size_t n)
{
	char msg[2048];
	size_t len = (size_t)snprintf(msg, sizeof(msg), "match \"%s\" is ambiguous: ", d->pattern);
	size_t shown = n < PID_AMBIGUOUS_LIST ? n : PID_AMBIGUOUS_LIST;
	for (size_t i = 0; i < shown && len < sizeof(msg); i++)
		len += (size_t)snprintf(msg + len, sizeof(msg) - len, "%s%d (%s)", i ? ", " : "",
					(int)found[i].pid, found[i].cmdline);
	if (n > shown && len < sizeof(msg))
		snprintf(msg + len, sizeof(msg) - len, " and %zu more", n - shown);
	d->ended = true;
	d->host->lost(d->ctx, msg); /* last: the core may destroy us inside */
}

static void pid_rescan(struct pid_det *d)
{
	struct pid_found found[PID_AMBIGUOUS_LIST];
	char err[256];
	if (d->ended || d->pidfd >= 0 || d->mode != PID_BY_MATCH)
		return;
	size_t n = pid_scan(d, found, PID_AMBIGUOUS_LIST);
	if (n > 1) {
		pid_ambiguous(d, found, n);
		return;
	}
	/* A match that exits before we open it is simply not there: keep waiting. */
	if (n == 1 && pid_attach(d, found[0].pid, found[0].start, err, sizeof(err)) < 0)
		d->host->log(d->ctx, VIGIL_LOG_DEBUG, "%s", err);
}

static int64_t pid_on_poll(void *data)
{
	pid_rescan(data);
	return PID_POLL_MS;
}

static int pid_match_start(struct pid_det *d, char *err, size_t errlen)
{
	/* Without the connector's exec events nothing says a process appeared. */
	if (!pid_cn_on(d) || !d->in_matchers) {
		int64_t id = d->host->add_timer(d->ctx, PID_POLL_MS, pid_on_poll, d);
		if (id < 0) {
			snprintf(err, errlen, "timer: %s", strerror((int)-id));
			return (int)id;
		}
		d->poll_timer = id;
	}
	pid_rescan(d);
	return 0;
}

/* -------------------------------------------------------------- lifecycle */

static int pid_start_pid(struct pid_det *d)
{
	char err[256];
	uint64_t start;
	int r = proc_start_time(d->want_pid, &start);
	if (r == 0)
		r = pid_attach(d, d->want_pid, start, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "process %d does not exist (already exited?)",
			 (int)d->want_pid);
	if (r < 0) {
		d->ended = true;
		d->host->lost(d->ctx, err);
	}
	return 0;
}

/* Said once per process at info level: with 10,000 monitors, once is enough. */
static void pid_cn_unavailable(struct pid_det *d, const char *why)
{
	struct pid_shared *s = d->sh;
	if (!s->cn_told)
		s->host->log(s->ctx, VIGIL_LOG_INFO,
			     "%s: the exit status of a process vigil did not start will be "
			     "unknown", why);
	else
		d->host->log(d->ctx, VIGIL_LOG_DEBUG, "%s", why);
	s->cn_told = true;
}

static int pid_start(void *instance, char *err, size_t errlen)
{
	struct pid_det *d = instance;
	if (d->via == VIA_CONNECTOR || (d->via == VIA_AUTO && d->mode == PID_BY_MATCH)) {
		char why[256];
		int r = pid_cn_acquire(d, why, sizeof(why));
		if (r < 0 && d->via == VIA_CONNECTOR) {
			snprintf(err, errlen, "%s", why);
			return r;
		}
		if (r < 0)
			pid_cn_unavailable(d, why);
	}
	switch (d->mode) {
	case PID_BY_PID:
		return pid_start_pid(d);
	case PID_BY_FILE:
		return pid_file_start(d, err, errlen);
	case PID_BY_MATCH:
		return pid_match_start(d, err, errlen);
	}
	return -EINVAL;
}

static void pid_destroy(void *instance)
{
	struct pid_det *d = instance;
	if (!d)
		return;
	int64_t timers[] = { d->grace_timer, d->poll_timer, d->recheck_timer, d->empty_timer };
	for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++)
		if (timers[i] > 0)
			d->host->cancel_timer(d->ctx, timers[i]);
	int fds[] = { d->pidfd, d->ino_fd };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (fds[i] >= 0) {
			d->host->unwatch_fd(d->ctx, fds[i]);
			close(fds[i]);
		}
	}
	pid_cn_release(d);
	if (d->own_sh)
		pid_shared_destroy(d->sh);
	pcre2_match_data_free(d->md);
	pcre2_code_free(d->re);
	free(d->pattern);
	free(d->path);
	free(d->dir);
	free(d->base);
	free(d->warned);
	free(d);
}

/* Split a pid file path into its folder and its name. */
static int pid_split_path(struct pid_det *d, const char *path, char *err, size_t errlen)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
		snprintf(err, errlen, "pid_file: %s names a folder, not a file", path);
		return -EINVAL;
	}
	d->path = strdup(path);
	d->base = strdup(base);
	if (!slash)
		d->dir = strdup(".");
	else if (slash == path)
		d->dir = strdup("/");
	else
		d->dir = strndup(path, (size_t)(slash - path));
	return d->path && d->base && d->dir ? 0 : -ENOMEM;
}

static int pid_compile(struct pid_det *d, const char *pattern, char *err, size_t errlen)
{
	int code;
	PCRE2_SIZE off;
	d->pattern = strdup(pattern);
	if (!d->pattern)
		return -ENOMEM;
	d->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
	if (!d->re) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(code, msg, sizeof(msg));
		snprintf(err, errlen, "match: %s at offset %zu", (const char *)msg, (size_t)off);
		return -EINVAL;
	}
	d->md = pcre2_match_data_create_from_pattern(d->re, NULL);
	return d->md ? 0 : -ENOMEM;
}

static int pid_parse_via(struct pid_det *d, const struct vigil_config *cfg, char *err,
			 size_t errlen)
{
	static const char *const names[] = { "auto", "waitid", "connector", "none" };
	const struct vigil_value *v = vigil_config_get(cfg, "exit_via");
	const char *text = v ? v->text : "auto";
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(text, names[i]) == 0) {
			d->via = (enum pid_via)i;
			return 0;
		}
	}
	snprintf(err, errlen, "exit_via: \"%s\" is not one of auto, waitid, connector, none",
		 text);
	return -EINVAL;
}

static int pid_parse_target(struct pid_det *d, const struct vigil_config *cfg, char *err,
			    size_t errlen)
{
	const struct vigil_value *pid = vigil_config_get(cfg, "pid");
	const struct vigil_value *file = vigil_config_get(cfg, "pid_file");
	const struct vigil_value *match = vigil_config_get(cfg, "match");
	int n = !!pid + !!file + !!match;
	if (n != 1) {
		snprintf(err, errlen, "%s one of pid, pid_file or match",
			 n ? "set only" : "set exactly");
		return -EINVAL;
	}
	if (pid) {
		d->mode = PID_BY_PID;
		return proc_parse_pid(pid->text, &d->want_pid, err, errlen);
	}
	if (file) {
		d->mode = PID_BY_FILE;
		return pid_split_path(d, file->text, err, errlen);
	}
	d->mode = PID_BY_MATCH;
	return pid_compile(d, match->text, err, errlen);
}

/* The process-wide state, or a private one when the core offers none (an
 * older core): then this instance has a socket of its own, as it used to. */
static int pid_attach_shared(struct pid_det *d, char *err, size_t errlen)
{
	const struct vigil_host *h = d->host;
	if (h->size >= offsetof(struct vigil_host, shared) + sizeof(h->shared) && h->shared)
		d->sh = h->shared(d->ctx);
	if (d->sh)
		return 0;
	void *own = NULL;
	int r = pid_shared_create(h, d->ctx, &own, err, errlen);
	d->sh = own;
	d->own_sh = r == 0;
	return r;
}

static int pid_create(const struct vigil_host *host, struct vigil_ctx *ctx,
		      const struct vigil_config *cfg, void **instance, char *err, size_t errlen)
{
	struct pid_det *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	d->host = host;
	d->ctx = ctx;
	d->pidfd = d->ino_fd = -1;
	int r = pid_attach_shared(d, err, errlen);
	if (r == 0)
		r = pid_parse_via(d, cfg, err, errlen);
	if (r == 0)
		r = pid_parse_target(d, cfg, err, errlen);
	if (r < 0) {
		if (r == -ENOMEM)
			snprintf(err, errlen, "out of memory");
		pid_destroy(d);
		return r;
	}
	*instance = d;
	return 0;
}

VIGIL_PLUGIN(.kind = VIGIL_PLUGIN_DETECTOR, .name = "pid",
	     .summary = "the target process: attach, and report when and how it ends",
	     .options = pid_options, .create = pid_create, .start = pid_start,
	     .on_event = NULL, .settle = NULL, .notify = NULL, .destroy = pid_destroy,
	     .shared_create = pid_shared_create, .shared_destroy = pid_shared_destroy);
