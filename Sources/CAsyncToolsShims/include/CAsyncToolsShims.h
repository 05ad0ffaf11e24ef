// The few things Swift on Linux cannot reach through Glibc: raw syscalls (pidfd), prctl, and the
// Swift concurrency runtime's global-enqueue hook. Each function does one thing; errno is left as
// the call set it.
#ifndef CASYNCTOOLSSHIMS_H
#define CASYNCTOOLSSHIMS_H

#include <stdbool.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/// pidfd_open(2): a file descriptor referring to process `pid`, or -1 with errno (ENOSYS before Linux 5.3).
int asynctools_pidfd_open(pid_t pid, unsigned int flags);

/// pidfd_send_signal(2) without siginfo: -1 with errno on failure (ENOSYS before Linux 5.1).
int asynctools_pidfd_send_signal(int pidfd, int sig);

/// prctl(PR_SET_PDEATHSIG, sig): deliver `sig` to this process when its parent thread dies.
int asynctools_set_parent_death_signal(int sig);

/// Address of the runtime's `swift_task_enqueueGlobal_hook` variable, or NULL if this runtime has none.
void *_Nullable *_Nullable asynctools_enqueue_global_hook_address(void);

/// Atomically replaces the enqueue hook with `desired` if it currently equals `expected`.
/// Returns true on success; otherwise writes the current value to `*actual` (if non-NULL).
bool asynctools_enqueue_global_hook_cas(void *_Nullable expected, void *_Nullable desired,
                                        void *_Nullable *_Nullable actual);

/// Reads the enqueue hook atomically.
void *_Nullable asynctools_enqueue_global_hook_load(void);

/// This thread's private marker slot (a C11 `_Thread_local`), used by the virtual-time driver to
/// recognise enqueues made on its own thread without a lock.
void *_Nullable asynctools_thread_marker_get(void);

/// Sets this thread's private marker slot.
void asynctools_thread_marker_set(void *_Nullable marker);

#ifdef __cplusplus
}
#endif

#endif
