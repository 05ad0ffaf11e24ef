#define _GNU_SOURCE
#include "CAsyncToolsShims.h"

#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>

#if defined(__linux__)
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

int asynctools_pidfd_open(pid_t pid, unsigned int flags) {
  return (int)syscall(SYS_pidfd_open, pid, flags);
}

int asynctools_pidfd_send_signal(int pidfd, int sig) {
  return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int asynctools_set_parent_death_signal(int sig) {
  return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0);
}
#else
int asynctools_pidfd_open(pid_t pid, unsigned int flags) {
  (void)pid;
  (void)flags;
  errno = ENOSYS;
  return -1;
}

int asynctools_pidfd_send_signal(int pidfd, int sig) {
  (void)pidfd;
  (void)sig;
  errno = ENOSYS;
  return -1;
}

int asynctools_set_parent_death_signal(int sig) {
  (void)sig;
  errno = ENOSYS;
  return -1;
}
#endif

void **asynctools_enqueue_global_hook_address(void) {
  // Looked up at run time (as swift-concurrency-extras does) so that a runtime without the hook
  // makes virtual time unavailable instead of failing to link.
  static void **address = NULL;
  static int looked_up = 0;
  if (!__atomic_load_n(&looked_up, __ATOMIC_ACQUIRE)) {
    void **found = (void **)dlsym(RTLD_DEFAULT, "swift_task_enqueueGlobal_hook");
    __atomic_store_n(&address, found, __ATOMIC_RELEASE);
    __atomic_store_n(&looked_up, 1, __ATOMIC_RELEASE);
  }
  return __atomic_load_n(&address, __ATOMIC_ACQUIRE);
}

bool asynctools_enqueue_global_hook_cas(void *expected, void *desired, void **actual) {
  void **address = asynctools_enqueue_global_hook_address();
  if (address == NULL) {
    if (actual) *actual = NULL;
    return false;
  }
  void *seen = expected;
  bool ok = __atomic_compare_exchange_n(address, &seen, desired, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
  if (!ok && actual) *actual = seen;
  return ok;
}

void *asynctools_enqueue_global_hook_load(void) {
  void **address = asynctools_enqueue_global_hook_address();
  return address ? __atomic_load_n(address, __ATOMIC_ACQUIRE) : NULL;
}

static _Thread_local void *asynctools_thread_marker = NULL;

void *asynctools_thread_marker_get(void) { return asynctools_thread_marker; }

void asynctools_thread_marker_set(void *marker) { asynctools_thread_marker = marker; }
