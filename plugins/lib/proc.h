/* Facts about processes from /proc, shared by the core and the pid detector
 * (which compiles this file into its own .so; nothing here touches core state).
 * Identity of a process is (pid, start time): a reused PID has another start time. */
#ifndef VIGIL_PROC_H
#define VIGIL_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Start time (field 22 of /proc/PID/stat, clock ticks after boot). 0, or -errno
 * (-ENOENT when no such process). Handles a comm holding spaces and ')'. */
int proc_start_time(pid_t pid, uint64_t *start_time);

/* Parent PID (field 4); 0, or -errno. */
int proc_ppid(pid_t pid, pid_t *ppid);

/* State letter (field 3), e.g. 'Z' for a zombie; 0 when unknown. */
char proc_state(pid_t pid);

/* Command line with NULs turned into spaces, at most len-1 bytes. 0 or -errno. */
int proc_cmdline(pid_t pid, char *buf, size_t len);

/* Does (pid, start_time) still name the same, not yet reaped, process? */
int proc_is_same(pid_t pid, uint64_t start_time);

/* Parse a PID as written in a pid file or on the command line: decimal, optional
 * surrounding white space, 1 <= pid <= pid_max. 0 or -EINVAL (reason in err). */
int proc_parse_pid(const char *text, pid_t *pid, char *err, size_t errlen);

/* Read and parse a pid file. 0, -ENOENT (no file yet), -EINVAL (garbage or
 * empty; reason in err), or another -errno. */
int proc_read_pid_file(const char *path, pid_t *pid, char *err, size_t errlen);

/* Signal name without the SIG prefix removed: "SIGKILL"; "SIG<n>" when unknown. */
const char *proc_signal_name(int sig, char *buf, size_t len);

/* Milliseconds since the process started (from start time and the boot clock). */
int64_t proc_age_ms(uint64_t start_time);

/* What the kernel tells of a live process's use of resources: its peak
 * resident set (VmHWM of /proc/PID/status; gone once it is a zombie) and its
 * CPU time so far (utime + stime of /proc/PID/stat; a zombie keeps them). */
struct proc_usage {
	int64_t peak_rss_bytes; /* -1: unknown */
	int64_t cpu_ms;         /* -1: unknown */
};
/* Fills what can be read; -errno when neither could. */
int proc_usage_read(pid_t pid, struct proc_usage *u);

/* Did the OOM killer kill (pid), started at start_time? From the kernel log
 * (/dev/kmsg: root, non-blocking): 1 when a "Killed process PID" record
 * newer than the start is there, 0 when the log was read without one, -errno
 * when it could not be read (unknown). */
int proc_oom_killed(pid_t pid, uint64_t start_time);

#endif
