#define _GNU_SOURCE
#include "CAsyncToolsShims.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stddef.h>
#include <unistd.h>

#if defined(__linux__)
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

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

int asynctools_set_process_name(const char *name) {
  char truncated[16];
  strncpy(truncated, name, 15);
  truncated[15] = 0;
  if (gettid() == getpid()) return prctl(PR_SET_NAME, (unsigned long)truncated, 0, 0, 0);
  // Another thread (Swift code rarely runs on the main thread, which libdispatch parks in
  // sigsuspend): a thread may set the name of any thread of its process through /proc.
  char path[64];
  snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)getpid());
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t length = strlen(truncated);
  ssize_t written = write(fd, truncated, length);
  int saved = errno;
  close(fd);
  errno = saved;
  return written == (ssize_t)length ? 0 : -1;
}

void asynctools_die_by_signal(int sig, int status) {
  if (sig >= 1 && sig <= 64) {
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    kill(getpid(), sig);
  }
  _exit(status);
}

static uint64_t asynctools_held_signals = 0;

static void asynctools_hold_signal(int sig) {
  if (sig >= 1 && sig <= 64) __atomic_fetch_or(&asynctools_held_signals, (uint64_t)1 << (sig - 1), __ATOMIC_SEQ_CST);
}

uint64_t asynctools_take_held_signals(void) { return __atomic_exchange_n(&asynctools_held_signals, 0, __ATOMIC_SEQ_CST); }

/// In a copy re-executed for a role: records (instead of acting on) every signal blocked at load time.
static void asynctools_hold_blocked_signals(void) {
  if (getenv(ASYNCTOOLS_ENV_ROLE) == NULL) return;
  sigset_t blocked;
  if (pthread_sigmask(SIG_BLOCK, NULL, &blocked) != 0) return;
  struct sigaction action;
  memset(&action, 0, sizeof(action));
  action.sa_handler = asynctools_hold_signal;
  action.sa_flags = SA_RESTART;
  sigfillset(&action.sa_mask);
  for (int sig = 1; sig <= 64; sig++) {
    if (sig != SIGKILL && sig != SIGSTOP && sigismember(&blocked, sig) == 1) sigaction(sig, &action, NULL);
  }
}

static int asynctools_death_signal = 0;
static pid_t asynctools_expected_parent = 0;
static char asynctools_startup_path[4096];
static int asynctools_startup_path_known = 0;

int asynctools_armed_parent_death_signal(pid_t *expected_parent) {
  *expected_parent = asynctools_expected_parent;
  return asynctools_death_signal;
}

const char *asynctools_startup_executable_path(void) {
  return asynctools_startup_path_known ? asynctools_startup_path : NULL;
}

/// Runs when the program is loaded, before the Swift runtime and `main`: the earliest point a
/// re-executed child can arm its parent-death signal (posix_spawn cannot run prctl between fork
/// and exec). A parent that died before the prctl is caught by the getppid() check after it.
/// Also remembers where the executable lives now, before anyone can replace the file.
__attribute__((constructor)) static void asynctools_load_time_setup(void) {
  // A child of the fork server gets the environment its parent asked for before anything reads it.
  asynctools_fork_server_install_environment();
  // Started as a fork server but without the pre-init hook (this library linked dynamically): say
  // so with a status of our own instead of running the program.
  if (getenv(ASYNCTOOLS_ENV_FORK_SERVER) != NULL && !asynctools_fork_server_available()) _exit(125);
  ssize_t length = readlink("/proc/self/exe", asynctools_startup_path, sizeof(asynctools_startup_path) - 1);
  if (length > 0) {
    asynctools_startup_path[length] = 0;
    asynctools_startup_path_known = 1;
  }
  asynctools_hold_blocked_signals();

  const char *signal_text = getenv(ASYNCTOOLS_ENV_DEATH_SIGNAL);
  const char *parent_text = getenv(ASYNCTOOLS_ENV_PARENT_PID);
  if (signal_text == NULL || parent_text == NULL) return;
  char *end = NULL;
  long sig = strtol(signal_text, &end, 10);
  int signal_ok = *signal_text != 0 && *end == 0 && sig >= 1 && sig <= 64;
  long parent = strtol(parent_text, &end, 10);
  int parent_ok = *parent_text != 0 && *end == 0 && parent > 0;
  // Removed at once: a program this one starts before its own set-up runs must not take them for
  // its own (it would compare its parent with ours, and kill itself).
  unsetenv(ASYNCTOOLS_ENV_DEATH_SIGNAL);
  unsetenv(ASYNCTOOLS_ENV_PARENT_PID);
  if (!signal_ok || !parent_ok) return;
  prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0);
  asynctools_death_signal = (int)sig;
  asynctools_expected_parent = (pid_t)parent;
  // The parent may have died before the prctl: then the signal will never come, so deliver it now.
  if (getppid() != (pid_t)parent) asynctools_die_by_signal((int)sig, 126);
}

int asynctools_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int asynctools_epoll_add(int epfd, int fd, uint64_t token) {
  struct epoll_event event;
  event.events = EPOLLIN;
  event.data.u64 = token;
  return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int asynctools_epoll_del(int epfd, int fd) {
  struct epoll_event event = {0};
  return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &event);
}

int asynctools_epoll_wait(int epfd, uint64_t *tokens, int max, int timeout_ms) {
  struct epoll_event events[64];
  if (max > 64) max = 64;
  int count = epoll_wait(epfd, events, max, timeout_ms);
  for (int i = 0; i < count; i++) tokens[i] = events[i].data.u64;
  return count;
}

int asynctools_eventfd(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

static int asynctools_waitid(idtype_t type, id_t id, int options, pid_t *out_pid, int *out_code, int *out_status) {
  siginfo_t info;
  info.si_pid = 0;
  info.si_code = 0;
  info.si_status = 0;
  int result = waitid(type, id, &info, options);
  if (result == 0) {
    *out_pid = info.si_pid;
    *out_code = info.si_code;
    *out_status = info.si_status;
  }
  return result;
}

int asynctools_waitid_pidfd(int pidfd, int options, pid_t *out_pid, int *out_code, int *out_status) {
  return asynctools_waitid((idtype_t)P_PIDFD, (id_t)pidfd, options, out_pid, out_code, out_status);
}

int asynctools_waitid_pid(pid_t pid, int options, pid_t *out_pid, int *out_code, int *out_status) {
  return asynctools_waitid(P_PID, (id_t)pid, options, out_pid, out_code, out_status);
}

int asynctools_spawn_file_actions_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
  return posix_spawn_file_actions_addchdir_np(actions, path);
}

int asynctools_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
  return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

int asynctools_pipe2(int *fds, int flags) { return pipe2(fds, flags); }

int asynctools_set_thread_name(const char *name) {
  char truncated[16];
  strncpy(truncated, name, 15);
  truncated[15] = 0;
  return pthread_setname_np(pthread_self(), truncated);
}
#else
int asynctools_pipe2(int *fds, int flags) { (void)fds; (void)flags; errno = ENOSYS; return -1; }
int asynctools_set_thread_name(const char *name) { (void)name; return ENOSYS; }
int asynctools_epoll_create(void) { errno = ENOSYS; return -1; }
int asynctools_epoll_add(int epfd, int fd, uint64_t token) {
  (void)epfd; (void)fd; (void)token; errno = ENOSYS; return -1;
}
int asynctools_epoll_del(int epfd, int fd) { (void)epfd; (void)fd; errno = ENOSYS; return -1; }
int asynctools_epoll_wait(int epfd, uint64_t *tokens, int max, int timeout_ms) {
  (void)epfd; (void)tokens; (void)max; (void)timeout_ms; errno = ENOSYS; return -1;
}
int asynctools_eventfd(void) { errno = ENOSYS; return -1; }
int asynctools_waitid_pidfd(int pidfd, int options, pid_t *out_pid, int *out_code, int *out_status) {
  (void)pidfd; (void)options; (void)out_pid; (void)out_code; (void)out_status; errno = ENOSYS; return -1;
}
int asynctools_waitid_pid(pid_t pid, int options, pid_t *out_pid, int *out_code, int *out_status) {
  (void)pid; (void)options; (void)out_pid; (void)out_code; (void)out_status; errno = ENOSYS; return -1;
}
int asynctools_spawn_file_actions_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
  return posix_spawn_file_actions_addchdir_np(actions, path);
}
int asynctools_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
  (void)actions; (void)from; return ENOSYS;
}

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

int asynctools_set_process_name(const char *name) {
  (void)name;
  errno = ENOSYS;
  return -1;
}

int asynctools_armed_parent_death_signal(pid_t *expected_parent) {
  *expected_parent = 0;
  return 0;
}

void asynctools_die_by_signal(int sig, int status) {
  (void)sig;
  _exit(status);
}

const char *asynctools_startup_executable_path(void) { return NULL; }

uint64_t asynctools_take_held_signals(void) { return 0; }
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

int asynctools_memfd_create(const char *name) {
#if defined(__linux__)
  return (int)syscall(SYS_memfd_create, name, 1U /* MFD_CLOEXEC */);
#else
  (void)name;
  errno = ENOSYS;
  return -1;
#endif
}

int64_t asynctools_shared_load(const int64_t *address) { return __atomic_load_n(address, __ATOMIC_SEQ_CST); }

void asynctools_shared_store(int64_t *address, int64_t value) { __atomic_store_n(address, value, __ATOMIC_SEQ_CST); }

int64_t asynctools_shared_add(int64_t *address, int64_t delta) {
  return __atomic_add_fetch(address, delta, __ATOMIC_SEQ_CST);
}

bool asynctools_shared_compare_exchange(int64_t *address, int64_t expected, int64_t desired) {
  return __atomic_compare_exchange_n(address, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
