/* One inotify instance shared by all the instances of a plugin. The kernel
 * allows each user 128 inotify instances by default (fs.inotify.max_user_instances):
 * one per monitor stopped an agent at about 120 monitors with a log, file or
 * pid_file detector. Here the plugin's shared state holds one inotify fd; its
 * instances add and remove watches as owners, and the events of a watch reach
 * every owner of it. The kernel gives one watch descriptor per inode and
 * instance, so owners share watches: masks are added (IN_MASK_ADD) and a watch
 * is removed when its last owner leaves. libc only; no state but the table. */
#ifndef VIGIL_INO_SHARE_H
#define VIGIL_INO_SHARE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/inotify.h>

struct ino_share;

/* Called for each owner of an event's watch (every owner for IN_Q_OVERFLOW).
 * It may add and delete watches, its own or others'. */
typedef void (*ino_share_fn)(void *owner, const struct inotify_event *ev);

/* A new inotify instance (non-blocking, close-on-exec), or NULL with errno. */
struct ino_share *ino_share_new(void);
/* The fd to watch for reading (then call ino_share_dispatch). */
int ino_share_fd(const struct ino_share *s);
/* Close the fd and forget every watch. NULL is fine. */
void ino_share_free(struct ino_share *s);

/* Watch path for owner: inotify_add_watch with IN_MASK_ADD (the watch keeps
 * what its other owners asked for; events an owner did not ask for reach it
 * too and are its to ignore). The watch descriptor, or -errno. An owner may
 * add the same watch twice: it then deletes it twice. */
int ino_share_add(struct ino_share *s, const char *path, uint32_t mask, void *owner);
/* owner no longer wants wd (a no-op for a wd it does not hold); the kernel
 * watch is removed when no owner holds it. */
void ino_share_del(struct ino_share *s, int wd, void *owner);

/* Read every queued event and hand each to the owners of its watch. An
 * IN_IGNORED watch (its file or folder is gone) is forgotten once its owners
 * were told. An owner deleted during the dispatch is not called again. */
void ino_share_dispatch(struct ino_share *s, ino_share_fn fn);

#endif
