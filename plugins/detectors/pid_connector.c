/* pid detector, the kernel's process-events connector: the exit status of a
 * process that is not our child (needs CAP_NET_ADMIN), and the execs that wake
 * match targets. pid.c decides when an instance needs it; this file owns the
 * netlink socket and everything read from it.
 *
 * The connector is one socket for every instance in the process (the plugin's
 * shared state): each exit on the machine is read once and handed, through a
 * pid -> instances table, to the instances watching that pid.
 *
 * The connector sends every fork, exec, exit... of the machine. Two filters
 * keep an idle monitor asleep: the kernel's own (Linux 6.6: the subscription
 * names the events wanted) and, everywhere, a classic BPF socket filter that
 * passes only acks, exits of the watched processes and, while a match target
 * waits, execs. Our own children need no connector at all: waitid() tells.
 *
 * The shared state also holds the plugin's one inotify instance (plugins/lib
 * ino_share): every pid_file monitor watches its folder there, not in an
 * instance of its own (a user may have only 128). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/filter.h>
#include <linux/netlink.h>

#include "lib/ino_share.h"
#include "lib/proc.h"
#include "pid_internal.h"
#include "vigil/plugin.h"

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
/* Processes that are not our children are sampled for the end-of-run report
 * (peak memory, CPU time: the kernel keeps no totals to read after they
 * exit), each about every PID_SAMPLE_MS, from one timer ticking every
 * PID_SAMPLE_TICK_MS that samples at most PID_SAMPLE_PER_TICK of them: past
 * 100 processes each is sampled less often, so that ten thousand cost what
 * 100 do (the last interval's growth is what a report can miss). */
#define PID_SAMPLE_MS 5000
#define PID_SAMPLE_TICK_MS 1000
#define PID_SAMPLE_PER_TICK 20
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

/* The instances attached to one pid (several monitors may watch one process). */
struct pid_slot {
	pid_t pid; /* 0: empty */
	struct pid_det *head;
};

/* One per process (or per instance when the core offers no shared state). */
/* Instances, in no order; each knows its place through a pid_list_pos. */
struct pid_list {
	struct pid_det **v;
	size_t n, cap;
};

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
	struct pid_list matchers;
	/* Processes sampled for the report, round robin from sample_next. */
	struct pid_list samples;
	size_t sample_next;
	int64_t sample_timer;
	pid_t *execs;
	size_t n_execs;
	bool execs_overflow;
	int64_t exec_timer;

	/* The pid files' folders, for every instance: opened on first use. */
	struct ino_share *ino;
};

/* ----------------------------------------------------------- pid table */

static size_t pidcn_hash(pid_t pid)
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
static struct pid_slot *pidcn_table_probe(const struct pid_shared *s, pid_t pid)
{
	size_t mask = s->cap - 1;
	for (size_t i = pidcn_hash(pid) & mask;; i = (i + 1) & mask)
		if (s->slots[i].pid == pid || s->slots[i].pid == 0)
			return &s->slots[i];
}

static struct pid_det *pidcn_table_get(const struct pid_shared *s, pid_t pid)
{
	return s->cap ? pidcn_table_probe(s, pid)->head : NULL;
}

static int pidcn_table_grow(struct pid_shared *s)
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
			*pidcn_table_probe(s, old[i].pid) = old[i];
	free(old);
	return 0;
}

int pidcn_table_add(struct pid_shared *s, struct pid_det *d)
{
	if ((s->n + 1) * 2 > s->cap && pidcn_table_grow(s) < 0)
		return -ENOMEM;
	struct pid_slot *slot = pidcn_table_probe(s, d->pid);
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
static void pidcn_table_clear(struct pid_shared *s, size_t i)
{
	size_t mask = s->cap - 1;
	for (size_t j = (i + 1) & mask; s->slots[j].pid; j = (j + 1) & mask) {
		size_t home = pidcn_hash(s->slots[j].pid) & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			s->slots[i] = s->slots[j];
			i = j;
		}
	}
	s->slots[i] = (struct pid_slot){ 0 };
	s->n--;
}

void pidcn_table_del(struct pid_shared *s, struct pid_det *d)
{
	if (!d->in_table)
		return;
	d->in_table = false;
	struct pid_slot *slot = pidcn_table_probe(s, d->pid);
	for (struct pid_det **p = &slot->head; *p; p = &(*p)->next_same) {
		if (*p == d) {
			*p = d->next_same;
			break;
		}
	}
	d->next_same = NULL;
	if (!slot->head && slot->pid)
		pidcn_table_clear(s, (size_t)(slot - s->slots));
}

/* ------------------------------------------------------------ match list */

#define PID_POS(d, off) ((struct pid_list_pos *)((char *)(d) + (off)))

/* Add d to l; off is the offset of d's pid_list_pos for l. */
static int pidcn_list_add(struct pid_list *l, struct pid_det *d, size_t off)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct pid_det **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	*PID_POS(d, off) = (struct pid_list_pos){ .idx = l->n, .in = true };
	l->v[l->n++] = d;
	return 0;
}

static void pidcn_list_del(struct pid_list *l, struct pid_det *d, size_t off)
{
	struct pid_list_pos *pos = PID_POS(d, off);
	if (!pos->in)
		return;
	struct pid_det *last = l->v[--l->n];
	l->v[pos->idx] = last;
	PID_POS(last, off)->idx = pos->idx;
	pos->in = false;
}

#define MATCHER_POS offsetof(struct pid_det, matcher_pos)
#define SAMPLE_POS offsetof(struct pid_det, sample_pos)

/* ------------------------------------------------------------- sampling */

/* One tick: the next share of the sampled processes, so that each comes
 * round about every PID_SAMPLE_MS (less often past the per-tick cap). */
static int64_t pidcn_on_sample(void *data)
{
	struct pid_shared *s = data;
	size_t n = s->samples.n, per = (n * PID_SAMPLE_TICK_MS + PID_SAMPLE_MS - 1) / PID_SAMPLE_MS;

	if (per > PID_SAMPLE_PER_TICK)
		per = PID_SAMPLE_PER_TICK;
	for (size_t i = 0; i < per && i < n; i++) {
		if (s->sample_next >= n)
			s->sample_next = 0;
		pid_sample(s->samples.v[s->sample_next++]);
	}
	return PID_SAMPLE_TICK_MS;
}

void pidcn_sample_add(struct pid_det *d)
{
	struct pid_shared *s = d->sh;
	if (!s || d->sample_pos.in)
		return;
	if (pidcn_list_add(&s->samples, d, SAMPLE_POS) < 0) {
		d->host->log(d->ctx, VIGIL_LOG_WARN, "out of memory: no resource report");
		return;
	}
	if (!s->sample_timer) {
		int64_t id = s->host->add_timer(s->ctx, PID_SAMPLE_TICK_MS, pidcn_on_sample, s);
		s->sample_timer = id > 0 ? id : 0;
	}
}

void pidcn_sample_del(struct pid_det *d)
{
	struct pid_shared *s = d->sh;
	if (!s)
		return;
	pidcn_list_del(&s->samples, d, SAMPLE_POS);
	if (!s->samples.n && s->sample_timer) {
		s->host->cancel_timer(s->ctx, s->sample_timer);
		s->sample_timer = 0;
	}
}

static bool pidcn_waiting_match(const struct pid_det *d)
{
	return d->mode == PID_BY_MATCH && !d->ended && d->pidfd < 0;
}

/* The batch of exec'd processes: read each new command line once and wake
 * only the match targets it satisfies (they then rescan and decide). */
static int64_t pidcn_on_execs(void *data)
{
	struct pid_shared *s = data;
	char cmdline[PID_CMDLINE_MAX];
	s->exec_timer = 0;
	for (size_t i = 0; i < s->n_execs && !s->execs_overflow; i++) {
		if (proc_cmdline(s->execs[i], cmdline, sizeof(cmdline)) < 0 || !cmdline[0])
			continue;
		for (size_t k = 0; k < s->matchers.n; k++) {
			struct pid_det *d = s->matchers.v[k];
			if (!d->exec_hit && pidcn_waiting_match(d) && pid_match_cmdline(d, cmdline))
				d->exec_hit = true;
		}
	}
	for (size_t k = 0; k < s->matchers.n; k++) {
		struct pid_det *d = s->matchers.v[k];
		if ((d->exec_hit || s->execs_overflow) && pidcn_waiting_match(d))
			pid_recheck_soon(d);
		d->exec_hit = false;
	}
	s->n_execs = 0;
	s->execs_overflow = false;
	return VIGIL_TIMER_DONE;
}

static void pidcn_exec_note(struct pid_shared *s, pid_t pid, bool overflow)
{
	if (!s->matchers.n)
		return;
	if (!s->execs && !overflow)
		s->execs = malloc(PID_EXEC_MAX * sizeof(*s->execs));
	if (overflow || !s->execs || s->n_execs == PID_EXEC_MAX)
		s->execs_overflow = true;
	else
		s->execs[s->n_execs++] = pid;
	if (!s->exec_timer) {
		int64_t id = s->host->add_timer(s->ctx, PID_EXEC_BATCH_MS, pidcn_on_execs, s);
		s->exec_timer = id > 0 ? id : 0;
	}
}

/* -------------------------------------------------------------- messages */

static void pidcn_status_from_wait(struct pid_status *st, int status)
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

/* Keep the exit of a thread of d's process. The last one to exit carries the
 * group's status (a leader that called pthread_exit() reports 0 early), so a
 * later event replaces an earlier one; a second leader exit can only be
 * another process that reused the PID, and is ignored. */
static void pidcn_exit(struct pid_det *d, const struct proc_event *ev)
{
	pid_t tid = ev->event_data.exit.process_pid;
	pid_t tgid = ev->event_data.exit.process_tgid;
	if (tid == tgid) {
		if (d->leader_seen)
			return;
		d->leader_seen = true;
	}
	pidcn_status_from_wait(&d->cn_status, (int)ev->event_data.exit.exit_code);
	d->exit_seen = true;
	pid_grace_cut(d);
}

/* One connector message. Returns -errno from a subscription ack, else 0. */
static int pidcn_message(struct pid_shared *s, const struct cn_msg *cn)
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
		for (struct pid_det *d = pidcn_table_get(s, ev.event_data.exit.process_tgid); d;
		     d = d->next_same)
			pidcn_exit(d, &ev);
		break;
	case PROC_EVENT_EXEC:
		pidcn_exec_note(s, ev.event_data.exec.process_tgid, false);
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
static int pidcn_datagram(struct pid_shared *s, const char *buf, size_t len)
{
	int ret = 0;
	for (const struct nlmsghdr *nh = (const void *)buf; NLMSG_OK(nh, len);
	     nh = NLMSG_NEXT(nh, len)) {
		if (nh->nlmsg_type == NLMSG_ERROR || nh->nlmsg_type == NLMSG_NOOP)
			continue;
		if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct cn_msg)))
			continue;
		int r = pidcn_message(s, NLMSG_DATA(nh));
		if (r < 0)
			ret = r;
	}
	return ret;
}

/* The queue overflowed: some exits may be lost. Those instances end as
 * unknown after their grace period (never guessed); match targets rescan,
 * since an exec may be lost too. */
static void pidcn_overflow(struct pid_shared *s)
{
	if (!s->lost_told)
		s->host->log(s->ctx, VIGIL_LOG_WARN,
			     "process events lost (the kernel's queue overflowed): an exit "
			     "status missed is reported as unknown");
	s->lost_told = true;
	pidcn_exec_note(s, 0, true);
}

/* Read everything queued, many datagrams per system call. Returns -errno
 * from a subscription ack or a socket error, else 0. */
int pidcn_drain(struct pid_shared *s)
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
			pidcn_overflow(s);
			continue;
		}
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? ret : -errno;
		for (int i = 0; i < n; i++) {
			if (from[i].nl_pid != 0 || (msgs[i].msg_hdr.msg_flags & MSG_TRUNC))
				continue; /* only the kernel speaks here */
			int r = pidcn_datagram(s, iov[i].iov_base, msgs[i].msg_len);
			if (r < 0)
				ret = r;
		}
	}
}

/* A subscription message (the operation, alone or with the events wanted). */
static int pidcn_send(struct pid_shared *s, const void *data, size_t len)
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

static int pidcn_send_listen(struct pid_shared *s)
{
	uint32_t op = PROC_CN_MCAST_LISTEN;
	int r = pidcn_send(s, &op, sizeof(op));
	/* The kernel answers synchronously; an EPERM comes back in the ack. */
	return r < 0 ? r : pidcn_drain(s);
}

/* Kernel-side filtering (Linux 6.6): only exits, and execs when asked. The
 * kernel sends no ack for it (its own filter drops the ack), and an older one
 * ignores the message: either way nothing to wait for. */
static void pidcn_kernel_events(struct pid_shared *s, bool exec)
{
	struct pid_cn_input in = {
		.mcast_op = PROC_CN_MCAST_LISTEN,
		.event_type = (uint32_t)PROC_EVENT_EXIT | (exec ? (uint32_t)PROC_EVENT_EXEC : 0),
	};
	if (pidcn_send(s, &in, sizeof(in)) == 0) {
		s->k_set = true;
		s->k_exec = exec;
	}
}

/* ----------------------------------------------------------- socket filter */

/* Byte offsets in a datagram: nlmsghdr, cn_msg, then the proc_event. */
#define PID_BPF_CN(field) (NLMSG_HDRLEN + offsetof(struct cn_msg, field))
#define PID_BPF_EV(field)                                                                 \
	(NLMSG_HDRLEN + offsetof(struct cn_msg, data) + offsetof(struct proc_event, field))
/* Jump targets while building, resolved by pidcn_bpf_finish(). */
#define PID_BPF_ACCEPT 0xfe
#define PID_BPF_DROP 0xff

struct pid_bpf {
	struct sock_filter insn[PID_BPF_MAX_PIDS + 16];
	unsigned short n;
};

static void pidcn_bpf_emit(struct pid_bpf *b, uint16_t code, uint8_t jt, uint8_t jf, uint32_t k)
{
	b->insn[b->n++] = (struct sock_filter){ .code = code, .jt = jt, .jf = jf, .k = k };
}

static void pidcn_bpf_load(struct pid_bpf *b, size_t off)
{
	pidcn_bpf_emit(b, BPF_LD | BPF_W | BPF_ABS, 0, 0, (uint32_t)off);
}

/* Classic BPF loads packet words big-endian (ntohl of what the kernel wrote
 * in host order): compare with htonl() of the value. */
static void pidcn_bpf_eq(struct pid_bpf *b, uint32_t value, uint8_t jt, uint8_t jf)
{
	pidcn_bpf_emit(b, BPF_JMP | BPF_JEQ | BPF_K, jt, jf, htonl(value));
}

/* Append the two returns and point the markers at them. */
static void pidcn_bpf_finish(struct pid_bpf *b)
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
	pidcn_bpf_emit(b, BPF_RET | BPF_K, 0, 0, 0);
	pidcn_bpf_emit(b, BPF_RET | BPF_K, 0, 0, 0xffffffffu);
}

/* Pass acks, execs when wanted, and exits: all of them, or only those of the
 * watched processes (the table, plus `extra`, being attached). */
static void pidcn_bpf_build(struct pid_bpf *b, const struct pid_shared *s, pid_t extra, bool exec,
			    bool all)
{
	b->n = 0;
	pidcn_bpf_load(b, PID_BPF_CN(id.idx));
	pidcn_bpf_eq(b, CN_IDX_PROC, 0, PID_BPF_DROP);
	pidcn_bpf_load(b, PID_BPF_CN(id.val));
	pidcn_bpf_eq(b, CN_VAL_PROC, 0, PID_BPF_DROP);
	pidcn_bpf_load(b, PID_BPF_EV(what));
	pidcn_bpf_eq(b, PROC_EVENT_NONE, PID_BPF_ACCEPT, 0);
	pidcn_bpf_eq(b, PROC_EVENT_EXEC, exec ? PID_BPF_ACCEPT : PID_BPF_DROP, 0);
	pidcn_bpf_eq(b, (uint32_t)PROC_EVENT_EXIT, all ? PID_BPF_ACCEPT : 0, PID_BPF_DROP);
	if (!all) {
		pidcn_bpf_load(b, PID_BPF_EV(event_data.exit.process_tgid));
		if (extra)
			pidcn_bpf_eq(b, (uint32_t)extra, PID_BPF_ACCEPT, 0);
		for (size_t i = 0; i < s->cap; i++)
			if (s->slots[i].pid && s->slots[i].pid != extra)
				pidcn_bpf_eq(b, (uint32_t)s->slots[i].pid, PID_BPF_ACCEPT, 0);
	}
	pidcn_bpf_finish(b);
}

static bool pidcn_exec_wanted(const struct pid_shared *s)
{
	for (size_t k = 0; k < s->matchers.n; k++)
		if (pidcn_waiting_match(s->matchers.v[k]))
			return true;
	return false;
}

/* Attach the filter for what is wanted now. If the kernel refuses it, none:
 * more wakeups, but no exit missed. */
static void pidcn_bpf_attach(struct pid_shared *s, pid_t extra, bool exec)
{
	bool all = s->n + (extra != 0) > PID_BPF_MAX_PIDS;
	if (all && s->bpf_all && exec == s->bpf_exec)
		return; /* the same program */
	struct pid_bpf b;
	pidcn_bpf_build(&b, s, extra, exec, all);
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
void pidcn_filter(struct pid_shared *s, pid_t extra)
{
	if (s->cn_fd < 0)
		return;
	bool exec = pidcn_exec_wanted(s);
	if (!s->k_set || exec != s->k_exec)
		pidcn_kernel_events(s, exec);
	pidcn_bpf_attach(s, extra, exec);
}

/* ----------------------------------------------------------- subscription */

static void pidcn_on_readable(void *data, int fd, uint32_t revents)
{
	struct pid_shared *s = data;
	int r = pidcn_drain(s);
	if (r < 0 && r != -EPERM)
		s->host->log(s->ctx, VIGIL_LOG_DEBUG, "process events: %s", strerror(-r));
}

static void pidcn_close(struct pid_shared *s)
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
static void pidcn_rcvbuf(int fd)
{
	int size = PID_CN_RCVBUF;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
}

/* Subscribe to process events, once for the whole process. */
static int pidcn_open(struct pid_shared *s)
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
		pidcn_bpf_attach(s, 0, false);
	if (r == 0 && bind(s->cn_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		r = -errno;
	if (r == 0)
		pidcn_rcvbuf(s->cn_fd);
	s->cn_seq = (uint32_t)getpid() ^ (uint32_t)(uintptr_t)s;
	if (r == 0)
		r = pidcn_send_listen(s);
	/* The plain subscription asked for everything: narrow it again. */
	s->k_set = false;
	if (r == 0)
		pidcn_filter(s, 0);
	if (r == 0)
		r = s->host->watch_fd(s->ctx, s->cn_fd, EPOLLIN, pidcn_on_readable, s);
	if (r < 0) {
		close(s->cn_fd);
		s->cn_fd = -1;
		free(s->rbuf);
		s->rbuf = NULL;
	}
	return r;
}

static bool pidcn_lasting(int r)
{
	return r == -EPERM || r == -EACCES || r == -EPROTONOSUPPORT || r == -EAFNOSUPPORT;
}

/* d will rely on the connector: subscribe if nobody has yet. Done before
 * attaching, so no exit is missed. */
int pidcn_acquire(struct pid_det *d, char *err, size_t errlen)
{
	struct pid_shared *s = d->sh;
	int r = s->cn_failed;
	if (r == 0 && s->cn_fd < 0) {
		r = pidcn_open(s);
		if (pidcn_lasting(r))
			s->cn_failed = r;
	}
	if (r < 0) {
		snprintf(err, errlen, "process events connector: %s%s", strerror(-r),
			 r == -EPERM ? " (needs CAP_NET_ADMIN)" : "");
		return r;
	}
	s->users++;
	d->cn_user = true;
	if (d->mode == PID_BY_MATCH && pidcn_list_add(&s->matchers, d, MATCHER_POS) < 0)
		d->host->log(d->ctx, VIGIL_LOG_WARN, "out of memory: polling for \"%s\"",
			     d->pattern);
	pidcn_filter(s, 0); /* execs, before the first scan: none missed */
	return 0;
}

/* d no longer needs process events; the last one out unsubscribes. */
void pidcn_release(struct pid_det *d)
{
	struct pid_shared *s = d->sh;
	if (!s)
		return; /* create() failed before it had one */
	pidcn_table_del(s, d);
	pidcn_list_del(&s->matchers, d, MATCHER_POS);
	if (!d->cn_user)
		return;
	d->cn_user = false;
	if (--s->users == 0)
		pidcn_close(s);
	else
		pidcn_filter(s, 0);
}

bool pidcn_on(const struct pid_det *d)
{
	return d->cn_user && d->sh->cn_fd >= 0;
}

/* Said once per process at info level: with 10,000 monitors, once is enough. */
void pidcn_unavailable(struct pid_det *d, const char *why)
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

/* ---------------------------------------------------------------- inotify */

/* Every event read goes to the instances holding its watch; each reacts
 * from its own timer, once however many events the batch has for it. */
static void pidcn_on_inotify(void *data, int fd, uint32_t revents)
{
	struct pid_shared *s = data;
	(void)fd;
	(void)revents;
	ino_share_dispatch(s->ino, pid_ino_event);
}

static int pidcn_ino_open(struct pid_shared *s, char *err, size_t errlen)
{
	if (s->ino)
		return 0;
	s->ino = ino_share_new();
	int r = s->ino ? s->host->watch_fd(s->ctx, ino_share_fd(s->ino), EPOLLIN,
					   pidcn_on_inotify, s)
		       : -errno;
	if (r < 0) {
		snprintf(err, errlen, "inotify: %s", strerror(-r));
		ino_share_free(s->ino);
		s->ino = NULL;
	}
	return r;
}

int pidcn_ino_watch(struct pid_det *d, const char *path, uint32_t mask, char *err,
		    size_t errlen)
{
	struct pid_shared *s = d->sh;
	int r = pidcn_ino_open(s, err, errlen);
	int wd = r < 0 ? r : ino_share_add(s->ino, path, mask, d);
	if (wd < 0) {
		if (r == 0)
			snprintf(err, errlen, "cannot watch %s: %s", path, strerror(-wd));
		return wd;
	}
	/* After the add: the same folder again is one watch held once more. */
	ino_share_del(s->ino, d->ino_wd, d);
	d->ino_wd = wd;
	return 0;
}

void pidcn_ino_unwatch(struct pid_det *d)
{
	struct pid_shared *s = d->sh;
	if (!s)
		return; /* create() failed before it had one */
	if (s->ino)
		ino_share_del(s->ino, d->ino_wd, d);
	d->ino_wd = -1;
}

/* ----------------------------------------------------------- shared state */

int pidcn_shared_create(const struct vigil_host *host, struct vigil_ctx *ctx, void **shared,
			char *err, size_t errlen)
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

void pidcn_shared_destroy(void *shared)
{
	struct pid_shared *s = shared;
	if (!s)
		return;
	if (s->exec_timer)
		s->host->cancel_timer(s->ctx, s->exec_timer);
	if (s->sample_timer)
		s->host->cancel_timer(s->ctx, s->sample_timer);
	pidcn_close(s);
	if (s->ino) {
		s->host->unwatch_fd(s->ctx, ino_share_fd(s->ino));
		ino_share_free(s->ino);
	}
	free(s->slots);
	free(s->matchers.v);
	free(s->samples.v);
	free(s->execs);
	free(s);
}
